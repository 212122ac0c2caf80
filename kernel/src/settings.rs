//! Typed settings. Layered by `main`: built-in defaults, then the TOML file given with `--config`, then
//! `HOOKWIRE_*` environment variables, then flags. Nothing below `main` reads the environment.

use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of the kernel. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address of the gRPC server (`listen`, `--listen`, `HOOKWIRE_LISTEN`). Default `127.0.0.1:50051`.
    pub listen: SocketAddr,
    /// Database URL: `sqlite://PATH` (created if missing) or `postgres://...` (`database`, `--database`,
    /// `HOOKWIRE_DATABASE`). Default `sqlite://hookwire.db`.
    pub database: String,
    /// The root admin token (`root_token`, `HOOKWIRE_ROOT_TOKEN`). When unset, a random one is generated for the
    /// run and logged once.
    pub root_token: Option<String>,
    /// Destination ranges allowed although private, loopback or link-local (`allow_destination`,
    /// `--allow-destination`, repeatable; `HOOKWIRE_ALLOW_DESTINATION`, comma-separated).
    pub allow_destination: Vec<IpNet>,
    /// Largest event data in bytes (`max_data_bytes`). Default 1024, as Particle.
    pub max_data_bytes: usize,
    /// Most requests in flight to one destination host (`max_in_flight_per_host`). Default 64.
    pub max_in_flight_per_host: usize,
    /// Milliseconds allowed to connect to a destination (`connect_timeout_ms`). Default 10000.
    pub connect_timeout_ms: u64,
    /// Milliseconds allowed for a destination's whole answer (`response_timeout_ms`). Default 20000, as Particle.
    pub response_timeout_ms: u64,
    /// Events queued to one subscriber (device or admin stream) before more are dropped and counted
    /// (`subscriber_queue`). Default 1024.
    pub subscriber_queue: usize,
    /// Largest single response event in bytes, for webhooks with `unchunked` (`max_response_event_bytes`): a
    /// larger response (after `responseTemplate`) gives a `hook-error` instead. Default 102400.
    pub max_response_event_bytes: usize,
    /// Largest response in bytes that a Blynk webhook writes back to its pin (`max_pin_response_bytes`): a larger
    /// one gives a `hook-error` instead. Default 65536.
    pub max_pin_response_bytes: usize,
    /// Threads the actors run on; 0 for one per core (`actor_threads`).
    pub actor_threads: usize,
    /// Log format, `text` or `json` (`log_format`, `--log-format`).
    pub log_format: LogFormat,
    /// Days the attempt log is kept (`retention_days`, `--retention-days`). Default 30. Finished deliveries, which
    /// the daily history counts, are kept at least 31 days whatever this says.
    pub retention_days: u32,
    /// Seconds between two pruning passes (`prune_interval_secs`). Default 3600.
    pub prune_interval_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database: "sqlite://hookwire.db".into(),
            root_token: None,
            allow_destination: Vec::new(),
            max_data_bytes: hookwire_actors::event::DEFAULT_MAX_DATA_BYTES,
            max_in_flight_per_host: 64,
            connect_timeout_ms: 10_000,
            response_timeout_ms: 20_000,
            subscriber_queue: 1024,
            max_response_event_bytes: hookwire_actors::webhook::DEFAULT_MAX_RESPONSE_EVENT_BYTES,
            max_pin_response_bytes: hookwire_actors::webhook::DEFAULT_MAX_PIN_RESPONSE_BYTES,
            actor_threads: 0,
            log_format: LogFormat::Text,
            retention_days: 30,
            prune_interval_secs: 3600,
        }
    }
}

impl Settings {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("config {}: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("config {}: {error}", path.display()))
    }

    /// The actors' share of the settings.
    pub fn actor_settings(&self) -> hookwire_actors::supervisor::ActorSettings {
        use std::time::Duration;
        hookwire_actors::supervisor::ActorSettings {
            max_data_bytes: self.max_data_bytes,
            subscriber_queue_capacity: self.subscriber_queue,
            max_response_event_bytes: self.max_response_event_bytes,
            max_pin_response_bytes: self.max_pin_response_bytes,
            host: hookwire_actors::host::HostSettings {
                max_in_flight: self.max_in_flight_per_host.max(1),
                connect_timeout: Duration::from_millis(self.connect_timeout_ms),
                response_timeout: Duration::from_millis(self.response_timeout_ms),
                ..Default::default()
            },
            num_arbiters: self.actor_threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
