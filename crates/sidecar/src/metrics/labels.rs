//! Istio's standard labels, filled the way istio-proxy fills them.
//!
//! The rules are `populatePeerInfo` and `IstioStatsFilter::log` in istio/proxy
//! `source/extensions/filters/http/istio_stats/istio_stats.cc` (mesh-tracing-spec §3), in its
//! order: `reporter`, eight `source_*`, eleven `destination_*`, then `request_protocol`,
//! `response_code`, `grpc_response_status` (HTTP only), `response_flags` and
//! `connection_security_policy`.
//!
//! * The sidecar's own side comes from the workload ([`LocalWorkload`]): name, namespace,
//!   `app` and `version` labels (empty when absent, as Istio's node metadata gives them), the
//!   canonical service and revision as Istio's injector derives them
//!   (`pkg/kube/labels/labels.go`), and the cluster id of the config's
//!   [`MeshIdentity`](crate::config::MeshIdentity), `Kubernetes` by default, as in Istio.
//! * The peer's side comes from its `x-envoy-peer-metadata` header (`peer_metadata.rs`); what
//!   is missing is `unknown`, except canonical revisions, which default to `latest`.
//! * Principals are `unknown` and `connection_security_policy` is `none` inbound and `unknown`
//!   outbound: the sidecar does not terminate mutual TLS, and Istio reports exactly these
//!   values without it.
//!
//! [`SourceDestination`] holds the first twenty labels, which depend only on the direction,
//! the service and the peer; it is built once per (direction, authority, peer) and shared by
//! reference, with its hash computed once, so the per-request series keys are cheap to hash.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder};

use super::peer_metadata::WorkloadIdentity;
use super::service::DestinationService;
use crate::config::{CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL, Workload};
use crate::observe::Direction;

const UNKNOWN: &str = "unknown";
const LATEST: &str = "latest";

/// The label names of [`SourceDestination`], in Istio's order.
const NAMES: [&str; 20] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
];

// === impl LocalWorkload ===

/// The sidecar's own workload, as labels.
#[derive(Debug, Clone)]
pub(crate) struct LocalWorkload {
    workload: Arc<str>,
    namespace: Arc<str>,
    canonical_service: Arc<str>,
    canonical_revision: Arc<str>,
    app: Arc<str>,
    version: Arc<str>,
    cluster: Arc<str>,
}

impl LocalWorkload {
    /// The workload's labels, in `cluster`.
    pub(crate) fn new(workload: &Workload, cluster: &str) -> LocalWorkload {
        let labels = &workload.labels;
        let first = |keys: &[&str]| keys.iter().find_map(|key| labels.get(*key));
        let canonical_service = first(&[CANONICAL_NAME_LABEL, "app.kubernetes.io/name", "app"])
            .unwrap_or(&workload.name);
        let canonical_revision =
            first(&[CANONICAL_REVISION_LABEL, "app.kubernetes.io/version", "version"])
                .map_or(LATEST, String::as_str);
        let label = |labels: &BTreeMap<String, String>, key| {
            Arc::from(labels.get(key).map_or("", String::as_str))
        };
        LocalWorkload {
            workload: Arc::from(workload.name.as_str()),
            namespace: Arc::from(workload.namespace.as_str()),
            canonical_service: Arc::from(canonical_service.as_str()),
            canonical_revision: Arc::from(canonical_revision),
            app: label(labels, "app"),
            version: label(labels, "version"),
            cluster: Arc::from(cluster),
        }
    }

    /// The identity this sidecar sends in `x-envoy-peer-metadata`.
    pub(crate) fn identity(&self) -> WorkloadIdentity {
        WorkloadIdentity {
            workload: self.workload.to_string(),
            namespace: self.namespace.to_string(),
            canonical_service: self.canonical_service.to_string(),
            canonical_revision: self.canonical_revision.to_string(),
            app: self.app.to_string(),
            version: self.version.to_string(),
            cluster: self.cluster.to_string(),
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }
}

// === impl SourceDestination ===

/// `reporter` and the `source_*` / `destination_*` labels of one (direction, service, peer).
#[derive(Debug)]
pub(crate) struct SourceDestination {
    values: [Arc<str>; 20],
    hash: u64,
}

impl SourceDestination {
    /// The labels Istio gives an exchange seen in `direction` for `service`, with the peer's
    /// identity when its metadata arrived.
    pub(crate) fn new(
        direction: Direction,
        local: &LocalWorkload,
        service: Option<&DestinationService>,
        peer: Option<&WorkloadIdentity>,
    ) -> SourceDestination {
        let unknown: Arc<str> = Arc::from(UNKNOWN);
        let peer_field = |field: fn(&WorkloadIdentity) -> &String, default: &str| -> Arc<str> {
            match peer.map(field).filter(|value| !value.is_empty()) {
                Some(value) => Arc::from(value.as_str()),
                None => Arc::from(default),
            }
        };
        let peer_workload = peer_field(|p| &p.workload, UNKNOWN);
        let peer_canonical_service = peer_field(|p| &p.canonical_service, UNKNOWN);
        let peer_canonical_revision = peer_field(|p| &p.canonical_revision, LATEST);
        let peer_app = peer_field(|p| &p.app, UNKNOWN);
        let peer_version = peer_field(|p| &p.version, UNKNOWN);
        let peer_cluster = peer_field(|p| &p.cluster, UNKNOWN);
        let values = match direction {
            Direction::Inbound => {
                let (service_host, service_name) = match service {
                    Some(service) => (service.host.clone(), service.name.clone()),
                    None => (local.canonical_service.clone(), local.canonical_service.clone()),
                };
                [
                    Arc::from("destination"),
                    peer_workload,
                    peer_canonical_service,
                    peer_canonical_revision,
                    peer_field(|p| &p.namespace, UNKNOWN),
                    unknown.clone(),
                    peer_app,
                    peer_version,
                    peer_cluster,
                    local.workload.clone(),
                    local.namespace.clone(),
                    unknown,
                    local.app.clone(),
                    local.version.clone(),
                    service_host,
                    local.canonical_service.clone(),
                    local.canonical_revision.clone(),
                    service_name,
                    local.namespace.clone(),
                    local.cluster.clone(),
                ]
            }
            Direction::Outbound => {
                // Istio takes the namespace from the peer (its metadata, or the endpoint's in
                // EDS); the sidecar has no EDS, so the service FQDN's namespace stands in.
                let peer_namespace = match peer.map(|p| &p.namespace).filter(|ns| !ns.is_empty()) {
                    Some(namespace) => Arc::from(namespace.as_str()),
                    None => service.and_then(|s| s.namespace.clone()).unwrap_or(unknown.clone()),
                };
                let (service_host, service_name) = match service {
                    Some(service) => (service.host.clone(), service.name.clone()),
                    None => (unknown.clone(), unknown.clone()),
                };
                [
                    Arc::from("source"),
                    local.workload.clone(),
                    local.canonical_service.clone(),
                    local.canonical_revision.clone(),
                    local.namespace.clone(),
                    unknown.clone(),
                    local.app.clone(),
                    local.version.clone(),
                    local.cluster.clone(),
                    peer_workload,
                    peer_namespace.clone(),
                    unknown,
                    peer_app,
                    peer_version,
                    service_host,
                    peer_canonical_service,
                    peer_canonical_revision,
                    service_name,
                    peer_namespace,
                    peer_cluster,
                ]
            }
        };
        let mut hasher = DefaultHasher::new();
        values.hash(&mut hasher);
        SourceDestination { values, hash: hasher.finish() }
    }
}

impl PartialEq for SourceDestination {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other) || (self.hash == other.hash && self.values == other.values)
    }
}

impl Eq for SourceDestination {}

impl Hash for SourceDestination {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl EncodeLabelSet for SourceDestination {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (name, value) in NAMES.iter().zip(&self.values) {
            put(encoder, name, &**value)?;
        }
        Ok(())
    }
}

/// Encodes one label.
fn put(
    encoder: &mut LabelSetEncoder,
    name: &str,
    value: impl EncodeLabelValue,
) -> Result<(), std::fmt::Error> {
    EncodeLabel::encode(&(name, value), encoder.encode_label())
}

// === impl HttpSeries, TcpSeries ===

/// `connection_security_policy` for a direction (no mutual TLS: see the module docs).
pub(crate) fn security_policy(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "none",
        Direction::Outbound => UNKNOWN,
    }
}

/// `response_flags`: Envoy's flags, `-` for none.
pub(crate) fn response_flags(flags: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(if flags.is_empty() { "-" } else { flags })
}

/// The labels of one HTTP/gRPC series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HttpSeries {
    pub(crate) parties: Arc<SourceDestination>,
    pub(crate) grpc: bool,
    /// `0` when no response was sent.
    pub(crate) response_code: u16,
    /// `None` for plain HTTP, and for gRPC when nothing gives a status.
    pub(crate) grpc_status: Option<i64>,
    pub(crate) response_flags: Cow<'static, str>,
    pub(crate) security_policy: &'static str,
}

impl EncodeLabelSet for HttpSeries {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelSet::encode(&*self.parties, encoder)?;
        put(encoder, "request_protocol", if self.grpc { "grpc" } else { "http" })?;
        put(encoder, "response_code", self.response_code)?;
        put(encoder, "grpc_response_status", self.grpc_status)?;
        put(encoder, "response_flags", &*self.response_flags)?;
        put(encoder, "connection_security_policy", self.security_policy)
    }
}

/// The labels of one TCP series (`request_protocol="tcp"`, no response code or gRPC status).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TcpSeries {
    pub(crate) parties: Arc<SourceDestination>,
    pub(crate) security_policy: &'static str,
}

impl EncodeLabelSet for TcpSeries {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelSet::encode(&*self.parties, encoder)?;
        put(encoder, "request_protocol", "tcp")?;
        put(encoder, "response_flags", "-")?;
        put(encoder, "connection_security_policy", self.security_policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(labels: &[(&str, &str)]) -> Workload {
        Workload {
            name: "reviews-v2".into(),
            namespace: "shop".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn canonical_labels_follow_istio_s_injector() {
        let bare = LocalWorkload::new(&workload(&[]), "Kubernetes");
        assert_eq!((&*bare.canonical_service, &*bare.canonical_revision), ("reviews-v2", "latest"));
        assert_eq!((&*bare.app, &*bare.version), ("", ""));
        let app =
            LocalWorkload::new(&workload(&[("app", "reviews"), ("version", "v2")]), "Kubernetes");
        assert_eq!((&*app.canonical_service, &*app.canonical_revision), ("reviews", "v2"));
        let explicit = LocalWorkload::new(
            &workload(&[
                ("app", "reviews"),
                ("app.kubernetes.io/name", "reviews-k8s"),
                (CANONICAL_NAME_LABEL, "reviews-canonical"),
                ("version", "v2"),
                ("app.kubernetes.io/version", "2.0"),
            ]),
            "Kubernetes",
        );
        assert_eq!(
            (&*explicit.canonical_service, &*explicit.canonical_revision),
            ("reviews-canonical", "2.0")
        );
    }

    #[test]
    fn equal_labels_are_equal_keys() {
        let local = LocalWorkload::new(&workload(&[]), "Kubernetes");
        let a = SourceDestination::new(Direction::Outbound, &local, None, None);
        let b = SourceDestination::new(Direction::Outbound, &local, None, None);
        let c = SourceDestination::new(Direction::Inbound, &local, None, None);
        assert_eq!(a, b);
        assert_eq!(a.hash, b.hash);
        assert_ne!(a, c);
        assert_eq!(response_flags(""), "-");
        assert!(matches!(response_flags("UF"), Cow::Borrowed("UF")));
        assert_eq!(response_flags("UF,URX"), "UF,URX");
    }
}
