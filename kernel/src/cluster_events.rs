//! Events across kernels (issue 14 point 6; `docs/cluster.md`, "Events across kernels"): with several kernels on
//! one PostgreSQL database, every event published on a kernel's bus (device events, `hook-*` events,
//! `webhook-disabled/...`) reaches the subscribers of every other kernel as if it had been published there.
//!
//! - **Out**: the bus offers each event to a bounded outbox without waiting ([`EventBus::forward`]); a full outbox
//!   drops the event for the other kernels only, counted (`hookwire_cluster_events_total{outcome="dropped"}`) and logged.
//!   One task drains it, a batch every `cluster_events_batch_ms`, into one statement outside any journal
//!   transaction: the batch is stored as a row of `cluster_events`, whose id is the batch's sequence number, and a
//!   `NOTIFY` on [`CHANNEL`] carries the sequence number and, when they fit (PostgreSQL refuses payloads of 8000
//!   bytes or more), the events; otherwise the receivers read the row. Rows are pruned after [`ROW_TTL_SECS`].
//! - **In**: each kernel `LISTEN`s on its own connection ([`PgListener`]; `sqlx::Any` has none), skips its own
//!   batches (by a node id drawn at start) and publishes the others' events on its bus with
//!   [`EventBus::publish_received`], which reaches local subscribers only: nothing is sent back out, so each
//!   subscriber gets an event once whichever kernel made it, in the order that kernel sent it.
//! - **Presence**: only events of groups that another kernel has subscribers for leave. Each kernel announces the
//!   groups it has subscribers for on the same channel every [`ANNOUNCE_INTERVAL`], and at once when a group gets
//!   its first local subscriber; an announcement holds for `hookwire_actors::services::bus::REMOTE_PRESENCE`. Without
//!   subscribers anywhere, no `hook-*` event is made, as on one kernel.
//! - **Gaps**: `NOTIFY` is not stored, the rows are. When the listening connection drops, the listener listens
//!   again at once and then re-reads the rows the other kernels stored since the last batch it received (at most
//!   [`MAX_CATCH_UP_BATCHES`], from [`CATCH_UP_MARGIN`] sequence numbers back, since batches of several kernels
//!   may commit out of order), skipping those it already published; the notices of re-read batches that arrive
//!   after are skipped too. Each gap is logged and counted (`outcome="listener_gap"`), the events re-read as
//!   `outcome="recovered"`; batches pruned before they were read (a gap over [`ROW_TTL_SECS`]) are lost and
//!   counted (`outcome="lost"`).

use hookwire_actors::domain::event::Event;
use hookwire_actors::domain::ids::{DeviceId, EventId, GroupId};
use hookwire_actors::services::bus::{EventBus, Forwarding, Outgoing};
use hookwire_actors::services::metrics::Metrics;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// The `NOTIFY` channel of events between kernels.
pub const CHANNEL: &str = "hookwire_events";
/// The largest `NOTIFY` payload sent, in bytes; PostgreSQL refuses 8000 or more. Larger batches go through the
/// table.
pub const MAX_NOTIFY_BYTES: usize = 7900;
/// Events in one batch at most.
const MAX_BATCH_EVENTS: usize = 4096;
/// Seconds a batch stays in `cluster_events` before it is pruned: other kernels read it within milliseconds.
pub const ROW_TTL_SECS: u64 = 60;
/// Time between two prunings of `cluster_events`.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10);
/// Time between two announcements of the groups this kernel has subscribers for.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);
/// Time a batch waits for a connection before it is dropped (the database is down): the outbox keeps filling
/// meanwhile, and what does not fit is dropped and counted.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to wait before listening again after the listener failed to reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// Batches re-read after a gap at most.
pub const MAX_CATCH_UP_BATCHES: i64 = 1000;
/// After a gap, batches are re-read from this many sequence numbers before the newest one received: a batch
/// numbered before it may have committed after it.
pub const CATCH_UP_MARGIN: i64 = 256;
/// Sequence numbers of batches received that are kept to skip a batch met twice (by its notice and a re-read).
const RECENT_BATCHES: usize = 4096;

/// One event on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct WireEvent {
    id: String,
    name: String,
    data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    group_id: String,
    published_at_ms: i64,
    ttl: u32,
    /// The device the event is addressed to (see `EventBus::publish_to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipient: Option<String>,
}

/// A `NOTIFY` payload (and a `cluster_events` row's): the sender's node id and either its events or, for a batch
/// too large for a payload, the row that holds them.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    node: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<WireEvent>,
    /// The batch's sequence number: the id of its row in `cluster_events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    /// Groups the sender has subscribers for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
}

impl WireEvent {
    fn from_outgoing((event, recipient): &Outgoing) -> WireEvent {
        WireEvent {
            id: event.id.to_string(),
            name: event.name.clone(),
            data: event.data.clone(),
            device_id: event.device_id.as_ref().map(ToString::to_string),
            group_id: event.group_id.to_string(),
            published_at_ms: event.published_at_ms,
            ttl: event.ttl,
            recipient: recipient.as_ref().map(ToString::to_string),
        }
    }

    /// The event and its recipient; `None` when an id does not parse (nothing a kernel sends).
    fn into_event(self) -> Option<(Event, Option<DeviceId>)> {
        let parse_device = |id: Option<String>| match id {
            Some(id) => DeviceId::parse(&id).ok().map(Some),
            None => Some(None),
        };
        let event = Event {
            id: EventId::parse(&self.id).ok()?,
            name: self.name,
            data: self.data,
            device_id: parse_device(self.device_id)?,
            group_id: GroupId::parse(&self.group_id).ok()?,
            published_at_ms: self.published_at_ms,
            ttl: self.ttl,
        };
        Some((event, parse_device(self.recipient)?))
    }
}

/// The running exchange of events with the other kernels; its tasks end when it is dropped.
#[derive(Debug)]
pub struct ClusterEvents {
    node: String,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterEvents {
    /// The node id that marks this kernel's batches.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl Drop for ClusterEvents {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts listening on `url` (PostgreSQL), then sends every event of `bus` to the other kernels in batches, one
/// every `batch_interval`, with at most `queue` events waiting.
pub async fn start(
    url: &str,
    bus: Arc<EventBus>,
    metrics: Arc<Metrics>,
    queue: usize,
    batch_interval: Duration,
) -> anyhow::Result<ClusterEvents> {
    let node = format!("evn_{}", uuid::Uuid::now_v7().simple());
    let pool = PgPoolOptions::new().max_connections(2).acquire_timeout(ACQUIRE_TIMEOUT).connect(url).await?;
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    let Some(Forwarding { outbox, num_dropped, announce }) = bus.forward(queue) else {
        anyhow::bail!("the event bus already forwards its events");
    };
    let announcing = tokio::spawn(announce_groups(bus.clone(), announce, pool.clone(), node.clone()));
    let receiving = tokio::spawn(receive(listener, pool.clone(), node.clone(), bus, metrics.clone()));
    let sending = tokio::spawn(send(outbox, num_dropped, pool, node.clone(), metrics, batch_interval));
    tracing::info!(%node, "events cross kernels through LISTEN/NOTIFY");
    Ok(ClusterEvents { node, tasks: vec![announcing, receiving, sending] })
}

/// Drains the outbox into batches until the bus is gone.
async fn send(
    mut outbox: mpsc::Receiver<Outgoing>,
    num_dropped: Arc<AtomicU64>,
    pool: PgPool,
    node: String,
    metrics: Arc<Metrics>,
    batch_interval: Duration,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH_EVENTS);
    let mut last_pruned = Instant::now();
    while outbox.recv_many(&mut batch, MAX_BATCH_EVENTS).await > 0 {
        let dropped = num_dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            metrics.cluster_events("dropped", dropped);
            tracing::warn!(dropped, "event queue to the other kernels full (cluster_events_queue): events dropped");
        }
        let num_events = batch.len() as u64;
        match send_batch(&pool, &node, &batch).await {
            Ok(()) => metrics.cluster_events("sent", num_events),
            Err(error) => {
                metrics.cluster_events("dropped", num_events);
                tracing::warn!(%error, num_events, "could not send events to the other kernels");
            }
        }
        batch.clear();
        if last_pruned.elapsed() >= PRUNE_INTERVAL {
            last_pruned = Instant::now();
            let pruned = sqlx::query("DELETE FROM cluster_events WHERE created_at < now() - make_interval(secs => $1)")
                .bind(ROW_TTL_SECS as f64)
                .execute(&pool)
                .await;
            if let Err(error) = pruned {
                tracing::warn!(%error, "could not prune cluster_events");
            }
        }
        tokio::time::sleep(batch_interval).await;
    }
}

/// Announces the groups with local subscribers every [`ANNOUNCE_INTERVAL`], and at once when one is new, in
/// payloads that fit a `NOTIFY`.
async fn announce_groups(bus: Arc<EventBus>, announce: Arc<Notify>, pool: PgPool, node: String) {
    loop {
        let groups = bus.local_groups();
        let mut notice = Notice { node: node.clone(), events: Vec::new(), seq: None, groups: Vec::new() };
        let mut size = node.len() + 32;
        for group_id in groups {
            // A group id is a few tens of bytes: well within the margin below 8000.
            if size + group_id.as_str().len() + 3 >= MAX_NOTIFY_BYTES {
                notify(&pool, &notice).await;
                (notice.groups, size) = (Vec::new(), node.len() + 32);
            }
            size += group_id.as_str().len() + 3;
            notice.groups.push(group_id.to_string());
        }
        if !notice.groups.is_empty() {
            notify(&pool, &notice).await;
        }
        let _ = tokio::time::timeout(ANNOUNCE_INTERVAL, announce.notified()).await;
    }
}

/// Sends one notice, logging a failure (the next announcement repairs it).
async fn notify(pool: &PgPool, notice: &Notice) {
    let payload = serde_json::to_string(notice).unwrap_or_default();
    if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(pool).await {
        tracing::warn!(%error, "could not announce this kernel's subscribed groups to the other kernels");
    }
}

/// Sends one batch: stored as a row of `cluster_events` (its id is the batch's sequence number) and announced by a
/// `NOTIFY` that carries the sequence number and, when they fit, the events; one statement.
async fn send_batch(pool: &PgPool, node: &str, batch: &[Outgoing]) -> Result<(), sqlx::Error> {
    let notice = Notice {
        node: node.to_owned(),
        events: batch.iter().map(WireEvent::from_outgoing).collect(),
        seq: None,
        groups: Vec::new(),
    };
    let payload = serde_json::to_string(&notice).unwrap_or_default();
    // The NOTIFY's payload is `{"seq":N,` followed by the rest of the batch's JSON, or of a notice without events.
    let inline = if payload.len() + SEQ_BYTES < MAX_NOTIFY_BYTES {
        payload[1..].to_owned()
    } else {
        let bare = Notice { node: node.to_owned(), events: Vec::new(), seq: None, groups: Vec::new() };
        serde_json::to_string(&bare).unwrap_or_default()[1..].to_owned()
    };
    sqlx::query(
        "WITH batch AS (INSERT INTO cluster_events (node_id, payload) VALUES ($2, $3) RETURNING id) \
         SELECT pg_notify($1, '{\"seq\":' || id || ',' || $4) FROM batch",
    )
    .bind(CHANNEL)
    .bind(node)
    .bind(&payload)
    .bind(inline)
    .execute(pool)
    .await?;
    Ok(())
}

/// Bytes `{"seq":N,` adds to a payload at most.
const SEQ_BYTES: usize = 32;

/// Publishes the other kernels' events on the local bus, listening again after each gap and re-reading the
/// batches missed meanwhile.
async fn receive(mut listener: PgListener, pool: PgPool, node: String, bus: Arc<EventBus>, metrics: Arc<Metrics>) {
    let mut received = Received::default();
    match sqlx::query_as::<_, (Option<i64>,)>("SELECT MAX(id) FROM cluster_events").fetch_one(&pool).await {
        Ok((newest,)) => received.floor = newest.unwrap_or(0),
        Err(error) => {
            tracing::warn!(%error, "could not read the newest batch of events; a gap before the first received batch is not re-read")
        }
    }
    let mut is_behind = false;
    loop {
        if is_behind {
            is_behind = !catch_up(&mut listener, &pool, &node, &bus, &metrics, &mut received).await;
            if is_behind {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        }
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let num_events =
                    publish_notice(notification.payload(), &pool, &node, &bus, &metrics, &mut received).await;
                if num_events > 0 {
                    metrics.cluster_events("received", num_events);
                }
            }
            Ok(None) => {
                metrics.cluster_events("listener_gap", 1);
                tracing::warn!(
                    "lost the connection that listens for other kernels' events; listening again, then re-reading what they sent meanwhile"
                );
                is_behind = true;
            }
            Err(error) => {
                metrics.cluster_events("listener_gap", 1);
                tracing::warn!(%error, "cannot listen for other kernels' events; retrying, then re-reading what they sent meanwhile");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                is_behind = true;
            }
        }
    }
}

/// The batches this kernel received, to know where to re-read from after a gap and to skip a batch met twice.
#[derive(Debug, Default)]
struct Received {
    /// The newest batch when this kernel started listening: older ones are never re-read.
    floor: i64,
    /// Sequence numbers of the latest batches received (at most [`RECENT_BATCHES`]).
    recent: std::collections::BTreeSet<i64>,
}

impl Received {
    /// Notes a batch; false when it was met already.
    fn note(&mut self, seq: i64) -> bool {
        if !self.recent.insert(seq) {
            return false;
        }
        if self.recent.len() > RECENT_BATCHES {
            self.recent.pop_first();
        }
        true
    }

    /// The sequence number after which batches are re-read.
    fn catch_up_from(&self) -> i64 {
        self.recent.last().map_or(self.floor, |newest| (newest - CATCH_UP_MARGIN).max(self.floor))
    }
}

/// Listens again (reconnecting), then publishes the other kernels' batches stored since the last one received
/// that were not received; false when the database could not be reached (the caller tries again).
async fn catch_up(
    listener: &mut PgListener,
    pool: &PgPool,
    node: &str,
    bus: &EventBus,
    metrics: &Metrics,
    received: &mut Received,
) -> bool {
    // Any statement on the listener reconnects it and listens again: batches sent from now on are notified.
    if let Err(error) = sqlx::query("SELECT 1").execute(&mut *listener).await {
        tracing::warn!(%error, "cannot listen again for other kernels' events yet");
        return false;
    }
    let rows: Result<Vec<(i64, String)>, _> =
        sqlx::query_as("SELECT id, payload FROM cluster_events WHERE id > $1 AND node_id <> $2 ORDER BY id LIMIT $3")
            .bind(received.catch_up_from())
            .bind(node)
            .bind(MAX_CATCH_UP_BATCHES)
            .fetch_all(pool)
            .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "could not re-read the events other kernels sent while this one was not listening");
            return false;
        }
    };
    let (mut num_batches, mut num_events) = (0, 0);
    for (seq, payload) in rows {
        if !received.note(seq) {
            continue;
        }
        if let Ok(notice) = serde_json::from_str::<Notice>(&payload) {
            num_batches += 1;
            num_events += publish_events(bus, notice.events);
        }
    }
    if num_batches > 0 {
        metrics.cluster_events("recovered", num_events);
        tracing::info!(
            num_batches,
            num_events,
            "re-read the events other kernels sent while this one was not listening"
        );
    }
    true
}

/// Publishes the events of one `NOTIFY` payload (reading its row when it has no events), unless this kernel sent
/// it or it was received already; returns how many were published.
async fn publish_notice(
    payload: &str,
    pool: &PgPool,
    node: &str,
    bus: &EventBus,
    metrics: &Metrics,
    received: &mut Received,
) -> u64 {
    let notice: Notice = match serde_json::from_str(payload) {
        Ok(notice) => notice,
        Err(error) => {
            tracing::warn!(%error, "ignored a malformed notice on {CHANNEL}");
            return 0;
        }
    };
    if notice.node == node {
        return 0;
    }
    if !notice.groups.is_empty() {
        bus.note_remote_groups(notice.groups.iter().filter_map(|group_id| GroupId::parse(group_id).ok()));
    }
    // A notice without a sequence number (a kernel of an earlier version) carries its events inline.
    let Some(seq) = notice.seq else {
        return publish_events(bus, notice.events);
    };
    if !received.note(seq) {
        return 0;
    }
    if !notice.events.is_empty() {
        return publish_events(bus, notice.events);
    }
    let stored: Result<Option<(String,)>, _> =
        sqlx::query_as("SELECT payload FROM cluster_events WHERE id = $1").bind(seq).fetch_optional(pool).await;
    match stored.map(|stored| stored.map(|(payload,)| serde_json::from_str::<Notice>(&payload))) {
        Ok(Some(Ok(stored))) => publish_events(bus, stored.events),
        Ok(Some(Err(error))) => {
            tracing::warn!(%error, seq, "ignored a malformed row of cluster_events");
            0
        }
        Ok(None) => {
            metrics.cluster_events("lost", 1);
            tracing::warn!(seq, "a batch of events from another kernel was pruned before it was read");
            0
        }
        Err(error) => {
            metrics.cluster_events("lost", 1);
            tracing::warn!(%error, seq, "could not read a batch of events from another kernel");
            0
        }
    }
}

/// Publishes received events on the local bus; returns how many.
fn publish_events(bus: &EventBus, events: Vec<WireEvent>) -> u64 {
    let mut num_published = 0;
    for wire in events {
        if let Some((event, recipient)) = wire.into_event() {
            bus.publish_received(&Arc::new(event), recipient.as_ref());
            num_published += 1;
        }
    }
    num_published
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_and_its_recipient_cross_the_wire_unchanged() {
        let device = DeviceId::generate();
        let event =
            Event::new(GroupId::generate(), Some(device.clone()), "x/hook-response/0".into(), "é\n\"".into(), 0);
        let outgoing: Outgoing = (Arc::new(event.clone()), Some(device.clone()));
        let events = vec![WireEvent::from_outgoing(&outgoing)];
        let notice = Notice { node: "n".into(), events, seq: Some(7), groups: Vec::new() };
        let back: Notice = serde_json::from_str(&serde_json::to_string(&notice).unwrap()).unwrap();
        let (received, recipient) = back.events.into_iter().next().unwrap().into_event().unwrap();
        assert_eq!(received, event);
        assert_eq!(recipient, Some(device));
    }

    #[test]
    fn a_batch_met_twice_is_published_once_and_a_gap_is_re_read_from_a_margin_before_the_newest() {
        let mut received = Received { floor: 10, ..Received::default() };
        assert_eq!(received.catch_up_from(), 10, "nothing received: from the newest batch at start");
        assert!(received.note(500));
        assert!(!received.note(500));
        assert_eq!(received.catch_up_from(), 500 - CATCH_UP_MARGIN);
        for seq in 0..(RECENT_BATCHES as i64 + 10) {
            received.note(1000 + seq);
        }
        assert_eq!(received.recent.len(), RECENT_BATCHES, "bounded");
    }
}
