//! The event bus: fans events out to subscribers (device sessions, admin `Subscribe` streams) by group and name
//! prefix. Publishing costs one read lock and a scan of the group's subscriptions; nothing else is touched.
//!
//! Each subscriber owns a bounded queue. A subscriber that does not keep up loses events rather than slowing the
//! kernel: the loss is counted and reported to it. Events addressed to a device (named `<device id>/...`, or
//! published with a recipient through [`EventBus::publish_to`]) reach only that device's sessions and admin
//! subscribers, whatever prefix other devices subscribed to.
//!
//! With several kernels on one database, the kernel installs an outbox ([`EventBus::forward`]): every event
//! published here is also offered to it, without waiting (a full outbox loses the event for the other kernels and
//! counts it), and events received from other kernels come in through [`EventBus::publish_received`], which
//! reaches local subscribers only, so that nothing loops back out. Only events of groups that another kernel
//! subscribes to leave: kernels announce the groups they have subscribers for ([`EventBus::local_groups`],
//! [`EventBus::note_remote_groups`]), and an announcement holds for [`REMOTE_PRESENCE`].

use crate::domain::event::SharedEvent;
use crate::domain::ids::{DeviceId, GroupId};
use crate::domain::time::Instant;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// How long another kernel's announcement that it has subscribers for a group holds, unless renewed.
pub const REMOTE_PRESENCE: Duration = Duration::from_secs(3);

/// Where one subscriber's events go.
#[derive(Debug)]
pub struct Sink {
    id: u64,
    device_id: Option<DeviceId>,
    sender: mpsc::Sender<SharedEvent>,
    num_dropped: Arc<AtomicU64>,
}

impl Sink {
    /// Returns the number of events dropped since the last call, and resets it.
    pub fn take_dropped(&self) -> u64 {
        self.num_dropped.swap(0, Ordering::Relaxed)
    }

    /// The sink's drop counter, for the reader of its queue (which must not keep the sink, and so its queue's
    /// sender, alive).
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.num_dropped.clone()
    }
}

#[derive(Debug)]
struct Subscription {
    prefix: String,
    sink: Arc<Sink>,
}

/// An event leaving for the other kernels, with the device it is addressed to (see [`EventBus::publish_to`]).
pub type Outgoing = (SharedEvent, Option<DeviceId>);

/// The queue of events for the other kernels, and which groups they want.
#[derive(Debug)]
struct Outbox {
    sender: mpsc::Sender<Outgoing>,
    num_dropped: Arc<AtomicU64>,
    /// Woken when a group gets its first local subscriber, so that the other kernels hear of it at once.
    announce: Arc<Notify>,
    /// The groups other kernels have subscribers for, until when.
    remote: RwLock<HashMap<GroupId, Instant>>,
}

impl Outbox {
    fn wants(&self, group_id: &GroupId) -> bool {
        let remote = self.remote.read().unwrap_or_else(|poison| poison.into_inner());
        remote.get(group_id).is_some_and(|until| *until > Instant::now())
    }
}

/// The receiving end of the outbox ([`EventBus::forward`]).
#[derive(Debug)]
pub struct Forwarding {
    /// Events to send, at most the outbox's capacity.
    pub outbox: mpsc::Receiver<Outgoing>,
    /// Events dropped because the outbox was full.
    pub num_dropped: Arc<AtomicU64>,
    /// Notified when a group gets its first local subscriber: announce the local groups.
    pub announce: Arc<Notify>,
}

/// The bus.
#[derive(Debug, Default)]
pub struct EventBus {
    groups: RwLock<HashMap<GroupId, Vec<Subscription>>>,
    next_sink_id: AtomicU64,
    outbox: OnceLock<Outbox>,
}

/// Removes a sink's subscriptions when dropped.
#[derive(Debug)]
pub struct SinkGuard {
    bus: Arc<EventBus>,
    group_id: GroupId,
    sink: Arc<Sink>,
}

impl SinkGuard {
    /// The sink.
    pub fn sink(&self) -> &Arc<Sink> {
        &self.sink
    }

    /// Subscribes the sink to a prefix of its group (subscribing twice to one prefix is a no-op).
    pub fn subscribe(&self, prefix: &str) {
        self.bus.subscribe(&self.group_id, prefix, &self.sink);
    }

    /// Removes one prefix.
    pub fn unsubscribe(&self, prefix: &str) {
        let mut groups = self.bus.groups.write().unwrap_or_else(|poison| poison.into_inner());
        if let Some(subscriptions) = groups.get_mut(&self.group_id) {
            subscriptions.retain(|s| !(s.sink.id == self.sink.id && s.prefix == prefix));
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        let mut groups = self.bus.groups.write().unwrap_or_else(|poison| poison.into_inner());
        if let Some(subscriptions) = groups.get_mut(&self.group_id) {
            subscriptions.retain(|s| s.sink.id != self.sink.id);
            if subscriptions.is_empty() {
                groups.remove(&self.group_id);
            }
        }
    }
}

impl EventBus {
    /// Makes a sink for a subscriber of a group: a device session (`device_id`) or an admin stream (`None`).
    /// The returned guard removes every subscription of the sink when dropped.
    pub fn sink(
        self: &Arc<Self>,
        group_id: GroupId,
        device_id: Option<DeviceId>,
        capacity: usize,
    ) -> (SinkGuard, mpsc::Receiver<SharedEvent>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let sink = Arc::new(Sink {
            id: self.next_sink_id.fetch_add(1, Ordering::Relaxed),
            device_id,
            sender,
            num_dropped: Arc::new(AtomicU64::new(0)),
        });
        (SinkGuard { bus: self.clone(), group_id, sink }, receiver)
    }

    fn subscribe(&self, group_id: &GroupId, prefix: &str, sink: &Arc<Sink>) {
        let mut groups = self.groups.write().unwrap_or_else(|poison| poison.into_inner());
        if let Some(outbox) = self.outbox.get()
            && !groups.contains_key(group_id)
        {
            outbox.announce.notify_one();
        }
        let subscriptions = groups.entry(group_id.clone()).or_default();
        if !subscriptions.iter().any(|s| s.sink.id == sink.id && s.prefix == prefix) {
            subscriptions.push(Subscription { prefix: prefix.to_owned(), sink: sink.clone() });
        }
    }

    /// Sends every event published from now on of a group another kernel subscribes to (see
    /// [`EventBus::note_remote_groups`]) to an outbox too: returns its receiving end (at most `capacity` events
    /// wait in it; more are dropped). `None` when an outbox is already set.
    pub fn forward(&self, capacity: usize) -> Option<Forwarding> {
        let (sender, outbox) = mpsc::channel(capacity.max(1));
        let (num_dropped, announce) = (Arc::new(AtomicU64::new(0)), Arc::new(Notify::new()));
        let remote = RwLock::default();
        self.outbox
            .set(Outbox { sender, num_dropped: num_dropped.clone(), announce: announce.clone(), remote })
            .ok()?;
        Some(Forwarding { outbox, num_dropped, announce })
    }

    /// The groups with local subscribers, to announce to the other kernels.
    pub fn local_groups(&self) -> Vec<GroupId> {
        self.groups.read().unwrap_or_else(|poison| poison.into_inner()).keys().cloned().collect()
    }

    /// Notes that another kernel has subscribers for `groups`: their events are sent to the outbox for
    /// [`REMOTE_PRESENCE`] from now. Does nothing without an outbox.
    pub fn note_remote_groups(&self, groups: impl IntoIterator<Item = GroupId>) {
        let Some(outbox) = self.outbox.get() else { return };
        let now = Instant::now();
        let mut remote = outbox.remote.write().unwrap_or_else(|poison| poison.into_inner());
        remote.retain(|_, until| *until > now);
        for group_id in groups {
            remote.insert(group_id, now + REMOTE_PRESENCE);
        }
    }

    /// True when events published here also go to other kernels (an outbox is set): an event every kernel makes
    /// on its own, such as one learnt from the database, need then not be published by each of them.
    pub fn forwards(&self) -> bool {
        self.outbox.get().is_some()
    }

    /// True when anyone may want events of the group: a local subscriber, or another kernel's. Events about
    /// deliveries need not be made otherwise.
    pub fn has_subscribers(&self, group_id: &GroupId) -> bool {
        self.groups.read().unwrap_or_else(|poison| poison.into_inner()).contains_key(group_id)
            || self.outbox.get().is_some_and(|outbox| outbox.wants(group_id))
    }

    /// Offers an event to every matching subscriber of its group, without waiting for any of them.
    pub fn publish(&self, event: &SharedEvent) {
        self.publish_to(event, None);
    }

    /// Offers an event like [`EventBus::publish`]; with a `recipient`, only that device's sessions (and admin
    /// subscribers) may receive it, whatever its name. This addresses events whose name cannot carry the device
    /// id, such as a Blynk pin response named exactly after the pin.
    pub fn publish_to(&self, event: &SharedEvent, recipient: Option<&DeviceId>) {
        self.publish_received(event, recipient);
        if let Some(outbox) = self.outbox.get()
            && outbox.wants(&event.group_id)
            && let Err(mpsc::error::TrySendError::Full(_)) = outbox.sender.try_send((event.clone(), recipient.cloned()))
        {
            outbox.num_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Offers an event received from another kernel to local subscribers only, like [`EventBus::publish_to`]
    /// (it is not sent back out).
    pub fn publish_received(&self, event: &SharedEvent, recipient: Option<&DeviceId>) {
        let groups = self.groups.read().unwrap_or_else(|poison| poison.into_inner());
        let Some(subscriptions) = groups.get(&event.group_id) else {
            return;
        };
        let addressed = recipient.map(DeviceId::as_str).or_else(|| event.addressed_device());
        let mut offered: Vec<u64> = Vec::new();
        for subscription in subscriptions {
            let sink = &subscription.sink;
            if !event.name.starts_with(subscription.prefix.as_str()) || offered.contains(&sink.id) {
                continue;
            }
            if let (Some(addressed), Some(device)) = (addressed, &sink.device_id)
                && device.as_str() != addressed
            {
                continue;
            }
            offered.push(sink.id);
            if let Err(mpsc::error::TrySendError::Full(_)) = sink.sender.try_send(event.clone()) {
                sink.num_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;

    fn event(group: &GroupId, name: &str) -> SharedEvent {
        Arc::new(Event::new(group.clone(), None, name.into(), String::new(), 0))
    }

    #[tokio::test]
    async fn subscribers_get_their_prefixes_once_and_addressed_events_only_when_they_are_the_device() {
        let bus = Arc::new(EventBus::default());
        let group = GroupId::generate();
        let (alice, bob) = (DeviceId::generate(), DeviceId::generate());
        let (alice_sink, mut alice_rx) = bus.sink(group.clone(), Some(alice.clone()), 8);
        let (bob_sink, mut bob_rx) = bus.sink(group.clone(), Some(bob.clone()), 8);
        let (admin_sink, mut admin_rx) = bus.sink(group.clone(), None, 8);
        alice_sink.subscribe("");
        alice_sink.subscribe("temp");
        bob_sink.subscribe("");
        admin_sink.subscribe("");

        bus.publish(&event(&group, "temp"));
        bus.publish(&event(&group, &format!("{alice}/hook-response/x/0")));
        bus.publish(&event(&GroupId::generate(), "temp"));

        assert_eq!(alice_rx.recv().await.unwrap().name, "temp");
        assert!(alice_rx.recv().await.unwrap().name.starts_with(alice.as_str()));
        assert!(alice_rx.try_recv().is_err(), "each event once per sink");
        assert_eq!(bob_rx.recv().await.unwrap().name, "temp");
        assert!(bob_rx.try_recv().is_err(), "bob never sees alice's responses");
        assert_eq!(admin_rx.recv().await.unwrap().name, "temp");
        assert!(admin_rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn an_event_with_a_recipient_reaches_only_that_device_and_admins_whatever_its_name() {
        let bus = Arc::new(EventBus::default());
        let group = GroupId::generate();
        let (alice, bob) = (DeviceId::generate(), DeviceId::generate());
        let (alice_sink, mut alice_rx) = bus.sink(group.clone(), Some(alice.clone()), 8);
        let (bob_sink, mut bob_rx) = bus.sink(group.clone(), Some(bob), 8);
        let (admin_sink, mut admin_rx) = bus.sink(group.clone(), None, 8);
        for sink in [&alice_sink, &bob_sink, &admin_sink] {
            sink.subscribe("V0");
        }

        bus.publish_to(&event(&group, "V0"), Some(&alice));

        assert_eq!(alice_rx.recv().await.unwrap().name, "V0");
        assert_eq!(admin_rx.recv().await.unwrap().name, "V0");
        assert!(bob_rx.try_recv().is_err(), "bob is not the recipient");
    }

    #[test]
    fn a_full_queue_counts_drops_and_a_dropped_guard_unsubscribes() {
        let bus = Arc::new(EventBus::default());
        let group = GroupId::generate();
        let (guard, _rx) = bus.sink(group.clone(), None, 1);
        guard.subscribe("");
        for _ in 0..3 {
            bus.publish(&event(&group, "x"));
        }
        assert_eq!(guard.sink().take_dropped(), 2);
        assert_eq!(guard.sink().take_dropped(), 0);
        assert!(bus.has_subscribers(&group));
        drop(guard);
        assert!(bus.groups.read().unwrap().is_empty());
        assert!(!bus.has_subscribers(&group));
    }

    #[tokio::test]
    async fn with_an_outbox_events_of_groups_other_kernels_want_leave_once_and_received_ones_stay_local() {
        let bus = Arc::new(EventBus::default());
        let (group, unwanted) = (GroupId::generate(), GroupId::generate());
        let Forwarding { mut outbox, num_dropped, announce } = bus.forward(2).unwrap();
        assert!(bus.forward(2).is_none(), "one outbox");
        assert!(!bus.has_subscribers(&group), "no kernel subscribes yet");
        bus.note_remote_groups([group.clone()]);
        assert!(bus.has_subscribers(&group), "another kernel subscribes");
        assert!(!bus.has_subscribers(&unwanted));
        let (local, mut local_rx) = bus.sink(group.clone(), None, 8);
        local.subscribe("");
        tokio::time::timeout(Duration::from_secs(5), announce.notified()).await.expect("a new group is announced");
        assert_eq!(bus.local_groups(), std::slice::from_ref(&group));
        let alice = DeviceId::generate();

        bus.publish_to(&event(&group, "V0"), Some(&alice));
        bus.publish(&event(&unwanted, "nobody-elsewhere"));
        bus.publish_received(&event(&group, "from-elsewhere"), None);
        bus.publish(&event(&group, "second"));
        bus.publish(&event(&group, "over"));

        let (sent, recipient) = outbox.recv().await.unwrap();
        assert_eq!((sent.name.as_str(), recipient), ("V0", Some(alice)));
        assert_eq!(outbox.recv().await.unwrap().0.name, "second");
        assert!(outbox.try_recv().is_err(), "a received event is not sent again; the full outbox dropped one");
        assert_eq!(num_dropped.load(Ordering::Relaxed), 1);
        let names: Vec<String> = (0..4).map(|_| local_rx.try_recv().unwrap().name.clone()).collect();
        assert_eq!(names, ["V0", "from-elsewhere", "second", "over"], "local subscribers get everything");
    }
}
