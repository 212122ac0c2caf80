//! hookwire's end-to-end suite: one test binary, real kernels, real gRPC clients, real HTTP receivers.

mod access;
mod cluster;
mod conformance;
mod core;
mod deliveries;
mod hosts;
mod management;
mod ops;
mod policies;
mod responses;
mod signing;
mod storage;
mod support;
