//! [`Ownership`]: what this kernel may send. Several kernels share one PostgreSQL database; each pending delivery
//! has one owner, and only the owner sends it. The kernel keeps the deliveries it accepted in memory (the hot
//! path) and the database arbitrates: the kernel's heartbeat keeps its lease, and every outcome it writes is
//! fenced by its ownership.
//!
//! Two things stop this kernel from sending what another kernel may have taken over:
//!
//! - **The attempt gate**: attempts start only while the lease is surely held, until half the lease after the last
//!   heartbeat that succeeded (measured from when it was sent, on the monotonic clock, so that a process frozen
//!   past its lease finds the gate shut when it thaws). Peers take a kernel's deliveries over only after its whole
//!   lease expired on the database's clock.
//! - **Lost deliveries**: an outcome write that the database refused because another kernel owns the delivery now
//!   marks it lost; the webhook actor then forgets it instead of sending it again.
//!
//! The kernel's heartbeat (kernel/src/cluster.rs) moves the gate; the journal marks lost deliveries; the webhook
//! actor reads both before each attempt. Without a cluster (actor tests), the gate is always open.

use crate::domain::ids::DeliveryId;
use crate::domain::time::Instant;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// This kernel's right to send.
#[derive(Debug)]
pub struct Ownership {
    /// This kernel process's id in the database (`kernels.id`), the owner its journal writes.
    node_id: String,
    /// The origin of `open_until_nanos`.
    origin: Instant,
    /// Attempts may start until `origin` plus this many nanoseconds; `u64::MAX` for always.
    open_until_nanos: AtomicU64,
    /// Shut for good: no heartbeat opens the gate again.
    is_shut: AtomicBool,
    /// Deliveries another kernel owns now, which this one must forget.
    lost: Mutex<HashSet<DeliveryId>>,
    /// How many `lost` holds, read without the lock on the hot path.
    num_lost: AtomicUsize,
}

impl Default for Ownership {
    /// A gate that is always open: one kernel and no heartbeat (actor tests).
    fn default() -> Self {
        Ownership::always_open("local")
    }
}

impl Ownership {
    /// A kernel whose gate opens only with its first heartbeat.
    pub fn new(node_id: impl Into<String>) -> Self {
        let ownership = Ownership::always_open(node_id);
        ownership.open_until_nanos.store(0, Ordering::Release);
        ownership
    }

    /// A kernel whose gate never shuts.
    pub fn always_open(node_id: impl Into<String>) -> Self {
        Ownership {
            node_id: node_id.into(),
            origin: Instant::now(),
            open_until_nanos: AtomicU64::new(u64::MAX),
            is_shut: AtomicBool::new(false),
            lost: Mutex::default(),
            num_lost: AtomicUsize::new(0),
        }
    }

    /// This kernel's id in the database.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// True while attempts may start.
    pub fn may_start_attempts(&self) -> bool {
        if self.is_shut.load(Ordering::Acquire) {
            return false;
        }
        let until = self.open_until_nanos.load(Ordering::Acquire);
        until == u64::MAX || self.nanos_since_origin(Instant::now()) < until
    }

    /// Opens the gate until `deadline` (a heartbeat succeeded); never moves it back.
    pub fn open_until(&self, deadline: Instant) {
        let nanos = self.nanos_since_origin(deadline);
        self.open_until_nanos.fetch_max(nanos, Ordering::AcqRel);
    }

    /// Shuts the gate for good: the lease is lost, or the kernel is stopping.
    pub fn shut(&self) {
        self.is_shut.store(true, Ordering::Release);
    }

    /// How long until the gate shuts, when it is open and can shut.
    pub fn remaining(&self) -> Option<Duration> {
        let until = self.open_until_nanos.load(Ordering::Acquire);
        if until == u64::MAX {
            return None;
        }
        if self.is_shut.load(Ordering::Acquire) {
            return Some(Duration::ZERO);
        }
        Some(Duration::from_nanos(until.saturating_sub(self.nanos_since_origin(Instant::now()))))
    }

    /// Notes deliveries that another kernel owns now.
    pub fn mark_lost(&self, deliveries: impl IntoIterator<Item = DeliveryId>) {
        let mut lost = self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        lost.extend(deliveries);
        self.num_lost.store(lost.len(), Ordering::Release);
    }

    /// True (once) when `delivery` was lost to another kernel: the caller forgets it.
    pub fn take_lost(&self, delivery: &DeliveryId) -> bool {
        if self.num_lost.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut lost = self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_lost = lost.remove(delivery);
        self.num_lost.store(lost.len(), Ordering::Release);
        was_lost
    }

    fn nanos_since_origin(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_with_a_heartbeat_shuts_at_its_deadline_and_never_moves_back() {
        let ownership = Ownership::new("k1");
        assert!(!ownership.may_start_attempts(), "shut until the first heartbeat");
        ownership.open_until(Instant::now() + Duration::from_secs(60));
        assert!(ownership.may_start_attempts());
        ownership.open_until(Instant::now());
        assert!(ownership.may_start_attempts(), "an older deadline does not shorten a newer one");
        ownership.shut();
        assert!(!ownership.may_start_attempts());
        ownership.open_until(Instant::now() + Duration::from_secs(60));
        assert!(!ownership.may_start_attempts(), "shut for good");
        assert!(Ownership::default().may_start_attempts());
    }

    #[test]
    fn a_lost_delivery_is_reported_once() {
        let ownership = Ownership::default();
        let (lost, kept) = (DeliveryId::generate(), DeliveryId::generate());
        assert!(!ownership.take_lost(&lost));
        ownership.mark_lost([lost.clone()]);
        assert!(!ownership.take_lost(&kept));
        assert!(ownership.take_lost(&lost));
        assert!(!ownership.take_lost(&lost));
    }
}
