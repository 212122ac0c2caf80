//! Events across kernels (issue 14 point 6, docs/cluster.md "Events across kernels"): two kernels on one
//! PostgreSQL database; what happens on one reaches the subscribers of the other (admin `Subscribe` streams and
//! device sessions), once, and a device's private `hook-*` events reach only that device. Skipped (with the reason
//! printed) without `HOOKWIRE_TEST_POSTGRES`.

use crate::support::{MARKER, event_named, sync};
use hookwire_client::proto::Event;
use hookwire_client::{DeviceClient, DeviceSession, EventStream};
use hookwire_tests::{FakeReceiver, TestKernel};
use serde_json::json;
use sqlx::Row as _;
use std::time::Duration;

/// Two kernels on one fresh PostgreSQL database (the first configured by `configure`), or `None` (the reason
/// printed) without one.
async fn two_kernels(
    configure: impl FnOnce(&mut hookwire_kernel::settings::Settings),
) -> Option<(TestKernel, TestKernel)> {
    let first = TestKernel::spawn_with(configure).await;
    if !first.settings.database.starts_with("postgres") {
        eprintln!(
            "skipped: events cross kernels on a shared PostgreSQL database only; run it with HOOKWIRE_TEST_POSTGRES"
        );
        first.stop().await;
        return None;
    }
    let database = first.settings.database.clone();
    let second = TestKernel::spawn_with(|settings| settings.database = database).await;
    Some((first, second))
}

/// Publishes a [`MARKER`] event through each of `publishers` (one per kernel), so that a subscriber on any kernel
/// has seen everything published before on either kernel, duplicates and echoes included, once it has seen both
/// markers: events from one kernel arrive in the order that kernel published them.
async fn publish_markers(publishers: [&DeviceClient; 2]) {
    for (index, publisher) in publishers.into_iter().enumerate() {
        publisher.publish(MARKER, index.to_string()).await.unwrap();
    }
}

/// Reads a session's events until both markers of [`publish_markers`] arrived (10 s at most); returns the others.
async fn session_events(session: &mut DeviceSession) -> Vec<Event> {
    let mut events = Vec::new();
    let mut num_markers = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while num_markers < 2 {
            let event = session.next_event().await.expect("session open").expect("session not ended");
            if event.name == MARKER { num_markers += 1 } else { events.push(event) }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{num_markers} of 2 markers within 10 s; got {:?}", names(&events)));
    events
}

/// Reads a stream's events until one named `last` arrives (10 s at most); returns them all, that one last.
async fn stream_events(stream: &mut EventStream, last: &str) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !events.iter().any(|event| event.name == last) {
            events.push(stream.next().await.expect("stream open").expect("stream not ended"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event named {last} within 10 s; got {:?}", names(&events)));
    events
}

/// Reads a stream's events until both markers of [`publish_markers`] arrived (10 s at most); returns the others.
async fn stream_events_before_markers(stream: &mut EventStream) -> Vec<Event> {
    let mut events = stream_events(stream, MARKER).await;
    events.extend(stream_events(stream, MARKER).await);
    events.retain(|event| event.name != MARKER);
    events
}

/// The names of `events`, but for the warm-up events of [`until_heard`].
fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.name.as_str()).filter(|name| !name.starts_with("warmup/")).collect()
}

/// Opens a stream on `b` for the group's `warmup/` events and publishes them through `publisher`, a client of the
/// other kernel, until one arrives: from then on, the other kernel knows that `b` has subscribers for the group
/// (kernels announce theirs every second, and at once for a new group) and sends it the group's events.
/// Returns the stream and the number of warm-up events published.
async fn until_heard(b: &TestKernel, group_id: &str, publisher: &DeviceClient) -> (EventStream, u64) {
    let mut stream = b.admin().await.subscribe(group_id.to_owned(), "warmup/").await.unwrap();
    for attempt in 0..100 {
        publisher.publish(format!("warmup/{attempt}"), "").await.unwrap();
        if tokio::time::timeout(Duration::from_millis(100), stream.next()).await.is_ok() {
            return (stream, attempt + 1);
        }
    }
    panic!("the other kernel never sent this group's events to this one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_on_one_kernel_sees_the_events_and_hook_events_made_on_another_once_each() {
    let Some((a, b)) = two_kernels(|_| {}).await else { return };
    let receiver = FakeReceiver::start().await;
    receiver.respond(200, "thanks");
    let fixture = a.fixture().await;
    fixture.webhook(json!({"event": "demo", "url": receiver.base_url})).await;
    let device = &fixture.device_id;
    let mut on_b = b.admin().await.subscribe(fixture.group_id.clone(), "").await.unwrap();
    let mut on_a = a.admin().await.subscribe(fixture.group_id.clone(), "").await.unwrap();
    let publisher = a.device(&fixture.device_token).await;
    let (_warmup, _) = until_heard(&b, &fixture.group_id, &publisher).await;
    let publisher_on_b = b.device(&fixture.device_token).await;
    let (_warmup, _) = until_heard(&a, &fixture.group_id, &publisher_on_b).await;

    publisher.publish("demo", "x").await.unwrap();

    let response = format!("{device}/hook-response/demo/0");
    let expected = ["demo", "hook-sent/demo", response.as_str()];
    let mut seen_on_b = stream_events(&mut on_b, &response).await;
    publish_markers([&publisher, &publisher_on_b]).await;
    seen_on_b.extend(stream_events_before_markers(&mut on_b).await);
    assert_eq!(names(&seen_on_b), expected, "B sees A's event and A's hook events, once each, in order");
    let seen_on_b: Vec<Event> = seen_on_b.into_iter().filter(|event| !event.name.starts_with("warmup/")).collect();
    assert_eq!(seen_on_b[0].data, "x");
    assert_eq!(seen_on_b[0].device_id, *device);
    assert_eq!(seen_on_b[2].data, "thanks");
    let seen_on_a = stream_events_before_markers(&mut on_a).await;
    assert_eq!(names(&seen_on_a), expected, "nothing comes back to A from B");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_session_on_one_kernel_gets_the_hook_response_of_its_event_delivered_by_another_and_only_it() {
    let Some((a, b)) = two_kernels(|_| {}).await else { return };
    let receiver = FakeReceiver::start().await;
    receiver.respond(200, "for you");
    let fixture = a.fixture().await;
    fixture.webhook(json!({"event": "demo", "url": receiver.base_url})).await;
    let device = &fixture.device_id;
    let (_, other_token) = fixture.another_device().await;
    // The device has a session on each kernel: it publishes on A and listens on B too.
    let mut publisher = a.device(&fixture.device_token).await.open_session().await.unwrap();
    let mut listener = b.device(&fixture.device_token).await.open_session().await.unwrap();
    for session in [&mut publisher, &mut listener] {
        session.subscribe(format!("{device}/hook-")).await.unwrap();
        session.subscribe(MARKER).await.unwrap();
        sync(session).await;
    }
    let mut other = b.device(&other_token).await.open_session().await.unwrap();
    other.subscribe("").await.unwrap();
    sync(&mut other).await;
    let (publisher_on_a, publisher_on_b) = (a.device(&fixture.device_token).await, b.device(&other_token).await);
    let (_warmup, _) = until_heard(&b, &fixture.group_id, &publisher_on_a).await;
    let (_warmup, _) = until_heard(&a, &fixture.group_id, &publisher_on_b).await;

    publisher.publish("demo", "x").await.unwrap();

    let response = format!("{device}/hook-response/demo/0");
    let first = event_named(&mut listener, &response).await;
    publish_markers([&publisher_on_a, &publisher_on_b]).await;
    let on_b = [vec![first], session_events(&mut listener).await].concat();
    assert_eq!(names(&on_b), [response.as_str()], "the session on B gets the response delivered by A, once");
    assert_eq!(on_b[0].data, "for you");
    let on_a = session_events(&mut publisher).await;
    assert_eq!(names(&on_a), [response.as_str()], "the session on A gets it once, nothing comes back from B");
    let on_other = session_events(&mut other).await;
    assert_eq!(
        names(&on_other),
        ["demo", "hook-sent/demo"],
        "another device of the group sees the group's events, not the private response"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_too_large_for_a_notify_cross_through_the_table() {
    let Some((a, b)) = two_kernels(|settings| settings.max_response_event_bytes = 30_000).await else { return };
    let receiver = FakeReceiver::start().await;
    let body: String = (0..20_000).map(|index| char::from(b'a' + (index % 26) as u8)).collect();
    receiver.respond(200, body.clone());
    let fixture = a.fixture().await;
    fixture.webhook(json!({"event": "big", "url": receiver.base_url, "unchunked": true})).await;
    let device = &fixture.device_id;
    let mut on_b = b.admin().await.subscribe(fixture.group_id.clone(), "").await.unwrap();
    let publisher = a.device(&fixture.device_token).await;
    let (_warmup, _) = until_heard(&b, &fixture.group_id, &publisher).await;

    publisher.publish("big", "x").await.unwrap();

    // Once the response arrived, a marker published after it on A comes after any copy of it.
    let response = format!("{device}/hook-response/big/0");
    let mut seen = stream_events(&mut on_b, &response).await;
    publisher.publish(MARKER, "").await.unwrap();
    seen.extend(stream_events(&mut on_b, MARKER).await);
    seen.retain(|event| event.name.starts_with(&format!("{device}/hook-response/")));
    assert_eq!(names(&seen), [response.as_str()]);
    assert_eq!(seen[0].data, body, "20,000 bytes, more than a NOTIFY carries, arrive whole");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&a.settings.database).await.unwrap();
    let rows = sqlx::query("SELECT COUNT(*) FROM cluster_events").fetch_one(&pool).await.unwrap();
    assert!(rows.get::<i64, _>(0) >= 1, "the batch went through the table");
    pool.close().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_again_once_the_listening_connections_were_terminated() {
    let Some((a, b)) = two_kernels(|_| {}).await else { return };
    let fixture = a.fixture().await;
    let mut on_b = b.admin().await.subscribe(fixture.group_id.clone(), "ping/").await.unwrap();
    let publisher = a.device(&fixture.device_token).await;
    let (_warmup, _) = until_heard(&b, &fixture.group_id, &publisher).await;
    publisher.publish("ping/before", "").await.unwrap();
    publisher.publish("ping/marker", "").await.unwrap();
    assert_eq!(names(&stream_events(&mut on_b, "ping/marker").await), ["ping/before", "ping/marker"]);

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&a.settings.database).await.unwrap();
    let terminated = sqlx::query(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN \"hookwire_events\"%') t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(terminated.get::<i64, _>(0) >= 2, "both kernels' listening connections were terminated");
    pool.close().await;

    // What was sent while B was not listening is lost (and counted); once B listens again, events cross again.
    let mut crossed = None;
    for attempt in 0..50 {
        let name = format!("ping/{attempt}");
        publisher.publish(name.clone(), "").await.unwrap();
        if let Ok(event) = tokio::time::timeout(Duration::from_millis(200), on_b.next()).await {
            crossed = Some(event.expect("stream open").expect("stream not ended").name);
            break;
        }
    }
    assert!(crossed.is_some(), "no event crossed after the listeners were terminated");
    a.stop().await;
    b.stop().await;
}

/// The value of the sample whose name and labels are exactly `sample` in the metrics at `url`.
async fn scrape(url: &str, sample: &str) -> f64 {
    crate::support::sample(&crate::support::http_get(url).await.1, sample).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_group_no_other_kernel_subscribes_to_stay_on_their_kernel() {
    let Some((a, b)) = two_kernels(|settings| settings.metrics_listen = Some(([127, 0, 0, 1], 0).into())).await else {
        return;
    };
    let receiver = FakeReceiver::start().await;
    let heard = a.fixture().await;
    let unheard = a.fixture().await;
    unheard.webhook(json!({"event": "local", "url": receiver.base_url})).await;
    // Only A has a subscriber for `unheard` (so A makes its hook events); B has one for `heard`.
    let mut on_a = a.admin().await.subscribe(unheard.group_id.clone(), "").await.unwrap();
    let heard_publisher = a.device(&heard.device_token).await;
    let (mut on_b, num_warmups) = until_heard(&b, &heard.group_id, &heard_publisher).await;

    let unheard_publisher = a.device(&unheard.device_token).await;
    for index in 0..20 {
        unheard_publisher.publish("local", index.to_string()).await.unwrap();
    }
    assert_eq!(names(&stream_events(&mut on_a, "hook-sent/local").await)[0], "local", "A's own subscriber hears");
    heard_publisher.publish("warmup/marker", "").await.unwrap();
    let marker = tokio::time::timeout(Duration::from_secs(10), on_b.next()).await.expect("the marker crosses");
    assert_eq!(marker.unwrap().unwrap().name, "warmup/marker");
    // Had any of the unheard group's events been sent, they would have been sent (and counted) before the marker.

    let metrics_url = a.metrics_url.clone().expect("a metrics endpoint");
    let sent = scrape(&metrics_url, r#"hookwire_cluster_events_total{outcome="sent"}"#).await;
    assert!(sent >= 1.0, "the marker was sent");
    assert!(
        sent <= (num_warmups + 1) as f64,
        "only the heard group's events crossed ({sent} sent, {num_warmups} warm-ups and a marker published)"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_while_a_kernel_could_not_listen_are_re_read_once_it_listens_again() {
    let Some((a, b)) = two_kernels(|settings| settings.metrics_listen = Some(([127, 0, 0, 1], 0).into())).await else {
        return;
    };
    let fixture = a.fixture().await;
    let mut on_b = b.admin().await.subscribe(fixture.group_id.clone(), "ping/").await.unwrap();
    let publisher = a.device(&fixture.device_token).await;
    let (_warmup, _) = until_heard(&b, &fixture.group_id, &publisher).await;
    let metrics_url = a.metrics_url.clone().expect("a metrics endpoint");
    let sent = r#"hookwire_cluster_events_total{outcome="sent"}"#;
    let sent_before = scrape(&metrics_url, sent).await;

    // The listening connections are cut, and cannot come back while the database refuses new connections (the
    // kernels' pools keep theirs): what A sends meanwhile is not notified to B.
    sqlx::any::install_default_drivers();
    let url = &a.settings.database;
    let (server, database) = url.rsplit_once('/').expect("a database name in the URL");
    let database = database.split('?').next().unwrap_or(database).to_owned();
    // A database's connections can be refused only from another database.
    let pool = sqlx::AnyPool::connect(&format!("{server}/postgres")).await.unwrap();
    let allow = |allowed: bool| format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allowed}");
    sqlx::query(sqlx::AssertSqlSafe(allow(false))).execute(&pool).await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 \
         AND query LIKE 'LISTEN \"hookwire_events\"%'",
    )
    .bind(database.as_str())
    .execute(&pool)
    .await
    .unwrap();
    publisher.publish("ping/gap", "").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while scrape(&metrics_url, sent).await <= sent_before {
        assert!(tokio::time::Instant::now() < deadline, "A did not send ping/gap within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(allow(true))).execute(&pool).await.unwrap();
    pool.close().await;

    // B listens again, re-reads what it missed, and its subscriber gets it once.
    assert_eq!(names(&stream_events(&mut on_b, "ping/gap").await), ["ping/gap"]);
    a.stop().await;
    b.stop().await;
}
