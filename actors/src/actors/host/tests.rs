//! Unit tests of host actors: keys, classification, sleep, idleness, refusals.

use super::*;
use crate::domain::breaker::OutcomeKind;
use crate::domain::egress::{Blocked, DnsFailure};

#[test]
fn host_keys_normalise_scheme_host_and_default_port() {
    let key = HostKey::of(&"https://Example.COM/x?y".parse().unwrap());
    assert_eq!(key.to_string(), "https://example.com:443");
    let key = HostKey::of(&"http://127.0.0.1:8080/".parse().unwrap());
    assert_eq!(key.to_string(), "http://127.0.0.1:8080");
    for text in ["http://127.0.0.1:8080", "https://example.com:443", "http://[::1]:80"] {
        assert_eq!(HostKey::parse(text).map(|key| key.to_string()).as_deref(), Some(text));
    }
    assert_eq!(HostKey::parse("not a host"), None);
}

#[test]
fn statuses_classify_and_name_the_host() {
    assert_eq!(status_failure(204, "h"), None);
    let failure = status_failure(404, "example.com").unwrap();
    assert_eq!((failure.class, failure.message.as_str()), (ErrorClass::Http4xx, "error status 404 from example.com"));
    assert_eq!(status_failure(302, "h").unwrap().class, ErrorClass::Http3xx);
    assert_eq!(status_failure(503, "h").unwrap().class.as_str(), "http_5xx");
}

#[test]
fn io_errors_classify_through_their_wrappers() {
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert_eq!(classify(&refused, "h").class, ErrorClass::ConnectionRefused);
    let wrapped =
        std::io::Error::other(Blocked { address: "127.0.0.1".parse().unwrap(), range: "127.0.0.0/8".parse().unwrap() });
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
