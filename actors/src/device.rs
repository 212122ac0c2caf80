//! [`DeviceActor`]: one per connected device session. It reads the device's `Connect` stream (publishes,
//! subscriptions, pings), stamps and validates each event, matches it against the group's webhook index
//! snapshot, queues the event and its deliveries to the journal (which acks once they are durable), hands each
//! delivery to its webhook actor, and publishes the event on the bus. It never talks to a destination.
//!
//! The supervisor starts it with the inbound stream; it answers on an outbound channel the kernel streams back.
//! The publish path is also used by the unary `Publish` call, through [`prepare_publish`].

use crate::bus::SinkGuard;
use crate::definition::CompiledWebhook;
use crate::event::{Event, PublishError, SharedEvent, validate_publish};
use crate::ids::{DeliveryId, GroupId};
use crate::journal::{AckTarget, DeliveryRecord, EventRecord, JournalEntry, nack};
use crate::messages::{Disconnect, Dispatch};
use crate::request::{DeviceProfile, render_context};
use crate::supervisor::Services;
use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, StreamHandler, WrapFuture};
use hookwire_proto::v1::{DeviceError, DeviceMessage, KernelMessage, Pong, device_message, kernel_message};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A device session's outbound channel: acks, errors and pongs, boxed so that the channel's first block (32 slots,
/// allocated with the channel and kept for the session's life) is 256 bytes per idle device rather than 32 whole
/// messages (about 5 KiB).
pub type Outbound = mpsc::UnboundedSender<Box<KernelMessage>>;

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
    /// [`crate::definition::MAX_DELIVERIES_IN_MEMORY`] deliveries not yet finished).
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
            services.supervisor.webhook(&dispatch.webhook.id).do_send(dispatch);
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
    let event = Arc::new(Event::new(group_id.clone(), profile.id.clone(), request.name, request.data, request.ttl));
    matched.clear();
    if let Some(index) = services.index.group(group_id) {
        index.matching_into(&event.name, profile.id.as_ref(), matched);
    }
    let mut deliveries = Vec::with_capacity(matched.len());
    let mut dispatches = Vec::with_capacity(matched.len());
    if !matched.is_empty() {
        let context = Arc::new(render_context(&event, profile));
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
    outbound: Outbound,
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
        outbound: Outbound,
        sink: SinkGuard,
    ) -> Self {
        DeviceActor {
            session_id,
            profile,
            group_id,
            services,
            outbound,
            sink,
            subscriptions: Vec::new(),
            matched: Vec::new(),
        }
    }

    fn send(&self, kind: kernel_message::Kind) {
        let _ = self.outbound.send(Box::new(KernelMessage { kind: Some(kind) }));
    }

    fn refuse(&self, seq: u64, code: hookwire_proto::ErrorCode, message: String) {
        self.send(kernel_message::Kind::Error(DeviceError { seq, code: code.as_str().to_owned(), message }));
    }

    fn publish(&mut self, request: hookwire_proto::v1::PublishRequest, ctx: &mut Context<Self>) {
        let seq = request.seq;
        let prepared = match prepare_publish(&self.services, &self.profile, &self.group_id, request, &mut self.matched)
        {
            Ok(prepared) => prepared,
            Err(error) => return self.refuse(seq, error.code(), error.to_string()),
        };
        if prepared.is_admitted() {
            return self.queue(seq, prepared, ctx);
        }
        // A webhook has as many deliveries in memory as it may: pause this session (not the kernel) until it has
        // room for this event's.
        ctx.wait(prepared.admit().into_actor(self).map(move |prepared, actor, ctx| actor.queue(seq, prepared, ctx)));
    }

    /// Queues a publish to the journal (which acks it once durable), then launches its deliveries.
    fn queue(&mut self, seq: u64, prepared: PreparedPublish, ctx: &mut Context<Self>) {
        let entry = JournalEntry::Event {
            record: prepared.record,
            ack: AckTarget::Stream { seq, outbound: self.outbound.clone() },
        };
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
            self.services.supervisor.device_stopped(device_id, self.session_id);
        }
        tracing::debug!(device_id = ?self.profile.id, session_id = self.session_id, "device disconnected");
    }
}

impl StreamHandler<DeviceMessage> for DeviceActor {
    fn handle(&mut self, message: DeviceMessage, ctx: &mut Self::Context) {
        match message.kind {
            Some(device_message::Kind::Publish(request)) => self.publish(request, ctx),
            Some(device_message::Kind::Subscribe(request)) => {
                if request.prefix.len() > crate::event::MAX_PREFIX_BYTES {
                    return self.refuse(
                        0,
                        hookwire_proto::ErrorCode::InvalidArgument,
                        format!("prefix: must be at most {} bytes", crate::event::MAX_PREFIX_BYTES),
                    );
                }
                if !self.subscriptions.contains(&request.prefix) {
                    if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                        return self.refuse(
                            0,
                            hookwire_proto::ErrorCode::ResourceExhausted,
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
            Some(device_message::Kind::Ping(ping)) => self.send(kernel_message::Kind::Pong(Pong { nonce: ping.nonce })),
            None => self.refuse(
                0,
                hookwire_proto::ErrorCode::InvalidArgument,
                "kind: a message must set one of publish, subscribe, unsubscribe, ping".into(),
            ),
        }
    }
}

impl Handler<Disconnect> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Disconnect, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}
