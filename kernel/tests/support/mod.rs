//! What the process tests share: starting `hookwired` as a child process and finding its address.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The root token of kernels started here.
pub const ROOT_TOKEN: &str = "process-test-root-token";

/// Starts `hookwired` on a random port with a SQLite database at `database`, through `bash -c` so that `shell_prefix`
/// (such as `ulimit -S -f 400;`) applies to it, and returns it with its endpoint, read from its ready file
/// (`--ready-file`, beside the database).
pub async fn start_kernel(database: &Path, shell_prefix: &str) -> (Child, String) {
    let ready_file = database.with_extension("ready.json");
    let _ = std::fs::remove_file(&ready_file);
    let script = format!(
        "{shell_prefix} exec \"$0\" --listen 127.0.0.1:0 --allow-destination 127.0.0.0/8 --log-format json --database \"$1\" --ready-file \"$2\""
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_hookwired"))
        .arg(format!("sqlite://{}", database.display()))
        .arg(&ready_file)
        .env("HOOKWIRE_ROOT_TOKEN", ROOT_TOKEN)
        // No web console: it would take the same default port in every test process.
        .env("HOOKWIRE_CONSOLE_LISTEN", "off")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start hookwired");
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                let ready: serde_json::Value = serde_json::from_str(&text).expect("the ready file is JSON");
                return ready["address"].as_str().expect("address in the ready file").to_owned();
            }
            if let Some(status) = child.try_wait().expect("hookwired's status") {
                panic!("hookwired exited ({status}) before it was ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("hookwired ready within 30 s");
    (child, format!("http://{address}"))
}
