//! The webhook's delivery policies: the rate quota (`x-minIntervalMs`, `x-quotaOverflow`), attempts put off for a
//! retry (`x-retry`) or a sleeping host, and the failure limit (`x-failureLimit`).

use super::{Delivery, QUOTA_CLASS, Target, WebhookActor};
use crate::actors::host::AttemptOutcome;
use crate::domain::definition::{CompiledWebhook, QuotaOverflow};
use crate::domain::event::Event;
use crate::domain::policy;
use crate::domain::time;
use crate::domain::time::Instant;
use crate::services::journal::{DeliveryStatus, JournalEntry, WebhookStateRecord};
use actix::{AsyncContext, Context};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

impl WebhookActor {
    /// Admits a new delivery under the rate quota: sent at once, queued for its turn, or, over the quota with
    /// `x-quotaOverflow: drop` or a full queue, dropped (recorded and reported, never silently).
    pub(super) fn admit(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let webhook = &delivery.dispatch.webhook;
        let Some(interval) = webhook.min_interval else {
            return self.attempt(delivery, ctx);
        };
        if self.is_quota_shared() {
            if webhook.quota_overflow == QuotaOverflow::Drop && self.may_ask_for_slot() {
                return self.ask_for_slot(delivery, interval, ctx);
            }
            if webhook.quota_overflow == QuotaOverflow::Queue && self.take_turn(interval) {
                return self.wait_for_slot_on_its_way(delivery, ctx);
            }
        } else if self.take_turn(interval) {
            return self.attempt(delivery, ctx);
        }
        let limit = self.services.settings.quota_queue_limit;
        let num_waiting = self.quota_queue.len() - usize::from(self.is_head_on_its_way());
        let interval_ms = interval.as_millis();
        let refusal = match webhook.quota_overflow {
            QuotaOverflow::Drop => Some(over_quota_message(interval)),
            QuotaOverflow::Queue if num_waiting >= limit => Some(format!(
                "over quota: {limit} requests already wait their turn (one every {interval_ms} ms); event dropped"
            )),
            QuotaOverflow::Queue => None,
        };
        match refusal {
            Some(message) => self.drop_delivery(&delivery, QUOTA_CLASS, message),
            None => self.wait_turn(delivery, ctx),
        }
    }

    /// Sends a delivery again (after a retry delay or a sleeping host): at once, or in its turn under the quota.
    /// It was admitted once, so the quota queues it whatever its bound.
    pub(super) fn resend(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        match delivery.dispatch.webhook.min_interval {
            Some(_) if self.is_quota_shared() => self.wait_turn(delivery, ctx),
            Some(interval) if !self.take_turn(interval) => self.wait_turn(delivery, ctx),
            _ => self.attempt(delivery, ctx),
        }
    }

    /// Takes the quota's next turn if it is due now and nobody waits for it.
    pub(super) fn take_turn(&mut self, interval: Duration) -> bool {
        let now = Instant::now();
        if !self.quota_queue.is_empty() || !self.pacer.wait(now).is_zero() {
            return false;
        }
        self.pacer.take(now, interval);
        true
    }

    /// Queues a delivery for its turn under the quota.
    pub(super) fn wait_turn(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        self.quota_queue.push_back(delivery);
        self.arm_quota_timer(ctx);
    }

    /// Makes sure a timer sends the head of the quota queue when its turn comes.
    pub(super) fn arm_quota_timer(&mut self, ctx: &mut Context<Self>) {
        if self.is_quota_shared() {
            return self.arm_shared_slots(ctx);
        }
        if self.is_quota_timer_armed || self.quota_queue.is_empty() {
            return;
        }
        self.is_quota_timer_armed = true;
        ctx.run_later(self.pacer.wait(Instant::now()), |actor, ctx| {
            actor.is_quota_timer_armed = false;
            actor.send_queued(ctx);
        });
    }

    /// Sends the head of the quota queue, whose turn has come.
    pub(super) fn send_queued(&mut self, ctx: &mut Context<Self>) {
        if self.is_quota_shared() {
            return self.send_in_slot(ctx);
        }
        let now = Instant::now();
        if self.pacer.wait(now).is_zero()
            && let Some(delivery) = self.quota_queue.pop_front()
        {
            self.pacer.take(now, delivery.dispatch.webhook.min_interval.unwrap_or_default());
            self.attempt(delivery, ctx);
        }
        self.arm_quota_timer(ctx);
    }

    /// A sleeping host refused the attempt: reported as any failure, then tried again after each of the
    /// `sleep_retry_delays` in turn, and after the last one recorded as skipped.
    pub(super) fn conclude_sleeping(
        &mut self,
        mut delivery: Delivery,
        target: &Target,
        outcome: &AttemptOutcome,
        ctx: &mut Context<Self>,
    ) {
        let delay = self.services.settings.sleep_retry_delays.get(delivery.num_sleeps as usize).copied();
        let status = if delay.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Skipped };
        self.record(&delivery.dispatch, target, outcome, status, delay.map(due_at_ms));
        self.report(&delivery.dispatch, outcome);
        if let Some(delay) = delay {
            delivery.num_sleeps += 1;
            self.try_again_later(delivery, delay, ctx);
        }
    }

    /// Schedules the next attempt of a delivery (same delivery id, next attempt number).
    pub(super) fn try_again_later(&mut self, mut delivery: Delivery, delay: Duration, ctx: &mut Context<Self>) {
        delivery.dispatch.attempt += 1;
        // Waiting for a retry, it no longer counts among the webhook's deliveries in memory: a destination that
        // fails must not pause the devices that feed it for the length of its retry delays.
        delivery.dispatch.admission = None;
        self.postpone(delivery, delay, ctx);
    }

    /// Puts a delivery aside until `delay` has passed, then sends it (its attempt number unchanged).
    pub(super) fn postpone(&mut self, delivery: Delivery, delay: Duration, ctx: &mut Context<Self>) {
        let number = self.next_retry_number;
        self.next_retry_number += 1;
        self.retries.insert((Instant::now() + delay, number), delivery);
        self.arm_retry_timer(ctx);
    }

    /// Makes sure the retry timer fires when the earliest waiting delivery is due.
    pub(super) fn arm_retry_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(&(due, _)) = self.retries.keys().next() else {
            return;
        };
        if let Some((armed_at, handle)) = self.retry_timer {
            if armed_at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(due.saturating_duration_since(Instant::now()), |actor, ctx| {
            actor.retry_timer = None;
            actor.resend_due(ctx);
        });
        self.retry_timer = Some((due, handle));
    }

    /// Sends every delivery whose next attempt is due, then waits for the next one.
    pub(super) fn resend_due(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let delivery = entry.remove();
            self.resend(delivery, ctx);
        }
        self.arm_retry_timer(ctx);
    }

    /// How long to wait before the next attempt, when the webhook's retry policy allows one after this outcome:
    /// `Retry-After` when the answer has one, the schedule otherwise.
    pub(super) fn retry_delay(&self, delivery: &Delivery, outcome: &AttemptOutcome) -> Option<Duration> {
        let policy = delivery.dispatch.webhook.retry.as_ref()?;
        let failure = outcome.failure.as_ref()?;
        let response = outcome.response.as_ref();
        let status = response.map(|response| response.status);
        if delivery.num_tries >= policy.attempts || !policy::is_retryable(failure.class, status) {
            return None;
        }
        let max_retry_after = self.services.settings.max_retry_after;
        let retry_after =
            response.and_then(|response| policy::retry_after(&response.headers, SystemTime::now(), max_retry_after));
        Some(retry_after.unwrap_or_else(|| policy.delay(delivery.num_tries, policy::random())))
    }

    /// Counts a finished delivery towards the failure limit: a success ends a run of failures; a failure extends
    /// it and, at `x-failureLimit` (or on `410 Gone` with `x-retry`), disables the webhook and announces it with
    /// `webhook-disabled/<webhook id>`. The state is journaled whenever it changes.
    pub(super) fn count(&self, webhook: &CompiledWebhook, target: &Target, outcome: &AttemptOutcome) {
        let runtime = &webhook.runtime;
        if outcome.failure.is_none() {
            // With a failure limit, every success is journaled: the count is shared by every kernel on the
            // database, and another kernel's failures may be what it resets.
            if runtime.record_success() || webhook.failure_limit > 0 {
                self.save_state(webhook, true, 0);
            }
            return;
        }
        let num_failures = runtime.record_failure();
        let is_gone = outcome.response.as_ref().is_some_and(|response| response.status == 410);
        let reason = if is_gone && webhook.retry.is_some() {
            Some(format!("410 Gone from {}", target.host))
        } else if webhook.failure_limit > 0 && num_failures >= webhook.failure_limit {
            Some(format!("{num_failures} consecutive failures"))
        } else {
            None
        };
        if let Some(reason) = reason
            && runtime.disable(reason.clone())
        {
            tracing::warn!(webhook_id = %webhook.id, %reason, "webhook disabled");
            let name = format!("webhook-disabled/{}", webhook.id);
            self.services.bus.publish(&Arc::new(Event::new(webhook.group_id.clone(), None, name, reason, 0)));
        }
        self.save_state(webhook, false, 1);
    }

    /// Journals a change of the webhook's run-time state: a reset of its failure count (a success), failures
    /// added to it, and the reason it is disabled, if it is.
    pub(super) fn save_state(&self, webhook: &CompiledWebhook, is_reset: bool, num_failures_added: u32) {
        self.journal(JournalEntry::WebhookState(WebhookStateRecord {
            webhook_id: webhook.id.clone(),
            consecutive_failures: webhook.runtime.consecutive_failures(),
            disabled_reason: webhook.runtime.disabled_reason(),
            is_reset,
            num_failures_added,
            failure_limit: webhook.failure_limit,
        }));
    }
}

/// When an attempt put off by `delay` is due, epoch milliseconds.
pub(super) fn due_at_ms(delay: Duration) -> i64 {
    time::now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2))
}

/// The message of a delivery dropped over the quota of a webhook with `x-quotaOverflow: drop`.
pub(super) fn over_quota_message(interval: Duration) -> String {
    let interval_ms = interval.as_millis();
    format!(
        "over quota: at most one request every {interval_ms} ms (x-minIntervalMs); event dropped (x-quotaOverflow: drop)"
    )
}
