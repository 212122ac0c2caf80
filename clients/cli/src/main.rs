//! `hookwire`: the command-line client of hookwire, built on the `hookwire-client` SDK.
//!
//! One module per command group (`group`, `device`, `webhook`, `publish`, `subscribe`, ...); `events` holds what
//! the two streaming commands share, `output` all printing, and `config` the config file's profiles and how the
//! global options are resolved (flag, then environment, then profile, then default). Results go to stdout, as
//! JSON (the default) or as a table; errors go to stderr as `error: <message>`, with exit code 1 (2 for usage
//! errors).

#![forbid(unsafe_code)]

mod bench;
mod config;
mod deliveries;
mod demo;
mod device;
mod events;
mod group;
mod kernel_process;
mod output;
mod paging;
mod publish;
mod receive;
mod subscribe;
mod template;
mod token;
mod webhook;

use std::io;
use std::path::PathBuf;
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
    global: GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

/// The flags every command takes, as given on the command line; `config::resolve` fills in the rest.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalFlags {
    /// The server's gRPC endpoint: http://host:port, https://host:port or host:port [env: HOOKWIRE_ENDPOINT, else
    /// the profile's, else http://127.0.0.1:50051]
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    /// The admin token, needed by the group, device, webhook, token and subscribe commands [env: HOOKWIRE_TOKEN,
    /// else the profile's]
    #[arg(long, global = true)]
    token: Option<String>,
    /// How to print results: json (one document; JSON lines when streaming) or table (aligned columns) [env:
    /// HOOKWIRE_OUTPUT, else the profile's, else json]
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// Print only this field of the result (of each element of a list), e.g. `--field id`
    #[arg(long, global = true, value_name = "NAME")]
    field: Option<String>,
    /// The profile of the config file to use [env: HOOKWIRE_PROFILE, else the file's default_profile]
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// The config file [env: HOOKWIRE_CONFIG, else hookwire/config.toml in $XDG_CONFIG_HOME or ~/.config]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The global options every command runs with, once flags, environment, profile and defaults are resolved.
#[derive(Debug)]
pub struct GlobalArgs {
    /// The server's gRPC endpoint.
    endpoint: String,
    /// The admin token, when one was given.
    pub token: Option<String>,
    /// How to print results.
    pub output: Format,
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
    /// List the ready integrations (ThingSpeak, InfluxDB, Slack, ...) that `webhook create --template` fills in
    #[command(subcommand, after_help = template::EXAMPLES)]
    Template(template::TemplateCommand),
    /// See hookwire work in a few seconds: a kernel, a receiver, a device and a webhook on this machine
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
    /// Measure hookwire end to end: events/s, deliveries/s, latency, memory, against the raw HTTP ceiling
    #[command(after_help = bench::EXAMPLES)]
    Bench(bench::BenchArgs),
    /// Manage the config file's profiles (endpoint, token and output under a name)
    #[command(subcommand, after_help = config::EXAMPLES)]
    Config(config::ConfigCommand),
    /// Print a shell completion script
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  hookwire completions bash > ~/.local/share/bash-completion/completions/hookwire
  hookwire completions zsh > \"${fpath[1]}/_hookwire\"
  hookwire completions fish > ~/.config/fish/completions/hookwire.fish
  hookwire completions powershell >> $PROFILE";

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
    let flags = &cli.global;
    if let Some(field) = &flags.field {
        let _ = output::FIELD.set(field.clone());
    }
    // These run without resolving a profile: `config` is how a broken config file gets fixed.
    let command = match cli.command {
        Command::Config(command) => return config::run(command, flags),
        // The demo starts its own kernel: it needs no endpoint or token.
        Command::Demo(args) => return demo::run(args).await,
        Command::Completions { shell } => {
            // Written to a buffer first: clap_complete panics on a write error, and a closed pipe is not one here.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hookwire", &mut script);
            return Ok(io::Write::write_all(&mut io::stdout().lock(), &script)?);
        }
        command => command,
    };
    let global = &config::resolve(flags, &config::env_var)?;
    let _ = ENDPOINT.set(global.endpoint.clone());
    match command {
        Command::Group(command) => group::run(command, global).await,
        Command::Device(command) => device::run(command, global).await,
        Command::Webhook(command) => webhook::run(command, global).await,
        Command::Publish(args) => publish::run(args, global).await,
        Command::Subscribe(args) => subscribe::run(args, global).await,
        Command::Receive(args) => receive::run(args, global).await,
        Command::Token(command) => token::run(command, global).await,
        Command::Template(command) => template::run(command, global).await,
        Command::Bench(args) => bench::run(args, global).await,
        Command::Config(_) | Command::Completions { .. } | Command::Demo(_) => unreachable!("run above"),
    }
}

impl GlobalArgs {
    /// Connects with the admin token; its absence is a usage error, reported as clap reports a missing flag.
    pub(crate) async fn admin_client(&self) -> anyhow::Result<AdminClient> {
        let Some(token) = &self.token else {
            Cli::command()
                .error(
                    ErrorKind::MissingRequiredArgument,
                    "this command needs an admin token: pass --token <TOKEN>, set HOOKWIRE_TOKEN, or use a profile that has \
                     one (hookwire config set-profile NAME --token <TOKEN>)",
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

/// The endpoint the command talks to, once resolved: transport errors are explained with it.
static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Prints an error with its causes, `error: <message>: <cause>: ...`, leaving out a cause that only repeats the
/// one before it (the transport's errors do), then what is probably wrong when the words are the transport's.
fn print_error(error: &anyhow::Error) {
    let mut messages: Vec<String> = Vec::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if messages.last() != Some(&message) {
            messages.push(message);
        }
    }
    let message = messages.join(": ");
    eprintln!("error: {message}");
    if let Some(hint) = transport_hint(&message, ENDPOINT.get().map_or("the endpoint", String::as_str)) {
        eprintln!("hint: {hint}");
    }
}

/// What a transport error probably means, in the user's terms: the transport's own words (`transport error`,
/// `InvalidContentType`) name the symptom, not the cause.
fn transport_hint(message: &str, endpoint: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("invalidcontenttype") || lower.contains("corrupt message") || lower.contains("wrong version") {
        return Some(format!(
            "{endpoint} does not answer TLS: a server without TLS (hookwired serves plain gRPC) is reached with \
             http://, not https://"
        ));
    }
    if lower.contains("connection refused") {
        return Some(format!(
            "nothing listens at {endpoint}: is hookwired running, and is this its --listen address? (set it with \
             --endpoint or HOOKWIRE_ENDPOINT)"
        ));
    }
    let protocol_words = ["transport error", "h2 protocol error", "http2 error", "frame with invalid size"];
    if protocol_words.iter().any(|words| lower.contains(words)) {
        return Some(format!(
            "{endpoint} did not answer as a gRPC server: is it hookwired's --listen address (not its metrics \
             address, nor another service), and is the scheme right (http:// without TLS, https:// with)?"
        ));
    }
    None
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

    /// Every command's `--help` ends with examples of that very command: `hookwire <its path> ...` lines under
    /// `Example:` or `Examples:`.
    #[test]
    fn every_command_has_examples_in_its_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let after_help = command.get_after_help().map(|help| help.to_string()).unwrap_or_default();
            let has_heading = after_help.lines().any(|line| line == "Example:" || line == "Examples:");
            let has_own_example = after_help.lines().any(|line| {
                line.trim_start().strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
            });
            if !has_heading || !has_own_example {
                missing.push(path.to_owned());
            }
            for subcommand in command.get_subcommands().filter(|subcommand| subcommand.get_name() != "help") {
                walk(subcommand, &format!("{path} {}", subcommand.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "hookwire", &mut missing);
        assert!(missing.is_empty(), "commands without an example of themselves in --help: {missing:?}");
    }

    #[test]
    fn transport_errors_come_with_what_is_probably_wrong() {
        let hint = |message: &str| transport_hint(message, "https://127.0.0.1:1").unwrap_or_default();
        assert!(
            hint("transport error: invalid peer certificate: InvalidContentType").contains("http://, not https://")
        );
        assert!(hint("cannot connect to x: tcp connect error: Connection refused (os error 111)").contains("nothing"));
        assert!(hint("UNKNOWN: transport error").contains("--listen address"));
        assert_eq!(transport_hint("NOT_FOUND: webhook whk_1 not found", "x"), None);
    }

    #[test]
    fn timeouts_are_read_as_seconds() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
