//! What the process tests share: starting `hookwired` as a child process and finding its address.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// The root token of kernels started here.
pub const ROOT_TOKEN: &str = "process-test-root-token";

/// Starts `hookwired` on a random port with a SQLite database at `database`, through `bash -c` so that `shell_prefix`
/// (such as `ulimit -S -f 400;`) applies to it, and returns it with its endpoint, read from its "ready" log line.
pub async fn start_kernel(database: &Path, shell_prefix: &str) -> (Child, String) {
    let script = format!(
        "{shell_prefix} exec \"$0\" --listen 127.0.0.1:0 --allow-destination 127.0.0.0/8 --log-format json --database \"$1\""
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_hookwired"))
        .arg(format!("sqlite://{}", database.display()))
        .env("HOOKWIRE_ROOT_TOKEN", ROOT_TOKEN)
        // No web console: it would take the same default port in every test process.
        .env("HOOKWIRE_CONSOLE_LISTEN", "off")
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
    // Keep draining the log so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}"))
}
