//! A webhook's delivery policies as pure functions, which the webhook actor applies: the retry schedule
//! (`x-retry`), which failures are worth retrying, `Retry-After`, and the spacing of sends under a rate quota
//! (`x-minIntervalMs`). Nothing here reads a clock, keeps a timer or sends anything: time comes in as arguments.
//!
//! Retries (opt-in, per webhook):
//!
//! - Retried: 5xx, 408, 429, and the transport failures a later attempt may not meet (`ETIMEDOUT`,
//!   `ESOCKETTIMEDOUT`, `ECONNRESET`, `ECONNREFUSED`, DNS). Not retried: other statuses (3xx, 4xx), TLS, `BLOCKED`,
//!   `RENDER`: the same request would fail the same way.
//! - The delay before attempt `n + 1` is the `n`-th of `backoff` (its last one repeats), or `base * 2^(n-1)` up to
//!   `cap`. With `jitter` (the default) it is "equal jitter": a uniformly random delay between half of the
//!   scheduled one and all of it, so that deliveries failing together do not retry together, and a schedule is
//!   never exceeded.
//! - A `Retry-After` answer (seconds or an HTTP date) replaces the schedule's delay, clamped to
//!   `[0, max_retry_after]`; no jitter is added to it.

use crate::actors::host::ErrorClass;
use crate::domain::time::Instant;
use std::time::{Duration, SystemTime};

/// The most attempts a retry policy may make, the first included.
pub const MAX_ATTEMPTS: u32 = 20;
/// The longest delay a retry schedule may hold (one day), in milliseconds.
pub const MAX_RETRY_DELAY_MS: u64 = 86_400_000;
/// The cap of an exponential schedule that gives none (one hour), in milliseconds.
pub const DEFAULT_RETRY_CAP_MS: u64 = 3_600_000;
/// The default longest `Retry-After` honoured (ten minutes).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The delays between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backoff {
    /// The `n`-th delay before attempt `n + 1`; the last one repeats.
    Schedule(Vec<Duration>),
    /// `base * 2^(n-1)` before attempt `n + 1`, at most `cap`.
    Exponential {
        /// The first delay.
        base: Duration,
        /// The longest delay.
        cap: Duration,
    },
}

/// A webhook's compiled `x-retry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 to [`MAX_ATTEMPTS`]).
    pub attempts: u32,
    /// The delays.
    pub backoff: Backoff,
    /// Whether delays are randomised (equal jitter).
    pub jitter: bool,
}

impl RetryPolicy {
    /// The scheduled delay after `num_tries` attempts (1 or more) have failed, before jitter.
    pub fn scheduled_delay(&self, num_tries: u32) -> Duration {
        let index = num_tries.saturating_sub(1);
        match &self.backoff {
            Backoff::Schedule(delays) => {
                delays.get(index as usize).or_else(|| delays.last()).copied().unwrap_or(Duration::ZERO)
            }
            Backoff::Exponential { base, cap } => {
                let factor = 1u32.checked_shl(index).unwrap_or(u32::MAX);
                base.checked_mul(factor).map_or(*cap, |delay| delay.min(*cap))
            }
        }
    }

    /// The delay after `num_tries` failed attempts, with jitter applied when the policy asks for it. `random` is
    /// any uniformly distributed number.
    pub fn delay(&self, num_tries: u32, random: u64) -> Duration {
        let scheduled = self.scheduled_delay(num_tries);
        if self.jitter { equal_jitter(scheduled, random) } else { scheduled }
    }
}

/// A delay between half of `delay` and all of it, uniformly (millisecond steps).
pub fn equal_jitter(delay: Duration, random: u64) -> Duration {
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let half = millis / 2;
    let spread = millis - half;
    Duration::from_millis(half + random % spread.saturating_add(1))
}

/// A uniformly distributed random number for jitter, from the thread's generator.
pub fn random() -> u64 {
    rand::random()
}

/// Whether a failed attempt is worth another: 5xx, 408, 429, transient transport failures, and a new destination
/// refused at the host actor cap (`HOST_LIMIT`).
pub fn is_retryable(class: ErrorClass, status: Option<u16>) -> bool {
    match class {
        ErrorClass::Http5xx
        | ErrorClass::ConnectTimeout
        | ErrorClass::SocketTimeout
        | ErrorClass::ConnectionReset
        | ErrorClass::ConnectionRefused
        | ErrorClass::Dns
        | ErrorClass::HostLimit => true,
        ErrorClass::Http4xx => matches!(status, Some(408 | 429)),
        _ => false,
    }
}

/// The delay a `Retry-After` header asks for (delta-seconds, or an HTTP date relative to `now`), clamped to
/// `[0, max]`; `None` when there is no such header or it does not parse.
pub fn retry_after(headers: &http::HeaderMap, now: SystemTime, max: Duration) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(delay.min(max))
}

/// Spaces the sends of one webhook at least `interval` apart (`x-minIntervalMs`): the earliest moment the next
/// send may start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacer {
    next_send_at: Option<Instant>,
}

impl Pacer {
    /// How long a send must wait from `now`; zero when it may start at once.
    pub fn wait(&self, now: Instant) -> Duration {
        self.next_send_at.map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    /// Takes the slot for a send starting at `now`: the next may start `interval` later.
    pub fn take(&mut self, now: Instant, interval: Duration) {
        self.next_send_at = Some(now + interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_backoff_schedule_gives_its_delays_in_order_and_repeats_the_last() {
        let policy = RetryPolicy { attempts: 5, backoff: Backoff::Schedule(vec![ms(10), ms(50)]), jitter: false };
        let delays: Vec<Duration> = (1..=4).map(|num_tries| policy.delay(num_tries, 7)).collect();
        assert_eq!(delays, [ms(10), ms(50), ms(50), ms(50)]);
    }

    #[test]
    fn an_exponential_schedule_doubles_from_its_base_up_to_its_cap() {
        let policy =
            RetryPolicy { attempts: 20, backoff: Backoff::Exponential { base: ms(100), cap: ms(1000) }, jitter: false };
        let delays: Vec<Duration> = (1..=6).map(|num_tries| policy.scheduled_delay(num_tries)).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(policy.scheduled_delay(40), ms(1000), "no overflow however many attempts");
    }

    #[test]
    fn equal_jitter_stays_between_half_and_all_of_the_delay() {
        let policy = RetryPolicy { attempts: 3, backoff: Backoff::Schedule(vec![ms(1000)]), jitter: true };
        for random in [0, 1, 499, 500, 501, 12_345, u64::MAX] {
            let delay = policy.delay(1, random);
            assert!(delay >= ms(500) && delay <= ms(1000), "{delay:?}");
        }
        assert_eq!(equal_jitter(ms(1000), 0), ms(500));
        assert_eq!(equal_jitter(ms(1000), 500), ms(1000));
        assert_eq!(equal_jitter(Duration::ZERO, 99), Duration::ZERO);
        let spread: std::collections::HashSet<Duration> = (0..50).map(|_| equal_jitter(ms(1000), random())).collect();
        assert!(spread.len() > 10, "random numbers vary: {spread:?}");
    }

    #[test]
    fn server_errors_timeouts_and_connection_failures_are_retried_other_failures_are_not() {
        assert!(is_retryable(ErrorClass::Http5xx, Some(503)));
        assert!(is_retryable(ErrorClass::Http4xx, Some(408)));
        assert!(is_retryable(ErrorClass::Http4xx, Some(429)));
        for class in [
            ErrorClass::ConnectTimeout,
            ErrorClass::SocketTimeout,
            ErrorClass::ConnectionReset,
            ErrorClass::ConnectionRefused,
            ErrorClass::Dns,
            ErrorClass::HostLimit,
        ] {
            assert!(is_retryable(class, None), "{class:?}");
        }
        assert!(!is_retryable(ErrorClass::Http4xx, Some(404)));
        assert!(!is_retryable(ErrorClass::Http4xx, Some(410)));
        assert!(!is_retryable(ErrorClass::Http3xx, Some(302)));
        for class in [ErrorClass::Tls, ErrorClass::Blocked, ErrorClass::Render, ErrorClass::Sleeping] {
            assert!(!is_retryable(class, None), "{class:?}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_clamped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let max = Duration::from_secs(600);
        let header = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
            headers
        };
        assert_eq!(retry_after(&header("120"), now, max), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&header("0"), now, max), Some(Duration::ZERO));
        assert_eq!(retry_after(&header("86400"), now, max), Some(max), "clamped to the maximum");
        assert_eq!(retry_after(&header("Sun, 06 Nov 1994 08:50:07 GMT"), now, max), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&header("Sunday, 06-Nov-94 08:49:47 GMT"), now, max), Some(Duration::from_secs(10)));
        assert_eq!(retry_after(&header("Sun, 06 Nov 1994 08:00:00 GMT"), now, max), Some(Duration::ZERO), "past");
        assert_eq!(retry_after(&header("soon"), now, max), None);
        assert_eq!(retry_after(&http::HeaderMap::new(), now, max), None);
    }

    #[test]
    fn a_pacer_spaces_sends_by_the_interval() {
        let start = Instant::now();
        let mut pacer = Pacer::default();
        assert_eq!(pacer.wait(start), Duration::ZERO, "the first send goes at once");
        pacer.take(start, ms(300));
        assert_eq!(pacer.wait(start + ms(100)), ms(200));
        assert_eq!(pacer.wait(start + ms(300)), Duration::ZERO);
        assert_eq!(pacer.wait(start + ms(900)), Duration::ZERO);
    }
}
