//! The meshtrace sidecar: a proxy next to each workload that traces its HTTP traffic the way
//! Istio's istio-proxy (Envoy) and Linkerd's proxy do.
//!
//! Reading order:
//! - [`config`]: the configuration model (below).
//! - [`proxy`]: the inbound, outbound and admin listeners and Envoy-style forwarding (HTTP/1.1,
//!   HTTP/2, gRPC, upgrades) with Envoy's local replies and response flags.
//! - [`observe`]: the seam through which the proxy reports each exchange, without knowing who
//!   listens. Two observers use it:
//! - [`trace`]: SERVER and CLIENT spans as istio-proxy makes them: sampling, propagation,
//!   Envoy and `istio.*` tags, stitching, and export through a bounded buffer into the
//!   collector's own OTLP exporters.
//! - [`metrics`]: Istio's standard Prometheus metrics, served by [`admin`].
//! - [`received`]: which of the headers all of them consult a message holds, found once.
//!
//! A sidecar reads one YAML file of several documents: a `kind: Sidecar` document describing the
//! workload and its listeners, followed by any Istio resources (`IstioOperator`, a bare
//! `meshConfig:`, `Telemetry`), a `Deployment` carrying Linkerd's tracing annotations, or an
//! Envoy `tracing:` block. [`config::load`] parses them all, reports every mistake with its
//! document and key path, merges them in Istio's order and hands back typed
//! [`config::SidecarConfig`] settings, so the proxy never sees raw YAML.
//!
//! Start reading at [`config`] (its module docs list the files in reading order).

pub mod admin;
mod bounded;
pub mod config;
pub mod environment;
mod grpc;
pub mod head_size;
pub mod metrics;
pub mod observe;
pub mod proxy;
pub mod received;
mod request_map;
mod service_name;
pub mod trace;
