//! Egress rules on IPv6 literals: addresses that carry an IPv4 address are refused as that address, the ranges of
//! the IANA special-purpose registries are refused, nothing is connected to; an allowed range still opens.

use crate::support::sync;
use hookwire_client::DeviceSession;
use hookwire_tests::{FakeReceiver, Fixture, TestKernel};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The addresses of issue 13 that were connected to rather than refused.
const ISSUE_ADDRESSES: &[&str] =
    &["::7f00:1", "::ffff:0:7f00:1", "64:ff9b:1::7f00:1", "2002:7f00:1::1", "2001::1", "fec0::1", "3fff::1", "5f00::1"];

/// A listener on every local address (dual-stack `[::]` when the machine has IPv6, else `127.0.0.1`) that counts
/// the connections it accepts and answers none: whatever local address a delivery reached, it would show here.
struct ConnectionSink {
    port: u16,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectionSink {
    async fn start() -> ConnectionSink {
        let listener = match tokio::net::TcpListener::bind("[::]:0").await {
            Ok(listener) => listener,
            Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the sink"),
        };
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                open.push(stream);
            }
        });
        ConnectionSink { port, accepted, task }
    }
}

impl Drop for ConnectionSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A device session that receives the device's own `hook-*` events.
async fn hook_session(kernel: &TestKernel, fixture: &Fixture) -> DeviceSession {
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{}/hook-", fixture.device_id)).await.unwrap();
    sync(&mut session).await;
    session
}

/// Publishes `name` and returns the text of the first `hook-error` it causes (15 s at most).
async fn hook_error_of(session: &mut DeviceSession, fixture: &Fixture, name: &str) -> String {
    session.publish(name, "x").await.unwrap();
    let expected = format!("{}/hook-error/{name}/0", fixture.device_id);
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let event = session.next_event().await.expect("session open").expect("session not ended");
            if event.name == expected {
                return event.data;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {expected} within 15 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_literals_that_carry_loopback_or_sit_in_special_purpose_ranges_are_blocked_and_never_connected() {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.allow_destination.clear();
        // Today's main tried to connect to these; a short timeout keeps its failure quick.
        settings.connect_timeout_ms = 1000;
        settings.sleep_enabled = false;
    })
    .await;
    let sink = ConnectionSink::start().await;
    let fixture = kernel.fixture().await;
    for (index, address) in ISSUE_ADDRESSES.iter().enumerate() {
        // Written out, the address is refused when the webhook is created; rendered, when it is delivered.
        let literal = format!("http://[{address}]:{}/", sink.port);
        let refused =
            fixture.admin.create_webhook(&fixture.group_id, json!({"event": "x", "url": literal}).to_string()).await;
        assert!(format!("{refused:?}").contains("is in the blocked range"), "{address}: {refused:?}");
        let rendered = format!("http://{{{{! the host is rendered at delivery }}}}[{address}]:{}/", sink.port);
        fixture.webhook(json!({"event": format!("literal{index}"), "url": rendered})).await;
    }
    let mut session = hook_session(&kernel, &fixture).await;

    for (index, address) in ISSUE_ADDRESSES.iter().enumerate() {
        let error = hook_error_of(&mut session, &fixture, &format!("literal{index}")).await;
        assert!(error.starts_with(&format!("BLOCKED: destination [{address}]")), "{address}: {error}");
        assert!(error.contains("is in the blocked range"), "{address}: {error}");
    }
    assert_eq!(sink.accepted.load(Ordering::SeqCst), 0, "no connection reached a local address");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_range_still_opens_its_addresses_in_ipv6_form() {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.allow_destination = vec!["127.0.0.0/8".parse().unwrap(), "fec0::/10".parse().unwrap()];
        settings.connect_timeout_ms = 1000;
        settings.sleep_enabled = false;
    })
    .await;
    let receiver = FakeReceiver::start().await;
    let port = receiver.base_url.rsplit(':').next().unwrap().to_owned();
    let fixture = kernel.fixture().await;
    // 127.0.0.1 as an IPv4-mapped literal: allowed through 127.0.0.0/8, delivered to the IPv4 receiver.
    fixture.webhook(json!({"event": "mapped", "url": format!("http://[::ffff:7f00:1]:{port}/mapped")})).await;
    // 10.0.0.1 carried by 6to4: 10.0.0.0/8 is not allowed, so it stays blocked.
    // (Rendered at delivery: written out, it is refused when the webhook is created.)
    let rendered = format!("http://{{{{! the host is rendered at delivery }}}}[2002:a00:1::1]:{port}/");
    fixture.webhook(json!({"event": "carried", "url": rendered})).await;
    // fec0::/10 allowed: tried (nothing listens there), so whatever the error, it is not a refusal.
    fixture.webhook(json!({"event": "sitelocal", "url": format!("http://[fec0::1]:{port}/")})).await;
    let mut session = hook_session(&kernel, &fixture).await;

    session.publish("mapped", "x").await.unwrap();
    let requests = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 1, "the allowed IPv4-mapped destination was delivered to");
    assert_eq!(requests[0].path, "/mapped");
    let error = hook_error_of(&mut session, &fixture, "carried").await;
    assert!(error.starts_with("BLOCKED: destination [2002:a00:1::1]"), "{error}");
    assert!(error.contains("10.0.0.1 is in the blocked range 10.0.0.0/8"), "{error}");
    let error = hook_error_of(&mut session, &fixture, "sitelocal").await;
    assert!(!error.starts_with("BLOCKED"), "fec0::/10 is allowed: {error}");
    kernel.stop().await;
}
