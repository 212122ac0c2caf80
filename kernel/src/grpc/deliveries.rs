//! The delivery service: attempt log, history and replay.

use crate::Kernel;
use crate::access::Object;
use crate::auth::Role;
use crate::deliveries::parse_since;
use crate::error::parse_id;
use hookwire_actors::domain::ids::WebhookId;
use hookwire_actors::domain::time;
use hookwire_actors::services::journal::DeliveryStatus;
use hookwire_proto::v1 as proto;
use hookwire_proto::v1::delivery_service_server::DeliveryService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The delivery service.
#[derive(Debug, Clone)]
pub struct DeliveryApi {
    kernel: Arc<Kernel>,
}

impl DeliveryApi {
    /// Serves `kernel`.
    pub fn new(kernel: Arc<Kernel>) -> Self {
        DeliveryApi { kernel }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// Reads headers stored as a JSON object of strings.
fn header_map(json: Option<&str>) -> std::collections::HashMap<String, String> {
    json.and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default()
}

impl From<crate::store::attempts::AttemptRow> for proto::Attempt {
    fn from(row: crate::store::attempts::AttemptRow) -> Self {
        let status = i16::try_from(row.delivery_status).ok().and_then(DeliveryStatus::from_i16);
        proto::Attempt {
            id: row.id,
            delivery_id: row.delivery_id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            attempt: u32::try_from(row.attempt).unwrap_or(0),
            started_at: time::iso8601_ms(row.started_at),
            duration_ms: row.duration_ms,
            request_method: row.request_method,
            request_url: row.request_url,
            response_status: row.response_status.and_then(|status| u32::try_from(status).ok()).unwrap_or(0),
            error_class: row.error_class.unwrap_or_default(),
            error_message: row.error_message.unwrap_or_default(),
            delivery_status: status.map_or("unknown", DeliveryStatus::as_str).to_owned(),
            request_headers: header_map(row.request_headers.as_deref()),
            request_body: row.request_body.unwrap_or_default(),
            response_headers: header_map(row.response_headers.as_deref()),
            response_body: row.response_body.unwrap_or_default(),
        }
    }
}

#[tonic::async_trait]
impl DeliveryService for DeliveryApi {
    async fn list_attempts(&self, request: Request<proto::ListAttemptsRequest>) -> Reply<proto::ListAttemptsResponse> {
        let who = self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await?;
        let message = request.into_inner();
        let webhook_id = parse_id("webhook_id", &message.webhook_id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&webhook_id), Role::Viewer).await?;
        let since = parse_since("since", &message.since)?;
        let page =
            self.kernel.list_attempts(&webhook_id, message.all, since, message.limit, &message.page_token).await?;
        Ok(Response::new(proto::ListAttemptsResponse {
            attempts: page.attempts.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_history(&self, request: Request<proto::GetHistoryRequest>) -> Reply<proto::GetHistoryResponse> {
        let who = self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await?;
        let message = request.into_inner();
        let webhook_id = parse_id("webhook_id", &message.webhook_id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&webhook_id), Role::Viewer).await?;
        let history = self.kernel.history(&webhook_id, message.days).await?;
        let days = history
            .into_iter()
            .map(|day| proto::DayCounts {
                date: time::day(day.day * 86_400_000),
                pending: day.counts[DeliveryStatus::Pending as usize],
                succeeded: day.counts[DeliveryStatus::Succeeded as usize],
                failed: day.counts[DeliveryStatus::Failed as usize],
                skipped: day.counts[DeliveryStatus::Skipped as usize],
                dropped: day.counts[DeliveryStatus::Dropped as usize],
            })
            .collect();
        Ok(Response::new(proto::GetHistoryResponse { days }))
    }

    async fn replay(&self, request: Request<proto::ReplayRequest>) -> Reply<proto::ReplayResponse> {
        let who = self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await?;
        let message = request.into_inner();
        let webhook_id = parse_id("webhook_id", &message.webhook_id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&webhook_id), Role::Editor).await?;
        let since = parse_since("since", &message.since)?
            .ok_or_else(|| crate::error::KernelError::InvalidArgument("since: required (ISO-8601 UTC)".into()))?;
        let num_replayed = self.kernel.replay(&webhook_id, since, &message.status).await?;
        Ok(Response::new(proto::ReplayResponse { num_replayed }))
    }

    async fn resend_attempt(&self, request: Request<proto::ResendAttemptRequest>) -> Reply<proto::ReplayResponse> {
        let who = self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await?;
        let attempt_id = request.get_ref().attempt_id;
        self.kernel.require_object(&who, Object::Attempt(attempt_id), Role::Editor).await?;
        let num_replayed = self.kernel.resend_attempt(attempt_id).await?;
        Ok(Response::new(proto::ReplayResponse { num_replayed }))
    }
}
