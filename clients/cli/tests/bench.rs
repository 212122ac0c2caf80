//! `hookwire bench` as a process against a real kernel: the scenarios run to the end and print the documented
//! JSON. Nothing here checks a speed; the figures are the bench's business (docs/performance.md).

use hookwire_tests::{ROOT_TOKEN, TestKernel};
use serde_json::Value;

/// Runs `hookwire bench --kernel <kernel> ARGS --json` with the root token and parses its JSON document.
async fn bench(kernel: &TestKernel, args: &[&str]) -> Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(["bench", "--kernel", &kernel.endpoint, "--json"])
        .args(args)
        .env("HOOKWIRE_TOKEN", ROOT_TOKEN)
        .output()
        .await
        .expect("run hookwire bench");
    assert!(output.status.success(), "hookwire bench {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{args:?} printed no JSON ({error}): {:?}", output.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_closed_loop_run_delivers_every_acked_event_to_every_webhook() {
    let kernel = TestKernel::spawn().await;
    let args = ["--count", "60", "--devices", "3", "--webhooks", "2", "--duration", "60", "--ceiling-seconds", "0"];
    let result = bench(&kernel, &args).await;
    assert_eq!(result["mode"], "closed");
    assert_eq!(result["events_acked"], 60, "{result}");
    assert_eq!(result["deliveries_received"], 120, "{result}");
    assert_eq!(result["deliveries_expected"], 120);
    assert_eq!(result["errors"], 0);
    assert!(result["latency_ms"]["p99"].as_f64().is_some(), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_devices_connect_and_report_the_memory_per_device() {
    let kernel = TestKernel::spawn().await;
    // The kernel runs in this process: its memory is this process's.
    let pid = std::process::id().to_string();
    let result = bench(&kernel, &["--idle-devices", "20", "--kernel-pid", &pid]).await;
    assert_eq!(result["scenario"], "idle_devices");
    assert_eq!(result["devices"], 20, "{result}");
    for key in ["rss_empty_bytes", "rss_devices_created_bytes", "rss_connected_bytes", "bytes_per_device"] {
        assert!(result[key].as_f64().is_some(), "{key} missing in {result}");
    }
}

#[tokio::test]
async fn several_kernels_are_refused_on_sqlite() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(["bench", "--kernels", "2", "--json"])
        .output()
        .await
        .expect("run hookwire bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--database postgres://"), "{stderr}");
}

/// `--kernels 2` starts two `hookwired` processes (the debug build beside this CLI: `cargo build --bin hookwired`)
/// on one PostgreSQL database (`HOOKWIRE_TEST_POSTGRES`; skipped without it) and reports each kernel's part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kernels_on_one_postgres_database_each_deliver_their_devices_events() {
    let Some(server) = std::env::var("HOOKWIRE_TEST_POSTGRES").ok().filter(|server| !server.is_empty()) else {
        eprintln!("skipped: HOOKWIRE_TEST_POSTGRES is not set");
        return;
    };
    let hookwired = std::path::Path::new(env!("CARGO_BIN_EXE_hookwire")).with_file_name("hookwired");
    if !hookwired.is_file() {
        eprintln!("skipped: no hookwired beside the CLI (cargo build --bin hookwired)");
        return;
    }
    let database = {
        use sqlx::Executor as _;
        let name = format!("hw_bench_{}_{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
        let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("connect to PostgreSQL");
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create a database");
        admin.close().await;
        format!("{server}/{name}")
    };
    let args =
        ["--kernels", "2", "--database", &database, "--devices", "4", "--duration", "2", "--ceiling-seconds", "0"];
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(["bench", "--json"])
        .args(args)
        .output()
        .await
        .expect("run hookwire bench");
    assert!(output.status.success(), "hookwire bench failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(result["kernels"], 2, "{result}");
    assert_eq!(result["deliveries_received"], result["deliveries_expected"], "{result}");
    let per_kernel = result["per_kernel"].as_array().expect("per_kernel");
    assert_eq!(per_kernel.len(), 2, "{result}");
    let mut total = 0;
    for kernel in per_kernel {
        assert_eq!(kernel["devices"], 2, "{result}");
        let delivered = kernel["deliveries_received"].as_u64().expect("deliveries_received");
        assert!(delivered > 0, "each kernel delivers its own devices' events: {result}");
        assert!(kernel["cpu_seconds"].as_f64().is_some() && kernel["rss_bytes"].as_u64().is_some(), "{result}");
        total += delivered;
    }
    assert_eq!(result["deliveries_received"], total, "{result}");
}
