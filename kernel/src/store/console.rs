//! Queries only the web console runs. Each is ordered by `started_at` (then id), which the index
//! `attempts_by_webhook (webhook_id, started_at)` serves directly: a webhook's page stays one index walk of a few
//! rows however many attempts it has (ordering by id alone made SQLite sort every attempt of the webhook).

use super::StoreError;
use super::attempts::{AttemptRow, attempt_from_row as from_row};
use hookwire_actors::domain::ids::WebhookId;
use sqlx::AnyPool;

/// A webhook's latest attempt, if any, without its request and response (for the state column of a group's
/// webhook list).
pub async fn last_attempt(pool: &AnyPool, webhook_id: &WebhookId) -> Result<Option<AttemptRow>, StoreError> {
    let row = sqlx::query(
        "SELECT id, delivery_id, webhook_id, event_id, attempt, started_at, duration_ms, request_method, request_url, \
         response_status, error_class, error_message, delivery_status FROM attempts WHERE webhook_id = $1 \
         ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .bind(webhook_id.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(|row| from_row(row, false)).transpose()?)
}

const RECENT_SUCCESSES: &str = "SELECT id, delivery_id, webhook_id, event_id, attempt, started_at, duration_ms, \
     request_method, request_url, response_status, error_class, error_message, delivery_status, request_headers, \
     request_body, response_headers, response_body FROM attempts WHERE webhook_id = $1 AND started_at >= $2 \
     AND error_class IS NULL ORDER BY started_at DESC, id DESC LIMIT $3";
const RECENT_ERRORS: &str = "SELECT id, delivery_id, webhook_id, event_id, attempt, started_at, duration_ms, \
     request_method, request_url, response_status, error_class, error_message, delivery_status, request_headers, \
     request_body, response_headers, response_body FROM attempts WHERE webhook_id = $1 AND started_at >= $2 \
     AND error_class IS NOT NULL ORDER BY started_at DESC, id DESC LIMIT $3";

/// The last `limit` successful and the last `limit` failed attempts of a webhook since a time, newest first:
/// what Particle's console shows at a glance.
pub async fn recent_attempts(
    pool: &AnyPool,
    webhook_id: &WebhookId,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<AttemptRow>, StoreError> {
    let mut attempts = Vec::with_capacity(2 * limit.max(0) as usize);
    for sql in [RECENT_SUCCESSES, RECENT_ERRORS] {
        let rows = sqlx::query(sql).bind(webhook_id.as_str()).bind(since_ms).bind(limit).fetch_all(pool).await?;
        for row in &rows {
            attempts.push(from_row(row, true)?);
        }
    }
    attempts.sort_by_key(|attempt| std::cmp::Reverse((attempt.started_at, attempt.id)));
    Ok(attempts)
}

/// A page of a webhook's attempts since a time, newest first, strictly before the attempt `before`
/// (`(started_at, id)` of the last one of the previous page; `None` for the first page).
pub async fn attempt_page(
    pool: &AnyPool,
    webhook_id: &WebhookId,
    since_ms: i64,
    before: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<AttemptRow>, StoreError> {
    let (before_started_at, before_id) = before.unwrap_or((i64::MAX, i64::MAX));
    let rows = sqlx::query(
        "SELECT id, delivery_id, webhook_id, event_id, attempt, started_at, duration_ms, request_method, request_url, \
         response_status, error_class, error_message, delivery_status, request_headers, request_body, \
         response_headers, response_body FROM attempts WHERE webhook_id = $1 AND started_at >= $2 \
         AND started_at <= $3 AND (started_at < $3 OR id < $4) ORDER BY started_at DESC, id DESC LIMIT $5",
    )
    .bind(webhook_id.as_str())
    .bind(since_ms)
    .bind(before_started_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|row| from_row(row, true)).collect::<Result<_, _>>()?)
}
