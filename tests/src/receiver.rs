//! [`FakeReceiver`]: a real HTTP server on a random loopback port that records every request it receives and
//! answers what the test tells it to. It speaks HTTP/1.1 and HTTP/2, over plain TCP ([`FakeReceiver::start`]) or
//! over TLS with a self-signed certificate ([`FakeReceiver::start_tls`], ALPN `h2` and `http/1.1`), and can
//! misbehave: answer late ([`Reply::delay`]) or reset the connection instead of answering
//! ([`FakeReceiver::reset_connections`]).

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Bytes,
    /// The HTTP version it came over.
    pub version: http::Version,
    /// When it arrived.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body decoded as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The query string decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or_default().as_bytes()).into_owned().collect()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", self.body))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the receiver answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Default for Reply {
    fn default() -> Self {
        Reply { status: 200, body: Bytes::new(), headers: Vec::new(), delay: Duration::ZERO }
    }
}

#[derive(Debug, Default)]
struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    reply: Mutex<Reply>,
    arrived: Notify,
    /// Record each request, then reset its connection instead of answering.
    reset: AtomicBool,
}

/// The receiver. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeReceiver {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeReceiver {
    /// Starts a receiver answering 200 with an empty body; its `base_url` is `http://127.0.0.1:PORT`.
    pub async fn start() -> FakeReceiver {
        FakeReceiver::launch(None).await
    }

    /// Starts a receiver like [`FakeReceiver::start`] that serves TLS with a freshly made self-signed certificate
    /// (for `127.0.0.1` and `localhost`, so no public root verifies it); its `base_url` is
    /// `https://127.0.0.1:PORT`. It offers `h2` and `http/1.1` by ALPN.
    pub async fn start_tls() -> FakeReceiver {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a self-signed certificate");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("a server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        FakeReceiver::launch(Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn launch(tls: Option<TlsAcceptor>) -> FakeReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{}", listener.local_addr().expect("receiver address"));
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if accept_state.reset.load(Ordering::SeqCst) {
                    // Closing a socket with a zero linger sends a TCP reset instead of a clean end of stream.
                    let _ = stream.set_zero_linger();
                }
                let state = accept_state.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, state).await,
                        // A client that refuses the certificate ends the handshake: nothing to serve.
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, state).await;
                            }
                        }
                    }
                });
            }
        });
        FakeReceiver { base_url, state, task }
    }

    /// From now on, reads each request on connections accepted later, records it, and resets the connection
    /// (TCP RST) without answering.
    pub fn reset_connections(&self) {
        self.state.reset.store(true, Ordering::SeqCst);
    }

    /// Sets what the receiver answers from now on.
    pub fn reply_with(&self, reply: Reply) {
        *self.state.reply.lock().unwrap() = reply;
    }

    /// Answers `status` with `body` from now on.
    pub fn respond(&self, status: u16, body: impl Into<Bytes>) {
        self.reply_with(Reply { status, body: body.into(), ..Reply::default() });
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests have arrived, or `timeout`; returns what arrived.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests();
            }
        }
    }

    /// Waits for the first request, panicking with a clear message when none comes within 10 s.
    pub async fn first_request(&self) -> RecordedRequest {
        self.wait_for(1, Duration::from_secs(10))
            .await
            .into_iter()
            .next()
            .expect("the receiver got no request within 10 s")
    }
}

/// Serves one connection, HTTP/1.1 or HTTP/2, recording every request and answering the current [`Reply`].
async fn serve(io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, state: Arc<State>) {
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
            let reply = state.reply.lock().unwrap().clone();
            state.requests.lock().unwrap().push(RecordedRequest {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers,
                body,
                version: parts.version,
                received_at: Instant::now(),
            });
            state.arrived.notify_waiters();
            if state.reset.load(Ordering::SeqCst) {
                // A service error makes hyper drop the connection unanswered; the zero linger turns that into a reset.
                return Err(std::io::Error::other("resetting the connection as told"));
            }
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            let mut response = hyper::Response::builder().status(reply.status);
            for (name, value) in &reply.headers {
                response = response.header(name, value);
            }
            Ok(response.body(Full::new(reply.body)).expect("valid reply"))
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
