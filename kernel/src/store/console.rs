//! Queries only the web console runs.

use super::StoreError;
use super::attempts::AttemptRow;
use hookwire_actors::ids::WebhookId;
use sqlx::{AnyPool, Row};

/// A webhook's latest attempt, if any, without its request and response (one seek on the index
/// `attempts_by_webhook`, for the state column of a group's webhook list).
pub async fn last_attempt(pool: &AnyPool, webhook_id: &WebhookId) -> Result<Option<AttemptRow>, StoreError> {
    let row = sqlx::query(
        "SELECT id, delivery_id, event_id, attempt, started_at, duration_ms, request_method, request_url, \
         response_status, error_class, error_message, delivery_status FROM attempts WHERE webhook_id = $1 \
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(webhook_id.as_str())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(AttemptRow {
        id: row.try_get("id")?,
        delivery_id: row.try_get("delivery_id")?,
        webhook_id: webhook_id.to_string(),
        event_id: row.try_get("event_id")?,
        attempt: row.try_get("attempt")?,
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        request_method: row.try_get("request_method")?,
        request_url: row.try_get("request_url")?,
        response_status: row.try_get("response_status")?,
        error_class: row.try_get("error_class")?,
        error_message: row.try_get("error_message")?,
        delivery_status: row.try_get("delivery_status")?,
        request_headers: None,
        request_body: None,
        response_headers: None,
        response_body: None,
    }))
}
