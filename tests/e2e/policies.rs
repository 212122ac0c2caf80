//! A webhook's delivery policies: the retry schedule (`x-retry`, `Retry-After`, `410 Gone`), the failure limit
//! (`x-failureLimit`, persistent, with enable and disable), the rate quota (`x-minIntervalMs`, queued or dropped,
//! never lost silently), and deliveries refused by a sleeping host (tried again, then skipped). Delays are
//! milliseconds here, set in the webhooks and in the test kernel's settings.

use crate::support::{MARKER, events_before_marker, sync};
use hookwire_client::proto::Event;
use hookwire_client::{AdminClient, DeviceSession};
use hookwire_tests::{FakeReceiver, Fixture, TestKernel};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// One scripted answer: a status and headers.
type Answer = (u16, &'static [(&'static str, &'static str)]);

/// A destination that answers from a script: the `i`-th request gets the `i`-th answer, and the last answer
/// repeats. It records when each request arrived.
struct ScriptedReceiver {
    base_url: String,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedReceiver {
    async fn start(script: &'static [Answer]) -> ScriptedReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let recorded = arrivals.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_: hyper::Request<hyper::body::Incoming>| {
                        let index = {
                            let mut arrivals = recorded.lock().unwrap();
                            arrivals.push(Instant::now());
                            arrivals.len() - 1
                        };
                        let (status, headers) = script[index.min(script.len() - 1)];
                        let mut response = hyper::Response::builder().status(status);
                        for (name, value) in headers {
                            response = response.header(*name, *value);
                        }
                        std::future::ready(response.body(Full::new(bytes::Bytes::new())))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ScriptedReceiver { base_url, arrivals, task }
    }

    /// Waits until `count` requests arrived (10 s at most); returns when each arrived. That no more come is
    /// proved by the delivery's final attempt record ([`attempts`]), after which nothing is sent for it.
    async fn wait_for(&self, count: usize) -> Vec<Instant> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.arrivals.lock().unwrap().len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.arrivals()
    }

    /// When each request that arrived so far arrived.
    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

/// A kernel whose hosts never sleep (so that failing destinations stay reachable), with `configure` applied.
async fn kernel_with(configure: impl FnOnce(&mut hookwire_kernel::settings::Settings)) -> TestKernel {
    TestKernel::spawn_with(|settings| {
        settings.sleep_enabled = false;
        configure(settings);
    })
    .await
}

/// One recorded attempt, read from the journal's table.
#[derive(Debug, Clone, PartialEq)]
struct AttemptRow {
    delivery_id: String,
    attempt: i64,
    error_class: Option<String>,
    /// 0 pending, 1 succeeded, 2 failed, 3 skipped, 4 dropped.
    delivery_status: i64,
}

const PENDING: i64 = 0;
const SUCCEEDED: i64 = 1;
const FAILED: i64 = 2;
const SKIPPED: i64 = 3;
const DROPPED: i64 = 4;

/// Waits until the webhook has `count` recorded attempts (they are written in batches) and returns them in order.
async fn attempts(kernel: &TestKernel, webhook_id: &str, count: usize) -> Vec<AttemptRow> {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&kernel.settings.database).await.expect("open the test database");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = sqlx::query(
            "SELECT delivery_id, attempt, error_class, delivery_status FROM attempts WHERE webhook_id = $1 ORDER BY id",
        )
        .bind(webhook_id.to_owned())
        .fetch_all(&pool)
        .await
        .expect("read attempts");
        let rows: Vec<AttemptRow> = rows
            .iter()
            .map(|row| AttemptRow {
                delivery_id: row.get("delivery_id"),
                attempt: row.get("attempt"),
                error_class: row.get("error_class"),
                delivery_status: row.get("delivery_status"),
            })
            .collect();
        if rows.len() >= count || Instant::now() > deadline {
            pool.close().await;
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The webhook's deliveries as (status, attempts made), oldest first: what a failing test prints.
async fn deliveries(kernel: &TestKernel, webhook_id: &str) -> Vec<(i64, i64)> {
    use sqlx::Row as _;
    let pool = sqlx::AnyPool::connect(&kernel.settings.database).await.expect("open the test database");
    let rows = sqlx::query("SELECT status, num_attempts FROM deliveries WHERE webhook_id = $1 ORDER BY id")
        .bind(webhook_id.to_owned())
        .fetch_all(&pool)
        .await
        .expect("read deliveries");
    pool.close().await;
    rows.iter().map(|row| (row.get("status"), row.get("num_attempts"))).collect()
}

/// A device session that receives `hook-sent`, the device's own `hook-response` and `hook-error` events, and the
/// marker of [`events_before_marker`].
async fn hook_session(kernel: &TestKernel, fixture: &Fixture) -> DeviceSession {
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe("hook-sent/").await.unwrap();
    session.subscribe(format!("{}/hook-", fixture.device_id)).await.unwrap();
    session.subscribe(MARKER).await.unwrap();
    sync(&mut session).await;
    session
}

/// The names of `events` without the device prefix (`hook-sent/job`).
fn kinds(events: &[Event], fixture: &Fixture) -> Vec<String> {
    let prefix = format!("{}/", fixture.device_id);
    events.iter().map(|event| event.name.strip_prefix(&prefix).unwrap_or(&event.name).to_owned()).collect()
}

/// Waits for the next event of an admin stream (10 s at most).
async fn next_admin_event(stream: &mut hookwire_client::EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("stream not ended")
}

async fn state(admin: &AdminClient, webhook_id: &str) -> (bool, String, u32) {
    let webhook = admin.get_webhook(webhook_id).await.unwrap();
    (webhook.auto_disabled, webhook.disabled_reason, webhook.consecutive_failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_delivery_keeps_its_id_and_stays_pending_until_the_destination_recovers() {
    let kernel = kernel_with(|_| {}).await;
    let receiver = ScriptedReceiver::start(&[(503, &[]), (503, &[]), (200, &[])]).await;
    let fixture = kernel.fixture().await;
    let retry = json!({"attempts": 4, "backoff": [10, 20], "jitter": false});
    let webhook_id = fixture.webhook(json!({"event": "job", "url": receiver.base_url, "x-retry": retry})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    session.publish("job", "1").await.unwrap();
    assert_eq!(receiver.wait_for(3).await.len(), 3, "two failures, then the success");
    let rows = attempts(&kernel, &webhook_id, 3).await;
    assert_eq!(rows.iter().map(|row| row.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(rows.iter().all(|row| row.delivery_id == rows[0].delivery_id), "one delivery: {rows:?}");
    assert_eq!(rows.iter().map(|row| row.delivery_status).collect::<Vec<_>>(), [PENDING, PENDING, SUCCEEDED]);
    assert_eq!(rows[0].error_class.as_deref(), Some("http_5xx"));
    assert_eq!(receiver.arrivals().len(), 3, "the delivery succeeded: no fourth attempt");
    let events = events_before_marker(&mut session).await;
    assert_eq!(kinds(&events, &fixture), ["hook-sent/job", "hook-sent/job", "hook-sent/job"], "no hook-error");
    assert_eq!(state(&fixture.admin, &webhook_id).await, (false, String::new(), 0), "a success counts no failure");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_attempt_limit_and_only_retryable_failures_are_retried() {
    let kernel = kernel_with(|_| {}).await;
    let failing = ScriptedReceiver::start(&[(500, &[])]).await;
    let not_found = ScriptedReceiver::start(&[(404, &[])]).await;
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let fixture = kernel.fixture().await;
    let retry = json!({"attempts": 3, "base": 10, "cap": 20});
    let failing_id = fixture.webhook(json!({"event": "a", "url": failing.base_url, "x-retry": retry})).await;
    let not_found_id = fixture.webhook(json!({"event": "b", "url": not_found.base_url, "x-retry": retry})).await;
    let refused_url = format!("http://127.0.0.1:{refused_port}/");
    let refused_id = fixture.webhook(json!({"event": "c", "url": refused_url, "x-retry": retry})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    session.publish("a", "1").await.unwrap();
    let rows = attempts(&kernel, &failing_id, 3).await;
    assert_eq!(rows.iter().map(|row| row.delivery_status).collect::<Vec<_>>(), [PENDING, PENDING, FAILED]);
    assert_eq!(failing.arrivals().len(), 3, "3 attempts in all, the first included");
    let events = events_before_marker(&mut session).await;
    let names = kinds(&events, &fixture);
    assert_eq!(names.iter().filter(|name| *name == "hook-error/a/0").count(), 1, "one hook-error, at the end");
    assert_eq!(names.last().map(String::as_str), Some("hook-error/a/0"), "{names:?}");

    session.publish("b", "1").await.unwrap();
    assert_eq!(attempts(&kernel, &not_found_id, 1).await[0].delivery_status, FAILED);
    assert_eq!(not_found.arrivals().len(), 1, "a 404 is not retried");

    session.publish("c", "1").await.unwrap();
    let rows = attempts(&kernel, &refused_id, 3).await;
    assert_eq!(rows.len(), 3, "a refused connection is retried: {rows:?}");
    assert!(rows.iter().all(|row| row.error_class.as_deref() == Some("ECONNREFUSED")));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_x_retry_a_failed_delivery_has_one_attempt_as_on_particle() {
    let kernel = kernel_with(|_| {}).await;
    let receiver = ScriptedReceiver::start(&[(503, &[]), (200, &[])]).await;
    let fixture = kernel.fixture().await;
    let webhook_id = fixture.webhook(json!({"event": "job", "url": receiver.base_url})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    session.publish("job", "1").await.unwrap();
    assert_eq!(attempts(&kernel, &webhook_id, 1).await[0].delivery_status, FAILED);
    assert_eq!(receiver.arrivals().len(), 1);
    let events = events_before_marker(&mut session).await;
    assert_eq!(kinds(&events, &fixture), ["hook-sent/job", "hook-error/job/0"]);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_replaces_the_schedule_and_is_cut_to_the_configured_maximum() {
    let kernel = kernel_with(|settings| settings.max_retry_after_ms = 300).await;
    let receiver = ScriptedReceiver::start(&[(429, &[("retry-after", "3600")]), (200, &[])]).await;
    let fixture = kernel.fixture().await;
    let retry = json!({"attempts": 2, "backoff": [10]});
    fixture.webhook(json!({"event": "job", "url": receiver.base_url, "x-retry": retry})).await;

    kernel.device(&fixture.device_token).await.publish("job", "1").await.unwrap();
    // Within the 10 s the test waits: the hour asked for is cut to max_retry_after_ms (the actor test
    // `retry_after_replaces_the_schedule_up_to_the_maximum` checks the exact delay on paused time).
    let arrivals = receiver.wait_for(2).await;
    assert_eq!(arrivals.len(), 2, "an hour cut to max_retry_after_ms");
    let gap = arrivals[1] - arrivals[0];
    assert!(gap >= Duration::from_millis(290), "Retry-After, not the 10 ms schedule: {gap:?}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_gone_disables_a_retrying_webhook_and_tells_the_group() {
    let kernel = kernel_with(|_| {}).await;
    let receiver = ScriptedReceiver::start(&[(410, &[])]).await;
    let fixture = kernel.fixture().await;
    let retry = json!({"attempts": 5, "backoff": [10]});
    let webhook_id = fixture.webhook(json!({"event": "job", "url": receiver.base_url, "x-retry": retry})).await;
    let mut stream = fixture.admin.subscribe(fixture.group_id.clone(), "webhook-disabled/").await.unwrap();
    let device = kernel.device(&fixture.device_token).await;

    device.publish("job", "1").await.unwrap();
    let event = next_admin_event(&mut stream).await;
    assert_eq!(event.name, format!("webhook-disabled/{webhook_id}"));
    assert_eq!(event.data, "410 Gone from 127.0.0.1");
    assert_eq!(attempts(&kernel, &webhook_id, 1).await[0].delivery_status, FAILED, "a 410 is not retried");
    assert_eq!(receiver.arrivals().len(), 1);
    assert_eq!(state(&fixture.admin, &webhook_id).await, (true, "410 Gone from 127.0.0.1".to_owned(), 1));
    assert_eq!(device.publish("job", "2").await.unwrap().num_deliveries, 0, "a disabled webhook does not fire");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_limit_counts_deliveries_survives_restarts_and_enable_resets_it() {
    let kernel = kernel_with(|_| {}).await;
    let failing = FakeReceiver::start().await;
    failing.respond(500, "down");
    let fixture = kernel.fixture().await;
    let retry = json!({"attempts": 2, "backoff": [10]});
    let definition = json!({"event": "job", "url": failing.base_url, "x-failureLimit": 3, "x-retry": retry});
    let webhook_id = fixture.webhook(definition).await;
    let device = kernel.device(&fixture.device_token).await;

    // Two deliveries fail (two attempts each): two failures, not four.
    for data in ["1", "2"] {
        let before = failing.requests().len();
        device.publish("job", data).await.unwrap();
        failing.wait_for(before + 2, Duration::from_secs(10)).await;
        attempts(&kernel, &webhook_id, before + 2).await;
    }
    assert_eq!(state(&fixture.admin, &webhook_id).await, (false, String::new(), 2));

    // The count survives a restart; the third failure disables the webhook and the group hears it.
    let kernel = kernel.restart().await;
    let admin = kernel.admin().await;
    assert_eq!(state(&admin, &webhook_id).await, (false, String::new(), 2), "the count survives a restart");
    let mut stream = admin.subscribe(fixture.group_id.clone(), "webhook-disabled/").await.unwrap();
    let device = kernel.device(&fixture.device_token).await;
    device.publish("job", "3").await.unwrap();
    let event = next_admin_event(&mut stream).await;
    assert_eq!((event.name, event.data), (format!("webhook-disabled/{webhook_id}"), "3 consecutive failures".into()));
    assert_eq!(state(&admin, &webhook_id).await, (true, "3 consecutive failures".to_owned(), 3));
    assert_eq!(device.publish("job", "4").await.unwrap().num_deliveries, 0);
    attempts(&kernel, &webhook_id, 6).await;

    // Disabled persistently: still after a restart.
    let kernel = kernel.restart().await;
    let admin = kernel.admin().await;
    assert_eq!(state(&admin, &webhook_id).await, (true, "3 consecutive failures".to_owned(), 3));
    let device = kernel.device(&fixture.device_token).await;
    assert_eq!(device.publish("job", "5").await.unwrap().num_deliveries, 0, "disabled after a restart");

    // Enabling resets the count; the webhook fires again, and a success keeps the count at zero.
    failing.respond(200, "");
    let enabled = admin.enable_webhook(&webhook_id).await.unwrap();
    assert_eq!((enabled.auto_disabled, enabled.disabled_reason.as_str(), enabled.consecutive_failures), (false, "", 0));
    assert_eq!(device.publish("job", "6").await.unwrap().num_deliveries, 1);
    let rows = attempts(&kernel, &webhook_id, 7).await;
    assert_eq!(rows.last().unwrap().delivery_status, SUCCEEDED);
    assert_eq!(state(&admin, &webhook_id).await, (false, String::new(), 0));
    let kernel = kernel.restart().await;
    assert_eq!(state(&kernel.admin().await, &webhook_id).await, (false, String::new(), 0), "enabled for good");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disables_and_enables_a_webhook_without_touching_its_definition() {
    let kernel = kernel_with(|_| {}).await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let definition = json!({"event": "job", "url": receiver.base_url});
    let webhook_id = fixture.webhook(definition.clone()).await;
    let device = kernel.device(&fixture.device_token).await;

    let disabled = fixture.admin.disable_webhook(&webhook_id).await.unwrap();
    assert_eq!((disabled.auto_disabled, disabled.disabled_reason.as_str()), (true, "disabled by an admin"));
    let stored: serde_json::Value = serde_json::from_str(&disabled.definition_json).unwrap();
    assert_eq!(stored, definition, "the definition is unchanged");
    assert_eq!(device.publish("job", "1").await.unwrap().num_deliveries, 0);
    let listed = fixture.admin.list_webhooks(fixture.group_id.clone(), None).await.unwrap();
    assert!(listed[0].auto_disabled, "listing shows the state too");

    // Editing the definition keeps the state.
    let edited = json!({"event": "job", "url": format!("{}/edited", receiver.base_url)});
    fixture.admin.update_webhook(&webhook_id, edited.to_string()).await.unwrap();
    assert_eq!(device.publish("job", "2").await.unwrap().num_deliveries, 0, "still disabled after an edit");

    fixture.admin.enable_webhook(&webhook_id).await.unwrap();
    assert_eq!(device.publish("job", "3").await.unwrap().num_deliveries, 1);
    assert_eq!(receiver.first_request().await.path, "/edited");

    let missing = fixture.admin.enable_webhook("whk_0123456789abcdef0123456789abcdef").await.unwrap_err();
    assert_eq!(missing.code(), Some(tonic::Code::NotFound));
    let invalid = fixture.admin.disable_webhook("grp_0123456789abcdef0123456789abcdef").await.unwrap_err();
    assert_eq!(invalid.code(), Some(tonic::Code::InvalidArgument));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_quota_spaces_requests_and_queues_the_events_over_it() {
    let kernel = kernel_with(|_| {}).await;
    let receiver = ScriptedReceiver::start(&[(200, &[])]).await;
    let fixture = kernel.fixture().await;
    let webhook_id = fixture.webhook(json!({"event": "tick", "url": receiver.base_url, "x-minIntervalMs": 150})).await;
    let device = kernel.device(&fixture.device_token).await;

    for index in 0..4 {
        device.publish("tick", index.to_string()).await.unwrap();
    }
    let arrivals = receiver.wait_for(4).await;
    assert_eq!(arrivals.len(), 4, "every event is delivered in its turn");
    for pair in arrivals.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(140), "at least 150 ms apart: {:?}", pair[1] - pair[0]);
    }
    let rows = attempts(&kernel, &webhook_id, 4).await;
    assert!(rows.iter().all(|row| row.delivery_status == SUCCEEDED), "{rows:?}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_the_quota_are_dropped_with_a_hook_error_when_asked_or_when_the_queue_is_full() {
    let kernel = kernel_with(|settings| settings.quota_queue_limit = 1).await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let dropping =
        json!({"event": "drop", "url": receiver.base_url, "x-minIntervalMs": 60_000, "x-quotaOverflow": "drop"});
    let dropping_id = fixture.webhook(dropping).await;
    let queueing_id =
        fixture.webhook(json!({"event": "queue", "url": receiver.base_url, "x-minIntervalMs": 60_000})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    for data in ["1", "2", "3"] {
        session.publish("drop", data).await.unwrap();
    }
    // The drops are reported at once, the request that went out when it is answered: in any order.
    let rows = attempts(&kernel, &dropping_id, 3).await;
    let mut statuses: Vec<i64> = rows.iter().map(|row| row.delivery_status).collect();
    statuses.sort();
    assert_eq!(statuses, [SUCCEEDED, DROPPED, DROPPED]);
    let events = events_before_marker(&mut session).await;
    let mut names = kinds(&events, &fixture);
    names.sort();
    assert_eq!(names, ["hook-error/drop/0", "hook-error/drop/0", "hook-sent/drop"]);
    let errors: Vec<&str> =
        events.iter().filter(|event| event.name.contains("hook-error")).map(|event| event.data.as_str()).collect();
    let message =
        "over quota: at most one request every 60000 ms (x-minIntervalMs); event dropped (x-quotaOverflow: drop)";
    assert_eq!(errors, [message, message]);
    let dropped = rows.iter().filter(|row| row.delivery_status == DROPPED);
    assert!(dropped.clone().all(|row| row.error_class.as_deref() == Some("QUOTA") && row.attempt == 1), "{rows:?}");

    // Queued: the first is sent, the second waits its turn, the third finds the queue (limit 1) full.
    for data in ["1", "2", "3"] {
        let ack = session.publish("queue", data).await.unwrap();
        assert_eq!(ack.num_deliveries, 1, "the event matched the queueing webhook");
    }
    let rows = attempts(&kernel, &queueing_id, 2).await;
    let mut statuses: Vec<i64> = rows.iter().map(|row| row.delivery_status).collect();
    statuses.sort();
    // Once seen in CI on PostgreSQL (no row at all within 10 s, never reproduced here): say where the deliveries were.
    assert_eq!(
        statuses,
        [SUCCEEDED, DROPPED],
        "deliveries (status, attempts): {:?}",
        deliveries(&kernel, &queueing_id).await
    );
    let events = events_before_marker(&mut session).await;
    let mut names = kinds(&events, &fixture);
    names.sort();
    assert_eq!(names, ["hook-error/queue/0", "hook-sent/queue"]);
    let error = events.iter().find(|event| event.name.contains("hook-error")).unwrap();
    assert_eq!(error.data, "over quota: 1 requests already wait their turn (one every 60000 ms); event dropped");
    assert_eq!(receiver.requests().len(), 2, "one request per webhook; the queued event waits, still pending");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_refused_by_a_sleeping_host_is_tried_again_then_skipped() {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.sleep_min_outcomes = 2;
        settings.sleep_retry_delays_ms = vec![20, 40];
    })
    .await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(500, "down");
    let fixture = kernel.fixture().await;
    let webhook_id = fixture.webhook(json!({"event": "job", "url": receiver.base_url, "x-failureLimit": 5})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    // Two errors out of two outcomes: the host sleeps.
    for data in ["1", "2"] {
        session.publish("job", data).await.unwrap();
    }
    receiver.wait_for(2, Duration::from_secs(10)).await;
    attempts(&kernel, &webhook_id, 2).await;
    events_before_marker(&mut session).await;

    session.publish("job", "3").await.unwrap();
    let rows = attempts(&kernel, &webhook_id, 5).await;
    let events = events_before_marker(&mut session).await;
    assert_eq!(kinds(&events, &fixture), ["hook-error/job/0"; 3], "the first attempt and two more");
    assert!(events.iter().all(|event| event.data == "Sleeping, too many errors, please wait and try again"));
    assert_eq!(receiver.requests().len(), 2, "nothing is sent while the host sleeps");
    let slept: Vec<&AttemptRow> = rows.iter().filter(|row| row.error_class.as_deref() == Some("SLEEPING")).collect();
    assert_eq!(slept.len(), 3, "{rows:?}");
    assert!(slept.iter().all(|row| row.delivery_id == slept[0].delivery_id), "one delivery: {slept:?}");
    assert_eq!(slept.iter().map(|row| row.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(slept.iter().map(|row| row.delivery_status).collect::<Vec<_>>(), [PENDING, PENDING, SKIPPED]);
    assert_eq!(state(&fixture.admin, &webhook_id).await.2, 2, "a skipped delivery is not a failure of the webhook");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_fields_are_validated_naming_the_field_and_exported_as_written() {
    let kernel = kernel_with(|_| {}).await;
    let fixture = kernel.fixture().await;
    let create = |definition: serde_json::Value| {
        let admin = fixture.admin.clone();
        let group_id = fixture.group_id.clone();
        async move { admin.create_webhook(group_id, definition.to_string()).await }
    };

    let cases = [
        (json!({"attempts": 0, "backoff": [10]}), "x-retry.attempts: must be from 1 to 20"),
        (json!({"attempts": 3}), "x-retry.backoff: missing"),
        (json!({"attempts": 3, "base": 100, "cap": 10}), "x-retry.cap: must be at least base"),
        (json!({"attempts": 3, "backoff": [10], "jitter": "yes"}), "x-retry.jitter: must be true or false"),
        (json!({"attempts": 3, "backoff": [10], "every": 1}), "x-retry.every: unknown field"),
    ];
    for (retry, message) in cases {
        let error = create(json!({"event": "a", "url": "https://example.com/", "x-retry": retry})).await.unwrap_err();
        assert_eq!(error.code(), Some(tonic::Code::InvalidArgument));
        assert!(error.to_string().contains(message), "{error} should say {message}");
    }
    let error =
        create(json!({"event": "a", "url": "https://example.com/", "x-minIntervalMs": 86_400_001})).await.unwrap_err();
    assert!(error.to_string().contains("x-minIntervalMs"), "{error}");

    let definition = json!({
        "event": "a",
        "url": "https://example.com/",
        "x-minIntervalMs": 1000,
        "x-quotaOverflow": "drop",
        "x-failureLimit": 5,
        "x-retry": {"attempts": 5, "base": 1000, "cap": 60_000, "jitter": false},
    });
    let created = create(definition.clone()).await.unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&created.definition_json).unwrap(), definition);
    assert_eq!((created.auto_disabled, created.consecutive_failures), (false, 0));
    kernel.stop().await;
}
