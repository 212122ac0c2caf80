//! Several kernels on one database: what keeps them apart (see `docs/cluster.md`).
//!
//! - **SQLite serves one kernel**: [`SqliteLock`] refuses a second `hookwired` on the same file at start (an
//!   exclusive advisory lock on `PATH.lock`, held for the life of the process and released by the operating
//!   system when the process ends, however it ends).
//! - **Membership**: [`Membership`] registers this process in `kernels` with a fresh id and heartbeats it on the
//!   database's clock; a kernel is dead once its lease has passed since its last heartbeat, or once it stopped.
//!   Each heartbeat opens the attempt gate ([`Ownership`]) until half the lease after it was sent, so a kernel that
//!   cannot heartbeat stops starting attempts well before peers may take its deliveries over. A kernel that finds
//!   its lease expired (frozen, or cut off from the database, past its lease) stops: its deliveries are someone
//!   else's now.
//! - **Takeover**: [`rescue`] runs on every kernel: it claims, in batches with `FOR UPDATE SKIP LOCKED`, the
//!   pending deliveries that have no live owner (their owner died or stopped, or released them), and hands them to
//!   the webhook actors at their stored due times. Its first round is the start-up recovery. On PostgreSQL a
//!   kernel that stops cleanly releases its pending deliveries and wakes its peers with `NOTIFY`.

use crate::Kernel;
use crate::store::journal::{PENDING_SELECT, pending_from_rows};
use crate::store::{Backend, Store, StoreError, values_rows};
use hookwire_actors::domain::ids::DeliveryId;
use hookwire_actors::services::ownership::Ownership;
use sqlx::{AnyPool, AssertSqlSafe, Row};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The `NOTIFY` channel on which kernels wake each other's rescuers (a kernel released its deliveries).
pub const RESCUE_CHANNEL: &str = "hookwire_rescue";
/// Deliveries one claim takes at most: a dead kernel's deliveries are spread over the live ones in batches.
const CLAIM_BATCH: i64 = 200;

/// The database's clock, epoch milliseconds, as SQL.
pub fn database_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

/// This kernel process's membership of the database's kernels.
#[derive(Debug)]
pub struct Membership {
    pool: AnyPool,
    backend: Backend,
    ownership: Arc<Ownership>,
    lease: Duration,
    /// Turns true when the lease is found expired: the kernel must stop.
    lease_lost: tokio::sync::watch::Sender<bool>,
}

impl Membership {
    /// Registers this process with a fresh id and opens its attempt gate. On SQLite, whose file lock proves that
    /// no other kernel runs, the rows of earlier runs are marked stopped, so their deliveries are claimed at once.
    pub async fn register(store: &Store, lease: Duration) -> Result<Arc<Membership>, StoreError> {
        let node_id = format!("knl_{}", uuid::Uuid::now_v7().simple());
        let backend = store.backend();
        let now = database_now(backend);
        let sent = Instant::now();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO kernels (id, started_at, heartbeat_at, lease_ms) VALUES ($1, {now}, {now}, $2)"
        )))
        .bind(node_id.as_str())
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .execute(store.pool())
        .await?;
        if backend == Backend::Sqlite {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE kernels SET stopped_at = {now} WHERE id <> $1 AND stopped_at IS NULL"
            )))
            .bind(node_id.as_str())
            .execute(store.pool())
            .await?;
        }
        let ownership = Arc::new(Ownership::new(node_id));
        ownership.open_until(sent + lease / 2);
        let (lease_lost, _) = tokio::sync::watch::channel(false);
        tracing::info!(node_id = ownership.node_id(), lease_secs = lease.as_secs_f64(), "kernel registered");
        Ok(Arc::new(Membership { pool: store.pool().clone(), backend, ownership, lease, lease_lost }))
    }

    /// What this kernel may send.
    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.ownership
    }

    /// This kernel's id.
    pub fn node_id(&self) -> &str {
        self.ownership.node_id()
    }

    /// Resolves when the lease is found expired.
    pub fn lease_lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.lease_lost.subscribe();
        async move {
            let _ = receiver.wait_for(|lost| *lost).await;
        }
    }

    /// Renews the lease; `Ok(false)` when it had already expired (or this kernel stopped): the kernel is dead to
    /// its peers and must never send again.
    async fn heartbeat(&self) -> Result<bool, StoreError> {
        let now = database_now(self.backend);
        let sent = Instant::now();
        let renewed = sqlx::query(AssertSqlSafe(format!(
            "UPDATE kernels SET heartbeat_at = {now} WHERE id = $1 AND stopped_at IS NULL \
             AND heartbeat_at + lease_ms >= {now}"
        )))
        .bind(self.node_id())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if renewed {
            self.ownership.open_until(sent + self.lease / 2);
        }
        Ok(renewed)
    }

    /// Heartbeats every sixth of the lease until the lease is lost; then shuts the gate and says so.
    pub async fn keep_alive(self: Arc<Self>) {
        let interval = (self.lease / 6).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match tokio::time::timeout(self.lease / 4, self.heartbeat()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    self.ownership.shut();
                    tracing::error!(
                        node_id = self.node_id(),
                        "this kernel's lease expired (frozen or cut off from the database past its lease): its \
                         deliveries belong to other kernels now; stopping"
                    );
                    let _ = self.lease_lost.send(true);
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, remaining = ?self.ownership.remaining(), "heartbeat failed"),
                Err(_) => tracing::warn!(remaining = ?self.ownership.remaining(), "heartbeat timed out"),
            }
        }
    }

    /// A clean stop, once the journal has written everything: gives this kernel's pending deliveries up (their due
    /// times stay), marks it stopped, and wakes the other kernels so that they claim them at once.
    pub async fn release(&self) -> Result<u64, StoreError> {
        self.ownership.shut();
        let now = database_now(self.backend);
        let mut transaction = self.pool.begin().await?;
        let released = sqlx::query("UPDATE deliveries SET owner = NULL WHERE owner = $1 AND status = 0")
            .bind(self.node_id())
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        sqlx::query(AssertSqlSafe(format!("UPDATE kernels SET stopped_at = {now} WHERE id = $1")))
            .bind(self.node_id())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        if released > 0 && self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(RESCUE_CHANNEL)
                .bind(self.node_id())
                .execute(&self.pool)
                .await?;
        }
        Ok(released)
    }

    /// Claims up to [`CLAIM_BATCH`] pending deliveries that have no live owner: released ones (no owner) first,
    /// then those of dead kernels, a kernel at a time; returns their ids.
    ///
    /// Every statement reads what it claims and little more, however many deliveries are pending: each finds its
    /// rows through the pending deliveries' owner index, and the dead kernels that own any are found with a probe
    /// of that index per kernel row. One statement with `owner IS NULL OR owner IN (dead kernels) ORDER BY id` read
    /// every pending delivery in id order to find those, and its `IN` was planned as a hash join over the whole
    /// table: 220-300 ms per round with 1.1 million deliveries pending, whether or not there was anything to claim
    /// (every quarter lease, on every kernel), against 1 ms to find nothing and 8-10 ms to claim 200 now
    /// (`EXPLAIN ANALYZE`, generic plans, PostgreSQL 15). Claims are in index order, about the order of insertion.
    async fn claim(&self) -> Result<Vec<DeliveryId>, StoreError> {
        let mut claimed = self.claim_owned_by(None, CLAIM_BATCH).await?;
        if claimed.len() < CLAIM_BATCH as usize {
            for dead in self.dead_owners().await? {
                let room = CLAIM_BATCH - claimed.len() as i64;
                claimed.extend(self.claim_owned_by(Some(&dead), room).await?);
                if claimed.len() >= CLAIM_BATCH as usize {
                    break;
                }
            }
        }
        Ok(claimed)
    }

    /// The dead kernels (stopped, or past their lease) that still own pending deliveries.
    async fn dead_owners(&self) -> Result<Vec<String>, StoreError> {
        let now = database_now(self.backend);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT k.id FROM kernels k WHERE (k.stopped_at IS NOT NULL OR k.heartbeat_at + k.lease_ms < {now}) \
             AND EXISTS (SELECT 1 FROM deliveries d WHERE d.status = 0 AND d.owner = k.id)"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Claims up to `limit` pending deliveries of `owner` (`None`: released ones, with no owner).
    async fn claim_owned_by(&self, owner: Option<&str>, limit: i64) -> Result<Vec<DeliveryId>, StoreError> {
        let condition = if owner.is_some() { "d.owner = $3" } else { "d.owner IS NULL" };
        let sql = match self.backend {
            // `= ANY(ARRAY(...))`: the rows locked are then found by their primary key (`IN (...)` was planned as a
            // hash join over the whole table).
            Backend::Postgres => format!(
                "UPDATE deliveries SET owner = $1 WHERE id = ANY(ARRAY(SELECT d.id FROM deliveries d \
                 WHERE d.status = 0 AND {condition} LIMIT $2 FOR UPDATE SKIP LOCKED)) RETURNING id"
            ),
            Backend::Sqlite => format!(
                "UPDATE deliveries SET owner = $1 WHERE id IN (SELECT d.id FROM deliveries d \
                 WHERE d.status = 0 AND {condition} LIMIT $2) RETURNING id"
            ),
        };
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(self.node_id()).bind(limit);
        if let Some(owner) = owner {
            query = query.bind(owner);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map(|id| DeliveryId::from_trusted(&id)))
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// Wakes every kernel's rescuer (this one's too), so that the live kernels claim together, batch by batch,
    /// and split a dead kernel's deliveries between them.
    async fn wake_rescuers(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(RESCUE_CHANNEL)
                .bind(self.node_id())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Forgets kernels that stopped, or whose lease ended (killed, lost), more than a day ago and own nothing
    /// pending: each round of the rescuer looks at every dead kernel's row.
    async fn forget_stopped(&self) -> Result<(), StoreError> {
        let now = database_now(self.backend);
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM kernels WHERE COALESCE(stopped_at, heartbeat_at + lease_ms) < {now} - 86400000 AND NOT EXISTS \
             (SELECT 1 FROM deliveries d WHERE d.status = 0 AND d.owner = kernels.id)"
        )))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Loads claimed deliveries, ready to dispatch.
async fn load_claimed(
    pool: &AnyPool,
    backend: Backend,
    ids: &[DeliveryId],
) -> Result<Vec<crate::store::journal::PendingDelivery>, StoreError> {
    let mut sql = format!("{PENDING_SELECT} WHERE d.id IN (");
    let mut placeholders = String::new();
    values_rows(&mut placeholders, backend, ids.len(), 1, 0);
    sql.push_str(placeholders.trim_start_matches('(').trim_end_matches(')'));
    sql.push_str(") ORDER BY d.id");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    pending_from_rows(&rows)
}

/// The rescuer: claims the pending deliveries that have no live owner and dispatches them at their due times,
/// at start (the start-up recovery) and then every quarter of the lease, or at once when a peer announces it
/// released its deliveries. Returns only when aborted.
pub async fn rescue(kernel: Arc<Kernel>, database_url: String) {
    let membership = kernel.membership.clone();
    let interval = (membership.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut listener = match membership.backend {
        Backend::Postgres => listen(&database_url).await,
        Backend::Sqlite => None,
    };
    let mut num_rounds = 0u64;
    loop {
        if membership.ownership.may_start_attempts() {
            let num_claimed = rescue_round(&kernel).await;
            if num_claimed > 0 {
                tracing::info!(num_claimed, "claimed pending deliveries that had no live owner");
            }
        }
        num_rounds += 1;
        if num_rounds.is_multiple_of(1000)
            && let Err(error) = membership.forget_stopped().await
        {
            tracing::warn!(%error, "could not forget stopped kernels");
        }
        match listener.as_mut() {
            Some(wake) => {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    notification = wake.recv() => {
                        if let Err(error) = notification {
                            tracing::warn!(%error, "lost the wake-up channel; claiming on the timer only");
                            listener = None;
                        }
                    }
                }
            }
            None => tokio::time::sleep(interval).await,
        }
    }
}

/// Claims and dispatches batches until nothing is left to claim; returns how many were claimed. When there is more
/// than one batch, the other kernels are woken to claim beside it (`FOR UPDATE SKIP LOCKED` keeps their batches
/// apart), which spreads a dead kernel's deliveries across the live ones.
async fn rescue_round(kernel: &Kernel) -> usize {
    let membership = &kernel.membership;
    let mut num_claimed = 0;
    loop {
        let claimed = match membership.claim().await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "could not claim deliveries without a live owner");
                return num_claimed;
            }
        };
        if claimed.is_empty() {
            return num_claimed;
        }
        let is_last = (claimed.len() as i64) < CLAIM_BATCH;
        if num_claimed == 0
            && !is_last
            && let Err(error) = membership.wake_rescuers().await
        {
            tracing::warn!(%error, "could not wake the other kernels' rescuers");
        }
        num_claimed += claimed.len();
        match load_claimed(&membership.pool, membership.backend, &claimed).await {
            Ok(deliveries) => {
                crate::recovery::dispatch(kernel, deliveries).await;
            }
            Err(error) => {
                // Claimed but not loaded: give them back for the next round (this kernel's or another's).
                tracing::warn!(%error, "could not load claimed deliveries; releasing them");
                let _ = membership.release_ids(&claimed).await;
                return num_claimed;
            }
        }
        if is_last {
            return num_claimed;
        }
    }
}

impl Membership {
    /// Gives deliveries this kernel claimed back, for the next round.
    async fn release_ids(&self, ids: &[DeliveryId]) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query("UPDATE deliveries SET owner = NULL WHERE id = $1 AND owner = $2")
                .bind(id.as_str())
                .bind(self.node_id())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

/// How often a kernel on PostgreSQL reads the webhooks' shared run-time state (failure counts, disables).
pub const STATE_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How far back each read looks at `webhook_state.updated_at` (written on each kernel's clock): margin for clock
/// differences between kernels; applying a state twice is harmless.
const STATE_SYNC_MARGIN_MS: i64 = 60_000;

/// Keeps this kernel's webhooks' run-time state in step with the database, where every kernel counts failures
/// into the same rows and `enable`, `disable` and auto-disable are stored: each second, the states changed lately
/// are applied to the webhooks in the index. A webhook seen disabled for the first time here is announced on this
/// kernel's event stream (`webhook-disabled/<id>`) only where events do not cross kernels: where they do, the
/// kernel that disabled it announced it to every kernel's subscribers.
pub async fn sync_webhook_states(kernel: Arc<Kernel>) {
    let mut ticks = tokio::time::interval(STATE_SYNC_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let since = hookwire_actors::domain::time::now_ms() - STATE_SYNC_MARGIN_MS;
        let rows = match sqlx::query(
            "SELECT s.webhook_id, w.group_id, s.consecutive_failures, s.disabled_reason FROM webhook_state s \
             JOIN webhooks w ON w.id = s.webhook_id WHERE s.updated_at >= $1",
        )
        .bind(since)
        .fetch_all(kernel.store.pool())
        .await
        {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "could not read the webhooks' shared state");
                continue;
            }
        };
        for row in rows {
            let (Ok(webhook_id), Ok(group_id), Ok(count), Ok(reason)) = (
                row.try_get::<String, _>("webhook_id"),
                row.try_get::<String, _>("group_id"),
                row.try_get::<i64, _>("consecutive_failures"),
                row.try_get::<Option<String>, _>("disabled_reason"),
            ) else {
                continue;
            };
            let group_id = hookwire_actors::domain::ids::GroupId::from_trusted(&group_id);
            let webhook_id = hookwire_actors::domain::ids::WebhookId::from_trusted(&webhook_id);
            let Some(webhook) = kernel.services.index.find(&group_id, &webhook_id) else {
                continue;
            };
            let runtime = &webhook.runtime;
            let count = u32::try_from(count).unwrap_or(0);
            if runtime.consecutive_failures() == count && runtime.disabled_reason() == reason {
                continue;
            }
            let was_disabled = runtime.is_disabled();
            runtime.restore(count, reason.clone());
            if let Some(reason) = reason.filter(|_| !was_disabled) {
                tracing::warn!(%webhook_id, %reason, "webhook disabled (through the database)");
                // Where events cross kernels (PostgreSQL), the kernel that disabled it announced it to every
                // kernel's subscribers already: announcing it again here would show it twice.
                if !kernel.services.bus.forwards() {
                    let name = format!("webhook-disabled/{webhook_id}");
                    let event = hookwire_actors::domain::event::Event::new(group_id, None, name, reason, 0);
                    kernel.services.bus.publish(&Arc::new(event));
                }
            }
        }
    }
}

/// A listener on [`RESCUE_CHANNEL`], on its own connection (the `Any` driver has no `LISTEN`).
async fn listen(database_url: &str) -> Option<sqlx::postgres::PgListener> {
    let mut listener = match sqlx::postgres::PgListener::connect(database_url).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for wake-ups; claiming on the timer only");
            return None;
        }
    };
    match listener.listen(RESCUE_CHANNEL).await {
        Ok(()) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for wake-ups; claiming on the timer only");
            None
        }
    }
}

/// The exclusive lock a kernel holds on its SQLite database for as long as it runs.
#[derive(Debug)]
pub struct SqliteLock {
    /// The open lock file: the lock lives as long as it stays open.
    _file: File,
    /// Where the lock file is.
    pub path: PathBuf,
}

impl SqliteLock {
    /// Takes the lock of the SQLite database named by `database_url`; `Ok(None)` for a PostgreSQL URL or an
    /// in-memory SQLite database. Fails with a message that says what to do when another kernel holds it.
    pub fn acquire(database_url: &str) -> anyhow::Result<Option<SqliteLock>> {
        let Some(database) = sqlite_path(database_url) else {
            return Ok(None);
        };
        let path = PathBuf::from(format!("{}.lock", database.display()));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|error| anyhow::anyhow!("database: cannot open the lock file {}: {error}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() { String::new() } else { format!(" (process {holder})") };
                anyhow::bail!(
                    "database: {} is already used by another hookwired{holder}, which holds {}. SQLite serves one \
                     kernel: to run several kernels on one database, use PostgreSQL (--database postgres://...; see \
                     docs/cluster.md)",
                    database.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                anyhow::bail!("database: cannot lock {}: {error}", path.display());
            }
        }
        // Who holds it, for the message a second kernel shows; the lock, not this text, is what counts.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        Ok(Some(SqliteLock { _file: file, path }))
    }
}

/// The file of a `sqlite://PATH` or `sqlite:PATH` URL (its query string cut off); `None` for other URLs and
/// in-memory databases.
fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory") {
        return None;
    }
    Some(Path::new(path).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims fill their batch from released deliveries, then from each dead kernel's in turn, never take a live
    /// kernel's or a finished delivery, and come back empty once nothing is left.
    #[tokio::test]
    async fn claims_take_released_then_dead_kernels_deliveries_a_batch_at_a_time_and_never_a_live_ones() {
        let directory = tempfile::tempdir().unwrap();
        for store in crate::store::journal::tests::test_stores(&directory).await {
            let membership = Membership::register(&store, Duration::from_secs(30)).await.unwrap();
            // Dead by its lease, dead by a clean stop, alive (a heartbeat far ahead).
            for (id, heartbeat_at, stopped_at) in [
                ("knl_lapsed", 0_i64, None::<i64>),
                ("knl_stopped", 9_000_000_000_000, Some(1)),
                ("knl_live", 9_000_000_000_000, None),
            ] {
                sqlx::query("INSERT INTO kernels (id, started_at, heartbeat_at, lease_ms, stopped_at) VALUES ($1, 0, $2, 30000, $3)")
                    .bind(id)
                    .bind(heartbeat_at)
                    .bind(stopped_at)
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
            let owners = [
                (None, 150, 0),
                (Some("knl_lapsed"), 100, 0),
                (Some("knl_stopped"), 100, 0),
                (Some("knl_live"), 50, 0),
                (None, 30, 1),
            ];
            let mut number = 0;
            for (owner, count, status) in owners {
                for _ in 0..count {
                    number += 1;
                    sqlx::query("INSERT INTO deliveries (id, event_id, webhook_id, status, created_at, updated_at, owner) VALUES ($1, 'evt', 'whk', $2, 0, 0, $3)")
                        .bind(format!("dlv_{number:05}"))
                        .bind(status)
                        .bind(owner)
                        .execute(store.pool())
                        .await
                        .unwrap();
                }
            }
            let first = membership.claim().await.unwrap();
            let second = membership.claim().await.unwrap();
            let third = membership.claim().await.unwrap();
            assert_eq!((first.len(), second.len(), third.len()), (200, 150, 0), "{:?}", store.backend());
            let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE owner = $1")
                .bind(membership.node_id())
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(row.try_get::<i64, _>("n").unwrap(), 350, "released and dead kernels' pending deliveries only");
            let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE owner = 'knl_live'")
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(row.try_get::<i64, _>("n").unwrap(), 50, "a live kernel keeps its own");

            // Dead a day ago and owning nothing now: forgotten, whether stopped or lapsed; the others are kept.
            membership.forget_stopped().await.unwrap();
            let kept = sqlx::query("SELECT id FROM kernels ORDER BY id").fetch_all(store.pool()).await.unwrap();
            let kept: Vec<String> = kept.iter().map(|row| row.try_get("id").unwrap()).collect();
            let mut expected = vec![membership.node_id().to_owned(), "knl_live".to_owned()];
            expected.sort();
            assert_eq!(kept, expected, "{:?}", store.backend());
        }
    }

    #[test]
    fn a_second_lock_on_one_sqlite_file_is_refused_until_the_first_is_released() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", directory.path().join("hookwire.db").display());
        let first = SqliteLock::acquire(&url).unwrap().expect("a lock for a SQLite file");
        let refused = SqliteLock::acquire(&url).unwrap_err().to_string();
        assert!(refused.contains("already used by another hookwired"), "{refused}");
        assert!(refused.contains("use PostgreSQL"), "{refused}");
        assert!(refused.contains(&format!("process {}", std::process::id())), "{refused}");
        drop(first);
        SqliteLock::acquire(&url).unwrap().expect("free again once released");
    }

    #[test]
    fn postgres_and_in_memory_databases_take_no_lock() {
        assert!(SqliteLock::acquire("postgres://u@h/db").unwrap().is_none());
        assert!(SqliteLock::acquire("sqlite::memory:").unwrap().is_none());
        assert!(sqlite_path("sqlite:///tmp/x.db?mode=rwc") == Some(PathBuf::from("/tmp/x.db")));
        assert!(sqlite_path("sqlite:x.db") == Some(PathBuf::from("x.db")));
    }
}
