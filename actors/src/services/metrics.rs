//! [`Metrics`]: what the kernel serves in Prometheus text format on `--metrics-listen`, with the
//! `prometheus-client` crate (the Prometheus project's Rust client: OpenMetrics text, atomics, no global registry).
//!
//! The hot path pays an atomic add and, per attempt, one histogram observation: each host actor takes its own
//! counters out of the families once, when it starts, so no label set is hashed per request. Values that are a
//! state rather than a count (sessions, queue depths, whether a host sleeps) are read when scraped, by
//! [`Metrics::refresh`].
//!
//! Per-host series are bounded: at most `max_host_series` hosts have series of their own ([`Metrics::host`]);
//! beyond, hosts share the series labelled `host="other"`, as do attempts refused before any host actor (egress
//! rules, `https_only`, `max_host_actors`). A host's series are removed when its actor stops
//! ([`Metrics::remove_host`]), which frees its place.

use crate::actors::host::{AttemptOutcome, ErrorClass, HostKey, HostState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The `host` label shared by hosts beyond `max_host_series` and by attempts refused before any host actor.
pub const OTHER_HOST: &str = "other";
/// The default most hosts with metric series of their own.
pub const DEFAULT_MAX_HOST_SERIES: usize = 1000;

/// Bounds of the latency histograms, seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0];

/// Labels of a destination host.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    /// `scheme://host:port`.
    pub host: String,
}

/// Labels of an attempt's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// `scheme://host:port`.
    pub host: String,
    /// `success`, `failure`, or `not_sent` (refused before a request went out: sleeping host, egress rule,
    /// render error).
    pub outcome: &'static str,
    /// The error class, empty for a success.
    pub class: &'static str,
}

/// Labels of a delivery given up before it reached a host.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why: `QUOTA` or `DISABLED`.
    pub class: &'static str,
}

/// Labels of events exchanged with the other kernels of a cluster.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterEventLabels {
    /// `sent`, `received`, `dropped` (the outbox was full, or a batch could not be sent), `lost` (a batch whose
    /// row could not be read), `listener_gap` (the listening connection was lost: a count of gaps, not events).
    pub outcome: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> HostKey {
        HostKey { scheme: "http", host: "example.com".into(), port }
    }

    #[test]
    fn hosts_beyond_the_series_cap_share_other_and_a_removed_host_frees_its_place() {
        let metrics = Metrics::new();
        metrics.set_max_host_series(2);
        let outcome = AttemptOutcome::not_sent(ErrorClass::Blocked, String::new());
        for port in 1..=4 {
            metrics.host(&key(port)).record(&outcome);
        }
        let text = metrics.encode();
        let blocked =
            |host: &str| format!("hookwire_attempts_total{{host=\"{host}\",outcome=\"not_sent\",class=\"BLOCKED\"}}");
        assert!(text.contains(&format!("{} 1", blocked("http://example.com:1"))), "{text}");
        assert!(text.contains(&format!("{} 2", blocked(OTHER_HOST))), "{text}");
        assert!(!text.contains("example.com:3"), "{text}");

        metrics.remove_host(&key(1));
        assert!(!metrics.encode().contains("example.com:1\""), "every series of the host goes");
        metrics.host(&key(5));
        assert!(metrics.encode().contains("example.com:5\""), "its place is free again");
        metrics.remove_host(&key(3));
        assert!(metrics.encode().contains(&blocked(OTHER_HOST)), "removing a host under other keeps other");
    }

    #[test]
    fn every_class_indexes_its_own_counter() {
        for (index, class) in ErrorClass::ALL.into_iter().enumerate() {
            assert_eq!(class as usize, index, "{class:?}");
        }
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every metric of one kernel.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Events committed to the journal (acked).
    pub events: Counter,
    /// Time to commit one journal batch.
    pub journal_commit_seconds: Histogram,
    /// Journal batches the store refused (and retried, or isolated entry by entry).
    pub journal_write_failures: Counter,
    attempts: Family<AttemptLabels, Counter>,
    attempt_seconds: Family<HostLabels, Histogram, fn() -> Histogram>,
    drops: Family<DropLabels, Counter>,
    cluster_events: Family<ClusterEventLabels, Counter>,
    host_in_flight: Family<HostLabels, Gauge>,
    host_sleeping: Family<HostLabels, Gauge>,
    host_window_failures: Family<HostLabels, Gauge>,
    device_sessions: Gauge,
    journal_queue: Gauge,
    webhook_actors: Gauge,
    host_actors: Gauge,
    /// The hosts (`scheme://host:port`) that have series of their own; its lock also orders the making and the
    /// removal of a host's series, so that no series outlives its host.
    labelled_hosts: Mutex<HashSet<String>>,
    max_host_series: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `hookwire_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hookwire");
        let metrics = Metrics {
            events: Counter::default(),
            journal_commit_seconds: latency_histogram(),
            journal_write_failures: Counter::default(),
            attempts: Family::default(),
            attempt_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            drops: Family::default(),
            cluster_events: Family::default(),
            host_in_flight: Family::default(),
            host_sleeping: Family::default(),
            host_window_failures: Family::default(),
            device_sessions: Gauge::default(),
            journal_queue: Gauge::default(),
            webhook_actors: Gauge::default(),
            host_actors: Gauge::default(),
            labelled_hosts: Mutex::default(),
            max_host_series: AtomicUsize::new(DEFAULT_MAX_HOST_SERIES),
            registry: Registry::default(),
        };
        registry.register("events", "Events published by devices and committed (acked)", metrics.events.clone());
        registry.register(
            "attempts",
            "Delivery attempts by destination host, outcome (success, failure, not_sent) and error class",
            metrics.attempts.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Time from sending a request to the end of its answer, by destination host",
            metrics.attempt_seconds.clone(),
        );
        registry.register(
            "deliveries_dropped",
            "Deliveries given up before reaching a host: over the rate quota (QUOTA) or webhook disabled (DISABLED)",
            metrics.drops.clone(),
        );
        registry.register(
            "cluster_events",
            "Events exchanged with other kernels on the same database, by outcome (listener_gap counts gaps)",
            metrics.cluster_events.clone(),
        );
        registry.register(
            "journal_commit_duration_seconds",
            "Time to commit one batch of events, deliveries and attempts to the database",
            metrics.journal_commit_seconds.clone(),
        );
        registry.register(
            "journal_write_failures",
            "Journal batches the database refused",
            metrics.journal_write_failures.clone(),
        );
        registry.register(
            "journal_queue_depth",
            "Entries waiting for the journal's next batch",
            metrics.journal_queue.clone(),
        );
        registry.register("host_in_flight", "Requests in flight to a destination host", metrics.host_in_flight.clone());
        registry.register(
            "host_sleeping",
            "1 while a destination host sleeps after too many errors, else 0",
            metrics.host_sleeping.clone(),
        );
        registry.register(
            "host_window_failures",
            "Failures in a destination host's sleep window",
            metrics.host_window_failures.clone(),
        );
        registry.register("device_sessions", "Connected device sessions", metrics.device_sessions.clone());
        registry.register("webhook_actors", "Running webhook actors", metrics.webhook_actors.clone());
        registry.register("host_actors", "Running destination host actors", metrics.host_actors.clone());
        // Every documented series exists from the start, at zero, rather than from its first drop.
        for class in [crate::actors::webhook::QUOTA_CLASS, crate::actors::webhook::DISABLED_CLASS] {
            drop(metrics.drops.get_or_create(&DropLabels { class }));
        }
        Metrics { registry, ..metrics }
    }

    /// Sets the most hosts with series of their own (`max_host_series`); hosts beyond share `host="other"`.
    pub fn set_max_host_series(&self, max: usize) {
        self.max_host_series.store(max, Ordering::Relaxed);
    }

    fn labelled(&self) -> MutexGuard<'_, HashSet<String>> {
        self.labelled_hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counters of one host, taken once when its actor starts: its own series while fewer than
    /// `max_host_series` hosts have theirs, else the shared `host="other"` ones.
    pub fn host(&self, key: &HostKey) -> HostMetrics {
        let host = key.to_string();
        let mut labelled = self.labelled();
        let own = labelled.contains(&host) || labelled.len() < self.max_host_series.load(Ordering::Relaxed);
        let host = if own {
            labelled.insert(host.clone());
            host
        } else {
            OTHER_HOST.to_owned()
        };
        let metrics = self.host_metrics(host);
        drop(labelled);
        metrics
    }

    /// The counters of attempts refused before any host actor: the shared `host="other"` series.
    pub fn refused_before_host(&self) -> HostMetrics {
        self.host_metrics(OTHER_HOST.to_owned())
    }

    fn host_metrics(&self, host: String) -> HostMetrics {
        let labels = |outcome, class| AttemptLabels { host: host.clone(), outcome, class };
        HostMetrics {
            success: self.attempts.get_or_create_owned(&labels("success", "")),
            failures: ErrorClass::ALL
                .map(|class| self.attempts.get_or_create_owned(&labels(outcome_of(class), class.as_str()))),
            seconds: self.attempt_seconds.get_or_create_owned(&HostLabels { host: host.clone() }),
        }
    }

    /// Removes every series of a host whose actor stopped, which frees its place under `max_host_series`.
    pub fn remove_host(&self, key: &HostKey) {
        let host = key.to_string();
        let mut labelled = self.labelled();
        if !labelled.remove(&host) {
            return;
        }
        self.attempts.remove(&AttemptLabels { host: host.clone(), outcome: "success", class: "" });
        for class in ErrorClass::ALL {
            self.attempts.remove(&AttemptLabels {
                host: host.clone(),
                outcome: outcome_of(class),
                class: class.as_str(),
            });
        }
        let labels = HostLabels { host };
        self.attempt_seconds.remove(&labels);
        self.host_in_flight.remove(&labels);
        self.host_sleeping.remove(&labels);
        self.host_window_failures.remove(&labels);
        drop(labelled);
    }

    /// Counts a delivery given up before it reached a host.
    pub fn dropped(&self, class: &'static str) {
        self.drops.get_or_create(&DropLabels { class }).inc();
    }

    /// Counts events exchanged with other kernels (see [`ClusterEventLabels`]).
    pub fn cluster_events(&self, outcome: &'static str, count: u64) {
        self.cluster_events.get_or_create(&ClusterEventLabels { outcome }).inc_by(count);
    }

    /// Sets the scrape-time values: the states of the hosts and the sizes of the kernel's queues and registries.
    /// Hosts without series of their own are summed into `host="other"` (in flight, failures) or counted there
    /// (sleeping); a host whose series were removed meanwhile gets none again.
    pub fn refresh(&self, hosts: &[HostState], snapshot: &Snapshot) {
        let labelled = self.labelled();
        let (mut other_sleeping, mut other_in_flight, mut other_failures, mut num_other) = (0i64, 0i64, 0i64, 0usize);
        for state in hosts {
            let host = state.key.to_string();
            let sleeping = i64::from(state.sleep.asleep_until.is_some());
            let in_flight = to_i64(state.num_in_flight);
            let failures = i64::from(state.sleep.num_failures);
            if !labelled.contains(&host) {
                (other_sleeping, other_in_flight, other_failures) =
                    (other_sleeping + sleeping, other_in_flight + in_flight, other_failures + failures);
                num_other += 1;
                continue;
            }
            let labels = HostLabels { host };
            self.host_sleeping.get_or_create(&labels).set(sleeping);
            self.host_in_flight.get_or_create(&labels).set(in_flight);
            self.host_window_failures.get_or_create(&labels).set(failures);
        }
        let other = HostLabels { host: OTHER_HOST.to_owned() };
        if num_other > 0 {
            self.host_sleeping.get_or_create(&other).set(other_sleeping);
            self.host_in_flight.get_or_create(&other).set(other_in_flight);
            self.host_window_failures.get_or_create(&other).set(other_failures);
        } else {
            self.host_sleeping.remove(&other);
            self.host_in_flight.remove(&other);
            self.host_window_failures.remove(&other);
        }
        drop(labelled);
        self.device_sessions.set(to_i64(snapshot.device_sessions));
        self.journal_queue.set(to_i64(snapshot.journal_queue));
        self.webhook_actors.set(to_i64(snapshot.webhook_actors));
        self.host_actors.set(to_i64(snapshot.host_actors));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Sizes read when scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Connected device sessions.
    pub device_sessions: usize,
    /// Entries queued to the journal.
    pub journal_queue: usize,
    /// Running webhook actors.
    pub webhook_actors: usize,
    /// Running host actors.
    pub host_actors: usize,
}

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The outcome label of a failure's class: `not_sent` for refusals before a request went out.
fn outcome_of(class: ErrorClass) -> &'static str {
    if class.is_refusal() { "not_sent" } else { "failure" }
}

/// One host's counters: shared with the families, so counting is an atomic add.
#[derive(Debug, Clone)]
pub struct HostMetrics {
    success: Counter,
    /// By class, indexed by `class as usize`.
    failures: [Counter; ErrorClass::ALL.len()],
    seconds: Histogram,
}

impl HostMetrics {
    /// Counts an attempt's outcome, and its duration when a request went out.
    pub fn record(&self, outcome: &AttemptOutcome) {
        match &outcome.failure {
            None => self.success.inc(),
            Some(failure) => self.failures[failure.class as usize].inc(),
        };
        if !outcome.failure.as_ref().is_some_and(|failure| failure.class.is_refusal()) {
            self.seconds.observe(outcome.duration.as_secs_f64());
        }
    }
}
