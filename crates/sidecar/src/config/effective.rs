//! The merge: from [`Documents`] to [`SidecarConfig`], in Istio's order.
//!
//! 1. **Workload**: the Sidecar document, completed by a Deployment of the same name
//!    (`linkerd.rs`).
//! 2. **Mesh defaults ← MeshConfig**: `enableTracing` (default true), `defaultConfig`,
//!    `extensionProviders`, `defaultProviders`, `rootNamespace` (`mesh_merge.rs`).
//! 3. **Telemetry**, as istiod's `Telemetries.applicableTelemetries` and `Tracing` do
//!    (mesh-tracing-spec §2.2): the selector-less resource of the root namespace, then the
//!    selector-less resource of the workload's namespace, then the resource of that namespace
//!    whose `selector.matchLabels` the workload's labels include. Their `tracing` entries are
//!    applied in that order to a client (outbound) and a server (inbound) spec, each entry
//!    touching the spec(s) its `match.mode` selects; a field an entry sets overrides, a field it
//!    leaves out is inherited, and `customTags` replace the inherited tags wholesale. Both specs
//!    start from `defaultProviders.tracing[0]`. A spec left without a provider does not trace.
//!    Sampling falls back to `defaultConfig.tracing.sampling`, then 1 % (§2.3); tags fall back to
//!    `defaultConfig.tracing.customTags` when the entries leave none.
//! 4. **Legacy MeshConfig**, only when no Telemetry entry applies and there is no default
//!    provider: `enableTracing` + `defaultConfig.tracing` (§2.2), exporting to
//!    `defaultConfig.tracing.zipkin.address` if set, else OTLP/gRPC `localhost:4317`.
//! 5. **Envoy tracing blocks**, in file order, as patches on top (`envoy_tracing.rs`).
//! 6. The Sidecar document's native rules, and Linkerd's annotations. When the file holds no
//!    Istio or Envoy tracing resource, the annotations decide instead of Istio's defaults: both
//!    directions export over OTLP/gRPC to `config.linkerd.io/trace-collector` and never start
//!    a trace (mesh-tracing-spec §4.2). Next to Istio resources they are reported and ignored.
//!
//! Istio allows one selector-less Telemetry per namespace and one selecting Telemetry per
//! workload; where it would silently pick the oldest, this is an error. Two documents with the
//! same namespace and name are one Kubernetes object: the later replaces the earlier (with a
//! warning). A provider name that matches no extension provider is an error too (istiod skips
//! it).

use ::config::{ConfigError, ConfigErrors};
use propagation::Propagators;

use super::custom_tags::overlay;
use super::documents::{Document, Documents};
use super::envoy_tracing::EnvoyTracing;
use super::exporters::{default_exporter, envoy_exporter, legacy_zipkin, plain_otlp_grpc};
use super::linkerd::linkerd_tracing;
use super::mesh_merge::{Mesh, merge, service_name};
use super::sampling::SamplingPercentage;
use super::settings::{Endpoint, ServiceRoute, SidecarConfig, Workload};
use super::sidecar_resource::SidecarResource;
use super::telemetry::{TelemetryResource, TracingEntry, Unapplied};
use super::telemetry_merge::{applicable, check_provider_references, telemetry_path};
use super::tracing_settings::{
    DEFAULT_MAX_PATH_TAG_LENGTH, DirectionSettings, LinkerdTracing, TracingSettings,
};

impl Documents {
    /// Merges the documents into the sidecar's settings; every problem is reported at once.
    pub fn settings(&self) -> Result<SidecarConfig, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let mut warnings = Vec::new();
        let sidecars: Vec<_> = self
            .documents
            .iter()
            .filter_map(|d| match d {
                Document::Sidecar(sidecar) => Some(sidecar),
                _ => None,
            })
            .collect();
        let Some(sidecar) = sidecars.first() else {
            return Err(ConfigError::new(
                "",
                "no Sidecar document: the file needs a kind: Sidecar document describing the workload",
            )
            .into());
        };
        for extra in &sidecars[1..] {
            errors.push(ConfigError::new(
                &extra.label,
                format!(
                    "a second Sidecar document (the first is {}): one file configures one sidecar",
                    sidecar.label
                ),
            ));
        }
        let workload = workload(self, sidecar, &mut warnings);
        let annotations_path = format!("{}.metadata.annotations", sidecar.label);
        if workload.annotations.contains_key(STATS_HISTOGRAM_BUCKETS) {
            let at = annotation_path(self, sidecar, STATS_HISTOGRAM_BUCKETS);
            warnings
                .push(format!("{at}: not applied: the histograms keep Envoy's default buckets"));
        }
        let mesh_sources: Vec<_> = self
            .documents
            .iter()
            .filter_map(|d| match d {
                Document::Mesh(source) => Some(&**source),
                _ => None,
            })
            .collect();
        let mesh = match merge(&mesh_sources, &mut warnings) {
            Ok(mesh) => mesh,
            Err(more) => return Err(ConfigErrors(errors.into_iter().chain(more).collect())),
        };
        let services = &sidecar.services;
        let telemetries: Vec<&TelemetryResource> = self
            .documents
            .iter()
            .filter_map(|d| match d {
                Document::Telemetry(telemetry) => Some(telemetry),
                _ => None,
            })
            .collect();
        check_provider_references(&telemetries, &mesh, &mut errors);
        let applicable =
            applicable(&telemetries, &workload, &mesh.root_namespace, &mut errors, &mut warnings);
        for telemetry in &applicable {
            for section in &telemetry.unapplied {
                warnings.push(unapplied_section(&telemetry.label, *section));
            }
        }
        let entries: Vec<&TracingEntry> =
            applicable.iter().flat_map(|t| t.tracing.iter()).collect();
        let (mut inbound, mut outbound) = if entries.is_empty() && mesh.default_provider.is_none() {
            let legacy = legacy(&mesh, services, &mut errors);
            (legacy.clone(), legacy)
        } else {
            telemetry_path(&entries, &mesh, services, &mut errors, &mut warnings)
        };
        let mut service_name = service_name(&mesh.proxy, &workload);
        let mut envoy_blocks = false;
        for document in &self.documents {
            let (block, clusters) = match document {
                Document::EnvoyTracing(block) => (block, &[][..]),
                Document::EnvoyBootstrap(bootstrap) => match &bootstrap.tracing {
                    Some(block) => (block, &bootstrap.clusters[..]),
                    None => continue,
                },
                _ => continue,
            };
            envoy_blocks = true;
            if let Some(name) =
                apply_envoy(block, clusters, services, [&mut inbound, &mut outbound], &mut errors)
            {
                service_name = name;
            }
        }
        let linkerd =
            linkerd_tracing(&workload.annotations, services, &annotations_path, &mut warnings)
                .unwrap_or_else(|error| {
                    errors.push(error);
                    None
                });
        let mut linkerd_traced = false;
        if let Some(linkerd) = &linkerd {
            let proxy = &mesh.proxy;
            let istio_tracing = !entries.is_empty()
                || mesh.default_provider.is_some()
                || !mesh.enable_tracing
                || proxy.sampling.is_some()
                || proxy.zipkin_address.is_some()
                || proxy.custom_tags.is_some();
            if istio_tracing || envoy_blocks {
                warnings.push(format!(
                    "{annotations_path}: Linkerd's trace-collector annotation is ignored: the \
                     file's Istio or Envoy resources configure this workload's tracing"
                ));
            } else {
                linkerd_traced = true;
                for settings in [&mut inbound, &mut outbound] {
                    linkerd_mode(settings, linkerd);
                }
                let rules = &sidecar.tracing;
                if !rules.force_trace_headers.is_empty() || !rules.always_trace_paths.is_empty() {
                    warnings.push(format!(
                        "{}.spec.tracing: forceTraceHeaders and alwaysTracePaths apply only to \
                         requests that carry trace context: traced the Linkerd way (by \
                         {annotations_path}), the sidecar never starts a trace",
                        sidecar.label
                    ));
                }
            }
        }
        errors.into_result()?;
        let rules = &sidecar.tracing;
        let propagators = rules.propagators.unwrap_or(if linkerd_traced {
            Propagators::NONE
        } else {
            Propagators::seed_composite()
        });
        Ok(SidecarConfig {
            tracing: TracingSettings {
                service_name,
                inbound,
                outbound,
                force_trace_headers: rules.force_trace_headers.clone(),
                never_trace_paths: rules.never_trace_paths.clone(),
                always_trace_paths: rules.always_trace_paths.clone(),
                linkerd,
                stitching: rules.stitching,
                propagators,
            },
            mesh: mesh.identity(),
            workload,
            listeners: sidecar.listeners.clone(),
            services: sidecar.services.clone(),
            warnings,
        })
    }
}

/// The Sidecar's metadata, completed by the Deployment of the same workload.
fn workload(
    documents: &Documents,
    sidecar: &SidecarResource,
    warnings: &mut Vec<String>,
) -> Workload {
    let name = sidecar.metadata.name.clone().unwrap_or_default();
    let namespace = sidecar
        .metadata
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let mut labels = std::collections::BTreeMap::new();
    let mut annotations = std::collections::BTreeMap::new();
    for document in &documents.documents {
        let Document::Deployment(deployment) = document else {
            continue;
        };
        let same_name = deployment.metadata.name.as_deref() == Some(name.as_str());
        let same_namespace =
            deployment.metadata.namespace.as_deref().is_none_or(|ns| ns == namespace);
        if same_name && same_namespace {
            labels.extend(deployment.template.labels.clone());
            annotations.extend(deployment.template.annotations.clone());
        } else {
            warnings.push(format!(
                "{}: not the Sidecar's workload ({namespace}/{name}); its pod template is not read",
                deployment.label
            ));
        }
    }
    labels.extend(sidecar.metadata.labels.clone());
    annotations.extend(sidecar.metadata.annotations.clone());
    Workload { name, namespace, labels, annotations }
}

/// Both directions under legacy MeshConfig tracing (no Telemetry applies, no default provider).
fn legacy(mesh: &Mesh, services: &[ServiceRoute], errors: &mut ConfigErrors) -> DirectionSettings {
    let proxy = &mesh.proxy;
    let mut settings = DirectionSettings::off();
    settings.sampling = proxy.sampling.unwrap_or(mesh.pilot_trace_sampling);
    settings.custom_tags = proxy.custom_tags.clone().unwrap_or_default();
    settings.enable_istio_tags = proxy.enable_istio_tags.unwrap_or(true);
    settings.max_path_tag_length = proxy.max_path_tag_length.unwrap_or(DEFAULT_MAX_PATH_TAG_LENGTH);
    if !mesh.enable_tracing {
        return settings;
    }
    let exporter = match &proxy.zipkin_address {
        Some((address, at)) => match legacy_zipkin(address, at, services) {
            Ok(exporter) => exporter,
            Err(error) => {
                errors.push(error);
                return settings;
            }
        },
        None => default_exporter(services),
    };
    settings.enabled = true;
    settings.exporter = Some(exporter);
    settings
}

/// Istio's pod annotation that sets the metrics' histogram buckets.
const STATS_HISTOGRAM_BUCKETS: &str = "sidecar.istio.io/statsHistogramBuckets";

/// Where the workload's `key` annotation is written: the Sidecar document, which wins, else the
/// pod template of its Deployment.
fn annotation_path(documents: &Documents, sidecar: &SidecarResource, key: &str) -> String {
    if !sidecar.metadata.annotations.contains_key(key) {
        for document in &documents.documents {
            if let Document::Deployment(deployment) = document
                && deployment.template.annotations.contains_key(key)
            {
                return format!("{}.spec.template.metadata.annotations.{key}", deployment.label);
            }
        }
    }
    format!("{}.metadata.annotations.{key}", sidecar.label)
}

/// The warning for a Telemetry section the sidecar accepts but does not apply.
fn unapplied_section(label: &str, section: Unapplied) -> String {
    let (field, what) = match section {
        Unapplied::Metrics => (
            "metrics",
            "the sidecar serves Istio's standard metrics with their default labels and buckets; \
             metric overrides, disabled metrics and providers are not applied",
        ),
        Unapplied::AccessLogging => ("accessLogging", "the sidecar writes no access log"),
    };
    format!("{label}.spec.{field}: not applied: {what}")
}

/// A direction traced as linkerd2-proxy traces: spans only for requests that arrive with a
/// sampled context (no sampling rate of its own), OTLP/gRPC to the annotated collector.
fn linkerd_mode(settings: &mut DirectionSettings, linkerd: &LinkerdTracing) {
    settings.enabled = true;
    settings.start_traces = false;
    settings.sampling = SamplingPercentage::ZERO;
    settings.exporter = Some(plain_otlp_grpc(linkerd.endpoint.clone(), linkerd.collector.clone()));
}

/// Applies an Envoy tracing block to both directions; returns its `service_name`, if any.
fn apply_envoy(
    block: &EnvoyTracing,
    clusters: &[(String, Endpoint)],
    services: &[ServiceRoute],
    directions: [&mut DirectionSettings; 2],
    errors: &mut ConfigErrors,
) -> Option<String> {
    let exporter = match &block.provider {
        Some(provider) => match clusters.iter().find(|(name, _)| *name == provider.cluster) {
            Some((_, endpoint)) => Some(envoy_exporter(provider, endpoint, services)),
            None => {
                let defined: Vec<&str> = clusters.iter().map(|(name, _)| name.as_str()).collect();
                let defined = if defined.is_empty() {
                    "none are defined".to_owned()
                } else {
                    format!("defined: {}", defined.join(", "))
                };
                errors.push(ConfigError::new(
                    &provider.cluster_path,
                    format!(
                        "cluster {:?} is not defined in static_resources.clusters ({defined})",
                        provider.cluster
                    ),
                ));
                None
            }
        },
        None => None,
    };
    for settings in directions {
        overlay(&mut settings.custom_tags, &block.custom_tags);
        if let Some(sampling) = block.random_sampling {
            settings.sampling = sampling;
        }
        if let Some(sampling) = block.client_sampling {
            settings.client_sampling = sampling;
        }
        if let Some(sampling) = block.overall_sampling {
            settings.overall_sampling = sampling;
        }
        if let Some(length) = block.max_path_tag_length.filter(|l| *l > 0) {
            settings.max_path_tag_length = length;
        }
        if let Some(exporter) = &exporter {
            settings.enabled = true;
            settings.disable_span_reporting = false;
            settings.exporter = Some(exporter.clone());
        }
    }
    block.provider.as_ref().and_then(|provider| provider.service_name.clone())
}
