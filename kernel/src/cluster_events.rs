//! Events across kernels (issue 14 point 6; `docs/cluster.md`, "Events across kernels"): with several kernels on
//! one PostgreSQL database, every event published on a kernel's bus (device events, `hook-*` events,
//! `webhook-disabled/...`) reaches the subscribers of every other kernel as if it had been published there.
//!
//! - **Out**: the bus offers each event to a bounded outbox without waiting ([`EventBus::forward`]); a full outbox
//!   drops the event for the other kernels only, counted (`hookwire_cluster_events_total{outcome="dropped"}`) and logged.
//!   One task drains it, a batch every `cluster_events_batch_ms`, into one `NOTIFY` on [`CHANNEL`], outside any
//!   journal transaction. A batch whose payload would not fit a `NOTIFY` (PostgreSQL refuses 8000 bytes or more)
//!   goes into the table `cluster_events` and the `NOTIFY` carries the row's id; rows are pruned after
//!   [`ROW_TTL_SECS`].
//! - **In**: each kernel `LISTEN`s on its own connection ([`PgListener`]; `sqlx::Any` has none), skips its own
//!   batches (by a node id drawn at start) and publishes the others' events on its bus with
//!   [`EventBus::publish_received`], which reaches local subscribers only: nothing is sent back out, so each
//!   subscriber gets an event once whichever kernel made it, in the order that kernel sent it.
//! - **Presence**: only events of groups that another kernel has subscribers for leave. Each kernel announces the
//!   groups it has subscribers for on the same channel every [`ANNOUNCE_INTERVAL`], and at once when a group gets
//!   its first local subscriber; an announcement holds for `hookwire_actors::services::bus::REMOTE_PRESENCE`. Without
//!   subscribers anywhere, no `hook-*` event is made, as on one kernel.
//! - **Gaps**: `NOTIFY` is not stored. When the listening connection drops, the listener reconnects (and listens
//!   again) at once, but what the other kernels sent meanwhile is lost for this kernel's subscribers: each gap is
//!   logged and counted (`outcome="listener_gap"`), as are batches whose row was pruned before it was read
//!   (`outcome="lost"`).

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    row: Option<i64>,
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
        let mut notice = Notice { node: node.clone(), events: Vec::new(), row: None, groups: Vec::new() };
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

/// Sends one batch: inline in a `NOTIFY` when it fits, else through a row of `cluster_events`.
async fn send_batch(pool: &PgPool, node: &str, batch: &[Outgoing]) -> Result<(), sqlx::Error> {
    let notice = Notice {
        node: node.to_owned(),
        events: batch.iter().map(WireEvent::from_outgoing).collect(),
        row: None,
        groups: Vec::new(),
    };
    let payload = serde_json::to_string(&notice).unwrap_or_default();
    let payload = if payload.len() < MAX_NOTIFY_BYTES {
        payload
    } else {
        let (row,): (i64,) =
            sqlx::query_as("INSERT INTO cluster_events (node_id, payload) VALUES ($1, $2) RETURNING id")
                .bind(node)
                .bind(&payload)
                .fetch_one(pool)
                .await?;
        serde_json::to_string(&Notice { node: node.to_owned(), events: Vec::new(), row: Some(row), groups: Vec::new() })
            .unwrap_or_default()
    };
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(pool).await?;
    Ok(())
}

/// Publishes the other kernels' events on the local bus, listening again after each gap.
async fn receive(mut listener: PgListener, pool: PgPool, node: String, bus: Arc<EventBus>, metrics: Arc<Metrics>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let num_events = publish_notice(notification.payload(), &pool, &node, &bus, &metrics).await;
                if num_events > 0 {
                    metrics.cluster_events("received", num_events);
                }
            }
            Ok(None) => {
                metrics.cluster_events("listener_gap", 1);
                tracing::warn!(
                    "lost the connection that listens for other kernels' events; listening again: events they sent meanwhile are lost for this kernel's subscribers"
                );
            }
            Err(error) => {
                metrics.cluster_events("listener_gap", 1);
                tracing::warn!(%error, "cannot listen for other kernels' events; retrying: events they send meanwhile are lost for this kernel's subscribers");
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}

/// Publishes the events of one `NOTIFY` payload (reading its row when it names one), unless this kernel sent it;
/// returns how many were published.
async fn publish_notice(payload: &str, pool: &PgPool, node: &str, bus: &EventBus, metrics: &Metrics) -> u64 {
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
    let events = match notice.row {
        None => notice.events,
        Some(row) => {
            let stored: Result<Option<(String,)>, _> =
                sqlx::query_as("SELECT payload FROM cluster_events WHERE id = $1").bind(row).fetch_optional(pool).await;
            match stored.map(|stored| stored.map(|(payload,)| serde_json::from_str::<Notice>(&payload))) {
                Ok(Some(Ok(stored))) => stored.events,
                Ok(Some(Err(error))) => {
                    tracing::warn!(%error, row, "ignored a malformed row of cluster_events");
                    return 0;
                }
                Ok(None) => {
                    metrics.cluster_events("lost", 1);
                    tracing::warn!(row, "a batch of events from another kernel was pruned before it was read");
                    return 0;
                }
                Err(error) => {
                    metrics.cluster_events("lost", 1);
                    tracing::warn!(%error, row, "could not read a batch of events from another kernel");
                    return 0;
                }
            }
        }
    };
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
        let notice = Notice { node: "n".into(), events, row: None, groups: Vec::new() };
        let back: Notice = serde_json::from_str(&serde_json::to_string(&notice).unwrap()).unwrap();
        let (received, recipient) = back.events.into_iter().next().unwrap().into_event().unwrap();
        assert_eq!(received, event);
        assert_eq!(recipient, Some(device));
    }
}
