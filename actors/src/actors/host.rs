//! [`HostActor`]: one per destination `scheme://host:port`, shared by every webhook of every group that targets
//! it. It owns the keep-alive connection pool (HTTP/1.1 and HTTP/2 by ALPN, TLS by rustls with the webpki roots),
//! caps the requests in flight to its host (the rest wait in its queue, so a slow host delays only its own work),
//! applies the connect and response timeouts, and classifies every failure into one error class.
//!
//! It also decides when its host sleeps ([`CircuitBreaker`]): while errors outnumber successes it sends nothing and
//! answers every request at once with [`ErrorClass::Sleeping`]. Webhooks that turned TLS verification off
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
use crate::domain::breaker::{BreakerSettings, BreakerState, CircuitBreaker, OutcomeKind};
use crate::domain::egress::{Blocked, DnsFailure, EgressPolicy};
use crate::domain::request::RenderedRequest;
use crate::domain::time;
use crate::domain::time::Instant;
use crate::services::connector::{EgressConnector, OutboundProxy, ProxyFailure};
use crate::services::metrics::HostMetrics;
use actix::{Actor, Context, Handler, Message, MessageResult, ResponseFuture, Supervised};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;

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

/// The class of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A 3xx answer (redirects are not followed).
    Http3xx,
    /// A 4xx answer.
    Http4xx,
    /// A 5xx answer (or another non-2xx status).
    Http5xx,
    /// Could not connect in time.
    ConnectTimeout,
    /// Connected, but no complete answer in time.
    SocketTimeout,
    /// The connection was reset or closed early.
    ConnectionReset,
    /// The connection was refused.
    ConnectionRefused,
    /// The name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// Refused by the egress rules.
    Blocked,
    /// The request could not be rendered.
    Render,
    /// Not sent: the host sleeps after too many errors.
    Sleeping,
    /// Not sent: a new destination while `max_host_actors` host actors already run.
    HostLimit,
}

impl ErrorClass {
    /// Every class, in declaration order (so `class as usize` indexes it).
    pub const ALL: [ErrorClass; 13] = [
        ErrorClass::Http3xx,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::ConnectTimeout,
        ErrorClass::SocketTimeout,
        ErrorClass::ConnectionReset,
        ErrorClass::ConnectionRefused,
        ErrorClass::Dns,
        ErrorClass::Tls,
        ErrorClass::Blocked,
        ErrorClass::Render,
        ErrorClass::Sleeping,
        ErrorClass::HostLimit,
    ];

    /// Whether hookwire refused the attempt itself before a request went out (egress rule, render error, sleeping
    /// host): such an outcome says nothing about the destination.
    pub fn is_refusal(self) -> bool {
        match self {
            ErrorClass::Blocked | ErrorClass::Render | ErrorClass::Sleeping | ErrorClass::HostLimit => true,
            ErrorClass::Http3xx
            | ErrorClass::Http4xx
            | ErrorClass::Http5xx
            | ErrorClass::ConnectTimeout
            | ErrorClass::SocketTimeout
            | ErrorClass::ConnectionReset
            | ErrorClass::ConnectionRefused
            | ErrorClass::Dns
            | ErrorClass::Tls => false,
        }
    }

    /// The class as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Http3xx => "http_3xx",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::ConnectTimeout => "ETIMEDOUT",
            ErrorClass::SocketTimeout => "ESOCKETTIMEDOUT",
            ErrorClass::ConnectionReset => "ECONNRESET",
            ErrorClass::ConnectionRefused => "ECONNREFUSED",
            ErrorClass::Dns => "DNS",
            ErrorClass::Tls => "TLS",
            ErrorClass::Blocked => "BLOCKED",
            ErrorClass::Render => "RENDER",
            ErrorClass::Sleeping => "SLEEPING",
            ErrorClass::HostLimit => "HOST_LIMIT",
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

/// What a host actor did lately, shared with the registry (which reads it without a message, to find idle
/// actors and for metrics) and with the actor's request tasks.
#[derive(Debug)]
pub struct HostActivity {
    /// The host.
    key: HostKey,
    /// The reference point of `last_active_ms`.
    created: Instant,
    /// Requests accepted and not yet answered (waiting for their turn or in flight).
    num_pending: AtomicUsize,
    /// Milliseconds after `created` of the last request accepted or answered.
    last_active_ms: AtomicU64,
    /// [`FRESH`], [`ONLY_REFUSED`] or [`REACHED`]: whether every outcome so far was a refusal by the egress rules.
    reach: AtomicU8,
    /// The sleep decision.
    sleep: Arc<Mutex<CircuitBreaker>>,
    /// The in-flight cap.
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

/// No outcome yet.
const FRESH: u8 = 0;
/// Every outcome so far was refused by the egress rules: no connection was ever made.
const ONLY_REFUSED: u8 = 1;
/// At least one outcome was not such a refusal.
const REACHED: u8 = 2;

impl HostActivity {
    fn new(key: HostKey, settings: &HostSettings) -> Self {
        let max_in_flight = settings.max_in_flight.max(1);
        HostActivity {
            key,
            created: Instant::now(),
            num_pending: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            reach: AtomicU8::new(FRESH),
            sleep: Arc::new(Mutex::new(CircuitBreaker::new(settings.sleep.clone()))),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn begin(&self) {
        self.num_pending.fetch_add(1, Ordering::AcqRel);
        self.touch();
    }

    fn end(&self, outcome: &AttemptOutcome) {
        let refused = outcome.failure.as_ref().is_some_and(|failure| failure.class == ErrorClass::Blocked);
        if refused {
            let _ = self.reach.compare_exchange(FRESH, ONLY_REFUSED, Ordering::AcqRel, Ordering::Acquire);
        } else {
            self.reach.store(REACHED, Ordering::Release);
        }
        self.touch();
        self.num_pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// The host.
    pub fn key(&self) -> &HostKey {
        &self.key
    }

    /// Whether its actor may stop at `now`: nothing waiting or in flight, not asleep (its sleep must outlive the
    /// actor's idleness, or a failing host would wake early), and either no request for `idle_timeout` or nothing
    /// but refusals by the egress rules so far (a destination that was never connected to keeps no state).
    pub fn is_idle(&self, now: Instant, idle_timeout: Duration) -> bool {
        if self.num_pending.load(Ordering::Acquire) != 0 || lock(&self.sleep).asleep_until(now).is_some() {
            return false;
        }
        if self.reach.load(Ordering::Acquire) == ONLY_REFUSED {
            return true;
        }
        let last_active = self.created + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last_active) >= idle_timeout
    }

    /// How the host is doing, for metrics.
    pub fn state(&self, now: Instant) -> HostState {
        HostState {
            key: self.key.clone(),
            sleep: lock(&self.sleep).state(now),
            num_in_flight: self.max_in_flight.saturating_sub(self.permits.available_permits()),
        }
    }
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

/// A pooled client over the egress-checking connector (direct or through the outbound proxy), HTTP/1.1 and
/// HTTP/2 by ALPN.
fn build_client(settings: &HostSettings, tls: rustls::ClientConfig, egress: Arc<EgressPolicy>) -> HttpsClient {
    let http = EgressConnector::new(egress, settings.outbound_proxy.as_ref(), settings.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(settings.max_in_flight)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

fn lock(sleep: &Mutex<CircuitBreaker>) -> MutexGuard<'_, CircuitBreaker> {
    sleep.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        if lock(&self.activity.sleep).asleep_until(Instant::now()).is_some() {
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
        let sleep = self.activity.sleep.clone();
        Box::pin(async move {
            // Waiting for a permit is this host's queue; the timeouts start when the request is sent.
            let _permit = permits.acquire_owned().await;
            // The host may have fallen asleep while this request waited for its turn.
            if lock(&sleep).asleep_until(Instant::now()).is_some() {
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
            if let Some(cooldown) = lock(&sleep).record(kind, Instant::now()) {
                let cooldown_secs = cooldown.as_secs();
                tracing::warn!(host = %host_name, cooldown_secs, "host sleeps: errors outnumber successes");
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

/// How an outcome counts towards its host's sleep: error statuses (less `ignore_statuses`), timeouts, connection,
/// TLS and DNS errors are the host's failures; refusals by the egress rules, render errors and attempts not sent
/// because the host sleeps say nothing about the host.
fn sleep_kind(outcome: &AttemptOutcome, ignore_statuses: &[u16]) -> OutcomeKind {
    let Some(failure) = &outcome.failure else {
        return OutcomeKind::Success;
    };
    match failure.class {
        class if class.is_refusal() => OutcomeKind::Neutral,
        ErrorClass::Http3xx | ErrorClass::Http4xx | ErrorClass::Http5xx => match &outcome.response {
            Some(response) if ignore_statuses.contains(&response.status) => OutcomeKind::Neutral,
            _ => OutcomeKind::Failure,
        },
        _ => OutcomeKind::Failure,
    }
}

/// The failure a status stands for, `None` for 2xx.
fn status_failure(status: u16, host: &str) -> Option<DeliveryFailure> {
    let class = match status {
        200..=299 => return None,
        300..=399 => ErrorClass::Http3xx,
        400..=499 => ErrorClass::Http4xx,
        _ => ErrorClass::Http5xx,
    };
    Some(DeliveryFailure { class, message: format!("error status {status} from {host}") })
}

/// Finds the class of a transport error by walking its chain of sources.
fn classify(error: &(dyn StdError + 'static), host: &str) -> DeliveryFailure {
    let failure = |class: ErrorClass, message: String| DeliveryFailure { class, message };
    let mut is_connect = false;
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(legacy) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            is_connect |= legacy.is_connect();
        }
        if let Some(blocked) = error.downcast_ref::<Blocked>() {
            return failure(ErrorClass::Blocked, format!("BLOCKED: destination {host}: {blocked}"));
        }
        if let Some(dns) = error.downcast_ref::<DnsFailure>() {
            return failure(ErrorClass::Dns, format!("DNS: {dns}"));
        }
        if let Some(proxy) = error.downcast_ref::<ProxyFailure>() {
            return failure(ErrorClass::ConnectionRefused, format!("ECONNREFUSED connecting to {host}: {proxy}"));
        }
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return failure(ErrorClass::Tls, format!("TLS error with {host}: {tls}"));
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            match io.kind() {
                ErrorKind::ConnectionRefused => {
                    return failure(ErrorClass::ConnectionRefused, format!("ECONNREFUSED connecting to {host}"));
                }
                ErrorKind::TimedOut => {
                    return failure(ErrorClass::ConnectTimeout, format!("ETIMEDOUT connecting to {host}"));
                }
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof => {
                    return failure(ErrorClass::ConnectionReset, format!("ECONNRESET from {host}"));
                }
                _ => {}
            }
            // io::Error::source skips the wrapped error itself; look at it directly.
            if let Some(inner) = io.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        current = error.source();
    }
    if is_connect {
        failure(ErrorClass::ConnectionRefused, format!("ECONNREFUSED connecting to {host}: {error}"))
    } else {
        failure(ErrorClass::ConnectionReset, format!("ECONNRESET from {host}: {error}"))
    }
}

/// The TLS configuration of every host: rustls with the ring provider and the webpki roots.
pub fn default_tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The TLS configuration of webhooks with `rejectUnauthorized: false`: any certificate is accepted (the
/// handshake's signatures are still checked, so the connection is encrypted to whoever holds the certificate's key).
fn unverified_tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCertificate { algorithms: provider.signature_verification_algorithms });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// A certificate verifier that trusts every certificate; only for `rejectUnauthorized: false`.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_normalise_scheme_host_and_default_port() {
        let key = HostKey::of(&"https://Example.COM/x?y".parse().unwrap());
        assert_eq!(key.to_string(), "https://example.com:443");
        let key = HostKey::of(&"http://127.0.0.1:8080/".parse().unwrap());
        assert_eq!(key.to_string(), "http://127.0.0.1:8080");
    }

    #[test]
    fn statuses_classify_and_name_the_host() {
        assert_eq!(status_failure(204, "h"), None);
        let failure = status_failure(404, "example.com").unwrap();
        assert_eq!(
            (failure.class, failure.message.as_str()),
            (ErrorClass::Http4xx, "error status 404 from example.com")
        );
        assert_eq!(status_failure(302, "h").unwrap().class, ErrorClass::Http3xx);
        assert_eq!(status_failure(503, "h").unwrap().class.as_str(), "http_5xx");
    }

    #[test]
    fn io_errors_classify_through_their_wrappers() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&refused, "h").class, ErrorClass::ConnectionRefused);
        let wrapped = std::io::Error::other(Blocked {
            address: "127.0.0.1".parse().unwrap(),
            range: "127.0.0.0/8".parse().unwrap(),
        });
        assert_eq!(classify(&wrapped, "h").class, ErrorClass::Blocked);
    }

    #[test]
    fn dns_and_tls_failures_classify_with_their_reason() {
        let dns: Box<dyn StdError + Send + Sync> =
            Box::new(DnsFailure { host: "nowhere.invalid".into(), reason: "Name or service not known".into() });
        let failure = classify(dns.as_ref(), "nowhere.invalid");
        assert_eq!(
            (failure.class, failure.message.as_str()),
            (ErrorClass::Dns, "DNS: could not resolve nowhere.invalid: Name or service not known")
        );
        let unknown_issuer = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown_issuer);
        let failure = classify(&tls, "example.com");
        assert_eq!(
            (failure.class, failure.message.as_str()),
            (ErrorClass::Tls, "TLS error with example.com: invalid peer certificate: UnknownIssuer")
        );
    }

    fn outcome(class: Option<ErrorClass>, status: Option<u16>) -> AttemptOutcome {
        let response = status.map(|status| HttpResponse { status, headers: HeaderMap::new(), body: Bytes::new() });
        let failure = class.map(|class| DeliveryFailure { class, message: String::new() });
        AttemptOutcome { started_at_ms: 0, duration: Duration::ZERO, response, failure, sent: true }
    }

    #[test]
    fn outcomes_count_towards_sleep_by_class_and_ignored_statuses() {
        let ignore = [404];
        assert_eq!(sleep_kind(&outcome(None, Some(204)), &ignore), OutcomeKind::Success);
        assert_eq!(sleep_kind(&outcome(Some(ErrorClass::Http5xx), Some(503)), &ignore), OutcomeKind::Failure);
        assert_eq!(sleep_kind(&outcome(Some(ErrorClass::Http4xx), Some(400)), &ignore), OutcomeKind::Failure);
        assert_eq!(sleep_kind(&outcome(Some(ErrorClass::Http4xx), Some(404)), &ignore), OutcomeKind::Neutral);
        assert_eq!(sleep_kind(&outcome(Some(ErrorClass::Http4xx), Some(404)), &[]), OutcomeKind::Failure);
        assert_eq!(sleep_kind(&outcome(Some(ErrorClass::Http3xx), Some(302)), &ignore), OutcomeKind::Failure);
        for class in [
            ErrorClass::ConnectTimeout,
            ErrorClass::SocketTimeout,
            ErrorClass::ConnectionReset,
            ErrorClass::ConnectionRefused,
            ErrorClass::Dns,
            ErrorClass::Tls,
        ] {
            assert_eq!(sleep_kind(&outcome(Some(class), None), &ignore), OutcomeKind::Failure, "{class:?}");
        }
        for class in [ErrorClass::Blocked, ErrorClass::Render, ErrorClass::Sleeping, ErrorClass::HostLimit] {
            assert_eq!(sleep_kind(&outcome(Some(class), None), &ignore), OutcomeKind::Neutral, "{class:?}");
        }
    }

    #[test]
    fn a_host_is_idle_when_nothing_is_pending_it_is_awake_and_quiet_or_was_only_ever_refused() {
        let key = HostKey::of(&"http://example.com/".parse().unwrap());
        let idle = Duration::from_secs(300);
        let activity = HostActivity::new(key, &HostSettings::default());
        let now = Instant::now();
        assert!(!activity.is_idle(now, idle), "a fresh host waits for its first request");
        assert!(activity.is_idle(now + idle, idle));

        activity.begin();
        assert!(!activity.is_idle(now + idle * 2, idle), "a request is pending");
        let blocked = AttemptOutcome::not_sent(ErrorClass::Blocked, String::new());
        activity.end(&blocked);
        assert!(activity.is_idle(Instant::now(), idle), "only refusals: nothing worth keeping");

        activity.begin();
        activity.end(&outcome(None, Some(204)));
        activity.begin();
        activity.end(&blocked);
        assert!(!activity.is_idle(Instant::now(), idle), "it was reached: kept until idle");
        assert!(activity.is_idle(Instant::now() + idle, idle));

        let sleep_settings = BreakerSettings { min_outcomes: 1, ..BreakerSettings::default() };
        let settings = HostSettings { sleep: sleep_settings, ..HostSettings::default() };
        let sleeping = HostActivity::new(HostKey::of(&"http://example.org/".parse().unwrap()), &settings);
        let now = Instant::now();
        assert!(lock(&sleeping.sleep).record(OutcomeKind::Failure, now).is_some());
        assert!(!sleeping.is_idle(now + Duration::from_secs(10), Duration::ZERO), "kept while asleep (30 s)");
        assert!(sleeping.is_idle(now + Duration::from_secs(601), Duration::ZERO), "its sleep ended");
    }

    #[test]
    fn destinations_refused_before_connecting_are_literals_in_blocked_ranges_and_plain_http_with_https_only() {
        let egress = EgressPolicy::default();
        let settings = HostSettings::default();
        let refusal = |url: &str, settings: &HostSettings| {
            refusal_before_connecting(&HostKey::of(&url.parse().unwrap()), settings, &egress)
        };
        assert!(refusal("http://127.0.0.5:81/", &settings).unwrap().starts_with("BLOCKED: destination 127.0.0.5: "));
        assert!(refusal("http://[::1]/", &settings).is_some());
        assert_eq!(refusal("http://93.184.216.34/", &settings), None);
        assert_eq!(refusal("http://localhost/", &settings), None, "names are checked when resolved");
        let https_only = HostSettings { https_only: true, ..HostSettings::default() };
        assert!(refusal("http://example.com/", &https_only).is_some());
        assert_eq!(refusal("https://example.com/", &https_only), None);
    }

    fn start_host(url: &str, settings: HostSettings) -> actix::Addr<HostActor> {
        let tls = Arc::new(default_tls_config().unwrap());
        let egress = Arc::new(EgressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]));
        HostActor::new(HostKey::of(&url.parse().unwrap()), Arc::new(settings), tls, egress).start()
    }

    /// Sends a POST to `url` through the host actor and waits for its outcome.
    async fn execute(host: &actix::Addr<HostActor>, url: &str) -> AttemptOutcome {
        let request = crate::domain::request::RenderedRequest {
            method: http::Method::POST,
            uri: url.parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let report = Box::new(move |outcome| {
            let _ = reply.send(outcome);
        });
        host.send(ExecuteAndReport { request, verify_tls: true, report }).await.unwrap();
        outcome.await.unwrap()
    }

    #[actix_rt::test]
    async fn a_host_whose_errors_outnumber_its_successes_sleeps_and_sends_nothing() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/");
        let sleep = BreakerSettings { min_outcomes: 2, ..BreakerSettings::default() };
        let host = start_host(&url, HostSettings { sleep, ..HostSettings::default() });
        for _ in 0..2 {
            let outcome = execute(&host, &url).await;
            assert_eq!(outcome.failure.unwrap().class, ErrorClass::ConnectionRefused);
        }
        let state = host.send(GetHostState).await.unwrap();
        assert!(state.sleep.asleep_until.is_some(), "{state:?}");
        assert_eq!(state.sleep.next_cooldown, Duration::from_secs(60));

        let outcome = execute(&host, &url).await;
        let failure = outcome.failure.unwrap();
        assert_eq!((failure.class.as_str(), failure.message.as_str()), ("SLEEPING", SLEEPING_MESSAGE));
        assert_eq!(SLEEPING_MESSAGE, "Sleeping, too many errors, please wait and try again");
        assert!(!outcome.sent);
        assert_eq!(outcome.duration, Duration::ZERO, "answered without trying");
    }

    #[actix_rt::test]
    async fn https_only_refuses_plain_http_destinations_and_lets_https_through() {
        let settings = HostSettings { https_only: true, ..HostSettings::default() };
        let host = start_host("http://example.com/", settings.clone());
        let outcome = execute(&host, "http://example.com/hook").await;
        let failure = outcome.failure.unwrap();
        assert_eq!(failure.class, ErrorClass::Blocked);
        assert_eq!(
            failure.message,
            "BLOCKED: destination http://example.com:80: plain http is refused, only https destinations are allowed"
        );
        assert!(!outcome.sent);
        let https = HostActor::new(
            HostKey::of(&"https://example.com/".parse().unwrap()),
            Arc::new(settings),
            Arc::new(default_tls_config().unwrap()),
            Arc::new(EgressPolicy::default()),
        );
        assert_eq!(https.refusal, None);
    }
}
