//! Policies shared by the kernels of one PostgreSQL database (issue 14 point 5; `docs/cluster.md`, "What is
//! shared"): the rate quota and host sleep. SQLite serves one kernel, which keeps both in memory.
//!
//! - **Rate quota** (`x-minIntervalMs` cluster-wide): [`PgQuotaStore`] reserves the start times of a webhook's
//!   requests in `webhook_quota_slots` (migration 0009) with one atomic statement on the database's clock:
//!   `next_slot_at = GREATEST(next_slot_at, now) + count * interval`. Only webhooks with a quota pay this round
//!   trip (see `hookwire_actors::actors::webhook` for how the actor batches it).
//! - **Host sleep**: a host put to sleep by this kernel's breaker is written once to `host_sleeps` (its end on the
//!   database's clock) and spread with a `NOTIFY` on [`CHANNEL`] carrying the sleep's length; every other kernel
//!   notes it and its host actor refuses to send until it ends. A kernel reads the sleeps that have not ended when
//!   it starts, and again each time its listening connection comes back (a `NOTIFY` missed meanwhile is in the
//!   table). Waking early stays each kernel's own: a sleep is never shortened by another kernel.

use crate::cluster::database_now;
use crate::store::{Backend, Store};
use futures::future::BoxFuture;
use hookwire_actors::actors::host::HostKey;
use hookwire_actors::actors::registry::Services;
use hookwire_actors::domain::time::Instant;
use hookwire_actors::services::shared_policy::{QuotaStore, SharedPolicy, SleepDecision, SlotRequest, Slots};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::{AnyPool, AssertSqlSafe, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The `NOTIFY` channel of host sleep decisions.
pub const CHANNEL: &str = "hookwire_policy";
/// Time to wait before listening again after the listener failed to reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// Rows of `host_sleeps` that ended this long ago are deleted (when a decision is written).
const SLEEP_ROW_TTL_MS: i64 = 60_000;

/// Reserves quota slots in `webhook_quota_slots`.
#[derive(Debug, Clone)]
pub struct PgQuotaStore {
    pool: AnyPool,
}

impl PgQuotaStore {
    /// A store on `pool` (PostgreSQL).
    pub fn new(pool: AnyPool) -> Self {
        PgQuotaStore { pool }
    }
}

/// Milliseconds as the database takes them.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A duration from milliseconds the database gave (negative ones are zero).
fn from_millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl QuotaStore for PgQuotaStore {
    fn reserve(&self, request: SlotRequest) -> BoxFuture<'static, Result<Slots, String>> {
        let pool = self.pool.clone();
        Box::pin(async move { reserve(&pool, &request).await.map_err(|error| error.to_string()) })
    }
}

/// One reservation; `now()` is the statement's time on the database's clock, the same in all its uses.
async fn reserve(pool: &AnyPool, request: &SlotRequest) -> Result<Slots, sqlx::Error> {
    const NOW: &str = "(EXTRACT(EPOCH FROM now()) * 1000)::BIGINT";
    let webhook_id = request.webhook_id.as_str();
    let span = millis(request.interval).saturating_mul(i64::from(request.count.max(1)));
    if !request.only_if_free {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO webhook_quota_slots AS q (webhook_id, next_slot_at) VALUES ($1, {NOW} + $2) \
             ON CONFLICT (webhook_id) DO UPDATE SET next_slot_at = GREATEST(q.next_slot_at, {NOW}) + $2 \
             RETURNING q.next_slot_at - $2 - {NOW} AS first_in_ms"
        )))
        .bind(webhook_id)
        .bind(span)
        .fetch_one(pool)
        .await?;
        return Ok(Slots::Granted { first_in: from_millis(row.try_get("first_in_ms")?) });
    }
    let granted = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO webhook_quota_slots AS q (webhook_id, next_slot_at) VALUES ($1, {NOW} + $2) \
         ON CONFLICT (webhook_id) DO UPDATE SET next_slot_at = {NOW} + $2 WHERE q.next_slot_at <= {NOW} \
         RETURNING q.webhook_id"
    )))
    .bind(webhook_id)
    .bind(span)
    .fetch_optional(pool)
    .await?;
    if granted.is_some() {
        return Ok(Slots::Granted { first_in: Duration::ZERO });
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT next_slot_at - {NOW} AS free_in_ms FROM webhook_quota_slots WHERE webhook_id = $1"
    )))
    .bind(webhook_id)
    .fetch_optional(pool)
    .await?;
    let free_in = row.map(|row| row.try_get("free_in_ms")).transpose()?.unwrap_or(0);
    Ok(Slots::Busy { free_in: from_millis(free_in) })
}

/// A sleep decision on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct SleepNotice {
    /// The deciding kernel's id (`kernels.id`).
    node: String,
    /// `scheme://host:port`.
    host: String,
    /// How long it sleeps from the decision.
    sleep_ms: u64,
}

/// The running share of policies; its tasks end when it is dropped.
#[derive(Debug)]
pub struct ClusterPolicy {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ClusterPolicy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts sharing the rate quota and host sleep of `services` with the other kernels on `store` (PostgreSQL at
/// `url`); `None` on SQLite.
pub async fn start(
    url: &str,
    store: &Store,
    services: &Services,
    node_id: &str,
) -> anyhow::Result<Option<ClusterPolicy>> {
    if store.backend() != Backend::Postgres {
        return Ok(None);
    }
    let shared = services.shared_policy.clone();
    shared.share_quota(Arc::new(PgQuotaStore::new(store.pool().clone())));
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    load_sleeps(store.pool(), &shared).await?;
    let Some(decisions) = shared.share_sleeps() else {
        anyhow::bail!("host sleep decisions are already shared");
    };
    let writing = tokio::spawn(write_sleeps(decisions, store.pool().clone(), node_id.to_owned()));
    let receiving = tokio::spawn(receive_sleeps(listener, store.pool().clone(), node_id.to_owned(), shared));
    tracing::info!("rate quotas and host sleep are shared with the other kernels");
    Ok(Some(ClusterPolicy { tasks: vec![writing, receiving] }))
}

/// Notes every sleep in `host_sleeps` that has not ended.
async fn load_sleeps(pool: &AnyPool, shared: &SharedPolicy) -> Result<usize, sqlx::Error> {
    let now = database_now(Backend::Postgres);
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT host, asleep_until - {now} AS left_ms FROM host_sleeps WHERE asleep_until > {now}"
    )))
    .fetch_all(pool)
    .await?;
    let received = Instant::now();
    let mut num_noted = 0;
    for row in rows {
        let (host, left_ms): (String, i64) = (row.try_get("host")?, row.try_get("left_ms")?);
        if let Some(host) = HostKey::parse(&host) {
            shared.note_remote_sleep(host, received + from_millis(left_ms));
            num_noted += 1;
        }
    }
    Ok(num_noted)
}

/// Writes each sleep decision of this kernel and spreads it, until the actors are gone.
async fn write_sleeps(mut decisions: mpsc::Receiver<SleepDecision>, pool: AnyPool, node: String) {
    let now = database_now(Backend::Postgres);
    while let Some(SleepDecision { host, cooldown }) = decisions.recv().await {
        let host = host.to_string();
        let written = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO host_sleeps (host, asleep_until, node_id) VALUES ($1, {now} + $2, $3) \
             ON CONFLICT (host) DO UPDATE SET asleep_until = GREATEST(host_sleeps.asleep_until, \
             EXCLUDED.asleep_until), node_id = EXCLUDED.node_id"
        )))
        .bind(host.as_str())
        .bind(millis(cooldown))
        .bind(node.as_str())
        .execute(&pool)
        .await;
        let notice = SleepNotice { node: node.clone(), host, sleep_ms: cooldown.as_millis() as u64 };
        let payload = serde_json::to_string(&notice).unwrap_or_default();
        let notified =
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&pool).await.map(|_| ());
        if let Err(error) = written.map(|_| ()).and(notified) {
            tracing::warn!(%error, host = %notice.host, "could not share a host's sleep with the other kernels");
        }
        let pruned = sqlx::query(AssertSqlSafe(format!("DELETE FROM host_sleeps WHERE asleep_until < {now} - $1")))
            .bind(SLEEP_ROW_TTL_MS)
            .execute(&pool)
            .await;
        if let Err(error) = pruned {
            tracing::warn!(%error, "could not prune host_sleeps");
        }
    }
}

/// Notes the other kernels' sleep decisions, reading the table again after each gap of the listening connection.
async fn receive_sleeps(mut listener: PgListener, pool: AnyPool, node: String, shared: Arc<SharedPolicy>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let Ok(notice) = serde_json::from_str::<SleepNotice>(notification.payload()) else {
                    tracing::warn!("ignored a malformed notice on {CHANNEL}");
                    continue;
                };
                if notice.node == node {
                    continue;
                }
                if let Some(host) = HostKey::parse(&notice.host) {
                    tracing::info!(%host, sleep_ms = notice.sleep_ms, "host put to sleep by another kernel");
                    shared.note_remote_sleep(host, Instant::now() + Duration::from_millis(notice.sleep_ms));
                }
            }
            Ok(None) => {
                // Listening again: what was missed meanwhile is in the table.
                if let Err(error) = load_sleeps(&pool, &shared).await {
                    tracing::warn!(%error, "could not read the hosts other kernels put to sleep");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for other kernels' host sleep decisions; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}
