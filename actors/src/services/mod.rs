//! What the actors share that is not an actor: tasks and structures every actor uses, each behind a cheap handle.
//!
//! - [`bus::EventBus`]: fans events out to subscribers by group and name prefix.
//! - [`index::WebhookIndex`]: which webhooks an event name matches, per group.
//! - [`journal`]: batches every durable write (group commit) through the [`journal::JournalStore`] trait, which the
//!   kernel implements over SQL.
//! - [`ownership::Ownership`]: what this kernel may send when several share a database (attempt gate, fencing).
//! - [`shared_policy::SharedPolicy`]: the rate quota's slots and hosts' sleep, shared with other kernels.
//! - [`metrics`]: counters and histograms the kernel exports.
//! - [`connector`]: the outbound HTTPS connector that checks every resolved address against the egress policy.

pub mod bus;
pub mod connector;
pub mod index;
pub mod journal;
pub mod metrics;
pub mod ownership;
pub mod shared_policy;
