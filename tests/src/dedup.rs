//! [`DedupReceiver`]: a real HTTP destination on a random loopback port for the cluster's chaos test. It keys
//! what it receives on the `webhook-id` header (the delivery, the same on every attempt), so that the test can
//! count deliveries, duplicates and requests in flight. Each request waits a little before its answer (so that some
//! are in flight whenever a kernel dies), and on paths under `/flaky` the first request of some deliveries is
//! answered 503 (so that they are retried).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// One request and what it was answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path (which webhook sent it).
    pub path: String,
    /// The `webhook-id` header: the delivery.
    pub webhook_id: String,
    /// The body (the tests send the event id).
    pub body: String,
    /// When it arrived.
    pub received_at: Instant,
    /// When its answer was sent, and its status; `None` while in flight.
    pub answered: Option<(Instant, u16)>,
}

impl Seen {
    /// Whether it was answered with a 2xx status.
    pub fn succeeded(&self) -> bool {
        matches!(self.answered, Some((_, status)) if (200..300).contains(&status))
    }

    /// Whether it had arrived and was not answered yet at `at`.
    pub fn in_flight_at(&self, at: Instant) -> bool {
        self.received_at <= at && self.answered.is_none_or(|(answered_at, _)| answered_at > at)
    }
}

#[derive(Debug, Default)]
struct State {
    seen: Mutex<Vec<Seen>>,
    failed_once: Mutex<HashSet<String>>,
}

/// The receiver. Dropping it stops the server.
#[derive(Debug)]
pub struct DedupReceiver {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DedupReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A number from 0 to 99 drawn from `text`, the same every time.
fn draw(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish() % 100
}

impl DedupReceiver {
    /// Starts it. Each answer waits 0 to `max_delay` (drawn from the `webhook-id`); under `/flaky`, the first
    /// request of `fail_first_percent` of the deliveries is answered 503.
    pub async fn start(max_delay: Duration, fail_first_percent: u64) -> DedupReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let base_url = format!("http://{}", listener.local_addr().expect("receiver address"));
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = accept_state.clone();
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let status = answer(&state, request, max_delay, fail_first_percent).await;
                        hyper::Response::builder().status(status).body(Full::new(Bytes::new()))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        DedupReceiver { base_url, state, task }
    }

    /// Every request received so far, in the order they arrived.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

/// Records the request, waits, records the answer and returns its status.
async fn answer(
    state: &State,
    request: hyper::Request<hyper::body::Incoming>,
    max_delay: Duration,
    fail_first_percent: u64,
) -> u16 {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    let webhook_id = parts.headers.get("webhook-id").and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
    let path = parts.uri.path().to_owned();
    let status = if path.starts_with("/flaky")
        && draw(&webhook_id) < fail_first_percent
        && state.failed_once.lock().unwrap().insert(webhook_id.clone())
    {
        503
    } else {
        200
    };
    let index = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen {
            path,
            webhook_id: webhook_id.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            received_at: Instant::now(),
            answered: None,
        });
        seen.len() - 1
    };
    tokio::time::sleep(max_delay.mul_f64(draw(&format!("delay {webhook_id}")) as f64 / 100.0)).await;
    state.seen.lock().unwrap()[index].answered = Some((Instant::now(), status));
    status
}
