//! `hookwired`: the hookwire server. Parses flags over the settings file and environment, starts tracing, binds
//! the listener and runs the kernel until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Parser;
use hookwire_kernel::settings::{LogFormat, Settings};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc rather than glibc's malloc: see docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hookwire's server: devices stream events over gRPC; webhooks deliver them.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  hookwired\n  hookwired --database postgres://hookwire@localhost/hookwire --listen 0.0.0.0:50051\n  HOOKWIRE_ROOT_TOKEN=secret hookwired --allow-destination 127.0.0.0/8"
)]
struct Flags {
    /// Address to serve gRPC on [default: 127.0.0.1:50051]
    #[arg(long, env = "HOOKWIRE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Database URL: sqlite://PATH (created if missing) or postgres://... [default: sqlite://hookwire.db]
    #[arg(long, env = "HOOKWIRE_DATABASE")]
    database: Option<String>,
    /// A TOML settings file (keys as in the README); flags and HOOKWIRE_* variables override it
    #[arg(long, env = "HOOKWIRE_CONFIG")]
    config: Option<PathBuf>,
    /// Allow destinations in this range although private, loopback or link-local (repeatable)
    #[arg(long = "allow-destination", env = "HOOKWIRE_ALLOW_DESTINATION", value_delimiter = ',')]
    allow_destination: Vec<IpNet>,
    /// Most requests in flight to one destination host [default: 64]
    #[arg(long, env = "HOOKWIRE_MAX_IN_FLIGHT_PER_HOST")]
    max_in_flight_per_host: Option<usize>,
    /// Milliseconds allowed for a destination's answer [default: 20000]
    #[arg(long, env = "HOOKWIRE_RESPONSE_TIMEOUT_MS")]
    response_timeout_ms: Option<u64>,
    /// Milliseconds allowed to connect to a destination [default: 10000]
    #[arg(long, env = "HOOKWIRE_CONNECT_TIMEOUT_MS")]
    connect_timeout_ms: Option<u64>,
    /// Send deliveries through this HTTP CONNECT proxy: http://[user:password@]host:port
    #[arg(long, env = "HOOKWIRE_OUTBOUND_PROXY")]
    outbound_proxy: Option<String>,
    /// Largest event data in bytes [default: 1024]
    #[arg(long, env = "HOOKWIRE_MAX_DATA_BYTES")]
    max_data_bytes: Option<usize>,
    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, env = "HOOKWIRE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Log format
    #[arg(long, env = "HOOKWIRE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Days the attempt log is kept [default: 30]
    #[arg(long, env = "HOOKWIRE_RETENTION_DAYS")]
    retention_days: Option<u32>,
    /// Seconds a kernel's lease lasts after its last heartbeat, with several kernels on one database [default: 30]
    #[arg(long, env = "HOOKWIRE_CLUSTER_LEASE_SECS")]
    cluster_lease_secs: Option<u64>,
}

fn settings(flags: Flags) -> anyhow::Result<Settings> {
    let mut settings = match &flags.config {
        Some(path) => Settings::from_file(path).map_err(anyhow::Error::msg)?,
        None => Settings::default(),
    };
    if let Some(listen) = flags.listen {
        settings.listen = listen;
    }
    if let Some(database) = flags.database {
        settings.database = database;
    }
    if !flags.allow_destination.is_empty() {
        settings.allow_destination = flags.allow_destination;
    }
    if let Some(value) = flags.max_in_flight_per_host {
        settings.max_in_flight_per_host = value;
    }
    if let Some(value) = flags.response_timeout_ms {
        settings.response_timeout_ms = value;
    }
    if let Some(value) = flags.connect_timeout_ms {
        settings.connect_timeout_ms = value;
    }
    if let Some(proxy) = flags.outbound_proxy {
        settings.outbound_proxy = Some(proxy);
    }
    if let Some(value) = flags.max_data_bytes {
        settings.max_data_bytes = value;
    }
    if let Some(days) = flags.retention_days {
        settings.retention_days = days;
    }
    if let Some(secs) = flags.cluster_lease_secs {
        settings.cluster_lease_secs = secs;
    }
    if let Some(address) = flags.metrics_listen {
        settings.metrics_listen = Some(address);
    }
    if let Some(format) = flags.log_format {
        settings.log_format = format;
    }
    if let Ok(token) = std::env::var("HOOKWIRE_ROOT_TOKEN") {
        settings.root_token = Some(token);
    }
    Ok(settings)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = settings(Flags::parse())?;
    hookwire_kernel::telemetry::init(settings.log_format);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    hookwire_kernel::run(settings, listener, shutdown_signal()).await
}
