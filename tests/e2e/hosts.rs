//! Destination hosts: each has its own queue and in-flight cap, so a dead host never holds up a healthy one; every
//! way a delivery can fail gives a `hook-error` that names its class and says what to do; TLS is verified unless a
//! webhook says `rejectUnauthorized: false`; egress rules hold on resolved addresses; a host whose errors
//! outnumber its successes sleeps.

use crate::support::{MARKER, events_before_marker, sync};
use hookwire_client::DeviceSession;
use hookwire_client::proto::Event;
use hookwire_tests::{FakeReceiver, Fixture, Reply, TestKernel};
use serde_json::json;
use std::time::Duration;

/// A device session that receives the device's own `hook-response` and `hook-error` events, and the marker of
/// [`events_before_marker`].
async fn hook_session(kernel: &TestKernel, fixture: &Fixture) -> DeviceSession {
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{}/hook-", fixture.device_id)).await.unwrap();
    session.subscribe(MARKER).await.unwrap();
    sync(&mut session).await;
    session
}

/// The next event on the session (10 s at most).
async fn next_event(session: &mut DeviceSession) -> Event {
    tokio::time::timeout(Duration::from_secs(10), session.next_event())
        .await
        .expect("an event within 10 s")
        .expect("session open")
        .expect("session not ended")
}

/// Publishes `name` and returns the text of the `hook-error` it causes, checking that it is the only response or
/// error event that follows.
async fn hook_error_of(session: &mut DeviceSession, fixture: &Fixture, name: &str) -> String {
    session.publish(name, "x").await.unwrap();
    let event = next_event(session).await;
    assert_eq!(event.name, format!("{}/hook-error/{name}/0", fixture.device_id), "{event:?}");
    assert_no_more_events(session).await;
    event.data
}

/// Checks that no event arrives before a marker published now: a delivery's events are put on the bus together,
/// so once one of them arrived, the others come before the marker.
async fn assert_no_more_events(session: &mut DeviceSession) {
    let events = events_before_marker(session).await;
    assert!(events.is_empty(), "no further event expected, got {events:?}");
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_never_answers_does_not_hold_up_a_healthy_host_of_the_same_group() {
    let kernel = TestKernel::spawn_with(|settings| settings.max_in_flight_per_host = 2).await;
    let hanging = FakeReceiver::start().await;
    hanging.reply_with(Reply { delay: Duration::from_secs(3600), ..Reply::default() });
    let healthy = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "tick", "url": format!("{}/hanging", hanging.base_url)})).await;
    fixture.webhook(json!({"event": "tick", "url": format!("{}/healthy", healthy.base_url)})).await;

    let device = kernel.device(&fixture.device_token).await;
    for index in 0..20 {
        assert_eq!(device.publish("tick", index.to_string()).await.unwrap().num_deliveries, 2);
    }
    let delivered = healthy.wait_for(20, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 20, "every healthy delivery arrives");
    let mut data: Vec<u32> = delivered.iter().map(|request| request.form()[1].1.parse().unwrap()).collect();
    data.sort_unstable();
    assert_eq!(data, (0..20).collect::<Vec<_>>());
    let hanging_requests = hanging.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(hanging_requests.len(), 2, "the hanging host holds its 2 requests in flight; the rest wait");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_answers_too_late_fails_with_esockettimedout() {
    let kernel = TestKernel::spawn_with(|settings| settings.response_timeout_ms = 300).await;
    let receiver = FakeReceiver::start().await;
    receiver.reply_with(Reply { delay: Duration::from_secs(3600), ..Reply::default() });
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "slow", "url": receiver.base_url})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "slow").await;
    assert_eq!(error, "ESOCKETTIMEDOUT: no response from 127.0.0.1 within 0.3s");
    assert_eq!(receiver.requests().len(), 1, "the request was sent");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_with_nothing_listening_fails_with_econnrefused() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "closed", "url": format!("http://127.0.0.1:{}/", closed_port())})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "closed").await;
    assert_eq!(error, "ECONNREFUSED connecting to 127.0.0.1");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_after_the_request_fails_with_econnreset() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.reset_connections();
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "reset", "url": receiver.base_url})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "reset").await;
    assert_eq!(error, "ECONNRESET from 127.0.0.1");
    assert_eq!(receiver.requests().len(), 1, "the receiver read the request before resetting");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_no_public_root_signed_fails_with_tls_and_says_why() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start_tls().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "secure", "url": receiver.base_url})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "secure").await;
    assert_eq!(error, "TLS error with 127.0.0.1: invalid peer certificate: UnknownIssuer");
    assert!(receiver.requests().is_empty(), "nothing is sent to an unverified host");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_unauthorized_false_trusts_any_certificate_for_that_webhook_only() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start_tls().await;
    receiver.respond(200, "trusted");
    let fixture = kernel.fixture().await;
    let url = format!("{}/trusting", receiver.base_url);
    fixture.webhook(json!({"event": "trusting", "url": url, "rejectUnauthorized": false})).await;
    fixture.webhook(json!({"event": "verifying", "url": format!("{}/verifying", receiver.base_url)})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    session.publish("trusting", "x").await.unwrap();
    let response = next_event(&mut session).await;
    assert_eq!(response.name, format!("{}/hook-response/trusting/0", fixture.device_id));
    assert_eq!(response.data, "trusted");
    let request = receiver.first_request().await;
    assert_eq!(request.path, "/trusting");
    assert_eq!(request.version, http::Version::HTTP_2, "HTTP/2 chosen by ALPN");

    // The same host, after a trusting connection was opened and pooled: a verifying webhook still verifies.
    let error = hook_error_of(&mut session, &fixture, "verifying").await;
    assert_eq!(error, "TLS error with 127.0.0.1: invalid peer certificate: UnknownIssuer");
    assert_eq!(receiver.requests().len(), 1);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_destinations_are_blocked_by_address_and_by_resolved_name_unless_allowed() {
    let kernel = TestKernel::spawn_with(|settings| settings.allow_destination.clear()).await;
    let receiver = FakeReceiver::start().await;
    let port = receiver.base_url.rsplit(':').next().unwrap().to_owned();
    let fixture = kernel.fixture().await;
    // A literal address is refused when the webhook is created; one that a template makes, at delivery.
    let refused = fixture
        .admin
        .create_webhook(&fixture.group_id, json!({"event": "x", "url": receiver.base_url}).to_string())
        .await;
    assert!(format!("{refused:?}").contains("127.0.0.1 is in the blocked range 127.0.0.0/8"), "{refused:?}");
    let rendered = format!("http://{{{{! the host is rendered at delivery }}}}127.0.0.1:{port}/");
    fixture.webhook(json!({"event": "literal", "url": rendered})).await;
    fixture.webhook(json!({"event": "named", "url": format!("http://localhost:{port}/")})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "literal").await;
    assert_eq!(
        error,
        "BLOCKED: destination 127.0.0.1: 127.0.0.1 is in the blocked range 127.0.0.0/8 (allow it with \
         --allow-destination)"
    );
    // `localhost` is no address: only its resolved addresses (127.0.0.1, ::1) can be refused.
    let error = hook_error_of(&mut session, &fixture, "named").await;
    assert!(error.starts_with("BLOCKED: destination localhost: "), "{error}");
    assert!(error.ends_with("(allow it with --allow-destination)"), "{error}");
    assert!(receiver.requests().is_empty());
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_an_error_and_is_not_followed() {
    let kernel = TestKernel::spawn().await;
    let target = FakeReceiver::start().await;
    let redirecting = FakeReceiver::start().await;
    redirecting.reply_with(Reply {
        status: 302,
        headers: vec![("location".into(), format!("{}/elsewhere", target.base_url))],
        ..Reply::default()
    });
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "moved", "url": redirecting.base_url})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "moved").await;
    assert_eq!(error, "error status 302 from 127.0.0.1");
    assert!(target.requests().is_empty(), "the redirect is not followed");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_fails_with_dns() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    // `.invalid` never resolves (RFC 6761).
    fixture.webhook(json!({"event": "nowhere", "url": "http://hookwire-test.invalid/"})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "nowhere").await;
    assert!(error.starts_with("DNS: could not resolve hookwire-test.invalid: "), "{error}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_only_refuses_plain_http_destinations_and_sends_to_https_ones() {
    let kernel = TestKernel::spawn_with(|settings| settings.https_only = true).await;
    let plain = FakeReceiver::start().await;
    let secure = FakeReceiver::start_tls().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "plain", "url": plain.base_url})).await;
    fixture.webhook(json!({"event": "secure", "url": secure.base_url, "rejectUnauthorized": false})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "plain").await;
    let refusal = "plain http is refused, only https destinations are allowed";
    assert_eq!(error, format!("BLOCKED: destination {}: {refusal}", plain.base_url));
    assert!(plain.requests().is_empty());
    session.publish("secure", "x").await.unwrap();
    assert_eq!(secure.first_request().await.path, "/");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_errors_outnumber_its_successes_sleeps_and_other_hosts_carry_on() {
    let kernel = TestKernel::spawn_with(|settings| settings.sleep_min_outcomes = 3).await;
    let failing = FakeReceiver::start().await;
    failing.respond(500, "down");
    let healthy = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "fail", "url": failing.base_url})).await;
    fixture.webhook(json!({"event": "fine", "url": healthy.base_url})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    for _ in 0..3 {
        assert_eq!(hook_error_of(&mut session, &fixture, "fail").await, "error status 500 from 127.0.0.1");
    }
    assert_eq!(failing.requests().len(), 3);

    let error = hook_error_of(&mut session, &fixture, "fail").await;
    assert_eq!(error, "Sleeping, too many errors, please wait and try again");
    assert_eq!(failing.requests().len(), 3, "a sleeping host is sent nothing");
    session.publish("fine", "x").await.unwrap();
    assert_eq!(healthy.first_request().await.path, "/", "sleep is per host");
    kernel.stop().await;
}

/// A loopback address that accepts no more connections and answers nothing: a listener that never accepts, with
/// its queue filled. Linux then drops further SYNs, so a connection attempt hangs until its timeout, as with a
/// firewalled host. Keep the returned sockets alive while testing.
fn unanswering_address() -> (std::net::SocketAddr, tokio::net::TcpListener, Vec<std::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
            Ok(stream) => fillers.push(stream),
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => return (address, listener, fillers),
            Err(error) => panic!("filling the queue of {address}: {error}"),
        }
    }
    panic!("the queue of {address} never filled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_never_completes_the_connection_fails_with_etimedout() {
    let kernel = TestKernel::spawn_with(|settings| settings.connect_timeout_ms = 300).await;
    let (address, _listener, _fillers) = unanswering_address();
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "unreachable", "url": format!("http://{address}/")})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "unreachable").await;
    assert_eq!(error, "ETIMEDOUT connecting to 127.0.0.1");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_proxy_tunnels_to_the_address_hookwire_resolved_and_checked() {
    let proxy = hookwire_tests::FakeProxy::start().await;
    let proxy_url = proxy.url.replace("http://", "http://hook%40wire:s3cret@");
    let kernel = TestKernel::spawn_with(|settings| settings.outbound_proxy = Some(proxy_url)).await;
    let plain = FakeReceiver::start().await;
    plain.respond(200, "plain");
    let secure = FakeReceiver::start_tls().await;
    secure.respond(200, "through the tunnel");
    let port_of = |url: &str| url.rsplit(':').next().unwrap().to_owned();
    let (plain_port, secure_port) = (port_of(&plain.base_url), port_of(&secure.base_url));
    let fixture = kernel.fixture().await;
    // By name: hookwire resolves `localhost` (127.0.0.1 and ::1; only 127.0.0.0/8 is allowed) and asks the proxy
    // for the address, so the proxy resolves nothing.
    fixture.webhook(json!({"event": "plain", "url": format!("http://localhost:{plain_port}/plain")})).await;
    let secure_url = format!("https://localhost:{secure_port}/secure");
    fixture.webhook(json!({"event": "secure", "url": secure_url, "rejectUnauthorized": false})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    session.publish("plain", "x").await.unwrap();
    assert_eq!(next_event(&mut session).await.name, format!("{}/hook-response/plain/0", fixture.device_id));
    assert_eq!(plain.first_request().await.path, "/plain");
    session.publish("secure", "x").await.unwrap();
    let response = next_event(&mut session).await;
    assert_eq!(response.data, "through the tunnel", "TLS end to end inside the tunnel");
    assert_eq!(secure.first_request().await.version, http::Version::HTTP_2, "ALPN inside the tunnel");

    let requests = proxy.requests();
    let targets: Vec<&str> = requests.iter().map(|request| request.target.as_str()).collect();
    assert_eq!(targets, [format!("127.0.0.1:{plain_port}"), format!("127.0.0.1:{secure_port}")]);
    let credentials = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "hook@wire:s3cret");
    assert!(requests.iter().all(|request| request.authorization == Some(format!("Basic {credentials}"))));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_proxy_cannot_be_used_to_reach_blocked_addresses() {
    let proxy = hookwire_tests::FakeProxy::start().await;
    let proxy_url = proxy.url.clone();
    let kernel = TestKernel::spawn_with(|settings| {
        settings.allow_destination.clear();
        settings.outbound_proxy = Some(proxy_url);
    })
    .await;
    let receiver = FakeReceiver::start().await;
    let port = receiver.base_url.rsplit(':').next().unwrap().to_owned();
    let fixture = kernel.fixture().await;
    // A literal address is refused at create time: this one is rendered, so that delivery meets it.
    let rendered = format!("http://{{{{! the host is rendered at delivery }}}}127.0.0.1:{port}/");
    fixture.webhook(json!({"event": "literal", "url": rendered})).await;
    fixture.webhook(json!({"event": "named", "url": format!("http://localhost:{port}/")})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "literal").await;
    assert!(error.starts_with("BLOCKED: destination 127.0.0.1: 127.0.0.1 is in the blocked range"), "{error}");
    let error = hook_error_of(&mut session, &fixture, "named").await;
    assert!(error.starts_with("BLOCKED: destination localhost: "), "{error}");
    assert_eq!(proxy.requests(), [], "the proxy was never asked");
    assert!(receiver.requests().is_empty());
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_refuses_the_tunnel_fails_with_econnrefused_and_says_so() {
    let proxy = hookwire_tests::FakeProxy::start_refusing().await;
    let proxy_url = proxy.url.clone();
    let kernel = TestKernel::spawn_with(|settings| settings.outbound_proxy = Some(proxy_url)).await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "refused", "url": receiver.base_url})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    let error = hook_error_of(&mut session, &fixture, "refused").await;
    let port = receiver.base_url.rsplit(':').next().unwrap();
    assert!(
        error.starts_with(&format!(
            "ECONNREFUSED connecting to 127.0.0.1: outbound proxy {} could not open a tunnel to 127.0.0.1:{port}",
            proxy.url
        )),
        "{error}"
    );
    assert!(receiver.requests().is_empty());
    kernel.stop().await;
}
