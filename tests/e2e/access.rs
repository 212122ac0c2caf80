//! Access: group tokens act on their own group only, as their role allows. The walk calls every RPC of every
//! admin service from a table (one row per RPC) with group A's tokens: against group B's objects (refused, and
//! answered exactly as for objects that do not exist), against A's own (a viewer reads and may not change, an
//! editor may do all but create or delete groups), with a revoked token and with a device token (refused). A test
//! compares the table with the services of hookwire's descriptor set, so an RPC added without its row fails it.
//!
//! A new admin RPC is one row in [`rpcs`]: its full method name, the role it needs, whether it names a group or an
//! object (which decides how another group's token is refused), and the SDK call.

use futures::future::BoxFuture;
use hookwire_client::{AdminClient, Code, Error, proto};
use hookwire_tests::{FakeReceiver, TestKernel};
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// The objects of one group that the walk addresses.
#[derive(Debug, Clone)]
struct Objects {
    group_id: String,
    device_id: String,
    webhook_id: String,
    attempt_id: i64,
    token_id: String,
    /// Where the group's webhooks deliver.
    url: String,
}

impl Objects {
    /// Ids of the right kinds that name nothing.
    fn absent(url: &str) -> Objects {
        let zeros = "0".repeat(32);
        Objects {
            group_id: format!("grp_{zeros}"),
            device_id: format!("dev_{zeros}"),
            webhook_id: format!("whk_{zeros}"),
            attempt_id: i64::MAX - 1,
            token_id: format!("tok_{zeros}"),
            url: url.to_owned(),
        }
    }

    /// Replaces this group's ids in `text` by placeholders, so that answers about two groups compare.
    fn anonymize(&self, text: &str) -> String {
        text.replace(&self.group_id, "<group>")
            .replace(&self.device_id, "<device>")
            .replace(&self.webhook_id, "<webhook>")
            .replace(&self.token_id, "<token>")
            .replace(&format!("attempt {}", self.attempt_id), "attempt <attempt>")
    }

    /// A signing webhook definition delivering to the group's receiver.
    fn definition(&self) -> String {
        json!({"event": "walk", "url": format!("{}/walk", self.url), "x-signing": true}).to_string()
    }
}

/// What an RPC needs of a group token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Viewer,
    Editor,
    /// Only the root token.
    Root,
}

/// How an RPC names what it acts on, which decides how a token of another group is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    /// A group id: `PERMISSION_DENIED`.
    Group,
    /// The id of a device, webhook, attempt or token: `NOT_FOUND`, as if it did not exist.
    Object,
    /// Nothing: the call answers about the caller's own group (`ListGroups`).
    Caller,
}

/// One admin RPC: the call answers its result's `Debug` text.
struct Rpc {
    method: &'static str,
    need: Need,
    by: By,
    call: fn(AdminClient, Objects) -> BoxFuture<'static, Result<String, Error>>,
}

macro_rules! rpc {
    ($method:literal, $need:ident, $by:ident, |$client:ident, $objects:ident| $call:expr) => {
        Rpc {
            method: $method,
            need: Need::$need,
            by: By::$by,
            call: |$client, $objects| Box::pin(async move { $call.await.map(|answer| format!("{answer:?}")) }),
        }
    };
}

/// Every admin RPC, one row each.
fn rpcs() -> Vec<Rpc> {
    vec![
        rpc!("GroupService/CreateGroup", Root, Group, |c, _o| c.create_group("walk")),
        rpc!("GroupService/GetGroup", Viewer, Group, |c, o| c.get_group(o.group_id)),
        rpc!("GroupService/ListGroups", Viewer, Caller, |c, _o| c.list_groups()),
        rpc!("GroupService/RenameGroup", Editor, Group, |c, o| c.rename_group(o.group_id, "walk")),
        rpc!("GroupService/DeleteGroup", Root, Group, |c, o| c.delete_group(o.group_id)),
        rpc!("DeviceAdminService/CreateDevice", Editor, Group, |c, o| c.create_device(o.group_id, "walk")),
        rpc!("DeviceAdminService/GetDevice", Viewer, Object, |c, o| c.get_device(o.device_id)),
        rpc!("DeviceAdminService/ListDevices", Viewer, Group, |c, o| c.list_devices(o.group_id)),
        rpc!("DeviceAdminService/UpdateDevice", Editor, Object, |c, o| c.update_device(proto::UpdateDeviceRequest {
            id: o.device_id,
            name: Some("walk".into()),
            ..Default::default()
        })),
        rpc!("DeviceAdminService/RotateDeviceToken", Editor, Object, |c, o| c.rotate_device_token(o.device_id)),
        rpc!("DeviceAdminService/DeleteDevice", Editor, Object, |c, o| c.delete_device(o.device_id)),
        rpc!("WebhookService/CreateWebhook", Editor, Group, |c, o| c
            .create_webhook(o.group_id.clone(), o.definition())),
        rpc!("WebhookService/GetWebhook", Viewer, Object, |c, o| c.get_webhook(o.webhook_id)),
        rpc!("WebhookService/ListWebhooks", Viewer, Group, |c, o| c.list_webhooks(o.group_id, None)),
        rpc!("WebhookService/UpdateWebhook", Editor, Object, |c, o| c
            .update_webhook(o.webhook_id.clone(), o.definition())),
        rpc!("WebhookService/BatchCreateWebhooks", Editor, Group, |c, o| c
            .batch_create_webhooks(o.group_id.clone(), vec![o.definition()])),
        rpc!("WebhookService/TestWebhook", Editor, Object, |c, o| c.test_webhook(o.webhook_id, None)),
        rpc!("WebhookService/DeleteWebhook", Editor, Object, |c, o| c.delete_webhook(o.webhook_id)),
        rpc!("WebhookService/BatchDeleteWebhooks", Editor, Object, |c, o| c.batch_delete_webhooks(vec![o.webhook_id])),
        rpc!("WebhookService/RotateWebhookSecret", Editor, Object, |c, o| c
            .rotate_webhook_secret(o.webhook_id, Some(0))),
        rpc!("WebhookService/EnableWebhook", Editor, Object, |c, o| c.enable_webhook(o.webhook_id)),
        rpc!("WebhookService/DisableWebhook", Editor, Object, |c, o| c.disable_webhook(o.webhook_id)),
        rpc!("EventService/Subscribe", Viewer, Group, |c, o| c.subscribe(o.group_id, "")),
        rpc!("DeliveryService/ListAttempts", Viewer, Object, |c, o| c.attempt_page(o.webhook_id, None, 10, None)),
        rpc!("DeliveryService/GetHistory", Viewer, Object, |c, o| c.history(o.webhook_id, 0)),
        rpc!("DeliveryService/Replay", Editor, Object, |c, o| c.replay(o.webhook_id, "1h", "all")),
        rpc!("DeliveryService/ResendAttempt", Editor, Object, |c, o| c.resend_attempt(o.attempt_id)),
        rpc!("TokenService/CreateToken", Editor, Group, |c, o| c.create_token(o.group_id, proto::Role::Viewer, "walk")),
        rpc!("TokenService/ListTokens", Viewer, Group, |c, o| c.list_tokens(o.group_id)),
        rpc!("TokenService/RevokeToken", Editor, Object, |c, o| c.revoke_token(o.token_id)),
    ]
}

/// Makes a group with a device, a signing webhook that has delivered once (so it has an attempt) and a viewer
/// token, with the root token.
async fn populate(kernel: &TestKernel, root: &AdminClient, receiver: &FakeReceiver, name: &str) -> Objects {
    let group_id = root.create_group(name).await.unwrap().id;
    let created = root.create_device(group_id.clone(), "walker").await.unwrap();
    let device_id = created.device.unwrap().id;
    let mut objects = Objects {
        group_id,
        device_id,
        webhook_id: String::new(),
        attempt_id: 0,
        token_id: String::new(),
        url: receiver.base_url.clone(),
    };
    objects.webhook_id = root.create_webhook(objects.group_id.clone(), objects.definition()).await.unwrap().id;
    let token =
        root.create_token(objects.group_id.clone(), proto::Role::Viewer, format!("{name} viewer")).await.unwrap();
    objects.token_id = token.admin_token.unwrap().id;
    kernel.device(&created.token).await.publish("walk", name).await.unwrap();
    objects.attempt_id = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(attempt) = root.recent_attempts(objects.webhook_id.clone(), None).await.unwrap().first() {
                return attempt.id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("an attempt within 10 s");
    objects
}

/// Fresh objects in the group of `objects` for one row of the editor's walk (which deletes and revokes them),
/// keeping its attempt.
async fn fresh(root: &AdminClient, objects: &Objects) -> Objects {
    let device = root.create_device(objects.group_id.clone(), "fresh").await.unwrap().device.unwrap();
    let webhook = root.create_webhook(objects.group_id.clone(), objects.definition()).await.unwrap();
    let token = root.create_token(objects.group_id.clone(), proto::Role::Viewer, "fresh").await.unwrap();
    Objects { device_id: device.id, webhook_id: webhook.id, token_id: token.admin_token.unwrap().id, ..objects.clone() }
}

/// Everything the root token sees of a group, but when its tokens were last used.
async fn snapshot(root: &AdminClient, objects: &Objects) -> String {
    let group = root.get_group(objects.group_id.clone()).await.unwrap();
    let devices = root.list_devices(objects.group_id.clone()).await.unwrap();
    let webhooks = root.list_webhooks(objects.group_id.clone(), None).await.unwrap();
    let mut tokens = root.list_tokens(objects.group_id.clone()).await.unwrap();
    for token in &mut tokens {
        token.last_used_at.clear();
    }
    let attempts: Vec<_> = root
        .attempt_page(objects.webhook_id.clone(), None, 200, None)
        .await
        .unwrap()
        .attempts
        .into_iter()
        .map(|attempt| (attempt.id, attempt.delivery_id, attempt.attempt, attempt.delivery_status))
        .collect();
    format!("{group:?}\n{devices:?}\n{webhooks:?}\n{tokens:?}\n{attempts:?}")
}

/// Makes group A's viewer and editor tokens.
async fn tokens_of(root: &AdminClient, objects: &Objects) -> (String, String) {
    let viewer = root.create_token(objects.group_id.clone(), proto::Role::Viewer, "a viewer").await.unwrap().token;
    let editor = root.create_token(objects.group_id.clone(), proto::Role::Editor, "a editor").await.unwrap().token;
    (viewer, editor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walk_covers_every_rpc_of_every_admin_service() {
    let set = prost_types::FileDescriptorSet::decode(hookwire_proto::FILE_DESCRIPTOR_SET).unwrap();
    let served: BTreeSet<String> = set
        .file
        .iter()
        .filter(|file| file.package() == "hookwire.v1")
        .flat_map(|file| &file.service)
        // The device service is not an admin service: devices use their own tokens.
        .filter(|service| service.name() != "DeviceService")
        .flat_map(|service| service.method.iter().map(move |method| format!("{}/{}", service.name(), method.name())))
        .collect();
    let walked: BTreeSet<String> = rpcs().iter().map(|rpc| rpc.method.to_owned()).collect();
    assert_eq!(walked.len(), rpcs().len(), "a method has two rows");
    let missing: Vec<_> = served.difference(&walked).collect();
    assert!(missing.is_empty(), "admin RPCs without a row in access.rs `rpcs()`: {missing:?}");
    let unknown: Vec<_> = walked.difference(&served).collect();
    assert!(unknown.is_empty(), "rows in access.rs `rpcs()` for RPCs the contract does not have: {unknown:?}");
    assert!(served.len() >= 24, "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_token_gets_nothing_of_another_group_from_any_rpc() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let root = kernel.admin().await;
    let a = populate(&kernel, &root, &receiver, "a").await;
    let b = populate(&kernel, &root, &receiver, "b").await;
    let absent = Objects::absent(&receiver.base_url);
    let (viewer, editor) = tokens_of(&root, &a).await;
    let before = snapshot(&root, &b).await;

    for (role, token) in [("viewer", &viewer), ("editor", &editor)] {
        let client = AdminClient::connect(&kernel.endpoint, token).await.unwrap();
        for rpc in rpcs() {
            let on_b = (rpc.call)(client.clone(), b.clone()).await;
            let on_nothing = (rpc.call)(client.clone(), absent.clone()).await;
            let expected = match rpc.by {
                By::Group => Some(Code::PermissionDenied),
                By::Object => Some(Code::NotFound),
                By::Caller => None,
            };
            match (&on_b, expected) {
                (Err(error), Some(code)) => {
                    assert_eq!(error.code(), Some(code), "{role} {}: {error}", rpc.method)
                }
                (Ok(answer), None) => {
                    assert!(!answer.contains(&b.group_id), "{role} {} shows group B: {answer}", rpc.method)
                }
                (answer, _) => panic!("{role} {} on group B answered {answer:?}, expected {expected:?}", rpc.method),
            }
            // Whether B's object exists or not, the answer is the same: it reveals nothing.
            let on_b = b.anonymize(&format!("{:?}", on_b.map_err(|error| error.to_string())));
            let on_nothing = absent.anonymize(&format!("{:?}", on_nothing.map_err(|error| error.to_string())));
            assert_eq!(on_b, on_nothing, "{role} {} tells B's objects from absent ones", rpc.method);
        }
    }
    assert_eq!(snapshot(&root, &b).await, before, "group B changed");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_its_own_group_a_viewer_reads_and_an_editor_also_changes() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let root = kernel.admin().await;
    let a = populate(&kernel, &root, &receiver, "a").await;
    let (viewer, editor) = tokens_of(&root, &a).await;

    let client = AdminClient::connect(&kernel.endpoint, &viewer).await.unwrap();
    let before = snapshot(&root, &a).await;
    for rpc in rpcs() {
        let answer = (rpc.call)(client.clone(), a.clone()).await;
        match (rpc.need, &answer) {
            (Need::Viewer, Ok(_)) => {}
            (Need::Editor | Need::Root, Err(error)) if error.code() == Some(Code::PermissionDenied) => {}
            _ => panic!("viewer {} (needs {:?}) on its own group answered {answer:?}", rpc.method, rpc.need),
        }
    }
    assert_eq!(snapshot(&root, &a).await, before, "a viewer changed its group");
    let groups = client.list_groups().await.unwrap();
    assert_eq!(groups.iter().map(|group| group.id.as_str()).collect::<Vec<_>>(), [a.group_id.as_str()]);

    let client = AdminClient::connect(&kernel.endpoint, &editor).await.unwrap();
    for rpc in rpcs() {
        let objects = fresh(&root, &a).await;
        let answer = (rpc.call)(client.clone(), objects).await;
        match (rpc.need, &answer) {
            (Need::Viewer | Need::Editor, Ok(_)) => {}
            (Need::Root, Err(error)) if error.code() == Some(Code::PermissionDenied) => {
                assert!(error.to_string().contains("only the root token"), "{error}")
            }
            _ => panic!("editor {} (needs {:?}) on its own group answered {answer:?}", rpc.method, rpc.need),
        }
    }
    // The editor's changes took: what it created is there, the group is not deleted.
    let created = client.create_device(a.group_id.clone(), "by the editor").await.unwrap().device.unwrap();
    assert_eq!(root.get_device(created.id).await.unwrap().name, "by the editor");
    assert!(root.get_group(a.group_id.clone()).await.is_ok());
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_tokens_of_deleted_groups_and_device_tokens_are_refused_by_every_rpc() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let root = kernel.admin().await;
    let a = populate(&kernel, &root, &receiver, "a").await;
    let (_, editor) = tokens_of(&root, &a).await;
    let client = AdminClient::connect(&kernel.endpoint, &editor).await.unwrap();
    assert!(client.list_devices(a.group_id.clone()).await.is_ok(), "the token works (and is cached) before");

    // Revocation takes effect at once, although the token was cached by its use.
    let editor_id = root
        .list_tokens(a.group_id.clone())
        .await
        .unwrap()
        .into_iter()
        .find(|token| token.name == "a editor")
        .unwrap()
        .id;
    root.revoke_token(editor_id.clone()).await.unwrap();
    let device_token = root.create_device(a.group_id.clone(), "d").await.unwrap().token;
    let device = AdminClient::connect(&kernel.endpoint, &device_token).await.unwrap();
    for (who, client) in [("revoked token", &client), ("device token", &device)] {
        for rpc in rpcs() {
            let answer = (rpc.call)(client.clone(), a.clone()).await;
            assert!(
                matches!(&answer, Err(error) if error.code() == Some(Code::Unauthenticated)),
                "{who} {}: {answer:?}",
                rpc.method
            );
        }
    }
    let error = device.list_groups().await.unwrap_err();
    assert!(error.to_string().contains("device token"), "{error}");
    assert_eq!(root.revoke_token(editor_id).await.unwrap_err().code(), Some(Code::NotFound));

    // Deleting a group ends its tokens too, cached or not.
    let b = populate(&kernel, &root, &receiver, "b").await;
    let (viewer_b, _) = tokens_of(&root, &b).await;
    let client = AdminClient::connect(&kernel.endpoint, &viewer_b).await.unwrap();
    assert!(client.get_group(b.group_id.clone()).await.is_ok());
    root.delete_group(b.group_id.clone()).await.unwrap();
    assert_eq!(client.list_groups().await.unwrap_err().code(), Some(Code::Unauthenticated));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_and_their_fields_are_checked_by_name() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let root = &fixture.admin;
    let created = root.create_token(fixture.group_id.clone(), proto::Role::Editor, "ci").await.unwrap();
    assert!(created.token.starts_with("hwa_") && created.token.len() > 40);
    let record = created.admin_token.unwrap();
    assert!(record.id.starts_with("tok_"));
    assert_eq!(
        (record.group_id.as_str(), record.role(), record.name.as_str()),
        (fixture.group_id.as_str(), proto::Role::Editor, "ci")
    );
    assert!(crate::support::is_iso8601_ms(&record.created_at), "{}", record.created_at);
    assert!(record.last_used_at.is_empty());

    // Its first use is recorded; the list never holds the secret.
    let editor = AdminClient::connect(&kernel.endpoint, &created.token).await.unwrap();
    editor.get_group(fixture.group_id.clone()).await.unwrap();
    let listed = root.list_tokens(fixture.group_id.clone()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(crate::support::is_iso8601_ms(&listed[0].last_used_at), "{:?}", listed[0]);
    assert!(!format!("{listed:?}").contains(&created.token));

    let error = root.create_token(fixture.group_id.clone(), proto::Role::Unspecified, "").await.unwrap_err();
    assert_eq!(error.code(), Some(Code::InvalidArgument));
    assert!(error.to_string().starts_with("role: "), "{error}");
    let error = root.create_token("grp_nope", proto::Role::Viewer, "").await.unwrap_err();
    assert!(error.to_string().starts_with("group_id: "), "{error}");
    let error = root.create_token(fixture.group_id.clone(), proto::Role::Viewer, "a\nb").await.unwrap_err();
    assert!(error.to_string().starts_with("name: "), "{error}");
    let error = root.revoke_token(fixture.device_id.clone()).await.unwrap_err();
    assert!(error.to_string().starts_with("id: ") && error.code() == Some(Code::InvalidArgument), "{error}");
    let error = root.list_tokens(format!("grp_{}", "0".repeat(32))).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::NotFound));

    // An editor may not delete its group or make groups; listing groups shows its own.
    assert_eq!(editor.delete_group(fixture.group_id.clone()).await.unwrap_err().code(), Some(Code::PermissionDenied));
    assert_eq!(editor.create_group("mine").await.unwrap_err().code(), Some(Code::PermissionDenied));
    assert_eq!(editor.list_groups().await.unwrap().len(), 1);
    kernel.stop().await;
}
