//! The live event stream of a group, as Server-Sent Events: a bus subscription by name prefix, exactly what the
//! admin `Subscribe` call gives, each event one `data:` line of JSON. A comment every 15 s keeps proxies from
//! closing an idle stream. At most [`MAX_LIVE_STREAMS`](super::MAX_LIVE_STREAMS) are open at once; the stream
//! ends when the browser goes away or the kernel shuts down.

use super::{Console, MAX_LIVE_STREAMS, Response, plain};
use bytes::Bytes;
use futures::StreamExt as _;
use hookwire_actors::domain::ids::GroupId;
use http::{StatusCode, header};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Releases a stream's place when the stream ends.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Opens a live stream of the group's events whose names start with `prefix` (already authorized).
pub fn stream(console: &Console, group_id: GroupId, prefix: &str) -> Response {
    if prefix.len() > hookwire_actors::domain::event::MAX_NAME_BYTES {
        return plain(StatusCode::BAD_REQUEST, "prefix: must be at most 64 bytes");
    }
    if console.live_streams.fetch_add(1, Ordering::Relaxed) >= MAX_LIVE_STREAMS {
        console.live_streams.fetch_sub(1, Ordering::Relaxed);
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many live streams open; close one and retry");
    }
    let place = Place(console.live_streams.clone());
    let kernel = &console.kernel;
    let (guard, receiver) =
        kernel.services.bus.sink(group_id, None, kernel.services.settings.subscriber_queue_capacity);
    guard.subscribe(prefix);
    let shutting_down = kernel.shutting_down.clone();
    let state = (guard, receiver, shutting_down, place, true);
    let events = futures::stream::unfold(state, |(guard, mut receiver, shutting_down, place, first)| async move {
        if first {
            let hello = Bytes::from_static(b": connected\n\n");
            return Some((Ok::<_, Infallible>(Frame::data(hello)), (guard, receiver, shutting_down, place, false)));
        }
        let chunk = tokio::select! {
            event = receiver.recv() => {
                let event = event?;
                let json = serde_json::json!({
                    "id": event.id.to_string(),
                    "name": event.name,
                    "data": event.data,
                    "device_id": event.device_id.as_ref().map(ToString::to_string).unwrap_or_default(),
                    "published_at": event.published_at(),
                });
                Bytes::from(format!("data: {json}\n\n"))
            }
            _ = tokio::time::sleep(Duration::from_secs(15)) => Bytes::from_static(b": keep-alive\n\n"),
            _ = super::shut_down(shutting_down.clone()) => return None,
        };
        Some((Ok(Frame::data(chunk)), (guard, receiver, shutting_down, place, false)))
    });
    let mut response = hyper::Response::new(StreamBody::new(events.boxed()).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}
