//! [`WebhookActor`]: one per webhook with work. For each [`Dispatch`] it renders the request from the event,
//! hands it to the destination's host actor, and turns the outcome into an attempt record (through the journal)
//! and the `hook-sent`, `hook-response/.../<i>` and `hook-error/.../<i>` events of the group's event stream.
//!
//! Device actors (and recovery after a restart) send it [`Dispatch`]; it sends [`Execute`] to host actors.

use crate::definition::FieldTemplate;
use crate::event::Event;
use crate::host::{AttemptOutcome, ErrorClass, HostKey};
use crate::ids::WebhookId;
use crate::journal::{AttemptRecord, DeliveryStatus, JournalEntry};
use crate::messages::{Dispatch, Execute};
use crate::request::build_request;
use crate::supervisor::Services;
use crate::template::Template;
use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Supervised, WrapFuture};
use std::sync::Arc;

/// Response events carry the body cut into chunks of this many bytes.
pub const RESPONSE_CHUNK_BYTES: usize = 512;

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

        let bus = &self.services.bus;
        let emit = |name: String, data: String| {
            let hook_event = Event::new(event.group_id.clone(), event.device_id.clone(), name, data, 0);
            bus.publish(&Arc::new(hook_event));
        };
        if outcome.sent {
            emit(format!("hook-sent/{}", event.name), String::new());
        }
        match (&outcome.failure, &outcome.response) {
            (None, Some(response)) if !response.body.is_empty() => {
                let body = match &webhook.response_template {
                    Some(template) => render_response(&template.template, &response.body),
                    None => String::from_utf8_lossy(&response.body).into_owned(),
                };
                let topic = self.topic(webhook.response_topic.as_ref(), "hook-response", dispatch);
                for (index, chunk) in chunks(&body, RESPONSE_CHUNK_BYTES).enumerate() {
                    emit(format!("{topic}/{index}"), chunk.to_owned());
                }
            }
            (Some(failure), _) => {
                let topic = self.topic(webhook.error_response_topic.as_ref(), "hook-error", dispatch);
                for (index, chunk) in chunks(&failure.message, RESPONSE_CHUNK_BYTES).enumerate() {
                    emit(format!("{topic}/{index}"), chunk.to_owned());
                }
            }
            _ => {}
        }
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

/// Renders a response through `responseTemplate`, with the JSON response as the context when it is JSON.
fn render_response(template: &Template, body: &[u8]) -> String {
    let context = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    template.render(&context)
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

    #[test]
    fn a_response_template_reads_the_json_response() {
        let template = Template::parse("{{{results.0.elevation}}}", crate::template::Dialect::Mustache).unwrap();
        let body = br#"{"results":[{"elevation":1608.637939453125}],"status":"OK"}"#;
        assert_eq!(render_response(&template, body), "1608.637939453125");
    }
}
