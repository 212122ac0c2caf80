//! `hookwired` as a child process, for the commands that bring their own kernel (`demo`, `bench`). The CLI does
//! not link the server: it starts the `hookwired` binary beside its own executable (or one given by path) on a
//! random loopback port, waits for the ready file the kernel writes once it serves (`--ready-file`, which holds
//! the bound address), and kills it when done or dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long a starting kernel may take to serve (migrations on a fresh database included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `hookwired` this process started. Dropping it kills the process.
pub struct KernelProcess {
    pub child: tokio::process::Child,
    /// `http://ADDRESS`, the address the kernel bound.
    pub endpoint: String,
    /// Holds the ready file until the kernel ends.
    _ready_folder: tempfile::TempDir,
}

impl KernelProcess {
    /// Kills the kernel (SIGKILL) and waits for it to end.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The `hookwired` binary to start: `explicit` when given, else the one beside this executable. When there is
/// none, the error says what to build.
pub fn binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let this_binary = std::env::current_exe().context("the path of this executable")?;
    let beside = this_binary.with_file_name(format!("hookwired{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() {
        return Ok(beside);
    }
    // A checkout's `target/debug/hookwire` wants the debug build beside it; any other folder the release build.
    let in_debug_folder = this_binary.parent().and_then(Path::file_name).is_some_and(|name| name == "debug");
    let build = if in_debug_folder { "cargo build --bin hookwired" } else { "cargo build --release --bin hookwired" };
    bail!(
        "hookwired (the server) is not beside this binary: {} does not exist. In a checkout, build it with \
         `{build}`, or give its path with --hookwired",
        beside.display()
    )
}

/// Starts `binary` on a random loopback port with `database`, the root token `root_token`, loopback destinations
/// allowed, `extra_args`, and no other setting, and waits until it serves.
pub async fn start(
    binary: &Path,
    database: &str,
    root_token: &str,
    extra_args: &[&str],
) -> anyhow::Result<KernelProcess> {
    let ready_folder = tempfile::tempdir().context("a temporary folder for hookwired's ready file")?;
    let ready_file = ready_folder.path().join("ready.json");
    let mut command = tokio::process::Command::new(binary);
    // The kernel gets only the settings given here: none of this shell's HOOKWIRE_* variables, which belong to
    // the CLI (HOOKWIRE_CONFIG names the CLI's config file, which the kernel would read as its own) or to another
    // kernel.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKWIRE_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--allow-destination", "127.0.0.0/8", "--log-format", "json"])
        .args(["--database", database])
        .args(extra_args)
        .arg("--ready-file")
        .arg(&ready_file)
        .env("HOOKWIRE_ROOT_TOKEN", root_token)
        // No web console: it would take its default port, perhaps a running hookwired's.
        .env("HOOKWIRE_CONSOLE_LISTEN", "off")
        .env("RUST_LOG", "warn,hookwire_kernel=info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} (give its path with --hookwired)", binary.display()))?;
    let address = tokio::time::timeout(READY_TIMEOUT, async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                let ready: serde_json::Value = serde_json::from_str(&text).context("hookwired's ready file")?;
                return Ok(ready["address"].as_str().unwrap_or_default().to_owned());
            }
            if let Some(status) = child.try_wait()? {
                bail!("{} exited ({status}) before it was ready; run it by hand to see why", binary.display())
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .with_context(|| format!("hookwired was not ready within {} s", READY_TIMEOUT.as_secs()))??;
    Ok(KernelProcess { child, endpoint: format!("http://{address}"), _ready_folder: ready_folder })
}
