//! `--restart-pending N`: a restart with N deliveries pending, its first delivery and its drain rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hookwire_client::AdminClient;
use serde_json::json;

use super::BenchArgs;
use super::idle::settle;
use super::kernels::{bench_database, start_kernel};
use super::procfs::process_rss_bytes;
use super::progress_line;
use super::publisher::{Publisher, create_devices, spawn_publishers};
use super::receiver::{Received, start_receiver};

/// `--restart-pending`: a kernel acks `num_pending` events whose one webhook points at a port where nothing
/// listens yet (each first attempt is refused and waits ten minutes for its retry, so every delivery stays
/// pending), and is killed with SIGKILL; then the receiver takes the port and a new kernel starts on the same
/// database. Reports the time from the restart to the first delivery and the rate at which the rest drain.
pub(super) async fn restart_pending(args: &BenchArgs, num_pending: u64) -> anyhow::Result<()> {
    let epoch = Instant::now();
    let received = Arc::new(Received::new(1));
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
        kernel: 0,
    };
    let publishers = spawn_publishers(std::slice::from_ref(&endpoint), tokens, &publisher, None, args.window).await?;
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
