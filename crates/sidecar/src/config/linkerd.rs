//! Linkerd's tracing annotations, and the `Deployment` documents that carry them.
//!
//! linkerd-jaeger's injector (Linkerd ≤ 2.18; mesh-tracing-spec §4.1) reads
//! `config.linkerd.io/trace-collector` (the collector's `host:port`) and
//! `config.alpha.linkerd.io/trace-collector-service-account` from the pod's annotations. The
//! first seed writes the service account as `config.linkerd.io/trace-collector-service-account`
//! (without `alpha`); Linkerd itself would ignore that spelling, but its meaning is plain, so it
//! is read too, the `alpha` key winning when both are present.
//!
//! A `Deployment` document contributes its pod template's labels and annotations to the workload
//! when its `metadata.name` is the Sidecar's workload name (and its namespace, when it has one,
//! is the Sidecar's). Only `metadata` and `spec.template.metadata` are read: a Deployment
//! carries the whole pod spec (containers, volumes, probes, …), none of which the sidecar needs,
//! so the rest of `spec` is accepted without being checked.

use std::collections::BTreeMap;

use ::config::{ConfigError, ConfigErrors, Value};
use serde::Deserialize;

use super::object_meta::ObjectMeta;
use super::settings::{Endpoint, ServiceRoute, resolve};
use super::tracing_settings::LinkerdTracing;

/// The collector address annotation.
pub const TRACE_COLLECTOR: &str = "config.linkerd.io/trace-collector";
/// The collector service account annotation, as Linkerd spells it.
pub const TRACE_COLLECTOR_SERVICE_ACCOUNT: &str =
    "config.alpha.linkerd.io/trace-collector-service-account";
/// The same, as the first seed spells it.
const TRACE_COLLECTOR_SERVICE_ACCOUNT_SEED: &str =
    "config.linkerd.io/trace-collector-service-account";

/// The apiVersion of `kind: Deployment`.
pub const DEPLOYMENT_API_VERSION: &str = "apps/v1";

/// A Deployment as the sidecar reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeploymentResource {
    pub(crate) label: String,
    pub(crate) metadata: ObjectMeta,
    /// `spec.template.metadata`.
    pub(crate) template: ObjectMeta,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeploymentDocument {
    #[serde(default)]
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    api_version: Option<Value>,
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    kind: Value,
    #[serde(default)]
    metadata: ObjectMeta,
    /// Read by hand: only `template.metadata` matters.
    #[serde(default)]
    #[allow(dead_code, reason = "read from the raw value, see parse")]
    spec: Value,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and ignored: written by the cluster, not the user")]
    status: Option<Value>,
}

/// Parses a Deployment document.
pub(crate) fn parse_deployment(
    value: &Value,
    label: &str,
) -> Result<DeploymentResource, ConfigErrors> {
    let document: DeploymentDocument = ::config::from_value(value, label)?;
    let template = match value.get_path(&["spec", "template", "metadata"]) {
        Some(metadata) => {
            ::config::from_value(metadata, &format!("{label}.spec.template.metadata"))?
        }
        None => ObjectMeta::default(),
    };
    let mut errors = ConfigErrors::new();
    for (key, shape) in
        [("spec", value.get("spec")), ("spec.template", value.get_path(&["spec", "template"]))]
    {
        if let Some(found) = shape.filter(|v| !v.is_map() && !v.is_null()) {
            errors.push(ConfigError::new(
                format!("{label}.{key}"),
                format!("invalid type: {}, expected a map", found.kind()),
            ));
        }
    }
    errors.into_result()?;
    Ok(DeploymentResource { label: label.to_owned(), metadata: document.metadata, template })
}

/// Linkerd's tracing settings from a workload's annotations; `path` names the annotations map
/// for errors. `None` when there is no collector annotation.
pub(crate) fn linkerd_tracing(
    annotations: &BTreeMap<String, String>,
    services: &[ServiceRoute],
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<LinkerdTracing>, ConfigError> {
    let service_account = annotations
        .get(TRACE_COLLECTOR_SERVICE_ACCOUNT)
        .or_else(|| annotations.get(TRACE_COLLECTOR_SERVICE_ACCOUNT_SEED))
        .filter(|account| !account.is_empty())
        .cloned();
    let Some(collector) = annotations.get(TRACE_COLLECTOR) else {
        if service_account.is_some() {
            warnings.push(format!(
                "{path}: a trace collector service account without {TRACE_COLLECTOR} does nothing"
            ));
        }
        return Ok(None);
    };
    let parsed = Endpoint::parse(collector)
        .map_err(|message| ConfigError::new(format!("{path}.{TRACE_COLLECTOR}"), message))?;
    Ok(Some(LinkerdTracing {
        collector: collector.clone(),
        endpoint: resolve(services, &parsed.host, parsed.port),
        service_account,
    }))
}
