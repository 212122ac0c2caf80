//! Turning outcomes into records and events: the attempt record (through the journal) and the `hook-sent`,
//! `hook-response/.../<i>` and `hook-error/.../<i>` events, Blynk pin answers, and dropped deliveries.

use super::{Delivery, RESPONSE_CHUNK_BYTES, TEST_DEVICE, Target, WebhookActor};
use crate::actors::host::{AttemptOutcome, ErrorClass, HttpResponse};
use crate::actors::messages::Dispatch;
use crate::domain::definition::{CompiledWebhook, FieldTemplate};
use crate::domain::event::Event;
use crate::domain::ids::DeviceId;
use crate::domain::request::{body_for_log, headers_for_log, url_for_log};
use crate::domain::template::{BudgetExceeded, Dialect, RenderBudget, RenderLimits, Template};
use crate::domain::time;
use crate::services::journal::{AttemptRecord, DeliveryStatus, JournalEntry};
use std::sync::Arc;

impl WebhookActor {
    /// Gives up on a delivery before its request is sent: recorded as dropped and reported with a `hook-error`.
    pub(super) fn drop_delivery(&self, delivery: &Delivery, class: &'static str, message: String) {
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
    pub(super) fn record(
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
    pub(super) fn journal(&self, entry: JournalEntry) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(entry)) = self.services.journal.try_append(entry) {
            let journal = self.services.journal.clone();
            actix::spawn(async move {
                let _ = journal.append(entry).await;
            });
        }
    }

    /// True when the event stream of the dispatch's group has subscribers: with none, the `hook-*` events are not
    /// made at all (they would reach nobody), which saves an event per delivery.
    pub(super) fn is_heard(&self, dispatch: &Dispatch) -> bool {
        self.services.bus.has_subscribers(&dispatch.event.group_id)
    }

    /// Puts `hook-sent` on the event stream.
    pub(super) fn report_sent(&self, dispatch: &Dispatch) {
        if !self.is_heard(dispatch) {
            return;
        }
        let event = &dispatch.event;
        self.emit(event, format!("hook-sent/{}", event.name), String::new(), None);
    }

    /// Puts an outcome on the event stream: `hook-sent` once the request went out, then the response or the error.
    pub(super) fn report(&self, dispatch: &Dispatch, outcome: &AttemptOutcome) {
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
    pub(super) fn report_response(&self, dispatch: &Dispatch, response: &HttpResponse) {
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
    pub(super) fn report_pin(&self, dispatch: &Dispatch, text: String) {
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
    pub(super) fn report_error(&self, dispatch: &Dispatch, message: &str) {
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
    pub(super) fn emit_chunked(&self, dispatch: &Dispatch, topic: &str, text: &str) {
        for (index, chunk) in chunks(text, RESPONSE_CHUNK_BYTES).enumerate() {
            self.emit(&dispatch.event, format!("{topic}/{index}"), chunk.to_owned(), recipient(dispatch));
        }
    }

    /// Publishes one event about `event` (same group and device) on the bus.
    pub(super) fn emit(&self, event: &Event, name: String, data: String, recipient: Option<&DeviceId>) {
        let hook_event = Event::new(event.group_id.clone(), event.device_id.clone(), name, data, 0);
        self.services.bus.publish_to(&Arc::new(hook_event), recipient);
    }

    /// The topic of response or error events: the webhook's own template, or `<kind>/<event name>`, prefixed with
    /// the device id when only the triggering device may receive it. A custom topic renders within the render
    /// budget; over it, the error says so (`RENDER: responseTopic: ...`).
    pub(super) fn topic(
        &self,
        custom: Option<&FieldTemplate>,
        kind: &str,
        dispatch: &Dispatch,
    ) -> Result<String, String> {
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

/// The device that alone may receive a webhook's responses and errors: the triggering device, unless the webhook
/// answers the whole group (`x-onlyTriggeringDevice: false`). The name prefix already keeps `<device id>/hook-*`
/// topics to that device; the recipient does the same for custom topics, whatever they are.
pub(super) fn recipient(dispatch: &Dispatch) -> Option<&DeviceId> {
    if dispatch.webhook.only_triggering_device { dispatch.event.device_id.as_ref() } else { None }
}

/// The text a successful response becomes: rendered through `responseTemplate` when the webhook has one;
/// otherwise the body when it is UTF-8, and a binary body as a `data:` URL (`dataUrlResponseEvent`) or as text
/// with its invalid bytes replaced. `max_body_bytes` is the most a host keeps of a body. A `responseTemplate`
/// rendering over `limits` gives the `hook-error` message that names the budget instead.
pub(super) fn response_text(
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
pub(super) fn render_response(
    template: &Template,
    body: &[u8],
    limits: RenderLimits,
) -> Result<String, BudgetExceeded> {
    let context = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    template.render(&context, &mut RenderBudget::new(limits))
}

/// A `data:` URL of a binary body, typed by its `Content-Type` (`application/octet-stream` when it has none).
pub(super) fn data_url(content_type: Option<&str>, body: &[u8]) -> String {
    use base64::Engine as _;
    // A data URL's media type has no spaces (`text/plain; charset=x` becomes `text/plain;charset=x`).
    let media_type: String = content_type.unwrap_or_default().chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let media_type = if media_type.is_empty() { "application/octet-stream" } else { media_type.as_str() };
    format!("data:{media_type};base64,{}", base64::engine::general_purpose::STANDARD.encode(body))
}

/// The `hook-error` message of a response too large for the one event it must fit in.
pub(super) fn too_large(size: usize, max: usize, what: &str) -> String {
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
