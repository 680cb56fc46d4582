//! The meshtrace sidecar: a proxy next to each workload that traces its HTTP traffic the way
//! Istio's istio-proxy (Envoy) and Linkerd's proxy do.
//!
//! For now this crate holds the sidecar's **configuration model** ([`config`]); the proxy that
//! consumes it comes next.
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
pub mod config;
pub mod metrics;
pub mod observe;
pub mod proxy;
pub mod trace;
