//! [`KernelProcess`]: a real `hookwired` process for the tests that kill, freeze or stop a kernel. It is started
//! on a random loopback port with `--ready-file`, and is ready when that file appears (it holds the bound address),
//! not when a log line says so. Its log goes to a file ([`KernelProcess::log_path`]) for when a test fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The `hookwired` binary: `HOOKWIRE_TEST_HOOKWIRED`, or the one cargo built beside the running test binary.
/// `None` when neither exists (`cargo build --bin hookwired`).
pub fn hookwired() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HOOKWIRE_TEST_HOOKWIRED") {
        return Some(PathBuf::from(path));
    }
    let deps = std::env::current_exe().ok()?;
    let binary = deps.parent()?.parent()?.join("hookwired");
    binary.exists().then_some(binary)
}

/// A `hookwired` process, killed when dropped.
#[derive(Debug)]
pub struct KernelProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its process id.
    pub pid: u32,
    directory: tempfile::TempDir,
}

impl KernelProcess {
    /// Starts `binary` on `database` with the test defaults (loopback port 0, loopback destinations allowed, the
    /// test root token, no console, JSON logs) and `args` after them; returns once its ready file is written.
    pub async fn start(binary: &Path, database: &str, args: &[String]) -> KernelProcess {
        let directory = tempfile::tempdir().expect("a folder for the ready file");
        let ready_file = directory.path().join("ready.json");
        let log = std::fs::File::create(directory.path().join("hookwired.log")).expect("the log file");
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--allow-destination", "127.0.0.0/8", "--log-format", "json"])
            // No web console: several kernels run at once, and the default port may be a running hookwired's.
            .args(["--console-listen", "off", "--database", database])
            .arg("--ready-file")
            .arg(&ready_file)
            .args(args)
            .env("HOOKWIRE_ROOT_TOKEN", crate::ROOT_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
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
        let pid = child.id().expect("a running hookwired has a pid");
        KernelProcess { child, endpoint: format!("http://{address}"), pid, directory }
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to the process.
    pub async fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid.to_string()).status().await;
        assert!(status.expect("run kill").success(), "kill -{signal} {}", self.pid);
    }

    /// Kills the process with SIGKILL and waits for it.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("hookwired's status");
    }

    /// Waits for the process to end (`within` at most); returns whether it exited with success.
    pub async fn wait(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("hookwired {} did not exit within {within:?}", self.pid))
            .expect("hookwired's status")
            .success()
    }

    /// Its node id in the `kernels` table (`knl_...`), read from its log ("kernel registered", written before it is
    /// ready).
    pub fn node_id(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).expect("read the log");
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|record| record["message"] == "kernel registered")
            .and_then(|record| record["node_id"].as_str().map(str::to_owned))
            .expect("\"kernel registered\" with its node id in the log")
    }

    /// The file its log (stderr) goes to; it is deleted with the process.
    pub fn log_path(&self) -> PathBuf {
        self.directory.path().join("hookwired.log")
    }
}
