//! What `publish --listen` and `subscribe` share: printing events as they arrive until enough were printed or
//! the time is up.

use anyhow::bail;
use hookwire_client::{Error, proto, with_timeout};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::output::LinePrinter;

/// The table columns of an event received by a device session.
pub const DEVICE_EVENT_COLUMNS: &[&str] = &["published_at", "device_id", "name", "data"];
/// The table columns of an event of a group's stream.
pub const GROUP_EVENT_COLUMNS: &[&str] = &["id", "published_at", "device_id", "name", "data"];

/// When to stop printing events.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop once this many events were printed; `None`: no limit.
    pub num_events_max: Option<u64>,
    /// Stop at this instant; `None`: never.
    pub deadline: Option<Instant>,
}

/// Prints the events `next_event` yields, each as `event_json` makes it, until a limit is reached. A stream
/// that ends before is an error: the limits say when to stop, not the server. So is the deadline passing before
/// `--count` events came: the caller asked for them and did not get them.
pub async fn print_events(
    mut next_event: impl AsyncFnMut() -> hookwire_client::Result<Option<proto::Event>>,
    limits: Limits,
    event_json: fn(&proto::Event) -> Value,
    printer: &mut LinePrinter,
) -> anyhow::Result<()> {
    let mut num_printed = 0;
    while limits.num_events_max.is_none_or(|num_events_max| num_printed < num_events_max) {
        let next = match limits.deadline {
            Some(deadline) => with_timeout(deadline.saturating_duration_since(Instant::now()), next_event()).await,
            None => next_event().await,
        };
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => bail!("the server ended the event stream"),
            // Without --count, the time is the only limit: reaching it is the normal end. With it, too few came.
            Err(Error::Timeout) => match limits.num_events_max {
                None => return Ok(()),
                Some(num_events_max) => bail!(
                    "timed out: {num_printed} of the {num_events_max} events asked for (--count) arrived within \
                     --timeout"
                ),
            },
            Err(error) => return Err(error.into()),
        };
        printer.print(&event_json(&event))?;
        num_printed += 1;
    }
    Ok(())
}

/// An event as `publish --listen` prints it.
pub fn device_event_json(event: &proto::Event) -> Value {
    json!({
        "name": event.name,
        "data": event.data,
        "published_at": event.published_at,
        "device_id": event.device_id,
    })
}

/// An event as `subscribe` prints it: with its id.
pub fn group_event_json(event: &proto::Event) -> Value {
    json!({
        "id": event.id,
        "name": event.name,
        "data": event.data,
        "published_at": event.published_at,
        "device_id": event.device_id,
    })
}
