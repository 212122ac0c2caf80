//! Queries only the web console runs: a webhook's attempts, and the sessions. Each attempt query is ordered by
//! `started_at` (then id), which the index `attempts_by_webhook (webhook_id, started_at)` serves directly: a
//! webhook's page stays one index walk of a few rows however many attempts it has (ordering by id alone made
//! SQLite sort every attempt of the webhook).

use super::StoreError;
use super::attempts::{AttemptRow, attempt_from_row as from_row};
use hookwire_actors::domain::ids::WebhookId;
use sqlx::{AnyPool, AssertSqlSafe, Row};
use std::collections::HashMap;

/// The latest attempt of each of `webhook_ids` that has one, without its request and response (for the state
/// column of a page of a group's webhooks): one statement for the page, each webhook one step of the index.
pub async fn last_attempts(
    pool: &AnyPool,
    webhook_ids: &[&WebhookId],
) -> Result<HashMap<String, AttemptRow>, StoreError> {
    if webhook_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let values = (1..=webhook_ids.len()).map(|number| format!("(${number})")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "WITH w (id) AS (VALUES {values}) SELECT id, delivery_id, webhook_id, event_id, attempt, started_at, \
         duration_ms, request_method, request_url, response_status, error_class, error_message, delivery_status \
         FROM attempts WHERE id IN (SELECT (SELECT a.id FROM attempts a WHERE a.webhook_id = w.id \
         ORDER BY a.started_at DESC, a.id DESC LIMIT 1) FROM w)"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for id in webhook_ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    let mut latest = HashMap::with_capacity(rows.len());
    for row in &rows {
        let attempt = from_row(row, false)?;
        latest.insert(attempt.webhook_id.clone(), attempt);
    }
    Ok(latest)
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

/// A stored console session, found by the hash of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The SHA-256 of the admin token it signed in with.
    pub token_hash: String,
    /// The CSRF token its forms carry.
    pub csrf: String,
}

/// Stores a new session, then keeps at most `max_sessions`: expired ones go, then the oldest.
pub async fn insert_session(
    pool: &AnyPool,
    id_hash: &str,
    session: &SessionRow,
    now_ms: i64,
    expires_at_ms: i64,
    max_sessions: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1").bind(now_ms).execute(pool).await?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, token_hash, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id_hash)
    .bind(session.token_hash.as_str())
    .bind(session.csrf.as_str())
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(pool)
    .await?;
    let held = count_sessions(pool).await?;
    if held > max_sessions {
        sqlx::query(
            "DELETE FROM console_sessions WHERE id_hash IN \
             (SELECT id_hash FROM console_sessions ORDER BY created_at, id_hash LIMIT $1)",
        )
        .bind(held - max_sessions)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// The session with this id hash, unless it has expired.
pub async fn get_session(pool: &AnyPool, id_hash: &str, now_ms: i64) -> Result<Option<SessionRow>, StoreError> {
    let row = sqlx::query("SELECT token_hash, csrf FROM console_sessions WHERE id_hash = $1 AND expires_at > $2")
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|row| Ok::<_, sqlx::Error>(SessionRow { token_hash: row.try_get(0)?, csrf: row.try_get(1)? }))
        .transpose()?)
}

/// Ends a session.
pub async fn delete_session(pool: &AnyPool, id_hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1").bind(id_hash).execute(pool).await?;
    Ok(())
}

/// Sessions stored, expired ones included.
pub async fn count_sessions(pool: &AnyPool) -> Result<i64, StoreError> {
    Ok(sqlx::query("SELECT COUNT(*) AS num FROM console_sessions").fetch_one(pool).await?.try_get("num")?)
}
