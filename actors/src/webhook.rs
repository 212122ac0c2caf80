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
//! Device actors (and recovery after a restart) send it [`Dispatch`]; it sends [`Execute`] to host actors.

use crate::definition::{CompiledWebhook, DialectName, FieldTemplate};
use crate::event::Event;
use crate::host::{AttemptOutcome, ErrorClass, HostKey, HttpResponse};
use crate::ids::{DeviceId, WebhookId};
use crate::journal::{AttemptRecord, DeliveryStatus, JournalEntry};
use crate::messages::{Dispatch, Execute};
use crate::request::build_request;
use crate::supervisor::Services;
use crate::template::Template;
use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Supervised, WrapFuture};
use std::sync::Arc;

/// Response events carry the body cut into chunks of this many bytes.
pub const RESPONSE_CHUNK_BYTES: usize = 512;
/// The default largest single response event (`unchunked`), in bytes: the most a host keeps of a body.
pub const DEFAULT_MAX_RESPONSE_EVENT_BYTES: usize = 100 * 1024;
/// The default largest Blynk pin response, in bytes.
pub const DEFAULT_MAX_PIN_RESPONSE_BYTES: usize = 64 * 1024;

/// The actor.
pub struct WebhookActor {
    id: WebhookId,
    services: Arc<Services>,
    num_in_flight: usize,
}

impl WebhookActor {
    /// Makes the actor of one webhook.
    pub fn new(id: WebhookId, services: Arc<Services>) -> Self {
        WebhookActor { id, services, num_in_flight: 0 }
    }

    /// Records an attempt and reports it on the event stream.
    fn finish(&mut self, dispatch: &Dispatch, method: &str, url: &str, outcome: AttemptOutcome) {
        let webhook = &dispatch.webhook;
        let event = &dispatch.event;
        let status = if outcome.failure.is_none() { DeliveryStatus::Succeeded } else { DeliveryStatus::Failed };
        if let Some(failure) = &outcome.failure {
            tracing::debug!(webhook_id = %self.id, delivery_id = %dispatch.delivery_id, class = failure.class.as_str(), message = %failure.message, "delivery failed");
        }
        let record = AttemptRecord {
            delivery_id: dispatch.delivery_id.clone(),
            webhook_id: webhook.id.clone(),
            event_id: event.id.clone(),
            attempt: dispatch.attempt,
            started_at_ms: outcome.started_at_ms,
            duration_ms: i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX),
            request_method: method.to_owned(),
            request_url: url.to_owned(),
            response_status: outcome.response.as_ref().map(|response| response.status),
            error_class: outcome.failure.as_ref().map(|failure| failure.class.as_str()),
            error_message: outcome.failure.as_ref().map(|failure| failure.message.clone()),
            delivery_status: status,
        };
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(entry)) =
            self.services.journal.try_append(JournalEntry::Attempt(record))
        {
            let journal = self.services.journal.clone();
            actix::spawn(async move {
                let _ = journal.append(entry).await;
            });
        }

        self.report(dispatch, &outcome);
    }

    /// Puts an outcome on the event stream: `hook-sent` once the request went out, then the response or the error.
    fn report(&self, dispatch: &Dispatch, outcome: &AttemptOutcome) {
        let event = &dispatch.event;
        if outcome.sent {
            self.emit(event, format!("hook-sent/{}", event.name), String::new(), None);
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
        let text = response_text(webhook, response, settings.host.max_response_bytes);
        if webhook.definition.dialect == Some(DialectName::Blynk) {
            return self.report_pin(dispatch, text);
        }
        let topic = self.topic(webhook.response_topic.as_ref(), "hook-response", dispatch);
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
        let topic = self.topic(dispatch.webhook.error_response_topic.as_ref(), "hook-error", dispatch);
        self.emit_chunked(dispatch, &topic, message);
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
    /// the device id when only the triggering device may receive it.
    fn topic(&self, custom: Option<&FieldTemplate>, kind: &str, dispatch: &Dispatch) -> String {
        if let Some(template) = custom {
            return template.template.render(&dispatch.context);
        }
        match (&dispatch.event.device_id, dispatch.webhook.only_triggering_device) {
            (Some(device), true) => format!("{device}/{kind}/{}", dispatch.event.name),
            _ => format!("{kind}/{}", dispatch.event.name),
        }
    }
}

/// The device that alone may receive a webhook's responses and errors: the triggering device, unless the webhook
/// answers the whole group (`x-onlyTriggeringDevice: false`). The name prefix already keeps `<device id>/hook-*`
/// topics to that device; the recipient does the same for custom topics, whatever they are.
fn recipient(dispatch: &Dispatch) -> Option<&DeviceId> {
    if dispatch.webhook.only_triggering_device { dispatch.event.device_id.as_ref() } else { None }
}

/// The text a successful response becomes: rendered through `responseTemplate` when the webhook has one;
/// otherwise the body when it is UTF-8, and a binary body as a `data:` URL (`dataUrlResponseEvent`) or as text
/// with its invalid bytes replaced. `max_body_bytes` is the most a host keeps of a body.
fn response_text(webhook: &CompiledWebhook, response: &HttpResponse, max_body_bytes: usize) -> String {
    if let Some(template) = &webhook.response_template {
        return render_response(&template.template, &response.body);
    }
    let body = &response.body[..];
    match std::str::from_utf8(body) {
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
    }
}

/// Renders a response through `responseTemplate`, with the JSON response as the context when it is JSON.
fn render_response(template: &Template, body: &[u8]) -> String {
    let context = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    template.render(&context)
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
    }
}

impl Supervised for WebhookActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(webhook_id = %self.id, "webhook actor restarting");
        self.num_in_flight = 0;
    }
}

impl Handler<Dispatch> for WebhookActor {
    type Result = ();

    fn handle(&mut self, dispatch: Dispatch, ctx: &mut Self::Context) {
        let request = match build_request(&dispatch.webhook, &dispatch.event, &dispatch.context) {
            Ok(request) => request,
            Err(error) => {
                let outcome = AttemptOutcome::not_sent(ErrorClass::Render, format!("RENDER: {error}"));
                self.finish(
                    &dispatch,
                    dispatch.webhook.method.as_str(),
                    dispatch.webhook.url.template.source(),
                    outcome,
                );
                return;
            }
        };
        let method = request.method.to_string();
        let url = request.uri.to_string();
        let host = self.services.supervisor.host(HostKey::of(&request.uri));
        self.num_in_flight += 1;
        ctx.spawn(host.send(Execute { request }).into_actor(self).map(move |result, actor, _| {
            actor.num_in_flight -= 1;
            let outcome = result.unwrap_or_else(|error| {
                AttemptOutcome::not_sent(ErrorClass::ConnectionReset, format!("host actor unavailable: {error}"))
            });
            actor.finish(&dispatch, &method, &url, outcome);
        }));
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
        let definition = crate::definition::WebhookDefinition::from_json(json).unwrap();
        CompiledWebhook::compile(WebhookId::generate(), crate::ids::GroupId::generate(), definition).unwrap()
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
        assert_eq!(response_text(&with_data_url, &binary, MAX), "data:image/png;base64,iVBOR/8A");
        let untyped = response(None, &[0xff]);
        assert_eq!(response_text(&with_data_url, &untyped, MAX), "data:application/octet-stream;base64,/w==");
        let spaced = response(Some("text/plain; charset=latin1"), &[0xe9]);
        assert_eq!(response_text(&with_data_url, &spaced, MAX), "data:text/plain;charset=latin1;base64,6Q==");
        assert_eq!(response_text(&with_data_url, &response(Some("image/png"), "été".as_bytes()), MAX), "été");
        let plain = webhook(r#"{"event":"a","url":"http://x/"}"#);
        assert_eq!(response_text(&plain, &binary, MAX), "\u{fffd}PNG\u{fffd}\u{0}");
    }

    #[test]
    fn a_body_cut_inside_a_character_is_text_cut_short_not_binary() {
        let with_data_url = webhook(r#"{"event":"a","url":"http://x/","dataUrlResponseEvent":true}"#);
        let cut = response(Some("text/plain"), &[b'a', 0xc3]);
        assert_eq!(response_text(&with_data_url, &cut, 2), "a", "the host kept 2 bytes of a longer text");
        assert_eq!(response_text(&with_data_url, &cut, MAX), "data:text/plain;base64,YcM=", "a whole body");
    }

    #[test]
    fn a_response_template_reads_the_json_response() {
        let template = Template::parse("{{{results.0.elevation}}}", crate::template::Dialect::Mustache).unwrap();
        let body = br#"{"results":[{"elevation":1608.637939453125}],"status":"OK"}"#;
        assert_eq!(render_response(&template, body), "1608.637939453125");
    }
}
