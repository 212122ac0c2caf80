//! Credentials in logs and answers (issue 13, item 6): userinfo in a webhook URL is refused with a hint to use
//! `auth` (and a URL that renders userinfo is never sent), and the values of headers and query parameters whose
//! names suggest a credential are masked in the attempt log and the test answer, while the destination still gets
//! them in full.

use hookwire_client::proto::Attempt;
use hookwire_tests::{FakeReceiver, Fixture, TestKernel};
use serde_json::json;
use std::time::Duration;
use tonic::Code;

/// Waits until the webhook has `count` recent attempts (they are written in batches).
async fn attempts_settle(fixture: &Fixture, webhook_id: &str, count: usize) -> Vec<Attempt> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let attempts = fixture.admin.recent_attempts(webhook_id, None).await.unwrap();
            if attempts.len() >= count {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} attempts were not recorded within 10 s"))
}

/// A healthy group's delivery goes through.
async fn healthy_delivery_flows(kernel: &TestKernel, healthy: &Fixture, receiver: &FakeReceiver) {
    let before = receiver.requests().len();
    kernel.device(&healthy.device_token).await.publish("tick", "x").await.unwrap();
    assert_eq!(receiver.wait_for(before + 1, Duration::from_secs(10)).await.len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_a_webhook_url_are_refused_with_a_hint_to_use_auth() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let port = receiver.base_url.rsplit(':').next().unwrap().to_owned();
    for url in [format!("http://user:pw@127.0.0.1:{port}/"), format!("http://{{{{u}}}}:{{{{p}}}}@127.0.0.1:{port}/")] {
        let definition = json!({"event": "tick", "url": url}).to_string();
        let error = fixture.admin.create_webhook(fixture.group_id.clone(), definition.clone()).await.unwrap_err();
        assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
        assert!(error.to_string().starts_with("url: ") && error.to_string().contains("`auth`"), "{error}");
        let error = fixture.admin.batch_create_webhooks(fixture.group_id.clone(), vec![definition.clone()]).await;
        assert_eq!(error.unwrap_err().code(), Some(Code::InvalidArgument));
    }
    let webhook_id = fixture.webhook(json!({"event": "tick", "url": receiver.base_url})).await;
    let definition = json!({"event": "tick", "url": format!("http://user:pw@127.0.0.1:{port}/")}).to_string();
    let error = fixture.admin.update_webhook(webhook_id, definition).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
    healthy_delivery_flows(&kernel, &fixture, &receiver).await;
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_renders_credentials_is_never_sent_and_never_shows_them() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let authority = receiver.base_url.strip_prefix("http://").unwrap();
    let webhook_id =
        fixture.webhook(json!({"event": "creds", "url": format!("http://{{{{{{c}}}}}}{authority}/")})).await;
    let healthy = kernel.fixture().await;
    healthy.webhook(json!({"event": "tick", "url": format!("{}/healthy", receiver.base_url)})).await;

    let device = kernel.device(&fixture.device_token).await;
    device.publish("creds", json!({"c": "user:s3cret-pw@"}).to_string()).await.unwrap();
    let attempts = attempts_settle(&fixture, &webhook_id, 1).await;
    assert_eq!(attempts[0].error_class, "RENDER", "{:?}", attempts[0]);
    assert!(attempts[0].error_message.contains("`auth`"), "{:?}", attempts[0]);
    assert!(!format!("{attempts:?}").contains("s3cret"), "{attempts:?}");
    healthy_delivery_flows(&kernel, &healthy, &receiver).await;
    assert!(receiver.requests().iter().all(|request| request.path == "/healthy"), "nothing sent for the render error");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_query_credentials_are_masked_in_the_attempt_log_and_the_test_answer_but_sent_in_full() {
    let kernel = TestKernel::spawn_with(|settings| settings.mask_names = vec!["Tenant".into()]).await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let secrets = ["auth-v4lue", "access-v4lue", "pass-v4lue", "tenant-v4lue", "tok-v4lue", "key-v4lue"];
    let webhook_id = fixture
        .webhook(json!({
            "event": "masked",
            "url": format!("{}/hook?token=tok-v4lue&api_key=key-v4lue&plain=visible", receiver.base_url),
            "headers": {"X-Auth": "auth-v4lue", "X-Access": "access-v4lue", "X-Pass": "pass-v4lue",
                        "X-Tenant": "tenant-v4lue", "X-Trace": "trace-visible"},
        }))
        .await;

    let tested = fixture.admin.test_webhook(webhook_id.clone(), None).await.unwrap();
    assert!(tested.succeeded, "{tested:?}");
    let attempts =
        vec![tested.attempt.clone().expect("the attempt"), attempts_settle(&fixture, &webhook_id, 1).await[0].clone()];
    for attempt in &attempts {
        for header in ["x-auth", "x-access", "x-pass", "x-tenant"] {
            assert_eq!(attempt.request_headers.get(header).map(String::as_str), Some("***"), "{header}: {attempt:?}");
        }
        assert_eq!(attempt.request_headers.get("x-trace").map(String::as_str), Some("trace-visible"));
        assert!(attempt.request_url.ends_with("/hook?token=***&api_key=***&plain=visible"), "{}", attempt.request_url);
        let shown = format!("{attempt:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} shows in {shown}");
        }
    }

    // The destination got every value in full.
    let request = receiver.first_request().await;
    for (header, value) in [("x-auth", "auth-v4lue"), ("x-access", "access-v4lue"), ("x-pass", "pass-v4lue")] {
        assert_eq!(request.header(header), Some(value));
    }
    assert_eq!(request.query.as_deref(), Some("token=tok-v4lue&api_key=key-v4lue&plain=visible"));
    kernel.stop().await;
}
