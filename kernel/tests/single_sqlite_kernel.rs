//! SQLite serves one kernel: a second `hookwired` process on the same file is refused at start with a message
//! that says to use PostgreSQL, while the first keeps serving; once the first is gone, a new one starts.

use hookwire_client::AdminClient;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

const ROOT_TOKEN: &str = "single-kernel-test-root-token";

/// The `hookwired` to run: cargo's, or `HOOKWIRE_TEST_HOOKWIRED` (a copy, when several checkouts share a target
/// folder and overwrite each other's binary).
fn hookwired() -> String {
    std::env::var("HOOKWIRE_TEST_HOOKWIRED").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hookwired").to_owned())
}

/// Starts `hookwired` on `database` and returns it with its endpoint, read from its "ready" log line.
async fn start_kernel(database: &Path) -> (Child, String) {
    let mut child = Command::new(hookwired())
        .args(["--listen", "127.0.0.1:0", "--log-format", "json", "--console-listen", "off", "--database"])
        .arg(format!("sqlite://{}", database.display()))
        .env("HOOKWIRE_ROOT_TOKEN", ROOT_TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start hookwired");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read the log") {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if record["message"] == "hookwired ready" {
                return record["address"].as_str().expect("address in the ready line").to_owned();
            }
        }
        panic!("hookwired exited before it was ready");
    })
    .await
    .expect("hookwired ready within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hookwired_on_the_same_sqlite_file_is_refused_at_start_and_told_to_use_postgresql() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("hookwire.db");
    let (mut first, endpoint) = start_kernel(&database).await;

    let second = Command::new(hookwired())
        .args(["--listen", "127.0.0.1:0", "--console-listen", "off", "--database"])
        .arg(format!("sqlite://{}", database.display()))
        .env("HOOKWIRE_ROOT_TOKEN", ROOT_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let second = tokio::time::timeout(Duration::from_secs(30), second).await.expect("refused within 30 s").unwrap();
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second kernel must not run: {message}");
    assert!(message.contains("already used by another hookwired"), "{message}");
    assert!(message.contains("use PostgreSQL"), "{message}");
    assert!(message.contains(&format!("process {}", first.id().unwrap())), "names the holder: {message}");

    let admin = AdminClient::connect(&endpoint, ROOT_TOKEN).await.unwrap();
    admin.list_groups().await.expect("the first kernel still serves");

    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let (mut again, endpoint) = start_kernel(&database).await;
    AdminClient::connect(&endpoint, ROOT_TOKEN).await.unwrap().list_groups().await.expect("a new kernel serves");
    again.start_kill().unwrap();
}
