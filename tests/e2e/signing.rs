//! Signed requests (Standard Webhooks): a webhook with `x-signing` signs every request, and a receiver using the
//! official `standardwebhooks` library verifies it, through rotations and redeliveries.

use hookwire_tests::{FakeReceiver, RecordedRequest, Reply, TestKernel};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Verifies a request as a receiver would, with the official library.
fn verify(secret: &str, request: &RecordedRequest) -> Result<(), standardwebhooks::WebhookError> {
    standardwebhooks::Webhook::new(secret)?.verify(&request.body, &request.headers)
}

fn num_signatures(request: &RecordedRequest) -> usize {
    request.header("webhook-signature").expect("a webhook-signature header").split(' ').count()
}

/// Waits for the `count`th request, panicking when it does not come within 10 s.
async fn request_number(receiver: &FakeReceiver, count: usize) -> RecordedRequest {
    let requests = receiver.wait_for(count, Duration::from_secs(10)).await;
    requests.into_iter().nth(count - 1).unwrap_or_else(|| panic!("no request number {count} within 10 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_verifies_with_the_official_standard_webhooks_library() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    let definition = json!({
        "event": "temp",
        "url": receiver.base_url,
        "json": {"t": "{{{PARTICLE_EVENT_VALUE}}}"},
        "x-signing": true,
    });
    let created = admin.create_webhook(fixture.group_id.clone(), definition.to_string()).await.unwrap();
    let secret = created.signing_secret.clone();
    assert!(secret.starts_with("whsec_") && secret.len() == "whsec_".len() + 44, "{secret}");

    // The secret is shown once: never again by get or list, and never part of the definition (export).
    let fetched = admin.get_webhook(created.id.clone()).await.unwrap();
    assert_eq!(fetched.signing_secret, "");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&fetched.definition_json).unwrap(), definition);
    let listed = admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap();
    assert!(
        listed.iter().all(|webhook| webhook.signing_secret.is_empty() && !webhook.definition_json.contains(&secret))
    );

    let ack = kernel.device(&fixture.device_token).await.publish("temp", "21.5").await.unwrap();
    assert_eq!(ack.num_deliveries, 1);
    let request = receiver.first_request().await;
    verify(&secret, &request).expect("the official library verifies the request");
    assert!(request.header("webhook-id").unwrap().starts_with("dlv_"), "the delivery id: {:?}", request.headers);
    let timestamp: i64 = request.header("webhook-timestamp").unwrap().parse().unwrap();
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
    assert!((now - timestamp).abs() <= 5, "sent at {timestamp}, now {now}");
    let signature = request.header("webhook-signature").unwrap();
    assert!(signature.starts_with("v1,") && num_signatures(&request) == 1, "{signature}");

    // Another secret, or a changed body, does not verify.
    let other = admin.create_webhook(fixture.group_id.clone(), definition.to_string()).await.unwrap();
    assert!(verify(&other.signing_secret, &request).is_err());
    let mut tampered = request.clone();
    tampered.body = bytes::Bytes::from_static(br#"{"t":"99"}"#);
    assert!(verify(&secret, &tampered).is_err());
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_without_x_signing_send_no_signature_headers() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let definition = json!({"event": "a", "url": receiver.base_url}).to_string();
    let created = fixture.admin.create_webhook(fixture.group_id.clone(), definition).await.unwrap();
    assert_eq!(created.signing_secret, "");
    kernel.device(&fixture.device_token).await.publish("a", "x").await.unwrap();
    let request = receiver.first_request().await;
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(request.header(name).is_none(), "{name}: {:?}", request.headers);
    }
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_keeps_signing_beside_the_new_one_until_its_grace_period_ends() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    let definition = json!({"event": "r", "url": receiver.base_url, "x-signing": true}).to_string();
    let created = admin.create_webhook(fixture.group_id.clone(), definition).await.unwrap();
    let first_secret = created.signing_secret;
    let device = kernel.device(&fixture.device_token).await;

    // Rotation with the default grace: both secrets sign, and a receiver holding either verifies.
    let rotated = admin.rotate_webhook_secret(created.id.clone(), None).await.unwrap();
    let second_secret = rotated.signing_secret;
    assert!(second_secret.starts_with("whsec_") && second_secret != first_secret);
    assert_eq!(rotated.id, created.id);
    device.publish("r", "1").await.unwrap();
    let request = request_number(&receiver, 1).await;
    assert_eq!(num_signatures(&request), 2, "{:?}", request.header("webhook-signature"));
    verify(&first_secret, &request).expect("the old secret verifies during the grace period");
    verify(&second_secret, &request).expect("the new secret verifies");

    // A grace of 0 retires every old secret at once (a leaked secret).
    let third_secret = admin.rotate_webhook_secret(created.id.clone(), Some(0)).await.unwrap().signing_secret;
    device.publish("r", "2").await.unwrap();
    let request = request_number(&receiver, 2).await;
    assert_eq!(num_signatures(&request), 1);
    verify(&third_secret, &request).expect("the newest secret verifies");
    assert!(verify(&second_secret, &request).is_err() && verify(&first_secret, &request).is_err());
    assert_eq!(admin.get_webhook(created.id.clone()).await.unwrap().signing_secret, "");

    // Errors name the field at fault.
    let error = admin.rotate_webhook_secret(created.id.clone(), Some(7 * 24 * 3600 + 1)).await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::InvalidArgument));
    assert!(error.to_string().contains("grace_seconds"), "{error}");
    let unsigned = fixture.webhook(json!({"event": "u", "url": receiver.base_url})).await;
    let error = admin.rotate_webhook_secret(unsigned, None).await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::InvalidArgument));
    assert!(error.to_string().starts_with("id:"), "{error}");
    let missing = admin.rotate_webhook_secret(format!("whk_{}", "0".repeat(32)), None).await.unwrap_err();
    assert_eq!(missing.code(), Some(tonic::Code::NotFound));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_signing_on_by_update_shows_a_secret_once_and_turning_it_off_stops_signing() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let admin = &fixture.admin;
    let id = fixture.webhook(json!({"event": "u", "url": receiver.base_url})).await;
    let device = kernel.device(&fixture.device_token).await;

    let signing = json!({"event": "u", "url": receiver.base_url, "x-signing": true});
    let secret = admin.update_webhook(id.clone(), signing.to_string()).await.unwrap().signing_secret;
    assert!(secret.starts_with("whsec_"), "turning signing on makes a secret: {secret:?}");
    let mut renamed = signing.clone();
    renamed["name"] = json!("renamed");
    let kept = admin.update_webhook(id.clone(), renamed.to_string()).await.unwrap();
    assert_eq!(kept.signing_secret, "", "a webhook that already signs keeps its secret, not shown again");
    device.publish("u", "1").await.unwrap();
    verify(&secret, &request_number(&receiver, 1).await).expect("the secret made by the first update verifies");

    admin.update_webhook(id.clone(), json!({"event": "u", "url": receiver.base_url}).to_string()).await.unwrap();
    device.publish("u", "2").await.unwrap();
    assert!(request_number(&receiver, 2).await.header("webhook-signature").is_none());

    // Turned on again, it gets a new secret: the old one was deleted with signing.
    let again = admin.update_webhook(id, signing.to_string()).await.unwrap().signing_secret;
    assert!(again.starts_with("whsec_") && again != secret);
    device.publish("u", "3").await.unwrap();
    let request = request_number(&receiver, 3).await;
    verify(&again, &request).unwrap();
    assert!(verify(&secret, &request).is_err());
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_sent_again_after_a_restart_keeps_its_webhook_id_and_verifies() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let definition = json!({"event": "slow", "url": receiver.base_url, "x-signing": true}).to_string();
    let secret = fixture.admin.create_webhook(fixture.group_id.clone(), definition).await.unwrap().signing_secret;

    // The first attempt gets no answer before the kernel stops, so the delivery stays pending and is sent again
    // after the restart.
    receiver.reply_with(Reply { delay: Duration::from_secs(30), ..Reply::default() });
    kernel.device(&fixture.device_token).await.publish("slow", "x").await.unwrap();
    let first = receiver.first_request().await;
    receiver.reply_with(Reply::default());
    let kernel = kernel.restart().await;
    let again = request_number(&receiver, 2).await;

    assert_eq!(again.header("webhook-id"), first.header("webhook-id"), "one delivery, one webhook-id");
    verify(&secret, &first).unwrap();
    verify(&secret, &again).expect("the secret survives the restart");
    kernel.stop().await;
}
