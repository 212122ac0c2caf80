//! Messages that more than one actor handles or sends.

use crate::actors::host::AttemptOutcome;
use crate::domain::definition::CompiledWebhook;
use crate::domain::event::SharedEvent;
use crate::domain::ids::DeliveryId;
use crate::domain::request::RenderedRequest;
use actix::Message;
use std::sync::Arc;

/// Deliver one event to one webhook (device actor or recovery -> webhook actor).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Dispatch {
    /// The delivery, stable across attempts (the `webhook-id` of signed requests).
    pub delivery_id: DeliveryId,
    /// The webhook as it was when the event matched.
    pub webhook: Arc<CompiledWebhook>,
    /// The event.
    pub event: SharedEvent,
    /// The event's template context, built once per event and shared by every webhook it matched.
    pub context: Arc<serde_json::Value>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The delivery's place among its webhook's deliveries in memory
    /// ([`crate::domain::definition::WebhookRuntime::try_admit`]); given back when it ends or waits for a retry.
    pub admission: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// What to do with an attempt's outcome, called once, on the host's arbiter, when the attempt ends.
pub type ReportOutcome = Box<dyn FnOnce(AttemptOutcome) + Send>;

/// Send a request and hand how it went to `report` (webhook actor -> host actor): the host's request task calls it,
/// and it sends the outcome straight back to the webhook actor as a message, without a reply channel and a task on
/// the webhook's side awaiting it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExecuteAndReport {
    /// The request.
    pub request: RenderedRequest,
    /// Whether the destination's TLS certificate must verify against the webpki roots: the webhook's
    /// `rejectUnauthorized` (default true). `false` sends over connections that accept any certificate.
    pub verify_tls: bool,
    /// Called with the outcome.
    pub report: ReportOutcome,
}

impl std::fmt::Debug for ExecuteAndReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteAndReport")
            .field("request", &self.request)
            .field("verify_tls", &self.verify_tls)
            .finish()
    }
}

/// End a device session (registry -> device actor), for example because the device was deleted.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnect;
