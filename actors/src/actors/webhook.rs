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

use crate::actors::host::{AttemptOutcome, ErrorClass, HostKey, HttpResponse};
use crate::actors::messages::{Dispatch, ExecuteAndReport, ReportOutcome};
use crate::actors::registry::Services;
use crate::domain::definition::{CompiledWebhook, FieldTemplate, QuotaOverflow};
use crate::domain::event::Event;
use crate::domain::ids::{DeviceId, WebhookId};
use crate::domain::policy::{self, Pacer};
use crate::domain::request::{body_for_log, build_request, headers_for_log, url_for_log};
use crate::domain::signing;
use crate::domain::template::{BudgetExceeded, Dialect, RenderBudget, RenderLimits, Template};
use crate::domain::time;
use crate::domain::time::Instant;
use crate::services::journal::{AttemptRecord, DeliveryStatus, JournalEntry, WebhookStateRecord};
use actix::dev::SendError;
use actix::{Actor, AsyncContext, Context, Handler, SpawnHandle, Supervised};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
            retries: BTreeMap::new(),
            next_retry_number: 0,
            retry_timer: None,
        }
    }

    /// Admits a new delivery under the rate quota: sent at once, queued for its turn, or, over the quota with
    /// `x-quotaOverflow: drop` or a full queue, dropped (recorded and reported, never silently).
    fn admit(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let webhook = &delivery.dispatch.webhook;
        let Some(interval) = webhook.min_interval else {
            return self.attempt(delivery, ctx);
        };
        if self.take_turn(interval) {
            return self.attempt(delivery, ctx);
        }
        let limit = self.services.settings.quota_queue_limit;
        let interval_ms = interval.as_millis();
        let refusal = match webhook.quota_overflow {
            QuotaOverflow::Drop => Some(format!(
                "over quota: at most one request every {interval_ms} ms (x-minIntervalMs); event dropped \
                 (x-quotaOverflow: drop)"
            )),
            QuotaOverflow::Queue if self.quota_queue.len() >= limit => Some(format!(
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
    fn resend(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        match delivery.dispatch.webhook.min_interval {
            Some(interval) if !self.take_turn(interval) => self.wait_turn(delivery, ctx),
            _ => self.attempt(delivery, ctx),
        }
    }

    /// Takes the quota's next turn if it is due now and nobody waits for it.
    fn take_turn(&mut self, interval: Duration) -> bool {
        let now = Instant::now();
        if !self.quota_queue.is_empty() || !self.pacer.wait(now).is_zero() {
            return false;
        }
        self.pacer.take(now, interval);
        true
    }

    /// Queues a delivery for its turn under the quota.
    fn wait_turn(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        self.quota_queue.push_back(delivery);
        self.arm_quota_timer(ctx);
    }

    /// Makes sure a timer sends the head of the quota queue when its turn comes.
    fn arm_quota_timer(&mut self, ctx: &mut Context<Self>) {
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
    fn send_queued(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self.pacer.wait(now).is_zero()
            && let Some(delivery) = self.quota_queue.pop_front()
        {
            self.pacer.take(now, delivery.dispatch.webhook.min_interval.unwrap_or_default());
            self.attempt(delivery, ctx);
        }
        self.arm_quota_timer(ctx);
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

    /// A sleeping host refused the attempt: reported as any failure, then tried again after each of the
    /// `sleep_retry_delays` in turn, and after the last one recorded as skipped.
    fn conclude_sleeping(
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
    fn try_again_later(&mut self, mut delivery: Delivery, delay: Duration, ctx: &mut Context<Self>) {
        delivery.dispatch.attempt += 1;
        // Waiting for a retry, it no longer counts among the webhook's deliveries in memory: a destination that
        // fails must not pause the devices that feed it for the length of its retry delays.
        delivery.dispatch.admission = None;
        self.postpone(delivery, delay, ctx);
    }

    /// Puts a delivery aside until `delay` has passed, then sends it (its attempt number unchanged).
    fn postpone(&mut self, delivery: Delivery, delay: Duration, ctx: &mut Context<Self>) {
        let number = self.next_retry_number;
        self.next_retry_number += 1;
        self.retries.insert((Instant::now() + delay, number), delivery);
        self.arm_retry_timer(ctx);
    }

    /// Makes sure the retry timer fires when the earliest waiting delivery is due.
    fn arm_retry_timer(&mut self, ctx: &mut Context<Self>) {
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
    fn resend_due(&mut self, ctx: &mut Context<Self>) {
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
    fn retry_delay(&self, delivery: &Delivery, outcome: &AttemptOutcome) -> Option<Duration> {
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
    fn count(&self, webhook: &CompiledWebhook, target: &Target, outcome: &AttemptOutcome) {
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
    fn save_state(&self, webhook: &CompiledWebhook, is_reset: bool, num_failures_added: u32) {
        self.journal(JournalEntry::WebhookState(WebhookStateRecord {
            webhook_id: webhook.id.clone(),
            consecutive_failures: webhook.runtime.consecutive_failures(),
            disabled_reason: webhook.runtime.disabled_reason(),
            is_reset,
            num_failures_added,
            failure_limit: webhook.failure_limit,
        }));
    }

    /// Gives up on a delivery before its request is sent: recorded as dropped and reported with a `hook-error`.
    fn drop_delivery(&self, delivery: &Delivery, class: &'static str, message: String) {
        let dispatch = &delivery.dispatch;
        tracing::debug!(webhook_id = %self.id, delivery_id = %dispatch.delivery_id, class, %message, "delivery dropped");
        self.services.metrics.dropped(class);
        self.journal(JournalEntry::Attempt(AttemptRecord {
            delivery_id: dispatch.delivery_id.clone(),
            webhook_id: dispatch.webhook.id.clone(),
            event_id: dispatch.event.id.clone(),
            attempt: dispatch.attempt,
            started_at_ms: time::now_ms(),
            duration_ms: 0,
            request_method: dispatch.webhook.method.to_string(),
            request_url: url_for_log(dispatch.webhook.url.template.source(), &self.services.settings.log_mask),
            response_status: None,
            error_class: Some(class),
            error_message: Some(message.clone()),
            delivery_status: DeliveryStatus::Dropped,
            next_attempt_at_ms: None,
            request_headers: String::new(),
            request_body: bytes::Bytes::new(),
            response_headers: None,
            response_body: None,
        }));
        self.report_error(dispatch, &message);
    }

    /// Records an attempt, the delivery's status after it and, when it stays pending, when its next attempt is due.
    fn record(
        &self,
        dispatch: &Dispatch,
        target: &Target,
        outcome: &AttemptOutcome,
        status: DeliveryStatus,
        next_attempt_at_ms: Option<i64>,
    ) {
        self.journal(JournalEntry::Attempt(AttemptRecord {
            delivery_id: dispatch.delivery_id.clone(),
            webhook_id: dispatch.webhook.id.clone(),
            event_id: dispatch.event.id.clone(),
            attempt: dispatch.attempt,
            started_at_ms: outcome.started_at_ms,
            duration_ms: i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX),
            request_method: target.method.clone(),
            request_url: target.url.clone(),
            response_status: outcome.response.as_ref().map(|response| response.status),
            error_class: outcome.failure.as_ref().map(|failure| failure.class.as_str()),
            error_message: outcome.failure.as_ref().map(|failure| failure.message.clone()),
            delivery_status: status,
            next_attempt_at_ms,
            request_headers: target.logged_headers.clone(),
            request_body: target.logged_body.clone(),
            response_headers: outcome
                .response
                .as_ref()
                .map(|response| headers_for_log(&response.headers, &self.services.settings.log_mask)),
            response_body: outcome.response.as_ref().map(|response| body_for_log(&response.body)),
        }));
    }

    /// Queues a write to the journal; when its queue is full, waits for room on the side.
    fn journal(&self, entry: JournalEntry) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(entry)) = self.services.journal.try_append(entry) {
            let journal = self.services.journal.clone();
            actix::spawn(async move {
                let _ = journal.append(entry).await;
            });
        }
    }

    /// True when the event stream of the dispatch's group has subscribers: with none, the `hook-*` events are not
    /// made at all (they would reach nobody), which saves an event per delivery.
    fn is_heard(&self, dispatch: &Dispatch) -> bool {
        self.services.bus.has_subscribers(&dispatch.event.group_id)
    }

    /// Puts `hook-sent` on the event stream.
    fn report_sent(&self, dispatch: &Dispatch) {
        if !self.is_heard(dispatch) {
            return;
        }
        let event = &dispatch.event;
        self.emit(event, format!("hook-sent/{}", event.name), String::new(), None);
    }

    /// Puts an outcome on the event stream: `hook-sent` once the request went out, then the response or the error.
    fn report(&self, dispatch: &Dispatch, outcome: &AttemptOutcome) {
        if !self.is_heard(dispatch) {
            return;
        }
        if outcome.sent {
            self.report_sent(dispatch);
        }
        match (&outcome.failure, &outcome.response) {
            (None, Some(response)) if !response.body.is_empty() => self.report_response(dispatch, response),
            (Some(failure), _) => self.report_error(dispatch, &failure.message),
            _ => {}
        }
    }

    /// Turns a successful answer into `hook-response` events: 512-byte chunks, or one event with `unchunked`, or
    /// for a Blynk webhook one event written back to the pin.
    fn report_response(&self, dispatch: &Dispatch, response: &HttpResponse) {
        let webhook = &dispatch.webhook;
        let settings = &self.services.settings;
        let text = match response_text(webhook, response, settings.host.max_response_bytes, settings.render) {
            Ok(text) => text,
            Err(message) => return self.report_error(dispatch, &message),
        };
        if webhook.definition.dialect == Some(Dialect::Blynk) {
            return self.report_pin(dispatch, text);
        }
        let topic = match self.topic(webhook.response_topic.as_ref(), "hook-response", dispatch) {
            Ok(topic) => topic,
            Err(message) => return self.report_error(dispatch, &message),
        };
        if !webhook.definition.unchunked.unwrap_or(false) {
            return self.emit_chunked(dispatch, &topic, &text);
        }
        if text.len() > settings.max_response_event_bytes {
            let message = too_large(text.len(), settings.max_response_event_bytes, "an unchunked response");
            return self.report_error(dispatch, &message);
        }
        self.emit(&dispatch.event, format!("{topic}/0"), text, recipient(dispatch));
    }

    /// Writes a Blynk webhook's answer back to its pin: one event named exactly after the pin (the webhook's
    /// `event`), addressed to the triggering device, since its name cannot carry the device id.
    fn report_pin(&self, dispatch: &Dispatch, text: String) {
        let max = self.services.settings.max_pin_response_bytes;
        if text.len() > max {
            return self.report_error(dispatch, &too_large(text.len(), max, "a pin"));
        }
        let event = &dispatch.event;
        // An event that no device published has no pin to write to; sent unaddressed, it would reach every device.
        let Some(device) = &event.device_id else {
            return;
        };
        // A webhook for every event (`event: ""`) has no pin of its own: it answers the pin that was written.
        let webhook_event = &dispatch.webhook.definition.event;
        let pin = if webhook_event.is_empty() { &event.name } else { webhook_event };
        self.emit(event, pin.clone(), text, Some(device));
    }

    /// Reports a failure as `hook-error` events (the message in 512-byte chunks).
    fn report_error(&self, dispatch: &Dispatch, message: &str) {
        if !self.is_heard(dispatch) {
            return;
        }
        // An error topic over the render budget still reports the error (and why the topic failed) on the default one.
        match self.topic(dispatch.webhook.error_response_topic.as_ref(), "hook-error", dispatch) {
            Ok(topic) => self.emit_chunked(dispatch, &topic, message),
            Err(topic_error) => {
                let topic = self.topic(None, "hook-error", dispatch).unwrap_or_default();
                self.emit_chunked(dispatch, &topic, &format!("{message}; {topic_error}"));
            }
        }
    }

    /// Publishes `text` as `<topic>/<index>` events of at most 512 bytes.
    fn emit_chunked(&self, dispatch: &Dispatch, topic: &str, text: &str) {
        for (index, chunk) in chunks(text, RESPONSE_CHUNK_BYTES).enumerate() {
            self.emit(&dispatch.event, format!("{topic}/{index}"), chunk.to_owned(), recipient(dispatch));
        }
    }

    /// Publishes one event about `event` (same group and device) on the bus.
    fn emit(&self, event: &Event, name: String, data: String, recipient: Option<&DeviceId>) {
        let hook_event = Event::new(event.group_id.clone(), event.device_id.clone(), name, data, 0);
        self.services.bus.publish_to(&Arc::new(hook_event), recipient);
    }

    /// The topic of response or error events: the webhook's own template, or `<kind>/<event name>`, prefixed with
    /// the device id when only the triggering device may receive it. A custom topic renders within the render
    /// budget; over it, the error says so (`RENDER: responseTopic: ...`).
    fn topic(&self, custom: Option<&FieldTemplate>, kind: &str, dispatch: &Dispatch) -> Result<String, String> {
        if let Some(template) = custom {
            let mut budget = RenderBudget::new(self.services.settings.render);
            return template
                .template
                .render(&dispatch.context, &mut budget)
                .map_err(|over| format!("{}: {}: {over}", ErrorClass::Render.as_str(), template.field));
        }
        Ok(match (&dispatch.event.device_id, dispatch.webhook.only_triggering_device) {
            (Some(device), true) => format!("{device}/{kind}/{}", dispatch.event.name),
            // A test event's device is `api`, as on Particle: its answer is `api/hook-response/<event>/0`.
            (None, true) => format!("{TEST_DEVICE}/{kind}/{}", dispatch.event.name),
            _ => format!("{kind}/{}", dispatch.event.name),
        })
    }
}

/// When an attempt put off by `delay` is due, epoch milliseconds.
fn due_at_ms(delay: Duration) -> i64 {
    time::now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2))
}

/// The device that alone may receive a webhook's responses and errors: the triggering device, unless the webhook
/// answers the whole group (`x-onlyTriggeringDevice: false`). The name prefix already keeps `<device id>/hook-*`
/// topics to that device; the recipient does the same for custom topics, whatever they are.
fn recipient(dispatch: &Dispatch) -> Option<&DeviceId> {
    if dispatch.webhook.only_triggering_device { dispatch.event.device_id.as_ref() } else { None }
}

/// The text a successful response becomes: rendered through `responseTemplate` when the webhook has one;
/// otherwise the body when it is UTF-8, and a binary body as a `data:` URL (`dataUrlResponseEvent`) or as text
/// with its invalid bytes replaced. `max_body_bytes` is the most a host keeps of a body. A `responseTemplate`
/// rendering over `limits` gives the `hook-error` message that names the budget instead.
fn response_text(
    webhook: &CompiledWebhook,
    response: &HttpResponse,
    max_body_bytes: usize,
    limits: RenderLimits,
) -> Result<String, String> {
    if let Some(template) = &webhook.response_template {
        return render_response(&template.template, &response.body, limits)
            .map_err(|over| format!("{}: responseTemplate: {over}", ErrorClass::Render.as_str()));
    }
    let body = &response.body[..];
    Ok(match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        // A body the host cut at its bound may end inside a character: that is text cut short, not binary data.
        Err(error) if error.error_len().is_none() && body.len() >= max_body_bytes => {
            String::from_utf8_lossy(&body[..error.valid_up_to()]).into_owned()
        }
        Err(_) if webhook.definition.data_url_response_event.unwrap_or(false) => {
            let content_type = response.headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
            data_url(content_type, body)
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    })
}

/// Renders a response through `responseTemplate`, with the JSON response as the context when it is JSON, within
/// the render budget: the answer of a destination is as untrusted as an event.
fn render_response(template: &Template, body: &[u8], limits: RenderLimits) -> Result<String, BudgetExceeded> {
    let context = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    template.render(&context, &mut RenderBudget::new(limits))
}

/// A `data:` URL of a binary body, typed by its `Content-Type` (`application/octet-stream` when it has none).
fn data_url(content_type: Option<&str>, body: &[u8]) -> String {
    use base64::Engine as _;
    // A data URL's media type has no spaces (`text/plain; charset=x` becomes `text/plain;charset=x`).
    let media_type: String = content_type.unwrap_or_default().chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let media_type = if media_type.is_empty() { "application/octet-stream" } else { media_type.as_str() };
    format!("data:{media_type};base64,{}", base64::engine::general_purpose::STANDARD.encode(body))
}

/// The `hook-error` message of a response too large for the one event it must fit in.
fn too_large(size: usize, max: usize, what: &str) -> String {
    format!("response of {size} bytes is larger than the maximum of {max} for {what}")
}

/// Cuts text into pieces of at most `size` bytes, never inside a character.
pub fn chunks(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = size.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        Some(chunk)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_512_bytes_from_index_0_and_respect_characters() {
        let body = "a".repeat(1300);
        let sizes: Vec<usize> = chunks(&body, 512).map(str::len).collect();
        assert_eq!(sizes, [512, 512, 276]);
        let accented = "é".repeat(300);
        assert!(chunks(&accented, 512).all(|chunk| chunk.len() <= 512));
        assert_eq!(chunks(&accented, 512).collect::<String>(), accented);
        assert_eq!(chunks("", 512).count(), 0);
    }

    const MAX: usize = 100 * 1024;

    fn webhook(json: &str) -> CompiledWebhook {
        let definition = crate::domain::definition::WebhookDefinition::from_json(json).unwrap();
        CompiledWebhook::compile(WebhookId::generate(), crate::domain::ids::GroupId::generate(), definition).unwrap()
    }

    fn text(webhook: &CompiledWebhook, response: &HttpResponse, max_body_bytes: usize) -> String {
        response_text(webhook, response, max_body_bytes, RenderLimits::default()).unwrap()
    }

    fn response(content_type: Option<&str>, body: &'static [u8]) -> HttpResponse {
        let mut headers = http::HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        }
        HttpResponse { status: 200, headers, body: bytes::Bytes::from_static(body) }
    }

    #[test]
    fn a_binary_body_becomes_a_data_url_when_asked_and_text_stays_text() {
        let with_data_url = webhook(r#"{"event":"a","url":"http://x/","dataUrlResponseEvent":true}"#);
        let binary = response(Some("image/png"), &[0x89, b'P', b'N', b'G', 0xff, 0x00]);
        assert_eq!(text(&with_data_url, &binary, MAX), "data:image/png;base64,iVBOR/8A");
        let untyped = response(None, &[0xff]);
        assert_eq!(text(&with_data_url, &untyped, MAX), "data:application/octet-stream;base64,/w==");
        let spaced = response(Some("text/plain; charset=latin1"), &[0xe9]);
        assert_eq!(text(&with_data_url, &spaced, MAX), "data:text/plain;charset=latin1;base64,6Q==");
        assert_eq!(text(&with_data_url, &response(Some("image/png"), "été".as_bytes()), MAX), "été");
        let plain = webhook(r#"{"event":"a","url":"http://x/"}"#);
        assert_eq!(text(&plain, &binary, MAX), "\u{fffd}PNG\u{fffd}\u{0}");
    }

    #[test]
    fn a_body_cut_inside_a_character_is_text_cut_short_not_binary() {
        let with_data_url = webhook(r#"{"event":"a","url":"http://x/","dataUrlResponseEvent":true}"#);
        let cut = response(Some("text/plain"), &[b'a', 0xc3]);
        assert_eq!(text(&with_data_url, &cut, 2), "a", "the host kept 2 bytes of a longer text");
        assert_eq!(text(&with_data_url, &cut, MAX), "data:text/plain;base64,YcM=", "a whole body");
    }

    #[test]
    fn a_response_template_reads_the_json_response() {
        let template =
            Template::parse("{{{results.0.elevation}}}", crate::domain::template::Dialect::Mustache).unwrap();
        let body = br#"{"results":[{"elevation":1608.637939453125}],"status":"OK"}"#;
        assert_eq!(render_response(&template, body, RenderLimits::default()).unwrap(), "1608.637939453125");
    }

    #[test]
    fn a_response_template_over_the_budget_gives_the_error_that_names_it() {
        let hostile = webhook(
            r#"{"event":"a","url":"http://x/","responseTemplate":"{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}{{/a}}"}"#,
        );
        let body = format!("{{\"a\":[{}]}}", vec!["1"; 505].join(","));
        let answer = HttpResponse { status: 200, headers: http::HeaderMap::new(), body: body.into() };
        let error = response_text(&hostile, &answer, MAX, RenderLimits::default()).unwrap_err();
        assert_eq!(
            error,
            "RENDER: responseTemplate: work over the render budget of 1000000 steps (max_render_steps): sections iterate too much"
        );
        let limits = RenderLimits { max_bytes: 10, ..RenderLimits::default() };
        let copy = webhook(r#"{"event":"a","url":"http://x/","responseTemplate":"{{a}}"}"#);
        let error = response_text(&copy, &answer, MAX, limits).unwrap_err();
        assert_eq!(error, "RENDER: responseTemplate: output over the render budget of 10 bytes (max_render_bytes)");
    }
}
