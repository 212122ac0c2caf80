//! hookwire's end-to-end suite: one test binary, real kernels, real gRPC clients, real HTTP receivers.

mod conformance;
mod core;
mod deliveries;
mod ops;
mod responses;
mod storage;
mod support;
