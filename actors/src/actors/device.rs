//! [`DeviceActor`]: one per connected device session. It reads the device's `Connect` stream (publishes,
//! subscriptions, pings), stamps and validates each event, matches it against the group's webhook index
//! snapshot, queues the event and its deliveries to the journal (which acks once they are durable), hands each
//! delivery to its webhook actor, and publishes the event on the bus. It never talks to a destination.
//!
//! The registry starts it with the inbound stream; it answers on an outbound queue the kernel streams back.
//! The publish path is also used by the unary `Publish` call, through [`prepare_publish`].
//!
//! The outbound queue is bounded ([`crate::actors::registry::ActorSettings::device_outbound_capacity`]): every inbound
//! message takes one place in it before it is handled (a publish keeps its place until the journal answers it).
//! When the queue is full the actor stops reading the device's stream, so HTTP/2 flow control holds the device
//! back; a device that frees no place for [`crate::actors::registry::ActorSettings::device_stall_timeout`] has its
//! session ended with `RESOURCE_EXHAUSTED`.

use crate::actors::messages::{Disconnect, Dispatch};
use crate::actors::registry::Services;
use crate::domain::definition::CompiledWebhook;
use crate::domain::event::{Event, PublishError, SharedEvent, check_publisher, validate_publish};
use crate::domain::ids::{DeliveryId, GroupId};
use crate::domain::request::{ContextNeeds, DeviceProfile, render_context_for};
use crate::services::bus::SinkGuard;
use crate::services::journal::{AckTarget, DeliveryRecord, EventRecord, JournalEntry, nack};
use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, StreamHandler, WrapFuture};
use hookwire_proto::ErrorCode;
use hookwire_proto::v1::{DeviceError, DeviceMessage, KernelMessage, Pong, device_message, kernel_message};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// A place reserved in a device session's bounded outbound queue, for the one answer (ack, error or pong) to one
/// message of the device: whoever answers (the actor, or the journal once a publish is durable) never waits and
/// never finds the queue full. Messages are boxed so that the queue's first block (32 slots, allocated with the
/// queue and kept for the session's life) is 256 bytes per idle device rather than 32 whole messages (about 5 KiB).
pub type Outbound = mpsc::OwnedPermit<Box<KernelMessage>>;

/// Why the kernel ended a session: the session's stream ends with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// The status code.
    pub code: ErrorCode,
    /// The status message, naming what the device did.
    pub message: String,
}

/// Where a session's actor leaves the reason it ended the session, for the stream the kernel answers with.
pub type SessionEndCell = Arc<OnceLock<SessionEnd>>;

/// What the actor reads from the device: a message, or the reason the stream cannot go on (a frame that does not
/// decode), which ends the session with that reason.
pub type Inbound = Result<DeviceMessage, SessionEnd>;

/// The most prefixes one session may subscribe to.
pub const MAX_SUBSCRIPTIONS: usize = 32;

/// A publish ready to queue: the journal record, and what to do once it is queued.
#[derive(Debug)]
pub struct PreparedPublish {
    /// What the journal writes.
    pub record: EventRecord,
    /// What happens after the record is queued.
    pub launch: Launch,
}

impl PreparedPublish {
    /// True when every delivery found a place among its webhook's deliveries in memory.
    pub fn is_admitted(&self) -> bool {
        self.launch.dispatches.iter().all(|dispatch| dispatch.admission.is_some())
    }

    /// Waits for the places its deliveries did not find at once (a webhook with
    /// [`crate::domain::definition::MAX_DELIVERIES_IN_MEMORY`] deliveries not yet finished).
    pub async fn admit(mut self) -> Self {
        for dispatch in &mut self.launch.dispatches {
            if dispatch.admission.is_none() {
                dispatch.admission = Some(dispatch.webhook.runtime.admit().await);
            }
        }
        self
    }
}

/// The deliveries and bus publication of an event, started once its record is queued to the journal (so that
/// attempt records always follow the event's own record).
#[derive(Debug)]
pub struct Launch {
    event: SharedEvent,
    dispatches: Vec<Dispatch>,
}

impl Launch {
    /// Publishes the event on the bus, then hands each delivery to its webhook actor (in that order, so that a
    /// subscriber sees the event before the `hook-*` events of its deliveries).
    pub fn run(self, services: &Services) {
        services.bus.publish(&self.event);
        for dispatch in self.dispatches {
            services.registry.webhook(&dispatch.webhook.id).do_send(dispatch);
        }
    }
}

/// Validates and stamps an event, and matches it against its group's webhooks. `matched` is a scratch buffer
/// the caller keeps between calls.
pub fn prepare_publish(
    services: &Services,
    profile: &DeviceProfile,
    group_id: &GroupId,
    request: hookwire_proto::v1::PublishRequest,
    matched: &mut Vec<Arc<CompiledWebhook>>,
) -> Result<PreparedPublish, PublishError> {
    validate_publish(&request.name, &request.data, services.settings.max_data_bytes)?;
    check_publisher(&request.name, profile.id.as_ref())?;
    let event = Arc::new(Event::new(group_id.clone(), profile.id.clone(), request.name, request.data, request.ttl));
    matched.clear();
    if let Some(index) = services.index.group(group_id) {
        index.matching_into(&event.name, profile.id.as_ref(), matched);
    }
    let mut deliveries = Vec::with_capacity(matched.len());
    let mut dispatches = Vec::with_capacity(matched.len());
    if !matched.is_empty() {
        let needs = matched.iter().fold(ContextNeeds::NONE, |needs, webhook| needs.union(webhook.context_needs));
        let context = Arc::new(render_context_for(&event, profile, needs));
        for webhook in matched.drain(..) {
            let delivery_id = DeliveryId::generate();
            deliveries.push(DeliveryRecord { id: delivery_id.clone(), webhook_id: webhook.id.clone() });
            let admission = webhook.runtime.try_admit();
            dispatches.push(Dispatch {
                delivery_id,
                webhook,
                event: event.clone(),
                context: context.clone(),
                attempt: 1,
                admission,
            });
        }
    }
    Ok(PreparedPublish {
        record: EventRecord { event: event.clone(), deliveries },
        launch: Launch { event, dispatches },
    })
}

/// The actor.
pub struct DeviceActor {
    session_id: u64,
    profile: Arc<DeviceProfile>,
    group_id: GroupId,
    services: Arc<Services>,
    outbound: mpsc::Sender<Box<KernelMessage>>,
    ended: SessionEndCell,
    sink: SinkGuard,
    subscriptions: Vec<String>,
    matched: Vec<Arc<CompiledWebhook>>,
}

impl DeviceActor {
    /// Makes the actor of one session.
    pub fn new(
        session_id: u64,
        profile: Arc<DeviceProfile>,
        group_id: GroupId,
        services: Arc<Services>,
        outbound: mpsc::Sender<Box<KernelMessage>>,
        ended: SessionEndCell,
        sink: SinkGuard,
    ) -> Self {
        DeviceActor {
            session_id,
            profile,
            group_id,
            services,
            outbound,
            ended,
            sink,
            subscriptions: Vec::new(),
            matched: Vec::new(),
        }
    }

    /// Handles one message of the device, with the place its answer may take in the outbound queue.
    fn handle_message(&mut self, message: DeviceMessage, slot: Outbound, ctx: &mut Context<Self>) {
        match message.kind {
            Some(device_message::Kind::Publish(request)) => self.publish(request, slot, ctx),
            Some(device_message::Kind::Subscribe(request)) => {
                if request.prefix.len() > crate::domain::event::MAX_PREFIX_BYTES {
                    let message = format!("prefix: must be at most {} bytes", crate::domain::event::MAX_PREFIX_BYTES);
                    return refuse(slot, 0, ErrorCode::InvalidArgument, message);
                }
                if !self.subscriptions.contains(&request.prefix) {
                    if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                        return refuse(
                            slot,
                            0,
                            ErrorCode::ResourceExhausted,
                            format!("prefix: at most {MAX_SUBSCRIPTIONS} subscriptions per session"),
                        );
                    }
                    self.sink.subscribe(&request.prefix);
                    self.subscriptions.push(request.prefix);
                }
            }
            Some(device_message::Kind::Unsubscribe(request)) => {
                self.sink.unsubscribe(&request.prefix);
                self.subscriptions.retain(|prefix| prefix != &request.prefix);
            }
            Some(device_message::Kind::Ping(ping)) => {
                send(slot, kernel_message::Kind::Pong(Pong { nonce: ping.nonce }))
            }
            None => refuse(
                slot,
                0,
                ErrorCode::InvalidArgument,
                "kind: a message must set one of publish, subscribe, unsubscribe, ping".into(),
            ),
        }
    }

    fn publish(&mut self, request: hookwire_proto::v1::PublishRequest, slot: Outbound, ctx: &mut Context<Self>) {
        let seq = request.seq;
        let prepared = match prepare_publish(&self.services, &self.profile, &self.group_id, request, &mut self.matched)
        {
            Ok(prepared) => prepared,
            Err(error) => return refuse(slot, seq, error.code(), error.to_string()),
        };
        if prepared.is_admitted() {
            return self.queue(seq, prepared, slot, ctx);
        }
        // A webhook has as many deliveries in memory as it may: pause this session (not the kernel) until it has
        // room for this event's.
        ctx.wait(
            prepared.admit().into_actor(self).map(move |prepared, actor, ctx| actor.queue(seq, prepared, slot, ctx)),
        );
    }

    /// Queues a publish to the journal (which acks it once durable), then launches its deliveries.
    fn queue(&mut self, seq: u64, prepared: PreparedPublish, slot: Outbound, ctx: &mut Context<Self>) {
        let entry = JournalEntry::Event { record: prepared.record, ack: AckTarget::Stream { seq, outbound: slot } };
        match self.services.journal.try_append(entry) {
            Ok(()) => prepared.launch.run(&self.services),
            Err(mpsc::error::TrySendError::Full(entry)) => {
                // The journal is behind: pause this session (not the kernel) until its entry is queued.
                let journal = self.services.journal.clone();
                let launch = prepared.launch;
                ctx.wait(async move { journal.append(entry).await }.into_actor(self).map(move |queued, actor, _| {
                    match queued {
                        Ok(()) => launch.run(&actor.services),
                        Err(entry) => refuse_entry(entry),
                    }
                }));
            }
            Err(mpsc::error::TrySendError::Closed(entry)) => refuse_entry(entry),
        }
    }

    /// Ends a session whose device freed no place in its outbound queue for the whole stall timeout.
    fn end_stalled(&mut self, ctx: &mut Context<Self>) {
        let settings = &self.services.settings;
        let message = format!(
            "session: the device read none of the {} answers waiting on its stream for {} ms (device_stall_timeout_ms); session ended",
            settings.device_outbound_capacity,
            settings.device_stall_timeout.as_millis()
        );
        tracing::warn!(device_id = ?self.profile.id, session_id = self.session_id, "device session ended: it does not read its stream");
        let _ = self.ended.set(SessionEnd { code: ErrorCode::ResourceExhausted, message });
        actix::ActorContext::stop(ctx);
    }
}

fn send(slot: Outbound, kind: kernel_message::Kind) {
    let _ = slot.send(Box::new(KernelMessage { kind: Some(kind) }));
}

fn refuse(slot: Outbound, seq: u64, code: ErrorCode, message: String) {
    send(slot, kernel_message::Kind::Error(DeviceError { seq, code: code.as_str().to_owned(), message }));
}

fn refuse_entry(entry: JournalEntry) {
    if let JournalEntry::Event { ack, .. } = entry {
        nack(ack, PublishError::Unavailable("the kernel is shutting down".into()));
    }
}

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        tracing::debug!(device_id = ?self.profile.id, session_id = self.session_id, "device connected");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(device_id) = &self.profile.id {
            self.services.registry.device_stopped(device_id, self.session_id);
        }
        tracing::debug!(device_id = ?self.profile.id, session_id = self.session_id, "device disconnected");
    }
}

impl StreamHandler<Inbound> for DeviceActor {
    fn handle(&mut self, inbound: Inbound, ctx: &mut Self::Context) {
        let message = match inbound {
            Ok(message) => message,
            Err(end) => {
                tracing::debug!(device_id = ?self.profile.id, session_id = self.session_id, message = %end.message, "device session ended: bad frame");
                let _ = self.ended.set(end);
                return actix::ActorContext::stop(ctx);
            }
        };
        match self.outbound.clone().try_reserve_owned() {
            Ok(slot) => self.handle_message(message, slot, ctx),
            Err(mpsc::error::TrySendError::Full(outbound)) => {
                // The device reads its stream slower than it writes to it: read nothing more from it (HTTP/2 flow
                // control then holds it back) until its answers make room, and end the session if none is made
                // within the stall timeout.
                let stall_timeout = self.services.settings.device_stall_timeout;
                let reserve = async move { tokio::time::timeout(stall_timeout, outbound.reserve_owned()).await };
                ctx.wait(reserve.into_actor(self).map(move |reserved, actor, ctx| match reserved {
                    Ok(Ok(slot)) => actor.handle_message(message, slot, ctx),
                    Ok(Err(_)) => actix::ActorContext::stop(ctx),
                    Err(_) => actor.end_stalled(ctx),
                }));
            }
            // The session's stream is gone: nobody reads what this device is told any more.
            Err(mpsc::error::TrySendError::Closed(_)) => actix::ActorContext::stop(ctx),
        }
    }
}

impl Handler<Disconnect> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Disconnect, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}

#[cfg(test)]
mod tests {
    //! The device actor on the test's runtime with paused time, its journal played by the test.

    use super::*;
    use crate::actors::testing::services;
    use crate::domain::ids::DeviceId;
    use crate::domain::time::Instant;
    use hookwire_proto::v1::{Ping, PublishAck, PublishRequest};
    use std::time::Duration;

    /// A session: the actor reads `inbound`, answers on `outbound`; `ended` says why it ended the session.
    struct Session {
        inbound: mpsc::Sender<Inbound>,
        outbound: mpsc::Receiver<Box<KernelMessage>>,
        ended: SessionEndCell,
        journal: mpsc::Receiver<JournalEntry>,
        services: Arc<Services>,
    }

    fn session(configure: impl FnOnce(&mut crate::actors::registry::ActorSettings)) -> Session {
        let (services, journal) = services(configure);
        let device_id = DeviceId::generate();
        let profile = Arc::new(DeviceProfile { id: Some(device_id.clone()), ..DeviceProfile::default() });
        let group_id = GroupId::generate();
        let (inbound, inbound_receiver) = mpsc::channel::<Inbound>(16);
        let (outbound_sender, outbound) = mpsc::channel(services.settings.device_outbound_capacity);
        let (sink, _events) = services.bus.sink(group_id.clone(), Some(device_id), 16);
        let ended = SessionEndCell::default();
        let (actor_services, actor_ended) = (services.clone(), ended.clone());
        DeviceActor::create(move |ctx| {
            ctx.add_stream(futures::stream::unfold(inbound_receiver, |mut receiver| async move {
                receiver.recv().await.map(|message| (message, receiver))
            }));
            DeviceActor::new(1, profile, group_id, actor_services, outbound_sender, actor_ended, sink)
        });
        Session { inbound, outbound, ended, journal, services }
    }

    fn ping(nonce: u64) -> Inbound {
        Ok(DeviceMessage { kind: Some(device_message::Kind::Ping(Ping { nonce })) })
    }

    fn publish(seq: u64, name: &str) -> Inbound {
        let request = PublishRequest { seq, name: name.into(), data: "21".into(), ttl: 60 };
        Ok(DeviceMessage { kind: Some(device_message::Kind::Publish(request)) })
    }

    fn pong_nonce(message: &KernelMessage) -> Option<u64> {
        match &message.kind {
            Some(kernel_message::Kind::Pong(pong)) => Some(pong.nonce),
            _ => None,
        }
    }

    #[actix_rt::test]
    async fn a_publish_is_acked_by_the_journal_once_durable_and_never_holds_up_later_answers() {
        tokio::time::pause();
        let mut session = session(|_| {});
        session.inbound.send(publish(1, "temp")).await.unwrap();
        session.inbound.send(ping(7)).await.unwrap();

        let Some(JournalEntry::Event { record, ack: AckTarget::Stream { seq, outbound } }) =
            session.journal.recv().await
        else {
            panic!("the publish goes to the journal with its session's place for the ack");
        };
        assert_eq!((seq, record.event.name.as_str(), record.event.data.as_str()), (1, "temp", "21"));
        let answer = session.outbound.recv().await.unwrap();
        assert_eq!(pong_nonce(&answer), Some(7), "the ping is answered while the publish waits for the journal");
        assert!(session.outbound.try_recv().is_err(), "no ack before the journal has the publish");

        // The journal acks through the place the publish kept (as `journal::ack` does).
        let ack = PublishAck { seq, event_id: record.event.id.to_string(), num_deliveries: 0 };
        let _ = outbound.send(Box::new(KernelMessage { kind: Some(kernel_message::Kind::Ack(ack.clone())) }));
        let answer = session.outbound.recv().await.unwrap();
        assert_eq!(answer.kind, Some(kernel_message::Kind::Ack(ack)));
        session.services.registry.stop();
    }

    #[actix_rt::test]
    async fn a_device_that_reads_none_of_its_full_queue_is_ended_after_the_stall_timeout() {
        tokio::time::pause();
        let stall = Duration::from_secs(30);
        let mut session = session(|settings| {
            settings.device_outbound_capacity = 2;
            settings.device_stall_timeout = stall;
        });
        let start = Instant::now();
        for nonce in 1..=3 {
            session.inbound.send(ping(nonce)).await.unwrap();
        }

        // Nothing is read: the third ping finds the queue full, and the actor stops reading and ends the session.
        session.inbound.closed().await;
        assert_eq!(start.elapsed().as_secs(), stall.as_secs(), "ended at the stall timeout");
        let end = session.ended.get().expect("the session says why it ended");
        assert_eq!(end.code, ErrorCode::ResourceExhausted);
        assert!(end.message.contains("device_stall_timeout_ms"), "{}", end.message);
        let mut nonces = Vec::new();
        while let Some(answer) = session.outbound.recv().await {
            nonces.push(pong_nonce(&answer).unwrap());
        }
        assert_eq!(nonces, [1, 2], "the queue held two answers; the third message was never handled");
        session.services.registry.stop();
    }

    #[actix_rt::test]
    async fn a_device_that_reads_within_the_stall_timeout_keeps_its_session_and_gets_every_answer() {
        tokio::time::pause();
        let mut session = session(|settings| {
            settings.device_outbound_capacity = 2;
            settings.device_stall_timeout = Duration::from_secs(30);
        });
        for nonce in 1..=3 {
            session.inbound.send(ping(nonce)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(29)).await;

        let mut nonces = Vec::new();
        for _ in 0..3 {
            nonces.push(pong_nonce(&session.outbound.recv().await.unwrap()).unwrap());
        }
        assert_eq!(nonces, [1, 2, 3], "reading made room for the third answer");
        tokio::time::sleep(Duration::from_secs(60)).await;
        session.inbound.send(ping(4)).await.unwrap();
        assert_eq!(pong_nonce(&session.outbound.recv().await.unwrap()), Some(4), "the session goes on");
        assert!(session.ended.get().is_none());
        session.services.registry.stop();
    }
}
