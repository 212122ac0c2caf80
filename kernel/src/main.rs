//! `hookwired`: the hookwire server. Parses flags over the settings file and environment, starts tracing, binds
//! the listener and runs the kernel until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use hookwire_kernel::settings::Settings;
use std::path::PathBuf;

/// mimalloc rather than glibc's malloc: see docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hookwire's server: devices stream events over gRPC; webhooks deliver them.
///
/// Every setting is a flag, a `HOOKWIRE_*` environment variable and a key of the `--config` file, declared once in
/// `kernel/src/settings.rs`; the flags below it are the server's own.
#[derive(Debug, Parser)]
#[command(
    name = "hookwired",
    version,
    about,
    after_help = "Examples:\n  hookwired\n  hookwired --database postgres://hookwire@localhost/hookwire --listen 0.0.0.0:50051\n  HOOKWIRE_ROOT_TOKEN=secret hookwired --allow-destination 127.0.0.0/8"
)]
struct Flags {
    /// A TOML settings file (keys as in the README); flags and HOOKWIRE_* variables override it
    #[arg(long, env = "HOOKWIRE_CONFIG", hide_env_values = true)]
    config: Option<PathBuf>,
    /// Print the settings in effect as a TOML file (the root token masked) and exit
    #[arg(long)]
    print_settings: bool,
}

/// The settings in effect: the defaults, the file, the environment and the flags, in that order.
fn settings(matches: &clap::ArgMatches) -> anyhow::Result<(Flags, Settings)> {
    let flags = Flags::from_arg_matches(matches)?;
    let mut settings = Settings::layered(flags.config.as_deref(), matches).map_err(anyhow::Error::msg)?;
    // Read here rather than declared with `env` on the field, which would make it a flag too.
    if let Ok(token) = std::env::var("HOOKWIRE_ROOT_TOKEN") {
        settings.root_token = Some(token);
    }
    Ok((flags, settings))
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
    let matches = Settings::augment_command(Flags::command()).get_matches();
    let (flags, settings) = settings(&matches)?;
    if flags.print_settings {
        let masked = Settings { root_token: settings.root_token.as_ref().map(|_| "***".to_owned()), ..settings };
        print!("{}", toml::to_string(&masked).context("settings as TOML")?);
        return Ok(());
    }
    hookwire_kernel::telemetry::init(settings.log_format);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    hookwire_kernel::run(settings, listener, shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_the_program_not_its_crate() {
        let version = Flags::command().render_version();
        assert_eq!(version, format!("hookwired {}\n", env!("CARGO_PKG_VERSION")));
    }
}
