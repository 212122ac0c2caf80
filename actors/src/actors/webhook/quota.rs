//! The rate quota shared by the kernels of one database (`x-minIntervalMs` cluster-wide; docs/cluster.md): when
//! the kernel installed a [`crate::services::shared_policy::QuotaStore`], the start time of every quota'd request
//! is a slot reserved in the database, so that the requests of one webhook are spaced at least its interval apart
//! whichever kernels send them. Webhooks without a quota never ask; without a shared store (SQLite, one kernel)
//! the actor paces alone ([`crate::domain::policy::Pacer`]).
//!
//! - Queued deliveries (`x-quotaOverflow: queue`, and every retry) reserve their slots in batches: one round trip
//!   reserves what the queue lacks, up to the slots of [`SLOTS_HORIZON`] (at least one, at most
//!   [`MAX_SLOTS_PER_RESERVATION`]), so a busy webhook pays one statement per second or per slot, whichever is
//!   rarer. A slot whose kernel dies before using it is lost time, never a second request.
//! - A delivery of a webhook that drops what is over its quota (`x-quotaOverflow: drop`) asks for the next slot
//!   only if it is free now; if it is not, it is dropped (class `QUOTA`) and the slot stays where it was. Until the
//!   time the database gave for the next free slot, further deliveries are dropped without asking.
//! - When the database cannot be reached, the deliveries wait and the reservation is asked again after
//!   [`RESERVATION_RETRY`]: nothing is sent that the quota did not grant.
//! - A slot is used at its time, or up to [`SLOT_GRACE`] late; a slot missed by more is given up (lost time) and
//!   a new one reserved, so that a late request never crowds the next slot, which another kernel may hold.

use super::{Delivery, QUOTA_CLASS, WebhookActor};
use crate::domain::time::Instant;
use crate::services::shared_policy::{SlotRequest, Slots};
use actix::{AsyncContext, Context, Handler};
use std::collections::VecDeque;
use std::time::Duration;

/// One reservation takes at most the slots of this much time: what a kernel that dies loses.
pub const SLOTS_HORIZON: Duration = Duration::from_secs(1);
/// One reservation takes at most this many slots.
pub const MAX_SLOTS_PER_RESERVATION: usize = 64;
/// Time before a reservation the database did not answer is asked again.
pub const RESERVATION_RETRY: Duration = Duration::from_millis(200);
/// How late a slot may still be used (at most a quarter of the interval): used later, a request would crowd the
/// next slot, which another kernel may hold. A slot missed by more (a kernel too busy to keep time) is given up,
/// lost time, and the delivery waits for a new one.
pub const SLOT_GRACE: Duration = Duration::from_millis(50);

/// A webhook actor's share of the cluster-wide quota.
#[derive(Debug, Default)]
pub(super) struct SharedQuota {
    /// Slots reserved and not used yet, earliest first.
    slots: VecDeque<Instant>,
    /// The interval of the latest reservation.
    interval: Duration,
    /// Whether a reservation for the queue is on its way.
    is_reserving: bool,
    /// The delivery of a drop-on-overflow webhook whose slot is being asked for.
    trial: Option<Delivery>,
    /// Until when the database said the next slot is taken (drop-on-overflow).
    busy_until: Option<Instant>,
    /// Whether the head of the queue is a delivery that this kernel's own pacing would have sent at once: it is on
    /// its way (waiting only for the database's answer), not among those waiting their turn (`quota_queue_limit`).
    is_head_on_its_way: bool,
}

impl WebhookActor {
    /// True when the kernel shares the quota with others through the database.
    pub(super) fn is_quota_shared(&self) -> bool {
        self.services.shared_policy.quota().is_some()
    }

    /// Whether a delivery of a drop-on-overflow webhook may ask for the next slot: none is asked for already,
    /// nothing waits in the queue, and the database did not say the slot is taken.
    pub(super) fn may_ask_for_slot(&self) -> bool {
        let quota = &self.shared_quota;
        quota.trial.is_none()
            && self.quota_queue.is_empty()
            && quota.busy_until.is_none_or(|until| until <= Instant::now())
    }

    /// Whether the head of the quota queue is on its way rather than waiting its turn.
    pub(super) fn is_head_on_its_way(&self) -> bool {
        self.shared_quota.is_head_on_its_way && !self.quota_queue.is_empty()
    }

    /// Queues a delivery that this kernel's own pacing would send at once (the queue is empty): it goes in the
    /// first slot the database gives.
    pub(super) fn wait_for_slot_on_its_way(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        self.shared_quota.is_head_on_its_way = true;
        self.wait_turn(delivery, ctx);
    }

    /// Asks for the next slot for a delivery of a drop-on-overflow webhook, only if it is free now.
    pub(super) fn ask_for_slot(&mut self, delivery: Delivery, interval: Duration, ctx: &mut Context<Self>) {
        self.shared_quota.trial = Some(delivery);
        let request = SlotRequest { webhook_id: self.id.clone(), interval, count: 1, only_if_free: true };
        self.reserve(request, ctx);
    }

    /// Reserves the slots the queue lacks (one reservation at a time) and arms the timer of the earliest.
    pub(super) fn arm_shared_slots(&mut self, ctx: &mut Context<Self>) {
        let Some(head) = self.quota_queue.front() else {
            return;
        };
        let interval = head.dispatch.webhook.min_interval.unwrap_or_default().max(Duration::from_millis(1));
        let needed = self.quota_queue.len().saturating_sub(self.shared_quota.slots.len());
        if needed > 0 && !self.shared_quota.is_reserving {
            let per_horizon = usize::try_from(SLOTS_HORIZON.as_nanos() / interval.as_nanos()).unwrap_or(usize::MAX);
            let count = needed.min(per_horizon.max(1)).min(MAX_SLOTS_PER_RESERVATION);
            self.shared_quota.is_reserving = true;
            let count = u32::try_from(count).unwrap_or(1);
            let request = SlotRequest { webhook_id: self.id.clone(), interval, count, only_if_free: false };
            self.reserve(request, ctx);
        }
        let Some(&slot) = self.shared_quota.slots.front() else {
            return;
        };
        if self.is_quota_timer_armed {
            return;
        }
        self.is_quota_timer_armed = true;
        ctx.run_later(slot.saturating_duration_since(Instant::now()), |actor, ctx| {
            actor.is_quota_timer_armed = false;
            actor.send_in_slot(ctx);
        });
    }

    /// Sends the head of the quota queue in the slot that has come (a slot with nothing left to send is lost).
    pub(super) fn send_in_slot(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let grace = SLOT_GRACE.min(self.shared_quota.interval / 4);
        let num_slots = self.shared_quota.slots.len();
        self.shared_quota.slots.retain(|slot| *slot + grace >= now);
        let num_missed = num_slots - self.shared_quota.slots.len();
        if num_missed > 0 {
            tracing::debug!(webhook_id = %self.id, num_missed, "quota slots missed by more than their grace: given up");
        }
        if self.shared_quota.slots.front().is_some_and(|slot| *slot <= now) {
            self.shared_quota.slots.pop_front();
            if let Some(delivery) = self.quota_queue.pop_front() {
                // This kernel's own pacing follows its sends, so that it knows who waits their turn.
                self.shared_quota.is_head_on_its_way = false;
                self.pacer.take(now, self.shared_quota.interval);
                self.attempt(delivery, ctx);
            }
        }
        self.arm_shared_slots(ctx);
    }

    /// Sends a reservation to the database; the answer comes back as a [`Reserved`] message.
    fn reserve(&mut self, request: SlotRequest, ctx: &mut Context<Self>) {
        let Some(store) = self.services.shared_policy.quota().cloned() else {
            return;
        };
        let actor = ctx.address();
        let (interval, count, only_if_free) = (request.interval, request.count, request.only_if_free);
        actix::spawn(async move {
            let answer = store.reserve(request).await;
            actor.do_send(Reserved { answer, interval, count, only_if_free });
        });
    }

    /// The answer for the slot of a drop-on-overflow webhook's delivery: sent, dropped, or asked again later.
    fn answer_trial(&mut self, answer: Result<Slots, String>, interval: Duration, ctx: &mut Context<Self>) {
        let Some(delivery) = self.shared_quota.trial.take() else {
            return;
        };
        match answer {
            Ok(Slots::Granted { .. }) => self.attempt(delivery, ctx),
            Ok(Slots::Busy { free_in }) => {
                self.shared_quota.busy_until = Some(Instant::now() + free_in);
                self.drop_delivery(&delivery, QUOTA_CLASS, super::policies::over_quota_message(interval));
            }
            Err(error) => {
                tracing::warn!(webhook_id = %self.id, %error, "could not reserve a quota slot; asking again");
                self.shared_quota.trial = Some(delivery);
                ctx.run_later(RESERVATION_RETRY, move |actor, ctx| {
                    if let Some(delivery) = actor.shared_quota.trial.take() {
                        actor.ask_for_slot(delivery, interval, ctx);
                    }
                });
            }
        }
    }
}

/// The database's answer to a reservation.
struct Reserved {
    answer: Result<Slots, String>,
    interval: Duration,
    count: u32,
    only_if_free: bool,
}

impl actix::Message for Reserved {
    type Result = ();
}

impl Handler<Reserved> for WebhookActor {
    type Result = ();

    fn handle(&mut self, reserved: Reserved, ctx: &mut Self::Context) {
        let Reserved { answer, interval, count, only_if_free } = reserved;
        if only_if_free {
            return self.answer_trial(answer, interval, ctx);
        }
        match answer {
            Ok(Slots::Granted { first_in }) => {
                let first = Instant::now() + first_in;
                self.shared_quota.interval = interval;
                self.shared_quota.slots.extend((0..count).map(|index| first + interval * index));
                self.shared_quota.is_reserving = false;
                self.arm_shared_slots(ctx);
            }
            Ok(Slots::Busy { .. }) => {
                self.shared_quota.is_reserving = false;
                self.arm_shared_slots(ctx);
            }
            Err(error) => {
                tracing::warn!(webhook_id = %self.id, %error, "could not reserve quota slots; asking again");
                ctx.run_later(RESERVATION_RETRY, |actor, ctx| {
                    actor.shared_quota.is_reserving = false;
                    actor.arm_shared_slots(ctx);
                });
            }
        }
    }
}
