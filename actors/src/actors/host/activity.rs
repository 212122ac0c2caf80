//! [`HostActivity`]: what a host actor did lately (requests pending, last activity, whether it was ever reached),
//! its sleep decision and its in-flight cap, shared with the registry and the actor's request tasks.

use super::{AttemptOutcome, ErrorClass, HostKey, HostSettings, HostState};
use crate::domain::breaker::CircuitBreaker;
use crate::domain::time::Instant;
use crate::services::shared_policy::SharedPolicy;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;

/// What a host actor did lately, shared with the registry (which reads it without a message, to find idle
/// actors and for metrics) and with the actor's request tasks.
#[derive(Debug)]
pub struct HostActivity {
    /// The host.
    key: HostKey,
    /// The reference point of `last_active_ms`.
    created: Instant,
    /// Requests accepted and not yet answered (waiting for their turn or in flight).
    num_pending: AtomicUsize,
    /// Milliseconds after `created` of the last request accepted or answered.
    last_active_ms: AtomicU64,
    /// [`FRESH`], [`ONLY_REFUSED`] or [`REACHED`]: whether every outcome so far was a refusal by the egress rules.
    reach: AtomicU8,
    /// The sleep decision.
    pub(super) sleep: Arc<Mutex<CircuitBreaker>>,
    /// The in-flight cap.
    pub(super) permits: Arc<Semaphore>,
    max_in_flight: usize,
}

/// No outcome yet.
const FRESH: u8 = 0;
/// Every outcome so far was refused by the egress rules: no connection was ever made.
const ONLY_REFUSED: u8 = 1;
/// At least one outcome was not such a refusal.
const REACHED: u8 = 2;

impl HostActivity {
    pub(super) fn new(key: HostKey, settings: &HostSettings) -> Self {
        let max_in_flight = settings.max_in_flight.max(1);
        HostActivity {
            key,
            created: Instant::now(),
            num_pending: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            reach: AtomicU8::new(FRESH),
            sleep: Arc::new(Mutex::new(CircuitBreaker::new(settings.sleep.clone()))),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.fetch_max(elapsed, Ordering::Relaxed);
    }

    pub(super) fn begin(&self) {
        self.num_pending.fetch_add(1, Ordering::AcqRel);
        self.touch();
    }

    pub(super) fn end(&self, outcome: &AttemptOutcome) {
        let refused = outcome.failure.as_ref().is_some_and(|failure| failure.class == ErrorClass::Blocked);
        if refused {
            let _ = self.reach.compare_exchange(FRESH, ONLY_REFUSED, Ordering::AcqRel, Ordering::Acquire);
        } else {
            self.reach.store(REACHED, Ordering::Release);
        }
        self.touch();
        self.num_pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// The host.
    pub fn key(&self) -> &HostKey {
        &self.key
    }

    /// Whether its actor may stop at `now`: nothing waiting or in flight, not asleep (its sleep must outlive the
    /// actor's idleness, or a failing host would wake early), and either no request for `idle_timeout` or nothing
    /// but refusals by the egress rules so far (a destination that was never connected to keeps no state).
    pub fn is_idle(&self, now: Instant, idle_timeout: Duration) -> bool {
        if self.num_pending.load(Ordering::Acquire) != 0 || lock(&self.sleep).asleep_until(now).is_some() {
            return false;
        }
        if self.reach.load(Ordering::Acquire) == ONLY_REFUSED {
            return true;
        }
        let last_active = self.created + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last_active) >= idle_timeout
    }

    /// How the host is doing, for metrics.
    pub fn state(&self, now: Instant) -> HostState {
        HostState {
            key: self.key.clone(),
            sleep: lock(&self.sleep).state(now),
            num_in_flight: self.max_in_flight.saturating_sub(self.permits.available_permits()),
        }
    }
}

/// Locks a host's sleep decision (a poisoned lock still holds a sound breaker).
pub(super) fn lock(sleep: &Mutex<CircuitBreaker>) -> MutexGuard<'_, CircuitBreaker> {
    sleep.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the host sleeps at `now`: by this kernel's decision or, when sleeps are shared, by another kernel's,
/// which its breaker then takes as its own until it ends.
pub(super) fn is_asleep(activity: &HostActivity, shared_policy: Option<&SharedPolicy>, now: Instant) -> bool {
    let mut breaker = lock(&activity.sleep);
    if let Some(until) = shared_policy.and_then(|shared| shared.remote_sleep(&activity.key, now)) {
        breaker.sleep_until(until);
    }
    breaker.asleep_until(now).is_some()
}
