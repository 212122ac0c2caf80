//! Answers flow back: what destinations answer becomes events for the triggering device (`hook-response`,
//! `hook-error`, Blynk pin writes), devices subscribe by prefix, a slow device loses events without slowing the
//! kernel, and `hook-*` events never trigger webhooks.

use crate::support::{MARKER, event_named, events_before_marker, sync};
use base64::Engine as _;
use hookwire_client::DeviceSession;
use hookwire_client::proto::Event;
use hookwire_client::proto::kernel_message::Kind;
use hookwire_tests::{FakeReceiver, Reply, TestKernel};
use serde_json::json;
use std::time::Duration;

/// Reads events until one named `name` arrives (10 s at most) and returns every event read, that one last.
/// Events of one subscriber arrive in the order they were published, so a marker published after something
/// proves that the something, had it been delivered, came before it.
async fn events_until(session: &mut DeviceSession, name: &str) -> Vec<Event> {
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = session.next_event().await.expect("session open").expect("session not ended");
            let done = event.name == name;
            events.push(event);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event named {name} within 10 s; got {events:?}"));
    events
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchunked_response_is_one_event_and_one_above_the_maximum_is_a_hook_error() {
    let kernel = TestKernel::spawn_with(|settings| settings.max_response_event_bytes = 2000).await;
    let fitting = FakeReceiver::start().await;
    fitting.respond(200, "a".repeat(1300));
    let oversized = FakeReceiver::start().await;
    oversized.respond(200, "b".repeat(2500));
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "fits", "url": fitting.base_url, "unchunked": true})).await;
    fixture.webhook(json!({"event": "toobig", "url": oversized.base_url, "unchunked": true})).await;
    let device = &fixture.device_id;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{device}/hook-")).await.unwrap();
    session.subscribe(MARKER).await.unwrap();
    sync(&mut session).await;

    // A delivery's response events are put on the bus together: once the first arrived, a marker published
    // after it comes after all of them.
    session.publish("fits", "1").await.unwrap();
    let response = event_named(&mut session, &format!("{device}/hook-response/fits/0")).await;
    assert_eq!(response.data, "a".repeat(1300));
    assert_eq!(names(&events_before_marker(&mut session).await), [] as [&str; 0], "one event, not 512-byte chunks");

    session.publish("toobig", "1").await.unwrap();
    let error = event_named(&mut session, &format!("{device}/hook-error/toobig/0")).await;
    assert_eq!(error.data, "response of 2500 bytes is larger than the maximum of 2000 for an unchunked response");
    assert_eq!(names(&events_before_marker(&mut session).await), [] as [&str; 0], "an error and no hook-response");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_response_arrives_as_a_data_url_when_the_webhook_asks_for_one() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let body: Vec<u8> = (0..4).flat_map(|_| 0..=255u8).collect();
    receiver.reply_with(Reply {
        body: body.clone().into(),
        headers: vec![("content-type".into(), "image/png".into())],
        ..Reply::default()
    });
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "picture", "url": receiver.base_url, "dataUrlResponseEvent": true})).await;
    let topic = format!("{}/hook-response/picture/", fixture.device_id);
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(topic.clone()).await.unwrap();
    sync(&mut session).await;

    session.publish("picture", "1").await.unwrap();
    let prefix = "data:image/png;base64,";
    let expected_len = prefix.len() + body.len().div_ceil(3) * 4;
    let mut url = String::new();
    for index in 0.. {
        url.push_str(&event_named(&mut session, &format!("{topic}{index}")).await.data);
        if url.len() >= expected_len {
            assert!(index > 0, "a 1024-byte body makes a data URL of several chunks");
            break;
        }
    }
    let encoded = url.strip_prefix(prefix).unwrap_or_else(|| panic!("not a PNG data URL: {url:.60}"));
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap(), body);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_triggering_device_receives_responses_whatever_their_topic_and_admins_see_them() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(200, "sunny");
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "weather", "url": receiver.base_url})).await;
    fixture
        .webhook(
            json!({"event": "weather", "url": receiver.base_url, "responseTopic": "forecast/{{PARTICLE_EVENT_NAME}}"}),
        )
        .await;
    let (_, other_token) = fixture.another_device().await;
    let mut admin_stream = fixture.admin.subscribe(fixture.group_id.clone(), "").await.unwrap();
    let mut triggering = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    let mut other = kernel.device(&other_token).await.open_session().await.unwrap();
    for session in [&mut triggering, &mut other] {
        session.subscribe("").await.unwrap();
        sync(session).await;
    }

    triggering.publish("weather", "Chicago").await.unwrap();
    let response = format!("{}/hook-response/weather/0", fixture.device_id);
    let mut expected = vec![response.clone(), "forecast/weather/0".to_owned()];
    while !expected.is_empty() {
        let event = tokio::time::timeout(Duration::from_secs(10), triggering.next_event())
            .await
            .unwrap_or_else(|_| panic!("still waiting for {expected:?} after 10 s"))
            .unwrap()
            .expect("session open");
        if let Some(position) = expected.iter().position(|name| *name == event.name) {
            assert_eq!(event.data, "sunny");
            expected.remove(position);
        }
    }

    other.publish("marker", "").await.unwrap();
    let seen = events_until(&mut other, "marker").await;
    assert!(seen.iter().any(|event| event.name == "weather"), "the device event itself is the group's: {seen:?}");
    assert!(
        seen.iter().all(|event| !event.name.contains("hook-response") && !event.name.starts_with("forecast/")),
        "another device never sees the triggering device's responses: {:?}",
        names(&seen)
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while admin_stream.next().await.unwrap().expect("stream open").name != response {}
    })
    .await
    .expect("an admin subscriber sees the response");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_events_never_trigger_webhooks_and_devices_cannot_publish_them() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(200, "pong");
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "", "url": receiver.base_url})).await;
    let device = &fixture.device_id;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe("").await.unwrap();
    sync(&mut session).await;

    session.publish("ping", "1").await.unwrap();
    event_named(&mut session, &format!("{device}/hook-response/ping/0")).await;
    // The webhook matches every name: the marker's own delivery comes after whatever the hook events triggered.
    session.publish("marker", "1").await.unwrap();
    event_named(&mut session, &format!("{device}/hook-response/marker/0")).await;
    let event_of = |form: Vec<(String, String)>| form.into_iter().find(|(name, _)| name == "event").unwrap().1;
    let events: Vec<String> = receiver.requests().into_iter().map(|request| event_of(request.form())).collect();
    assert_eq!(events, ["ping", "marker"], "hook-sent and hook-response/ping/0 triggered nothing");

    for name in ["hook-sent/ping".to_owned(), format!("{device}/hook-response/ping/0"), "hook-error".to_owned()] {
        let refused = session.publish(name.as_str(), "x").await.unwrap_err();
        assert_eq!(refused.code(), Some(tonic::Code::InvalidArgument), "{name}: {refused}");
    }
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_receives_each_of_its_prefixes_until_it_unsubscribes() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let (_, other_token) = fixture.another_device().await;
    let publisher = kernel.device(&other_token).await;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe("kitchen/").await.unwrap();
    session.subscribe("garage/").await.unwrap();
    sync(&mut session).await;

    for name in ["kitchen/temp", "cellar/temp", "garage/door"] {
        publisher.publish(name, "1").await.unwrap();
    }
    assert_eq!(names(&events_until(&mut session, "garage/door").await), ["kitchen/temp", "garage/door"]);

    session.unsubscribe("kitchen/").await.unwrap();
    sync(&mut session).await;
    for name in ["kitchen/temp", "garage/door"] {
        publisher.publish(name, "2").await.unwrap();
    }
    assert_eq!(names(&events_until(&mut session, "garage/door").await), ["garage/door"]);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_does_not_read_loses_events_with_an_overflow_report_and_never_slows_the_kernel() {
    // The events must outgrow what HTTP/2 buffers between the kernel and the device (a 2 MiB stream window plus
    // send buffers) before the kernel's own queue of 4 fills: 50 events of 120 kB are 6 MB.
    const NUM_EVENTS: usize = 50;
    let kernel = TestKernel::spawn_with(|settings| {
        settings.subscriber_queue = 4;
        settings.max_data_bytes = 128 * 1024;
    })
    .await;
    let fixture = kernel.fixture().await;
    let (_, publisher_token) = fixture.another_device().await;
    let mut slow = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    slow.subscribe("").await.unwrap();
    sync(&mut slow).await;

    let publisher = kernel.device(&publisher_token).await;
    for index in 0..NUM_EVENTS {
        let data = format!("{index:02}{}", "x".repeat(120_000));
        publisher.publish("reading", data).await.unwrap_or_else(|error| panic!("publish {index}: {error}"));
    }

    // Everything published is either received, in order, or reported dropped; the report comes before the
    // events that followed the loss.
    let mut received: Vec<usize> = Vec::new();
    let mut num_dropped = 0;
    let mut num_received_before_overflow = None;
    while received.len() + num_dropped < NUM_EVENTS {
        let message = tokio::time::timeout(Duration::from_secs(10), slow.next_message())
            .await
            .unwrap_or_else(|_| panic!("{} received and {num_dropped} dropped after 10 s", received.len()))
            .unwrap()
            .expect("session open");
        match message.kind {
            Some(Kind::Event(event)) => received.push(event.data[..2].parse().unwrap()),
            Some(Kind::Overflow(overflow)) => {
                num_received_before_overflow.get_or_insert(received.len());
                num_dropped += usize::try_from(overflow.num_dropped).unwrap();
            }
            _ => {}
        }
    }
    let num_before = num_received_before_overflow.expect("an Overflow report");
    assert!(num_dropped > 0);
    assert!(num_before < received.len(), "events follow the report: {num_before} of {}", received.len());
    assert_eq!(received, (0..received.len()).collect::<Vec<_>>(), "the oldest are kept, in order; the newest dropped");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blynk_webhook_writes_the_answer_back_to_the_pin_of_the_triggering_device_only() {
    let kernel = TestKernel::spawn_with(|settings| settings.max_pin_response_bytes = 100).await;
    let answering = FakeReceiver::start().await;
    answering.respond(200, "42");
    let oversized = FakeReceiver::start().await;
    oversized.respond(200, "7".repeat(101));
    let fixture = kernel.fixture().await;
    let blynk = |pin: &str, url: &str| json!({"event": pin, "url": format!("{url}/update?value=/pin/"), "requestType": "GET", "x-dialect": "blynk", "noDefaults": true});
    fixture.webhook(blynk("V0", &answering.base_url)).await;
    fixture.webhook(blynk("V1", &oversized.base_url)).await;
    let (_, other_token) = fixture.another_device().await;
    let device = &fixture.device_id;
    let mut triggering = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    let mut other = kernel.device(&other_token).await.open_session().await.unwrap();
    for prefix in ["V", &format!("{device}/hook-"), MARKER] {
        triggering.subscribe(prefix).await.unwrap();
    }
    sync(&mut triggering).await;
    other.subscribe("").await.unwrap();
    sync(&mut other).await;

    triggering.publish("V0", "1").await.unwrap();
    assert_eq!(answering.first_request().await.query.as_deref(), Some("value=1"));
    let mut events = Vec::new();
    while !events.iter().any(|event: &Event| event.data == "42") {
        let event = tokio::time::timeout(Duration::from_secs(10), triggering.next_event()).await;
        events.push(event.expect("the pin write within 10 s").unwrap().expect("session open"));
    }
    events.extend(events_before_marker(&mut triggering).await);
    let mut pairs: Vec<(&str, &str)> = events.iter().map(|event| (event.name.as_str(), event.data.as_str())).collect();
    pairs.sort_unstable();
    assert_eq!(pairs, [("V0", "1"), ("V0", "42")], "the device's own event and the answer on the pin, nothing else");

    triggering.publish("V1", "1").await.unwrap();
    let error = event_named(&mut triggering, &format!("{device}/hook-error/V1/0")).await;
    assert_eq!(error.data, "response of 101 bytes is larger than the maximum of 100 for a pin");
    let events = events_before_marker(&mut triggering).await;
    assert!(events.iter().all(|event| event.data.len() < 100), "nothing written to V1: {events:?}");

    other.publish("marker", "").await.unwrap();
    let seen = events_until(&mut other, "marker").await;
    assert!(
        seen.iter().all(|event| !event.name.starts_with('V') || event.data == "1"),
        "another device sees the pin writes of the devices, never the answers: {seen:?}"
    );
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_errors_say_what_went_wrong_and_with_which_host() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(404, "not here");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "missing", "url": format!("{}/missing", receiver.base_url)})).await;
    fixture.webhook(json!({"event": "closed", "url": format!("http://127.0.0.1:{closed_port}/")})).await;
    let device = &fixture.device_id;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{device}/hook-error/")).await.unwrap();
    sync(&mut session).await;

    session.publish("missing", "1").await.unwrap();
    let error = event_named(&mut session, &format!("{device}/hook-error/missing/0")).await;
    assert_eq!(error.data, "error status 404 from 127.0.0.1");

    session.publish("closed", "1").await.unwrap();
    let error = event_named(&mut session, &format!("{device}/hook-error/closed/0")).await;
    assert!(error.data.starts_with("ECONNREFUSED connecting to 127.0.0.1"), "{}", error.data);
    kernel.stop().await;
}

/// The kernel's HTTP/2 connections start with small buffers (a 1 KiB read buffer and a write buffer allocated on
/// use: vendor/h2/HOOKWIRE.md), so that idle devices cost little. Messages larger than those buffers still cross
/// a session whole, in both directions: publishes of the largest data allowed, many in flight, and one 90 KiB
/// response event, larger than h2's 16 KiB write buffer and its 16 KiB frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_carries_messages_larger_than_its_connections_first_buffers() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let body: String = (0..90 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    receiver.respond(200, body.clone());
    let fixture = kernel.fixture().await;
    fixture.webhook(json!({"event": "big", "url": receiver.base_url, "unchunked": true})).await;
    let device = &fixture.device_id;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{device}/hook-response/")).await.unwrap();
    sync(&mut session).await;

    let data: String = (0..1024).map(|i| char::from(b'A' + (i % 26) as u8)).collect();
    for _ in 0..64 {
        session.send_publish("filler", data.clone()).await.unwrap();
    }
    let ack = session.publish("big", data.clone()).await.unwrap();
    assert_eq!(ack.num_deliveries, 1);

    let events = events_until(&mut session, &format!("{device}/hook-response/big/0")).await;
    let response = events.last().unwrap();
    assert_eq!(response.data.len(), body.len());
    assert!(response.data == body, "the 90 KiB response event arrived changed");
    let requests = receiver.wait_for(1, Duration::from_secs(10)).await;
    let form = requests[0].form();
    assert!(form.contains(&("data".to_owned(), data)), "the largest publish arrived whole: {form:?}");
    kernel.stop().await;
}
