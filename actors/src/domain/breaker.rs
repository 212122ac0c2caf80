//! [`CircuitBreaker`]: the per-host circuit breaker, which Particle calls sleep: the decision to stop sending to a
//! host for a while, as Particle does. A pure state machine with injected time: the host actor records how each attempt went and asks whether the host sleeps; nothing here
//! reads a clock or sends anything.
//!
//! The rules, with their defaults ([`BreakerSettings::default`]):
//!
//! - **Window**: outcomes of the last 60 s count (a sliding time window, kept in 60 buckets, so memory is fixed
//!   and recording is O(1) amortised whatever the request rate). A time window rather than "the last N outcomes"
//!   because a host's errors of an hour ago say nothing about it now.
//! - **Errors**: [`OutcomeKind::Failure`]: error statuses (3xx, 4xx, 5xx, less the statuses the operator excludes),
//!   timeouts, connection errors, TLS and DNS failures. [`OutcomeKind::Neutral`] outcomes (refused by egress rules,
//!   not rendered, not sent because asleep, excluded statuses) do not count at all.
//! - **Falling asleep**: when a failure is recorded, the window holds at least 10 outcomes, and failures outnumber
//!   successes. The window is then cleared: after waking, the host is judged on fresh outcomes only.
//! - **Cool-down**: the first sleep lasts 30 s. A host that falls asleep again within one window of waking (its
//!   failures continue) sleeps twice as long as the previous time, up to 10 min. Each success halves the next
//!   cool-down (not below 30 s); a host that stayed healthy for a whole window after waking starts again at 30 s.
//! - **Asleep**: outcomes recorded while the host sleeps (requests that were already in flight when it fell
//!   asleep) are ignored: they are evidence from before the decision.

use crate::domain::time::Instant;
use std::time::Duration;

/// Buckets of the sliding window; each covers `window / NUM_BUCKETS`.
const NUM_BUCKETS: usize = 60;

/// How adaptive sleep behaves; one value for every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Whether hosts sleep at all.
    pub enabled: bool,
    /// How far back outcomes count.
    pub window: Duration,
    /// Outcomes the window must hold before the host may fall asleep.
    pub min_outcomes: u32,
    /// The first sleep's length, and the shortest.
    pub cooldown: Duration,
    /// The longest sleep.
    pub max_cooldown: Duration,
    /// HTTP statuses that do not count as errors (for example 404 for a destination that answers "unknown device"
    /// as part of its normal work). Used by the host actor when it classifies an outcome.
    pub ignore_statuses: Vec<u16>,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            enabled: true,
            window: Duration::from_secs(60),
            min_outcomes: 10,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
            ignore_statuses: Vec::new(),
        }
    }
}

/// How one attempt counts towards sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// A 2xx answer.
    Success,
    /// An error the host is responsible for.
    Failure,
    /// An outcome that says nothing about the host.
    Neutral,
}

/// A host's sleep state, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerState {
    /// When the host wakes, if it sleeps now.
    pub asleep_until: Option<Instant>,
    /// How long the next sleep would last.
    pub next_cooldown: Duration,
    /// Successes in the window.
    pub num_successes: u32,
    /// Failures in the window.
    pub num_failures: u32,
}

/// The sleep decision of one host.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    window: OutcomeWindow,
    next_cooldown: Duration,
    /// The end of the latest sleep, kept after it passed to tell whether failures continue after waking.
    latest_sleep_end: Option<Instant>,
}

impl CircuitBreaker {
    /// A host that has not failed yet.
    pub fn new(settings: BreakerSettings) -> Self {
        let window = OutcomeWindow::new(settings.window);
        CircuitBreaker { next_cooldown: settings.cooldown, window, latest_sleep_end: None, settings }
    }

    /// When the host wakes, if it sleeps at `now`.
    pub fn asleep_until(&self, now: Instant) -> Option<Instant> {
        self.latest_sleep_end.filter(|end| now < *end)
    }

    /// Records how an attempt that ended at `now` went; returns the length of the sleep it started, if it made the
    /// host fall asleep.
    pub fn record(&mut self, kind: OutcomeKind, now: Instant) -> Option<Duration> {
        if !self.settings.enabled || self.asleep_until(now).is_some() {
            return None;
        }
        match kind {
            OutcomeKind::Neutral => None,
            OutcomeKind::Success => {
                self.window.add(now, true);
                self.next_cooldown = (self.next_cooldown / 2).max(self.settings.cooldown);
                None
            }
            OutcomeKind::Failure => {
                self.window.add(now, false);
                let (num_successes, num_failures) = self.window.counts();
                if num_successes + num_failures < self.settings.min_outcomes || num_failures <= num_successes {
                    return None;
                }
                Some(self.fall_asleep(now))
            }
        }
    }

    /// Sleeps until `until` at least, on a decision taken elsewhere (another kernel's breaker for the same host):
    /// the window and the cool-downs are left as they are, this breaker's own evidence.
    pub fn sleep_until(&mut self, until: Instant) {
        if self.settings.enabled && self.latest_sleep_end.is_none_or(|end| end < until) {
            self.latest_sleep_end = Some(until);
        }
    }

    /// The state at `now`, for metrics.
    pub fn state(&self, now: Instant) -> BreakerState {
        let (num_successes, num_failures) = self.window.counts_at(now);
        BreakerState {
            asleep_until: self.asleep_until(now),
            next_cooldown: self.next_cooldown,
            num_successes,
            num_failures,
        }
    }

    fn fall_asleep(&mut self, now: Instant) -> Duration {
        let failures_continue =
            self.latest_sleep_end.is_some_and(|end| now.saturating_duration_since(end) <= self.settings.window);
        if !failures_continue {
            self.next_cooldown = self.settings.cooldown;
        }
        let cooldown = self.next_cooldown;
        self.latest_sleep_end = Some(now + cooldown);
        self.next_cooldown = (cooldown * 2).min(self.settings.max_cooldown).max(self.settings.cooldown);
        self.window.clear();
        cooldown
    }
}

/// Successes and failures over a sliding time window, in a ring of fixed-width buckets.
#[derive(Debug, Clone)]
struct OutcomeWindow {
    bucket_width: Duration,
    /// The instant tick 0 starts at: the first outcome's.
    origin: Option<Instant>,
    /// The newest tick written; buckets of older ticks within the window are still live.
    newest_tick: u64,
    buckets: [Bucket; NUM_BUCKETS],
    num_successes: u32,
    num_failures: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    num_successes: u32,
    num_failures: u32,
}

impl OutcomeWindow {
    fn new(window: Duration) -> Self {
        let bucket_width = (window / NUM_BUCKETS as u32).max(Duration::from_millis(1));
        OutcomeWindow {
            bucket_width,
            origin: None,
            newest_tick: 0,
            buckets: [Bucket::default(); NUM_BUCKETS],
            num_successes: 0,
            num_failures: 0,
        }
    }

    fn tick(&self, origin: Instant, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(origin).as_nanos() / self.bucket_width.as_nanos();
        u64::try_from(elapsed).unwrap_or(u64::MAX)
    }

    /// Moves the window to `now`: the buckets of ticks that left it are emptied, at most one pass over the ring.
    fn advance(&mut self, now: Instant) -> usize {
        let origin = *self.origin.get_or_insert(now);
        let tick = self.tick(origin, now);
        if tick > self.newest_tick {
            let num_expired = (tick - self.newest_tick).min(NUM_BUCKETS as u64);
            for step in 1..=num_expired {
                let bucket = &mut self.buckets[((self.newest_tick + step) % NUM_BUCKETS as u64) as usize];
                self.num_successes -= bucket.num_successes;
                self.num_failures -= bucket.num_failures;
                *bucket = Bucket::default();
            }
            self.newest_tick = tick;
        }
        // An instant older than the newest tick (time never goes back, but be safe) counts in the newest bucket.
        (self.newest_tick % NUM_BUCKETS as u64) as usize
    }

    fn add(&mut self, now: Instant, success: bool) {
        let index = self.advance(now);
        let bucket = &mut self.buckets[index];
        if success {
            bucket.num_successes += 1;
            self.num_successes += 1;
        } else {
            bucket.num_failures += 1;
            self.num_failures += 1;
        }
    }

    /// (successes, failures) as of the latest outcome.
    fn counts(&self) -> (u32, u32) {
        (self.num_successes, self.num_failures)
    }

    /// (successes, failures) at `now`, leaving out the buckets that left the window since the latest outcome.
    fn counts_at(&self, now: Instant) -> (u32, u32) {
        let Some(origin) = self.origin else {
            return (0, 0);
        };
        let num_expired = self.tick(origin, now).saturating_sub(self.newest_tick).min(NUM_BUCKETS as u64);
        (1..=num_expired).fold(self.counts(), |(num_successes, num_failures), step| {
            let bucket = &self.buckets[((self.newest_tick + step) % NUM_BUCKETS as u64) as usize];
            (num_successes - bucket.num_successes, num_failures - bucket.num_failures)
        })
    }

    fn clear(&mut self) {
        self.buckets = [Bucket::default(); NUM_BUCKETS];
        self.num_successes = 0;
        self.num_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OutcomeKind::{Failure, Neutral, Success};

    const SECOND: Duration = Duration::from_secs(1);

    fn particle() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings::default())
    }

    /// Records `count` outcomes of `kind`, one per 10 ms from `from`; returns the instant after the last one and
    /// the sleep the last one started, if any.
    fn record_many(
        sleep: &mut CircuitBreaker,
        kind: OutcomeKind,
        count: u32,
        from: Instant,
    ) -> (Instant, Option<Duration>) {
        let mut now = from;
        let mut started = None;
        for _ in 0..count {
            started = sleep.record(kind, now).or(started);
            now += Duration::from_millis(10);
        }
        (now, started)
    }

    #[test]
    fn a_host_never_sleeps_before_the_minimum_sample() {
        let mut sleep = particle();
        let start = Instant::now();
        let (now, started) = record_many(&mut sleep, Failure, 9, start);
        assert_eq!(started, None);
        assert_eq!(sleep.asleep_until(now), None);
        assert_eq!(sleep.record(Failure, now), Some(30 * SECOND), "the tenth failure is enough");
        assert_eq!(sleep.asleep_until(now), Some(now + 30 * SECOND));
    }

    #[test]
    fn a_host_sleeps_only_when_failures_outnumber_successes() {
        let mut sleep = particle();
        let start = Instant::now();
        let (now, _) = record_many(&mut sleep, Success, 10, start);
        let (now, started) = record_many(&mut sleep, Failure, 10, now);
        assert_eq!(started, None, "10 against 10 is not more");
        assert_eq!(sleep.record(Failure, now), Some(30 * SECOND), "11 against 10 is");
    }

    #[test]
    fn successes_never_put_a_host_to_sleep_and_neutral_outcomes_do_not_count() {
        let mut sleep = particle();
        let start = Instant::now();
        let (now, _) = record_many(&mut sleep, Neutral, 100, start);
        assert_eq!(sleep.state(now).num_successes + sleep.state(now).num_failures, 0);
        let (now, _) = record_many(&mut sleep, Failure, 5, now);
        let (now, _) = record_many(&mut sleep, Neutral, 100, now);
        let (now, started) = record_many(&mut sleep, Success, 5, now);
        assert_eq!(started, None);
        assert_eq!(sleep.state(now).num_failures, 5);
        assert_eq!(sleep.asleep_until(now), None);
    }

    #[test]
    fn outcomes_older_than_the_window_are_forgotten() {
        let mut sleep = particle();
        let start = Instant::now();
        let (_, _) = record_many(&mut sleep, Success, 50, start);
        // A minute later the successes are gone: 10 failures are now a majority.
        let later = start + 61 * SECOND;
        assert_eq!(sleep.state(later).num_successes, 0, "the state forgets them without a new outcome");
        let (_, started) = record_many(&mut sleep, Failure, 10, later);
        assert_eq!(started, Some(30 * SECOND));
    }

    #[test]
    fn the_window_slides_bucket_by_bucket() {
        let mut sleep = particle();
        let start = Instant::now();
        record_many(&mut sleep, Success, 6, start);
        record_many(&mut sleep, Failure, 5, start + 30 * SECOND);
        let state = sleep.state(start + 59 * SECOND);
        assert_eq!((state.num_successes, state.num_failures), (6, 5));
        let state = sleep.state(start + 61 * SECOND);
        assert_eq!((state.num_successes, state.num_failures), (0, 5), "the first successes left the window");
        assert_eq!(sleep.record(Failure, start + 61 * SECOND), None, "6 outcomes are below the sample");
        let state = sleep.state(start + 200 * SECOND);
        assert_eq!((state.num_successes, state.num_failures), (0, 0));
    }

    #[test]
    fn a_sleeping_host_wakes_after_its_cooldown_and_ignores_late_outcomes() {
        let mut sleep = particle();
        let start = Instant::now();
        let (asleep_at, started) = record_many(&mut sleep, Failure, 10, start);
        assert_eq!(started, Some(30 * SECOND));
        let fell_asleep_at = asleep_at - Duration::from_millis(10);
        let wakes_at = fell_asleep_at + 30 * SECOND;
        assert_eq!(sleep.asleep_until(wakes_at - Duration::from_millis(1)), Some(wakes_at));
        assert_eq!(sleep.asleep_until(wakes_at), None);
        // Requests in flight when it fell asleep end later; they change nothing.
        let (_, started) = record_many(&mut sleep, Failure, 50, asleep_at);
        assert_eq!(started, None);
        assert_eq!(sleep.asleep_until(asleep_at), Some(wakes_at), "the sleep is not extended");
        record_many(&mut sleep, Success, 50, asleep_at);
        assert_eq!(sleep.state(asleep_at).next_cooldown, 60 * SECOND, "nor shortened");
    }

    #[test]
    fn after_waking_a_host_is_judged_on_fresh_outcomes_only() {
        let mut sleep = particle();
        let start = Instant::now();
        let (_, started) = record_many(&mut sleep, Failure, 10, start);
        assert_eq!(started, Some(30 * SECOND));
        let awake = start + 31 * SECOND;
        let (now, started) = record_many(&mut sleep, Failure, 9, awake);
        assert_eq!(started, None, "the failures that put it to sleep are not counted again");
        assert_eq!(sleep.record(Failure, now), Some(60 * SECOND));
    }

    #[test]
    fn the_cooldown_doubles_while_failures_continue_up_to_the_cap() {
        let mut sleep = particle();
        let mut now = Instant::now();
        let mut cooldowns = Vec::new();
        for _ in 0..8 {
            let (after, started) = record_many(&mut sleep, Failure, 10, now);
            let cooldown = started.expect("ten failures put the host to sleep");
            cooldowns.push(cooldown.as_secs());
            // Failures continue right after waking.
            now = after + cooldown;
        }
        assert_eq!(cooldowns, [30, 60, 120, 240, 480, 600, 600, 600]);
    }

    #[test]
    fn successes_halve_the_cooldown_down_to_the_first_one() {
        let mut sleep = particle();
        let mut now = Instant::now();
        for _ in 0..4 {
            let (after, started) = record_many(&mut sleep, Failure, 10, now);
            now = after + started.unwrap();
        }
        assert_eq!(sleep.state(now).next_cooldown, 480 * SECOND);
        sleep.record(Success, now);
        assert_eq!(sleep.state(now).next_cooldown, 240 * SECOND);
        let (now, _) = record_many(&mut sleep, Success, 2, now);
        assert_eq!(sleep.state(now).next_cooldown, 60 * SECOND);
        let (now, _) = record_many(&mut sleep, Success, 5, now);
        assert_eq!(sleep.state(now).next_cooldown, 30 * SECOND, "never below the first cool-down");
        let (_, started) = record_many(&mut sleep, Failure, 10, now);
        assert_eq!(started, Some(30 * SECOND));
    }

    #[test]
    fn a_host_that_stayed_well_for_a_window_starts_again_at_the_first_cooldown() {
        let mut sleep = particle();
        let start = Instant::now();
        let (_, started) = record_many(&mut sleep, Failure, 10, start);
        let woke_at = start + started.unwrap();
        assert_eq!(sleep.state(woke_at).next_cooldown, 60 * SECOND);
        let much_later = woke_at + 61 * SECOND;
        let (_, started) = record_many(&mut sleep, Failure, 10, much_later);
        assert_eq!(started, Some(30 * SECOND), "these failures do not continue the earlier ones");
    }

    #[test]
    fn a_disabled_sleep_never_sleeps() {
        let mut sleep = CircuitBreaker::new(BreakerSettings { enabled: false, ..BreakerSettings::default() });
        let (now, started) = record_many(&mut sleep, Failure, 1000, Instant::now());
        assert_eq!((started, sleep.asleep_until(now)), (None, None));
    }

    #[test]
    fn settings_shape_the_decision() {
        let settings = BreakerSettings {
            window: Duration::from_millis(600),
            min_outcomes: 2,
            cooldown: Duration::from_millis(100),
            max_cooldown: Duration::from_millis(250),
            ..BreakerSettings::default()
        };
        let mut sleep = CircuitBreaker::new(settings);
        let start = Instant::now();
        assert_eq!(sleep.record(Failure, start), None);
        assert_eq!(sleep.record(Failure, start), Some(Duration::from_millis(100)));
        let now = start + Duration::from_millis(100);
        sleep.record(Failure, now);
        assert_eq!(sleep.record(Failure, now), Some(Duration::from_millis(200)));
        let now = now + Duration::from_millis(200);
        sleep.record(Failure, now);
        assert_eq!(sleep.record(Failure, now), Some(Duration::from_millis(250)), "capped");
        // 10 ms buckets: a failure 700 ms ago is out of the window.
        let mut fresh = CircuitBreaker::new(sleep.settings.clone());
        assert_eq!(fresh.record(Failure, start), None);
        assert_eq!(fresh.record(Failure, start + Duration::from_millis(700)), None);
    }

    #[test]
    fn a_busy_host_costs_fixed_memory_and_counts_exactly() {
        let mut sleep = particle();
        let start = Instant::now();
        // 100,000 outcomes over 50 s: one success, one failure, alternately; never a majority of failures.
        let mut now = start;
        for index in 0..100_000u32 {
            let kind = if index % 2 == 0 { Success } else { Failure };
            assert_eq!(sleep.record(kind, now), None);
            now += Duration::from_micros(500);
        }
        let state = sleep.state(now);
        assert_eq!((state.num_successes, state.num_failures), (50_000, 50_000));
        assert!(std::mem::size_of::<CircuitBreaker>() < 1024);
    }
}
