//! hookwire's actors and the domain logic they own, in three folders:
//!
//! - [`actors`]: the device, webhook and host actors and the registry that starts them.
//! - [`services`]: what the actors share that is not an actor (event bus, webhook index, journal, ownership,
//!   metrics, the outbound connector).
//! - [`domain`]: pure code (definitions, templates, requests, policies, signing, egress rules, time).
//!
//! Nothing here knows SQL or gRPC transport; the kernel adapts both.

#![forbid(unsafe_code)]

pub mod actors;
pub mod domain;
pub mod services;
