//! hookwire's end-to-end suite: one test binary, real kernels, real gRPC clients, real HTTP receivers.

mod access;
mod chaos;
mod cluster;
mod cluster_events;
mod cluster_policy;
mod conformance;
mod console;
mod console_sessions;
mod core;
mod credentials;
mod deliveries;
mod docs;
mod egress;
mod fidelity;
mod hostile_conn;
mod hostile_device;
mod hostile_hosts;
mod hostile_render;
mod hosts;
mod management;
mod ops;
mod policies;
mod responses;
mod signing;
mod storage;
mod support;
