//! The attempt log, daily history, replay and resend of a webhook's deliveries.

use hookwire_client::AdminClient;
use hookwire_tests::{FakeReceiver, TestKernel};
use serde_json::json;
use std::time::Duration;

/// Waits until the webhook's recent attempts number `count` (attempt records are written in batches).
async fn attempts_settle(admin: &AdminClient, webhook_id: &str, count: usize) -> Vec<hookwire_client::proto::Attempt> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let attempts = admin.recent_attempts(webhook_id, None).await.unwrap();
            if attempts.len() >= count {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} attempts were not recorded within 10 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_logged_counted_per_day_and_failed_ones_can_be_replayed() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let webhook_id = fixture
        .webhook(json!({"event": "job", "url": format!("{}/jobs", receiver.base_url), "auth": {"username": "u", "password": "p"}}))
        .await;
    let device = kernel.device(&fixture.device_token).await;

    receiver.respond(500, "down");
    for index in 0..3 {
        device.publish("job", format!("failing {index}")).await.unwrap();
    }
    receiver.wait_for(3, Duration::from_secs(10)).await;
    attempts_settle(&fixture.admin, &webhook_id, 3).await;
    receiver.respond(200, "ok");
    for index in 0..2 {
        device.publish("job", format!("working {index}")).await.unwrap();
    }
    let attempts = attempts_settle(&fixture.admin, &webhook_id, 5).await;

    // The last successes and errors, newest first, each with what a user needs to act.
    assert!(attempts.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
    let errors: Vec<_> = attempts.iter().filter(|attempt| !attempt.error_class.is_empty()).collect();
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|attempt| attempt.error_class == "http_5xx" && attempt.response_status == 500));
    assert!(errors[0].error_message.contains("error status 500"), "{:?}", errors[0]);
    assert_eq!(errors[0].delivery_status, "failed");
    assert!(errors[0].request_url.ends_with("/jobs") && errors[0].request_method == "POST");
    // What was sent and what came back, as the attempt log keeps them.
    assert_eq!(
        errors[0].request_headers.get("content-type").map(String::as_str),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        errors[0].request_headers.get("authorization").map(String::as_str),
        Some("***"),
        "credentials are masked"
    );
    assert!(String::from_utf8_lossy(&errors[0].request_body).starts_with("event=job&data=failing"));
    assert_eq!(errors[0].response_body, b"down");
    assert!(errors[0].response_headers.contains_key("content-length"));
    let successes: Vec<_> = attempts.iter().filter(|attempt| attempt.error_class.is_empty()).collect();
    assert_eq!(successes.len(), 2);
    assert_eq!(successes[0].delivery_status, "succeeded");

    // Today's counts.
    let history = fixture.admin.history(&webhook_id, 0).await.unwrap();
    assert_eq!(history.len(), 31, "today and the 30 days before");
    let today = history.last().unwrap();
    assert_eq!((today.succeeded, today.failed, today.skipped, today.dropped), (2, 3, 0, 0));
    assert!(history[..30].iter().all(|day| day.succeeded + day.failed == 0));

    // Replaying the failed ones delivers them again (the receiver now answers 200) with their delivery ids.
    let replayed = fixture.admin.replay(&webhook_id, "1h", "failed").await.unwrap();
    assert_eq!(replayed, 3);
    let requests = receiver.wait_for(8, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 8);
    let attempts = attempts_settle(&fixture.admin, &webhook_id, 8).await;
    let replays: Vec<_> = attempts.iter().filter(|attempt| attempt.attempt == 2).collect();
    assert_eq!(replays.len(), 3, "each replay is the delivery's second attempt");
    assert!(replays.iter().all(|replay| errors.iter().any(|error| error.delivery_id == replay.delivery_id)));
    let today = fixture.admin.history(&webhook_id, 1).await.unwrap().pop().unwrap();
    assert_eq!((today.succeeded, today.failed), (5, 0), "the replayed deliveries succeeded");
    assert_eq!(fixture.admin.replay(&webhook_id, "1h", "failed").await.unwrap(), 0, "nothing failed any more");

    // Every attempt, a page at a time.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = fixture.admin.attempt_page(&webhook_id, None, 3, token.as_deref()).await.unwrap();
        seen.extend(page.attempts.iter().map(|attempt| attempt.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = Some(page.next_page_token);
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.windows(2).all(|pair| pair[0] > pair[1]));

    // One attempt resent by id.
    assert_eq!(fixture.admin.resend_attempt(seen[0]).await.unwrap(), 1);
    assert_eq!(receiver.wait_for(9, Duration::from_secs(10)).await.len(), 9);

    // Errors name the field.
    let error = fixture.admin.replay(&webhook_id, "yesterday", "failed").await.unwrap_err();
    assert!(error.to_string().starts_with("since:"), "{error}");
    let error = fixture.admin.replay(&webhook_id, "1h", "broken").await.unwrap_err();
    assert!(error.to_string().starts_with("status:"), "{error}");
    assert_eq!(fixture.admin.resend_attempt(999_999).await.unwrap_err().code(), Some(tonic::Code::NotFound));
    kernel.stop().await;
}
