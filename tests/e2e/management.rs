//! Managing webhooks, devices and groups: paging and filters, batches that are all or nothing, the test delivery,
//! device updates and token rotation.

use hookwire_client::proto::{self, ListOrder};
use hookwire_client::{AdminClient, Error};
use hookwire_tests::{FakeReceiver, Reply, TestKernel};
use serde_json::json;
use std::time::Duration;
use tonic::Code;

/// The code and message of a refused call.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (Code, String) {
    match result.expect_err("the call must be refused") {
        Error::Status(status) => (status.code(), status.message().to_owned()),
        other => panic!("expected a status, got {other:?}"),
    }
}

fn names(webhooks: &[proto::Webhook]) -> Vec<&str> {
    webhooks.iter().map(|webhook| webhook.name.as_str()).collect()
}

async fn webhook_page(admin: &AdminClient, request: proto::ListWebhooksRequest) -> proto::ListWebhooksResponse {
    admin.list_webhooks_page(request).await.expect("list webhooks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_paged_ordered_and_filtered_by_name_url_metadata_and_device() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    // Seven webhooks created one by one (so that creation times differ in order), names out of alphabetical order.
    let specs = [
        ("Kitchen temperature", "https://a.example.com/t", json!({"room": "kitchen", "floor": 1})),
        ("garage door", "https://b.example.com/door", json!({"room": "garage"})),
        ("Salon TEMPERATURE", "https://a.example.com/s", json!({"room": "salon", "floor": 1})),
        ("attic fan", "https://c.example.com/fan", json!({})),
        ("bedroom temperature", "https://b.example.com/t", json!({"room": "bedroom", "floor": 2})),
        ("cellar pump", "https://c.example.com/pump", json!({"room": "cellar"})),
        ("entrance light", "https://a.example.com/light", json!({"room": "entrance", "floor": 1})),
    ];
    for (name, url, metadata) in &specs {
        fixture.webhook(json!({"event": "e", "url": url, "name": name, "x-metadata": metadata})).await;
    }
    let only_mine = fixture
        .webhook(json!({"event": "e", "url": "https://d.example.com/", "name": "device only", "deviceID": fixture.device_id}))
        .await;
    let group = |request: proto::ListWebhooksRequest| proto::ListWebhooksRequest {
        group_id: fixture.group_id.clone(),
        ..request
    };

    // Pages of 3, oldest first, with the total.
    let first = webhook_page(admin, group(proto::ListWebhooksRequest { limit: 3, ..Default::default() })).await;
    assert_eq!(first.total, 8);
    assert_eq!(names(&first.webhooks), ["Kitchen temperature", "garage door", "Salon TEMPERATURE"]);
    let third =
        webhook_page(admin, group(proto::ListWebhooksRequest { offset: 6, limit: 3, ..Default::default() })).await;
    assert_eq!(names(&third.webhooks), ["entrance light", "device only"]);
    assert_eq!(third.total, 8);
    let beyond =
        webhook_page(admin, group(proto::ListWebhooksRequest { offset: 20, limit: 3, ..Default::default() })).await;
    assert!(beyond.webhooks.is_empty());
    assert_eq!(beyond.total, 8);
    // The default page holds 50.
    assert_eq!(webhook_page(admin, group(Default::default())).await.webhooks.len(), 8);

    // By name, ignoring case; descending.
    let by_name = webhook_page(
        admin,
        group(proto::ListWebhooksRequest { order_by: ListOrder::Name as i32, limit: 4, ..Default::default() }),
    )
    .await;
    assert_eq!(names(&by_name.webhooks), ["attic fan", "bedroom temperature", "cellar pump", "device only"]);
    let newest =
        webhook_page(admin, group(proto::ListWebhooksRequest { descending: true, limit: 2, ..Default::default() }))
            .await;
    assert_eq!(names(&newest.webhooks), ["device only", "entrance light"]);

    // Filters: name ignoring case, URL as written, every metadata pair; the total counts what matches.
    let temperature = webhook_page(
        admin,
        group(proto::ListWebhooksRequest { name_contains: "temPERATURE".into(), ..Default::default() }),
    )
    .await;
    assert_eq!(names(&temperature.webhooks), ["Kitchen temperature", "Salon TEMPERATURE", "bedroom temperature"]);
    assert_eq!(temperature.total, 3);
    let on_a = webhook_page(
        admin,
        group(proto::ListWebhooksRequest { url_contains: "a.example.com".into(), limit: 2, ..Default::default() }),
    )
    .await;
    assert_eq!((names(&on_a.webhooks), on_a.total), (vec!["Kitchen temperature", "Salon TEMPERATURE"], 3));
    let first_floor = webhook_page(
        admin,
        group(proto::ListWebhooksRequest {
            metadata: [("floor".to_owned(), "1".to_owned())].into(),
            name_contains: "temperature".into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(names(&first_floor.webhooks), ["Kitchen temperature", "Salon TEMPERATURE"]);
    let salon = webhook_page(
        admin,
        group(proto::ListWebhooksRequest {
            metadata: [("room".to_owned(), "salon".to_owned()), ("floor".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(names(&salon.webhooks), ["Salon TEMPERATURE"]);
    assert_eq!(salon.webhooks[0].metadata.get("room").map(String::as_str), Some("salon"));
    assert_eq!(salon.webhooks[0].url, "https://a.example.com/s");
    assert_eq!(salon.webhooks[0].event, "e");
    let mine = webhook_page(
        admin,
        group(proto::ListWebhooksRequest { device_id: fixture.device_id.clone(), ..Default::default() }),
    )
    .await;
    assert_eq!((mine.webhooks.len(), mine.webhooks[0].id.as_str()), (1, only_mine.as_str()));

    // The SDK's list fetches every page.
    assert_eq!(admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap().len(), 8);

    // Bad paging is refused naming the field.
    let (code, message) =
        refusal(admin.list_webhooks_page(group(proto::ListWebhooksRequest { limit: 201, ..Default::default() })).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("limit: "), "{message}");
    let (code, message) = refusal(
        admin.list_webhooks_page(group(proto::ListWebhooksRequest { order_by: 7, ..Default::default() })).await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("order_by: "), "{message}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_groups_are_paged_and_renamed() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    for name in ["sensor-b", "Sensor-A", "pump", "sensor-c"] {
        admin.create_device(fixture.group_id.clone(), name).await.unwrap();
    }
    let request = |request: proto::ListDevicesRequest| proto::ListDevicesRequest {
        group_id: fixture.group_id.clone(),
        ..request
    };
    let page = admin
        .list_devices_page(request(proto::ListDevicesRequest { offset: 1, limit: 2, ..Default::default() }))
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(page.devices.iter().map(|device| device.name.as_str()).collect::<Vec<_>>(), ["sensor-b", "Sensor-A"]);
    let sensors = admin
        .list_devices_page(request(proto::ListDevicesRequest {
            name_contains: "SENSOR".into(),
            order_by: ListOrder::Name as i32,
            descending: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(sensors.total, 3);
    // Names ordered as the database compares them; "sensor-c" and "sensor-b" come first descending either way.
    assert_eq!(sensors.devices[0].name, "sensor-c");
    assert_eq!(sensors.devices[1].name, "sensor-b");
    let (code, message) = refusal(
        admin.list_devices_page(request(proto::ListDevicesRequest { limit: 1000, ..Default::default() })).await,
    );
    assert_eq!((code, message.starts_with("limit: ")), (Code::InvalidArgument, true), "{message}");
    assert_eq!(admin.list_devices(fixture.group_id.clone()).await.unwrap().len(), 5);

    // Groups: paged with a total, and renamed.
    admin.create_group("second").await.unwrap();
    let groups = admin.list_groups_page(proto::ListGroupsRequest { limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!((groups.groups.len(), groups.total), (1, 2));
    let renamed = admin.rename_group(fixture.group_id.clone(), "  greenhouse ").await.unwrap();
    assert_eq!(renamed.name, "greenhouse");
    assert_eq!(admin.get_group(fixture.group_id.clone()).await.unwrap().name, "greenhouse");
    let (code, message) = refusal(admin.rename_group(fixture.group_id.clone(), " ").await);
    assert_eq!((code, message.as_str()), (Code::InvalidArgument, "name: must not be empty"));
    let (code, _) = refusal(admin.rename_group("grp_00000000000000000000000000000000", "x").await);
    assert_eq!(code, Code::NotFound);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_webhooks_is_created_and_deleted_all_or_nothing() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    let definition = |index: usize| {
        json!({"event": format!("batch{index}"), "url": format!("{}/hook/{index}", receiver.base_url), "name": format!("hook {index}")})
            .to_string()
    };
    let mut definitions: Vec<String> = (0..5).map(definition).collect();
    definitions[3] = json!({"event": "batch3", "url": "{{{unclosed", "name": "broken"}).to_string();

    // A bad definition at index 3: refused by index and field, and none of the five is stored.
    let (code, message) = refusal(admin.batch_create_webhooks(fixture.group_id.clone(), definitions.clone()).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("webhooks[3].url: "), "{message}");
    assert!(admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap().is_empty(), "nothing was stored");
    definitions[3] = json!({"event": "batch3", "url": "https://example.com/", "bogus": 1}).to_string();
    let (_, message) = refusal(admin.batch_create_webhooks(fixture.group_id.clone(), definitions.clone()).await);
    assert!(message.starts_with("webhooks[3].bogus: "), "{message}");
    let (code, message) = refusal(admin.batch_create_webhooks(fixture.group_id.clone(), Vec::new()).await);
    assert_eq!((code, message.starts_with("webhooks: ")), (Code::InvalidArgument, true), "{message}");

    // All valid: all stored, in order, and they fire at once.
    definitions[3] = definition(3);
    let created = admin.batch_create_webhooks(fixture.group_id.clone(), definitions).await.unwrap();
    assert_eq!(names(&created), ["hook 0", "hook 1", "hook 2", "hook 3", "hook 4"]);
    assert_eq!(admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap().len(), 5);
    let device = kernel.device(&fixture.device_token).await;
    device.publish("batch3", "x").await.unwrap();
    assert_eq!(receiver.first_request().await.path, "/hook/3");

    // Deleting with one unknown id deletes none, and names it; duplicates are refused.
    let ids: Vec<String> = created.iter().map(|webhook| webhook.id.clone()).collect();
    let unknown = "whk_00000000000000000000000000000000".to_owned();
    let (code, message) = refusal(admin.batch_delete_webhooks(vec![ids[0].clone(), unknown.clone()]).await);
    assert_eq!(code, Code::NotFound);
    assert_eq!(message, format!("ids[1]: webhook {unknown} not found"));
    assert_eq!(admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap().len(), 5, "none deleted");
    let (code, message) = refusal(admin.batch_delete_webhooks(vec![ids[0].clone(), ids[0].clone()]).await);
    assert_eq!((code, message), (Code::InvalidArgument, format!("ids[1]: {} is already ids[0]", ids[0])));
    let (code, message) = refusal(admin.batch_delete_webhooks(vec!["nope".into()]).await);
    assert_eq!((code, message.starts_with("ids[0]: ")), (Code::InvalidArgument, true), "{message}");

    admin.batch_delete_webhooks(ids[..4].to_vec()).await.unwrap();
    let left = admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap();
    assert_eq!(names(&left), ["hook 4"]);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_a_webhook_delivers_a_test_event_as_api_and_reports_the_answer() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    // Limited to the fixture's device: the test reaches it all the same, as Particle's Test button does.
    let webhook_id = fixture
        .webhook(json!({"event": "temp", "url": format!("{}/in", receiver.base_url), "deviceID": fixture.device_id}))
        .await;

    receiver.reply_with(Reply {
        status: 200,
        body: "thanks".into(),
        headers: vec![("x-receiver".into(), "yes".into())],
        ..Reply::default()
    });
    let tested = admin.test_webhook(&webhook_id, None).await.unwrap();
    assert!(tested.succeeded, "{tested:?}");
    assert!(tested.event_id.starts_with("evt_"), "{}", tested.event_id);
    let attempt = tested.attempt.expect("the attempt");
    assert_eq!((attempt.response_status, attempt.error_class.as_str()), (200, ""));
    assert_eq!(attempt.response_body, b"thanks");
    assert_eq!(attempt.response_headers.get("x-receiver").map(String::as_str), Some("yes"));
    assert_eq!(attempt.delivery_status, "succeeded");
    assert_eq!(attempt.event_id, tested.event_id);
    let request = receiver.first_request().await;
    let form = request.form();
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    assert_eq!(field("event"), Some("temp"));
    assert_eq!(field("data"), Some("test-event"));
    assert_eq!(field("coreid"), Some("api"));

    // A destination answering 500: the test says so, with the class and the body, and the call still succeeds.
    receiver.respond(500, "broken");
    let tested = admin.test_webhook(&webhook_id, Some("21.5".into())).await.unwrap();
    assert!(!tested.succeeded);
    let attempt = tested.attempt.expect("the attempt");
    assert_eq!((attempt.response_status, attempt.error_class.as_str()), (500, "http_5xx"));
    assert_eq!(attempt.response_body, b"broken");
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(requests[1].form().contains(&("data".to_owned(), "21.5".to_owned())));
    // The test attempts are in the attempt log like any other.
    let logged = admin.recent_attempts(&webhook_id, None).await.unwrap();
    assert!(logged.iter().any(|logged| logged.id == attempt.id));

    let (code, message) = refusal(admin.test_webhook("whk_00000000000000000000000000000000", None).await);
    assert_eq!((code, message.as_str()), (Code::NotFound, "webhook whk_00000000000000000000000000000000 not found"));
    let (code, message) = refusal(admin.test_webhook(&webhook_id, Some("x".repeat(5000))).await);
    assert_eq!((code, message.starts_with("data: ")), (Code::InvalidArgument, true), "{message}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_a_device_changes_its_product_variables_and_rotating_its_token_refuses_the_old_one() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    fixture
        .webhook(json!({
            "event": "boot",
            "url": format!("{}/boot", receiver.base_url),
            "json": {"product": "{{PRODUCT_ID}}", "version": "{{PRODUCT_VERSION}}", "owner": "{{PRODUCT_USER_ID}}"}
        }))
        .await;
    let device = kernel.device(&fixture.device_token).await;
    device.publish("boot", "1").await.unwrap();
    let product_fields = |body: serde_json::Value| json!([body["product"], body["version"], body["owner"]]);
    assert_eq!(product_fields(receiver.first_request().await.json()), json!(["", "", ""]));

    let updated = admin
        .update_device(proto::UpdateDeviceRequest {
            id: fixture.device_id.clone(),
            product_id: Some("4711".into()),
            firmware_version: Some("3.1".into()),
            owner: Some("alice".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.product_id.as_str()), ("test device", "4711"));
    device.publish("boot", "2").await.unwrap();
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(product_fields(requests[1].json()), json!(["4711", "3.1", "alice"]));

    // Renaming keeps the other fields; an empty value clears one.
    let renamed = admin
        .update_device(proto::UpdateDeviceRequest {
            id: fixture.device_id.clone(),
            name: Some("boiler".into()),
            owner: Some(String::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.firmware_version.as_str(), renamed.owner.as_str()),
        ("boiler", "3.1", "")
    );
    assert_eq!(admin.get_device(fixture.device_id.clone()).await.unwrap(), renamed);
    let (code, message) = refusal(
        admin
            .update_device(proto::UpdateDeviceRequest {
                id: fixture.device_id.clone(),
                owner: Some("x".repeat(201)),
                ..Default::default()
            })
            .await,
    );
    assert_eq!((code, message.starts_with("owner: ")), (Code::InvalidArgument, true), "{message}");

    // A new token: the old one is refused at once, its open session ends, the new one works.
    let mut session = device.open_session().await.unwrap();
    let rotated = admin.rotate_device_token(fixture.device_id.clone()).await.unwrap();
    assert!(rotated.token.starts_with("hwd_") && rotated.token != fixture.device_token);
    assert_eq!(rotated.device.as_ref().map(|device| device.id.as_str()), Some(fixture.device_id.as_str()));
    let (code, _) = refusal(device.publish("boot", "3").await);
    assert_eq!(code, Code::Unauthenticated);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match session.next_message().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the open session of the old token ends");
    kernel.device(&rotated.token).await.publish("boot", "4").await.unwrap();
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let (code, _) = refusal(admin.rotate_device_token("dev_00000000000000000000000000000000").await);
    assert_eq!(code, Code::NotFound);
    kernel.stop().await;
}
