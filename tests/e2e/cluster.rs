//! Several kernels on one PostgreSQL database (issue 14, docs/cluster.md): every pending delivery has one owner
//! and only the owner sends it; a kernel started or restarted beside live ones sends none of theirs; a dead
//! kernel's deliveries are taken over after its lease, a stopped one's at once; the due time of a retry is stored,
//! so whoever sends it next honours the backoff (one kernel too).
//!
//! The kernels that crash or stop run as real `hookwired` processes (the binary cargo built beside this test, or
//! `HOOKWIRE_TEST_HOOKWIRED`); the others run in this process. Tests that need several kernels run only with
//! `HOOKWIRE_TEST_POSTGRES` (SQLite serves one kernel) and say so when skipped.

use hookwire_client::{AdminClient, DeviceClient};
pub(crate) use hookwire_tests::process::hookwired;
use hookwire_tests::{FakeReceiver, KernelProcess, Reply, TestKernel};
use serde_json::json;
use sqlx::Row as _;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The lease of the test kernels, seconds: short, so that takeovers happen within a test.
const LEASE_SECS: u64 = 2;
/// Events published per test: fewer failures than put a host to sleep (10 in its window), so that every second
/// attempt is sent when due.
const NUM_EVENTS: usize = 4;

/// A kernel with a short lease on `database`, or on a fresh database when `None`.
async fn kernel(database: Option<String>, lease_secs: u64) -> TestKernel {
    TestKernel::spawn_with(|settings| {
        if let Some(database) = database {
            settings.database = database;
        }
        settings.cluster_lease_secs = lease_secs;
    })
    .await
}

/// A first kernel on a fresh PostgreSQL database, or `None` (with the reason printed) without one.
pub(crate) async fn first_kernel_on_postgres(lease_secs: u64) -> Option<TestKernel> {
    let first = kernel(None, lease_secs).await;
    if !first.settings.database.starts_with("postgres") {
        eprintln!("skipped: several kernels share a PostgreSQL database only; run it with HOOKWIRE_TEST_POSTGRES");
        first.stop().await;
        return None;
    }
    Some(first)
}

/// A `hookwired` process on `database` with a lease of `lease_secs`.
pub(crate) async fn kernel_process(binary: &Path, database: &str, lease_secs: u64) -> KernelProcess {
    KernelProcess::start(binary, database, &["--cluster-lease-secs".into(), lease_secs.to_string()]).await
}

/// A receiver that fails every request with 503, so that deliveries with `x-retry` wait for their next attempt.
async fn failing_receiver() -> FakeReceiver {
    let receiver = FakeReceiver::start().await;
    receiver.reply_with(Reply { status: 503, ..Reply::default() });
    receiver
}

/// A webhook for `job` whose body is the event id, with two attempts `backoff_ms` apart.
fn retried_webhook(receiver: &FakeReceiver, backoff_ms: u64) -> serde_json::Value {
    json!({
        "event": "job",
        "url": receiver.base_url,
        "body": "{{{PARTICLE_EVENT_ID}}}",
        "x-retry": {"attempts": 2, "backoff": [backoff_ms], "jitter": false},
    })
}

/// Creates a group, a device and the webhook through `endpoint`; publishes `count` events; returns the admin
/// client and the acked event ids.
async fn publish_jobs(endpoint: &str, definition: serde_json::Value, count: usize) -> (AdminClient, Vec<String>) {
    let admin = AdminClient::connect(endpoint, hookwire_tests::ROOT_TOKEN).await.unwrap();
    let group = admin.create_group("cluster").await.unwrap();
    admin.create_webhook(group.id.clone(), definition.to_string()).await.unwrap();
    let token = admin.create_device(group.id.clone(), "device").await.unwrap().token;
    let device = DeviceClient::connect(endpoint, &token).await.unwrap();
    let mut event_ids = Vec::new();
    for index in 0..count {
        event_ids.push(device.publish("job", index.to_string()).await.unwrap().event_id);
    }
    (admin, event_ids)
}

/// Requests received per event id (the body).
fn requests_per_event(receiver: &FakeReceiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in receiver.requests() {
        *counts.entry(request.text()).or_insert(0) += 1;
    }
    counts
}

/// Waits until the receiver has `count` requests (`within` at most), then a little more for any extra one.
async fn settle(receiver: &FakeReceiver, count: usize, within: Duration) {
    receiver.wait_for(count, within).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// Attempts recorded twice for one (delivery, attempt number): none may be.
pub(crate) async fn attempts_recorded_twice(database: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT delivery_id, attempt FROM attempts GROUP BY delivery_id, attempt \
         HAVING COUNT(*) > 1) twice",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let twice: i64 = row.get("n");
    pool.close().await;
    twice
}

/// Waits until the attempt log holds `count` attempts (10 s at most).
async fn wait_recorded(database: &str, count: i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM attempts").fetch_one(&pool).await.unwrap();
            if row.get::<i64, _>("n") >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} attempts recorded within 10 s"));
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_for_its_backoff_after_a_restart_because_its_due_time_is_stored() {
    let kernel = kernel(None, LEASE_SECS).await;
    let receiver = failing_receiver().await;
    let (_admin, _events) = publish_jobs(&kernel.endpoint, retried_webhook(&receiver, 3000), 1).await;
    let first = receiver.first_request().await;
    // Its outcome, with the due time of the next attempt, is written before the restart (a request still in
    // flight at a stop is sent again, as at-least-once allows).
    wait_recorded(&kernel.settings.database, 1).await;

    let kernel = kernel.restart().await;
    let requests = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(requests.len(), 2, "the second attempt is sent after the restart");
    let gap = requests[1].received_at - first.received_at;
    assert!(
        gap >= Duration::from_millis(2500),
        "the 3 s backoff is honoured across the restart, not forgotten: {gap:?}"
    );
    assert_eq!(attempts_recorded_twice(&kernel.settings.database).await, 0);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernels_started_beside_a_live_one_send_none_of_its_pending_deliveries_nor_resend_them() {
    let Some(owner) = first_kernel_on_postgres(LEASE_SECS).await else { return };
    let database = owner.settings.database.clone();
    let receiver = failing_receiver().await;
    let (_admin, events) = publish_jobs(&owner.endpoint, retried_webhook(&receiver, 4000), NUM_EVENTS).await;
    receiver.wait_for(NUM_EVENTS, Duration::from_secs(10)).await;
    wait_recorded(&database, NUM_EVENTS as i64).await;

    // A kernel starts beside the owner, stops, and starts again (a rolling restart); a resend goes through it.
    let beside = kernel(Some(database.clone()), LEASE_SECS).await;
    let beside = beside.restart().await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();
    let attempt_id: i64 =
        sqlx::query("SELECT id FROM attempts ORDER BY id LIMIT 1").fetch_one(&pool).await.unwrap().get("id");
    pool.close().await;
    let num_resent = beside.admin().await.resend_attempt(attempt_id).await.unwrap();
    assert_eq!(num_resent, 0, "a delivery pending on a live kernel is not sent by a second one");

    settle(&receiver, 2 * NUM_EVENTS, Duration::from_secs(20)).await;
    let counts = requests_per_event(&receiver);
    for event in &events {
        assert_eq!(counts.get(event), Some(&2), "two attempts of {event}, each sent once: {counts:?}");
    }
    assert_eq!(attempts_recorded_twice(&database).await, 0);
    beside.stop().await;
    owner.stop().await;
}

/// A survivor kernel in process and a `hookwired` process beside it on the same fresh PostgreSQL database (both
/// with `lease_secs`), the latter with `NUM_EVENTS` accepted jobs whose first attempts failed and are recorded,
/// each waiting `backoff_ms` for its retry. None (skipped, said why) without PostgreSQL or the binary.
struct JobsOnAProcess {
    survivor: TestKernel,
    database: String,
    receiver: FakeReceiver,
    process: KernelProcess,
    events: Vec<String>,
}

async fn jobs_on_a_process_beside_a_survivor(lease_secs: u64, backoff_ms: u64) -> Option<JobsOnAProcess> {
    let survivor = first_kernel_on_postgres(lease_secs).await?;
    let Some(binary) = hookwired() else {
        eprintln!("skipped: no hookwired binary beside the tests (cargo build --bin hookwired)");
        survivor.stop().await;
        return None;
    };
    let database = survivor.settings.database.clone();
    let receiver = failing_receiver().await;
    let process = kernel_process(&binary, &database, lease_secs).await;
    let (_admin, events) = publish_jobs(&process.endpoint, retried_webhook(&receiver, backoff_ms), NUM_EVENTS).await;
    receiver.wait_for(NUM_EVENTS, Duration::from_secs(10)).await;
    // Once the first attempts are recorded, no request is in flight: none may be sent twice.
    wait_recorded(&database, NUM_EVENTS as i64).await;
    Some(JobsOnAProcess { survivor, database, receiver, process, events })
}

/// Checks that each event's second attempt was sent once (by the survivor) and no attempt recorded twice.
async fn assert_second_attempts_sent_once(jobs: &JobsOnAProcess) {
    let counts = requests_per_event(&jobs.receiver);
    for event in &jobs.events {
        assert_eq!(counts.get(event), Some(&2), "the second attempt of {event} sent once, by the survivor: {counts:?}");
    }
    assert_eq!(attempts_recorded_twice(&jobs.database).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_kernels_pending_deliveries_are_taken_over_after_its_lease_and_sent_once() {
    let Some(mut jobs) = jobs_on_a_process_beside_a_survivor(LEASE_SECS, 3000).await else { return };
    jobs.process.kill().await;

    // The survivor claims them once the victim's lease has passed, and sends each second attempt once.
    settle(&jobs.receiver, 2 * NUM_EVENTS, Duration::from_secs(20)).await;
    assert_second_attempts_sent_once(&jobs).await;
    jobs.survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_stopped_with_sigterm_hands_its_pending_deliveries_over_at_once_not_after_its_lease() {
    // A lease far longer than the test: only the hand-over can explain a takeover within it.
    let Some(mut jobs) = jobs_on_a_process_beside_a_survivor(120, 1000).await else { return };
    jobs.process.signal("TERM").await;
    assert!(jobs.process.wait(Duration::from_secs(30)).await, "a clean stop");

    settle(&jobs.receiver, 2 * NUM_EVENTS, Duration::from_secs(30)).await;
    assert_second_attempts_sent_once(&jobs).await;
    jobs.survivor.stop().await;
}

/// Waits until `admin`'s kernel reports the webhook disabled (or enabled), 10 s at most; returns the reason.
async fn wait_disabled(admin: &AdminClient, webhook_id: &str, disabled: bool) -> String {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let webhook = admin.get_webhook(webhook_id.to_owned()).await.unwrap();
            if webhook.disabled_reason.is_empty() != disabled {
                return webhook.disabled_reason;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("the webhook was not {} on every kernel within 10 s", if disabled { "disabled" } else { "enabled" })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_limit_counts_every_kernels_failures_and_enable_and_disable_reach_every_kernel() {
    let Some(first) = first_kernel_on_postgres(LEASE_SECS).await else { return };
    let receiver = failing_receiver().await;
    let fixture = first.fixture().await;
    let definition = json!({"event": "job", "url": receiver.base_url, "x-failureLimit": 3});
    let webhook_id = fixture.webhook(definition).await;
    // Started after the webhook exists, the second kernel has it in its index from the start.
    let second = kernel(Some(first.settings.database.clone()), LEASE_SECS).await;
    let through_first = first.device(&fixture.device_token).await;
    let through_second = second.device(&fixture.device_token).await;

    // Three failures in a row, two through one kernel and one through the other: the limit is reached.
    through_first.publish("job", "1").await.unwrap();
    receiver.wait_for(1, Duration::from_secs(10)).await;
    through_second.publish("job", "2").await.unwrap();
    receiver.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    through_first.publish("job", "3").await.unwrap();
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let (first_admin, second_admin) = (first.admin().await, second.admin().await);
    let reason = wait_disabled(&second_admin, &webhook_id, true).await;
    assert_eq!(reason, "3 consecutive failures");
    wait_disabled(&first_admin, &webhook_id, true).await;
    for (through, data) in [(&through_first, "4"), (&through_second, "5")] {
        let published = through.publish("job", data).await.unwrap();
        assert_eq!(published.num_deliveries, 0, "disabled on every kernel: nothing more is sent");
    }

    // Enabled through one kernel, it fires through the other again, and stays enabled after further writes.
    second_admin.enable_webhook(webhook_id.clone()).await.unwrap();
    wait_disabled(&first_admin, &webhook_id, false).await;
    receiver.reply_with(Reply { status: 200, ..Reply::default() });
    through_first.publish("job", "6").await.unwrap();
    receiver.wait_for(4, Duration::from_secs(10)).await;

    // Disabled by hand through one kernel: the other stops too.
    first_admin.disable_webhook(webhook_id.clone()).await.unwrap();
    wait_disabled(&second_admin, &webhook_id, true).await;
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_frozen_past_its_lease_sends_nothing_when_thawed_and_stops() {
    let Some(mut jobs) = jobs_on_a_process_beside_a_survivor(LEASE_SECS, 3000).await else { return };

    // Frozen until its retries are due and past its lease: the survivor takes them over and sends them.
    jobs.process.signal("STOP").await;
    jobs.receiver.wait_for(2 * NUM_EVENTS, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    jobs.process.signal("CONT").await;

    // Thawed, it finds its lease expired: it sends nothing of what it held and stops with an error.
    assert!(!jobs.process.wait(Duration::from_secs(30)).await, "a kernel that lost its lease stops with an error");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_second_attempts_sent_once(&jobs).await;
    jobs.survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_kernels_deliveries_are_spread_across_the_live_kernels() {
    let Some(first) = first_kernel_on_postgres(LEASE_SECS).await else { return };
    let Some(binary) = hookwired() else {
        eprintln!("skipped: no hookwired binary beside the tests (cargo build --bin hookwired)");
        return first.stop().await;
    };
    let database = first.settings.database.clone();
    let second = kernel(Some(database.clone()), LEASE_SECS).await;
    let receiver = failing_receiver().await;
    let mut victim = kernel_process(&binary, &database, LEASE_SECS).await;
    // More deliveries than one claim takes (200), each waiting a minute for its retry.
    let num_events = 500;
    let (_admin, _events) = publish_jobs(&victim.endpoint, retried_webhook(&receiver, 60_000), num_events).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();
    let victim_id: String =
        sqlx::query("SELECT owner FROM deliveries LIMIT 1").fetch_one(&pool).await.unwrap().get("owner");
    victim.kill().await;

    let owners = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let rows = sqlx::query(
                "SELECT d.owner, COUNT(*) AS n FROM deliveries d WHERE d.status = 0 AND d.owner <> $1 GROUP BY d.owner",
            )
            .bind(victim_id.as_str())
            .fetch_all(&pool)
            .await
            .unwrap();
            let owners: Vec<i64> = rows.iter().map(|row| row.get::<i64, _>("n")).collect();
            // Once every pending delivery is with a survivor, the takeover is over.
            if owners.iter().sum::<i64>() == num_events as i64 {
                return owners;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every delivery of the dead kernel claimed within 20 s");
    pool.close().await;
    assert_eq!(owners.len(), 2, "both live kernels took a share: {owners:?}");
    second.stop().await;
    first.stop().await;
}
