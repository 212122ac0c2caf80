//! Rust SDK for hookwire, the self-hosted webhook engine.
//!
//! - [`AdminClient`] manages groups, devices and webhooks with an admin token, and follows a group's live
//!   events ([`EventStream`]); the root token also makes group tokens (`hwa_...`) that act on one group as a
//!   viewer or an editor ([`AdminClient::create_token`]).
//! - [`DeviceClient`] publishes as one device with its device token, either one event at a time or over a
//!   long-lived [`DeviceSession`] that also receives the events the device subscribed to.
//!
//! Every call fails with one [`Error`]; what the server answered is [`Error::Status`], whose
//! [`code`](Error::code) is the gRPC code. The messages are the generated [`proto`] types, documented in
//! `proto/hookwire/v1/*.proto`.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use hookwire_client::{AdminClient, DeviceClient, with_timeout};
//!
//! # async fn example() -> hookwire_client::Result<()> {
//! let admin = AdminClient::connect("127.0.0.1:50051", "root-token").await?;
//! let group = admin.create_group("greenhouse").await?;
//! let created = admin.create_device(&group.id, "sensor-1").await?;
//! admin
//!     .create_webhook(&group.id, r#"{"event": "temp", "url": "https://example.com/temp"}"#)
//!     .await?;
//!
//! let device = DeviceClient::connect("127.0.0.1:50051", &created.token).await?;
//! let mut session = device.open_session().await?;
//! session.subscribe("hook-response/temp").await?;
//! let ack = session.publish("temp", "21.5").await?;
//! println!("{} matched {} webhooks", ack.event_id, ack.num_deliveries);
//! if let Some(response) = with_timeout(Duration::from_secs(10), session.next_event()).await? {
//!     println!("{}: {}", response.name, response.data);
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod connection;
mod deliveries;
mod device;
mod error;
mod tokens;

use std::future::Future;
use std::time::Duration;

pub use admin::{AdminClient, EventStream};
pub use device::{DeviceClient, DeviceSession};
pub use error::{Error, Result};
/// The gallery of ready integrations (ThingSpeak, Slack, ...), shared with the server's console.
pub use hookwire_proto::templates;
/// The generated gRPC messages and clients of hookwire's contract.
pub use hookwire_proto::v1 as proto;
/// The gRPC status codes that [`Error::code`] returns.
pub use tonic::Code;

/// Awaits `call` for at most `duration`; [`Error::Timeout`] when it takes longer (the call is then dropped).
///
/// Waiting on a session with it is safe: a message that arrives after the timeout is kept for the next read.
pub async fn with_timeout<T>(duration: Duration, call: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(duration, call).await.unwrap_or(Err(Error::Timeout))
}
