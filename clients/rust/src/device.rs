//! The device client: one-off publishes, and the long-lived `Connect` session with its subscriptions.

use std::collections::VecDeque;

use hookwire_proto::v1::device_message::Kind as DeviceMessageKind;
use hookwire_proto::v1::device_service_client::DeviceServiceClient;
use hookwire_proto::v1::kernel_message::Kind as KernelMessageKind;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;

use crate::connection::{self, AuthenticatedChannel};
use crate::error::code_from_name;
use crate::{Error, Result, proto};

/// How many messages a session queues for sending before its send methods wait.
const OUTGOING_QUEUE_CAPACITY: usize = 64;

/// A client of the device service, authenticated with a device token.
///
/// Cloning is cheap: clones share one connection, and each may open sessions of its own.
#[derive(Debug, Clone)]
pub struct DeviceClient {
    device_service: DeviceServiceClient<AuthenticatedChannel>,
}

impl DeviceClient {
    /// Connects to `endpoint` (`http://host:port`, `https://host:port` or `host:port`); every call will carry
    /// `device_token`, which also tells the server which device this is.
    ///
    /// Fails with [`Error::InvalidEndpoint`] or [`Error::InvalidToken`] before any network traffic, and with
    /// [`Error::Transport`] when the server cannot be reached.
    pub async fn connect(endpoint: &str, device_token: &str) -> Result<Self> {
        let (channel, bearer_token) = connection::connect(endpoint, device_token).await?;
        Ok(Self { device_service: DeviceServiceClient::with_interceptor(channel, bearer_token) })
    }

    /// Publishes one event with the unary `Publish` call and returns once it is durable. For occasional
    /// publishers; one that publishes often should keep a [`DeviceSession`] open.
    pub async fn publish(&self, name: impl Into<String>, data: impl Into<String>) -> Result<proto::PublishAck> {
        let request = proto::PublishRequest { name: name.into(), data: data.into(), ..Default::default() };
        Ok(self.device_service.clone().publish(request).await?.into_inner())
    }

    /// Opens a `Connect` session. An unknown token fails here, with `UNAUTHENTICATED`.
    pub async fn open_session(&self) -> Result<DeviceSession> {
        let (outgoing, outgoing_receiver) = mpsc::channel(OUTGOING_QUEUE_CAPACITY);
        let incoming = self.device_service.clone().connect(ReceiverStream::new(outgoing_receiver)).await?.into_inner();
        Ok(DeviceSession { outgoing, incoming, buffered: VecDeque::new(), last_seq: 0, num_dropped: 0 })
    }
}

/// A device's `Connect` session: publishes, subscriptions and pings go out; acks, errors, pongs and the events
/// subscribed to come in.
///
/// Messages that arrive while [`publish`](Self::publish) waits for its answer are kept, in order, for
/// [`next_message`](Self::next_message) and [`next_event`](Self::next_event). Dropping the session ends it.
#[derive(Debug)]
pub struct DeviceSession {
    outgoing: mpsc::Sender<proto::DeviceMessage>,
    incoming: Streaming<proto::KernelMessage>,
    buffered: VecDeque<proto::KernelMessage>,
    last_seq: u64,
    num_dropped: u64,
}

impl DeviceSession {
    /// Starts receiving the group's events whose name starts with `prefix` (empty: every event the device may
    /// see). The server does not confirm a subscription; a refused one comes back as a `DeviceError`.
    pub async fn subscribe(&self, prefix: impl Into<String>) -> Result<()> {
        self.send(DeviceMessageKind::Subscribe(proto::SubscribeRequest { prefix: prefix.into() })).await
    }

    /// Stops receiving the events of a prefix subscribed to before.
    pub async fn unsubscribe(&self, prefix: impl Into<String>) -> Result<()> {
        self.send(DeviceMessageKind::Unsubscribe(proto::UnsubscribeRequest { prefix: prefix.into() })).await
    }

    /// Asks the server for a `Pong` carrying `nonce`; it arrives through [`next_message`](Self::next_message).
    pub async fn ping(&self, nonce: u64) -> Result<()> {
        self.send(DeviceMessageKind::Ping(proto::Ping { nonce })).await
    }

    /// Sends a publish without waiting for its answer and returns its `seq` (1 for the session's first publish,
    /// then increasing), which the `PublishAck` or `DeviceError` answering it will carry.
    pub async fn send_publish(&mut self, name: impl Into<String>, data: impl Into<String>) -> Result<u64> {
        self.last_seq += 1;
        let seq = self.last_seq;
        let request = proto::PublishRequest { seq, name: name.into(), data: data.into(), ..Default::default() };
        self.send(DeviceMessageKind::Publish(request)).await?;
        Ok(seq)
    }

    /// Publishes an event and waits until it is durable. A refusal (a `DeviceError` with this publish's `seq`)
    /// becomes [`Error::Status`] with the code and message the server gave; the session stays usable.
    pub async fn publish(&mut self, name: impl Into<String>, data: impl Into<String>) -> Result<proto::PublishAck> {
        let seq = self.send_publish(name, data).await?;
        loop {
            let message = self.receive().await?.ok_or(Error::Closed)?;
            match message.kind {
                Some(KernelMessageKind::Ack(ack)) if ack.seq == seq => return Ok(ack),
                Some(KernelMessageKind::Error(device_error)) if device_error.seq == seq => {
                    return Err(device_error_to_status(device_error));
                }
                _ => self.buffered.push_back(message),
            }
        }
    }

    /// Returns the next message from the server as it came, kept ones first; `None` once the server has ended
    /// the session.
    pub async fn next_message(&mut self) -> Result<Option<proto::KernelMessage>> {
        match self.buffered.pop_front() {
            Some(message) => Ok(Some(message)),
            None => self.receive().await,
        }
    }

    /// Returns the next event subscribed to, kept ones first; `None` once the server has ended the session.
    ///
    /// Acks, pongs and overflow reports are skipped (see [`num_dropped`](Self::num_dropped)). A `DeviceError`
    /// (a refused subscription, or the refusal of a publish sent with [`send_publish`](Self::send_publish)) is
    /// returned as [`Error::Status`]; the session stays usable and the next call goes on with the next message.
    pub async fn next_event(&mut self) -> Result<Option<proto::Event>> {
        loop {
            let Some(message) = self.next_message().await? else {
                return Ok(None);
            };
            match message.kind {
                Some(KernelMessageKind::Event(event)) => return Ok(Some(event)),
                Some(KernelMessageKind::Error(device_error)) => {
                    return Err(device_error_to_status(device_error));
                }
                Some(KernelMessageKind::Ack(_) | KernelMessageKind::Pong(_) | KernelMessageKind::Overflow(_))
                | None => {}
            }
        }
    }

    /// Returns how many events the server dropped because this session did not read fast enough: the sum of
    /// the `Overflow` reports received so far.
    pub fn num_dropped(&self) -> u64 {
        self.num_dropped
    }

    /// Queues one message for the server; [`Error::Closed`] once the session's request stream is gone.
    async fn send(&self, kind: DeviceMessageKind) -> Result<()> {
        let message = proto::DeviceMessage { kind: Some(kind) };
        self.outgoing.send(message).await.map_err(|_| Error::Closed)
    }

    /// Reads one message off the wire, counting the events an `Overflow` reports as dropped.
    async fn receive(&mut self) -> Result<Option<proto::KernelMessage>> {
        let message = self.incoming.message().await?;
        if let Some(proto::KernelMessage { kind: Some(KernelMessageKind::Overflow(overflow)) }) = &message {
            self.num_dropped += overflow.num_dropped;
        }
        Ok(message)
    }
}

/// Turns a device error into the status the same failure would have on a unary call.
fn device_error_to_status(device_error: proto::DeviceError) -> Error {
    Error::Status(tonic::Status::new(code_from_name(&device_error.code), device_error.message))
}

#[cfg(test)]
mod tests {
    use hookwire_proto::v1::device_service_server::{DeviceService, DeviceServiceServer};
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Code, Request, Response, Status};

    use super::*;

    const DEVICE_TOKEN: &str = "device-token";

    /// A stand-in for the kernel's device service that answers a session's messages in a scripted way:
    /// - a publish named `too-big` is refused with `RESOURCE_EXHAUSTED`; any other publish is answered with an
    ///   `Overflow` of 2, the event itself when a subscribed prefix matches it, then its ack (`evt_<seq>`);
    /// - a subscription to `forbidden` is refused with `PERMISSION_DENIED` (seq 0);
    /// - a ping is answered with its pong.
    struct FakeKernel;

    fn check_token<T>(request: &Request<T>) -> Result<(), Status> {
        match request.metadata().get("authorization") {
            Some(value) if value == format!("Bearer {DEVICE_TOKEN}").as_str() => Ok(()),
            _ => Err(Status::unauthenticated("authorization: unknown device token")),
        }
    }

    fn answers(message: proto::DeviceMessage, prefixes: &mut Vec<String>) -> Vec<KernelMessageKind> {
        match message.kind {
            Some(DeviceMessageKind::Subscribe(subscribe)) if subscribe.prefix == "forbidden" => {
                vec![KernelMessageKind::Error(proto::DeviceError {
                    seq: 0,
                    code: "PERMISSION_DENIED".to_owned(),
                    message: "prefix: forbidden".to_owned(),
                })]
            }
            Some(DeviceMessageKind::Subscribe(subscribe)) => {
                prefixes.push(subscribe.prefix);
                Vec::new()
            }
            Some(DeviceMessageKind::Publish(publish)) if publish.name == "too-big" => {
                vec![KernelMessageKind::Error(proto::DeviceError {
                    seq: publish.seq,
                    code: "RESOURCE_EXHAUSTED".to_owned(),
                    message: "data: larger than 1024 bytes".to_owned(),
                })]
            }
            Some(DeviceMessageKind::Publish(publish)) => {
                let mut answers = vec![KernelMessageKind::Overflow(proto::Overflow { num_dropped: 2 })];
                if prefixes.iter().any(|prefix| publish.name.starts_with(prefix.as_str())) {
                    answers.push(KernelMessageKind::Event(proto::Event {
                        id: format!("evt_{}", publish.seq),
                        name: publish.name,
                        data: publish.data,
                        ..Default::default()
                    }));
                }
                answers.push(KernelMessageKind::Ack(proto::PublishAck {
                    seq: publish.seq,
                    event_id: format!("evt_{}", publish.seq),
                    num_deliveries: 0,
                }));
                answers
            }
            Some(DeviceMessageKind::Ping(ping)) => {
                vec![KernelMessageKind::Pong(proto::Pong { nonce: ping.nonce })]
            }
            Some(DeviceMessageKind::Unsubscribe(_)) | None => Vec::new(),
        }
    }

    #[tonic::async_trait]
    impl DeviceService for FakeKernel {
        type ConnectStream = ReceiverStream<Result<proto::KernelMessage, Status>>;

        async fn connect(
            &self,
            request: Request<Streaming<proto::DeviceMessage>>,
        ) -> Result<Response<Self::ConnectStream>, Status> {
            check_token(&request)?;
            let mut incoming = request.into_inner();
            let (outgoing, outgoing_receiver) = mpsc::channel(16);
            tokio::spawn(async move {
                let mut prefixes = Vec::new();
                while let Ok(Some(message)) = incoming.message().await {
                    for kind in answers(message, &mut prefixes) {
                        let answer = proto::KernelMessage { kind: Some(kind) };
                        if outgoing.send(Ok(answer)).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok(Response::new(ReceiverStream::new(outgoing_receiver)))
        }

        async fn publish(
            &self,
            request: Request<proto::PublishRequest>,
        ) -> Result<Response<proto::PublishAck>, Status> {
            check_token(&request)?;
            Ok(Response::new(proto::PublishAck {
                seq: 0,
                event_id: format!("evt_{}", request.into_inner().name),
                num_deliveries: 1,
            }))
        }
    }

    /// Serves the fake kernel on a free port and returns its endpoint, `127.0.0.1:<port>`.
    async fn start_fake_kernel() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(DeviceServiceServer::new(FakeKernel))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        endpoint
    }

    async fn open_session() -> DeviceSession {
        let endpoint = start_fake_kernel().await;
        let device = DeviceClient::connect(&endpoint, DEVICE_TOKEN).await.unwrap();
        device.open_session().await.unwrap()
    }

    #[tokio::test]
    async fn publish_returns_its_ack_and_keeps_the_events_that_came_before_it() {
        let mut session = open_session().await;
        session.subscribe("temp").await.unwrap();

        let ack = session.publish("temp", "21.5").await.unwrap();

        assert_eq!((ack.seq, ack.event_id.as_str()), (1, "evt_1"));
        let event = session.next_event().await.unwrap().unwrap();
        assert_eq!((event.name.as_str(), event.data.as_str()), ("temp", "21.5"));
        assert_eq!(session.num_dropped(), 2);
    }

    #[tokio::test]
    async fn a_refused_publish_is_a_status_with_the_servers_code_and_message() {
        let mut session = open_session().await;

        let error = session.publish("too-big", "x").await.unwrap_err();

        assert_eq!(error.code(), Some(Code::ResourceExhausted));
        assert_eq!(error.to_string(), "data: larger than 1024 bytes (RESOURCE_EXHAUSTED)");
        let ack = session.publish("temp", "21.5").await.unwrap();
        assert_eq!(ack.seq, 2);
    }

    #[tokio::test]
    async fn send_publish_numbers_publishes_from_one_and_their_acks_come_through_next_message() {
        let mut session = open_session().await;

        assert_eq!(session.send_publish("a", "").await.unwrap(), 1);
        assert_eq!(session.send_publish("b", "").await.unwrap(), 2);

        let mut acked_seqs = Vec::new();
        while acked_seqs.len() < 2 {
            let message = session.next_message().await.unwrap().unwrap();
            if let Some(KernelMessageKind::Ack(ack)) = message.kind {
                acked_seqs.push(ack.seq);
            }
        }
        assert_eq!(acked_seqs, vec![1, 2]);
        assert_eq!(session.num_dropped(), 4);
    }

    #[tokio::test]
    async fn next_event_skips_acks_pongs_and_overflows() {
        let mut session = open_session().await;
        session.subscribe("b").await.unwrap();
        session.ping(7).await.unwrap();
        session.send_publish("a", "not subscribed").await.unwrap();
        session.send_publish("b", "subscribed").await.unwrap();

        let event = session.next_event().await.unwrap().unwrap();

        assert_eq!(event.data, "subscribed");
    }

    #[tokio::test]
    async fn a_refused_subscription_comes_back_from_next_event() {
        let mut session = open_session().await;
        session.subscribe("forbidden").await.unwrap();

        let error = session.next_event().await.unwrap_err();

        assert_eq!(error.code(), Some(Code::PermissionDenied));
    }

    #[tokio::test]
    async fn a_ping_is_answered_with_its_nonce() {
        let mut session = open_session().await;
        session.ping(42).await.unwrap();

        let message = session.next_message().await.unwrap().unwrap();

        assert_eq!(message.kind, Some(KernelMessageKind::Pong(proto::Pong { nonce: 42 })));
    }

    #[tokio::test]
    async fn an_unknown_token_fails_when_the_session_opens() {
        let endpoint = start_fake_kernel().await;
        let device = DeviceClient::connect(&endpoint, "wrong-token").await.unwrap();

        let error = device.open_session().await.unwrap_err();

        assert_eq!(error.code(), Some(Code::Unauthenticated));
    }

    #[tokio::test]
    async fn the_unary_publish_sends_the_token() {
        let endpoint = start_fake_kernel().await;
        let device = DeviceClient::connect(&endpoint, DEVICE_TOKEN).await.unwrap();

        let ack = device.publish("temp", "21.5").await.unwrap();

        assert_eq!(ack.event_id, "evt_temp");
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        drop(listener);

        let error = DeviceClient::connect(&endpoint, DEVICE_TOKEN).await.unwrap_err();

        assert!(matches!(error, Error::Transport(_)), "{error:?}");
    }
}
