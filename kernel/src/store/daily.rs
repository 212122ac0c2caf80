//! The daily outcome summary (`daily_outcomes`): how many of each webhook's deliveries finished on each UTC day,
//! by how they finished. The journal adds a batch's finished deliveries to it in the batch's transaction
//! ([`add_outcomes`]: counted in memory, then one multi-row upsert), so a webhook's 30-day history is at most 30
//! rows to read ([`daily_counts`]) however many deliveries it had; counting the deliveries themselves took
//! 25 ms and more for a webhook with 50,000 of them.
//!
//! A delivery counts once, with its final status, on the UTC day it finished: the day of its `updated_at`, which
//! the journal writes in the same transaction. Reopening it (replay, resend) takes it out of that day's count
//! ([`remove_outcome`], in the reopening transaction), and its next end counts it on the day of that end: the
//! history shows each delivery as it stands now, as counting the deliveries did. Retention deletes the summary's
//! days with the deliveries ([`prune_days`], after the longer of `retention_days` and 31 days); attempts pruned
//! sooner take nothing from it.

use super::{Backend, StoreError, insert_values_sql};
use hookwire_actors::domain::ids::WebhookId;
use hookwire_actors::services::journal::{AttemptRecord, DeliveryStatus};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, PgConnection, Row};
use std::collections::BTreeMap;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// Rows per upsert statement.
const ROWS_PER_STATEMENT: usize = 256;

/// The counted outcomes, in the order of the table's columns.
const OUTCOMES: [DeliveryStatus; 4] =
    [DeliveryStatus::Succeeded, DeliveryStatus::Failed, DeliveryStatus::Skipped, DeliveryStatus::Dropped];
/// The table's column of each outcome.
const COLUMNS: [&str; 4] = ["succeeded", "failed", "skipped", "dropped"];

/// Counts the deliveries that `attempts` finished per webhook and adds them to the summary's day of `now_ms` (the
/// `updated_at` the journal writes to those deliveries), in one statement per 256 webhooks (one for almost every
/// batch). Rows are written in key order, so that
/// two journals (two kernels on PostgreSQL) adding to the same rows lock them in the same order and never
/// deadlock. The statement is not kept in the connection's cache: its shape changes with the number of rows and
/// would push the journal's own statements out.
pub async fn add_outcomes(
    connection: &mut AnyConnection,
    backend: Backend,
    attempts: &[&AttemptRecord],
    now_ms: i64,
) -> Result<(), StoreError> {
    let rows = outcome_rows(attempts, now_ms);
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = insert_values_sql(
            backend,
            "daily_outcomes (webhook_id, day, succeeded, failed, skipped, dropped)",
            6,
            chunk.len(),
        );
        sql.push_str(ADD_ON_CONFLICT);
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for ((webhook_id, day), [succeeded, failed, skipped, dropped]) in chunk {
            query = query.bind(*webhook_id).bind(*day).bind(*succeeded).bind(*failed).bind(*skipped).bind(*dropped);
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

/// [`add_outcomes`] on the journal's PostgreSQL connection: the same rows in the same (key) order, in one statement
/// binding one array per column, as the journal's other PostgreSQL writes.
pub async fn add_outcomes_postgres(
    connection: &mut PgConnection,
    attempts: &[&AttemptRecord],
    now_ms: i64,
) -> Result<(), StoreError> {
    let rows = outcome_rows(attempts, now_ms);
    if rows.is_empty() {
        return Ok(());
    }
    let column = |i: usize| -> Vec<i64> { rows.iter().map(|(_, counts)| counts[i]).collect() };
    let webhook_ids: Vec<&str> = rows.iter().map(|((webhook_id, _), _)| *webhook_id).collect();
    let days: Vec<i64> = rows.iter().map(|((_, day), _)| *day).collect();
    let sql = format!(
        "INSERT INTO daily_outcomes (webhook_id, day, succeeded, failed, skipped, dropped) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]){ADD_ON_CONFLICT}"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(webhook_ids)
        .bind(days)
        .bind(column(0))
        .bind(column(1))
        .bind(column(2))
        .bind(column(3))
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Adds a row's counts to those already stored for its (webhook, day).
const ADD_ON_CONFLICT: &str = " ON CONFLICT (webhook_id, day) DO UPDATE SET \
     succeeded = daily_outcomes.succeeded + excluded.succeeded, failed = daily_outcomes.failed + excluded.failed, \
     skipped = daily_outcomes.skipped + excluded.skipped, dropped = daily_outcomes.dropped + excluded.dropped";

/// The deliveries that `attempts` finished, counted per (webhook, day of `now_ms`), in key order.
fn outcome_rows<'a>(attempts: &[&'a AttemptRecord], now_ms: i64) -> Vec<((&'a str, i64), [i64; 4])> {
    let day = now_ms.div_euclid(DAY_MS);
    let mut counts: BTreeMap<(&str, i64), [i64; 4]> = BTreeMap::new();
    for attempt in attempts {
        let Some(column) = OUTCOMES.iter().position(|status| *status == attempt.delivery_status) else {
            continue;
        };
        counts.entry((attempt.webhook_id.as_str(), day)).or_default()[column] += 1;
    }
    counts.into_iter().collect()
}

/// Takes a finished delivery out of the count of the day it finished, before it is reopened, in the reopening
/// transaction; nothing for a pending one. On PostgreSQL the delivery's row is locked first (`FOR UPDATE`), so of
/// two kernels replaying it at once the second reads it pending and takes nothing (its reopening then changes
/// nothing either); SQLite has one writer. A count never goes below zero (a day already pruned has no row).
pub async fn remove_outcome(connection: &mut AnyConnection, delivery_id: &str) -> Result<(), StoreError> {
    let lock = if connection.backend_name() == "PostgreSQL" { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT webhook_id, status, updated_at FROM deliveries WHERE id = $1{lock}");
    let Some(row) = sqlx::query(AssertSqlSafe(sql)).bind(delivery_id).fetch_optional(&mut *connection).await? else {
        return Ok(());
    };
    let status: i64 = row.try_get("status")?;
    let Some(column) = OUTCOMES.iter().position(|outcome| *outcome as i64 == status).map(|index| COLUMNS[index]) else {
        return Ok(());
    };
    let sql = format!(
        "UPDATE daily_outcomes SET {column} = {column} - 1 WHERE webhook_id = $1 AND day = $2 AND {column} > 0"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(row.try_get::<String, _>("webhook_id")?)
        .bind(row.try_get::<i64, _>("updated_at")?.div_euclid(DAY_MS))
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// A webhook's finished deliveries per UTC day since a time, by status: `(day number, status, count)`.
pub async fn daily_counts(
    pool: &AnyPool,
    webhook_id: &WebhookId,
    since_ms: i64,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT day, succeeded, failed, skipped, dropped FROM daily_outcomes WHERE webhook_id = $1 AND day >= $2",
    )
    .bind(webhook_id.as_str())
    .bind(since_ms.div_euclid(DAY_MS))
    .fetch_all(pool)
    .await?;
    let mut counts = Vec::with_capacity(rows.len() * OUTCOMES.len());
    for row in &rows {
        let day: i64 = row.try_get("day")?;
        for (status, column) in OUTCOMES.iter().zip(COLUMNS) {
            let num: i64 = row.try_get(column)?;
            if num != 0 {
                counts.push((day, *status as i64, num));
            }
        }
    }
    Ok(counts)
}

/// Deletes the summary's days that ended before `before_ms`; returns how many rows.
pub async fn prune_days(pool: &AnyPool, before_ms: i64) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM daily_outcomes WHERE day < $1")
        .bind(before_ms.div_euclid(DAY_MS))
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::journal::SqlJournal;
    use hookwire_actors::domain::event::Event;
    use hookwire_actors::domain::ids::{DeliveryId, GroupId};
    use hookwire_actors::services::journal::{DeliveryRecord, EventRecord, JournalBatch, JournalStore};
    use std::sync::Arc;

    fn attempt(delivery: &DeliveryRecord, event: &Event, at_ms: i64, status: DeliveryStatus) -> AttemptRecord {
        crate::store::journal::tests::attempt_record(delivery, event, 1, at_ms, status)
    }

    #[tokio::test]
    async fn each_finished_delivery_counts_once_on_the_day_it_finished_and_leaves_it_when_reopened() {
        let directory = tempfile::tempdir().unwrap();
        for store in crate::store::journal::tests::test_stores(&directory).await {
            counts_once_and_leaves_when_reopened(&store).await;
        }
    }

    async fn counts_once_and_leaves_when_reopened(store: &Store) {
        let journal = SqlJournal::new(store);
        let (webhook, other) = (WebhookId::generate(), WebhookId::generate());
        let event = Event::new(GroupId::generate(), None, "x".into(), "data".into(), 0);
        let deliveries: Vec<_> = (0..6)
            .map(|index| DeliveryRecord {
                id: DeliveryId::generate(),
                webhook_id: if index < 5 { webhook.clone() } else { other.clone() },
            })
            .collect();
        let today = hookwire_actors::domain::time::now_ms().div_euclid(DAY_MS);
        let at = today * DAY_MS;
        let first = JournalBatch {
            events: vec![EventRecord { event: Arc::new(event.clone()), deliveries: deliveries.clone() }],
            attempts: vec![
                attempt(&deliveries[0], &event, at, DeliveryStatus::Succeeded),
                attempt(&deliveries[1], &event, at, DeliveryStatus::Pending),
                attempt(&deliveries[2], &event, at, DeliveryStatus::Succeeded),
                attempt(&deliveries[3], &event, at, DeliveryStatus::Skipped),
                attempt(&deliveries[5], &event, at, DeliveryStatus::Dropped),
            ],
            webhook_states: Vec::new(),
        };
        journal.write_batch(&first).await.unwrap();
        // A later batch adds to the same rows: a retried delivery fails at last, another succeeds.
        let second = JournalBatch {
            attempts: vec![
                attempt(&deliveries[1], &event, at, DeliveryStatus::Failed),
                attempt(&deliveries[4], &event, at, DeliveryStatus::Succeeded),
            ],
            ..JournalBatch::default()
        };
        journal.write_batch(&second).await.unwrap();
        let counts = |webhook: WebhookId| {
            let pool = store.pool().clone();
            async move {
                let mut counts = daily_counts(&pool, &webhook, 0).await.unwrap();
                counts.sort();
                counts
            }
        };
        assert_eq!(counts(webhook.clone()).await, [(today, 1, 3), (today, 2, 1), (today, 3, 1)], "pending not counted");
        assert_eq!(counts(other.clone()).await, [(today, 4, 1)]);

        // Replaying the failed and skipped ones takes them out of their day until they end again.
        let statuses = [DeliveryStatus::Failed, DeliveryStatus::Skipped];
        let page = crate::store::attempts::reopen_deliveries(store.pool(), "local", &webhook, 0, &statuses, "", 10)
            .await
            .unwrap();
        assert_eq!(page.deliveries.len(), 2);
        assert_eq!(counts(webhook.clone()).await, [(today, 1, 3)]);
        let replayed = JournalBatch {
            attempts: vec![
                attempt(&deliveries[1], &event, at, DeliveryStatus::Succeeded),
                attempt(&deliveries[3], &event, at, DeliveryStatus::Failed),
            ],
            ..JournalBatch::default()
        };
        journal.write_batch(&replayed).await.unwrap();
        assert_eq!(counts(webhook.clone()).await, [(today, 1, 4), (today, 2, 1)]);
        // Resending a pending delivery takes nothing; resending a finished one takes it out.
        let database_now = "0";
        crate::store::attempts::reopen_delivery(store.pool(), "local", database_now, deliveries[0].id.as_str())
            .await
            .unwrap();
        assert_eq!(counts(webhook.clone()).await, [(today, 1, 3), (today, 2, 1)]);
        crate::store::attempts::reopen_delivery(store.pool(), "local", database_now, deliveries[0].id.as_str())
            .await
            .unwrap();
        assert_eq!(counts(webhook.clone()).await, [(today, 1, 3), (today, 2, 1)], "already pending");

        assert_eq!(prune_days(store.pool(), (today + 1) * DAY_MS).await.unwrap(), 2, "today's rows, once it is over");
        assert!(counts(webhook).await.is_empty());
    }
}
