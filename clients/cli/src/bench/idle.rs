//! `--idle-devices N`: the kernel's memory per connected idle device.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hookwire_client::proto::kernel_message::Kind;
use hookwire_client::{AdminClient, DeviceClient};
use serde_json::json;

use super::BenchArgs;
use super::kernels::kernel_for;
use super::procfs::process_rss_bytes;
use super::publisher::create_devices;
use crate::GlobalArgs;

/// Waits for a kernel's memory to settle after a change.
pub(super) async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// `--idle-devices`: the kernel's RSS empty, with the devices created, and with every device connected (its own
/// connection and `Connect` session, answered a ping, then idle); reports the bytes per connected device.
pub(super) async fn idle_devices(args: &BenchArgs, global: &GlobalArgs, num_devices: usize) -> anyhow::Result<()> {
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
