//! What the actor tests share: services whose journal the test reads itself, webhooks and deliveries made from
//! JSON, and a destination on loopback that answers as it is told.
//!
//! The actor under test runs on the test's own runtime, where time is paused (`tokio::time::pause`): its timers
//! (retry delays, the rate quota, a device's stall timeout) fire as soon as nothing else can happen, at exactly
//! the virtual instant they were set for, so a test of a 30 s delay takes no real time and checks the delay to the
//! millisecond. Host actors and the destination run on threads of their own, on real time; while a request is in
//! flight the test's runtime has no timer to jump to, so its clock stands still until the answer comes back.

use crate::actors::host::default_tls_config;
use crate::actors::messages::Dispatch;
use crate::actors::registry::{ActorSettings, Services};
use crate::domain::definition::{CompiledWebhook, WebhookDefinition};
use crate::domain::egress::EgressPolicy;
use crate::domain::event::Event;
use crate::domain::ids::{DeliveryId, GroupId, WebhookId};
use crate::domain::request::{DeviceProfile, render_context};
use crate::domain::time::Instant;
use crate::services::journal::{AttemptRecord, Journal, JournalEntry, WebhookStateRecord};
use crate::services::ownership::Ownership;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Services on one arbiter thread, allowed to reach loopback, with `configure` applied; and the journal's entries.
pub(crate) fn services(configure: impl FnOnce(&mut ActorSettings)) -> (Arc<Services>, mpsc::Receiver<JournalEntry>) {
    let mut settings = ActorSettings { num_arbiters: 1, ..ActorSettings::default() };
    configure(&mut settings);
    let (journal, entries) = Journal::unstarted(1024);
    let egress = EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("a network")]);
    let tls = default_tls_config().expect("the TLS configuration");
    let services = Services::start(settings, journal, egress, tls, Arc::new(Ownership::default())).expect("services");
    (services, entries)
}

/// A webhook compiled from its JSON definition.
pub(crate) fn webhook(definition: serde_json::Value) -> Arc<CompiledWebhook> {
    let definition = WebhookDefinition::from_json(&definition.to_string()).expect("a valid definition");
    Arc::new(CompiledWebhook::compile(WebhookId::generate(), GroupId::generate(), definition).expect("it compiles"))
}

/// A first delivery of an event named after the webhook's prefix, as a device actor makes it.
pub(crate) fn dispatch(webhook: &Arc<CompiledWebhook>, data: &str) -> Dispatch {
    let name = webhook.definition.event.clone();
    let event = Arc::new(Event::new(webhook.group_id.clone(), None, name, data.to_owned(), 0));
    let context = Arc::new(render_context(&event, &DeviceProfile::default()));
    let admission = webhook.runtime.try_admit();
    Dispatch { delivery_id: DeliveryId::generate(), webhook: webhook.clone(), event, context, attempt: 1, admission }
}

/// What the journal was given, in order, with the virtual time it was given at.
pub(crate) struct JournalReader {
    entries: mpsc::Receiver<JournalEntry>,
    start: Instant,
    /// Webhook states journaled so far.
    pub states: Vec<WebhookStateRecord>,
}

impl JournalReader {
    /// Reads `entries` from now on; times are measured from now.
    pub(crate) fn new(entries: mpsc::Receiver<JournalEntry>) -> Self {
        JournalReader { entries, start: Instant::now(), states: Vec::new() }
    }

    /// The next attempt record and when (after the start) it was journaled, to the 10 ms below: each timer of tokio
    /// fires up to a millisecond late (its wheel rounds deadlines up), so three timers in a row make 30.003 s of
    /// 30 s. Webhook states journaled on the way are kept.
    pub(crate) async fn next_attempt(&mut self) -> (Duration, AttemptRecord) {
        loop {
            match self.entries.recv().await.expect("the journal is open") {
                JournalEntry::Attempt(attempt) => return (self.elapsed(), attempt),
                JournalEntry::WebhookState(state) => self.states.push(state),
                JournalEntry::Event { .. } => panic!("no event is published in these tests"),
            }
        }
    }

    /// The virtual time elapsed since the start, to the 10 ms below (as [`JournalReader::next_attempt`] says).
    pub(crate) fn elapsed(&self) -> Duration {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(millis / 10 * 10)
    }

    /// The next `count` attempts.
    pub(crate) async fn attempts(&mut self, count: usize) -> Vec<(Duration, AttemptRecord)> {
        let mut attempts = Vec::with_capacity(count);
        for _ in 0..count {
            attempts.push(self.next_attempt().await);
        }
        attempts
    }
}

/// One answer of the [`Destination`]: a status and headers.
pub(crate) type Answer = (u16, &'static [(&'static str, &'static str)]);

/// A destination on loopback, on a thread of its own: the `i`-th request gets the `i`-th answer of its script,
/// and the last answer repeats.
pub(crate) struct Destination {
    /// `http://127.0.0.1:port/`.
    pub url: String,
    num_requests: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Destination {
    /// Starts answering.
    pub(crate) fn start(script: &'static [Answer]) -> Destination {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}/", listener.local_addr().expect("an address"));
        let num_requests = Arc::new(AtomicUsize::new(0));
        let counted = num_requests.clone();
        let answers = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<Answer>>()));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let accept = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        let (counted, answers) = (counted.clone(), answers.clone());
                        tokio::spawn(async move {
                            let service =
                                hyper::service::service_fn(move |_: hyper::Request<hyper::body::Incoming>| {
                                    counted.fetch_add(1, Ordering::SeqCst);
                                    let (status, headers) = {
                                        let mut answers = answers.lock().expect("the script");
                                        if answers.len() > 1 { answers.pop_front() } else { answers.front().copied() }
                                    }
                                    .expect("a script of at least one answer");
                                    let mut response = hyper::Response::builder().status(status);
                                    for (name, value) in headers {
                                        response = response.header(*name, *value);
                                    }
                                    std::future::ready(response.body(http_body_util::Full::new(bytes::Bytes::new())))
                                });
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Destination { url, num_requests, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// Requests received so far.
    pub(crate) fn num_requests(&self) -> usize {
        self.num_requests.load(Ordering::SeqCst)
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
