//! Helpers shared by the suites.

use hookwire_client::DeviceSession;
use hookwire_client::proto::kernel_message::Kind;
use std::time::Duration;

/// Waits until every message sent on the session so far has been handled, by sending a ping and waiting for
/// its pong (the kernel handles a session's messages in order). Returns the events that arrived meanwhile.
pub async fn sync(session: &mut DeviceSession) -> Vec<hookwire_client::proto::Event> {
    let nonce = 0x5eed;
    session.ping(nonce).await.expect("ping");
    let mut events = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), session.next_message())
            .await
            .expect("pong within 10 s")
            .expect("session open")
            .expect("session not ended");
        match message.kind {
            Some(Kind::Pong(pong)) if pong.nonce == nonce => return events,
            Some(Kind::Event(event)) => events.push(event),
            _ => {}
        }
    }
}

/// Reads events from a session until one named `name` arrives (10 s at most).
pub async fn event_named(session: &mut DeviceSession, name: &str) -> hookwire_client::proto::Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = session.next_event().await.expect("session open").expect("session not ended");
            if event.name == name {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event named {name} within 10 s"))
}

/// True when `text` is ISO-8601 UTC with milliseconds (`2026-11-22T10:34:05.123Z`).
pub fn is_iso8601_ms(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            10 => *byte == b'T',
            13 | 16 => *byte == b':',
            19 => *byte == b'.',
            23 => *byte == b'Z',
            _ => byte.is_ascii_digit(),
        })
}

/// The name of the event a test publishes to learn that everything published before it has reached a session.
pub const MARKER: &str = "marker";

/// Publishes a [`MARKER`] event from the session's device and reads the session's events until it comes back;
/// returns the events read before it. Events of one subscriber arrive in the order they were published, so
/// whatever reached the session's queue before the marker was published is among them: a test proves that
/// nothing (more) happened by waiting for the event that must come after, not for a time. The session must be
/// subscribed to [`MARKER`], and no webhook of the test may match it.
pub async fn events_before_marker(session: &mut DeviceSession) -> Vec<hookwire_client::proto::Event> {
    session.publish(MARKER, "").await.expect("publish the marker");
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = session.next_event().await.expect("session open").expect("session not ended");
            if event.name == MARKER {
                return;
            }
            events.push(event);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the marker did not come back within 10 s; got {events:?}"));
    events
}

/// Fetches `url` with a plain HTTP/1.0 GET; returns the status line and the body.
pub async fn http_get(url: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.0\r\nhost: {authority}\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of the sample whose name and labels are exactly `sample`, e.g. `hookwire_events_total`.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}
