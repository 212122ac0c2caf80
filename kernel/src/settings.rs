//! Typed settings, each declared once in [`Settings`]. Layered by `main`: built-in defaults, then the TOML file
//! given with `--config`, then `HOOKWIRE_*` environment variables, then flags. Nothing below `main` reads the
//! environment.
//!
//! One struct derives both `serde::Deserialize` (the file) and `clap::Args` (flags and environment variables,
//! clap's `env` feature); clap's `update_from_arg_matches` then overwrites only the settings that a flag or a
//! variable gave, so the layering needs no code per setting and no extra crate.

use clap::ArgAction;
use clap::builder::BoolishValueParser;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of the kernel, each declared once, here: the field name is its TOML key, `#[arg(long, env)]`
/// gives its flag (`--the-field-name`) and its `HOOKWIRE_THE_FIELD_NAME` variable, the doc comment is its help
/// (the first paragraph for `-h`, all of it for `--help`) and [`Default`] below has its default, which `--help`
/// shows. Layering ([`Settings::layered`]): the defaults, then the TOML file, then environment variables, then
/// flags. To add a setting: a documented field here with `#[arg(long, env = "HOOKWIRE_...")]`, its default in
/// `Default`, and its row in the README's table (a test checks the names).
#[derive(Debug, Clone, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings (each is also a key of the --config file)")]
pub struct Settings {
    /// Address to serve gRPC on
    #[arg(long, env = "HOOKWIRE_LISTEN")]
    pub listen: SocketAddr,
    /// Database URL: sqlite://PATH (created if missing) or postgres://...
    #[arg(long, env = "HOOKWIRE_DATABASE")]
    pub database: String,
    /// The root admin token (`root_token` in the file, or `HOOKWIRE_ROOT_TOKEN`). When unset, a random one is
    /// generated for the run and logged once. Never a flag: a flag would show in `ps`.
    #[arg(skip)]
    pub root_token: Option<String>,
    /// Allow destinations in this range although private, loopback or link-local (repeatable, or comma-separated)
    #[arg(long, env = "HOOKWIRE_ALLOW_DESTINATION", value_delimiter = ',')]
    pub allow_destination: Vec<IpNet>,
    /// Largest event data in bytes (1024 is Particle's)
    #[arg(long, env = "HOOKWIRE_MAX_DATA_BYTES")]
    pub max_data_bytes: usize,
    /// Most requests in flight to one destination host
    #[arg(long, env = "HOOKWIRE_MAX_IN_FLIGHT_PER_HOST")]
    pub max_in_flight_per_host: usize,
    /// Milliseconds allowed to connect to a destination
    #[arg(long, env = "HOOKWIRE_CONNECT_TIMEOUT_MS")]
    pub connect_timeout_ms: u64,
    /// Milliseconds allowed for a destination's whole answer (20000 is Particle's)
    #[arg(long, env = "HOOKWIRE_RESPONSE_TIMEOUT_MS")]
    pub response_timeout_ms: u64,
    /// Refuse http:// destinations: their deliveries fail with class BLOCKED
    #[arg(long, env = "HOOKWIRE_HTTPS_ONLY", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub https_only: bool,
    /// Send every delivery through this HTTP CONNECT proxy: http://[user:password@]host:port
    ///
    /// Deliveries are tunnelled with `CONNECT` to the destination's address, resolved and checked against the
    /// egress rules by hookwire, so the proxy never resolves names.
    #[arg(long, env = "HOOKWIRE_OUTBOUND_PROXY")]
    pub outbound_proxy: Option<String>,
    /// Whether destination hosts sleep after too many errors, as Particle's do
    #[arg(long, env = "HOOKWIRE_SLEEP_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub sleep_enabled: bool,
    /// Seconds of outcomes a host's sleep decision looks at (a sliding time window)
    #[arg(long, env = "HOOKWIRE_SLEEP_WINDOW_SECS")]
    pub sleep_window_secs: u64,
    /// Outcomes the window must hold before a host may fall asleep
    #[arg(long, env = "HOOKWIRE_SLEEP_MIN_OUTCOMES")]
    pub sleep_min_outcomes: u32,
    /// Seconds a host first sleeps once its errors outnumber its successes
    ///
    /// Each further sleep while failures continue lasts twice as long, each success halves it again, never below
    /// this.
    #[arg(long, env = "HOOKWIRE_SLEEP_COOLDOWN_SECS")]
    pub sleep_cooldown_secs: u64,
    /// The longest a host sleeps, seconds
    #[arg(long, env = "HOOKWIRE_SLEEP_MAX_COOLDOWN_SECS")]
    pub sleep_max_cooldown_secs: u64,
    /// HTTP statuses that do not count as a host's errors for sleep, e.g. 404,409
    ///
    /// Default none: every 3xx, 4xx and 5xx counts, as on Particle.
    #[arg(long, env = "HOOKWIRE_SLEEP_IGNORE_STATUSES", value_delimiter = ',')]
    pub sleep_ignore_statuses: Vec<u16>,
    /// Events queued to one subscriber (device or admin stream) before more are dropped and counted
    #[arg(long, env = "HOOKWIRE_SUBSCRIBER_QUEUE")]
    pub subscriber_queue: usize,
    /// Largest single response event in bytes, for webhooks with `unchunked`
    ///
    /// A larger response (after `responseTemplate`) gives a `hook-error` instead.
    #[arg(long, env = "HOOKWIRE_MAX_RESPONSE_EVENT_BYTES")]
    pub max_response_event_bytes: usize,
    /// Largest response in bytes that a Blynk webhook writes back to its pin
    ///
    /// A larger one gives a `hook-error` instead.
    #[arg(long, env = "HOOKWIRE_MAX_PIN_RESPONSE_BYTES")]
    pub max_pin_response_bytes: usize,
    /// Threads the actors run on; 0 for one per core
    #[arg(long, env = "HOOKWIRE_ACTOR_THREADS")]
    pub actor_threads: usize,
    /// Milliseconds after which a delivery refused by a sleeping host is tried again, one entry per retry
    ///
    /// After the last, it is recorded as skipped. The default is Particle's.
    #[arg(long, env = "HOOKWIRE_SLEEP_RETRY_DELAYS_MS", value_delimiter = ',')]
    pub sleep_retry_delays_ms: Vec<u64>,
    /// Deliveries over a webhook's rate quota (`x-minIntervalMs`) that wait in its queue
    ///
    /// Beyond, they are dropped, recorded and reported with a `hook-error`.
    #[arg(long, env = "HOOKWIRE_QUOTA_QUEUE_LIMIT")]
    pub quota_queue_limit: usize,
    /// The longest `Retry-After` honoured by webhooks with `x-retry`, in milliseconds; longer ones are cut to this
    #[arg(long, env = "HOOKWIRE_MAX_RETRY_AFTER_MS")]
    pub max_retry_after_ms: u64,
    /// Seconds a device or admin token stays cached before the database is asked again
    ///
    /// With several kernels on one database, a device deleted or a token revoked through one is refused by the
    /// others within this time. 0 asks the database on every call.
    #[arg(long, env = "HOOKWIRE_TOKEN_CACHE_SECS")]
    pub token_cache_secs: u64,
    /// Milliseconds between two looks for webhooks changed through another kernel on the same database
    ///
    /// Such changes fire here within this time. 0 never looks (one kernel per database).
    #[arg(long, env = "HOOKWIRE_INDEX_REFRESH_MS")]
    pub index_refresh_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, env = "HOOKWIRE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log format; `RUST_LOG` filters
    #[arg(long, env = "HOOKWIRE_LOG_FORMAT", value_enum)]
    pub log_format: LogFormat,
    /// Days the attempt log is kept
    ///
    /// Finished deliveries, which the daily history counts, are kept at least 31 days whatever this says.
    #[arg(long, env = "HOOKWIRE_RETENTION_DAYS")]
    pub retention_days: u32,
    /// Seconds between two pruning passes
    #[arg(long, env = "HOOKWIRE_PRUNE_INTERVAL_SECS")]
    pub prune_interval_secs: u64,
    /// Once serving, write the bound addresses to this file as JSON, for tools to wait on
    ///
    /// `{"address": "127.0.0.1:50051", "metrics_address": null, "pid": 4242}`, written to a temporary file
    /// beside it and renamed, so a reader never sees it half-written; removed on a clean stop.
    #[arg(long, env = "HOOKWIRE_READY_FILE")]
    pub ready_file: Option<PathBuf>,
    /// Most client connections the gRPC server holds open at once
    ///
    /// At the cap the server stops accepting: new connections wait in the listen backlog until one closes. Each
    /// connected device holds one. Keep it below the open-file limit (`ulimit -n`).
    #[arg(long, env = "HOOKWIRE_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Milliseconds a new connection has to send the HTTP/2 connection preface before it is closed
    ///
    /// The preface is the 24-byte `PRI * HTTP/2.0` magic and the header of the client's first SETTINGS frame.
    #[arg(long, env = "HOOKWIRE_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: u64,
    /// Most concurrent streams (calls) one client connection may have open
    ///
    /// Advertised as HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`; streams over it are refused with `REFUSED_STREAM`.
    #[arg(long, env = "HOOKWIRE_MAX_STREAMS_PER_CONNECTION")]
    pub max_streams_per_connection: u32,
    /// Seconds between keepalive probes on a client connection (an HTTP/2 PING, and the TCP keepalive time)
    ///
    /// 0 turns both off.
    #[arg(long, env = "HOOKWIRE_KEEPALIVE_INTERVAL_SECS")]
    pub keepalive_interval_secs: u64,
    /// Seconds the server waits for a keepalive PING's answer before it closes the connection as dead
    #[arg(long, env = "HOOKWIRE_KEEPALIVE_TIMEOUT_SECS")]
    pub keepalive_timeout_secs: u64,
    /// The output budget of rendering, in bytes; also the largest request body and URL hookwire sends
    ///
    /// It covers all the templates of one request together (url, query, form, json, body, headers, auth, with the
    /// default fields), and one `responseTemplate` or topic. Over it, the delivery fails with class `RENDER`, final.
    #[arg(long, env = "HOOKWIRE_MAX_RENDER_BYTES")]
    pub max_render_bytes: usize,
    /// The work budget of rendering, in steps: nodes visited, section iterations, names looked up
    ///
    /// For the same scopes as `max_render_bytes`; the default is a few tens of milliseconds of one thread at most.
    #[arg(long, env = "HOOKWIRE_MAX_RENDER_STEPS")]
    pub max_render_steps: u64,
    /// Answers (acks, errors, pongs) queued to one device session, publishes waiting for their ack included
    ///
    /// When the queue is full, hookwire reads nothing more from that device until it reads its answers (HTTP/2
    /// flow control holds it back).
    #[arg(long, env = "HOOKWIRE_DEVICE_OUTBOUND_QUEUE")]
    pub device_outbound_queue: usize,
    /// Milliseconds a device session may leave its full outbound queue unread before it is ended
    ///
    /// The session ends with `RESOURCE_EXHAUSTED`.
    #[arg(long, env = "HOOKWIRE_DEVICE_STALL_TIMEOUT_MS")]
    pub device_stall_timeout_ms: u64,
    /// The most `Connect` sessions one device may have open at once
    ///
    /// One more is refused with `RESOURCE_EXHAUSTED`.
    #[arg(long, env = "HOOKWIRE_MAX_SESSIONS_PER_DEVICE")]
    pub max_sessions_per_device: usize,
    /// Seconds after which an idle destination host actor is stopped, its metric series removed
    ///
    /// Idle: nothing waiting or in flight and not asleep. A sleeping host is kept until its sleep ends; one refused
    /// by the egress rules is stopped at the next sweep.
    #[arg(long, env = "HOOKWIRE_HOST_IDLE_SECS")]
    pub host_idle_secs: u64,
    /// Most destination host actors at once
    ///
    /// Deliveries to a new destination beyond fail with class `HOST_LIMIT`, not sent.
    #[arg(long, env = "HOOKWIRE_MAX_HOST_ACTORS")]
    pub max_host_actors: usize,
    /// Most destination hosts with metric series of their own
    ///
    /// Hosts beyond share the series labelled `host="other"`.
    #[arg(long, env = "HOOKWIRE_MAX_HOST_SERIES")]
    pub max_host_series: usize,
    /// Extra words that mark a request header or query parameter as a credential, shown as `***`
    ///
    /// The attempt log, the test answer and the server log mask such values (case-insensitive substrings). Always
    /// masked, on top of these: `auth`, `token`, `key`, `secret`, `pass`, `session`, `cookie`, `signature`,
    /// `access`, `credential`.
    #[arg(long, env = "HOOKWIRE_MASK_NAMES", value_delimiter = ',')]
    pub mask_names: Vec<String>,
    /// Address of the web console (plain HTTP), or `off`
    ///
    /// Sign-in takes an admin token, so keep it on loopback or a private address, or behind a TLS proxy (then set
    /// `console_secure_cookie`).
    #[arg(long, env = "HOOKWIRE_CONSOLE_LISTEN", value_name = "ADDR|off", value_parser = ConsoleListen::parse)]
    pub console_listen: ConsoleListen,
    /// Seconds a console session lasts after sign-in
    #[arg(long, env = "HOOKWIRE_CONSOLE_SESSION_SECS")]
    pub console_session_secs: u64,
    /// Console sessions held at once, across the kernels sharing the database; signing in beyond it ends the oldest
    #[arg(long, env = "HOOKWIRE_CONSOLE_MAX_SESSIONS")]
    pub console_max_sessions: usize,
    /// Mark the console's session cookie `Secure`, for a console served over TLS by a proxy in front of it
    #[arg(long, env = "HOOKWIRE_CONSOLE_SECURE_COOKIE", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub console_secure_cookie: bool,
    /// Seconds a kernel stays a live member of the kernels sharing its database after its last heartbeat
    ///
    /// A kernel heartbeats every sixth of it and stops starting attempts half of it after its last heartbeat that
    /// succeeded; the other kernels take its pending deliveries over once it has passed.
    #[arg(long, env = "HOOKWIRE_CLUSTER_LEASE_SECS")]
    pub cluster_lease_secs: u64,
    /// Events waiting to be sent to the other kernels on the same PostgreSQL database
    ///
    /// Published events and `hook-*` events cross kernels through `LISTEN/NOTIFY` (docs/cluster.md). Over this,
    /// events are not sent to the other kernels (local subscribers still get them), counted in
    /// `hookwire_cluster_events_total{outcome="dropped"}` and logged. Not used on SQLite.
    #[arg(long, env = "HOOKWIRE_CLUSTER_EVENTS_QUEUE")]
    pub cluster_events_queue: usize,
    /// Milliseconds between two batches of events sent to the other kernels (one `NOTIFY` per batch)
    #[arg(long, env = "HOOKWIRE_CLUSTER_EVENTS_BATCH_MS")]
    pub cluster_events_batch_ms: u64,
    /// Failed console sign-ins allowed a minute from one client address (0: no limit)
    ///
    /// Beyond it, sign-ins from that address are refused (`429`, with `Retry-After`) until its minute ends,
    /// without the token being looked at. IPv6 clients count by their /64; behind a proxy, every client counts
    /// as the proxy's address.
    #[arg(long, env = "HOOKWIRE_CONSOLE_SIGNIN_FAILURES")]
    pub console_signin_failures: u32,
    /// Failed console sign-ins allowed a minute from all client addresses together (0: no limit)
    #[arg(long, env = "HOOKWIRE_CONSOLE_SIGNIN_FAILURES_GLOBAL")]
    pub console_signin_failures_global: u32,
}

/// `console_listen`: an address, or `off` for no console. In the file and on the command line alike it is text
/// (`"127.0.0.1:8090"` or `"off"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleListen(pub Option<SocketAddr>);

impl ConsoleListen {
    /// Parses `ADDR:PORT`, or `off` (or empty) for no console.
    pub fn parse(text: &str) -> Result<ConsoleListen, String> {
        parse_console_listen(text).map(ConsoleListen)
    }
}

impl<'de> Deserialize<'de> for ConsoleListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ConsoleListen::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ConsoleListen {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(address) => serializer.serialize_str(&address.to_string()),
            None => serializer.serialize_str("off"),
        }
    }
}

/// Parses a console address: `ADDR:PORT`, or `off` (or empty) for no console.
pub fn parse_console_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    match text.trim() {
        "" | "off" => Ok(None),
        address => address
            .parse()
            .map(Some)
            .map_err(|_| format!("console_listen: `{address}` is neither an address (127.0.0.1:8090) nor `off`")),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database: "sqlite://hookwire.db".into(),
            root_token: None,
            allow_destination: Vec::new(),
            max_data_bytes: hookwire_actors::domain::event::DEFAULT_MAX_DATA_BYTES,
            max_in_flight_per_host: 64,
            connect_timeout_ms: 10_000,
            response_timeout_ms: 20_000,
            https_only: false,
            outbound_proxy: None,
            sleep_enabled: true,
            sleep_window_secs: 60,
            sleep_min_outcomes: 10,
            sleep_cooldown_secs: 30,
            sleep_max_cooldown_secs: 600,
            sleep_ignore_statuses: Vec::new(),
            subscriber_queue: 1024,
            max_response_event_bytes: hookwire_actors::actors::webhook::DEFAULT_MAX_RESPONSE_EVENT_BYTES,
            max_pin_response_bytes: hookwire_actors::actors::webhook::DEFAULT_MAX_PIN_RESPONSE_BYTES,
            actor_threads: 0,
            sleep_retry_delays_ms: vec![30_000, 60_000],
            quota_queue_limit: hookwire_actors::actors::registry::DEFAULT_QUOTA_QUEUE_LIMIT,
            max_retry_after_ms: 600_000,
            token_cache_secs: 30,
            index_refresh_ms: 2000,
            metrics_listen: None,
            log_format: LogFormat::Text,
            retention_days: 30,
            prune_interval_secs: 3600,
            ready_file: None,
            max_connections: 10_000,
            handshake_timeout_ms: 10_000,
            max_streams_per_connection: 100,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 20,
            max_render_bytes: hookwire_actors::domain::template::DEFAULT_MAX_RENDER_BYTES,
            max_render_steps: hookwire_actors::domain::template::DEFAULT_MAX_RENDER_STEPS,
            device_outbound_queue: hookwire_actors::actors::registry::DEFAULT_DEVICE_OUTBOUND_CAPACITY,
            device_stall_timeout_ms: 30_000,
            max_sessions_per_device: hookwire_actors::actors::registry::DEFAULT_MAX_SESSIONS_PER_DEVICE,
            host_idle_secs: hookwire_actors::actors::host::DEFAULT_HOST_IDLE.as_secs(),
            max_host_actors: hookwire_actors::actors::host::DEFAULT_MAX_HOST_ACTORS,
            max_host_series: hookwire_actors::services::metrics::DEFAULT_MAX_HOST_SERIES,
            mask_names: Vec::new(),
            console_listen: ConsoleListen(Some(SocketAddr::from(([127, 0, 0, 1], 8090)))),
            console_session_secs: 8 * 3600,
            console_max_sessions: 1000,
            console_secure_cookie: false,
            cluster_lease_secs: 30,
            cluster_events_queue: 65_536,
            cluster_events_batch_ms: 5,
            console_signin_failures: 10,
            console_signin_failures_global: 100,
        }
    }
}

impl Settings {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("config {}: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("config {}: {error}", path.display()))
    }

    /// Adds every setting to `command` as an optional flag with its environment variable. Each help ends with
    /// the setting's default, taken from [`Default`]; environment values are never shown (they may hold passwords,
    /// as a database URL can).
    pub fn augment_command(command: clap::Command) -> clap::Command {
        let defaults = toml::Table::try_from(Settings::default()).unwrap_or_default();
        // The derive would make this struct's documentation the command's.
        let (about, long_about) = (command.get_about().cloned(), command.get_long_about().cloned());
        let command = <Settings as clap::Args>::augment_args_for_update(command);
        let command = match about {
            Some(about) => command.about(about),
            None => command.about(None::<&str>),
        };
        let command = match long_about {
            Some(long_about) => command.long_about(long_about),
            None => command.long_about(None::<&str>),
        };
        command.mut_args(|arg| {
            let arg = arg.hide_env_values(true);
            let Some(default) = defaults.get(arg.get_id().as_str()).and_then(display_default) else { return arg };
            let with_default = |help: Option<&clap::builder::StyledStr>| {
                format!("{} [default: {default}]", help.map(ToString::to_string).unwrap_or_default())
            };
            let help = with_default(arg.get_help());
            match arg.get_long_help().map(|long_help| with_default(Some(long_help))) {
                Some(long_help) => arg.help(help).long_help(long_help),
                None => arg.help(help),
            }
        })
    }

    /// Layers the settings: the defaults, then the TOML file at `file` if any, then what `matches` (parsed from a
    /// command built with [`Settings::augment_command`]) took from environment variables and flags.
    pub fn layered(file: Option<&Path>, matches: &clap::ArgMatches) -> Result<Settings, String> {
        let mut settings = match file {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        clap::FromArgMatches::update_from_arg_matches(&mut settings, matches).map_err(|error| error.to_string())?;
        Ok(settings)
    }

    /// The actors' share of the settings; fails on a setting that does not read (naming it).
    pub fn actor_settings(&self) -> Result<hookwire_actors::actors::registry::ActorSettings, String> {
        use std::time::Duration;
        let outbound_proxy = self
            .outbound_proxy
            .as_deref()
            .map(hookwire_actors::services::connector::OutboundProxy::parse)
            .transpose()?;
        Ok(hookwire_actors::actors::registry::ActorSettings {
            max_data_bytes: self.max_data_bytes,
            subscriber_queue_capacity: self.subscriber_queue,
            max_response_event_bytes: self.max_response_event_bytes,
            max_pin_response_bytes: self.max_pin_response_bytes,
            host: hookwire_actors::actors::host::HostSettings {
                max_in_flight: self.max_in_flight_per_host.max(1),
                connect_timeout: Duration::from_millis(self.connect_timeout_ms),
                response_timeout: Duration::from_millis(self.response_timeout_ms),
                https_only: self.https_only,
                outbound_proxy,
                sleep: hookwire_actors::domain::breaker::BreakerSettings {
                    enabled: self.sleep_enabled,
                    window: Duration::from_secs(self.sleep_window_secs),
                    min_outcomes: self.sleep_min_outcomes,
                    cooldown: Duration::from_secs(self.sleep_cooldown_secs),
                    max_cooldown: Duration::from_secs(self.sleep_max_cooldown_secs.max(self.sleep_cooldown_secs)),
                    ignore_statuses: self.sleep_ignore_statuses.clone(),
                },
                idle_timeout: Duration::from_secs(self.host_idle_secs),
                max_host_actors: self.max_host_actors,
                ..Default::default()
            },
            num_arbiters: self.actor_threads,
            sleep_retry_delays: self.sleep_retry_delays_ms.iter().copied().map(Duration::from_millis).collect(),
            quota_queue_limit: self.quota_queue_limit,
            max_retry_after: Duration::from_millis(self.max_retry_after_ms),
            render: hookwire_actors::domain::template::RenderLimits {
                max_bytes: self.max_render_bytes,
                max_steps: self.max_render_steps,
            },
            device_outbound_capacity: self.device_outbound_queue.max(1),
            device_stall_timeout: Duration::from_millis(self.device_stall_timeout_ms),
            max_sessions_per_device: self.max_sessions_per_device.max(1),
            max_host_series: self.max_host_series,
            log_mask: hookwire_actors::domain::request::LogMask::new(&self.mask_names),
        })
    }
}

/// A default as `--help` shows it, in the form a flag takes; none for an empty list.
fn display_default(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Array(items) if items.is_empty() => None,
        toml::Value::Array(items) => Some(items.iter().filter_map(display_default).collect::<Vec<_>>().join(",")),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> clap::Command {
        Settings::augment_command(clap::Command::new("hookwired").no_binary_name(true))
    }

    fn layered(file: Option<&Path>, args: &[&str]) -> Result<Settings, String> {
        let matches = command().try_get_matches_from(args).map_err(|error| error.to_string())?;
        Settings::layered(file, &matches)
    }

    #[test]
    fn every_setting_has_a_flag_and_a_variable_named_after_its_key() {
        let command = command();
        let mut num_settings = 0;
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            assert!(!arg.is_positional(), "{key}: give it #[arg(long, env = \"HOOKWIRE_...\")]");
            assert_eq!(arg.get_long(), Some(key.replace('_', "-").as_str()), "{key}");
            let variable = format!("HOOKWIRE_{}", key.to_ascii_uppercase());
            assert_eq!(arg.get_env().and_then(|env| env.to_str()), Some(variable.as_str()), "{key}");
            assert!(!arg.is_required_set(), "{key}");
            num_settings += 1;
        }
        // Every field but `root_token`, which is never a flag.
        assert_eq!(num_settings, toml::Table::try_from(full_settings()).unwrap().len() - 1);
    }

    /// Settings with every optional one set, so that serialising them names every key.
    fn full_settings() -> Settings {
        Settings {
            root_token: Some("root".into()),
            outbound_proxy: Some("http://proxy:3128".into()),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            ready_file: Some("/run/hookwired.ready".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookwire.toml");
        std::fs::write(&path, "database = \"sqlite:///file.db\"\nquota_queue_limit = 7\nsleep_enabled = false\n")
            .unwrap();
        let settings = layered(Some(&path), &[]).unwrap();
        assert_eq!((settings.database.as_str(), settings.quota_queue_limit), ("sqlite:///file.db", 7));
        assert!(!settings.sleep_enabled);
        assert_eq!(settings.response_timeout_ms, 20_000);

        let flags = [
            "--quota-queue-limit",
            "9",
            "--sleep-enabled",
            "true",
            "--https-only",
            "--allow-destination",
            "127.0.0.0/8,10.0.0.0/8",
            "--allow-destination",
            "::1/128",
            "--sleep-retry-delays-ms",
            "10,20",
            "--log-format",
            "json",
            "--ready-file",
            "/tmp/ready.json",
        ];
        let settings = layered(Some(&path), &flags).unwrap();
        assert_eq!((settings.database.as_str(), settings.quota_queue_limit), ("sqlite:///file.db", 9));
        assert!(settings.sleep_enabled && settings.https_only);
        assert_eq!(settings.allow_destination.len(), 3);
        assert_eq!(settings.sleep_retry_delays_ms, [10, 20]);
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.ready_file.as_deref(), Some(Path::new("/tmp/ready.json")));
        assert!(layered(None, &["--root-token", "x"]).is_err(), "the root token is never a flag");
        assert!(layered(None, &["--quota-queue-limit", "many"]).unwrap_err().contains("quota-queue-limit"));
    }

    #[test]
    fn help_shows_each_default_and_never_an_environment_value() {
        let help = command().about("hookwire's server").render_long_help().to_string();
        assert!(help.starts_with("hookwire's server"), "{help}");
        assert!(help.contains("[default: 127.0.0.1:50051]"), "{help}");
        assert!(help.contains("[default: 30000,60000]"), "{help}");
        assert!(help.contains("[env: HOOKWIRE_DATABASE]"), "{help}");
        assert!(!help.contains("root-token"), "{help}");
    }

    #[test]
    fn the_readme_lists_every_setting_with_its_flag_and_variable() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for arg in command().get_arguments() {
            let key = arg.get_id().as_str();
            let row = format!("| `{key}` | `--{}` / `HOOKWIRE_{}` |", key.replace('_', "-"), key.to_ascii_uppercase());
            assert!(readme.contains(&row), "README.md has no row starting {row}");
        }
        assert!(readme.contains("| `root_token` | `HOOKWIRE_ROOT_TOKEN` only |"));
    }

    #[test]
    fn a_toml_file_overrides_defaults_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookwire.toml");
        std::fs::write(&path, "database = \"sqlite:///tmp/x.db\"\nallow_destination = [\"127.0.0.0/8\"]\n").unwrap();
        let settings = Settings::from_file(&path).unwrap();
        assert_eq!(settings.database, "sqlite:///tmp/x.db");
        assert_eq!(settings.allow_destination.len(), 1);
        assert_eq!(settings.response_timeout_ms, 20_000);
        std::fs::write(&path, "databse = \"x\"\n").unwrap();
        assert!(Settings::from_file(&path).unwrap_err().contains("databse"));
    }
    #[test]
    fn delivery_policy_settings_default_to_particles_and_reach_the_actors() {
        use std::time::Duration;
        let actors = Settings::default().actor_settings().unwrap();
        assert_eq!(actors.sleep_retry_delays, [Duration::from_secs(30), Duration::from_secs(60)]);
        assert_eq!(actors.quota_queue_limit, 1000);
        assert_eq!(actors.max_retry_after, Duration::from_secs(600));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookwire.toml");
        std::fs::write(
            &path,
            "sleep_retry_delays_ms = [10, 20, 40]\nquota_queue_limit = 5\nmax_retry_after_ms = 250\n",
        )
        .unwrap();
        let actors = Settings::from_file(&path).unwrap().actor_settings().unwrap();
        let delays: Vec<u128> = actors.sleep_retry_delays.iter().map(Duration::as_millis).collect();
        assert_eq!(delays, [10, 20, 40]);
        assert_eq!((actors.quota_queue_limit, actors.max_retry_after), (5, Duration::from_millis(250)));
    }

    #[test]
    fn render_budgets_default_to_one_mebibyte_and_a_million_steps_and_reach_the_actors() {
        let actors = Settings::default().actor_settings().unwrap();
        assert_eq!((actors.render.max_bytes, actors.render.max_steps), (1024 * 1024, 1_000_000));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookwire.toml");
        std::fs::write(&path, "max_render_bytes = 4096\nmax_render_steps = 500\n").unwrap();
        let actors = Settings::from_file(&path).unwrap().actor_settings().unwrap();
        assert_eq!((actors.render.max_bytes, actors.render.max_steps), (4096, 500));
    }
}
