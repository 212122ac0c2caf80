//! `hookwire subscribe`: print a group's live events, device events and the `hook-*` events of deliveries.

use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use crate::events::{GROUP_EVENT_COLUMNS, Limits, group_event_json, print_events};
use crate::output::LinePrinter;
use crate::{GlobalArgs, parse_seconds};

pub const EXAMPLES: &str = "\
Examples:
  hookwire subscribe --group grp_0123456789abcdef
  hookwire subscribe --group grp_0123456789abcdef hook-error/ --count 1 --timeout 30";

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The group id, grp_...
    #[arg(long, value_name = "ID")]
    group: String,
    /// Only the events whose name starts with PREFIX [default: every event]
    prefix: Option<String>,
    /// Stop after N events [default: no limit]
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after SECS seconds [default: never]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

/// Prints the events as JSON lines `{"id", "name", "data", "published_at", "device_id"}` until `--count` or
/// `--timeout`.
pub async fn run(args: SubscribeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let admin = global.admin_client().await?;
    let mut events = admin.subscribe(args.group, args.prefix.unwrap_or_default()).await?;
    let limits = Limits { num_events_max: args.count, deadline: args.timeout.map(|timeout| Instant::now() + timeout) };
    let mut printer = LinePrinter::new(global.output, GROUP_EVENT_COLUMNS);
    print_events(async || events.next().await, limits, group_event_json, &mut printer).await
}
