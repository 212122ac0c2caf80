//! `hookwire`: the command-line client of hookwire, built on the `hookwire-client` SDK.
//!
//! One module per command group (`group`, `device`, `webhook`, `publish`, `subscribe`); `events` holds what the
//! two streaming commands share and `output` all printing. Results go to stdout, as JSON (the default) or as a
//! table; errors go to stderr as `error: <message>`, with exit code 1 (2 for usage errors).

#![forbid(unsafe_code)]

mod bench;
mod deliveries;
mod demo;
mod device;
mod events;
mod group;
mod output;
mod paging;
mod publish;
mod receive;
mod subscribe;
mod token;
mod webhook;

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use hookwire_client::{AdminClient, DeviceClient};

use crate::output::Format;

const EXAMPLES: &str = "\
Examples:
  export HOOKWIRE_TOKEN=<admin token>
  hookwire group create greenhouse
  hookwire publish --device-token <device token> temp 21.5 --listen hook-response/temp";

/// The command-line client of hookwire, the self-hosted webhook engine.
#[derive(Debug, Parser)]
#[command(name = "hookwire", version, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The flags every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The server's gRPC endpoint: http://host:port, https://host:port or host:port
    #[arg(
        long,
        global = true,
        env = "HOOKWIRE_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    endpoint: String,
    /// The admin token, needed by the group, device, webhook and subscribe commands
    #[arg(long, global = true, env = "HOOKWIRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How to print results: json (one document; JSON lines when streaming) or table (aligned columns)
    #[arg(
        long,
        global = true,
        env = "HOOKWIRE_OUTPUT",
        value_enum,
        default_value_t = Format::Json,
        value_name = "FORMAT"
    )]
    pub output: Format,
    /// Print only this field of the result (of each element of a list), e.g. `--field id`
    #[arg(long, global = true, value_name = "NAME")]
    field: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, show, rename and delete groups
    #[command(subcommand, after_help = group::EXAMPLES)]
    Group(group::GroupCommand),
    /// Create, list, show, rename, update and delete devices, and rotate their tokens
    #[command(subcommand, after_help = device::EXAMPLES)]
    Device(device::DeviceCommand),
    /// Create, import, list, show, update, test, export and delete webhooks, and rotate their signing secrets
    #[command(subcommand, after_help = webhook::EXAMPLES)]
    Webhook(webhook::WebhookCommand),
    /// Publish an event as a device, then optionally print the events that follow
    #[command(after_help = publish::EXAMPLES)]
    Publish(publish::PublishArgs),
    /// Print the live events of a group
    #[command(after_help = subscribe::EXAMPLES)]
    Subscribe(subscribe::SubscribeArgs),
    /// Run a local webhook receiver that prints every request it gets (for trying webhooks out)
    #[command(after_help = receive::EXAMPLES)]
    Receive(receive::ReceiveArgs),
    /// Create, list and revoke admin tokens scoped to one group (viewer or editor)
    #[command(subcommand, after_help = token::EXAMPLES)]
    Token(token::TokenCommand),
    /// See hookwire work in a few seconds: a kernel, a receiver, a device and a webhook on this machine
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
    /// Measure hookwire end to end: events/s, deliveries/s, latency, memory, against the raw HTTP ceiling
    #[command(after_help = bench::EXAMPLES)]
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`hookwire subscribe | head -1`): nothing is left to print to, and nothing failed.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    if let Some(field) = &global.field {
        let _ = output::FIELD.set(field.clone());
    }
    match cli.command {
        Command::Group(command) => group::run(command, global).await,
        Command::Device(command) => device::run(command, global).await,
        Command::Webhook(command) => webhook::run(command, global).await,
        Command::Publish(args) => publish::run(args, global).await,
        Command::Subscribe(args) => subscribe::run(args, global).await,
        Command::Receive(args) => receive::run(args, global).await,
        Command::Token(command) => token::run(command, global).await,
        Command::Bench(args) => bench::run(args, global).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

impl GlobalArgs {
    /// Connects with the admin token; its absence is a usage error, reported as clap reports a missing flag.
    pub(crate) async fn admin_client(&self) -> anyhow::Result<AdminClient> {
        let Some(token) = &self.token else {
            Cli::command()
                .error(
                    ErrorKind::MissingRequiredArgument,
                    "this command needs an admin token: pass --token <TOKEN> or set HOOKWIRE_TOKEN",
                )
                .exit();
        };
        AdminClient::connect(&self.endpoint, token).await.map_err(|error| self.connect_error(error))
    }

    /// Connects as the device whose token is `device_token`.
    async fn device_client(&self, device_token: &str) -> anyhow::Result<DeviceClient> {
        DeviceClient::connect(&self.endpoint, device_token).await.map_err(|error| self.connect_error(error))
    }

    /// Says which endpoint could not be reached; the SDK's other connect errors already name what is wrong.
    fn connect_error(&self, error: hookwire_client::Error) -> anyhow::Error {
        match error {
            hookwire_client::Error::Transport(_) => {
                anyhow::Error::new(error).context(format!("cannot connect to {}", self.endpoint))
            }
            other => other.into(),
        }
    }
}

/// Prints an error with its causes, `error: <message>: <cause>: ...`, leaving out a cause that only repeats the
/// one before it (the transport's errors do).
fn print_error(error: &anyhow::Error) {
    let mut messages: Vec<String> = Vec::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if messages.last() != Some(&message) {
            messages.push(message);
        }
    }
    eprintln!("error: {}", messages.join(": "));
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io_error| io_error.kind() == io::ErrorKind::BrokenPipe)
}

/// Reads a `--timeout` value: seconds, fractions allowed.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn timeouts_are_read_as_seconds() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
