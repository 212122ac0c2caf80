//! The gRPC server's accept loop: the stream of client connections that [`crate::run`] hands to tonic.
//!
//! Three bounds hold here, before HTTP/2 begins:
//! - **A cap on open connections** (`max_connections`). A connection takes a place before it is accepted and gives
//!   it back when it closes. At the cap the loop stops accepting: new connections wait in the kernel's listen
//!   backlog (and past it, their SYNs are dropped and retried by the client) until a place frees. Accepting only
//!   to close again would cost a descriptor and a round of system calls per attempt and tell a flood nothing it
//!   does not learn from a full backlog; waiting lets a real client in as soon as a place frees.
//! - **A handshake timeout** (`handshake_timeout_ms`): a connection must send the HTTP/2 connection preface (the
//!   24-byte `PRI * HTTP/2.0` magic and the header of its first frame, the client's SETTINGS) within the
//!   deadline, or it is closed. The timer is dropped once the preface is in; after that, HTTP/2 keepalive finds
//!   dead peers.
//! - **Back-off when accepting fails** for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): the loop logs once,
//!   waits [`ACCEPT_BACKOFF`] and tries again, instead of retrying at once (the pending connection stays ready, so
//!   an immediate retry spins a core), while the connections already open are served as before.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long the accept loop waits after an accept failed for lack of resources.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The client connection preface: the 24-byte magic, then at least a frame header (9 bytes) of the client's
/// first frame, which must be SETTINGS (RFC 9113, section 3.4).
const PREFACE_BYTES: usize = 24 + 9;

/// The accept loop's bounds.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a new connection has to send the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// TCP keepalive time (idle time before the first probe, and the interval between probes); none: off.
    pub tcp_keepalive: Option<Duration>,
}

/// The stream of accepted connections, each holding its place under the cap. It never yields an error: failures
/// to accept are handled (logged, backed off) inside.
pub fn incoming(
    listener: TcpListener,
    settings: ListenerSettings,
) -> impl Stream<Item = Result<ServerConnection, io::Error>> + Send + 'static {
    if let Some(limit) = open_file_limit()
        && settings.max_connections as u64 + RESERVED_DESCRIPTORS > limit
    {
        tracing::warn!(
            max_connections = settings.max_connections,
            open_file_limit = limit,
            "max_connections is near or over the open-file limit: connections will be refused by the system \
             (EMFILE) before the cap; raise the limit (ulimit -n) or lower max_connections"
        );
    }
    let places = Arc::new(Semaphore::new(settings.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let state = AcceptLoop { listener, places, settings, at_cap: false, failing: false };
    futures::stream::unfold(state, |mut state| async move {
        let connection = state.accept().await;
        Some((Ok(connection), state))
    })
}

/// The accept loop's state between two connections.
struct AcceptLoop {
    listener: TcpListener,
    places: Arc<Semaphore>,
    settings: ListenerSettings,
    /// Whether the cap was reached and not yet logged as left.
    at_cap: bool,
    /// Whether accepting fails for lack of resources, logged once until it works again.
    failing: bool,
}

impl AcceptLoop {
    /// Waits for a free place, then for a connection.
    async fn accept(&mut self) -> ServerConnection {
        let place = match self.places.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                if !self.at_cap {
                    self.at_cap = true;
                    tracing::warn!(
                        max_connections = self.settings.max_connections,
                        "connection cap reached; new connections wait in the listen backlog until one closes"
                    );
                }
                self.places.clone().acquire_owned().await.expect("the semaphore is never closed")
            }
        };
        if self.at_cap && self.places.available_permits() > 0 {
            self.at_cap = false;
            tracing::info!("below the connection cap again");
        }
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    if self.failing {
                        self.failing = false;
                        tracing::info!("accepting connections again");
                    }
                    self.configure(&stream);
                    return ServerConnection::new(stream, place, self.settings.handshake_timeout);
                }
                // The connection died in the backlog: nothing to wait for, take the next one.
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    if !self.failing {
                        self.failing = true;
                        tracing::warn!(
                            %error,
                            backoff_ms = ACCEPT_BACKOFF.as_millis() as u64,
                            "cannot accept connections (out of file descriptors?); retrying every backoff while \
                             open connections are served; raise the open-file limit or lower max_connections"
                        );
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// Sets the socket options of an accepted connection. Failures are logged: the connection works without them.
    fn configure(&self, stream: &TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        if let Some(time) = self.settings.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(time).with_interval(time);
            if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%error, "could not set TCP keepalive");
            }
        }
    }
}

/// Descriptors the kernel needs besides client connections (database, destinations, logs), for the start-up
/// warning only.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The soft limit on open files of this process, from `/proc/self/limits` (Linux); none elsewhere or unlimited.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// Errors of one pending connection (reset or aborted before it was accepted), not of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// An accepted client connection: its socket, its place under the cap (given back when it is dropped), and the
/// handshake deadline until the HTTP/2 preface has arrived.
pub struct ServerConnection {
    stream: TcpStream,
    handshake: Option<Handshake>,
    _place: OwnedSemaphorePermit,
}

/// The preface deadline and what has arrived towards it.
struct Handshake {
    deadline: Pin<Box<tokio::time::Sleep>>,
    num_bytes_read: usize,
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServerConnection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("in_handshake", &self.handshake.is_some())
            .finish()
    }
}

impl ServerConnection {
    fn new(stream: TcpStream, place: OwnedSemaphorePermit, handshake_timeout: Duration) -> Self {
        let handshake = Handshake { deadline: Box::pin(tokio::time::sleep(handshake_timeout)), num_bytes_read: 0 };
        ServerConnection { stream, handshake: Some(handshake), _place: place }
    }
}

impl Connected for ServerConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for ServerConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let num_filled_before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let Some(handshake) = &mut this.handshake else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                handshake.num_bytes_read += buf.filled().len() - num_filled_before;
                if handshake.num_bytes_read >= PREFACE_BYTES {
                    this.handshake = None;
                }
                Poll::Ready(Ok(()))
            }
            // Waiting for bytes: the deadline is polled too, so that its expiry wakes the connection's task.
            Poll::Pending => match handshake.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not send the HTTP/2 preface within the handshake timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for ServerConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_stream::StreamExt as _;

    fn settings(max_connections: usize, handshake_timeout: Duration) -> ListenerSettings {
        ListenerSettings { max_connections, handshake_timeout, tcp_keepalive: Some(Duration::from_secs(30)) }
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_preface_fails_its_read_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = Box::pin(incoming(listener, settings(10, Duration::from_millis(200))));
        let _client = TcpStream::connect(address).await.unwrap();
        let mut connection = incoming.next().await.unwrap().unwrap();
        let mut buffer = [0u8; 64];
        let error = connection.read(&mut buffer).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn the_deadline_is_dropped_once_the_preface_has_arrived() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = Box::pin(incoming(listener, settings(10, Duration::from_millis(200))));
        let mut client = TcpStream::connect(address).await.unwrap();
        let mut connection = incoming.next().await.unwrap().unwrap();
        client.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
        let mut buffer = [0u8; 64];
        let mut num_read = 0;
        while num_read < PREFACE_BYTES {
            num_read += connection.read(&mut buffer[num_read..]).await.unwrap();
        }
        assert!(connection.handshake.is_none());
        // After the deadline, the connection still reads.
        tokio::time::sleep(Duration::from_millis(400)).await;
        client.write_all(b"more").await.unwrap();
        assert_eq!(connection.read(&mut buffer).await.unwrap(), 4);
    }

    #[test]
    fn the_open_file_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|limit| limit > 0));
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_next_connection_is_accepted_only_when_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = Box::pin(incoming(listener, settings(2, Duration::from_secs(60))));
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        let first = incoming.next().await.unwrap().unwrap();
        let _second = incoming.next().await.unwrap().unwrap();
        let third = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
        assert!(third.is_err(), "the third waits while two are open");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), incoming.next()).await;
        assert!(matches!(third, Ok(Some(Ok(_)))), "and is accepted once one closes");
    }
}
