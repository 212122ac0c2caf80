//! Hostile templates (issue 13, item 1): a webhook body or a destination's answer that would render gigabytes or
//! iterate for minutes. Rendering has a budget of output bytes (`max_render_bytes`) and of steps
//! (`max_render_steps`), checked while rendering: over it the delivery fails with class `RENDER`, final, and a
//! message naming the budget; a `responseTemplate` over it gives a `hook-error`. The server survives, a restart
//! does not render the delivery again, and a healthy group's deliveries keep flowing meanwhile.
//!
//! Every case runs with the default budgets, so that the same tests run against a server without them: there the
//! bounded cases send megabytes or pin the only actor thread, and the tests fail.

use crate::support::{event_named, sync};
use hookwire_client::AdminClient;
use hookwire_client::proto::Attempt;
use hookwire_tests::{FakeReceiver, Fixture, TestKernel};
use serde_json::json;
use std::time::Duration;

/// The body of the issue: three nested sections, each printing the whole event data.
const THREE_NESTED: &str = "{{#a}}{{#a}}{{#a}}{{{PARTICLE_EVENT_VALUE}}}{{/a}}{{/a}}{{/a}}";
/// Two nested sections printing the data.
const TWO_NESTED: &str = "{{#a}}{{#a}}{{{PARTICLE_EVENT_VALUE}}}{{/a}}{{/a}}";
/// Four nested empty sections: no output at all, 505^4 iterations.
const FOUR_NESTED_EMPTY: &str = "{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}{{/a}}";

/// `{"a":[1,1,...]}` with `count` ones (505 ones are 1,022 bytes, under Particle's 1 KiB).
fn ones(count: usize) -> String {
    format!("{{\"a\":[{}]}}", vec!["1"; count].join(","))
}

/// A second group whose webhook has nothing to do with the attack: its deliveries must keep flowing.
struct Healthy {
    fixture: Fixture,
    receiver: FakeReceiver,
    num_sent: usize,
}

impl Healthy {
    async fn start(kernel: &TestKernel) -> Healthy {
        let receiver = FakeReceiver::start().await;
        let fixture = kernel.fixture().await;
        fixture
            .webhook(json!({"event": "healthy", "url": receiver.base_url, "body": "{{{PARTICLE_EVENT_VALUE}}}"}))
            .await;
        Healthy { fixture, receiver, num_sent: 0 }
    }

    /// Publishes one event and waits until the receiver has it.
    async fn delivers(&mut self, kernel: &TestKernel, what: &str) {
        let device = kernel.device(&self.fixture.device_token).await;
        device.publish("healthy", what).await.expect("the healthy device publishes");
        self.num_sent += 1;
        let requests = self.receiver.wait_for(self.num_sent, Duration::from_secs(10)).await;
        assert_eq!(requests.len(), self.num_sent, "the healthy group's delivery `{what}` did not arrive within 10 s");
        assert_eq!(requests.last().map(|request| request.text()), Some(what.to_owned()));
    }
}

/// Waits until the webhook has `count` attempts recorded (10 s at most), newest first.
async fn attempts(admin: &AdminClient, webhook_id: &str, count: usize) -> Vec<Attempt> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let attempts = admin.recent_attempts(webhook_id, None).await.expect("list attempts");
            if attempts.len() >= count {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} attempts of {webhook_id} were not recorded within 10 s"))
}

/// Asserts that an attempt failed over the render budget, final, without a request.
fn assert_failed_over_budget(attempt: &Attempt, field: &str, setting: &str) {
    let seen = (&attempt.error_class, &attempt.error_message, &attempt.delivery_status, attempt.request_body.len());
    assert_eq!(attempt.error_class, "RENDER", "class, message, status and body size: {seen:?}");
    let prefix = format!("RENDER: {field}: ");
    assert!(attempt.error_message.starts_with(&prefix), "{}", attempt.error_message);
    assert!(attempt.error_message.contains(setting), "the message names the budget: {}", attempt.error_message);
    assert_eq!(attempt.delivery_status, "failed", "final, never retried");
    assert_eq!(attempt.response_status, 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_output_budget_fails_with_class_render_is_never_sent_and_never_retried() {
    let kernel = TestKernel::spawn().await;
    let mut healthy = Healthy::start(&kernel).await;
    let victim = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    // Two nested sections over 120 ones print the 247-byte data 14,400 times: 3.6 MB, over the 1 MiB budget.
    // Retries are asked for: a render failure must not use them.
    let webhook_id = fixture
        .webhook(json!({"event": "attack", "url": victim.base_url, "body": TWO_NESTED,
            "x-retry": {"attempts": 3, "backoff": [10, 10]}}))
        .await;
    let device = kernel.device(&fixture.device_token).await;
    assert_eq!(device.publish("attack", ones(120)).await.unwrap().num_deliveries, 1);

    let attempt = attempts(&fixture.admin, &webhook_id, 1).await.remove(0);
    assert_failed_over_budget(&attempt, "body", "(max_render_bytes)");
    assert_eq!(
        attempt.error_message,
        "RENDER: body: output over the render budget of 1048576 bytes (max_render_bytes)"
    );
    healthy.delivers(&kernel, "after the attack").await;
    // The retries' delays have long passed: still one attempt, and the victim never got a request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(attempts(&fixture.admin, &webhook_id, 1).await.len(), 1, "never retried");
    assert!(victim.requests().is_empty(), "nothing over the budget was sent");

    // A json field and a header are held to the same budget (one budget for the whole request).
    let json_id = fixture.webhook(json!({"event": "jattack", "url": victim.base_url, "json": {"x": TWO_NESTED}})).await;
    let header_id =
        fixture.webhook(json!({"event": "hattack", "url": victim.base_url, "headers": {"X-Big": TWO_NESTED}})).await;
    device.publish("jattack", ones(120)).await.unwrap();
    device.publish("hattack", ones(120)).await.unwrap();
    assert_failed_over_budget(&attempts(&fixture.admin, &json_id, 1).await[0], "json", "(max_render_bytes)");
    assert_failed_over_budget(&attempts(&fixture.admin, &header_id, 1).await[0], "headers.X-Big", "(max_render_bytes)");
    healthy.delivers(&kernel, "after the json and header attacks").await;
    assert!(victim.requests().is_empty());
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_13_attacks_do_not_crash_the_server_pin_its_thread_or_come_back_after_a_restart() {
    // One actor thread for everything: a rendering that pinned it would stop every other delivery.
    let kernel = TestKernel::spawn_with(|settings| settings.actor_threads = 1).await;
    let mut healthy = Healthy::start(&kernel).await;
    healthy.delivers(&kernel, "before").await;
    let victim = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let spinning_id =
        fixture.webhook(json!({"event": "spin", "url": victim.base_url, "body": FOUR_NESTED_EMPTY})).await;
    let crashing_id = fixture.webhook(json!({"event": "crash", "url": victim.base_url, "body": THREE_NESTED})).await;
    let device = kernel.device(&fixture.device_token).await;
    let data = ones(505);
    assert!(data.len() < 1024, "the attack fits in Particle's 1 KiB of data");

    // Four nested empty sections: 505^4 iterations without a byte of output, stopped by the work budget.
    device.publish("spin", data.clone()).await.unwrap();
    healthy.delivers(&kernel, "while the sections spin").await;
    let attempt = attempts(&fixture.admin, &spinning_id, 1).await.remove(0);
    assert_failed_over_budget(&attempt, "body", "(max_render_steps)");

    // The body of the issue: 2 GB of output, stopped at the output budget.
    device.publish("crash", data.clone()).await.unwrap();
    healthy.delivers(&kernel, "during the attack").await;
    let attempt = attempts(&fixture.admin, &crashing_id, 1).await.remove(0);
    assert_failed_over_budget(&attempt, "body", "(max_render_bytes)");
    let delivery_id = attempt.delivery_id.clone();

    // A restart takes over unfinished deliveries: the failed ones are final, nothing renders again.
    let kernel = kernel.restart().await;
    let admin = kernel.admin().await;
    healthy.delivers(&kernel, "after the restart").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = attempts(&admin, &crashing_id, 1).await;
    assert_eq!(after.len(), 1, "not attempted again after the restart: {after:?}");
    assert_eq!(after[0].delivery_id, delivery_id);
    assert_eq!(attempts(&admin, &spinning_id, 1).await.len(), 1);
    assert!(victim.requests().is_empty());

    // The server still renders the attack harmlessly each time it is published.
    let device = kernel.device(&fixture.device_token).await;
    device.publish("crash", data).await.unwrap();
    healthy.delivers(&kernel, "after a second attack").await;
    assert_failed_over_budget(&attempts(&admin, &crashing_id, 2).await[0], "body", "(max_render_bytes)");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_template_over_the_budget_gives_a_hook_error_that_names_it() {
    let kernel = TestKernel::spawn_with(|settings| settings.actor_threads = 1).await;
    let mut healthy = Healthy::start(&kernel).await;
    // The destination answers 150 ones and a 100-byte string: through two nested sections, 2.25 MB.
    let hostile = FakeReceiver::start().await;
    let answer = format!("{{\"a\":[{}],\"v\":\"{}\"}}", vec!["1"; 150].join(","), "v".repeat(100));
    hostile.respond(200, answer);
    let fixture = kernel.fixture().await;
    fixture
        .webhook(json!({"event": "grow", "url": hostile.base_url,
            "responseTemplate": "{{#a}}{{#a}}{{{v}}}{{/a}}{{/a}}"}))
        .await;
    fixture
        .webhook(json!({"event": "spin", "url": hostile.base_url, "responseTemplate": FOUR_NESTED_EMPTY,
            "errorResponseTopic": "spun/{{PARTICLE_EVENT_NAME}}"}))
        .await;
    let device = &fixture.device_id;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{device}/hook-")).await.unwrap();
    session.subscribe("spun/").await.unwrap();
    sync(&mut session).await;

    session.publish("grow", "1").await.unwrap();
    // Nothing of the answer comes out before the error: it was not rendered in part.
    let error = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = session.next_event().await.expect("session open").expect("session not ended");
            assert!(!event.name.contains("/hook-response/"), "a response over the budget came out: {}", event.name);
            if event.name == format!("{device}/hook-error/grow/0") {
                return event;
            }
        }
    })
    .await
    .expect("a hook-error within 10 s");
    assert_eq!(
        error.data,
        "RENDER: responseTemplate: output over the render budget of 1048576 bytes (max_render_bytes)"
    );
    healthy.delivers(&kernel, "after the growing answer").await;

    // 150^4 iterations without output, stopped by the work budget, reported on the webhook's error topic.
    session.publish("spin", "1").await.unwrap();
    let error = event_named(&mut session, "spun/spin/0").await;
    assert!(error.data.starts_with("RENDER: responseTemplate: work over the render budget of "), "{}", error.data);
    assert!(error.data.contains("(max_render_steps)"), "{}", error.data);
    healthy.delivers(&kernel, "after the spinning answer").await;
    kernel.stop().await;
}
