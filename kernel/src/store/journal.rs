//! The journal's SQL side: one transaction per batch, events, deliveries and attempts written in a few statements,
//! and the reload of unfinished deliveries at start. What a batch writes is worked out once ([`BatchRows`]); how it
//! is written is the database's: SQLite through `sqlx::Any` with multi-row inserts (here), PostgreSQL through its
//! own driver with one statement per table binding a few arrays ([`postgres`]).

mod postgres;

use super::{Backend, Store, StoreError, insert_values_sql, values_rows};
use futures::future::BoxFuture;
use hookwire_actors::domain::event::Event;
use hookwire_actors::domain::ids::{DeliveryId, DeviceId, EventId, GroupId, WebhookId};
use hookwire_actors::domain::request::DeviceProfile;
use hookwire_actors::domain::time;
use hookwire_actors::services::journal::{
    AttemptRecord, DeliveryRecord, DeliveryStatus, JournalBatch, JournalError, JournalStore, WebhookStateRecord,
};
use hookwire_actors::services::ownership::Ownership;
use sqlx::postgres::PgPool;
use sqlx::{AnyPool, AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Rows per multi-row INSERT, well under both databases' bound-parameter limits.
const ROWS_PER_STATEMENT: usize = 256;

/// Splits rows into statements of [`ROWS_PER_STATEMENT`] rows, then of the powers of two below it: every
/// multi-row statement has one of nine shapes per table and stays in the connection's statement cache (sqlx keeps
/// 100), where a statement for every batch size had to be parsed again almost every time (the third profile's 5%
/// in sqlite3_prepare_v3).
fn statement_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= ROWS_PER_STATEMENT { ROWS_PER_STATEMENT } else { 1 << rest.len().ilog2() };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// The journal store over SQL. Deliveries are inserted with this kernel as their owner, and every outcome of a
/// delivery written afterwards is fenced by that ownership: a delivery another kernel took over is not updated,
/// its attempt is not recorded, and it is marked lost so that the webhook actor forgets it (see
/// [`hookwire_actors::services::ownership`]).
#[derive(Debug, Clone)]
pub struct SqlJournal {
    writer: Writer,
    ownership: Arc<Ownership>,
}

/// Where, and so how, the journal writes: the one place that picks the dialect.
#[derive(Debug, Clone)]
enum Writer {
    /// SQLite through `sqlx::Any`: multi-row `VALUES` with anonymous `?` placeholders.
    Sqlite(AnyPool),
    /// PostgreSQL through its own driver: `UNNEST` of one array per column.
    Postgres(PgPool),
}

/// A delivery of the batch's events, with what it is inserted with.
struct NewDelivery<'a> {
    event: &'a Event,
    delivery: &'a DeliveryRecord,
    status: DeliveryStatus,
    num_attempts: i64,
    updated_at: i64,
    next_attempt_at: Option<i64>,
}

/// What a batch writes besides its events, worked out the same way for both databases.
struct BatchRows<'a> {
    /// Each delivery of the batch's events. One whose attempt is in the same batch (common under load, when a
    /// batch takes long enough for the requests of the events waiting for it to come back) is inserted with its
    /// status after its last attempt of the batch.
    deliveries: Vec<NewDelivery<'a>>,
    /// The last attempt of the batch of each other delivery: its status update, once per delivery.
    updates: Vec<&'a AttemptRecord>,
}

impl<'a> BatchRows<'a> {
    fn new(batch: &'a JournalBatch, now: i64) -> Self {
        let mut last_attempts = HashMap::with_capacity(batch.attempts.len());
        for attempt in &batch.attempts {
            last_attempts.insert(attempt.delivery_id.as_str(), attempt);
        }
        let mut deliveries = Vec::with_capacity(batch.events.iter().map(|record| record.deliveries.len()).sum());
        for record in &batch.events {
            let event = &*record.event;
            for delivery in &record.deliveries {
                let (status, num_attempts, updated_at, next_attempt_at) =
                    match last_attempts.remove(delivery.id.as_str()) {
                        Some(attempt) => {
                            (attempt.delivery_status, i64::from(attempt.attempt), now, attempt.next_attempt_at_ms)
                        }
                        None => (DeliveryStatus::Pending, 0, event.published_at_ms, None),
                    };
                deliveries.push(NewDelivery { event, delivery, status, num_attempts, updated_at, next_attempt_at });
            }
        }
        BatchRows { deliveries, updates: last_attempts.into_values().collect() }
    }

    /// The deliveries updated whose row did not come back (`kept` holds those that did): another kernel owns them.
    fn lost(&self, kept: &HashSet<String>) -> Vec<DeliveryId> {
        self.updates
            .iter()
            .filter(|attempt| !kept.contains(attempt.delivery_id.as_str()))
            .map(|attempt| attempt.delivery_id.clone())
            .collect()
    }
}

/// The attempts this kernel may record: all but those of deliveries another kernel owns now (their new owner
/// records its own).
fn attempts_to_record<'a>(batch: &'a JournalBatch, lost: &[DeliveryId]) -> Vec<&'a AttemptRecord> {
    let lost: HashSet<&str> = lost.iter().map(DeliveryId::as_str).collect();
    batch.attempts.iter().filter(|attempt| !lost.contains(attempt.delivery_id.as_str())).collect()
}

/// Applies a webhook's state change as a change, never as an overwrite: every kernel on the database counts into
/// the same row, a success resets it, and the row is disabled when the shared count reaches the limit. A stored
/// disable is never cleared here (only by `enable`). A webhook deleted meanwhile has no state to keep: the guard
/// skips it rather than fail the batch. The disable reason for 410 Gone is the kernel's; the limit's reason is
/// computed from the shared count. SQLite's statement, one per webhook of the batch (one writer, in process);
/// PostgreSQL writes the same change for all of a batch's webhooks at once (`postgres::write_webhook_states`).
const WEBHOOK_STATE_SQL: &str = "INSERT INTO webhook_state (webhook_id, consecutive_failures, disabled_reason, updated_at) \
     SELECT $1, $2, COALESCE($3, CASE WHEN $5 > 0 AND $2 >= $5 \
     THEN CAST($2 AS TEXT) || ' consecutive failures' END), $4 \
     WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $1) \
     ON CONFLICT (webhook_id) DO UPDATE SET \
     consecutive_failures = CASE WHEN $6 = 1 THEN $2 ELSE webhook_state.consecutive_failures + $2 END, \
     disabled_reason = COALESCE(webhook_state.disabled_reason, $3, CASE WHEN $5 > 0 AND \
     (CASE WHEN $6 = 1 THEN $2 ELSE webhook_state.consecutive_failures + $2 END) >= $5 \
     THEN CAST((CASE WHEN $6 = 1 THEN $2 ELSE webhook_state.consecutive_failures + $2 END) AS TEXT) \
     || ' consecutive failures' END), \
     updated_at = $4";

/// The values [`WEBHOOK_STATE_SQL`] binds, in order: webhook id, failures added, the 410 Gone reason, the failure
/// limit and whether the count was reset (0 or 1).
fn webhook_state_values(state: &WebhookStateRecord) -> (&str, i64, Option<&str>, i64, i64) {
    let gone_reason = state.disabled_reason.as_deref().filter(|reason| reason.starts_with("410 Gone"));
    (
        state.webhook_id.as_str(),
        i64::from(state.num_failures_added),
        gone_reason,
        i64::from(state.failure_limit),
        i64::from(state.is_reset),
    )
}

impl SqlJournal {
    /// A journal writing to `store` for a kernel alone on its database (owner `local`).
    pub fn new(store: &Store) -> Self {
        SqlJournal::with_ownership(store, Arc::default())
    }

    /// A journal writing to `store` on behalf of the kernel whose ownership is `ownership`.
    pub fn with_ownership(store: &Store, ownership: Arc<Ownership>) -> Self {
        let writer = match store.journal_pool() {
            Some(pool) => Writer::Postgres(pool.clone()),
            None => Writer::Sqlite(store.pool().clone()),
        };
        SqlJournal { writer, ownership }
    }

    async fn write(&self, batch: &JournalBatch) -> Result<(), StoreError> {
        let now = time::now_ms();
        let owner = self.ownership.node_id();
        let rows = BatchRows::new(batch, now);
        let lost = match &self.writer {
            Writer::Sqlite(pool) => write_sqlite(pool, batch, &rows, now, owner).await?,
            Writer::Postgres(pool) => postgres::write(pool, batch, &rows, now, owner).await?,
        };
        if !lost.is_empty() {
            tracing::warn!(num_lost = lost.len(), first = %lost[0], "deliveries owned by another kernel now; their outcomes here are not recorded and they are forgotten");
            self.ownership.mark_lost(lost);
        }
        Ok(())
    }
}

/// Writes a batch to SQLite in one transaction; returns the deliveries another kernel owns now.
async fn write_sqlite(
    pool: &AnyPool,
    batch: &JournalBatch,
    rows: &BatchRows<'_>,
    now: i64,
    owner: &str,
) -> Result<Vec<DeliveryId>, StoreError> {
    let backend = Backend::Sqlite;
    // Not getting a transaction at all means the database is unreachable, whatever the error says: transient.
    let mut transaction = pool.begin().await.map_err(|error| StoreError::Unavailable(error.to_string()))?;

    for records in statement_chunks(&batch.events) {
        let sql = insert_values_sql(
            backend,
            "events (id, group_id, device_id, name, data, published_at, ttl)",
            7,
            records.len(),
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for record in records {
            let event = &record.event;
            query = query
                .bind(event.id.as_str())
                .bind(event.group_id.as_str())
                .bind(event.device_id.as_ref().map(DeviceId::as_str))
                .bind(event.name.as_str())
                .bind(event.data.as_bytes())
                .bind(event.published_at_ms)
                .bind(i64::from(event.ttl));
        }
        query.execute(&mut *transaction).await?;
    }

    for deliveries in statement_chunks(&rows.deliveries) {
        let sql = insert_values_sql(
            backend,
            "deliveries (id, event_id, webhook_id, status, num_attempts, created_at, updated_at, owner, \
             next_attempt_at)",
            9,
            deliveries.len(),
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in deliveries {
            query = query
                .bind(row.delivery.id.as_str())
                .bind(row.event.id.as_str())
                .bind(row.delivery.webhook_id.as_str())
                .bind(row.status as i64)
                .bind(row.num_attempts)
                .bind(row.event.published_at_ms)
                .bind(row.updated_at)
                .bind(owner)
                .bind(row.next_attempt_at);
        }
        query.execute(&mut *transaction).await?;
    }

    // The other deliveries' status after their last attempt of the batch, in one statement per chunk rather than
    // one per attempt, fenced by the owner: the rows that come back are still this kernel's.
    let mut kept = HashSet::with_capacity(rows.updates.len());
    for attempts in statement_chunks(&rows.updates) {
        let mut sql = String::from("WITH v (id, status, num_attempts, next_attempt_at) AS (VALUES ");
        values_rows(&mut sql, backend, 4, attempts.len(), 0);
        sql.push_str(
            ") UPDATE deliveries SET status = v.status, num_attempts = v.num_attempts, \
             next_attempt_at = v.next_attempt_at, updated_at = ? FROM v \
             WHERE deliveries.id = v.id AND deliveries.owner = ? RETURNING deliveries.id",
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for attempt in attempts {
            query = query
                .bind(attempt.delivery_id.as_str())
                .bind(attempt.delivery_status as i64)
                .bind(i64::from(attempt.attempt))
                .bind(attempt.next_attempt_at_ms);
        }
        for row in query.bind(now).bind(owner).fetch_all(&mut *transaction).await? {
            kept.insert(row.try_get::<String, _>(0)?);
        }
    }
    let lost = rows.lost(&kept);

    let attempts = attempts_to_record(batch, &lost);
    for attempts in statement_chunks(&attempts) {
        let sql = insert_values_sql(
            backend,
            "attempts (delivery_id, webhook_id, event_id, attempt, started_at, duration_ms, request_method, request_url, \
             response_status, error_class, error_message, delivery_status, request_headers, request_body, \
             response_headers, response_body)",
            16,
            attempts.len(),
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for attempt in attempts {
            query = query
                .bind(attempt.delivery_id.as_str())
                .bind(attempt.webhook_id.as_str())
                .bind(attempt.event_id.as_str())
                .bind(i64::from(attempt.attempt))
                .bind(attempt.started_at_ms)
                .bind(attempt.duration_ms)
                .bind(attempt.request_method.as_str())
                .bind(attempt.request_url.as_str())
                .bind(attempt.response_status.map(i64::from))
                .bind(attempt.error_class)
                .bind(attempt.error_message.as_deref())
                .bind(attempt.delivery_status as i64)
                .bind(attempt.request_headers.as_str())
                .bind(&attempt.request_body[..])
                .bind(attempt.response_headers.as_deref())
                .bind(attempt.response_body.as_deref());
        }
        query.execute(&mut *transaction).await?;
    }
    for state in &batch.webhook_states {
        let (webhook_id, num_failures_added, gone_reason, failure_limit, is_reset) = webhook_state_values(state);
        sqlx::query(WEBHOOK_STATE_SQL)
            .bind(webhook_id)
            .bind(num_failures_added)
            .bind(gone_reason)
            .bind(now)
            .bind(failure_limit)
            .bind(is_reset)
            .execute(&mut *transaction)
            .await?;
    }
    // Last, so that the summary's rows (shared by every journal writing to the same webhook) are locked only until
    // the commit.
    super::daily::add_outcomes(&mut transaction, backend, &attempts, now).await?;
    transaction.commit().await?;
    Ok(lost)
}

impl JournalStore for SqlJournal {
    fn write_batch<'a>(&'a self, batch: &'a JournalBatch) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            // The message reaches the devices whose publishes failed: the error id only, the cause is logged.
            self.write(batch).await.map_err(|error| JournalError {
                transient: matches!(error, StoreError::Unavailable(_)),
                message: format!("error id {}", crate::error::log_store_error(&error)),
            })
        })
    }
}

/// An unfinished delivery, with its event and the device's profile, as recovery needs it.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Its webhook.
    pub webhook_id: WebhookId,
    /// Attempts made so far.
    pub num_attempts: u32,
    /// When the next attempt is due (epoch milliseconds), when an attempt that will be retried set it.
    pub next_attempt_at_ms: Option<i64>,
    /// The event.
    pub event: Event,
    /// The publishing device's template variables.
    pub profile: DeviceProfile,
}

/// Loads up to `limit` unfinished deliveries whose id sorts after `after` (keyset paging, oldest first).
pub async fn pending_deliveries(
    pool: &AnyPool,
    after: Option<&DeliveryId>,
    limit: i64,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let rows =
        sqlx::query(AssertSqlSafe(format!("{PENDING_SELECT} WHERE d.status = 0 AND d.id > $1 ORDER BY d.id LIMIT $2")))
            .bind(after.map_or("", DeliveryId::as_str))
            .bind(limit)
            .fetch_all(pool)
            .await?;
    pending_from_rows(&rows)
}

/// The columns of a delivery with its event and device, as [`pending_from_rows`] reads them.
pub(crate) const PENDING_SELECT: &str = "SELECT d.id AS delivery_id, d.webhook_id, d.num_attempts, d.next_attempt_at, e.id AS event_id, e.group_id, e.device_id, e.name, \
            e.data, e.published_at, e.ttl, v.product_id, v.firmware_version, v.owner \
     FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN devices v ON v.id = e.device_id";

/// Reads rows selected with [`PENDING_SELECT`].
pub(crate) fn pending_from_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<PendingDelivery>, StoreError> {
    rows.iter()
        .map(|row| {
            let device_id: Option<String> = row.try_get("device_id")?;
            let device_id = device_id.as_deref().map(DeviceId::from_trusted);
            let text = |column: &str| row.try_get::<Option<String>, _>(column).map(Option::unwrap_or_default);
            Ok(PendingDelivery {
                delivery_id: DeliveryId::from_trusted(row.try_get("delivery_id")?),
                webhook_id: WebhookId::from_trusted(row.try_get("webhook_id")?),
                num_attempts: u32::try_from(row.try_get::<i64, _>("num_attempts")?).unwrap_or(0),
                next_attempt_at_ms: row.try_get("next_attempt_at")?,
                profile: DeviceProfile {
                    id: device_id.clone(),
                    product_id: text("product_id")?,
                    firmware_version: text("firmware_version")?,
                    owner: text("owner")?,
                },
                event: Event {
                    id: EventId::from_trusted(row.try_get("event_id")?),
                    name: row.try_get("name")?,
                    data: String::from_utf8_lossy(&row.try_get::<Vec<u8>, _>("data")?).into_owned(),
                    device_id,
                    group_id: GroupId::from_trusted(row.try_get("group_id")?),
                    published_at_ms: row.try_get("published_at")?,
                    ttl: u32::try_from(row.try_get::<i64, _>("ttl")?).unwrap_or(0),
                },
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Marks deliveries whose webhook no longer exists as dropped, those that `owner` owns.
pub async fn drop_deliveries(pool: &AnyPool, owner: &str, ids: &[DeliveryId]) -> Result<(), StoreError> {
    let now = time::now_ms();
    let mut transaction = pool.begin().await?;
    for id in ids {
        sqlx::query("UPDATE deliveries SET status = $1, updated_at = $2 WHERE id = $3 AND owner = $4")
            .bind(DeliveryStatus::Dropped as i64)
            .bind(now)
            .bind(id.as_str())
            .bind(owner)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Store;
    use hookwire_actors::services::journal::{DeliveryRecord, EventRecord};

    fn attempt(delivery: &DeliveryRecord, event: &Event, number: u32, status: DeliveryStatus) -> AttemptRecord {
        attempt_record(delivery, event, number, 1, status)
    }

    /// An attempt of `delivery` (number `number`, started at `started_at_ms`) that left it `status`, for the store's
    /// tests that write through the journal.
    pub(crate) fn attempt_record(
        delivery: &DeliveryRecord,
        event: &Event,
        number: u32,
        started_at_ms: i64,
        status: DeliveryStatus,
    ) -> AttemptRecord {
        AttemptRecord {
            delivery_id: delivery.id.clone(),
            webhook_id: delivery.webhook_id.clone(),
            event_id: event.id.clone(),
            attempt: number,
            started_at_ms,
            duration_ms: 1,
            request_method: "POST".into(),
            request_url: "http://x/".into(),
            response_status: Some(503),
            error_class: None,
            error_message: None,
            delivery_status: status,
            next_attempt_at_ms: None,
            request_headers: "{}".into(),
            request_body: Default::default(),
            response_headers: None,
            response_body: None,
        }
    }

    async fn status(store: &Store, delivery: &DeliveryRecord) -> (i64, i64) {
        let row = sqlx::query("SELECT status, num_attempts FROM deliveries WHERE id = $1")
            .bind(delivery.id.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap();
        (row.try_get("status").unwrap(), row.try_get("num_attempts").unwrap())
    }

    /// The stores a test runs on: SQLite, and PostgreSQL (a fresh database) when `HOOKWIRE_TEST_POSTGRES` names a
    /// server, as the end-to-end suite does. Each database has its own journal statements.
    /// A SQLite store in `directory`, and a PostgreSQL one on a fresh database where `HOOKWIRE_TEST_POSTGRES` names
    /// a server.
    pub(crate) async fn test_stores(directory: &tempfile::TempDir) -> Vec<Store> {
        let mut stores =
            vec![Store::connect(&format!("sqlite://{}", directory.path().join("db").display())).await.unwrap()];
        if let Some(server) = std::env::var("HOOKWIRE_TEST_POSTGRES").ok().filter(|server| !server.is_empty()) {
            use sqlx::Executor as _;
            let name = format!("hw_journal_{}", DeliveryId::generate().as_str().to_lowercase().replace('-', "_"));
            let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.unwrap();
            admin.execute(AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
            admin.close().await;
            stores.push(Store::connect(&format!("{server}/{name}")).await.unwrap());
        }
        stores
    }

    #[tokio::test]
    async fn a_delivery_ends_with_the_status_of_its_last_attempt_whether_in_its_events_batch_or_a_later_one() {
        let directory = tempfile::tempdir().unwrap();
        for store in test_stores(&directory).await {
            the_last_attempt_sets_the_status(&store).await;
        }
    }

    async fn the_last_attempt_sets_the_status(store: &Store) {
        let journal = SqlJournal::new(store);
        let event = Event::new(GroupId::generate(), None, "x".into(), "data".into(), 0);
        let [same, later, retried, untouched] =
            std::array::from_fn(|_| DeliveryRecord { id: DeliveryId::generate(), webhook_id: WebhookId::generate() });
        let first = JournalBatch {
            events: vec![EventRecord {
                event: std::sync::Arc::new(event.clone()),
                deliveries: vec![same.clone(), later.clone(), retried.clone(), untouched.clone()],
            }],
            attempts: vec![
                attempt(&retried, &event, 1, DeliveryStatus::Pending),
                attempt(&same, &event, 1, DeliveryStatus::Succeeded),
                attempt(&retried, &event, 2, DeliveryStatus::Pending),
            ],
            webhook_states: Vec::new(),
        };
        journal.write_batch(&first).await.unwrap();
        assert_eq!(status(store, &same).await, (DeliveryStatus::Succeeded as i64, 1), "inserted finished");
        assert_eq!(status(store, &retried).await, (DeliveryStatus::Pending as i64, 2), "its last attempt holds");
        assert_eq!(status(store, &later).await, (DeliveryStatus::Pending as i64, 0));

        let second = JournalBatch {
            attempts: vec![
                attempt(&later, &event, 1, DeliveryStatus::Failed),
                attempt(&retried, &event, 3, DeliveryStatus::Succeeded),
            ],
            ..JournalBatch::default()
        };
        journal.write_batch(&second).await.unwrap();
        assert_eq!(status(store, &later).await, (DeliveryStatus::Failed as i64, 1), "updated");
        assert_eq!(status(store, &retried).await, (DeliveryStatus::Succeeded as i64, 3));
        assert_eq!(status(store, &untouched).await, (DeliveryStatus::Pending as i64, 0));
        let pending = pending_deliveries(store.pool(), None, 10).await.unwrap();
        let pending: Vec<_> = pending.iter().map(|pending| &pending.delivery_id).collect();
        assert_eq!(pending, [&untouched.id]);
    }

    #[tokio::test]
    async fn an_outcome_of_a_delivery_another_kernel_took_over_is_not_written_and_the_delivery_is_marked_lost() {
        let directory = tempfile::tempdir().unwrap();
        for store in test_stores(&directory).await {
            a_lost_delivery_is_not_written(&store).await;
        }
    }

    async fn a_lost_delivery_is_not_written(store: &Store) {
        let ownership = Arc::new(Ownership::always_open("knl_a"));
        let journal = SqlJournal::with_ownership(store, ownership.clone());
        let event = Event::new(GroupId::generate(), None, "x".into(), "data".into(), 0);
        let [kept, taken] =
            std::array::from_fn(|_| DeliveryRecord { id: DeliveryId::generate(), webhook_id: WebhookId::generate() });
        let mut first_attempt = attempt(&kept, &event, 1, DeliveryStatus::Pending);
        first_attempt.next_attempt_at_ms = Some(42);
        let first = JournalBatch {
            events: vec![EventRecord {
                event: std::sync::Arc::new(event.clone()),
                deliveries: vec![kept.clone(), taken.clone()],
            }],
            attempts: vec![first_attempt],
            webhook_states: Vec::new(),
        };
        journal.write_batch(&first).await.unwrap();
        let row = sqlx::query("SELECT owner, next_attempt_at FROM deliveries WHERE id = $1")
            .bind(kept.id.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(row.try_get::<String, _>("owner").unwrap(), "knl_a", "the journal's insert sets the owner");
        assert_eq!(row.try_get::<i64, _>("next_attempt_at").unwrap(), 42, "and the due time of the next attempt");

        // Another kernel claims one of them.
        sqlx::query("UPDATE deliveries SET owner = 'knl_b' WHERE id = $1")
            .bind(taken.id.as_str())
            .execute(store.pool())
            .await
            .unwrap();
        let second = JournalBatch {
            attempts: vec![
                attempt(&kept, &event, 2, DeliveryStatus::Succeeded),
                attempt(&taken, &event, 1, DeliveryStatus::Succeeded),
            ],
            ..JournalBatch::default()
        };
        journal.write_batch(&second).await.unwrap();
        assert_eq!(status(store, &kept).await, (DeliveryStatus::Succeeded as i64, 2));
        assert_eq!(status(store, &taken).await, (DeliveryStatus::Pending as i64, 0), "its new owner's to write");
        let recorded = sqlx::query("SELECT COUNT(*) AS n FROM attempts WHERE delivery_id = $1")
            .bind(taken.id.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(recorded.try_get::<i64, _>("n").unwrap(), 0, "the lost attempt is not recorded");
        assert!(ownership.take_lost(&taken.id), "the webhook actor is told to forget it");
        assert!(!ownership.take_lost(&kept.id));
    }

    /// Webhook states written by two journals (two kernels) add up per webhook: failures add, a success resets, the
    /// limit disables, a stored disable outlives a reset, 410 Gone gives its own reason, and a webhook deleted
    /// meanwhile is skipped; on PostgreSQL all of a batch's states go in three statements.
    #[tokio::test]
    async fn webhook_states_of_two_journals_add_up_and_a_disable_is_never_cleared_by_a_reset() {
        let directory = tempfile::tempdir().unwrap();
        for store in test_stores(&directory).await {
            webhook_states_add_up(&store).await;
        }
    }

    async fn webhook_states_add_up(store: &Store) {
        let group = GroupId::generate();
        sqlx::query("INSERT INTO groups (id, name, created_at) VALUES ($1, 'g', 0)")
            .bind(group.as_str())
            .execute(store.pool())
            .await
            .unwrap();
        let [limited, gone, deleted] = std::array::from_fn(|_| WebhookId::generate());
        for webhook in [&limited, &gone] {
            sqlx::query(
                "INSERT INTO webhooks (id, group_id, definition, created_at, updated_at) VALUES ($1, $2, '{}', 0, 0)",
            )
            .bind(webhook.as_str())
            .bind(group.as_str())
            .execute(store.pool())
            .await
            .unwrap();
        }
        let change =
            |webhook: &WebhookId, is_reset: bool, added: u32, limit: u32, reason: Option<&str>| WebhookStateRecord {
                webhook_id: webhook.clone(),
                consecutive_failures: added,
                disabled_reason: reason.map(str::to_owned),
                is_reset,
                num_failures_added: added,
                failure_limit: limit,
            };
        let states = |webhook_states| JournalBatch { webhook_states, ..JournalBatch::default() };
        let first = SqlJournal::with_ownership(store, Arc::new(Ownership::always_open("knl_a")));
        let second = SqlJournal::with_ownership(store, Arc::new(Ownership::always_open("knl_b")));
        first
            .write_batch(&states(vec![
                change(&limited, false, 2, 3, None),
                change(&gone, false, 1, 0, None),
                change(&deleted, false, 1, 3, None),
            ]))
            .await
            .unwrap();
        second
            .write_batch(&states(vec![change(&gone, true, 0, 0, None), change(&limited, false, 1, 3, None)]))
            .await
            .unwrap();
        first
            .write_batch(&states(vec![
                change(&limited, true, 0, 3, None),
                change(&gone, false, 1, 0, Some("410 Gone from example.com")),
            ]))
            .await
            .unwrap();
        let rows = sqlx::query(
            "SELECT webhook_id, consecutive_failures, disabled_reason FROM webhook_state ORDER BY webhook_id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let rows: Vec<(String, i64, Option<String>)> = rows
            .iter()
            .map(|row| (row.try_get(0).unwrap(), row.try_get(1).unwrap(), row.try_get(2).unwrap()))
            .collect();
        let mut expected = vec![
            (limited.to_string(), 0, Some("3 consecutive failures".to_owned())),
            (gone.to_string(), 1, Some("410 Gone from example.com".to_owned())),
        ];
        expected.sort();
        assert_eq!(rows, expected, "{:?}", store.backend());
    }

    /// PostgreSQL's generic plan of the fenced update (which cannot see how many ids the arrays hold) was a nested
    /// loop comparing every row of a batch with every other, ten times slower than the custom plan; it is chosen
    /// after five executions, so the journal's connections must plan every execution. Checked on the connections
    /// themselves after more batches than that, whatever the planner would have chosen on this database.
    #[tokio::test]
    async fn on_postgresql_the_journal_plans_every_batch_for_its_own_arrays() {
        let directory = tempfile::tempdir().unwrap();
        let Some(store) = test_stores(&directory).await.into_iter().find(|store| store.journal_pool().is_some()) else {
            return;
        };
        let journal = SqlJournal::new(&store);
        for _ in 0..8 {
            let event = Event::new(GroupId::generate(), None, "x".into(), "data".into(), 0);
            let deliveries: Vec<DeliveryRecord> = (0..20)
                .map(|_| DeliveryRecord { id: DeliveryId::generate(), webhook_id: WebhookId::generate() })
                .collect();
            let inserted = JournalBatch {
                events: vec![EventRecord { event: Arc::new(event.clone()), deliveries: deliveries.clone() }],
                ..JournalBatch::default()
            };
            journal.write_batch(&inserted).await.unwrap();
            let attempts =
                deliveries.iter().map(|delivery| attempt(delivery, &event, 1, DeliveryStatus::Succeeded)).collect();
            journal.write_batch(&JournalBatch { attempts, ..JournalBatch::default() }).await.unwrap();
        }
        let pool = store.journal_pool().unwrap();
        // Both connections at once, so that each is asked.
        let mut connections = Vec::new();
        for _ in 0..crate::store::JOURNAL_POOL_CONNECTIONS {
            connections.push(pool.acquire().await.unwrap());
        }
        let mut num_custom = 0;
        for connection in &mut connections {
            let mode: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&mut **connection).await.unwrap();
            assert_eq!(mode, "force_custom_plan");
            let plans: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'UPDATE deliveries%'",
            )
            .fetch_all(&mut **connection)
            .await
            .unwrap();
            for (generic, custom) in plans {
                assert_eq!(generic, 0, "the fenced update ran with a generic plan");
                num_custom += custom;
            }
        }
        assert!(num_custom >= 8, "every batch's update was planned for its arrays ({num_custom})");
    }

    #[test]
    fn rows_split_into_full_statements_then_powers_of_two() {
        let sizes = |num: usize| statement_chunks(&vec![0u8; num]).map(<[u8]>::len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(700), [256, 256, 128, 32, 16, 8, 4]);
        assert!(ROWS_PER_STATEMENT.is_power_of_two());
    }
}
