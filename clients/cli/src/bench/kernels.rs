//! Process control of the `hookwired` kernels a bench run starts, or the one it is pointed at.

use anyhow::Context as _;

use super::BenchArgs;
use crate::GlobalArgs;
use crate::kernel_process::{self, KernelProcess};

/// A kernel this run started, with the folder of its database when the kernel owns it.
pub(super) struct StartedKernel {
    pub(super) process: KernelProcess,
    _directory: Option<tempfile::TempDir>,
}

impl StartedKernel {
    /// Kills the kernel (SIGKILL) and waits for it to end.
    pub(super) async fn kill(self) {
        self.process.kill().await;
    }
}

/// The database of a started kernel: `--database`, or SQLite in `directory`.
pub(super) fn bench_database(args: &BenchArgs, directory: &tempfile::TempDir) -> String {
    args.database.clone().unwrap_or_else(|| format!("sqlite://{}", directory.path().join("bench.db").display()))
}

/// Starts `hookwired` on a random port with `database` and returns it (owning `directory`), its endpoint and
/// root token.
pub(super) async fn start_kernel(
    args: &BenchArgs,
    database: &str,
    directory: Option<tempfile::TempDir>,
) -> anyhow::Result<(StartedKernel, String, String)> {
    let binary = kernel_process::binary(args.hookwired.as_deref())?;
    let token = format!("bench-{}", std::process::id());
    // The connection cap is not what is measured, and `--idle-devices 10000` opens more than its default.
    let process = kernel_process::start(&binary, database, &token, &["--max-connections", "1000000"]).await?;
    let endpoint = process.endpoint.clone();
    Ok((StartedKernel { process, _directory: directory }, endpoint, token))
}

/// The kernels of a publishing run: the first (the one at `--kernel`, or one started now) and, with `--kernels N`,
/// N - 1 more started on its database once the run's webhooks and devices exist, so that each loads them at its
/// start. Devices are spread across them in turn.
pub(super) struct RunKernels {
    /// Each kernel's endpoint.
    pub(super) endpoints: Vec<String>,
    /// Each kernel's process id, when known.
    pub(super) pids: Vec<Option<u32>>,
    started: Vec<StartedKernel>,
}

impl RunKernels {
    /// The first kernel alone.
    pub(super) fn first(endpoint: String, started: Option<StartedKernel>, pid: Option<u32>) -> Self {
        RunKernels { endpoints: vec![endpoint], pids: vec![pid], started: started.into_iter().collect() }
    }

    /// Starts the other `--kernels` on `--database`, one after the other.
    pub(super) async fn start_others(&mut self, args: &BenchArgs) -> anyhow::Result<()> {
        for _ in 1..args.kernels {
            let database = args.database.as_deref().context("--kernels above 1 needs --database postgres://...")?;
            let (started, endpoint, _token) = start_kernel(args, database, None).await?;
            self.pids.push(started.process.child.id());
            self.endpoints.push(endpoint);
            self.started.push(started);
        }
        Ok(())
    }

    /// Kills the kernels this run started.
    pub(super) async fn kill(self) {
        for started in self.started {
            started.kill().await;
        }
    }
}

/// Refuses `--kernels N` above 1 where N kernels cannot run: on SQLite (one kernel per file) or with `--kernel`.
pub(super) fn check_kernels(args: &BenchArgs) -> anyhow::Result<()> {
    if args.kernels == 0 {
        anyhow::bail!("--kernels: at least 1");
    }
    let on_postgres = args.database.as_deref().is_some_and(|url| url.starts_with("postgres"));
    if args.kernels > 1 && (args.kernel.is_some() || !on_postgres) {
        anyhow::bail!(
            "--kernels above 1 starts its kernels on one PostgreSQL database: give --database postgres://... and no --kernel"
        );
    }
    Ok(())
}

/// The kernel to measure: the one at `--kernel`, or one started now on a temporary database. Returns its endpoint,
/// root token, the started kernel (to stop at the end) and its process id when known.
pub(super) async fn kernel_for(
    args: &BenchArgs,
    global: &GlobalArgs,
) -> anyhow::Result<(String, String, Option<StartedKernel>, Option<u32>)> {
    match &args.kernel {
        Some(endpoint) => {
            let token = global.token.clone().context("--token (or HOOKWIRE_TOKEN): needed with --kernel")?;
            Ok((endpoint.clone(), token, None, args.kernel_pid))
        }
        None => {
            let directory = tempfile::tempdir()?;
            let database = bench_database(args, &directory);
            let (started, endpoint, token) = start_kernel(args, &database, Some(directory)).await?;
            let pid = started.process.child.id();
            Ok((endpoint, token, Some(started), pid))
        }
    }
}
