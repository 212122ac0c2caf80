//! The core path: a device's event becomes a delivered webhook request.

use crate::support::{event_named, is_iso8601_ms, sync};
use hookwire_client::{AdminClient, DeviceClient};
use hookwire_tests::{FakeReceiver, ROOT_TOKEN, TestKernel};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_request_is_particles_form_post_byte_for_byte() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "demo", "url": format!("{}/", receiver.base_url)})).await;

    let ack = kernel.device(&fixture.device_token).await.publish("demo", "my data & more").await.unwrap();
    assert!(ack.event_id.starts_with("evt_"), "{ack:?}");
    assert_eq!(ack.num_deliveries, 1);

    let request = receiver.first_request().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/");
    assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(request.header("user-agent").unwrap().starts_with("hookwire/"));
    let form = request.form();
    let names: Vec<&str> = form.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["event", "data", "published_at", "coreid"]);
    let published_at = &form[2].1;
    assert!(is_iso8601_ms(published_at), "{published_at}");
    let expected = format!(
        "event=demo&data=my+data+%26+more&published_at={}&coreid={}",
        published_at.replace(':', "%3A"),
        fixture.device_id
    );
    assert_eq!(request.text(), expected);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_match_a_case_sensitive_prefix_of_the_event_name() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "temp", "url": format!("{}/t", receiver.base_url)})).await;
    let device = kernel.device(&fixture.device_token).await;

    for name in ["high_temp", "Temp", "tem"] {
        assert_eq!(device.publish(name, "1").await.unwrap().num_deliveries, 0, "{name} must not match");
    }
    assert_eq!(device.publish("temperature/basement", "21").await.unwrap().num_deliveries, 1);
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // A last matching event, sent after the first was received: had anything else been delivered, it would have
    // been sent before this one.
    assert_eq!(device.publish("temp", "marker").await.unwrap().num_deliveries, 1);
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    let events: Vec<_> = requests.iter().map(|request| request.form()[0].clone()).collect();
    assert_eq!(
        events,
        [("event".into(), "temperature/basement".into()), ("event".into(), "temp".into())],
        "only the matching events are delivered"
    );
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_filter_limits_a_webhook_to_one_device_and_disabled_webhooks_never_fire() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let (other_id, other_token) = fixture.another_device().await;
    fixture
        .webhook(json!({"event": "a", "url": format!("{}/only-other", receiver.base_url), "deviceID": other_id}))
        .await;
    fixture.webhook(json!({"event": "a", "url": format!("{}/disabled", receiver.base_url), "disabled": true})).await;

    assert_eq!(kernel.device(&fixture.device_token).await.publish("a", "x").await.unwrap().num_deliveries, 0);
    assert_eq!(kernel.device(&other_token).await.publish("a", "x").await.unwrap().num_deliveries, 1);
    let request = receiver.first_request().await;
    assert_eq!(request.path, "/only-other");
    assert!(request.form().contains(&("coreid".into(), other_id)));
    // A last event, sent after the first was received: had anything else been delivered, it would have been sent
    // before this one.
    assert_eq!(kernel.device(&other_token).await.publish("a", "marker").await.unwrap().num_deliveries, 1);
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    let paths: Vec<&str> = requests.iter().map(|request| request.path.as_str()).collect();
    assert_eq!(paths, ["/only-other", "/only-other"]);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_puts_hook_sent_on_the_group_event_stream() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "demo", "url": receiver.base_url})).await;
    let mut stream = fixture.admin.subscribe(fixture.group_id.clone(), "").await.unwrap();

    kernel.device(&fixture.device_token).await.publish("demo", "x").await.unwrap();
    let mut names = Vec::new();
    while !names.iter().any(|name| name == "hook-sent/demo") {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(event.group_id, fixture.group_id);
        names.push(event.name);
    }
    assert_eq!(names.first().map(String::as_str), Some("demo"), "the device event comes first: {names:?}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_acks_each_publish_with_its_event_id_and_seq() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "n", "url": receiver.base_url})).await;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();

    let first = session.publish("n", "1").await.unwrap();
    let second = session.publish("n", "2").await.unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_ne!(first.event_id, second.event_id);
    assert!(first.event_id.starts_with("evt_") && first.event_id < second.event_id, "ids are time-ordered");
    assert_eq!(first.num_deliveries, 1);
    assert_eq!(receiver.wait_for(2, Duration::from_secs(10)).await.len(), 2);

    let refused = session.publish("", "x").await.unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::InvalidArgument));
    assert!(refused.to_string().contains("name"), "{refused}");
    let too_big = session.publish("n", "x".repeat(1025)).await.unwrap_err();
    assert_eq!(too_big.code(), Some(tonic::Code::ResourceExhausted));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_token_cannot_act_as_another_device_nor_see_another_group() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let ours = kernel.fixture().await;
    let theirs = kernel.fixture().await;
    ours.webhook(json!({"event": "x", "url": receiver.base_url})).await;

    // The device id comes from the token: whatever the data says, coreid is the publisher's.
    let data = json!({"coreid": theirs.device_id, "PARTICLE_DEVICE_ID": theirs.device_id}).to_string();
    kernel.device(&ours.device_token).await.publish("x", data).await.unwrap();
    assert!(receiver.first_request().await.form().contains(&("coreid".into(), ours.device_id.clone())));

    // A device of another group sees none of our events.
    let mut their_session = kernel.device(&theirs.device_token).await.open_session().await.unwrap();
    their_session.subscribe("").await.unwrap();
    sync(&mut their_session).await;
    kernel.device(&ours.device_token).await.publish("x", "secret").await.unwrap();
    kernel.device(&theirs.device_token).await.publish("marker", "").await.unwrap();
    let event = event_named(&mut their_session, "marker").await;
    assert_eq!(event.device_id, theirs.device_id);
    let seen = sync(&mut their_session).await;
    assert!(seen.iter().all(|event| event.group_id == theirs.group_id), "{seen:?}");

    // Bad tokens are refused; an admin token is not a device token and the reverse.
    let error = kernel.device("hwd_not-a-token").await.publish("x", "").await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::Unauthenticated));
    let error = kernel.device(ROOT_TOKEN).await.publish("x", "").await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::Unauthenticated));
    let as_admin = AdminClient::connect(&kernel.endpoint, &ours.device_token).await.unwrap();
    assert_eq!(as_admin.list_groups().await.unwrap_err().code(), Some(tonic::Code::Unauthenticated));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_receive_the_group_events_they_subscribed_to() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let (_, other_token) = fixture.another_device().await;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe("weather/").await.unwrap();
    sync(&mut session).await;

    let other = kernel.device(&other_token).await;
    other.publish("traffic/x", "no").await.unwrap();
    other.publish("weather/today", "sunny").await.unwrap();
    let event = event_named(&mut session, "weather/today").await;
    assert_eq!(event.data, "sunny");
    assert!(is_iso8601_ms(&event.published_at));
    let later = sync(&mut session).await;
    assert!(later.iter().all(|event| event.name.starts_with("weather/")), "{later:?}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_groups_devices_and_webhooks() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let webhook_id = fixture.webhook(json!({"event": "after", "url": receiver.base_url, "name": "kept"})).await;

    let kernel = kernel.restart().await;
    let admin = kernel.admin().await;
    let groups = admin.list_groups().await.unwrap();
    assert_eq!(groups.iter().map(|group| group.id.as_str()).collect::<Vec<_>>(), [fixture.group_id.as_str()]);
    let devices = admin.list_devices(fixture.group_id.clone()).await.unwrap();
    assert_eq!(devices[0].id, fixture.device_id);
    let webhook = admin.get_webhook(webhook_id).await.unwrap();
    assert!(webhook.definition_json.contains("\"kept\""));

    let device = DeviceClient::connect(&kernel.endpoint, &fixture.device_token).await.unwrap();
    assert_eq!(device.publish("after", "1").await.unwrap().num_deliveries, 1, "the token and the webhook survived");
    receiver.first_request().await;
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_errors_carry_precise_codes_and_name_the_field() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;

    let error = admin
        .create_webhook(fixture.group_id.clone(), r#"{"event":"a","url":"http://x/","colour":"red"}"#)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::InvalidArgument));
    assert!(error.to_string().contains("colour"), "{error}");
    let error = admin.create_webhook(fixture.group_id.clone(), r#"{"event":"a","url":"ftp://x/"}"#).await.unwrap_err();
    assert!(error.to_string().starts_with("url:"), "{error}");
    let error = admin.create_webhook("grp_nope", r#"{"event":"a","url":"http://x/"}"#).await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::InvalidArgument));
    assert!(error.to_string().contains("group_id"), "{error}");
    let missing = format!("grp_{}", "0".repeat(32));
    let error = admin.create_device(missing.clone(), "d").await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::NotFound));
    let error = admin.get_webhook(format!("whk_{}", "0".repeat(32))).await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::NotFound));
    let error = admin.create_group("").await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::InvalidArgument));
    let (other_group_device, _) = kernel.fixture().await.another_device().await;
    let error = admin
        .create_webhook(
            fixture.group_id.clone(),
            json!({"event": "a", "url": "http://x/", "deviceID": other_group_device}).to_string(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("deviceID:"), "{error}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_can_be_listed_by_device_updated_and_deleted() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    let for_device =
        fixture.webhook(json!({"event": "a", "url": receiver.base_url, "deviceID": fixture.device_id})).await;
    let for_all = fixture.webhook(json!({"event": "b", "url": receiver.base_url})).await;

    let all = admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap();
    assert_eq!(all.iter().map(|webhook| webhook.id.clone()).collect::<Vec<_>>(), [for_device.clone(), for_all.clone()]);
    let mine = admin.list_webhooks(fixture.group_id.clone(), Some(fixture.device_id.as_str())).await.unwrap();
    assert_eq!(mine.iter().map(|webhook| webhook.id.as_str()).collect::<Vec<_>>(), [for_device.as_str()]);

    let updated = admin
        .update_webhook(for_all.clone(), json!({"event": "c", "url": receiver.base_url}).to_string())
        .await
        .unwrap();
    assert_eq!(updated.id, for_all);
    let device = kernel.device(&fixture.device_token).await;
    assert_eq!(device.publish("b", "").await.unwrap().num_deliveries, 0, "the old prefix no longer matches");
    assert_eq!(device.publish("c", "").await.unwrap().num_deliveries, 1);

    admin.delete_webhook(for_all.clone()).await.unwrap();
    assert_eq!(device.publish("c", "").await.unwrap().num_deliveries, 0);
    assert_eq!(admin.get_webhook(for_all).await.unwrap_err().code(), Some(tonic::Code::NotFound));

    admin.delete_device(fixture.device_id.clone()).await.unwrap();
    assert_eq!(
        admin.get_webhook(for_device).await.unwrap_err().code(),
        Some(tonic::Code::NotFound),
        "a device's own webhooks go with it"
    );
    assert_eq!(device.publish("a", "").await.unwrap_err().code(), Some(tonic::Code::Unauthenticated));
    kernel.stop().await;
}
