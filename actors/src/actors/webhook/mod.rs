//! [`WebhookActor`]: one per webhook with work. For each [`Dispatch`] it renders the request from the event,
//! hands it to the destination's host actor, and turns the outcome into an attempt record (through the journal)
//! and the `hook-sent`, `hook-response/.../<i>` and `hook-error/.../<i>` events of the group's event stream.
//!
//! A successful answer with a body becomes `hook-response` events: the body (through `responseTemplate`, or as a
//! `data:` URL when it is binary and `dataUrlResponseEvent` is set) cut into 512-byte chunks, or one event with
//! `unchunked`. A Blynk webhook instead writes the body back to its pin: one event named exactly after the pin,
//! for the triggering device only. Responses and errors of a webhook limited to the triggering device (the
//! default) are addressed to that device on the bus, whatever their topic.
//!
//! It applies the webhook's delivery policies, with timers of its own (no task per delivery), and at no cost to a
//! webhook that has none:
//!
//! - **Rate quota** (`x-minIntervalMs`): requests start at least that far apart; deliveries over the quota wait
//!   in the actor's queue (up to `quota_queue_limit`) or, with `x-quotaOverflow: drop`, are dropped. A dropped
//!   delivery is recorded (`dropped`, class `QUOTA`) and reported with a `hook-error`.
//! - **Sleeping hosts**: an attempt refused with class `SLEEPING` is reported as any failure and made again after
//!   each of the `sleep_retry_delays` (Particle: 30 s, 60 s), then the delivery is recorded as skipped.
//! - **Retries** (`x-retry`): retryable failures are tried again on the webhook's schedule or the answer's
//!   `Retry-After`, with the same delivery id; each attempt is recorded, the delivery stays pending until its last
//!   one, and only the final failure gives a `hook-error` (each request that went out gives its `hook-sent`).
//! - **Failure limit** (`x-failureLimit`): finished deliveries that failed in a row (skipped and dropped ones do
//!   not count, retries count once) disable the webhook at the limit, as does `410 Gone` with `x-retry`; the group
//!   hears it as `webhook-disabled/<webhook id>`, and the state is journaled to survive restarts.
//!
//! Device actors (and recovery after a restart) send it [`Dispatch`]; it sends [`ExecuteAndReport`] to host actors.

use crate::actors::host::{AttemptOutcome, ErrorClass, HostKey};
use crate::actors::messages::{Dispatch, ExecuteAndReport, ReportOutcome};
use crate::actors::registry::Services;
use crate::domain::ids::WebhookId;
use crate::domain::policy::Pacer;
use crate::domain::request::{body_for_log, build_request, headers_for_log, url_for_log};
use crate::domain::signing;
use crate::domain::time;
use crate::domain::time::Instant;
use crate::services::journal::DeliveryStatus;
use actix::dev::SendError;
use actix::{Actor, AsyncContext, Context, Handler, SpawnHandle, Supervised};
use policies::due_at_ms;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

#[cfg(test)]
mod actor_tests;
mod policies;
mod quota;
mod report;
#[cfg(test)]
mod tests;

pub use report::chunks;

/// Response events carry the body cut into chunks of this many bytes.
pub const RESPONSE_CHUNK_BYTES: usize = 512;
/// The default largest single response event (`unchunked`), in bytes: the most a host keeps of a body.
pub const DEFAULT_MAX_RESPONSE_EVENT_BYTES: usize = 100 * 1024;
/// The device a test event (Particle's Test button) comes from, in templates and in the topics of its answer.
pub const TEST_DEVICE: &str = "api";

/// The default largest Blynk pin response, in bytes.
pub const DEFAULT_MAX_PIN_RESPONSE_BYTES: usize = 64 * 1024;

/// The error class recorded for a delivery dropped because it was over the webhook's rate quota.
pub const QUOTA_CLASS: &str = "QUOTA";
/// The error class recorded for a delivery dropped because its webhook was disabled at run time.
pub const DISABLED_CLASS: &str = "DISABLED";
/// How long a delivery waits before the attempt gate is looked at again, while this kernel's lease is not surely
/// held (see [`crate::services::ownership`]).
const OWNERSHIP_RECHECK: Duration = Duration::from_millis(200);

/// One delivery on its way through the webhook's policies.
#[derive(Debug)]
struct Delivery {
    /// The dispatch; its `attempt` is the number of the next attempt.
    dispatch: Dispatch,
    /// Attempts the retry budget has spent: every attempt a sleeping host did not refuse (for a delivery recovered
    /// after a restart, every earlier attempt).
    num_tries: u32,
    /// Times a sleeping host refused it.
    num_sleeps: u32,
}

/// Where an attempt's request went, for its record and messages.
#[derive(Debug)]
struct Target {
    method: String,
    url: String,
    host: String,
    /// The headers as the attempt log shows them (secrets masked).
    logged_headers: String,
    /// The start of the body, as the attempt log keeps it.
    logged_body: bytes::Bytes,
}

/// The actor.
pub struct WebhookActor {
    id: WebhookId,
    services: Arc<Services>,
    /// Deliveries waiting for their turn under the rate quota (`x-minIntervalMs`), oldest first.
    quota_queue: VecDeque<Delivery>,
    /// When the next request may start under the rate quota.
    pacer: Pacer,
    /// Whether a timer will send the head of the quota queue.
    is_quota_timer_armed: bool,
    /// Slots reserved in the database, when the quota is shared with other kernels.
    shared_quota: quota::SharedQuota,
    /// Deliveries waiting for their next attempt (a retry, or a sleeping host), by when it is due; the number
    /// keeps deliveries due at the same instant apart and in order.
    retries: BTreeMap<(Instant, u64), Delivery>,
    /// Numbers the entries of `retries`.
    next_retry_number: u64,
    /// The one timer of `retries`, and when it fires: one timer per actor, not one per delivery, since actix polls
    /// every timer of an actor at each of its wake-ups.
    retry_timer: Option<(Instant, SpawnHandle)>,
}

impl WebhookActor {
    /// Makes the actor of one webhook.
    pub fn new(id: WebhookId, services: Arc<Services>) -> Self {
        WebhookActor {
            id,
            services,
            quota_queue: VecDeque::new(),
            pacer: Pacer::default(),
            is_quota_timer_armed: false,
            shared_quota: quota::SharedQuota::default(),
            retries: BTreeMap::new(),
            next_retry_number: 0,
            retry_timer: None,
        }
    }

    /// Makes one attempt: renders (and signs) the request and hands it to the destination's host actor. A delivery
    /// whose webhook was disabled at run time meanwhile is dropped instead.
    fn attempt(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let ownership = &self.services.ownership;
        if ownership.take_lost(&delivery.dispatch.delivery_id) {
            // Another kernel owns it now and sends it: forgotten here (its admission is given back on drop).
            tracing::info!(webhook_id = %self.id, delivery_id = %delivery.dispatch.delivery_id, "delivery taken over by another kernel; forgotten here");
            return;
        }
        if !ownership.may_start_attempts() {
            // The lease is not surely held: wait, never send what another kernel may be taking over.
            return self.postpone(delivery, OWNERSHIP_RECHECK, ctx);
        }
        let dispatch = &delivery.dispatch;
        let webhook = &dispatch.webhook;
        if webhook.runtime.is_disabled() {
            let reason = webhook.runtime.disabled_reason().unwrap_or_default();
            let message = format!("webhook {} is disabled ({reason}); event dropped", webhook.id);
            return self.drop_delivery(&delivery, DISABLED_CLASS, message);
        }
        // Signed here, at send time: every attempt gets a fresh `webhook-timestamp` and the same `webhook-id`.
        // Rendering spends a budget (`max_render_bytes`, `max_render_steps`): over it, the attempt fails with class
        // `RENDER`, which is final (never retried), so that neither a retry nor a restart renders it again.
        let limits = self.services.settings.render;
        let request =
            match build_request(&dispatch.webhook, &dispatch.event, &dispatch.context, limits).and_then(|request| {
                signing::sign_delivery(&dispatch.webhook, request, &dispatch.delivery_id, time::now_ms() / 1000)
            }) {
                Ok(request) => request,
                Err(error) => {
                    let outcome = AttemptOutcome::not_sent(ErrorClass::Render, format!("RENDER: {error}"));
                    let target = Target {
                        method: webhook.method.to_string(),
                        url: url_for_log(webhook.url.template.source(), &self.services.settings.log_mask),
                        host: String::new(),
                        logged_headers: String::new(),
                        logged_body: bytes::Bytes::new(),
                    };
                    return self.conclude(delivery, target, outcome, ctx);
                }
            };
        let key = HostKey::of(&request.uri);
        let mask = &self.services.settings.log_mask;
        let target = Target {
            method: request.method.to_string(),
            url: url_for_log(&request.uri.to_string(), mask),
            host: key.host.clone(),
            logged_headers: headers_for_log(&request.headers, mask),
            logged_body: body_for_log(&request.body),
        };
        let host = match self.services.registry.host(key) {
            Ok(host) => host,
            // Refused before any host actor: egress rules, `https_only`, `max_host_actors`.
            Err(refusal) => {
                let outcome = AttemptOutcome::not_sent(refusal.class, refusal.message);
                return self.conclude(delivery, target, outcome, ctx);
            }
        };
        // The host hands the outcome back as a message. Not a future in this actor's context: it would be polled
        // again at every wake-up of the actor, with every other one in flight (thousands under load), which the
        // second profile showed costing more than everything else together.
        let verify_tls = webhook.verify_tls;
        let actor = ctx.address();
        let report: ReportOutcome = Box::new(move |outcome| actor.do_send(Attempted { delivery, target, outcome }));
        let message = ExecuteAndReport { request, verify_tls, report };
        match host.try_send(message) {
            Ok(()) => {}
            Err(SendError::Full(message)) => host.do_send(message),
            Err(SendError::Closed(message)) => (message.report)(AttemptOutcome::not_sent(
                ErrorClass::ConnectionReset,
                "host actor unavailable: its mailbox is closed".to_owned(),
            )),
        }
    }

    /// Decides what follows an attempt: another attempt later (the host slept, or the retry policy allows one), or
    /// the end of the delivery, recorded, reported, and counted towards the failure limit.
    fn conclude(&mut self, mut delivery: Delivery, target: Target, outcome: AttemptOutcome, ctx: &mut Context<Self>) {
        if let Some(failure) = &outcome.failure {
            tracing::debug!(webhook_id = %self.id, delivery_id = %delivery.dispatch.delivery_id, attempt = delivery.dispatch.attempt, class = failure.class.as_str(), message = %failure.message, "attempt failed");
            if failure.class == ErrorClass::Sleeping {
                return self.conclude_sleeping(delivery, &target, &outcome, ctx);
            }
        }
        delivery.num_tries += 1;
        if let Some(delay) = self.retry_delay(&delivery, &outcome) {
            self.record(&delivery.dispatch, &target, &outcome, DeliveryStatus::Pending, Some(due_at_ms(delay)));
            if outcome.sent {
                self.report_sent(&delivery.dispatch);
            }
            return self.try_again_later(delivery, delay, ctx);
        }
        let status = if outcome.failure.is_none() { DeliveryStatus::Succeeded } else { DeliveryStatus::Failed };
        self.record(&delivery.dispatch, &target, &outcome, status, None);
        self.report(&delivery.dispatch, &outcome);
        self.count(&delivery.dispatch.webhook, &target, &outcome);
    }
}

impl Actor for WebhookActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // After a restart, deliveries still waiting for their quota turn or a retry need their timers again.
        self.arm_quota_timer(ctx);
        self.arm_retry_timer(ctx);
    }
}

impl Supervised for WebhookActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(webhook_id = %self.id, "webhook actor restarting");
        self.is_quota_timer_armed = false;
        self.retry_timer = None;
    }
}

/// An attempt's outcome, handed back by the task that awaited its host's answer.
struct Attempted {
    delivery: Delivery,
    target: Target,
    outcome: AttemptOutcome,
}

impl actix::Message for Attempted {
    type Result = ();
}

impl Handler<Attempted> for WebhookActor {
    type Result = ();

    fn handle(&mut self, attempted: Attempted, ctx: &mut Self::Context) {
        let mut outcome = attempted.outcome;
        // What counts as success is the webhook's to say: a Blynk webhook also takes a 302, as Blynk does.
        let webhook = &attempted.delivery.dispatch.webhook;
        if outcome.failure.is_some()
            && outcome.response.as_ref().is_some_and(|response| webhook.is_success_status(response.status))
        {
            outcome.failure = None;
        }
        self.conclude(attempted.delivery, attempted.target, outcome, ctx);
    }
}

/// Deliver a delivery taken from the database (start-up recovery, a takeover, replay) at its stored due time
/// (kernel -> webhook actor): at once when it has none or it has passed, otherwise when it comes.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct DispatchAt {
    /// The delivery; its `attempt` is the number of the next attempt.
    pub dispatch: Dispatch,
    /// When the next attempt is due, epoch milliseconds.
    pub due_at_ms: Option<i64>,
}

impl Handler<DispatchAt> for WebhookActor {
    type Result = ();

    fn handle(&mut self, message: DispatchAt, ctx: &mut Self::Context) {
        let DispatchAt { mut dispatch, due_at_ms } = message;
        let num_tries = dispatch.attempt.saturating_sub(1);
        let wait = due_at_ms.map_or(0, |due| due.saturating_sub(time::now_ms()));
        if wait <= 0 {
            return self.admit(Delivery { dispatch, num_tries, num_sleeps: 0 }, ctx);
        }
        // Waiting for its due time, it takes no place among the webhook's deliveries in memory, as a retry.
        dispatch.admission = None;
        let delay = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
        self.postpone(Delivery { dispatch, num_tries, num_sleeps: 0 }, delay, ctx);
    }
}

impl Handler<Dispatch> for WebhookActor {
    type Result = ();

    fn handle(&mut self, dispatch: Dispatch, ctx: &mut Self::Context) {
        // A delivery recovered after a restart has spent its earlier attempts.
        let num_tries = dispatch.attempt.saturating_sub(1);
        self.admit(Delivery { dispatch, num_tries, num_sleeps: 0 }, ctx);
    }
}
