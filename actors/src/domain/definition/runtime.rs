//! A webhook's run-time state, shared by every compiled version of the webhook and by its deliveries in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A webhook's run-time state: its consecutive failed deliveries, and whether (and why) it was disabled at run
/// time, by its failure limit, a `410 Gone` or an admin. Matching reads it with one atomic load; the webhook actor
/// and admin calls change it; the kernel stores it (table `webhook_state`) so that it survives restarts.
///
/// It also bounds the webhook's deliveries held in memory ([`MAX_DELIVERIES_IN_MEMORY`]): each new delivery takes
/// a permit, given back when it ends or waits for a retry. A publish that finds none waits (its device session
/// pauses, never the kernel), so a webhook slower than its events delays the devices that feed it instead of
/// growing without bound; the deliveries are durable either way.
#[derive(Debug)]
pub struct WebhookRuntime {
    disabled: AtomicBool,
    consecutive_failures: AtomicU32,
    disabled_reason: std::sync::Mutex<Option<String>>,
    deliveries: Arc<tokio::sync::Semaphore>,
}

/// The most deliveries of one webhook held in memory (dispatched, not yet finished, not waiting for a retry).
pub const MAX_DELIVERIES_IN_MEMORY: usize = 4096;

impl Default for WebhookRuntime {
    fn default() -> Self {
        WebhookRuntime::new(0, None)
    }
}

impl WebhookRuntime {
    /// The state as stored.
    pub fn new(consecutive_failures: u32, disabled_reason: Option<String>) -> Self {
        WebhookRuntime {
            disabled: AtomicBool::new(disabled_reason.is_some()),
            consecutive_failures: AtomicU32::new(consecutive_failures),
            disabled_reason: std::sync::Mutex::new(disabled_reason),
            deliveries: Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES_IN_MEMORY)),
        }
    }

    /// A place for one more delivery in memory, if there is one now.
    pub fn try_admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.deliveries.clone().try_acquire_owned().ok()
    }

    /// A place for one more delivery in memory, waiting for one.
    pub async fn admit(&self) -> tokio::sync::OwnedSemaphorePermit {
        let deliveries = self.deliveries.clone();
        deliveries.acquire_owned().await.expect("the semaphore of deliveries is never closed")
    }

    /// Sets the state to what was stored (at start, before any delivery).
    pub fn restore(&self, consecutive_failures: u32, disabled_reason: Option<String>) {
        let mut reason = self.reason();
        self.disabled.store(disabled_reason.is_some(), Ordering::Relaxed);
        *reason = disabled_reason;
        self.consecutive_failures.store(consecutive_failures, Ordering::Relaxed);
    }

    fn reason(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.disabled_reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True when the webhook was disabled at run time.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Why it was disabled, when it is.
    pub fn disabled_reason(&self) -> Option<String> {
        self.reason().clone()
    }

    /// Consecutive failed deliveries so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Counts one more failed delivery; returns the new count.
    pub fn record_failure(&self) -> u32 {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// A successful delivery ends the run of failures; true when there was one (the state changed). Costs one
    /// atomic load when there was none.
    pub fn record_success(&self) -> bool {
        self.consecutive_failures.load(Ordering::Relaxed) != 0
            && self.consecutive_failures.swap(0, Ordering::Relaxed) != 0
    }

    /// Disables the webhook for `reason`; false when it already was (the first reason stays).
    pub fn disable(&self, reason: String) -> bool {
        let mut current = self.reason();
        if current.is_some() {
            return false;
        }
        *current = Some(reason);
        self.disabled.store(true, Ordering::Relaxed);
        true
    }

    /// Enables the webhook again and resets its count of failures.
    pub fn enable(&self) {
        let mut current = self.reason();
        *current = None;
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.disabled.store(false, Ordering::Relaxed);
    }
}
