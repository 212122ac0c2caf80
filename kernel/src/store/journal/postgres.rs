//! The journal's writes on PostgreSQL, through the PostgreSQL driver: one statement per table per batch, each
//! binding one array per column and reading it back with `UNNEST`. A batch of 2,048 events is a handful of
//! parameters and one plan per statement, where multi-row `VALUES` through `sqlx::Any` bound (and PostgreSQL
//! parsed) thousands of parameters in statements of up to 256 rows (`docs/performance.md`).
//!
//! Same writes, same semantics as SQLite's (`super::write_sqlite`): the owner set on insert, every update fenced
//! by it, the attempts of lost deliveries left out, one transaction.

use super::{BatchRows, StoreError, attempts_to_record, webhook_state_values};
use hookwire_actors::domain::ids::{DeliveryId, DeviceId};
use hookwire_actors::services::journal::{AttemptRecord, JournalBatch, WebhookStateRecord};
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Row};
use std::collections::HashSet;

const INSERT_EVENTS: &str = "INSERT INTO events (id, group_id, device_id, name, data, published_at, ttl) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::int8[], $7::int8[])";

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries \
     (id, event_id, webhook_id, status, num_attempts, created_at, updated_at, owner, next_attempt_at) \
     SELECT v.id, v.event_id, v.webhook_id, v.status, v.num_attempts, v.created_at, v.updated_at, $8, \
     v.next_attempt_at \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $9::int8[]) \
     AS v (id, event_id, webhook_id, status, num_attempts, created_at, updated_at, next_attempt_at)";

/// Fenced by the owner: the rows that come back are still this kernel's. `deliveries.id = ANY($1)` is the same
/// condition as the join's, said so that the planner finds the rows through the primary key: with the join alone
/// it hashed the whole table (a sequential scan of every delivery ever kept, 70 ms for 700 rows at 70,000, and
/// growing with the table), 15 ms with it (`EXPLAIN ANALYZE` on PostgreSQL 15, generic plan).
const UPDATE_DELIVERIES: &str = "UPDATE deliveries SET status = v.status, num_attempts = v.num_attempts, \
     next_attempt_at = v.next_attempt_at, updated_at = $5 \
     FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[]) AS v (id, status, num_attempts, next_attempt_at) \
     WHERE deliveries.id = ANY($1::text[]) AND deliveries.id = v.id AND deliveries.owner = $6 \
     RETURNING deliveries.id";

const INSERT_ATTEMPTS: &str = "INSERT INTO attempts (delivery_id, webhook_id, event_id, attempt, started_at, \
     duration_ms, request_method, request_url, response_status, error_class, error_message, delivery_status, \
     request_headers, request_body, response_headers, response_body) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], \
     $8::text[], $9::int8[], $10::text[], $11::text[], $12::int8[], $13::text[], $14::bytea[], $15::text[], \
     $16::bytea[])";

/// A state row for each webhook of the batch that has none yet (no failures, enabled); a webhook deleted meanwhile
/// gets none, and its change is skipped.
const INSERT_WEBHOOK_STATES: &str = "INSERT INTO webhook_state (webhook_id, consecutive_failures, disabled_reason, \
     updated_at) SELECT v.id, 0, NULL, $2 FROM UNNEST($1::text[]) AS v (id) \
     WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.id = v.id) ON CONFLICT (webhook_id) DO NOTHING";

/// Locks the batch's state rows in webhook id order, as every kernel's journal does, so that two journals changing
/// the same webhooks wait for each other in turn rather than in a cycle (which PostgreSQL ends by aborting one).
const LOCK_WEBHOOK_STATES: &str =
    "SELECT webhook_id FROM webhook_state WHERE webhook_id = ANY($1::text[]) ORDER BY webhook_id FOR UPDATE";

/// [`super::WEBHOOK_STATE_SQL`]'s change, for every webhook of the batch at once: a reset sets the count, failures
/// add to it, and at the limit (or on 410 Gone) the row is disabled; a stored disable is never cleared here. The
/// `SET` expressions read the row as it was.
const UPDATE_WEBHOOK_STATES: &str = "UPDATE webhook_state s SET \
     consecutive_failures = CASE WHEN v.is_reset = 1 THEN v.added ELSE s.consecutive_failures + v.added END, \
     disabled_reason = COALESCE(s.disabled_reason, v.gone, CASE WHEN v.failure_limit > 0 AND \
     (CASE WHEN v.is_reset = 1 THEN v.added ELSE s.consecutive_failures + v.added END) >= v.failure_limit \
     THEN CAST((CASE WHEN v.is_reset = 1 THEN v.added ELSE s.consecutive_failures + v.added END) AS TEXT) \
     || ' consecutive failures' END), \
     updated_at = $6 \
     FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[]) \
     AS v (id, added, gone, failure_limit, is_reset) WHERE s.webhook_id = v.id";

/// Writes a batch in one transaction; returns the deliveries another kernel owns now.
pub(super) async fn write(
    pool: &PgPool,
    batch: &JournalBatch,
    rows: &BatchRows<'_>,
    now: i64,
    owner: &str,
) -> Result<Vec<DeliveryId>, StoreError> {
    // Not getting a transaction at all means the database is unreachable, whatever the error says: transient.
    let mut transaction = pool.begin().await.map_err(|error| StoreError::Unavailable(error.to_string()))?;
    if !batch.events.is_empty() {
        insert_events(&mut transaction, batch).await?;
    }
    if !rows.deliveries.is_empty() {
        insert_deliveries(&mut transaction, rows, owner).await?;
    }
    let kept = if rows.updates.is_empty() {
        HashSet::new()
    } else {
        update_deliveries(&mut transaction, rows, now, owner).await?
    };
    let lost = rows.lost(&kept);
    let attempts = attempts_to_record(batch, &lost);
    insert_attempts(&mut transaction, &attempts).await?;
    write_webhook_states(&mut transaction, &batch.webhook_states, now).await?;
    // Last, so that the summary's rows (shared by every journal writing to the same webhook) are locked only until
    // the commit. Any statement a batch adds for both databases goes here too, on this transaction (a
    // `PgConnection`: the `Any` statements of the SQLite path do not run on it).
    crate::store::daily::add_outcomes_postgres(&mut transaction, &attempts, now).await?;
    transaction.commit().await?;
    Ok(lost)
}

async fn insert_events(connection: &mut PgConnection, batch: &JournalBatch) -> Result<(), StoreError> {
    let events = || batch.events.iter().map(|record| &*record.event);
    let ids: Vec<&str> = events().map(|event| event.id.as_str()).collect();
    let group_ids: Vec<&str> = events().map(|event| event.group_id.as_str()).collect();
    let device_ids: Vec<Option<&str>> = events().map(|event| event.device_id.as_ref().map(DeviceId::as_str)).collect();
    let names: Vec<&str> = events().map(|event| event.name.as_str()).collect();
    let data: Vec<&[u8]> = events().map(|event| event.data.as_bytes()).collect();
    let published_at: Vec<i64> = events().map(|event| event.published_at_ms).collect();
    let ttls: Vec<i64> = events().map(|event| i64::from(event.ttl)).collect();
    sqlx::query(INSERT_EVENTS)
        .bind(ids)
        .bind(group_ids)
        .bind(device_ids)
        .bind(names)
        .bind(data)
        .bind(published_at)
        .bind(ttls)
        .execute(connection)
        .await?;
    Ok(())
}

async fn insert_deliveries(connection: &mut PgConnection, rows: &BatchRows<'_>, owner: &str) -> Result<(), StoreError> {
    let deliveries = &rows.deliveries;
    let ids: Vec<&str> = deliveries.iter().map(|row| row.delivery.id.as_str()).collect();
    let event_ids: Vec<&str> = deliveries.iter().map(|row| row.event.id.as_str()).collect();
    let webhook_ids: Vec<&str> = deliveries.iter().map(|row| row.delivery.webhook_id.as_str()).collect();
    let statuses: Vec<i64> = deliveries.iter().map(|row| row.status as i64).collect();
    let num_attempts: Vec<i64> = deliveries.iter().map(|row| row.num_attempts).collect();
    let created_at: Vec<i64> = deliveries.iter().map(|row| row.event.published_at_ms).collect();
    let updated_at: Vec<i64> = deliveries.iter().map(|row| row.updated_at).collect();
    let next_attempt_at: Vec<Option<i64>> = deliveries.iter().map(|row| row.next_attempt_at).collect();
    sqlx::query(INSERT_DELIVERIES)
        .bind(ids)
        .bind(event_ids)
        .bind(webhook_ids)
        .bind(statuses)
        .bind(num_attempts)
        .bind(created_at)
        .bind(updated_at)
        .bind(owner)
        .bind(next_attempt_at)
        .execute(connection)
        .await?;
    Ok(())
}

/// Updates the other deliveries' status after their last attempt of the batch; returns the ids of the rows this
/// kernel still owns.
async fn update_deliveries(
    connection: &mut PgConnection,
    rows: &BatchRows<'_>,
    now: i64,
    owner: &str,
) -> Result<HashSet<String>, StoreError> {
    let updates = &rows.updates;
    let ids: Vec<&str> = updates.iter().map(|attempt| attempt.delivery_id.as_str()).collect();
    let statuses: Vec<i64> = updates.iter().map(|attempt| attempt.delivery_status as i64).collect();
    let num_attempts: Vec<i64> = updates.iter().map(|attempt| i64::from(attempt.attempt)).collect();
    let next_attempt_at: Vec<Option<i64>> = updates.iter().map(|attempt| attempt.next_attempt_at_ms).collect();
    let kept = sqlx::query(UPDATE_DELIVERIES)
        .bind(ids)
        .bind(statuses)
        .bind(num_attempts)
        .bind(next_attempt_at)
        .bind(now)
        .bind(owner)
        .fetch_all(connection)
        .await?;
    Ok(kept.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<_, _>>()?)
}

async fn insert_attempts(connection: &mut PgConnection, attempts: &[&AttemptRecord]) -> Result<(), StoreError> {
    if attempts.is_empty() {
        return Ok(());
    }
    let delivery_ids: Vec<&str> = attempts.iter().map(|attempt| attempt.delivery_id.as_str()).collect();
    let webhook_ids: Vec<&str> = attempts.iter().map(|attempt| attempt.webhook_id.as_str()).collect();
    let event_ids: Vec<&str> = attempts.iter().map(|attempt| attempt.event_id.as_str()).collect();
    let numbers: Vec<i64> = attempts.iter().map(|attempt| i64::from(attempt.attempt)).collect();
    let started_at: Vec<i64> = attempts.iter().map(|attempt| attempt.started_at_ms).collect();
    let durations: Vec<i64> = attempts.iter().map(|attempt| attempt.duration_ms).collect();
    let methods: Vec<&str> = attempts.iter().map(|attempt| attempt.request_method.as_str()).collect();
    let urls: Vec<&str> = attempts.iter().map(|attempt| attempt.request_url.as_str()).collect();
    let response_statuses: Vec<Option<i64>> =
        attempts.iter().map(|attempt| attempt.response_status.map(i64::from)).collect();
    let error_classes: Vec<Option<&str>> = attempts.iter().map(|attempt| attempt.error_class).collect();
    let error_messages: Vec<Option<&str>> = attempts.iter().map(|attempt| attempt.error_message.as_deref()).collect();
    let delivery_statuses: Vec<i64> = attempts.iter().map(|attempt| attempt.delivery_status as i64).collect();
    let request_headers: Vec<&str> = attempts.iter().map(|attempt| attempt.request_headers.as_str()).collect();
    let request_bodies: Vec<&[u8]> = attempts.iter().map(|attempt| &attempt.request_body[..]).collect();
    let response_headers: Vec<Option<&str>> =
        attempts.iter().map(|attempt| attempt.response_headers.as_deref()).collect();
    let response_bodies: Vec<Option<&[u8]>> = attempts.iter().map(|attempt| attempt.response_body.as_deref()).collect();
    sqlx::query(INSERT_ATTEMPTS)
        .bind(delivery_ids)
        .bind(webhook_ids)
        .bind(event_ids)
        .bind(numbers)
        .bind(started_at)
        .bind(durations)
        .bind(methods)
        .bind(urls)
        .bind(response_statuses)
        .bind(error_classes)
        .bind(error_messages)
        .bind(delivery_statuses)
        .bind(request_headers)
        .bind(request_bodies)
        .bind(response_headers)
        .bind(response_bodies)
        .execute(connection)
        .await?;
    Ok(())
}

/// The webhooks' state changes of a batch in three statements, however many webhooks changed (a statement each was
/// a round trip per webhook per batch: with a thousand webhooks under a failure limit, a thousand).
async fn write_webhook_states(
    connection: &mut PgConnection,
    states: &[WebhookStateRecord],
    now: i64,
) -> Result<(), StoreError> {
    if states.is_empty() {
        return Ok(());
    }
    let mut values: Vec<_> = states.iter().map(webhook_state_values).collect();
    values.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let ids: Vec<&str> = values.iter().map(|value| value.0).collect();
    let added: Vec<i64> = values.iter().map(|value| value.1).collect();
    let gone: Vec<Option<&str>> = values.iter().map(|value| value.2).collect();
    let failure_limits: Vec<i64> = values.iter().map(|value| value.3).collect();
    let is_reset: Vec<i64> = values.iter().map(|value| value.4).collect();
    sqlx::query(INSERT_WEBHOOK_STATES).bind(&ids).bind(now).execute(&mut *connection).await?;
    sqlx::query(LOCK_WEBHOOK_STATES).bind(&ids).execute(&mut *connection).await?;
    sqlx::query(UPDATE_WEBHOOK_STATES)
        .bind(&ids)
        .bind(added)
        .bind(gone)
        .bind(failure_limits)
        .bind(is_reset)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
