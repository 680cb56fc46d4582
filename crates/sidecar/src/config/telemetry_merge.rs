//! The Telemetry part of the merge (mesh-tracing-spec §2.2, istiod's
//! `Telemetries.applicableTelemetries` and `Tracing` in `pilot/pkg/model/telemetry.go`): which
//! Telemetry resources apply to the workload, and how their `tracing` entries fold into the
//! inbound (server) and outbound (client) settings. See `effective.rs` for the whole order.

use ::config::{ConfigError, ConfigErrors};

use super::custom_tags::CustomTag;
use super::exporters::{provider_exporter, provider_max_tag_length};
use super::mesh_merge::Mesh;
use super::sampling::SamplingPercentage;
use super::settings::{ServiceRoute, Workload};
use super::telemetry::{Scope, TelemetryResource, TracingEntry};
use super::tracing_settings::{DEFAULT_MAX_PATH_TAG_LENGTH, DirectionSettings};

/// Every Telemetry provider reference must name an extension provider.
pub(crate) fn check_provider_references(
    telemetries: &[&TelemetryResource],
    mesh: &Mesh,
    errors: &mut ConfigErrors,
) {
    for entry in telemetries.iter().flat_map(|t| t.tracing.iter()) {
        if let Some((name, at)) = &entry.provider
            && mesh.provider(name).is_none()
        {
            errors.push(ConfigError::new(
                at,
                format!("unknown provider {name:?}; {}", mesh.provider_names()),
            ));
        }
    }
}

/// The Telemetry resources that apply to the workload, in Istio's order: root namespace,
/// workload namespace, workload selector.
pub(crate) fn applicable<'a>(
    telemetries: &[&'a TelemetryResource],
    workload: &Workload,
    root: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Vec<&'a TelemetryResource> {
    let namespace_of =
        |t: &TelemetryResource| t.namespace.clone().unwrap_or_else(|| workload.namespace.clone());
    // Same namespace and name: the same Kubernetes object, so the later document replaces the
    // earlier one, as a second `kubectl apply` would.
    let mut latest: Vec<&'a TelemetryResource> = Vec::new();
    for telemetry in telemetries {
        let same = |t: &&TelemetryResource| {
            !telemetry.name.is_empty()
                && t.name == telemetry.name
                && namespace_of(t) == namespace_of(telemetry)
        };
        if let Some(index) = latest.iter().position(same) {
            warnings.push(format!(
                "{} replaces {} (same namespace and name)",
                telemetry.label, latest[index].label
            ));
            latest.remove(index);
        }
        latest.push(*telemetry);
    }
    let mut root_level = Vec::new();
    let mut namespace_level = Vec::new();
    let mut workload_level = Vec::new();
    for telemetry in latest {
        let namespace = namespace_of(telemetry);
        match &telemetry.scope {
            Scope::TargetRefs => warnings.push(format!(
                "{}: targetRefs select gateways, waypoints or services, never a sidecar; it does not apply",
                telemetry.label
            )),
            Scope::Namespace if namespace == root => root_level.push(telemetry),
            Scope::Namespace if namespace == workload.namespace => namespace_level.push(telemetry),
            Scope::Selector(labels) if namespace == workload.namespace => {
                if labels.iter().all(|(key, value)| workload.labels.get(key) == Some(value)) {
                    workload_level.push(telemetry);
                }
            }
            Scope::Namespace | Scope::Selector(_) => {}
        }
    }
    let mut out = Vec::new();
    let levels = [
        (root_level, format!("without a selector in the root namespace {root}")),
        (namespace_level, format!("without a selector in namespace {}", workload.namespace)),
        (workload_level, format!("selecting workload {}/{}", workload.namespace, workload.name)),
    ];
    for (level, what) in levels {
        if let [first, rest @ ..] = level.as_slice() {
            for extra in rest {
                errors.push(ConfigError::new(
                    &extra.label,
                    format!(
                        "a second Telemetry {what} (the first is {}); Istio allows only one",
                        first.label
                    ),
                ));
            }
            out.push(*first);
        }
    }
    out
}

/// Istio's `TracingSpec` while entries are applied.
#[derive(Clone)]
struct Spec {
    provider: Option<(String, String)>,
    disabled: bool,
    sampling: Option<SamplingPercentage>,
    custom_tags: Option<Vec<CustomTag>>,
    use_request_id: bool,
    istio_tags: bool,
    no_propagation: bool,
}

/// (inbound, outbound) under the Telemetry API.
pub(crate) fn telemetry_path(
    entries: &[&TracingEntry],
    mesh: &Mesh,
    services: &[ServiceRoute],
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> (DirectionSettings, DirectionSettings) {
    let start = Spec {
        provider: mesh.default_provider.clone(),
        disabled: false,
        sampling: None,
        custom_tags: None,
        use_request_id: true,
        istio_tags: mesh.proxy.enable_istio_tags.unwrap_or(true),
        no_propagation: false,
    };
    let (mut client, mut server) = (start.clone(), start);
    for entry in entries {
        let mut specs = Vec::new();
        if entry.mode.covers_client() {
            specs.push(&mut client);
        }
        if entry.mode.covers_server() {
            specs.push(&mut server);
        }
        for spec in specs {
            if let Some(provider) = &entry.provider
                && mesh.provider(&provider.0).is_some()
            {
                spec.provider = Some(provider.clone());
            }
            if let Some(disabled) = entry.disable_span_reporting {
                spec.disabled = disabled;
            }
            if let Some(tags) = &entry.custom_tags {
                spec.custom_tags = Some(tags.clone());
            }
            if let Some(sampling) = entry.sampling {
                spec.sampling = Some(sampling);
            }
            if let Some(value) = entry.use_request_id_for_trace_sampling {
                spec.use_request_id = value;
            }
            if let Some(value) = entry.enable_istio_tags {
                spec.istio_tags = value;
            }
            if let Some(value) = entry.disable_context_propagation {
                spec.no_propagation = value;
            }
        }
    }
    let inbound = direction(&server, "inbound", mesh, services, errors, warnings);
    let outbound = direction(&client, "outbound", mesh, services, errors, warnings);
    (inbound, outbound)
}

fn direction(
    spec: &Spec,
    name: &str,
    mesh: &Mesh,
    services: &[ServiceRoute],
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> DirectionSettings {
    let proxy = &mesh.proxy;
    let mut settings = DirectionSettings::off();
    settings.sampling = spec.sampling.or(proxy.sampling).unwrap_or(mesh.pilot_trace_sampling);
    settings.custom_tags = match &spec.custom_tags {
        Some(tags) if !tags.is_empty() => tags.clone(),
        _ => proxy.custom_tags.clone().unwrap_or_default(),
    };
    settings.enable_istio_tags = spec.istio_tags;
    settings.use_request_id_for_trace_sampling = spec.use_request_id;
    settings.disable_context_propagation = spec.no_propagation;
    let Some((provider_name, reference)) = &spec.provider else {
        warnings.push(format!(
            "tracing is off for {name} traffic: no tracing provider (name one in a Telemetry's providers \
             or in meshConfig.defaultProviders.tracing)"
        ));
        return settings;
    };
    let Some(provider) = mesh.provider(provider_name) else {
        return settings; // reported by check_provider_references or mesh_merge
    };
    settings.max_path_tag_length =
        provider_max_tag_length(provider).unwrap_or(DEFAULT_MAX_PATH_TAG_LENGTH);
    if spec.disabled {
        settings.disable_span_reporting = true;
        return settings;
    }
    match provider_exporter(provider, reference, services) {
        Ok(exporter) => {
            settings.enabled = true;
            settings.exporter = Some(exporter);
        }
        Err(error) => {
            if !errors.iter().any(|e| *e == error) {
                errors.push(error);
            }
        }
    }
    settings
}
