//! The typed settings [`load`](super::load) hands to the proxy: [`SidecarConfig`] and the
//! workload, listener and address types it is made of. Tracing settings are in
//! `tracing_settings.rs`.

use std::collections::BTreeMap;
use std::fmt;

use ::config::ListenAddress;
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::tracing_settings::TracingSettings;
use crate::environment::Environment;

/// Everything the sidecar needs, after parsing, validation and merging.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarConfig {
    /// The workload this sidecar runs next to.
    pub workload: Workload,
    /// Where the sidecar listens and where the app is.
    pub listeners: Listeners,
    /// The Sidecar document's `services` table: upstream services by `host:port`, and the local
    /// address that reaches each one.
    pub services: Vec<ServiceRoute>,
    /// How to trace, merged from every document in Istio's order.
    pub tracing: TracingSettings,
    /// The mesh and cluster this sidecar belongs to, as the config names them; istio-proxy's
    /// environment overrides them at start-up ([`MeshIdentity::with_environment`]).
    pub mesh: MeshIdentity,
    /// Things that are accepted but worth telling the operator at start-up (for example a
    /// Telemetry resource that can never apply to a sidecar).
    pub warnings: Vec<String>,
}

/// The workload: the Sidecar document's metadata, completed by a matching `Deployment`'s pod
/// template (the Sidecar document wins where both set a label or annotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The workload name (Istio's "workload name", e.g. the Deployment name `productpage-v1`).
    pub name: String,
    /// The namespace; `default` when the Sidecar document gives none.
    pub namespace: String,
    /// Pod labels (`app`, `version`, `service.istio.io/canonical-name`, …).
    pub labels: BTreeMap<String, String>,
    /// Pod annotations (Linkerd's `config.linkerd.io/trace-collector`, …).
    pub annotations: BTreeMap<String, String>,
}

/// The sidecar's listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// Inbound traffic: where callers connect and where the app listens; `None` when the
    /// Sidecar document has no `inbound` (a client-only workload).
    pub inbound: Option<InboundListener>,
    /// Where the app's outbound calls arrive (`127.0.0.1:15001` by default, Istio's port).
    pub outbound: ListenAddress,
    /// The admin endpoint (`127.0.0.1:15000` by default, Istio's port).
    pub admin: ListenAddress,
}

/// `spec.inbound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundListener {
    /// Where callers connect (`0.0.0.0:15006` by default, Istio's inbound port).
    pub listen: ListenAddress,
    /// Where the app listens, e.g. `127.0.0.1:9080`.
    pub app: Endpoint,
    /// The Kubernetes Service in front of the workload and its port (`spec.inbound.service`),
    /// when it is not `<app label>:<app port>`: Istio names inbound spans and the inbound
    /// `destination_service` after the Service and the Service's port (`httpbin:8000` for a
    /// container listening on 80). The host is the Service's FQDN
    /// (`httpbin.web.svc.cluster.local`), however the document wrote it.
    pub service: Option<Endpoint>,
}

/// One entry of the Sidecar document's `services` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRoute {
    /// The service host the app calls, e.g. `reviews.default.svc.cluster.local`.
    pub host: String,
    /// The service port the app calls, e.g. `9080`.
    pub port: u16,
    /// The local address that reaches it, e.g. `127.0.0.1:19080`.
    pub target: Endpoint,
}

/// A `host:port` to connect to. Unlike a listen address the host may not be empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or IP (without IPv6 brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Endpoint {
        Endpoint { host: host.into(), port }
    }

    /// Parses `host:port` or `[v6]:port`; errors read like the collector's
    /// (`invalid address "x": missing port`).
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (host, port) = ::config::parse_endpoint(text)?;
        if host.is_empty() {
            return Err(format!("invalid address {text:?}: missing host"));
        }
        Ok(Endpoint { host, port })
    }
}

impl fmt::Display for Endpoint {
    /// `host:port`, bracketing IPv6 hosts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(EndpointVisitor)
    }
}

struct EndpointVisitor;

impl Visitor<'_> for EndpointVisitor {
    type Value = Endpoint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address such as 127.0.0.1:9080")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Endpoint, E> {
        Endpoint::parse(text).map_err(E::custom)
    }
}

impl ServiceRoute {
    /// `host:port` as the app writes it.
    pub fn authority(&self) -> String {
        Endpoint::new(self.host.clone(), self.port).to_string()
    }
}

/// Resolves `host:port` through the services table: the table's target when the table has the
/// authority, otherwise the address as written.
pub(crate) fn resolve(services: &[ServiceRoute], host: &str, port: u16) -> Endpoint {
    services
        .iter()
        .find(|route| route.host == host && route.port == port)
        .map(|route| route.target.clone())
        .unwrap_or_else(|| Endpoint::new(host, port))
}

/// The mesh and the cluster a sidecar belongs to: the `istio.mesh_id` and `istio.cluster_id`
/// span tags, and the `source_cluster`/`destination_cluster` metric labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshIdentity {
    pub mesh_id: String,
    pub cluster_id: String,
}

impl MeshIdentity {
    /// These ids, overridden by `ISTIO_META_MESH_ID` and `ISTIO_META_CLUSTER_ID` in `env`:
    /// the variables Istio's injector sets on istio-proxy, which win over the config as they
    /// do in Istio.
    pub fn with_environment(&self, env: &Environment) -> MeshIdentity {
        let var = |name: &str| env.var(name).filter(|value| !value.is_empty());
        MeshIdentity {
            mesh_id: var("ISTIO_META_MESH_ID").unwrap_or_else(|| self.mesh_id.clone()),
            cluster_id: var("ISTIO_META_CLUSTER_ID").unwrap_or_else(|| self.cluster_id.clone()),
        }
    }
}
