//! Error classification: every failed attempt gets one [`ErrorClass`], from its status or by walking the chain of
//! its transport error, and counts (or not) towards its host's sleep.

use super::{AttemptOutcome, DeliveryFailure};
use crate::domain::breaker::OutcomeKind;
use crate::domain::egress::{Blocked, DnsFailure};
use crate::services::connector::ProxyFailure;
use std::error::Error as StdError;

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

/// How an outcome counts towards its host's sleep: error statuses (less `ignore_statuses`), timeouts, connection,
/// TLS and DNS errors are the host's failures; refusals by the egress rules, render errors and attempts not sent
/// because the host sleeps say nothing about the host.
pub(super) fn sleep_kind(outcome: &AttemptOutcome, ignore_statuses: &[u16]) -> OutcomeKind {
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
pub(super) fn status_failure(status: u16, host: &str) -> Option<DeliveryFailure> {
    let class = match status {
        200..=299 => return None,
        300..=399 => ErrorClass::Http3xx,
        400..=499 => ErrorClass::Http4xx,
        _ => ErrorClass::Http5xx,
    };
    Some(DeliveryFailure { class, message: format!("error status {status} from {host}") })
}

/// Finds the class of a transport error by walking its chain of sources.
pub(super) fn classify(error: &(dyn StdError + 'static), host: &str) -> DeliveryFailure {
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
