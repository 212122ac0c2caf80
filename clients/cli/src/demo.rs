//! `hookwire demo`: hookwire working on this machine in a few seconds, with nothing to set up. It starts a kernel
//! (`hookwired` beside this binary, as a child process) on a temporary SQLite database, a local receiver, a group
//! with a simulated device and a webhook, publishes a few readings, and prints what flows: each publish, each
//! request the receiver gets, and the group's events (the event, `hook-sent`, `hook-response`). It exits 0 when
//! every reading made the round trip.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use hookwire_client::{AdminClient, DeviceClient};
use serde_json::json;

pub const EXAMPLES: &str = "\
Examples:
  hookwire demo
  hookwire demo --events 10 --interval-ms 200";

/// The event the simulated device publishes and the webhook matches.
const EVENT: &str = "temperature";
/// What the receiver answers; it comes back to the device as `hook-response`.
const ANSWER: &str = r#"{"stored":true}"#;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Readings the simulated device publishes
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    events: u32,
    /// Pause between two readings, milliseconds
    #[arg(long, default_value_t = 500, value_name = "MS")]
    interval_ms: u64,
    /// The hookwired binary to start [default: the one beside this binary]
    #[arg(long, value_name = "PATH")]
    hookwired: Option<PathBuf>,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    println!("hookwire demo: a kernel, a receiver, a device and a webhook, all on this machine.\n");
    let binary = crate::kernel_process::binary(args.hookwired.as_deref())?;
    let directory = tempfile::tempdir().context("a temporary folder for the demo's database")?;
    let database = format!("sqlite://{}", directory.path().join("demo.db").display());
    let root_token = format!("demo-{}", std::process::id());
    let mut kernel = crate::kernel_process::start(&binary, &database, &root_token, &[]).await?;
    let endpoint = kernel.endpoint.clone();
    let admin = connect_admin(&endpoint, &root_token).await?;
    println!("kernel    {endpoint} (database {database})");

    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the receiver's port")?;
    let receiver_address: SocketAddr = receiver.local_addr()?;
    let mut requests = crate::receive::serve(receiver, hyper::StatusCode::OK, Bytes::from_static(ANSWER.as_bytes()));
    println!("receiver  http://{receiver_address}/readings answers 200 {ANSWER}");

    let group = admin.create_group("demo").await?;
    let device = admin.create_device(group.id.clone(), "demo-sensor").await?;
    let device_id = device.device.as_ref().map(|device| device.id.clone()).unwrap_or_default();
    let definition = json!({
        "event": EVENT,
        "url": format!("http://{receiver_address}/readings"),
        "requestType": "POST",
        "json": {"sensor": "{{{PARTICLE_DEVICE_ID}}}", "celsius": "{{{PARTICLE_EVENT_VALUE}}}"},
    });
    let webhook = admin.create_webhook(group.id.clone(), definition.to_string()).await?;
    println!("group     {} \"demo\"", group.id);
    println!("device    {device_id} \"demo-sensor\"");
    println!("webhook   {} {definition}\n", webhook.id);

    let mut events = admin.subscribe(group.id.clone(), "").await?;
    let publisher = DeviceClient::connect(&endpoint, &device.token).await?;
    let (mut num_requests, mut num_responses) = (0u32, 0u32);
    for index in 0..args.events {
        let reading = format!("{:.1}", 20.0 + f64::from(index % 7) * 0.4);
        publisher.publish(EVENT, reading.clone()).await.context("publishing a reading")?;
        println!("publish   {EVENT} {reading}");
        // One round trip: the event, the request, hook-sent and hook-response, in whatever order they come.
        let (mut got_request, mut got_response) = (false, false);
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        while !(got_request && got_response) {
            tokio::select! {
                Some(request) = requests.recv(), if !got_request => {
                    got_request = true;
                    num_requests += 1;
                    println!("receiver  {} {} {}", request["method"].as_str().unwrap_or(""),
                        request["path"].as_str().unwrap_or(""), request["body"].as_str().unwrap_or(""));
                }
                event = events.next() => {
                    let Some(event) = event? else { anyhow::bail!("the kernel ended the event stream") };
                    if event.name.contains("/hook-response/") {
                        got_response = true;
                        num_responses += 1;
                    }
                    println!("event     {} {}", event.name, event.data);
                }
                () = &mut deadline => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }

    if let Some(status) = kernel.child.try_wait()? {
        anyhow::bail!("the demo's kernel ended early ({status})");
    }
    kernel.kill().await;
    println!(
        "\n{} readings published, {num_requests} requests received, {num_responses} responses back to the device.",
        args.events
    );
    if num_requests < args.events || num_responses < args.events {
        anyhow::bail!("not every reading made the round trip within 10 s");
    }
    println!("Next: the README's quickstart runs the same with hookwired, hookwire receive and your own webhooks.");
    Ok(())
}

/// Connects to the kernel the demo started, waiting until it answers.
async fn connect_admin(endpoint: &str, token: &str) -> anyhow::Result<AdminClient> {
    for _ in 0..100 {
        if let Ok(admin) = AdminClient::connect(endpoint, token).await
            && admin.list_groups().await.is_ok()
        {
            return Ok(admin);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the demo's kernel did not answer within 5 s")
}
