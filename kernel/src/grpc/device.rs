//! The device service: `Connect` hands the session to a device actor; `Publish` runs the same publish path for a
//! single event and answers once it is durable.

use crate::Kernel;
use futures::{Stream, StreamExt};
use hookwire_actors::actors::device::{SessionEnd, prepare_publish};
use hookwire_actors::actors::registry::DeviceSession;
use hookwire_actors::domain::event::PublishError;
use hookwire_actors::services::journal::{AckTarget, JournalEntry};
use hookwire_proto::v1 as proto;
use hookwire_proto::v1::device_service_server::DeviceService;
use hookwire_proto::v1::{KernelMessage, kernel_message};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tonic::{Request, Response, Status, Streaming};

/// The device service.
#[derive(Debug, Clone)]
pub struct DeviceApi {
    kernel: Arc<Kernel>,
}

impl DeviceApi {
    /// Serves `kernel`.
    pub fn new(kernel: Arc<Kernel>) -> Self {
        DeviceApi { kernel }
    }
}

/// What a device session streams back.
pub type SessionStream = Pin<Box<dyn Stream<Item = Result<KernelMessage, Status>> + Send>>;

fn publish_status(error: PublishError) -> Status {
    error.code().status(error.to_string())
}

/// Merges a session's acks and subscribed events into one stream. It ends when the device actor stops (its
/// outbound channel closes), with the status the actor left when it ended the session itself; dropped events are
/// reported with an `Overflow` before the next event.
fn session_stream(session: DeviceSession) -> SessionStream {
    Box::pin(Session { session, events_open: true, pending: None, done: false })
}

/// What the device actor reads: the decoded messages of the stream, and a frame that does not decode as the
/// reason to end the session. A transport error (the device went away) just ends it.
fn inbound(message: Result<proto::DeviceMessage, Status>) -> Option<Result<proto::DeviceMessage, SessionEnd>> {
    match message {
        Ok(message) => Some(Ok(message)),
        Err(status) if status.code() == tonic::Code::InvalidArgument => Some(Err(SessionEnd {
            code: hookwire_proto::ErrorCode::InvalidArgument,
            message: status.message().to_owned(),
        })),
        Err(_) => None,
    }
}

/// The stream of [`session_stream`], written out rather than made with `unfold` and `select!`: it is kept for as
/// long as the device stays connected, and the generated future was about 1 KiB per idle device, this 0.2.
struct Session {
    session: DeviceSession,
    events_open: bool,
    /// An event held back while the `Overflow` before it goes out.
    pending: Option<KernelMessage>,
    /// True once the stream has ended with the status the actor left.
    done: bool,
}

impl Stream for Session {
    type Item = Result<KernelMessage, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // The actor ended the session (a device that does not read, a bad frame): what is still queued is
        // dropped, and the status tells the device why.
        if let Some(end) = this.session.ended.get() {
            this.done = true;
            return Poll::Ready(Some(Err(end.code.status(end.message.clone()))));
        }
        if let Some(message) = this.pending.take() {
            return Poll::Ready(Some(Ok(message)));
        }
        // Acks and errors first: they answer the device's own publishes.
        if let Poll::Ready(message) = this.session.outbound.poll_recv(cx) {
            return match (message, this.session.ended.get()) {
                (Some(message), _) => Poll::Ready(Some(Ok(*message))),
                (None, Some(end)) => {
                    this.done = true;
                    Poll::Ready(Some(Err(end.code.status(end.message.clone()))))
                }
                (None, None) => Poll::Ready(None),
            };
        }
        while this.events_open {
            match this.session.events.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    let message = KernelMessage { kind: Some(kernel_message::Kind::Event(event.to_proto())) };
                    let num_dropped = this.session.num_dropped.swap(0, Ordering::Relaxed);
                    if num_dropped == 0 {
                        return Poll::Ready(Some(Ok(message)));
                    }
                    this.pending = Some(message);
                    let overflow = proto::Overflow { num_dropped };
                    return Poll::Ready(Some(Ok(KernelMessage {
                        kind: Some(kernel_message::Kind::Overflow(overflow)),
                    })));
                }
                Poll::Ready(None) => this.events_open = false,
                Poll::Pending => break,
            }
        }
        Poll::Pending
    }
}

#[tonic::async_trait]
impl DeviceService for DeviceApi {
    type ConnectStream = SessionStream;

    async fn connect(
        &self,
        request: Request<Streaming<proto::DeviceMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let device = self.kernel.devices.authenticate(&self.kernel.store, request.metadata()).await?;
        // The first error ends what the actor reads (tonic's stream ends there anyway).
        let inbound = request
            .into_inner()
            .map(inbound)
            .take_while(|message| futures::future::ready(message.is_some()))
            .filter_map(futures::future::ready)
            .boxed();
        let session = self
            .kernel
            .services
            .registry
            .start_device(device.profile, device.group_id, inbound)
            .map_err(|refused| hookwire_proto::ErrorCode::ResourceExhausted.status(refused.to_string()))?;
        Ok(Response::new(session_stream(session)))
    }

    async fn publish(&self, request: Request<proto::PublishRequest>) -> Result<Response<proto::PublishAck>, Status> {
        let device = self.kernel.devices.authenticate(&self.kernel.store, request.metadata()).await?;
        let services = &self.kernel.services;
        let prepared =
            prepare_publish(services, &device.profile, &device.group_id, request.into_inner(), &mut Vec::new())
                .map_err(publish_status)?
                .admit()
                .await;
        let ack = proto::PublishAck {
            seq: 0,
            event_id: prepared.record.event.id.to_string(),
            num_deliveries: u32::try_from(prepared.record.deliveries.len()).unwrap_or(u32::MAX),
        };
        let (reply, durable) = tokio::sync::oneshot::channel();
        let entry = JournalEntry::Event { record: prepared.record, ack: AckTarget::Reply(reply) };
        if services.journal.append(entry).await.is_err() {
            return Err(publish_status(PublishError::Unavailable("the kernel is shutting down".into())));
        }
        prepared.launch.run(services);
        match durable.await {
            Ok(Ok(())) => Ok(Response::new(ack)),
            Ok(Err(error)) => Err(publish_status(error)),
            Err(_) => Err(publish_status(PublishError::Unavailable("the kernel is shutting down".into()))),
        }
    }
}
