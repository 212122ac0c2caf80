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
    /// Refuse `http://` destinations: deliveries to them fail with class `BLOCKED` (`https_only`). Default false.
    pub https_only: bool,
    /// An HTTP proxy every delivery goes through, `http://[user:password@]host:port` (`outbound_proxy`,
    /// `--outbound-proxy`, `HOOKWIRE_OUTBOUND_PROXY`). Deliveries are tunnelled with `CONNECT` to the destination's
    /// address, resolved and checked against the egress rules by hookwire, so the proxy never resolves names.
    /// Default none.
    pub outbound_proxy: Option<String>,
    /// Whether destination hosts sleep after too many errors, as Particle's do (`sleep_enabled`). Default true.
    pub sleep_enabled: bool,
    /// Seconds of outcomes a host's sleep decision looks at: a sliding time window (`sleep_window_secs`).
    /// Default 60.
    pub sleep_window_secs: u64,
    /// Outcomes the window must hold before a host may fall asleep (`sleep_min_outcomes`). Default 10.
    pub sleep_min_outcomes: u32,
    /// Seconds a host first sleeps once its errors outnumber its successes; each further sleep while failures
    /// continue lasts twice as long, each success halves it again, never below this (`sleep_cooldown_secs`).
    /// Default 30.
    pub sleep_cooldown_secs: u64,
    /// The longest a host sleeps, seconds (`sleep_max_cooldown_secs`). Default 600.
    pub sleep_max_cooldown_secs: u64,
    /// HTTP statuses that do not count as a host's errors for sleep, for example `[404, 409]`
    /// (`sleep_ignore_statuses`). Default none: every 3xx, 4xx and 5xx counts, as on Particle.
    pub sleep_ignore_statuses: Vec<u16>,
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
    /// Milliseconds after which a delivery refused by a sleeping host is tried again, one entry per retry; after
    /// the last, it is recorded as skipped (`sleep_retry_delays_ms`). Default `[30000, 60000]`, as Particle.
    pub sleep_retry_delays_ms: Vec<u64>,
    /// Deliveries over a webhook's rate quota (`x-minIntervalMs`) that wait in its queue; beyond, they are dropped,
    /// recorded and reported with a `hook-error` (`quota_queue_limit`). Default 1000.
    pub quota_queue_limit: usize,
    /// The longest `Retry-After` honoured by webhooks with `x-retry`, in milliseconds; a longer one is cut to this
    /// (`max_retry_after_ms`). Default 600000 (10 minutes).
    pub max_retry_after_ms: u64,
    /// Seconds a device or admin token stays cached before the database is asked again (`token_cache_secs`).
    /// With several kernels on one database, a device deleted or a token revoked through one is refused by the
    /// others within this time. 0 asks the database on every call. Default 30.
    pub token_cache_secs: u64,
    /// Milliseconds between two looks at the database for webhooks created, updated or deleted through another
    /// kernel on the same database (`index_refresh_ms`); such changes fire here within this time. 0 never looks
    /// (one kernel per database). Default 2000.
    pub index_refresh_ms: u64,
    /// Address of the Prometheus metrics endpoint, `GET /metrics` (`metrics_listen`, `--metrics-listen`,
    /// `HOOKWIRE_METRICS_LISTEN`). Default none: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Log format, `text` or `json` (`log_format`, `--log-format`).
    pub log_format: LogFormat,
    /// Days the attempt log is kept (`retention_days`, `--retention-days`). Default 30. Finished deliveries, which
    /// the daily history counts, are kept at least 31 days whatever this says.
    pub retention_days: u32,
    /// Seconds between two pruning passes (`prune_interval_secs`). Default 3600.
    pub prune_interval_secs: u64,
    /// Seconds a kernel stays a live member of the kernels sharing its database after its last heartbeat
    /// (`cluster_lease_secs`, `--cluster-lease-secs`, `HOOKWIRE_CLUSTER_LEASE_SECS`). A kernel heartbeats every
    /// sixth of it and stops starting attempts half of it after its last heartbeat that succeeded; the other
    /// kernels take its pending deliveries over once it has passed. Default 30.
    pub cluster_lease_secs: u64,
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
            https_only: false,
            outbound_proxy: None,
            sleep_enabled: true,
            sleep_window_secs: 60,
            sleep_min_outcomes: 10,
            sleep_cooldown_secs: 30,
            sleep_max_cooldown_secs: 600,
            sleep_ignore_statuses: Vec::new(),
            subscriber_queue: 1024,
            max_response_event_bytes: hookwire_actors::webhook::DEFAULT_MAX_RESPONSE_EVENT_BYTES,
            max_pin_response_bytes: hookwire_actors::webhook::DEFAULT_MAX_PIN_RESPONSE_BYTES,
            actor_threads: 0,
            sleep_retry_delays_ms: vec![30_000, 60_000],
            quota_queue_limit: hookwire_actors::supervisor::DEFAULT_QUOTA_QUEUE_LIMIT,
            max_retry_after_ms: 600_000,
            token_cache_secs: 30,
            index_refresh_ms: 2000,
            metrics_listen: None,
            log_format: LogFormat::Text,
            retention_days: 30,
            prune_interval_secs: 3600,
            cluster_lease_secs: 30,
        }
    }
}

impl Settings {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("config {}: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("config {}: {error}", path.display()))
    }

    /// The actors' share of the settings; fails on a setting that does not read (naming it).
    pub fn actor_settings(&self) -> Result<hookwire_actors::supervisor::ActorSettings, String> {
        use std::time::Duration;
        let outbound_proxy =
            self.outbound_proxy.as_deref().map(hookwire_actors::connector::OutboundProxy::parse).transpose()?;
        Ok(hookwire_actors::supervisor::ActorSettings {
            max_data_bytes: self.max_data_bytes,
            subscriber_queue_capacity: self.subscriber_queue,
            max_response_event_bytes: self.max_response_event_bytes,
            max_pin_response_bytes: self.max_pin_response_bytes,
            host: hookwire_actors::host::HostSettings {
                max_in_flight: self.max_in_flight_per_host.max(1),
                connect_timeout: Duration::from_millis(self.connect_timeout_ms),
                response_timeout: Duration::from_millis(self.response_timeout_ms),
                https_only: self.https_only,
                outbound_proxy,
                sleep: hookwire_actors::sleep::SleepSettings {
                    enabled: self.sleep_enabled,
                    window: Duration::from_secs(self.sleep_window_secs),
                    min_outcomes: self.sleep_min_outcomes,
                    cooldown: Duration::from_secs(self.sleep_cooldown_secs),
                    max_cooldown: Duration::from_secs(self.sleep_max_cooldown_secs.max(self.sleep_cooldown_secs)),
                    ignore_statuses: self.sleep_ignore_statuses.clone(),
                },
                ..Default::default()
            },
            num_arbiters: self.actor_threads,
            sleep_retry_delays: self.sleep_retry_delays_ms.iter().copied().map(Duration::from_millis).collect(),
            quota_queue_limit: self.quota_queue_limit,
            max_retry_after: Duration::from_millis(self.max_retry_after_ms),
        })
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
}
