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

mod idle;
mod kernels;
mod procfs;
mod publisher;
mod receiver;
mod restart;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use hookwire_client::AdminClient;
use serde_json::json;

use crate::GlobalArgs;
use kernels::{RunKernels, kernel_for};
use procfs::{process_cpu_seconds, process_rss_bytes};
use publisher::{Publisher, create_devices, spawn_publishers};
use receiver::{Received, raw_ceiling, start_receiver};

pub const EXAMPLES: &str = "\
Examples:
  hookwire bench                                  # the main throughput scenario, under a minute
  hookwire bench --webhooks 10 --duration 20      # ten webhooks per event
  hookwire bench --rate 1000 --devices 10         # open loop at 1,000 events/s, for latency
  hookwire bench --idle-devices 10000             # kernel memory per connected idle device
  hookwire bench --restart-pending 100000         # restart with deliveries pending: first delivery, drain rate
  hookwire bench --database postgres://u@h/db --kernels 3   # three kernels on one PostgreSQL database
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
    /// Kernels to start on --database (PostgreSQL only above 1), with the devices spread across them in turn; the
    /// summary gives the aggregate and each kernel's figures
    #[arg(long, default_value_t = 1, conflicts_with_all = ["kernel", "idle_devices", "restart_pending"])]
    kernels: usize,
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

pub async fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(num_devices) = args.idle_devices {
        return idle::idle_devices(&args, global, num_devices).await;
    }
    if let Some(num_pending) = args.restart_pending {
        return restart::restart_pending(&args, num_pending).await;
    }
    kernels::check_kernels(&args)?;
    let epoch = Instant::now();
    let received = Arc::new(Received::new(args.kernels));
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
    let mut kernels = RunKernels::first(endpoint, started, kernel_pid);
    kernels.start_others(&args).await?;
    let cpu_before: Vec<Option<f64>> = kernels.pids.iter().map(|pid| pid.and_then(process_cpu_seconds)).collect();

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
        kernel: 0,
    };
    let per_device_rate = args.rate.map(|rate| rate as f64 / args.devices as f64);
    let publishers = spawn_publishers(&kernels.endpoints, tokens, &publisher, per_device_rate, args.window).await?;
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
    let per_kernel = kernel_figures(&kernels, &cpu_before, &received, &args, delivering);
    let ceiling = if args.ceiling_seconds > 0 {
        Some(
            raw_ceiling(&receiver_url, args.ceiling_concurrency, Duration::from_secs(args.ceiling_seconds), &received)
                .await?,
        )
    } else {
        None
    };
    kernels.kill().await;

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
        "rss_bytes": sum_of(&per_kernel, "rss_bytes").map(|bytes| bytes as u64),
        "cpu_seconds": sum_of(&per_kernel, "cpu_seconds"),
        "cpu_percent": sum_of(&per_kernel, "cpu_seconds").map(|seconds| (seconds / delivering.as_secs_f64() * 100.0).round()),
        "errors": num_errors.load(Ordering::Relaxed),
        "kernels": args.kernels,
        "per_kernel": per_kernel,
    });
    if args.json {
        println!("{document}");
    } else {
        print_summary(&document);
    }
    Ok(())
}

/// Each kernel's figures: its devices, the deliveries of their events, its CPU over the run and its RSS at the end.
fn kernel_figures(
    kernels: &RunKernels,
    cpu_before: &[Option<f64>],
    received: &Received,
    args: &BenchArgs,
    delivering: Duration,
) -> Vec<serde_json::Value> {
    let seconds = delivering.as_secs_f64();
    kernels
        .pids
        .iter()
        .zip(cpu_before)
        .enumerate()
        .map(|(index, (pid, before))| {
            let cpu_seconds = pid.and_then(process_cpu_seconds).zip(*before).map(|(after, before)| after - before);
            let num_deliveries = received.per_kernel[index].load(Ordering::Relaxed);
            json!({
                "devices": (index..args.devices).step_by(args.kernels).count(),
                "deliveries_received": num_deliveries,
                "deliveries_per_s": (num_deliveries as f64 / seconds).round(),
                "rss_bytes": pid.and_then(process_rss_bytes),
                "cpu_seconds": cpu_seconds,
                "cpu_percent": cpu_seconds.map(|cpu| (cpu / seconds * 100.0).round()),
            })
        })
        .collect()
}

/// The sum of a figure over the kernels, when every kernel has it.
fn sum_of(per_kernel: &[serde_json::Value], key: &str) -> Option<f64> {
    per_kernel.iter().map(|kernel| kernel[key].as_f64()).sum()
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
    if let Some(rss) = document["rss_bytes"].as_f64() {
        println!("  kernel RSS {:.1} MiB, CPU {}%", rss / 1_048_576.0, document["cpu_percent"]);
    }
    let per_kernel = document["per_kernel"].as_array().map(Vec::as_slice).unwrap_or_default();
    if per_kernel.len() > 1 {
        for (index, kernel) in per_kernel.iter().enumerate() {
            println!(
                "  kernel {index}: {} devices, deliveries {:>10} = {:.0}/s, RSS {:.1} MiB, CPU {}%",
                kernel["devices"],
                kernel["deliveries_received"],
                kernel["deliveries_per_s"].as_f64().unwrap_or(0.0),
                kernel["rss_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
                kernel["cpu_percent"]
            );
        }
    }
    println!("  errors {}", document["errors"]);
}
