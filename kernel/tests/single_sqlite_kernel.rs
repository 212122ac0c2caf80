//! SQLite serves one kernel: a second `hookwired` process on the same file is refused at start with a message
//! that says to use PostgreSQL, while the first keeps serving; once the first is gone, a new one starts.

mod support;

use hookwire_client::AdminClient;
use std::process::Stdio;
use std::time::Duration;
use support::{ROOT_TOKEN, start_kernel};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hookwired_on_the_same_sqlite_file_is_refused_at_start_and_told_to_use_postgresql() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("hookwire.db");
    let (mut first, endpoint) = start_kernel(&database, "").await;

    let second = Command::new(env!("CARGO_BIN_EXE_hookwired"))
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
    let (mut again, endpoint) = start_kernel(&database, "").await;
    AdminClient::connect(&endpoint, ROOT_TOKEN).await.unwrap().list_groups().await.expect("a new kernel serves");
    again.start_kill().unwrap();
}
