//! The attempt log and the delivery history of webhooks, and the selection of deliveries to replay.

use super::StoreError;
use super::journal::{PENDING_SELECT, PendingDelivery, pending_from_rows};
use hookwire_actors::domain::ids::WebhookId;
use hookwire_actors::domain::time;
use hookwire_actors::services::journal::DeliveryStatus;
use sqlx::{AnyPool, AssertSqlSafe, Row};

/// A stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// The attempt's id.
    pub id: i64,
    /// Its delivery.
    pub delivery_id: String,
    /// Its webhook.
    pub webhook_id: String,
    /// Its event.
    pub event_id: String,
    /// 1 for a delivery's first attempt.
    pub attempt: i64,
    /// Epoch milliseconds.
    pub started_at: i64,
    /// Milliseconds.
    pub duration_ms: i64,
    /// The method.
    pub request_method: String,
    /// The URL.
    pub request_url: String,
    /// The response status, when a response came.
    pub response_status: Option<i64>,
    /// The error class of a failure.
    pub error_class: Option<String>,
    /// The error message of a failure.
    pub error_message: Option<String>,
    /// The delivery's status after the attempt.
    pub delivery_status: i64,
    /// The request headers as a JSON object (secrets masked).
    pub request_headers: Option<String>,
    /// The start of the request body.
    pub request_body: Option<Vec<u8>>,
    /// The response headers as a JSON object.
    pub response_headers: Option<String>,
    /// The start of the response body.
    pub response_body: Option<Vec<u8>>,
}

const ATTEMPT_COLUMNS: &str = "id, delivery_id, webhook_id, event_id, attempt, started_at, duration_ms, request_method, \
     request_url, response_status, error_class, error_message, delivery_status, request_headers, request_body, \
     response_headers, response_body";

fn from_row(row: &sqlx::any::AnyRow) -> Result<AttemptRow, sqlx::Error> {
    attempt_from_row(row, true)
}

/// An attempt row; with `details` false, its request and response headers and bodies are left out (not selected).
pub(crate) fn attempt_from_row(row: &sqlx::any::AnyRow, details: bool) -> Result<AttemptRow, sqlx::Error> {
    Ok(AttemptRow {
        id: row.try_get("id")?,
        delivery_id: row.try_get("delivery_id")?,
        webhook_id: row.try_get("webhook_id")?,
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
        request_headers: if details { row.try_get("request_headers")? } else { None },
        request_body: if details { row.try_get("request_body")? } else { None },
        response_headers: if details { row.try_get("response_headers")? } else { None },
        response_body: if details { row.try_get("response_body")? } else { None },
    })
}

async fn select_attempts(
    pool: &AnyPool,
    condition: &str,
    binds: (&WebhookId, i64, i64, i64),
) -> Result<Vec<AttemptRow>, StoreError> {
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE webhook_id = $1 AND started_at >= $2 AND {condition} ORDER BY id DESC LIMIT $4"
    );
    let (webhook_id, since_ms, before_id, limit) = binds;
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(webhook_id.as_str())
        .bind(since_ms)
        .bind(before_id)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// The last `limit` successful and the last `limit` failed attempts of a webhook since a time, newest first.
pub async fn recent_attempts(
    pool: &AnyPool,
    webhook_id: &WebhookId,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<AttemptRow>, StoreError> {
    let mut attempts =
        select_attempts(pool, "error_class IS NULL AND id < $3", (webhook_id, since_ms, i64::MAX, limit)).await?;
    attempts.extend(
        select_attempts(pool, "error_class IS NOT NULL AND id < $3", (webhook_id, since_ms, i64::MAX, limit)).await?,
    );
    attempts.sort_by_key(|attempt| std::cmp::Reverse(attempt.id));
    Ok(attempts)
}

/// A page of a webhook's attempts since a time, newest first, with ids below `before_id`.
pub async fn attempt_page(
    pool: &AnyPool,
    webhook_id: &WebhookId,
    since_ms: i64,
    before_id: i64,
    limit: i64,
) -> Result<Vec<AttemptRow>, StoreError> {
    select_attempts(pool, "id < $3", (webhook_id, since_ms, before_id, limit)).await
}

/// The first attempt of a delivery, once it is written.
pub async fn first_attempt_of(pool: &AnyPool, delivery_id: &str) -> Result<Option<AttemptRow>, StoreError> {
    let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = $1 ORDER BY id LIMIT 1");
    let row = sqlx::query(AssertSqlSafe(sql)).bind(delivery_id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// One attempt.
pub async fn get_attempt(pool: &AnyPool, id: i64) -> Result<Option<AttemptRow>, StoreError> {
    let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// Selects up to `limit` of a webhook's finished deliveries in `statuses` created since a time (ids after
/// `after`), marks them pending again and owned by `owner` in one transaction, so that a crash in the middle of a
/// replay still delivers them after the restart, and returns them ready to dispatch. A delivery that another
/// replay reopened meanwhile (through any kernel) is left to it: one sender per delivery.
pub async fn reopen_deliveries(
    pool: &AnyPool,
    owner: &str,
    webhook_id: &WebhookId,
    since_ms: i64,
    statuses: &[DeliveryStatus],
    after: &str,
    limit: i64,
) -> Result<ReopenedPage, StoreError> {
    let status_list = statuses.iter().map(|status| (*status as i64).to_string()).collect::<Vec<_>>().join(", ");
    let mut transaction = pool.begin().await?;
    let sql = format!(
        "{PENDING_SELECT} WHERE d.webhook_id = $1 AND d.created_at >= $2 AND d.id > $3 AND d.status IN ({status_list}) \
         ORDER BY d.id LIMIT $4"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(webhook_id.as_str())
        .bind(since_ms)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *transaction)
        .await?;
    let mut deliveries = pending_from_rows(&rows)?;
    let num_selected = deliveries.len();
    let last_selected = deliveries.last().map(|delivery| delivery.delivery_id.to_string());
    let now = time::now_ms();
    let mut reopened = Vec::with_capacity(deliveries.len());
    for delivery in &deliveries {
        super::daily::remove_outcome(&mut transaction, delivery.delivery_id.as_str()).await?;
        let result = sqlx::query(
            "UPDATE deliveries SET status = $1, updated_at = $2, owner = $3, next_attempt_at = NULL \
             WHERE id = $4 AND status <> $1",
        )
        .bind(DeliveryStatus::Pending as i64)
        .bind(now)
        .bind(owner)
        .bind(delivery.delivery_id.as_str())
        .execute(&mut *transaction)
        .await?;
        reopened.push(result.rows_affected() == 1);
    }
    transaction.commit().await?;
    let mut is_reopened = reopened.into_iter();
    deliveries.retain_mut(|delivery| {
        delivery.next_attempt_at_ms = None;
        is_reopened.next().unwrap_or(false)
    });
    Ok(ReopenedPage { deliveries, num_selected, last_selected })
}

/// A page of [`reopen_deliveries`].
#[derive(Debug)]
pub struct ReopenedPage {
    /// The deliveries reopened, ready to dispatch.
    pub deliveries: Vec<PendingDelivery>,
    /// How many the page selected (reopened or left to another replay).
    pub num_selected: usize,
    /// The id of the last one selected, where the next page starts.
    pub last_selected: Option<String>,
}

/// What [`reopen_delivery`] found.
#[derive(Debug)]
pub enum Reopened {
    /// Pending again, owned by the caller, ready to dispatch.
    Ready(Box<PendingDelivery>),
    /// Still pending, with a live owner (this kernel or another) that sends it: reopening it would make a second
    /// sender.
    AlreadyPending,
    /// No such delivery.
    Missing,
}

/// Marks the delivery of an attempt pending again, owned by `owner`, and returns it ready to dispatch; unless it
/// is still pending with a live owner (`database_now` is the database's clock as SQL, for the leases).
pub async fn reopen_delivery(
    pool: &AnyPool,
    owner: &str,
    database_now: &str,
    delivery_id: &str,
) -> Result<Reopened, StoreError> {
    let mut transaction = pool.begin().await?;
    let rows = sqlx::query(AssertSqlSafe(format!("{PENDING_SELECT} WHERE d.id = $1")))
        .bind(delivery_id)
        .fetch_all(&mut *transaction)
        .await?;
    let Some(mut delivery) = pending_from_rows(&rows)?.into_iter().next() else {
        return Ok(Reopened::Missing);
    };
    // A finished delivery is always reopened below; a pending one (with a dead owner) was never counted.
    super::daily::remove_outcome(&mut transaction, delivery_id).await?;
    let result = sqlx::query(AssertSqlSafe(format!(
        "UPDATE deliveries SET status = $1, updated_at = $2, owner = $3, next_attempt_at = NULL WHERE id = $4 \
         AND (status <> $1 OR owner IS NULL OR owner IN (SELECT k.id FROM kernels k WHERE k.stopped_at IS NOT NULL \
         OR k.heartbeat_at + k.lease_ms < {database_now}))"
    )))
    .bind(DeliveryStatus::Pending as i64)
    .bind(time::now_ms())
    .bind(owner)
    .bind(delivery_id)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    if result.rows_affected() == 0 {
        return Ok(Reopened::AlreadyPending);
    }
    delivery.next_attempt_at_ms = None;
    Ok(Reopened::Ready(Box::new(delivery)))
}

/// Rows one pruning statement deletes at most, so that pruning never holds a long write lock.
pub const PRUNE_BATCH: i64 = 1000;

/// Deletes up to [`PRUNE_BATCH`] attempts that started before `before_ms`; returns how many.
pub async fn prune_attempts(pool: &AnyPool, before_ms: i64) -> Result<u64, StoreError> {
    let result =
        sqlx::query("DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE started_at < $1 LIMIT $2)")
            .bind(before_ms)
            .bind(PRUNE_BATCH)
            .execute(pool)
            .await?;
    Ok(result.rows_affected())
}

/// Deletes up to [`PRUNE_BATCH`] finished deliveries created before `before_ms` (pending ones are kept whatever
/// their age: they are still owed); returns how many.
pub async fn prune_deliveries(pool: &AnyPool, before_ms: i64) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE created_at < $1 AND status <> 0 LIMIT $2)",
    )
    .bind(before_ms)
    .bind(PRUNE_BATCH)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Deletes up to [`PRUNE_BATCH`] events published before `before_ms` that no delivery refers to any more.
pub async fn prune_events(pool: &AnyPool, before_ms: i64) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.published_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) LIMIT $2)",
    )
    .bind(before_ms)
    .bind(PRUNE_BATCH)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
