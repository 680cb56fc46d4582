//! Istio's `Telemetry` resource (`telemetry.istio.io/v1` and `v1alpha1`), tracing part.
//!
//! Only `spec.tracing` configures the sidecar. `spec.metrics` and `spec.accessLogging` are valid
//! Istio and are accepted, but not applied: a resource that applies to the workload and sets
//! them gets a warning saying so (the sidecar serves Istio's standard metrics as they are by
//! default, and writes no access log). `spec.targetRefs` (and the older `targetRef`) select
//! gateways, waypoints and services, never a sidecar, so such a resource never applies here
//! (mesh-tracing-spec §2.1). The resource is a CRD, so only the camelCase field names of its
//! schema are accepted.

use std::collections::BTreeMap;

use ::config::{ConfigError, ConfigErrors, Value};
use serde::Deserialize;

use super::custom_tags::{CustomTag, IstioCustomTag, istio_tags};
use super::object_meta::ObjectMeta;
use super::read::read;
use super::sampling::SamplingPercentage;

/// The apiVersions accepted for `kind: Telemetry`.
pub const TELEMETRY_API_VERSIONS: &[&str] =
    &["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"];

/// Which traffic a Telemetry tracing entry applies to (`match.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum WorkloadMode {
    /// Both directions (the default).
    #[default]
    #[serde(rename = "CLIENT_AND_SERVER")]
    ClientAndServer,
    /// Outbound: the workload is the client.
    #[serde(rename = "CLIENT")]
    Client,
    /// Inbound: the workload is the server.
    #[serde(rename = "SERVER")]
    Server,
}

impl WorkloadMode {
    /// Whether entries with this mode touch the client (outbound) spec.
    pub fn covers_client(self) -> bool {
        matches!(self, WorkloadMode::ClientAndServer | WorkloadMode::Client)
    }

    /// Whether entries with this mode touch the server (inbound) spec.
    pub fn covers_server(self) -> bool {
        matches!(self, WorkloadMode::ClientAndServer | WorkloadMode::Server)
    }
}

/// A parsed Telemetry resource: where it lives, what it selects, its tracing entries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TelemetryResource {
    /// The document label, for error paths.
    pub(crate) label: String,
    pub(crate) name: String,
    /// `metadata.namespace`; `None` means "the namespace it is applied in", taken to be the
    /// workload's (as `kubectl apply -n <workload namespace>` would).
    pub(crate) namespace: Option<String>,
    pub(crate) scope: Scope,
    pub(crate) tracing: Vec<TracingEntry>,
    /// The sections set that the sidecar does not apply, reported when the resource applies
    /// to the workload.
    pub(crate) unapplied: Vec<Unapplied>,
}

/// A Telemetry section that is valid Istio but not applied by the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unapplied {
    /// `spec.metrics`.
    Metrics,
    /// `spec.accessLogging`.
    AccessLogging,
}

/// What a Telemetry resource selects within its namespace.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scope {
    /// No selector: every workload of the namespace (of the mesh, in the root namespace).
    Namespace,
    /// `selector.matchLabels`: workloads whose labels include all of these.
    Selector(BTreeMap<String, String>),
    /// `targetRefs` / `targetRef`: gateways, waypoints or services, never a sidecar.
    TargetRefs,
}

/// One `spec.tracing[]` entry after validation; `None` fields inherit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TracingEntry {
    /// `spec.tracing[i]` in the document, for error paths.
    pub(crate) path: String,
    pub(crate) mode: WorkloadMode,
    /// The first provider name (Istio uses only the first) and its path.
    pub(crate) provider: Option<(String, String)>,
    pub(crate) sampling: Option<SamplingPercentage>,
    pub(crate) disable_span_reporting: Option<bool>,
    pub(crate) custom_tags: Option<Vec<CustomTag>>,
    pub(crate) use_request_id_for_trace_sampling: Option<bool>,
    pub(crate) enable_istio_tags: Option<bool>,
    pub(crate) disable_context_propagation: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TelemetryDocument {
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    api_version: Value,
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    kind: Value,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: TelemetrySpec,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and ignored: written by the cluster, not the user")]
    status: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TelemetrySpec {
    #[serde(default)]
    selector: Option<WorkloadSelector>,
    #[serde(default)]
    target_ref: Option<TargetRef>,
    #[serde(default)]
    target_refs: Vec<TargetRef>,
    #[serde(default)]
    tracing: Vec<TracingSpec>,
    #[serde(default)]
    metrics: Option<Value>,
    #[serde(default)]
    access_logging: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WorkloadSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
}

/// `PolicyTargetReference`; read only to check its shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a target ref never selects a sidecar; its fields are not used")]
struct TargetRef {
    #[serde(default)]
    group: Option<String>,
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TracingSpec {
    #[serde(default, rename = "match")]
    selector: Option<TracingSelector>,
    #[serde(default)]
    providers: Vec<ProviderRef>,
    #[serde(default)]
    random_sampling_percentage: Option<SamplingPercentage>,
    #[serde(default)]
    disable_span_reporting: Option<bool>,
    #[serde(default)]
    custom_tags: Option<BTreeMap<String, IstioCustomTag>>,
    #[serde(default)]
    use_request_id_for_trace_sampling: Option<bool>,
    #[serde(default)]
    enable_istio_tags: Option<bool>,
    #[serde(default)]
    disable_context_propagation: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TracingSelector {
    #[serde(default)]
    mode: WorkloadMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderRef {
    name: String,
}

/// Parses a Telemetry document; `label` prefixes every error path.
pub(crate) fn parse(value: &Value, label: &str) -> Result<TelemetryResource, ConfigErrors> {
    read(value, label, |document: TelemetryDocument| build(document, label))
}

fn build(document: TelemetryDocument, label: &str) -> Result<TelemetryResource, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let spec = document.spec;
    let has_targets = spec.target_ref.is_some() || !spec.target_refs.is_empty();
    let scope = match (spec.selector, has_targets) {
        (Some(_), true) => {
            errors.push(ConfigError::new(
                format!("{label}.spec"),
                "selector and targetRefs are mutually exclusive",
            ));
            Scope::TargetRefs
        }
        (_, true) => Scope::TargetRefs,
        (Some(selector), false) => Scope::Selector(selector.match_labels),
        (None, false) => Scope::Namespace,
    };
    let mut unapplied = Vec::new();
    let set = |section: &Option<Value>| section.as_ref().is_some_and(|value| !value.is_null());
    if set(&spec.metrics) {
        unapplied.push(Unapplied::Metrics);
    }
    if set(&spec.access_logging) {
        unapplied.push(Unapplied::AccessLogging);
    }
    let mut tracing = Vec::new();
    for (i, entry) in spec.tracing.into_iter().enumerate() {
        let path = format!("{label}.spec.tracing[{i}]");
        let provider = entry.providers.first().map(|first| {
            if first.name.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.providers[0].name"),
                    "must not be empty",
                ));
            }
            (first.name.clone(), format!("{path}.providers[0].name"))
        });
        let custom_tags = entry
            .custom_tags
            .as_ref()
            .map(|tags| istio_tags(tags, &format!("{path}.customTags"), &mut errors));
        tracing.push(TracingEntry {
            mode: entry.selector.unwrap_or_default().mode,
            provider,
            sampling: entry.random_sampling_percentage,
            disable_span_reporting: entry.disable_span_reporting,
            custom_tags,
            use_request_id_for_trace_sampling: entry.use_request_id_for_trace_sampling,
            enable_istio_tags: entry.enable_istio_tags,
            disable_context_propagation: entry.disable_context_propagation,
            path,
        });
    }
    errors.into_result()?;
    Ok(TelemetryResource {
        label: label.to_owned(),
        name: document.metadata.name.unwrap_or_default(),
        namespace: document.metadata.namespace,
        scope,
        tracing,
        unapplied,
    })
}
