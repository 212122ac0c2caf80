//! Policies shared by several kernels on one PostgreSQL database (issue 14 point 5, docs/cluster.md): the rate
//! quota (`x-minIntervalMs`) holds across kernels, and a host put to sleep by one kernel sleeps on all.
//!
//! One kernel runs in this process, the others are real `hookwired` processes on the same database. Run only with
//! `HOOKWIRE_TEST_POSTGRES` (SQLite serves one kernel); skipped, and said so, otherwise.

use crate::cluster::{first_kernel_on_postgres, hookwired, kernel_process};
use hookwire_client::DeviceClient;
use hookwire_tests::{FakeReceiver, Reply};
use serde_json::json;
use sqlx::Row as _;
use std::time::{Duration, Instant};

/// The lease of the test kernels, seconds (nothing here waits for it).
const LEASE_SECS: u64 = 5;
/// How far below the quota's interval two requests may arrive: the kernels send in the slots the database gave
/// them, each on its own clock and scheduler.
const JITTER: Duration = Duration::from_millis(75);

/// Publishes `count` events named `job` through `device`; the event ids.
async fn publish(device: &DeviceClient, count: usize) -> Vec<String> {
    let mut event_ids = Vec::new();
    for index in 0..count {
        event_ids.push(device.publish("job", index.to_string()).await.unwrap().event_id);
    }
    event_ids
}

#[tokio::test]
async fn the_rate_quota_holds_across_kernels_for_queued_and_dropped_events() {
    let Some(first) = first_kernel_on_postgres(LEASE_SECS).await else { return };
    let Some(binary) = hookwired() else {
        eprintln!("skipped: no hookwired binary beside the tests (set HOOKWIRE_TEST_HOOKWIRED)");
        return first.stop().await;
    };
    let (queued, dropped) = (FakeReceiver::start().await, FakeReceiver::start().await);
    let fixture = first.fixture().await;
    let interval = Duration::from_millis(300);
    fixture
        .webhook(
            json!({"event": "job", "url": queued.base_url, "body": "{{{PARTICLE_EVENT_ID}}}", "x-minIntervalMs": 300}),
        )
        .await;
    let drop_interval = Duration::from_millis(2000);
    fixture
        .webhook(json!({"event": "job", "url": dropped.base_url, "x-minIntervalMs": 2000, "x-quotaOverflow": "drop"}))
        .await;
    // Three kernels: this one and two processes, started after the webhooks exist so that they load them at start.
    let database = &first.settings.database;
    let (second, third) =
        tokio::join!(kernel_process(&binary, database, LEASE_SECS), kernel_process(&binary, database, LEASE_SECS));
    let on_first = first.device(&fixture.device_token).await;
    let on_second = DeviceClient::connect(&second.endpoint, &fixture.device_token).await.unwrap();
    let on_third = DeviceClient::connect(&third.endpoint, &fixture.device_token).await.unwrap();

    let started = Instant::now();
    let published = tokio::join!(publish(&on_first, 4), publish(&on_second, 4), publish(&on_third, 4));
    let burst = started.elapsed();
    assert_eq!(published.0.len() + published.1.len() + published.2.len(), 12);

    let requests = queued.wait_for(12, Duration::from_secs(20)).await;
    assert_eq!(requests.len(), 12, "every queued event is sent in its turn");
    let mut arrivals: Vec<Instant> = requests.iter().map(|request| request.received_at).collect();
    arrivals.sort();
    let gaps: Vec<Duration> = arrivals.windows(2).map(|pair| pair[1] - pair[0]).collect();
    let closest = gaps.iter().min().copied().unwrap_or_default();
    eprintln!("arrival gaps with x-minIntervalMs 300 on three kernels: {gaps:?}");
    assert!(
        closest + JITTER >= interval,
        "requests {closest:?} apart with x-minIntervalMs 300 on three kernels: {gaps:?}"
    );

    // Over a burst shorter than the drop webhook's interval, the quota allows one request in all.
    let allowed = 1 + (burst.as_millis() / drop_interval.as_millis()) as usize;
    let num_sent = dropped.requests().len();
    eprintln!("drop webhook: {num_sent} sent in a {burst:?} burst");
    assert!(
        (1..=allowed).contains(&num_sent),
        "{num_sent} requests of the drop webhook in a {burst:?} burst; the quota allows {allowed}"
    );
    first.stop().await;
}

/// The error class of the attempts of `event_id`, once it has one (5 s at most).
async fn attempt_class(pool: &sqlx::AnyPool, event_id: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let row = sqlx::query("SELECT error_class FROM attempts WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(pool)
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get("error_class");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no attempt recorded for {event_id} within 5 s");
}

#[tokio::test]
async fn a_host_put_to_sleep_by_one_kernel_sleeps_on_the_others() {
    let Some(first) = first_kernel_on_postgres(LEASE_SECS).await else { return };
    let Some(binary) = hookwired() else {
        eprintln!("skipped: no hookwired binary beside the tests (set HOOKWIRE_TEST_HOOKWIRED)");
        return first.stop().await;
    };
    let receiver = FakeReceiver::start().await;
    receiver.reply_with(Reply { status: 503, ..Reply::default() });
    let fixture = first.fixture().await;
    fixture.webhook(json!({"event": "job", "url": receiver.base_url})).await;
    let second = kernel_process(&binary, &first.settings.database, LEASE_SECS).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&first.settings.database).await.unwrap();

    // Ten failures in its window put the host to sleep on the first kernel.
    let on_first = first.device(&fixture.device_token).await;
    publish(&on_first, 10).await;
    assert_eq!(receiver.wait_for(10, Duration::from_secs(10)).await.len(), 10);
    // Recorded after the breaker saw them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sqlx::query("SELECT COUNT(*) AS n FROM attempts").fetch_one(&pool).await.unwrap().get::<i64, _>("n") < 10 {
        assert!(Instant::now() < deadline, "the ten attempts were not recorded within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event_id = publish(&on_first, 1).await.remove(0);
    assert_eq!(attempt_class(&pool, &event_id).await.as_deref(), Some("SLEEPING"), "asleep on the first kernel");

    // The second kernel, which never failed on it, refuses to send to it (a few events, fewer failures than
    // would put it to sleep on its own).
    let on_second = DeviceClient::connect(&second.endpoint, &fixture.device_token).await.unwrap();
    let mut slept = false;
    for _ in 0..5 {
        let event_id = publish(&on_second, 1).await.remove(0);
        if attempt_class(&pool, &event_id).await.as_deref() == Some("SLEEPING") {
            slept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(slept, "the second kernel kept sending to a host the first one put to sleep");
    let num_requests = receiver.requests().len();
    let event_id = publish(&on_second, 1).await.remove(0);
    assert_eq!(attempt_class(&pool, &event_id).await.as_deref(), Some("SLEEPING"));
    assert_eq!(receiver.requests().len(), num_requests, "nothing sent to the sleeping host");
    pool.close().await;
    first.stop().await;
}
