//! Retention: a background task that deletes what is older than the retention period, in bounded batches with a
//! pause between them, so that pruning a large backlog never stalls the journal. Attempts go after
//! `retention_days`; finished deliveries, and the days of the daily outcome summary, after the longer of that and
//! 31 days; events once no delivery refers to them. Pending deliveries are never pruned.

use crate::store::attempts::{PRUNE_BATCH, prune_attempts, prune_deliveries, prune_events};
use crate::store::{Store, StoreError};
use hookwire_actors::domain::time;
use std::time::Duration;

/// Days of history the daily counts must always cover.
pub const MIN_HISTORY_DAYS: u32 = 31;
/// Pause between two pruning batches.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Attempts deleted.
    pub attempts: u64,
    /// Deliveries deleted.
    pub deliveries: u64,
    /// Events deleted.
    pub events: u64,
    /// Rows of the daily outcome summary deleted (one per webhook and day).
    pub days: u64,
}

/// Deletes everything older than the retention period as of `now_ms`.
pub async fn prune_once(store: &Store, retention_days: u32, now_ms: i64) -> Result<Pruned, StoreError> {
    let day_ms = 86_400_000_i64;
    let attempts_before = now_ms - i64::from(retention_days) * day_ms;
    let deliveries_before = now_ms - i64::from(retention_days.max(MIN_HISTORY_DAYS)) * day_ms;
    let pool = store.pool();
    let mut pruned = Pruned::default();
    loop {
        let num = prune_attempts(pool, attempts_before).await?;
        pruned.attempts += num;
        if (num as i64) < PRUNE_BATCH {
            break;
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    loop {
        let num = prune_deliveries(pool, deliveries_before).await?;
        pruned.deliveries += num;
        if (num as i64) < PRUNE_BATCH {
            break;
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    pruned.days = crate::store::daily::prune_days(pool, deliveries_before).await?;
    loop {
        let num = prune_events(pool, deliveries_before).await?;
        pruned.events += num;
        if (num as i64) < PRUNE_BATCH {
            break;
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    Ok(pruned)
}

/// Prunes every `interval`, forever (the kernel aborts the task when it stops).
pub async fn run(store: Store, retention_days: u32, interval: Duration) {
    loop {
        match prune_once(&store, retention_days, time::now_ms()).await {
            Ok(pruned) if pruned != Pruned::default() => {
                tracing::info!(
                    pruned.attempts,
                    pruned.deliveries,
                    pruned.events,
                    pruned.days,
                    retention_days,
                    "pruned old records"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "pruning failed; trying again at the next interval"),
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::journal::SqlJournal;
    use hookwire_actors::domain::event::Event;
    use hookwire_actors::domain::ids::{DeliveryId, GroupId, WebhookId};
    use hookwire_actors::services::journal::{DeliveryRecord, DeliveryStatus, EventRecord, JournalBatch, JournalStore};
    use sqlx::Row;

    const DAY: i64 = 86_400_000;

    /// Writes, through the real journal, an event with one delivery and one attempt, as of `at_ms`.
    async fn record(journal: &SqlJournal, at_ms: i64, status: DeliveryStatus) {
        let mut event = Event::new(GroupId::generate(), None, "x".into(), "data".into(), 0);
        event.published_at_ms = at_ms;
        let delivery = DeliveryRecord { id: DeliveryId::generate(), webhook_id: WebhookId::generate() };
        let attempt = crate::store::journal::tests::attempt_record(&delivery, &event, 1, at_ms, status);
        let mut batch = JournalBatch::default();
        batch.events.push(EventRecord { event: std::sync::Arc::new(event), deliveries: vec![delivery] });
        batch.attempts.push(attempt);
        journal.write_batch(&batch).await.unwrap();
    }

    async fn count(store: &Store, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) AS num FROM {table}");
        sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap().try_get("num").unwrap()
    }

    #[tokio::test]
    async fn pruning_removes_old_attempts_keeps_history_a_month_and_never_touches_pending_deliveries() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", directory.path().join("db").display())).await.unwrap();
        let journal = SqlJournal::new(&store);
        let now = time::now_ms();
        record(&journal, now - 2 * DAY, DeliveryStatus::Succeeded).await; // recent: all kept
        record(&journal, now - 20 * DAY, DeliveryStatus::Failed).await; // older than retention 10, within history
        record(&journal, now - 60 * DAY, DeliveryStatus::Succeeded).await; // older than everything
        record(&journal, now - 60 * DAY, DeliveryStatus::Pending).await; // old but still owed
        // The summary counts those three on the day they were written (today); two older days of another webhook.
        for days_ago in [20, 40] {
            sqlx::query("INSERT INTO daily_outcomes (webhook_id, day, succeeded) VALUES ('whk_old', $1, 1)")
                .bind((now - days_ago * DAY) / DAY)
                .execute(store.pool())
                .await
                .unwrap();
        }

        let pruned = prune_once(&store, 10, now).await.unwrap();
        assert_eq!(pruned, Pruned { attempts: 3, deliveries: 1, events: 1, days: 1 });
        assert_eq!(count(&store, "attempts").await, 1);
        assert_eq!(count(&store, "deliveries").await, 3, "history keeps 31 days; pending deliveries stay");
        assert_eq!(count(&store, "events").await, 3, "an event stays while a delivery refers to it");
        assert_eq!(count(&store, "daily_outcomes").await, 4, "the summary keeps the deliveries' month");
        assert_eq!(prune_once(&store, 10, now).await.unwrap(), Pruned::default(), "nothing left to prune");
    }
}
