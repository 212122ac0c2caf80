//! [`SharedPolicy`]: the delivery policies that several kernels on one database share (docs/cluster.md, "What is
//! shared"), behind what the kernel installs at start. Without a cluster (SQLite, actor tests) nothing is
//! installed and every policy stays in memory, at no cost.
//!
//! - **The rate quota** (`x-minIntervalMs`): with a [`QuotaStore`] installed, a webhook actor reserves the start
//!   times of its quota'd requests in the database ([`QuotaStore::reserve`]) instead of pacing them alone, so that
//!   the requests of one webhook are spaced at least its interval apart across every kernel. Webhooks without a
//!   quota never ask.
//! - **Host sleep**: a host actor that puts its host to sleep announces the decision ([`SharedPolicy::announce_sleep`]);
//!   the kernel writes it to the database and spreads it to the other kernels, which note it
//!   ([`SharedPolicy::note_remote_sleep`]); every host actor honours the sleeps noted for its host
//!   ([`SharedPolicy::remote_sleep`]).

use crate::actors::host::HostKey;
use crate::domain::ids::WebhookId;
use crate::domain::time::Instant;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// A reservation of quota slots: `count` request start times, `interval` apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRequest {
    /// The webhook.
    pub webhook_id: WebhookId,
    /// Its `x-minIntervalMs`.
    pub interval: Duration,
    /// Slots wanted, one per queued request.
    pub count: u32,
    /// Reserve only if the next slot is free now (`x-quotaOverflow: drop`, one slot): a request that would have
    /// to wait is dropped, and must not push the next free slot further.
    pub only_if_free: bool,
}

/// The answer to a [`SlotRequest`], in durations from when the database answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slots {
    /// Reserved: the first slot starts after `first_in`, the others `interval` apart after it.
    Granted {
        /// When the first slot starts.
        first_in: Duration,
    },
    /// Not reserved (`only_if_free`): the next slot is free after `free_in`.
    Busy {
        /// When the next slot is free.
        free_in: Duration,
    },
}

/// Where quota slots are reserved: the database shared by the kernels (implemented by the kernel).
pub trait QuotaStore: Send + Sync + 'static {
    /// Reserves slots atomically; the error is a message for the log.
    fn reserve(&self, request: SlotRequest) -> BoxFuture<'static, Result<Slots, String>>;
}

/// A host put to sleep by this kernel, to be shared with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SleepDecision {
    /// The host.
    pub host: HostKey,
    /// How long it sleeps from now.
    pub cooldown: Duration,
}

/// Sleep decisions waiting to be written and spread; beyond, one is logged and not shared (the next one is).
pub const SLEEP_DECISIONS_QUEUE: usize = 1024;

/// The policies shared with other kernels, and what this kernel heard of theirs.
#[derive(Default)]
pub struct SharedPolicy {
    quota: OnceLock<Arc<dyn QuotaStore>>,
    decisions: OnceLock<mpsc::Sender<SleepDecision>>,
    /// Hosts another kernel put to sleep, and until when.
    remote_sleeps: Mutex<HashMap<HostKey, Instant>>,
    /// How many `remote_sleeps` holds, read without the lock on the hot path.
    num_remote_sleeps: AtomicUsize,
}

impl fmt::Debug for SharedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPolicy")
            .field("quota_shared", &self.quota.get().is_some())
            .field("sleeps_shared", &self.decisions.get().is_some())
            .field("num_remote_sleeps", &self.num_remote_sleeps.load(Ordering::Relaxed))
            .finish()
    }
}

impl SharedPolicy {
    /// Shares the rate quota through `store` from now on (once; later calls are ignored).
    pub fn share_quota(&self, store: Arc<dyn QuotaStore>) {
        let _ = self.quota.set(store);
    }

    /// The store of quota slots, when the quota is shared.
    pub fn quota(&self) -> Option<&Arc<dyn QuotaStore>> {
        self.quota.get()
    }

    /// Shares sleep decisions from now on: they arrive on the returned receiver (once; `None` after).
    pub fn share_sleeps(&self) -> Option<mpsc::Receiver<SleepDecision>> {
        let (sender, receiver) = mpsc::channel(SLEEP_DECISIONS_QUEUE);
        self.decisions.set(sender).ok().map(|()| receiver)
    }

    /// Announces that this kernel put `host` to sleep for `cooldown`: nothing when sleeps are not shared.
    pub fn announce_sleep(&self, host: &HostKey, cooldown: Duration) {
        let Some(decisions) = self.decisions.get() else {
            return;
        };
        if decisions.try_send(SleepDecision { host: host.clone(), cooldown }).is_err() {
            tracing::warn!(%host, "too many host sleep decisions waiting: this one is not shared with the other kernels");
        }
    }

    /// Notes that another kernel put `host` to sleep until `until` (a later end of a sleep already noted wins).
    pub fn note_remote_sleep(&self, host: HostKey, until: Instant) {
        let mut sleeps = self.remote_sleeps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        sleeps.retain(|_, end| *end > now);
        let end = sleeps.entry(host).or_insert(until);
        *end = (*end).max(until);
        self.num_remote_sleeps.store(sleeps.len(), Ordering::Release);
    }

    /// When `host` wakes from a sleep another kernel decided, if it sleeps at `now`.
    pub fn remote_sleep(&self, host: &HostKey, now: Instant) -> Option<Instant> {
        if self.num_remote_sleeps.load(Ordering::Acquire) == 0 {
            return None;
        }
        let sleeps = self.remote_sleeps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sleeps.get(host).copied().filter(|end| *end > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_sleep_holds_until_its_end_and_the_later_end_wins() {
        let policy = SharedPolicy::default();
        let host = HostKey::of(&"http://example.com/".parse().unwrap());
        let now = Instant::now();
        assert_eq!(policy.remote_sleep(&host, now), None);
        policy.note_remote_sleep(host.clone(), now + Duration::from_secs(30));
        policy.note_remote_sleep(host.clone(), now + Duration::from_secs(10));
        assert_eq!(policy.remote_sleep(&host, now), Some(now + Duration::from_secs(30)));
        assert_eq!(policy.remote_sleep(&host, now + Duration::from_secs(31)), None);
        let other = HostKey::of(&"http://example.org/".parse().unwrap());
        assert_eq!(policy.remote_sleep(&other, now), None);
    }

    #[test]
    fn decisions_are_shared_only_once_sharing_started() {
        let policy = SharedPolicy::default();
        let host = HostKey::of(&"http://example.com/".parse().unwrap());
        policy.announce_sleep(&host, Duration::from_secs(30));
        let mut decisions = policy.share_sleeps().unwrap();
        assert!(policy.share_sleeps().is_none());
        policy.announce_sleep(&host, Duration::from_secs(60));
        let decision = decisions.try_recv().unwrap();
        assert_eq!(decision, SleepDecision { host, cooldown: Duration::from_secs(60) });
        assert!(decisions.try_recv().is_err());
    }
}
