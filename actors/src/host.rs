//! [`HostActor`]: one per destination `scheme://host:port`, shared by every webhook of every group that targets
//! it. It owns the keep-alive connection pool (HTTP/1.1 and HTTP/2 by ALPN, TLS by rustls with the webpki roots),
//! caps the requests in flight to its host (the rest wait in its queue, so a slow host delays only its own work),
//! applies the connect and response timeouts, and classifies every failure into one error class.
//!
//! Webhook actors send it [`Execute`]; the answer is an [`AttemptOutcome`].

use crate::egress::{Blocked, DnsFailure, EgressPolicy, EgressResolver};
use crate::messages::Execute;
use crate::time;
use actix::{Actor, Context, Handler, ResponseFuture, Supervised};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

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
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            max_in_flight: 64,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(20),
            max_response_bytes: 100 * 1024,
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
}

impl ErrorClass {
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
}

type HttpsClient = Client<HttpsConnector<HttpConnector<EgressResolver>>, Full<Bytes>>;

/// The actor.
pub struct HostActor {
    key: HostKey,
    settings: Arc<HostSettings>,
    client: HttpsClient,
    permits: Arc<Semaphore>,
    /// Set when the host is an address literal in a blocked range: every request fails without a connection.
    blocked_literal: Option<Blocked>,
}

impl HostActor {
    /// Makes the actor for one destination.
    pub fn new(
        key: HostKey,
        settings: Arc<HostSettings>,
        tls: Arc<rustls::ClientConfig>,
        egress: Arc<EgressPolicy>,
    ) -> Self {
        let literal = key.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        let blocked_literal = literal.and_then(|address| egress.check(address).err());
        let mut http = HttpConnector::new_with_resolver(EgressResolver::new(egress));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(settings.max_in_flight)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        HostActor { key, settings, client, permits, blocked_literal }
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

impl Handler<Execute> for HostActor {
    type Result = ResponseFuture<AttemptOutcome>;

    fn handle(&mut self, message: Execute, _: &mut Self::Context) -> Self::Result {
        let host = self.key.host.clone();
        if let Some(blocked) = &self.blocked_literal {
            let outcome =
                AttemptOutcome::not_sent(ErrorClass::Blocked, format!("BLOCKED: destination {host}: {blocked}"));
            return Box::pin(async move { outcome });
        }
        let client = self.client.clone();
        let permits = self.permits.clone();
        let settings = self.settings.clone();
        Box::pin(async move {
            // Waiting for a permit is this host's queue; the timeouts start when the request is sent.
            let _permit = permits.acquire_owned().await;
            let started_at_ms = time::now_ms();
            let start = Instant::now();
            let request = message.request;
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
                    let failure = classify(error.as_ref(), &host);
                    let sent = failure.class == ErrorClass::ConnectionReset;
                    (None, Some(failure), sent)
                }
                Ok(Ok(response)) => {
                    let failure = status_failure(response.status, &host);
                    (Some(response), failure, true)
                }
            };
            AttemptOutcome { started_at_ms, duration: start.elapsed(), response, failure, sent }
        })
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
}
