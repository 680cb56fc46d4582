//! The `kind: Sidecar` document: the workload, its listeners, its services table and the
//! sidecar's native tracing rules.
//!
//! ```yaml
//! kind: Sidecar
//! metadata: {name: productpage-v1, namespace: default, labels: {app: productpage, version: v1}}
//! spec:
//!   inbound: {listen: 0.0.0.0:15006, app: 127.0.0.1:9080}   # service: productpage:9080
//!   outbound: {listen: 127.0.0.1:15001}
//!   admin: {listen: 127.0.0.1:15000}
//!   services: {reviews.default.svc.cluster.local:9080: 127.0.0.1:19080}
//!   tracing:                       # optional; the native rules below replace EnvoyFilter hacks
//!     forceTraceHeaders: [{name: x-debug-trace, value: "true"}]
//!     neverTracePaths: [{exact: /healthz}, {prefix: /app-health/}]
//!     alwaysTracePaths: [{prefix: /checkout}]
//!     stitching: true
//!     propagators: [tracecontext, baggage, b3multi]
//! ```
//!
//! This is meshtrace's own document, not Istio's `networking.istio.io` Sidecar resource (which
//! limits a proxy's egress): it has no `apiVersion`, or `meshtrace.io/v1alpha1`.

use std::collections::BTreeMap;

use ::config::{ConfigError, ConfigErrors, ListenAddress, Value};
use propagation::{Propagator, Propagators, UnknownPropagator};
use serde::Deserialize;

use super::object_meta::ObjectMeta;
use super::read::read;
use super::settings::{Endpoint, InboundListener, Listeners, ServiceRoute};
use crate::service_name::qualify;

/// The apiVersion a Sidecar document may carry (it may also carry none).
pub const SIDECAR_API_VERSION: &str = "meshtrace.io/v1alpha1";

/// A parsed Sidecar document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SidecarResource {
    pub(crate) label: String,
    pub(crate) metadata: ObjectMeta,
    pub(crate) listeners: Listeners,
    pub(crate) services: Vec<ServiceRoute>,
    pub(crate) tracing: SidecarTracing,
}

/// `spec.tracing` after validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SidecarTracing {
    pub(crate) force_trace_headers: Vec<HeaderMatch>,
    pub(crate) never_trace_paths: Vec<PathMatch>,
    pub(crate) always_trace_paths: Vec<PathMatch>,
    pub(crate) stitching: bool,
    /// The trace formats written on every forwarded request; `None`: the default of the mode
    /// the workload is traced in (see `TracingSettings::propagators`).
    pub(crate) propagators: Option<Propagators>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SidecarDocument {
    #[serde(default)]
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    api_version: Option<Value>,
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    kind: Value,
    metadata: ObjectMeta,
    #[serde(default)]
    spec: SidecarSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SidecarSpec {
    #[serde(default)]
    inbound: Option<InboundSpec>,
    #[serde(default)]
    outbound: ListenSpec<OutboundDefault>,
    #[serde(default)]
    admin: ListenSpec<AdminDefault>,
    #[serde(default)]
    services: BTreeMap<String, Endpoint>,
    #[serde(default)]
    tracing: TracingSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundSpec {
    #[serde(default = "default_inbound_listen")]
    listen: ListenAddress,
    app: Endpoint,
    #[serde(default)]
    service: Option<Endpoint>,
}

fn default_inbound_listen() -> ListenAddress {
    ListenAddress::new("0.0.0.0", 15006)
}

/// A default listen address, chosen by type so one struct serves `outbound` and `admin`.
trait DefaultListen {
    fn address() -> ListenAddress;
}

#[derive(Debug)]
struct OutboundDefault;

impl DefaultListen for OutboundDefault {
    fn address() -> ListenAddress {
        ListenAddress::new("127.0.0.1", 15001)
    }
}

#[derive(Debug)]
struct AdminDefault;

impl DefaultListen for AdminDefault {
    fn address() -> ListenAddress {
        ListenAddress::new("127.0.0.1", 15000)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct ListenSpec<D: DefaultListen> {
    #[serde(default = "D::address")]
    listen: ListenAddress,
    #[serde(skip)]
    default: std::marker::PhantomData<D>,
}

impl<D: DefaultListen> Default for ListenSpec<D> {
    fn default() -> Self {
        ListenSpec { listen: D::address(), default: std::marker::PhantomData }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TracingSpec {
    #[serde(default)]
    force_trace_headers: Vec<HeaderMatch>,
    #[serde(default)]
    never_trace_paths: Option<Vec<PathMatch>>,
    #[serde(default)]
    always_trace_paths: Vec<PathMatch>,
    #[serde(default)]
    stitching: Option<bool>,
    #[serde(default)]
    propagators: Option<Vec<String>>,
}

/// A request header to match: by name (any value) or by name and exact value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name; matched case-insensitively (stored lowercase).
    pub name: String,
    /// The exact value to match; absent matches any value.
    #[serde(default)]
    pub value: Option<String>,
}

/// A request path to match, without the query string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathMatch {
    /// `{exact: /healthz}`: the path is exactly this.
    Exact(String),
    /// `{prefix: /debug/}`: the path starts with this.
    Prefix(String),
}

impl PathMatch {
    /// Whether `path` (without its query string) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
        }
    }

    fn text(&self) -> &str {
        match self {
            PathMatch::Exact(text) | PathMatch::Prefix(text) => text,
        }
    }
}

/// The never-trace rules when the Sidecar document sets none: Kubernetes health checks.
///
/// Envoy never traces requests it classifies as health checks (`shouldTraceRequest`,
/// mesh-tracing-spec §1.6), and Istio keeps kubelet probes away from the sidecar's traced
/// listeners by rewriting them to pilot-agent's `/app-health/<container>/{livez,readyz,
/// startupz}`. The sidecar has no such rewrite, so it skips the conventional probe paths
/// `/healthz`, `/livez`, `/readyz` and Istio's rewritten `/app-health/` paths instead. Setting
/// `neverTracePaths` (even to `[]`) replaces this list.
pub fn default_never_trace_paths() -> Vec<PathMatch> {
    vec![
        PathMatch::Exact("/healthz".to_owned()),
        PathMatch::Exact("/livez".to_owned()),
        PathMatch::Exact("/readyz".to_owned()),
        PathMatch::Prefix("/app-health/".to_owned()),
    ]
}

/// Parses a Sidecar document; `label` (e.g. `document 1 (Sidecar productpage-v1)`) prefixes
/// every error path.
pub(crate) fn parse(value: &Value, label: &str) -> Result<SidecarResource, ConfigErrors> {
    read(value, label, |document: SidecarDocument| build(document, label))
}

fn build(document: SidecarDocument, label: &str) -> Result<SidecarResource, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    if document.metadata.name.as_deref().is_none_or(str::is_empty) {
        errors.push(ConfigError::new(format!("{label}.metadata.name"), "missing required key"));
    }
    let spec = document.spec;
    let mut services = Vec::new();
    for (authority, target) in spec.services {
        match Endpoint::parse(&authority) {
            Ok(Endpoint { host, port }) => services.push(ServiceRoute { host, port, target }),
            Err(message) => {
                errors.push(ConfigError::new(format!("{label}.spec.services.{authority}"), message))
            }
        }
    }
    let tracing = check_tracing(spec.tracing, &format!("{label}.spec.tracing"), &mut errors);
    let namespace = document.metadata.namespace.as_deref().filter(|ns| !ns.is_empty());
    let inbound = spec.inbound.map(|inbound| InboundListener {
        listen: inbound.listen,
        app: inbound.app,
        service: inbound.service.and_then(|service| {
            let path = format!("{label}.spec.inbound.service");
            qualify_service(service, namespace.unwrap_or("default"), &path, &mut errors)
        }),
    });
    errors.into_result()?;
    Ok(SidecarResource {
        label: label.to_owned(),
        metadata: document.metadata,
        listeners: Listeners { inbound, outbound: spec.outbound.listen, admin: spec.admin.listen },
        services,
        tracing,
    })
}

fn check_tracing(spec: TracingSpec, path: &str, errors: &mut ConfigErrors) -> SidecarTracing {
    let mut force_trace_headers = Vec::new();
    for (i, header) in spec.force_trace_headers.into_iter().enumerate() {
        if header.name.is_empty() || !header.name.bytes().all(is_token_byte) {
            errors.push(ConfigError::new(
                format!("{path}.forceTraceHeaders[{i}].name"),
                format!("invalid header name {:?}", header.name),
            ));
            continue;
        }
        force_trace_headers.push(HeaderMatch { name: header.name.to_ascii_lowercase(), ..header });
    }
    let never = spec.never_trace_paths.unwrap_or_else(default_never_trace_paths);
    check_paths(&never, &format!("{path}.neverTracePaths"), errors);
    check_paths(&spec.always_trace_paths, &format!("{path}.alwaysTracePaths"), errors);
    let propagators = spec
        .propagators
        .map(|names| check_propagators(&names, &format!("{path}.propagators"), errors));
    SidecarTracing {
        force_trace_headers,
        never_trace_paths: never,
        always_trace_paths: spec.always_trace_paths,
        stitching: spec.stitching.unwrap_or(true),
        propagators,
    }
}

/// Reads a list of `OTEL_PROPAGATORS` names (`tracecontext`, `baggage`, `b3`, `b3multi`);
/// `[none]` writes no format the request did not arrive with. An empty list is refused: an
/// SDK reads an empty variable as unset (the default), a reader of this file could take it
/// either way.
fn check_propagators(names: &[String], path: &str, errors: &mut ConfigErrors) -> Propagators {
    if names.is_empty() {
        errors.push(ConfigError::new(
            path,
            "empty: write [none] for no format beyond those a request carries, or leave \
             propagators out for the default [tracecontext, baggage, b3multi]",
        ));
    }
    let mut set = Propagators::NONE;
    for (i, name) in names.iter().enumerate() {
        if name == "none" {
            if names.len() > 1 {
                errors.push(ConfigError::new(
                    format!("{path}[{i}]"),
                    "\"none\" must be the only entry: it means no format",
                ));
            }
            continue;
        }
        match Propagator::from_name(name) {
            Some(propagator) => set = set.with(propagator),
            None => errors.push(ConfigError::new(
                format!("{path}[{i}]"),
                UnknownPropagator(name.clone()).to_string(),
            )),
        }
    }
    set
}

fn check_paths(rules: &[PathMatch], path: &str, errors: &mut ConfigErrors) {
    for (i, rule) in rules.iter().enumerate() {
        if !rule.text().starts_with('/') {
            let kind = match rule {
                PathMatch::Exact(_) => "exact",
                PathMatch::Prefix(_) => "prefix",
            };
            errors.push(ConfigError::new(
                format!("{path}[{i}].{kind}"),
                format!("invalid path {:?}: must start with \"/\"", rule.text()),
            ));
        }
    }
}

/// The Service's FQDN: a short name (`httpbin`, `httpbin.web`, `httpbin.web.svc`) completed
/// in `namespace` as a Kubernetes client would. The Service in front of a pod is in the pod's
/// namespace, and is a DNS name, not an address.
fn qualify_service(
    service: Endpoint,
    namespace: &str,
    path: &str,
    errors: &mut ConfigErrors,
) -> Option<Endpoint> {
    let Some(fqdn) = qualify(&service.host.to_ascii_lowercase(), namespace, true) else {
        errors.push(ConfigError::new(
            path,
            format!(
                "{:?} is not a Kubernetes Service name: expected name, name.namespace or \
                 name.namespace.svc.cluster.local, with a port",
                service.host
            ),
        ));
        return None;
    };
    if let Some(other) = fqdn.split('.').nth(1).filter(|ns| *ns != namespace) {
        errors.push(ConfigError::new(
            path,
            format!(
                "the Service in front of the workload is in its namespace, {namespace:?}, not \
                 {other:?}"
            ),
        ));
        return None;
    }
    Some(Endpoint::new(fqdn, service.port))
}

/// RFC 9110 token characters, the ones a header name may use.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}
