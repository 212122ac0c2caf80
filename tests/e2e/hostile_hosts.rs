//! Hostile destinations (issue 13, item 3): a URL whose host or port comes from event data must not grow the
//! kernel's per-host state without bound. A destination refused by the egress rules gets no host actor and no
//! series of its own, idle host actors stop and take their metric series with them, and the number of host actors
//! is capped; a healthy group's deliveries keep flowing throughout.

use crate::support::{http_get, sample, sync};
use hookwire_tests::{FakeReceiver, Fixture, TestKernel};
use serde_json::json;
use std::time::Duration;

/// Scrapes until `done` holds for the text (10 s at most); returns the last text.
async fn scrape_until(metrics_url: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = http_get(metrics_url).await.1;
        if done(&text) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} within 10 s; last scrape:\n{}", tail(&text));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last lines of a long text, for assertion messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Publishes `count` events named `tick` from the healthy fixture and checks that the receiver gets them all.
async fn healthy_ticks_flow(kernel: &TestKernel, healthy: &Fixture, receiver: &FakeReceiver, count: usize) {
    let before = receiver.requests().len();
    let device = kernel.device(&healthy.device_token).await;
    for index in 0..count {
        assert_eq!(device.publish("tick", index.to_string()).await.unwrap().num_deliveries, 1);
    }
    let received = receiver.wait_for(before + count, Duration::from_secs(10)).await;
    assert_eq!(received.len(), before + count, "every healthy delivery arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_from_event_data_that_the_egress_rules_refuse_leave_no_host_state_and_idle_hosts_go() {
    const NUM_HOSTILE: usize = 3000;
    let kernel = TestKernel::spawn_with(|settings| {
        // Only the receiver's address is allowed: 127.0.0.2 and up are refused, as any loopback is by default.
        settings.allow_destination = vec!["127.0.0.1/32".parse().unwrap()];
        settings.metrics_listen = Some(([127, 0, 0, 1], 0).into());
        settings.host_idle_secs = 1;
    })
    .await;
    let metrics_url = kernel.metrics_url.clone().expect("a metrics endpoint");
    let receiver = FakeReceiver::start().await;
    let healthy = kernel.fixture().await;
    healthy.webhook(json!({"event": "tick", "url": format!("{}/healthy", receiver.base_url)})).await;
    let hostile = kernel.fixture().await;
    let hostile_webhook = hostile.webhook(json!({"event": "probe", "url": "http://127.0.0.{{{n}}}:{{{p}}}/"})).await;

    healthy_ticks_flow(&kernel, &healthy, &receiver, 5).await;
    // Thousands of distinct destinations, from event data, sent as fast as the session takes them.
    let mut session = kernel.device(&hostile.device_token).await.open_session().await.unwrap();
    for index in 0..NUM_HOSTILE {
        let data = json!({"n": 2 + index % 250, "p": 1024 + index}).to_string();
        session.send_publish("probe", data).await.unwrap();
    }
    sync(&mut session).await;
    healthy_ticks_flow(&kernel, &healthy, &receiver, 5).await;

    // Every hostile attempt was refused before any host actor, and counted under `other`, not per host.
    let blocked = "hookwire_attempts_total{host=\"other\",outcome=\"not_sent\",class=\"BLOCKED\"}";
    let text = scrape_until(&metrics_url, "every hostile attempt refused", |text| {
        sample(text, blocked) == Some(NUM_HOSTILE as f64)
    })
    .await;
    let hostile_series =
        text.lines().filter(|line| line.contains("host=\"http://127.0.0.") && !line.contains(&receiver.base_url));
    assert_eq!(hostile_series.count(), 0, "no series for refused destinations:\n{}", tail(&text));
    assert!(sample(&text, "hookwire_host_actors").is_some_and(|num| num <= 1.0), "{}", tail(&text));
    assert!(text.len() < 64 * 1024, "the scrape stays small: {} bytes", text.len());
    let recent = hostile.admin.recent_attempts(hostile_webhook, None).await.unwrap();
    assert!(recent.iter().all(|attempt| attempt.error_class == "BLOCKED"), "{recent:?}");

    // The healthy host's actor stops once idle, and its series go with it; a new delivery starts it again.
    let healthy_series = format!("hookwire_attempts_total{{host=\"{}\"", receiver.base_url);
    let text = scrape_until(&metrics_url, "the idle host actor stops", |text| {
        sample(text, "hookwire_host_actors") == Some(0.0) && !text.contains(&healthy_series)
    })
    .await;
    assert!(!text.contains(&format!("host=\"{}\"", receiver.base_url)), "{}", tail(&text));
    healthy_ticks_flow(&kernel, &healthy, &receiver, 3).await;
    let success = format!("hookwire_attempts_total{{host=\"{}\",outcome=\"success\",class=\"\"}}", receiver.base_url);
    scrape_until(&metrics_url, "the host's series again", |text| sample(text, &success) == Some(3.0)).await;
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_destinations_beyond_max_host_actors_fail_with_host_limit_while_known_hosts_keep_flowing() {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.max_host_actors = 3;
        settings.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let metrics_url = kernel.metrics_url.clone().expect("a metrics endpoint");
    let receiver = FakeReceiver::start().await;
    let healthy = kernel.fixture().await;
    healthy.webhook(json!({"event": "tick", "url": format!("{}/healthy", receiver.base_url)})).await;
    healthy_ticks_flow(&kernel, &healthy, &receiver, 2).await;

    // Allowed destinations (loopback is allowed in tests) with nothing listening: each would need an actor.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hostile = kernel.fixture().await;
    let webhook_id =
        hostile.webhook(json!({"event": "probe", "url": format!("http://127.0.0.{{{{{{n}}}}}}:{port}/")})).await;
    let device = kernel.device(&hostile.device_token).await;
    for n in 2..12 {
        device.publish("probe", json!({"n": n}).to_string()).await.unwrap();
    }
    let attempts = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let attempts = hostile.admin.recent_attempts(webhook_id.clone(), None).await.unwrap();
            if attempts.len() >= 10 {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("10 attempts recorded within 10 s");
    let limited: Vec<_> = attempts.iter().filter(|attempt| attempt.error_class == "HOST_LIMIT").collect();
    assert_eq!(limited.len(), 8, "2 more hosts fit under the cap of 3: {attempts:?}");
    assert!(limited[0].error_message.contains("max_host_actors"), "{:?}", limited[0]);
    healthy_ticks_flow(&kernel, &healthy, &receiver, 3).await;
    let text = http_get(&metrics_url).await.1;
    assert_eq!(sample(&text, "hookwire_host_actors"), Some(3.0), "{}", tail(&text));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_resolve_to_refused_addresses_keep_no_host_actor_once_refused() {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.allow_destination = vec!["127.0.0.1/32".parse().unwrap()];
        settings.metrics_listen = Some(([127, 0, 0, 1], 0).into());
        // Far longer than the test: only the refusal can make these actors go.
        settings.host_idle_secs = 3600;
    })
    .await;
    let metrics_url = kernel.metrics_url.clone().expect("a metrics endpoint");
    let receiver = FakeReceiver::start().await;
    let healthy = kernel.fixture().await;
    healthy.webhook(json!({"event": "tick", "url": format!("{}/healthy", receiver.base_url)})).await;
    healthy_ticks_flow(&kernel, &healthy, &receiver, 2).await;

    // `127.N` is a name to hookwire (not an address literal) that the system resolver reads as 127.0.0.N: the
    // refusal comes from the connect-time check, after a host actor was started for it.
    let hostile = kernel.fixture().await;
    let webhook_id = hostile.webhook(json!({"event": "probe", "url": "http://127.{{{n}}}:8080/"})).await;
    let mut session = kernel.device(&hostile.device_token).await.open_session().await.unwrap();
    for n in 2..202 {
        session.send_publish("probe", json!({"n": n}).to_string()).await.unwrap();
    }
    sync(&mut session).await;
    let recent = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let recent = hostile.admin.recent_attempts(webhook_id.clone(), None).await.unwrap();
            if recent.len() >= 10 {
                return recent;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("attempts recorded within 10 s");
    assert!(recent.iter().all(|attempt| attempt.error_class == "BLOCKED"), "{recent:?}");
    healthy_ticks_flow(&kernel, &healthy, &receiver, 2).await;

    let text = scrape_until(&metrics_url, "the refused names' actors and series go", |text| {
        sample(text, "hookwire_host_actors") == Some(1.0) && !text.contains("host=\"http://127.2:8080\"")
    })
    .await;
    let named_series =
        text.lines().filter(|line| line.contains("host=\"http://127.") && !line.contains(&receiver.base_url));
    assert_eq!(named_series.count(), 0, "{}", tail(&text));
    healthy_ticks_flow(&kernel, &healthy, &receiver, 2).await;
    kernel.stop().await;
}
