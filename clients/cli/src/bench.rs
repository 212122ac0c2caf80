//! `hookwire bench`: measures hookwire end to end on the machine it runs on.
//!
//! It starts a kernel (`hookwired` beside this binary, on a temporary SQLite database) or connects to one, starts
//! its own receiver (answers 204, counts, records when each delivery arrives), simulates devices, each on its own
//! gRPC connection, publishing over `Connect`, with webhooks pointing at the receiver, and prints one summary:
//! events acked per second, deliveries received per second, publish -> receive latency percentiles, the kernel's
//! memory and CPU, errors. It also measures the raw HTTP ceiling of its receiver (a plain keep-alive client at the
//! same concurrency, in the same run) and reports hookwire's deliveries as a fraction of it.
//!
//! Each event's data is the time it was sent (nanoseconds since the run began); every webhook's body is that
//! data, so the receiver computes each delivery's latency from the body alone.
//!
//! Two other scenarios measure what a publishing run cannot:
//!
//! - `--idle-devices N` connects N devices that only hold their session open, each on its own connection, and
//!   reports the kernel's RSS per connected device beyond the empty kernel.
//! - `--restart-pending N` leaves N deliveries pending (the kernel publishes them towards a destination that
//!   refuses connections, with a long retry delay), kills the kernel with SIGKILL, starts the receiver on the
//!   destination's port and a new kernel on the same database, and reports the time from the restart to the
//!   first delivery and the rate at which the rest drain.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use hookwire_client::proto::kernel_message::Kind;
use hookwire_client::{AdminClient, DeviceClient};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

use crate::GlobalArgs;
use crate::kernel_process::{self, KernelProcess};

pub const EXAMPLES: &str = "\
Examples:
  hookwire bench                                  # the main throughput scenario, under a minute
  hookwire bench --webhooks 10 --duration 20      # ten webhooks per event
  hookwire bench --rate 1000 --devices 10         # open loop at 1,000 events/s, for latency
  hookwire bench --idle-devices 10000             # kernel memory per connected idle device
  hookwire bench --restart-pending 100000         # restart with deliveries pending: first delivery, drain rate
  hookwire bench --json > result.json";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Simulated devices, each on its own gRPC connection
    #[arg(long, default_value_t = 32)]
    devices: usize,
    /// Webhooks each event triggers
    #[arg(long, default_value_t = 1)]
    webhooks: usize,
    /// Seconds to publish for
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Stop after this many events instead (across all devices)
    #[arg(long)]
    count: Option<u64>,
    /// Open loop: publish this many events per second in total; without it, closed loop at full speed
    #[arg(long, value_name = "EVENTS_PER_S")]
    rate: Option<u64>,
    /// Closed loop: publishes in flight per device
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Seconds to measure the raw HTTP ceiling for (0 skips it)
    #[arg(long, default_value_t = 5)]
    ceiling_seconds: u64,
    /// Concurrency of the raw HTTP ceiling client (hookwire's default in-flight cap per host)
    #[arg(long, default_value_t = 64)]
    ceiling_concurrency: usize,
    /// Use a running kernel at this endpoint (with --token) instead of starting one
    #[arg(long, value_name = "URL")]
    kernel: Option<String>,
    /// With --kernel: its process id, to report its memory and CPU
    #[arg(long)]
    kernel_pid: Option<u32>,
    /// The hookwired binary to start [default: the one beside this binary]
    #[arg(long, value_name = "PATH")]
    hookwired: Option<PathBuf>,
    /// The database of the started kernel [default: SQLite in a temporary folder]
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Print one JSON document instead of the text summary
    #[arg(long)]
    json: bool,
    /// Instead of publishing: connect this many idle devices (one connection each) and report the kernel's RSS
    /// per connected device beyond the empty kernel
    #[arg(long, value_name = "N", conflicts_with_all = ["rate", "count", "restart_pending"])]
    idle_devices: Option<usize>,
    /// Instead of publishing: leave this many deliveries pending, kill the kernel, restart it and report the time
    /// to the first delivery and the drain rate (needs a kernel of its own: not with --kernel)
    #[arg(long, value_name = "N", conflicts_with_all = ["rate", "count", "kernel"])]
    restart_pending: Option<u64>,
}

/// What the receiver saw.
#[derive(Debug, Default)]
struct Received {
    num_deliveries: AtomicU64,
    num_ceiling: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    /// When the first delivery arrived, nanoseconds since the run began (0: none yet).
    first_delivery_ns: AtomicU64,
    /// When the latest delivery arrived, nanoseconds since the run began.
    last_delivery_ns: AtomicU64,
}

/// A kernel this run started, with the folder of its database when the kernel owns it.
struct StartedKernel {
    process: KernelProcess,
    _directory: Option<tempfile::TempDir>,
}

impl StartedKernel {
    /// Kills the kernel (SIGKILL) and waits for it to end.
    async fn kill(self) {
        self.process.kill().await;
    }
}

pub async fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(num_devices) = args.idle_devices {
        return idle_devices(&args, global, num_devices).await;
    }
    if let Some(num_pending) = args.restart_pending {
        return restart_pending(&args, num_pending).await;
    }
    let epoch = Instant::now();
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind the receiver")?;
    let receiver_url = start_receiver(listener, epoch, received.clone())?;

    let (endpoint, token, started, kernel_pid) = kernel_for(&args, global).await?;
    let admin = AdminClient::connect(&endpoint, &token).await?;
    let group = admin.create_group("bench").await?;
    for index in 0..args.webhooks {
        let definition = json!({"event": "bench", "url": format!("{receiver_url}/hook/{index}"), "body": "{{{PARTICLE_EVENT_VALUE}}}"});
        admin.create_webhook(group.id.clone(), definition.to_string()).await?;
    }
    let tokens = create_devices(&admin, &group.id, args.devices).await?;
    let cpu_before = kernel_pid.and_then(process_cpu_seconds);

    let num_acked = Arc::new(AtomicU64::new(0));
    let num_errors = Arc::new(AtomicU64::new(0));
    let num_sent = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.duration);
    let started_at = Instant::now();
    let publisher = Publisher {
        epoch,
        deadline,
        limit: args.count,
        num_sent,
        num_acked: num_acked.clone(),
        num_errors: num_errors.clone(),
    };
    let per_device_rate = args.rate.map(|rate| rate as f64 / args.devices as f64);
    let publishers = spawn_publishers(&endpoint, tokens, &publisher, per_device_rate, args.window).await?;
    let progress = tokio::spawn(progress_line(num_acked.clone(), received.clone(), args.json));
    for publisher in publishers {
        if let Err(error) = publisher.await? {
            num_errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("a device stopped: {error:#}");
        }
    }
    let publishing = started_at.elapsed();
    // Let the deliveries of acked events arrive (at most 30 s).
    let expected = num_acked.load(Ordering::Relaxed) * args.webhooks as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while received.num_deliveries.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivering = started_at.elapsed();
    progress.abort();
    if !args.json {
        eprintln!();
    }
    let cpu_seconds = kernel_pid.and_then(process_cpu_seconds).zip(cpu_before).map(|(after, before)| after - before);
    let rss_bytes = kernel_pid.and_then(process_rss_bytes);
    let ceiling = if args.ceiling_seconds > 0 {
        Some(
            raw_ceiling(&receiver_url, args.ceiling_concurrency, Duration::from_secs(args.ceiling_seconds), &received)
                .await?,
        )
    } else {
        None
    };
    if let Some(started) = started {
        started.kill().await;
    }

    let num_acked = num_acked.load(Ordering::Relaxed);
    let num_deliveries = received.num_deliveries.load(Ordering::Relaxed);
    let events_per_s = num_acked as f64 / publishing.as_secs_f64();
    let deliveries_per_s = num_deliveries as f64 / delivering.as_secs_f64();
    let mut latencies = std::mem::take(&mut *received.latencies_us.lock().expect("latencies"));
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index] as f64 / 1000.0
    };
    let document = json!({
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "devices": args.devices,
        "webhooks_per_event": args.webhooks,
        "rate": args.rate,
        "window": args.window,
        "seconds": publishing.as_secs_f64(),
        "events_acked": num_acked,
        "deliveries_received": num_deliveries,
        "deliveries_expected": num_acked * args.webhooks as u64,
        "events_per_s": events_per_s.round(),
        "deliveries_per_s": deliveries_per_s.round(),
        "raw_ceiling_per_s": ceiling.map(f64::round),
        "fraction_of_ceiling": ceiling.map(|ceiling| (deliveries_per_s / ceiling * 100.0).round() / 100.0),
        "latency_ms": {"p50": percentile(0.50), "p90": percentile(0.90), "p99": percentile(0.99), "max": percentile(1.0)},
        "rss_bytes": rss_bytes,
        "cpu_seconds": cpu_seconds,
        "cpu_percent": cpu_seconds.map(|seconds| (seconds / delivering.as_secs_f64() * 100.0).round()),
        "errors": num_errors.load(Ordering::Relaxed),
    });
    if args.json {
        println!("{document}");
    } else {
        print_summary(&document);
    }
    Ok(())
}

/// Connects a device per token and starts its publishing loop, counting into `template`'s counters: open loop at
/// `rate` events/s each when given, else closed loop with `window` publishes in flight each.
async fn spawn_publishers(
    endpoint: &str,
    tokens: Vec<String>,
    template: &Publisher,
    rate: Option<f64>,
    window: usize,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    let mut publishers = Vec::with_capacity(tokens.len());
    for token in tokens {
        let device = DeviceClient::connect(endpoint, &token).await?;
        let publisher = template.clone();
        let window = window.max(1);
        publishers.push(tokio::spawn(async move {
            match rate {
                Some(rate) => publisher.open_loop(device, rate).await,
                None => publisher.closed_loop(device, window).await,
            }
        }));
    }
    Ok(publishers)
}

/// One device's publishing loop.
#[derive(Clone)]
struct Publisher {
    epoch: Instant,
    deadline: tokio::time::Instant,
    limit: Option<u64>,
    num_sent: Arc<AtomicU64>,
    num_acked: Arc<AtomicU64>,
    num_errors: Arc<AtomicU64>,
}

impl Publisher {
    /// Claims the right to send one more event; false once the time or the count is up.
    fn may_send(&self) -> bool {
        if tokio::time::Instant::now() >= self.deadline {
            return false;
        }
        match self.limit {
            Some(limit) => self.num_sent.fetch_add(1, Ordering::Relaxed) < limit,
            None => true,
        }
    }

    fn stamp(&self) -> String {
        self.epoch.elapsed().as_nanos().to_string()
    }

    fn on_message(&self, kind: Option<Kind>) -> bool {
        match kind {
            Some(Kind::Ack(_)) => {
                self.num_acked.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(Kind::Error(_)) => {
                self.num_errors.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Keeps `window` publishes in flight until the time or count is up, then waits for the last acks.
    async fn closed_loop(self, device: DeviceClient, window: usize) -> anyhow::Result<()> {
        let mut session = device.open_session().await?;
        let mut in_flight = 0;
        loop {
            while in_flight < window && self.may_send() {
                session.send_publish("bench", self.stamp()).await?;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            let Some(message) = session.next_message().await? else { bail!("the kernel ended the session") };
            if self.on_message(message.kind) {
                in_flight -= 1;
            }
        }
    }

    /// Publishes at `rate` events per second, reading acks in between.
    async fn open_loop(self, device: DeviceClient, rate: f64) -> anyhow::Result<()> {
        let mut session = device.open_session().await?;
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let mut next = tokio::time::Instant::now();
        let mut in_flight = 0u64;
        loop {
            if tokio::time::Instant::now() >= next {
                if !self.may_send() {
                    break;
                }
                session.send_publish("bench", self.stamp()).await?;
                in_flight += 1;
                next += interval;
                continue;
            }
            // Reading is safe to cut short: a message that arrives late is kept for the next read.
            if let Ok(message) = tokio::time::timeout_at(next, session.next_message()).await {
                let Some(message) = message? else { bail!("the kernel ended the session") };
                if self.on_message(message.kind) {
                    in_flight -= 1;
                }
            }
        }
        while in_flight > 0 {
            let Some(message) = session.next_message().await? else { bail!("the kernel ended the session") };
            if self.on_message(message.kind) {
                in_flight -= 1;
            }
        }
        Ok(())
    }
}

/// Starts the receiver on `listener`: 204 to everything; `/hook/...` bodies carry the send time of their event.
fn start_receiver(
    listener: tokio::net::TcpListener,
    epoch: Instant,
    received: Arc<Received>,
) -> anyhow::Result<String> {
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let received = received.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let received = received.clone();
                    async move {
                        let is_delivery = request.uri().path().starts_with("/hook/");
                        let body = request.into_body().collect().await.map(|body| body.to_bytes()).unwrap_or_default();
                        if is_delivery {
                            let now = epoch.elapsed().as_nanos();
                            let now_ns = u64::try_from(now).unwrap_or(u64::MAX).max(1);
                            let _ = received.first_delivery_ns.compare_exchange(
                                0,
                                now_ns,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                            received.last_delivery_ns.fetch_max(now_ns, Ordering::Relaxed);
                            received.num_deliveries.fetch_add(1, Ordering::Relaxed);
                            if let Some(sent) =
                                std::str::from_utf8(&body).ok().and_then(|text| text.parse::<u128>().ok())
                            {
                                let latency_us = u64::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u64::MAX);
                                received.latencies_us.lock().expect("latencies").push(latency_us);
                            }
                        } else {
                            received.num_ceiling.fetch_add(1, Ordering::Relaxed);
                        }
                        let response = hyper::Response::builder().status(204).body(Empty::<Bytes>::new());
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}

/// The database of a started kernel: `--database`, or SQLite in `directory`.
fn bench_database(args: &BenchArgs, directory: &tempfile::TempDir) -> String {
    args.database.clone().unwrap_or_else(|| format!("sqlite://{}", directory.path().join("bench.db").display()))
}

/// Starts `hookwired` on a random port with `database` and returns it (owning `directory`), its endpoint and
/// root token.
async fn start_kernel(
    args: &BenchArgs,
    database: &str,
    directory: Option<tempfile::TempDir>,
) -> anyhow::Result<(StartedKernel, String, String)> {
    let binary = kernel_process::binary(args.hookwired.as_deref())?;
    let token = format!("bench-{}", std::process::id());
    // The connection cap is not what is measured, and `--idle-devices 10000` opens more than its default.
    let process = kernel_process::start(&binary, database, &token, &["--max-connections", "1000000"]).await?;
    let endpoint = process.endpoint.clone();
    Ok((StartedKernel { process, _directory: directory }, endpoint, token))
}

/// Prints a progress line on stderr every second.
async fn progress_line(num_acked: Arc<AtomicU64>, received: Arc<Received>, quiet: bool) {
    let start = Instant::now();
    let (mut last_acked, mut last_delivered) = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (acked, delivered) = (num_acked.load(Ordering::Relaxed), received.num_deliveries.load(Ordering::Relaxed));
        if !quiet {
            eprint!(
                "\r{:>4.0}s  events acked {acked:>9} ({:>6}/s)  deliveries {delivered:>9} ({:>6}/s)   ",
                start.elapsed().as_secs_f64(),
                acked - last_acked,
                delivered - last_delivered
            );
        }
        (last_acked, last_delivered) = (acked, delivered);
    }
}

/// Measures what a plain keep-alive HTTP/1.1 client achieves against the receiver at `concurrency`.
async fn raw_ceiling(url: &str, concurrency: usize, duration: Duration, received: &Received) -> anyhow::Result<f64> {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(concurrency)
            .build_http();
    let uri: hyper::Uri = format!("{url}/ceiling").parse()?;
    let before = received.num_ceiling.load(Ordering::Relaxed);
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, uri) = (client.clone(), uri.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let request =
                    hyper::Request::post(uri.clone()).body(Full::new(Bytes::from_static(b"1234567890123")))?;
                let response = client.request(request).await?;
                response.into_body().collect().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let num = received.num_ceiling.load(Ordering::Relaxed) - before;
    Ok(num as f64 / start.elapsed().as_secs_f64())
}

/// The kernel to measure: the one at `--kernel`, or one started now on a temporary database. Returns its endpoint,
/// root token, the started kernel (to stop at the end) and its process id when known.
async fn kernel_for(
    args: &BenchArgs,
    global: &GlobalArgs,
) -> anyhow::Result<(String, String, Option<StartedKernel>, Option<u32>)> {
    match &args.kernel {
        Some(endpoint) => {
            let token = global.token.clone().context("--token (or HOOKWIRE_TOKEN): needed with --kernel")?;
            Ok((endpoint.clone(), token, None, args.kernel_pid))
        }
        None => {
            let directory = tempfile::tempdir()?;
            let database = bench_database(args, &directory);
            let (started, endpoint, token) = start_kernel(args, &database, Some(directory)).await?;
            let pid = started.process.child.id();
            Ok((endpoint, token, Some(started), pid))
        }
    }
}

/// Creates `num` devices in a group, 32 calls at a time, and returns their tokens.
async fn create_devices(admin: &AdminClient, group_id: &str, num: usize) -> anyhow::Result<Vec<String>> {
    let mut workers = tokio::task::JoinSet::new();
    let num_workers = 32.min(num.max(1));
    for worker in 0..num_workers {
        let (admin, group_id) = (admin.clone(), group_id.to_owned());
        workers.spawn(async move {
            let mut tokens = Vec::new();
            for index in (worker..num).step_by(num_workers) {
                tokens.push(admin.create_device(group_id.clone(), format!("bench device {index}")).await?.token);
            }
            Ok::<_, anyhow::Error>(tokens)
        });
    }
    let mut tokens = Vec::with_capacity(num);
    while let Some(result) = workers.join_next().await {
        tokens.extend(result??);
    }
    Ok(tokens)
}

/// Waits for a kernel's memory to settle after a change.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// `--idle-devices`: the kernel's RSS empty, with the devices created, and with every device connected (its own
/// connection and `Connect` session, answered a ping, then idle); reports the bytes per connected device.
async fn idle_devices(args: &BenchArgs, global: &GlobalArgs, num_devices: usize) -> anyhow::Result<()> {
    let num_devices = num_devices.max(1);
    let (endpoint, token, started, kernel_pid) = kernel_for(args, global).await?;
    let pid = kernel_pid.context("--kernel-pid: needed with --kernel to read the kernel's memory")?;
    let rss = || process_rss_bytes(pid).context("cannot read the kernel's RSS from /proc");
    settle().await;
    let rss_empty = rss()?;
    let admin = AdminClient::connect(&endpoint, &token).await?;
    let group = admin.create_group("bench idle").await?;
    let tokens = create_devices(&admin, &group.id, num_devices).await?;
    settle().await;
    let rss_created = rss()?;

    let started_at = Instant::now();
    let tokens = Arc::new(tokens);
    let mut workers = tokio::task::JoinSet::new();
    let num_workers = 64.min(num_devices);
    for worker in 0..num_workers {
        let (tokens, endpoint) = (tokens.clone(), endpoint.clone());
        workers.spawn(async move {
            let mut sessions = Vec::new();
            for token in tokens.iter().skip(worker).step_by(num_workers) {
                let device = DeviceClient::connect(&endpoint, token).await?;
                let mut session = device.open_session().await?;
                // The pong proves the kernel runs the session.
                session.ping(1).await?;
                loop {
                    let Some(message) = session.next_message().await? else { bail!("the kernel ended a session") };
                    if matches!(message.kind, Some(Kind::Pong(_))) {
                        break;
                    }
                }
                sessions.push((device, session));
            }
            Ok::<_, anyhow::Error>(sessions)
        });
    }
    let mut sessions = Vec::with_capacity(num_devices);
    while let Some(result) = workers.join_next().await {
        sessions.extend(result??);
    }
    let connecting = started_at.elapsed();
    settle().await;
    let rss_connected = rss()?;
    let per_device = |base: u64| rss_connected.saturating_sub(base) as f64 / sessions.len() as f64;
    let document = json!({
        "scenario": "idle_devices",
        "devices": sessions.len(),
        "connect_seconds": connecting.as_secs_f64(),
        "rss_empty_bytes": rss_empty,
        "rss_devices_created_bytes": rss_created,
        "rss_connected_bytes": rss_connected,
        "bytes_per_device": per_device(rss_empty).round(),
        "bytes_per_session": per_device(rss_created).round(),
    });
    drop(sessions);
    if let Some(started) = started {
        started.kill().await;
    }
    if args.json {
        println!("{document}");
    } else {
        println!("hookwire bench: {} idle devices, each on its own connection", document["devices"]);
        let mib = |key: &str| document[key].as_f64().unwrap_or(0.0) / 1_048_576.0;
        println!(
            "  kernel RSS  empty {:.1} MiB, devices created {:.1} MiB, all connected {:.1} MiB",
            mib("rss_empty_bytes"),
            mib("rss_devices_created_bytes"),
            mib("rss_connected_bytes")
        );
        println!(
            "  per connected device: {:.1} KiB beyond the empty kernel ({:.1} KiB for the session alone); connected in {:.1} s",
            document["bytes_per_device"].as_f64().unwrap_or(0.0) / 1024.0,
            document["bytes_per_session"].as_f64().unwrap_or(0.0) / 1024.0,
            connecting.as_secs_f64()
        );
    }
    Ok(())
}

/// `--restart-pending`: a kernel acks `num_pending` events whose one webhook points at a port where nothing
/// listens yet (each first attempt is refused and waits ten minutes for its retry, so every delivery stays
/// pending), and is killed with SIGKILL; then the receiver takes the port and a new kernel starts on the same
/// database. Reports the time from the restart to the first delivery and the rate at which the rest drain.
async fn restart_pending(args: &BenchArgs, num_pending: u64) -> anyhow::Result<()> {
    let epoch = Instant::now();
    let received = Arc::new(Received::default());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let directory = tempfile::tempdir()?;
    let database = bench_database(args, &directory);

    let (first, endpoint, token) = start_kernel(args, &database, None).await?;
    let admin = AdminClient::connect(&endpoint, &token).await?;
    let group = admin.create_group("bench restart").await?;
    let definition = json!({
        "event": "bench",
        "url": format!("http://127.0.0.1:{port}/hook/0"),
        "body": "{{{PARTICLE_EVENT_VALUE}}}",
        "x-retry": {"attempts": 20, "backoff": [600_000], "jitter": false},
    });
    admin.create_webhook(group.id.clone(), definition.to_string()).await?;
    let tokens = create_devices(&admin, &group.id, args.devices.max(1)).await?;
    let num_acked = Arc::new(AtomicU64::new(0));
    let num_errors = Arc::new(AtomicU64::new(0));
    let num_sent = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let publishing = Instant::now();
    let publisher = Publisher {
        epoch,
        deadline,
        limit: Some(num_pending),
        num_sent,
        num_acked: num_acked.clone(),
        num_errors: num_errors.clone(),
    };
    let publishers = spawn_publishers(&endpoint, tokens, &publisher, None, args.window).await?;
    for publisher in publishers {
        publisher.await??;
    }
    let publishing = publishing.elapsed();
    // Let the first attempts be made and refused, as in an outage of the destination.
    settle().await;
    first.kill().await;
    let num_pending = num_acked.load(Ordering::Relaxed);
    if !args.json {
        eprintln!("{num_pending} events acked in {:.1} s; kernel killed; restarting", publishing.as_secs_f64());
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("bind the receiver on the destination's port {port}"))?;
    start_receiver(listener, epoch, received.clone())?;
    let restarted_at = epoch.elapsed();
    let (second, _endpoint, _token) = start_kernel(args, &database, None).await?;
    let ready = epoch.elapsed() - restarted_at;
    let pid = second.process.child.id();
    let progress = tokio::spawn(progress_line(Arc::new(AtomicU64::new(num_pending)), received.clone(), args.json));
    let drain_deadline = Instant::now() + Duration::from_secs(600);
    while received.num_deliveries.load(Ordering::Relaxed) < num_pending && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.abort();
    let rss_bytes = pid.and_then(process_rss_bytes);
    second.kill().await;
    drop(directory);
    if !args.json {
        eprintln!();
    }
    let num_delivered = received.num_deliveries.load(Ordering::Relaxed);
    let since_restart = |ns: u64| Duration::from_nanos(ns).saturating_sub(restarted_at).as_secs_f64();
    let first_delivery = since_restart(received.first_delivery_ns.load(Ordering::Relaxed));
    let drained = since_restart(received.last_delivery_ns.load(Ordering::Relaxed));
    let drain_per_s = num_delivered as f64 / (drained - first_delivery).max(1e-3);
    let document = json!({
        "scenario": "restart_pending",
        "pending": num_pending,
        "delivered": num_delivered,
        "publish_seconds": publishing.as_secs_f64(),
        "ready_seconds": ready.as_secs_f64(),
        "first_delivery_seconds": first_delivery,
        "drained_seconds": drained,
        "drain_per_s": drain_per_s.round(),
        "rss_bytes": rss_bytes,
        "errors": num_errors.load(Ordering::Relaxed),
    });
    if args.json {
        println!("{document}");
    } else {
        println!("hookwire bench: restart with {num_pending} deliveries pending");
        println!(
            "  kernel ready {:.2} s after the restart; first delivery after {first_delivery:.2} s",
            ready.as_secs_f64()
        );
        println!("  delivered {num_delivered} of {num_pending}, the last after {drained:.2} s = {drain_per_s:.0}/s");
        println!("  errors {}", document["errors"]);
    }
    Ok(())
}

fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields overall.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn print_summary(document: &serde_json::Value) {
    let number = |key: &str| document[key].as_f64().unwrap_or(0.0);
    let latency = &document["latency_ms"];
    println!(
        "hookwire bench: {} loop, {} devices, {} webhook(s) per event",
        document["mode"].as_str().unwrap_or("?"),
        document["devices"],
        document["webhooks_per_event"]
    );
    println!(
        "  events acked       {:>10} in {:.1} s = {:.0}/s",
        document["events_acked"],
        number("seconds"),
        number("events_per_s")
    );
    println!(
        "  deliveries         {:>10} of {} = {:.0}/s",
        document["deliveries_received"],
        document["deliveries_expected"],
        number("deliveries_per_s")
    );
    if let Some(ceiling) = document["raw_ceiling_per_s"].as_f64() {
        println!(
            "  raw HTTP ceiling   {ceiling:>10.0}/s   (hookwire = {:.2} x ceiling)",
            number("fraction_of_ceiling")
        );
    }
    println!(
        "  latency publish -> receive  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        latency["p50"].as_f64().unwrap_or(0.0),
        latency["p90"].as_f64().unwrap_or(0.0),
        latency["p99"].as_f64().unwrap_or(0.0),
        latency["max"].as_f64().unwrap_or(0.0)
    );
    if let Some(rss) = document["rss_bytes"].as_u64() {
        println!("  kernel RSS {:.1} MiB, CPU {}%", rss as f64 / 1_048_576.0, document["cpu_percent"]);
    }
    println!("  errors {}", document["errors"]);
}
