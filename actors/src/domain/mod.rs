//! Pure domain code: no actor, no task, no I/O. Everything here is tested on its own.
//!
//! - [`definition`]: webhook definitions (Particle's JSON vocabulary plus `x-` fields) and their compiled form.
//! - [`template`]: the Mustache and Blynk template engine, with its rendering budget.
//! - [`request`]: turning an event and a compiled webhook into an HTTP request; masking for the attempt log.
//! - [`fields`]: the definition's field names, for errors that say where and what was meant.
//! - [`event`]: events, their names and the topics devices may publish.
//! - [`ids`]: the typed ids of groups, devices and webhooks.
//! - [`policy`]: retry backoff and the rate quota.
//! - [`breaker`]: the per-host circuit breaker (Particle's "sleep").
//! - [`signing`]: Standard Webhooks signatures of the requests of webhooks with `x-signing`.
//! - [`egress`]: which destination addresses may be reached.
//! - [`time`]: epoch milliseconds and ISO-8601.

pub mod breaker;
pub mod definition;
pub mod egress;
pub mod event;
pub mod fields;
#[cfg(test)]
mod fuzz;
pub mod ids;
pub mod policy;
pub mod request;
pub mod signing;
pub mod template;
pub mod time;
