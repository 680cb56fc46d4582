//! The sidecar's integration tests, in one binary so they link once.
//!
//! - `config`: every seed resource loads; merge order; error messages.
//! - `proxy`: forwarding over real sockets (HTTP/1.1, HTTP/2, gRPC, upgrades, bad input,
//!   Envoy's local replies and flags) with a recording observer.
//! - `trace`: the tracing observer against a real OTLP receiver.
//! - `mesh`: three services behind three sidecars form one connected trace; stitching.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly on a broken fixture"
)]

mod config;
mod mesh;
mod proxy;
mod support;
mod trace;
