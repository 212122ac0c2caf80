//! hookwire's actors and the domain logic they own.
//!
//! - [`device::DeviceActor`], one per connected device: its session, publishes, acks and subscriptions.
//! - [`webhook::WebhookActor`], one per webhook with work: renders requests, hands them to hosts, reports outcomes.
//! - [`host::HostActor`], one per destination `scheme://host:port`: connection pool, concurrency cap, timeouts,
//!   safe egress, adaptive sleep ([`sleep::AdaptiveSleep`]).
//! - [`supervisor::Supervisor`]: starts actors on demand on arbiters, restarts them, owns the registries.
//! - [`bus::EventBus`]: fans events out to subscribers by group and name prefix.
//! - [`journal`]: batches every durable write (group commit) through the [`journal::JournalStore`] trait, which the
//!   kernel implements over SQL.
//! - [`ownership::Ownership`]: what this kernel may send when several share a database (attempt gate, fencing).
//! - [`signing`]: Standard Webhooks signatures of the requests of webhooks with `x-signing`.
//!
//! Nothing here knows SQL or gRPC transport; the kernel adapts both.

#![forbid(unsafe_code)]

pub mod bus;
pub mod connector;
pub mod definition;
pub mod device;
pub mod egress;
pub mod event;
pub mod fields;
#[cfg(test)]
mod fuzz;
pub mod host;
pub mod ids;
pub mod index;
pub mod journal;
pub mod messages;
pub mod metrics;
pub mod ownership;
pub mod policy;
pub mod request;
pub mod signing;
pub mod sleep;
pub mod supervisor;
pub mod template;
pub mod time;
pub mod webhook;
