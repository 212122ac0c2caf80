//! [`HostActor`]: one per destination `scheme://host:port`, shared by every webhook of every group that targets
//! it. It owns the keep-alive connection pool (HTTP/1.1 and HTTP/2 by ALPN, TLS by rustls with the webpki roots),
//! caps the requests in flight to its host (the rest wait in its queue, so a slow host delays only its own work),
//! applies the connect and response timeouts, and classifies every failure into one error class.
//!
//! It also decides when its host sleeps (its [`CircuitBreaker`](crate::domain::breaker::CircuitBreaker)): while
//! errors outnumber successes it sends nothing and answers every request at once with [`ErrorClass::Sleeping`].
//! Webhooks that turned TLS verification off
//! (`rejectUnauthorized: false`) get a second client, built on first use, whose connections are never shared with
//! verified requests. With `https_only`, `http://` destinations are refused. Connections go straight to the host or
//! through the outbound proxy ([`crate::services::connector`]), under the egress rules either way.
//!
//! Webhook actors send it [`ExecuteAndReport`]; the outcome, an [`AttemptOutcome`], goes to the message's report.
//! Anyone may ask for its [`HostState`] with [`GetHostState`] (for metrics).
//!
//! Its [`HostActivity`] is shared with the registry, which reads it without a message to decide when the actor
//! is idle: nothing waiting or in flight, not asleep, and no request for `idle_timeout` (or every outcome so far
//! refused by the egress rules, which is no state worth keeping). The registry then drops its address; the actor
//! handles what is still in its mailbox and stops when no address is left. A destination refused before
//! connecting ([`refusal_before_connecting`]) gets no actor at all.

use crate::actors::messages::ExecuteAndReport;
use crate::domain::breaker::{BreakerSettings, BreakerState};
use crate::domain::egress::EgressPolicy;
use crate::domain::request::RenderedRequest;
use crate::domain::time;
use crate::domain::time::Instant;
use crate::services::connector::{EgressConnector, OutboundProxy};
use crate::services::metrics::HostMetrics;
use crate::services::shared_policy::SharedPolicy;
use activity::{is_asleep, lock};
use actix::{Actor, Context, Handler, Message, MessageResult, ResponseFuture, Supervised};
use bytes::{Bytes, BytesMut};
use class::{classify, sleep_kind, status_failure};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tls::{build_client, unverified_tls_config};

mod activity;
mod class;
#[cfg(test)]
mod tests;
mod tls;

pub use activity::HostActivity;
pub use class::ErrorClass;
pub use tls::default_tls_config;

/// The message of every attempt refused because its host sleeps (Particle's words).
pub const SLEEPING_MESSAGE: &str = "Sleeping, too many errors, please wait and try again";

/// A destination: `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostKey {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostKey {
    /// The destination of a URL (which must have an http or https scheme and a host).
    pub fn of(uri: &http::Uri) -> HostKey {
        let scheme = if uri.scheme_str() == Some("https") { "https" } else { "http" };
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        HostKey { scheme, host, port }
    }
}

impl HostKey {
    /// The destination its [`Display`](fmt::Display) form (`scheme://host:port`) names, if it names one.
    pub fn parse(text: &str) -> Option<HostKey> {
        let uri: http::Uri = text.parse().ok()?;
        uri.host()?;
        Some(HostKey::of(&uri))
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// How hosts behave; one value for every host.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Most requests in flight to one host.
    pub max_in_flight: usize,
    /// Time allowed to connect (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to the end of the response body.
    pub response_timeout: Duration,
    /// Most response-body bytes kept; the rest is not read.
    pub max_response_bytes: usize,
    /// Refuse `http://` destinations (class `BLOCKED`); only `https://` ones are sent.
    pub https_only: bool,
    /// Send everything through this HTTP `CONNECT` proxy (to addresses resolved and checked here).
    pub outbound_proxy: Option<OutboundProxy>,
    /// When a host sleeps.
    pub sleep: BreakerSettings,
    /// A host actor with nothing waiting or in flight, not asleep, and no request for this long is stopped (its
    /// metric series go with it).
    pub idle_timeout: Duration,
    /// Most host actors at once; a new destination beyond fails with class `HOST_LIMIT`.
    pub max_host_actors: usize,
}

/// The default [`HostSettings::idle_timeout`].
pub const DEFAULT_HOST_IDLE: Duration = Duration::from_secs(300);
/// The default [`HostSettings::max_host_actors`].
pub const DEFAULT_MAX_HOST_ACTORS: usize = 10_000;

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            max_in_flight: 64,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(20),
            max_response_bytes: 100 * 1024,
            https_only: false,
            outbound_proxy: None,
            sleep: BreakerSettings::default(),
            idle_timeout: DEFAULT_HOST_IDLE,
            max_host_actors: DEFAULT_MAX_HOST_ACTORS,
        }
    }
}

/// A failed attempt: its class and a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// The class.
    pub class: ErrorClass,
    /// The message (`error status 404 from example.com`).
    pub message: String,
}

/// A response, its body cut at the configured bound.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most `max_response_bytes`.
    pub body: Bytes,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// When it started, epoch milliseconds.
    pub started_at_ms: i64,
    /// How long it took.
    pub duration: Duration,
    /// The response, when one arrived (also for error statuses).
    pub response: Option<HttpResponse>,
    /// Why it failed; `None` for a 2xx answer.
    pub failure: Option<DeliveryFailure>,
    /// Whether the request went out (a response came, or the connection broke after sending).
    pub sent: bool,
}

impl AttemptOutcome {
    /// An attempt that failed before anything was sent.
    pub fn not_sent(class: ErrorClass, message: String) -> Self {
        AttemptOutcome {
            started_at_ms: time::now_ms(),
            duration: Duration::ZERO,
            response: None,
            failure: Some(DeliveryFailure { class, message }),
            sent: false,
        }
    }

    /// An attempt refused because the host sleeps: class `SLEEPING`, [`SLEEPING_MESSAGE`], nothing sent.
    pub fn sleeping() -> Self {
        AttemptOutcome::not_sent(ErrorClass::Sleeping, SLEEPING_MESSAGE.to_owned())
    }
}

/// Ask a host actor how its host is doing.
#[derive(Debug, Message)]
#[rtype(result = "HostState")]
pub struct GetHostState;

/// How a host is doing, for metrics.
#[derive(Debug, Clone)]
pub struct HostState {
    /// The host.
    pub key: HostKey,
    /// Whether it sleeps, until when, and the outcomes in its window.
    pub sleep: BreakerState,
    /// Requests in flight to it now (those waiting for their turn are not counted).
    pub num_in_flight: usize,
}

/// Why every request to `key` is refused before any connection, if it is: plain http with `https_only`, or an
/// address literal in a blocked range. Such a destination needs no host actor.
pub fn refusal_before_connecting(key: &HostKey, settings: &HostSettings, egress: &EgressPolicy) -> Option<String> {
    if settings.https_only && key.scheme == "http" {
        return Some(format!("BLOCKED: destination {key}: plain http is refused, only https destinations are allowed"));
    }
    let literal = key.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
    let blocked = egress.check(literal).err()?;
    Some(format!("BLOCKED: destination {}: {blocked}", key.host))
}

type HttpsClient = Client<HttpsConnector<EgressConnector>, Full<Bytes>>;

/// The actor.
pub struct HostActor {
    key: HostKey,
    /// The host name of `key`, shared with every request's task (it is in every error message).
    host_name: Arc<str>,
    settings: Arc<HostSettings>,
    egress: Arc<EgressPolicy>,
    /// Verifies certificates against the webpki roots.
    client: HttpsClient,
    /// Accepts any certificate (`rejectUnauthorized: false`); built on first use.
    unverified_client: Option<HttpsClient>,
    /// Its queue, in-flight cap, sleep and idleness, shared with the registry.
    activity: Arc<HostActivity>,
    /// Set when every request must be refused without a connection: the host is an address literal in a blocked
    /// range, or plain http with `https_only`.
    refusal: Option<String>,
    /// Its counters.
    metrics: Option<HostMetrics>,
    /// Sleep decisions shared with other kernels on the database: this host's, announced; theirs, honoured.
    shared_policy: Option<Arc<SharedPolicy>>,
}

impl HostActor {
    /// Makes the actor for one destination.
    pub fn new(
        key: HostKey,
        settings: Arc<HostSettings>,
        tls: Arc<rustls::ClientConfig>,
        egress: Arc<EgressPolicy>,
    ) -> Self {
        let host_name: Arc<str> = Arc::from(key.host.as_str());
        // The registry starts no actor for such a destination; an actor made otherwise still refuses.
        let refusal = refusal_before_connecting(&key, &settings, &egress);
        let client = build_client(&settings, (*tls).clone(), egress.clone());
        let activity = Arc::new(HostActivity::new(key.clone(), &settings));
        HostActor {
            key,
            host_name,
            settings,
            egress,
            client,
            unverified_client: None,
            activity,
            refusal,
            metrics: None,
            shared_policy: None,
        }
    }

    /// Its activity, which the registry reads to find idle actors.
    pub fn activity(&self) -> Arc<HostActivity> {
        self.activity.clone()
    }

    /// Answers at once, without a request.
    fn answer_now(&self, outcome: AttemptOutcome) -> ResponseFuture<AttemptOutcome> {
        if let Some(metrics) = &self.metrics {
            metrics.record(&outcome);
        }
        Box::pin(std::future::ready(outcome))
    }

    /// Shares its sleep decisions with other kernels, and honours theirs, through `shared_policy`.
    pub fn with_shared_policy(mut self, shared_policy: Arc<SharedPolicy>) -> Self {
        self.shared_policy = Some(shared_policy);
        self
    }

    /// Counts its attempts into `metrics`.
    pub fn with_metrics(mut self, metrics: HostMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The client for a request: the verifying one, or for `verify_tls: false` on https the one that accepts any
    /// certificate (built now if this is the first such request).
    fn client_for(&mut self, verify_tls: bool) -> Result<HttpsClient, rustls::Error> {
        if verify_tls || self.key.scheme != "https" {
            return Ok(self.client.clone());
        }
        if let Some(client) = &self.unverified_client {
            return Ok(client.clone());
        }
        let client = build_client(&self.settings, unverified_tls_config()?, self.egress.clone());
        self.unverified_client = Some(client.clone());
        Ok(client)
    }
}

impl Actor for HostActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        tracing::debug!(host = %self.key, "host actor started");
    }
}

impl Supervised for HostActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(host = %self.key, "host actor restarting");
    }
}

impl Handler<ExecuteAndReport> for HostActor {
    type Result = ();

    fn handle(&mut self, message: ExecuteAndReport, _: &mut Self::Context) {
        self.activity.begin();
        let answer = self.execute(message.request, message.verify_tls);
        let report = message.report;
        let activity = self.activity.clone();
        actix::spawn(async move {
            let outcome = answer.await;
            activity.end(&outcome);
            report(outcome)
        });
    }
}

impl HostActor {
    /// Sends a request under the host's cap, sleep and refusal; the future answers how it went.
    fn execute(&mut self, request: RenderedRequest, verify_tls: bool) -> ResponseFuture<AttemptOutcome> {
        if let Some(refusal) = &self.refusal {
            let outcome = AttemptOutcome::not_sent(ErrorClass::Blocked, refusal.clone());
            return self.answer_now(outcome);
        }
        if is_asleep(&self.activity, self.shared_policy.as_deref(), Instant::now()) {
            return self.answer_now(AttemptOutcome::sleeping());
        }
        let client = match self.client_for(verify_tls) {
            Ok(client) => client,
            Err(error) => {
                let outcome = AttemptOutcome::not_sent(ErrorClass::Tls, format!("TLS configuration: {error}"));
                return self.answer_now(outcome);
            }
        };
        let metrics = self.metrics.clone();
        let host_name = self.host_name.clone();
        let permits = self.activity.permits.clone();
        let settings = self.settings.clone();
        let activity = self.activity.clone();
        let shared_policy = self.shared_policy.clone();
        Box::pin(async move {
            // Waiting for a permit is this host's queue; the timeouts start when the request is sent.
            let _permit = permits.acquire_owned().await;
            // The host may have fallen asleep while this request waited for its turn.
            if is_asleep(&activity, shared_policy.as_deref(), Instant::now()) {
                let outcome = AttemptOutcome::sleeping();
                if let Some(metrics) = &metrics {
                    metrics.record(&outcome);
                }
                return outcome;
            }
            let outcome = send(&client, request, &settings, &host_name).await;
            if let Some(metrics) = &metrics {
                metrics.record(&outcome);
            }
            let kind = sleep_kind(&outcome, &settings.sleep.ignore_statuses);
            let fell_asleep = lock(&activity.sleep).record(kind, Instant::now());
            if let Some(cooldown) = fell_asleep {
                let cooldown_secs = cooldown.as_secs();
                tracing::warn!(host = %host_name, cooldown_secs, "host sleeps: errors outnumber successes");
                if let Some(shared_policy) = &shared_policy {
                    shared_policy.announce_sleep(activity.key(), cooldown);
                }
            }
            outcome
        })
    }
}

impl Handler<GetHostState> for HostActor {
    type Result = MessageResult<GetHostState>;

    fn handle(&mut self, _: GetHostState, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.activity.state(Instant::now()))
    }
}

/// Sends one request and reads its answer within the response timeout.
async fn send(client: &HttpsClient, request: RenderedRequest, settings: &HostSettings, host: &str) -> AttemptOutcome {
    let started_at_ms = time::now_ms();
    let start = Instant::now();
    let mut builder = http::Request::builder().method(request.method).uri(request.uri);
    if let Some(headers) = builder.headers_mut() {
        *headers = request.headers;
    }
    let Ok(http_request) = builder.body(Full::new(request.body)) else {
        return AttemptOutcome::not_sent(ErrorClass::Render, "request could not be built".into());
    };
    let exchange = async {
        let response = client.request(http_request).await?;
        let (parts, mut body) = response.into_parts();
        let mut collected = BytesMut::new();
        while collected.len() < settings.max_response_bytes {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        collected.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => {
                    return Err(Box::new(error) as Box<dyn StdError + Send + Sync>);
                }
                None => break,
            }
        }
        collected.truncate(settings.max_response_bytes);
        Ok::<_, Box<dyn StdError + Send + Sync>>(HttpResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: collected.freeze(),
        })
    };
    let (response, failure, sent) = match tokio::time::timeout(settings.response_timeout, exchange).await {
        Err(_) => (
            None,
            Some(DeliveryFailure {
                class: ErrorClass::SocketTimeout,
                message: format!(
                    "ESOCKETTIMEDOUT: no response from {host} within {}s",
                    settings.response_timeout.as_secs_f32()
                ),
            }),
            true,
        ),
        Ok(Err(error)) => {
            let failure = classify(error.as_ref(), host);
            let sent = failure.class == ErrorClass::ConnectionReset;
            (None, Some(failure), sent)
        }
        Ok(Ok(response)) => {
            let failure = status_failure(response.status, host);
            (Some(response), failure, true)
        }
    };
    AttemptOutcome { started_at_ms, duration: start.elapsed(), response, failure, sent }
}
