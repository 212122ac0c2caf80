//! The actors: one per connected device, one per webhook with work, one per destination host, and the registry
//! that starts them and finds their addresses.
//!
//! - [`device::DeviceActor`], one per connected device: its session, publishes, acks and subscriptions.
//! - [`webhook::WebhookActor`], one per webhook with work: renders requests, hands them to hosts, reports outcomes.
//! - [`host::HostActor`], one per destination `scheme://host:port`: connection pool, concurrency cap, timeouts,
//!   safe egress, and the circuit breaker Particle calls sleep ([`crate::domain::breaker::CircuitBreaker`]).
//! - [`registry::Registry`]: starts actors on demand on arbiters (restarted if they stop) and keeps their addresses.
//!   It is a shared handle, not an actor: the hot path looks addresses up under a read lock.
//! - [`messages`]: what the actors send one another.

pub mod device;
pub mod host;
pub mod messages;
pub mod registry;
#[cfg(test)]
mod testing;
pub mod webhook;
