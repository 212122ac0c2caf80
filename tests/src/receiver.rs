//! [`FakeReceiver`]: a real HTTP server on a random loopback port that records every request it receives and
//! answers what the test tells it to.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;

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
    /// Starts a receiver answering 200 with an empty body.
    pub async fn start() -> FakeReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let base_url = format!("http://{}", listener.local_addr().expect("receiver address"));
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = accept_state.clone();
                tokio::spawn(async move {
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
                                received_at: Instant::now(),
                            });
                            state.arrived.notify_waiters();
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = hyper::Response::builder().status(reply.status);
                            for (name, value) in &reply.headers {
                                response = response.header(name, value);
                            }
                            Ok::<_, std::convert::Infallible>(
                                response.body(Full::new(reply.body)).expect("valid reply"),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeReceiver { base_url, state, task }
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
