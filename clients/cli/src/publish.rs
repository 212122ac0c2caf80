//! `hookwire publish`: publish one event as a device over a `Connect` session, and optionally print the events
//! that follow it (the `hook-response` of its webhooks, say).

use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use hookwire_client::{DeviceSession, Error, proto, with_timeout};
use serde_json::json;
use tokio::time::Instant;

use crate::events::{DEVICE_EVENT_COLUMNS, Limits, device_event_json, print_events};
use crate::output::LinePrinter;
use crate::{GlobalArgs, parse_seconds};

pub const EXAMPLES: &str = "\
Examples:
  hookwire publish --device-token <token> temp 21.5
  hookwire publish --device-token <token> temp 21.5 --listen hook-response/temp --count 1";

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct PublishArgs {
    /// The device's token, as `device create` printed it
    #[arg(long, env = "HOOKWIRE_DEVICE_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    device_token: String,
    /// The event name, 1 to 64 bytes
    name: String,
    /// The event data, UTF-8 text [default: empty]
    data: Option<String>,
    /// Subscribe to the events whose name starts with PREFIX before publishing, then print them
    #[arg(long, value_name = "PREFIX")]
    listen: Option<String>,
    /// With --listen, stop after N events [default: no limit]
    #[arg(long, value_name = "N", requires = "listen")]
    count: Option<u64>,
    /// Seconds to wait from the publish on: for its ack and, with --listen, for events
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    timeout: Duration,
}

/// Prints `{"event_id": ...}` once the publish is durable, then, with `--listen`, the matching events as JSON
/// lines.
pub async fn run(args: PublishArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let format = global.output;
    let device = global.device_client(&args.device_token).await?;
    let mut session = device.open_session().await?;
    // Subscribing before publishing, so that no event answering the publish can be missed.
    if let Some(prefix) = &args.listen {
        session.subscribe(prefix.as_str()).await?;
    }
    let deadline = Instant::now() + args.timeout;
    let ack = with_timeout(args.timeout, session.publish(args.name, args.data.unwrap_or_default())).await.map_err(
        |error| match error {
            Error::Timeout => anyhow!("no answer to the publish within {:?}", args.timeout),
            other => other.into(),
        },
    )?;
    LinePrinter::new(format, &["event_id"]).print(&json!({ "event_id": ack.event_id }))?;

    let Some(prefix) = args.listen else {
        return Ok(());
    };
    let limits = Limits { num_events_max: args.count, deadline: Some(deadline) };
    let mut printer = LinePrinter::new(format, DEVICE_EVENT_COLUMNS);
    let next_event = async || next_event_with_prefix(&mut session, &prefix).await;
    print_events(next_event, limits, device_event_json, &mut printer).await
}

/// The session's next event whose name starts with `prefix`; a device also receives, whatever its
/// subscriptions, the events addressed to it (`<device id>/...`).
async fn next_event_with_prefix(
    session: &mut DeviceSession,
    prefix: &str,
) -> hookwire_client::Result<Option<proto::Event>> {
    loop {
        match session.next_event().await? {
            Some(event) if !event.name.starts_with(prefix) => continue,
            other => return Ok(other),
        }
    }
}
