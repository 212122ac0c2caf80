//! The chaos test (issue 14 point 9, docs/cluster.md "The chaos test"): three real `hookwired` processes on one
//! PostgreSQL database, devices publishing through all of them throughout, three webhooks (one whose first answers
//! fail at times, so that it retries; one plain; one with a rate quota), while one kernel after another is killed
//! with SIGKILL and restarted, frozen with SIGSTOP past its lease and thawed (it stops; it is restarted), and the
//! kernels' database connections are terminated with `pg_terminate_backend`. At the end: every acked event was
//! delivered to every matching webhook (0 lost); each delivery accepted twice was pending on a kernel when it died,
//! with a request already sent (the duplicates at-least-once allows); no (delivery, attempt) recorded twice; the
//! quota held. It prints a summary with the takeover times.
//!
//! `HOOKWIRE_CHAOS_SECONDS` sets how long the chaos lasts (default 30); the long run is
//! `HOOKWIRE_CHAOS_SECONDS=600 cargo test -p hookwire-tests --test e2e -- chaos --nocapture` with
//! `HOOKWIRE_TEST_POSTGRES` set. Skipped (the reason printed) without PostgreSQL or the `hookwired` binary.

use hookwire_client::{AdminClient, DeviceClient};
use hookwire_tests::KernelProcess;
use hookwire_tests::dedup::{DedupReceiver, Seen};
use hookwire_tests::process::hookwired;
use serde_json::json;
use sqlx::Row as _;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kernels in the cluster.
const NUM_KERNELS: usize = 3;
/// Devices publishing, spread across the kernels.
const NUM_DEVICES: usize = 6;
/// The kernels' lease, seconds: short, so that takeovers happen within the run.
const LEASE_SECS: u64 = 3;
/// The quota of the rate-limited webhook.
const MIN_INTERVAL_MS: u64 = 200;

/// An acked event and the webhook paths it must reach.
struct Acked {
    event_id: String,
    paths: &'static [&'static str],
}

/// A kernel's death as seen by the others: when, and which of its deliveries were pending then.
struct Death {
    /// Once the signal was sent (SIGKILL: once the process was gone).
    at: Instant,
    /// Its pending deliveries (the `webhook-id`s) at death, read once it could write no more.
    pending: HashSet<String>,
}

/// The cluster: one slot per kernel, each with its current process; retired processes are kept for their logs.
struct Cluster {
    binary: PathBuf,
    database: String,
    slots: Vec<KernelProcess>,
    endpoints: Arc<Vec<Mutex<String>>>,
    retired: Vec<KernelProcess>,
}

impl Cluster {
    async fn start_process(&self) -> KernelProcess {
        let args = ["--cluster-lease-secs".to_owned(), LEASE_SECS.to_string()];
        KernelProcess::start(&self.binary, &self.database, &args).await
    }

    /// Starts a new process in slot `index` (as a supervisor restarts a kernel that ended).
    async fn restart(&mut self, index: usize) {
        let process = self.start_process().await;
        *self.endpoints[index].lock().unwrap() = process.endpoint.clone();
        let old = std::mem::replace(&mut self.slots[index], process);
        self.retired.push(old);
    }

    /// Restarts every kernel that ended on its own (as a supervisor would); returns how many did.
    async fn supervise(&mut self) -> usize {
        let mut num_ended = 0;
        for index in 0..self.slots.len() {
            if self.slots[index].child.try_wait().expect("hookwired's status").is_some() {
                eprintln!("chaos: kernel {} ended on its own; restarting it", self.slots[index].pid);
                num_ended += 1;
                self.restart(index).await;
            }
        }
        num_ended
    }

    /// Copies every process's log to a folder that outlives the test; returns it.
    fn keep_logs(&self) -> PathBuf {
        let folder = std::env::temp_dir().join(format!("hookwire-chaos-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("a folder for the logs");
        for process in self.retired.iter().chain(&self.slots) {
            let _ = std::fs::copy(process.log_path(), folder.join(format!("hookwired-{}.log", process.pid)));
        }
        folder
    }
}

/// A pool of one connection to the test database (so that terminating the others' backends spares it).
async fn checker(database: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::pool::PoolOptions::<sqlx::Any>::new().max_connections(1).connect(database).await.expect("connect")
}

/// The deliveries pending on `node_id`.
async fn pending_of(pool: &sqlx::AnyPool, node_id: &str) -> HashSet<String> {
    let rows = sqlx::query("SELECT id FROM deliveries WHERE status = 0 AND owner = $1")
        .bind(node_id)
        .fetch_all(pool)
        .await
        .expect("read pending deliveries");
    rows.iter().map(|row| row.get::<String, _>("id")).collect()
}

/// Publishes through `endpoints` until `stop`, as device `index` (its home kernel first, the next on a failure),
/// one event every `pause`; records the acked ones.
async fn publish(
    index: usize,
    token: String,
    endpoints: Arc<Vec<Mutex<String>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    published: Arc<AtomicU64>,
) {
    let mut kernel = index % endpoints.len();
    let mut client: Option<(String, DeviceClient)> = None;
    let mut sequence = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let endpoint = endpoints[kernel].lock().unwrap().clone();
        if client.as_ref().is_none_or(|(connected, _)| *connected != endpoint) {
            client = match DeviceClient::connect(&endpoint, &token).await {
                Ok(device) => Some((endpoint, device)),
                Err(_) => None,
            };
        }
        // One device in three also publishes what the rate-limited webhook takes, every sixth event.
        let (name, paths): (String, &'static [&'static str]) = if index.is_multiple_of(3) && sequence.is_multiple_of(6)
        {
            (format!("slow/{sequence}"), &["/quota"])
        } else {
            (format!("job/{sequence}"), &["/flaky", "/steady"])
        };
        let mut ack = None;
        if let Some((endpoint, device)) = &client {
            published.fetch_add(1, Ordering::SeqCst);
            // The data names the kernel that accepted it (its port), for the receiver's side of the count.
            let port = endpoint.rsplit(':').next().unwrap_or_default();
            let publishing = device.publish(name, format!("{port} {sequence}"));
            ack = tokio::time::timeout(Duration::from_secs(2), publishing).await.ok().and_then(Result::ok);
        }
        match ack {
            Some(ack) => acked.lock().unwrap().push(Acked { event_id: ack.event_id, paths }),
            // Not acked (the kernel died, froze or lost its database): try the next kernel.
            _ => {
                client = None;
                kernel = (kernel + 1) % endpoints.len();
            }
        }
        sequence += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the receiver saw, counted against what was acked.
struct Tally {
    expected: usize,
    delivered: usize,
    lost: Vec<(String, &'static str)>,
    /// Deliveries accepted (2xx) more than once, and how many times more.
    duplicated: HashMap<String, usize>,
}

fn tally(acked: &[Acked], seen: &[Seen]) -> Tally {
    let mut succeeded: HashSet<(&str, &str)> = HashSet::new();
    let mut accepted_per_delivery: HashMap<&str, usize> = HashMap::new();
    for request in seen.iter().filter(|request| request.succeeded()) {
        succeeded.insert((event_id(request), request.path.as_str()));
        *accepted_per_delivery.entry(request.webhook_id.as_str()).or_insert(0) += 1;
    }
    let mut tally = Tally { expected: 0, delivered: 0, lost: Vec::new(), duplicated: HashMap::new() };
    for event in acked {
        for path in event.paths {
            tally.expected += 1;
            if succeeded.contains(&(event.event_id.as_str(), *path)) {
                tally.delivered += 1;
            } else {
                tally.lost.push((event.event_id.clone(), path));
            }
        }
    }
    for (delivery, count) in accepted_per_delivery {
        if count > 1 {
            tally.duplicated.insert(delivery.to_owned(), count - 1);
        }
    }
    tally
}

/// How long after the signal a request the dead kernel sent before it may reach the receiver: far shorter than a
/// takeover (at least half a lease), so that no request of another kernel is taken for the dead one's.
const SENT_BEFORE_DEATH: Duration = Duration::from_millis(500);

/// How long before its death a kernel may have had a request accepted (2xx) without its outcome written yet. The
/// journal writes within milliseconds; an outcome older than this that is still unwritten at the death was lost,
/// and its duplicate is not allowed.
const UNWRITTEN_WINDOW: Duration = Duration::from_secs(2);

/// The duplicates at-least-once allows, per delivery: once for each death of a kernel that held it pending with
/// a request in flight, or accepted (2xx) within [`UNWRITTEN_WINDOW`] with its outcome not yet written. Also
/// returns how many of each.
fn allowed_duplicates(deaths: &[Death], seen: &[Seen]) -> (HashMap<String, usize>, usize, usize) {
    let (mut in_flight, mut unwritten) = (HashSet::new(), HashSet::new());
    for (index, death) in deaths.iter().enumerate() {
        for request in seen.iter().filter(|request| death.pending.contains(&request.webhook_id)) {
            // A request it wrote just before the signal may be read by the receiver a moment later.
            if request.received_at <= death.at + SENT_BEFORE_DEATH
                && request.in_flight_at(request.received_at.max(death.at))
            {
                in_flight.insert((index, request.webhook_id.as_str()));
            } else if let Some((answered_at, 200..300)) = request.answered
                && answered_at <= death.at
                && death.at - answered_at < UNWRITTEN_WINDOW
            {
                unwritten.insert((index, request.webhook_id.as_str()));
            }
        }
    }
    let unwritten: HashSet<_> = unwritten.difference(&in_flight).copied().collect();
    let mut allowed = HashMap::new();
    for (_, delivery) in in_flight.iter().chain(&unwritten) {
        *allowed.entry((*delivery).to_owned()).or_insert(0) += 1;
    }
    (allowed, in_flight.len(), unwritten.len())
}

/// Duplicates beyond what at-least-once allows: (delivery, extra acceptances, allowed).
fn beyond(duplicated: &HashMap<String, usize>, allowed: &HashMap<String, usize>) -> Vec<(String, usize, usize)> {
    duplicated
        .iter()
        .map(|(delivery, extra)| (delivery.clone(), *extra, allowed.get(delivery).copied().unwrap_or(0)))
        .filter(|(_, extra, allowed)| extra > allowed)
        .collect()
}

/// For a failure report: each delivery's requests (ms since `started`: received, answered, status) and the deaths
/// (ms since `started`) whose pending deliveries held it.
fn describe(deliveries: &[String], seen: &[Seen], deaths: &[Death], started: Instant) -> Vec<String> {
    let since = |at: Instant| at.saturating_duration_since(started).as_millis();
    deliveries
        .iter()
        .take(10)
        .map(|delivery| {
            let requests: Vec<_> = seen
                .iter()
                .filter(|request| request.webhook_id == *delivery)
                .map(|request| (since(request.received_at), request.answered.map(|(at, status)| (since(at), status))))
                .collect();
            let held: Vec<_> =
                deaths.iter().filter(|death| death.pending.contains(delivery)).map(|death| since(death.at)).collect();
            format!("{delivery}: requests {requests:?}, pending at deaths {held:?}")
        })
        .collect()
}

/// Takeover times: for each delivery pending on a kernel when it died, from its death to the first request of it
/// that arrived afterwards (sent by the kernel that took it over).
fn takeover_times(deaths: &[Death], seen: &[Seen]) -> Vec<Duration> {
    let mut times = Vec::new();
    for death in deaths {
        let mut first: HashMap<&str, Instant> = HashMap::new();
        for request in seen.iter().filter(|request| request.received_at > death.at + SENT_BEFORE_DEATH) {
            if death.pending.contains(&request.webhook_id) {
                first.entry(request.webhook_id.as_str()).or_insert(request.received_at);
            }
        }
        times.extend(first.values().map(|at| *at - death.at));
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * percent).div_ceil(100).saturating_sub(1).min(sorted.len() - 1)]
}

/// The most requests of the rate-limited webhook that arrived within 0.9 of its interval.
fn most_within_quota_interval(seen: &[Seen]) -> usize {
    let mut times: Vec<Instant> =
        seen.iter().filter(|request| request.path == "/quota").map(|request| request.received_at).collect();
    times.sort();
    let window = Duration::from_millis(MIN_INTERVAL_MS * 9 / 10);
    (0..times.len())
        .map(|start| times[start..].iter().take_while(|at| **at - times[start] < window).count())
        .max()
        .unwrap_or(0)
}

/// The group, the three webhooks and the devices, created through `endpoint`; returns the device tokens.
async fn set_up(endpoint: &str, receiver: &DedupReceiver) -> Vec<String> {
    let admin = AdminClient::connect(endpoint, hookwire_tests::ROOT_TOKEN).await.unwrap();
    let group = admin.create_group("chaos").await.unwrap();
    // Retries a second apart or more: many deliveries wait for one whenever a kernel dies.
    let retry = json!({"attempts": 5, "backoff": [1000, 2000, 2000, 2000], "jitter": false});
    let body = "{{{PARTICLE_EVENT_ID}}} {{{PARTICLE_EVENT_VALUE}}}";
    let base = &receiver.base_url;
    let definitions = [
        json!({"event": "job", "url": format!("{base}/flaky"), "body": body, "x-signing": true, "x-retry": retry}),
        json!({"event": "job", "url": format!("{base}/steady"), "body": body, "x-signing": true, "x-retry": retry}),
        json!({"event": "slow", "url": format!("{base}/quota"), "body": body, "x-signing": true, "x-retry": retry,
               "x-minIntervalMs": MIN_INTERVAL_MS}),
    ];
    for definition in definitions {
        admin.create_webhook(group.id.clone(), definition.to_string()).await.unwrap();
    }
    let mut tokens = Vec::new();
    for index in 0..NUM_DEVICES {
        tokens.push(admin.create_device(group.id.clone(), format!("device {index}")).await.unwrap().token);
    }
    tokens
}

/// The event id a request carries (the first word of its body).
fn event_id(request: &Seen) -> &str {
    request.body.split(' ').next().unwrap_or_default()
}

/// The port of the kernel that accepted the event of a request (the second word of its body).
fn accepted_by(request: &Seen) -> &str {
    request.body.split(' ').nth(1).unwrap_or_default()
}

/// The deliveries the kernel of slot `index` (`node_id`) held when it died at `at`: those pending and owned by it,
/// and those of events it accepted whose rows it had not yet committed (a frozen kernel commits them when thawed,
/// owned by itself, dead, and another kernel takes them over). Read once what it wrote before has settled.
async fn held(cluster: &Cluster, pool: &sqlx::AnyPool, receiver: &DedupReceiver, index: usize, at: Instant) -> Death {
    tokio::time::sleep(SENT_BEFORE_DEATH).await;
    let node_id = cluster.slots[index].node_id();
    let endpoint = &cluster.slots[index].endpoint;
    let port = endpoint.rsplit(':').next().unwrap_or_default();
    let mut pending = pending_of(pool, &node_id).await;
    let recent: HashSet<String> = receiver
        .seen()
        .into_iter()
        .filter(|request| accepted_by(request) == port && request.received_at + UNWRITTEN_WINDOW >= at)
        .map(|request| request.webhook_id)
        .collect();
    for delivery in recent {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE id = $1")
            .bind(delivery.as_str())
            .fetch_one(pool)
            .await
            .expect("look for a delivery");
        if row.get::<i64, _>("n") == 0 {
            pending.insert(delivery);
        }
    }
    Death { at, pending }
}

/// Kills slot `index` with SIGKILL; returns its death.
async fn kill(cluster: &mut Cluster, pool: &sqlx::AnyPool, receiver: &DedupReceiver, index: usize) -> Death {
    cluster.slots[index].kill().await;
    let at = Instant::now();
    held(cluster, pool, receiver, index, at).await
}

/// Freezes slot `index` with SIGSTOP past its lease, thaws it, and waits for it to stop (its lease lost); returns
/// its death.
async fn freeze(cluster: &mut Cluster, pool: &sqlx::AnyPool, receiver: &DedupReceiver, index: usize) -> Death {
    cluster.slots[index].signal("STOP").await;
    let at = Instant::now();
    let death = held(cluster, pool, receiver, index, at).await;
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 2)).await;
    cluster.slots[index].signal("CONT").await;
    let clean = cluster.slots[index].wait(Duration::from_secs(30)).await;
    assert!(!clean, "a kernel thawed after its lease stops with an error");
    death
}

/// How many requests of a quota'd webhook may start within one interval: 1 where the quota holds cluster-wide (the
/// database has `webhook_quota_slots`, migration 0009), else one per kernel (each kernel paces its own requests).
async fn quota_senders(pool: &sqlx::AnyPool) -> usize {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM pg_tables WHERE tablename = 'webhook_quota_slots'")
        .fetch_one(pool)
        .await
        .expect("look for the quota slots");
    if row.get::<i64, _>("n") > 0 { 1 } else { NUM_KERNELS }
}

/// Terminates every backend of the test database but the checker's own; returns how many.
async fn terminate_backends(pool: &sqlx::AnyPool) -> i64 {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) terminated",
    )
    .fetch_one(pool)
    .await
    .expect("terminate the kernels' backends");
    row.get("n")
}

fn chaos_duration() -> Duration {
    let seconds = std::env::var("HOOKWIRE_CHAOS_SECONDS").ok().and_then(|value| value.parse().ok()).unwrap_or(30);
    Duration::from_secs(seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_freeze_and_cut_kernels_while_devices_publish_and_lose_nothing() {
    let Some(database) = hookwire_tests::fresh_postgres_database().await else {
        eprintln!(
            "skipped: the chaos test runs several kernels on PostgreSQL only; run it with HOOKWIRE_TEST_POSTGRES"
        );
        return;
    };
    let Some(binary) = hookwired() else {
        eprintln!("skipped: no hookwired binary beside the tests (cargo build --bin hookwired)");
        return;
    };
    let receiver = DedupReceiver::start(Duration::from_millis(40), 30).await;
    let mut cluster = Cluster {
        binary,
        database: database.clone(),
        slots: Vec::new(),
        endpoints: Arc::new(Vec::new()),
        retired: Vec::new(),
    };
    // The first kernel makes the webhooks; the others start after, with them in their index.
    let first = cluster.start_process().await;
    let tokens = set_up(&first.endpoint, &receiver).await;
    cluster.slots.push(first);
    while cluster.slots.len() < NUM_KERNELS {
        let process = cluster.start_process().await;
        cluster.slots.push(process);
    }
    cluster.endpoints = Arc::new(cluster.slots.iter().map(|process| Mutex::new(process.endpoint.clone())).collect());
    let pool = checker(&database).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let published = Arc::new(AtomicU64::new(0));
    let publishers: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(index, token)| {
            let (endpoints, stop, acked, published) =
                (cluster.endpoints.clone(), stop.clone(), acked.clone(), published.clone());
            tokio::spawn(publish(index, token, endpoints, stop, acked, published))
        })
        .collect();

    // The chaos: rounds of a kill, a freeze and cut connections, each on the next kernel, until the time is up.
    let started = Instant::now();
    let (mut deaths, mut num_terminated, mut num_ended, mut round) = (Vec::new(), 0, 0, 0);
    while started.elapsed() < chaos_duration() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let victim = round % NUM_KERNELS;
        deaths.push(kill(&mut cluster, &pool, &receiver, victim).await);
        // A supervisor's restart delay.
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.restart(victim).await;
        num_ended += cluster.supervise().await;

        tokio::time::sleep(Duration::from_secs(2)).await;
        let frozen = (round + 1) % NUM_KERNELS;
        deaths.push(freeze(&mut cluster, &pool, &receiver, frozen).await);
        cluster.restart(frozen).await;
        num_ended += cluster.supervise().await;

        tokio::time::sleep(Duration::from_secs(2)).await;
        num_terminated += terminate_backends(&pool).await;
        num_ended += cluster.supervise().await;
        round += 1;
    }
    stop.store(true, Ordering::SeqCst);
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let chaos_secs = started.elapsed().as_secs_f64();

    // Every acked event reaches every matching webhook (60 s at most), and every delivery ends.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            num_ended += cluster.supervise().await;
            let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE status = 0").fetch_one(&pool).await;
            let pending = row.map_or(1, |row| row.get::<i64, _>("n"));
            if pending == 0 && tally(&acked, &receiver.seen()).lost.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    // Late duplicates would arrive now, from a request sent just before the end.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = receiver.seen();
    let tally = tally(&acked, &seen);
    let (allowed, in_flight, unwritten) = allowed_duplicates(&deaths, &seen);
    let duplicates: usize = tally.duplicated.values().sum();
    let beyond = beyond(&tally.duplicated, &allowed);
    let takeovers = takeover_times(&deaths, &seen);
    let recorded_twice = crate::cluster::attempts_recorded_twice(&database).await;
    let most_in_interval = most_within_quota_interval(&seen);
    let quota_senders = quota_senders(&pool).await;

    let allowed_total: usize = allowed.values().sum();
    println!(
        "chaos: {chaos_secs:.0} s, {round} rounds on {NUM_KERNELS} kernels (lease {LEASE_SECS} s): {round} kills, \
         {round} freezes, {num_terminated} backends terminated, {num_ended} kernels ended on their own\n\
         chaos: published {}, acked {}, deliveries expected {}, delivered {}, lost {}, requests {}\n\
         chaos: duplicates {duplicates}, allowed {allowed_total} (on a dead kernel: {in_flight} in flight, {unwritten} \
         accepted and not yet written), beyond that {}; (delivery, attempt) recorded twice {recorded_twice}; most \
         quota'd requests within {MIN_INTERVAL_MS} ms {most_in_interval} (at most {quota_senders})\n\
         chaos: takeover of {} deliveries: p50 {:?}, p99 {:?}, max {:?}",
        published.load(Ordering::SeqCst),
        acked.len(),
        tally.expected,
        tally.delivered,
        tally.lost.len(),
        seen.len(),
        beyond.len(),
        takeovers.len(),
        percentile(&takeovers, 50),
        percentile(&takeovers, 99),
        takeovers.last().copied().unwrap_or_default(),
    );
    let healthy = drained.is_ok()
        && tally.lost.is_empty()
        && beyond.is_empty()
        && recorded_twice == 0
        && most_in_interval <= quota_senders;
    if !healthy {
        let logs = cluster.keep_logs();
        println!("chaos: the kernels' logs are in {}", logs.display());
        let deliveries: Vec<String> = beyond.iter().map(|(delivery, _, _)| delivery.clone()).collect();
        for line in describe(&deliveries, &seen, &deaths, started) {
            println!("chaos: duplicated beyond the bound: {line}");
        }
    }
    assert!(drained.is_ok(), "every acked event delivered and every delivery ended within 60 s of the chaos");
    assert!(tally.lost.is_empty(), "0 lost; never accepted: {:?}", &tally.lost[..tally.lost.len().min(20)]);
    assert!(
        beyond.is_empty(),
        "no duplicate but of a request in flight on a dead kernel: {beyond:?} ({num_ended} kernels ended on their \
         own, their lease lost under load: the requests they had in flight are not in the bound)"
    );
    assert_eq!(recorded_twice, 0, "no (delivery, attempt) recorded twice");
    assert!(most_in_interval <= quota_senders, "the quota held: {most_in_interval} requests within one interval");
    for process in &mut cluster.slots {
        process.signal("TERM").await;
        process.wait(Duration::from_secs(30)).await;
    }
}
