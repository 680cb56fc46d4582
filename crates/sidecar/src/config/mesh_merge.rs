//! Mesh-wide settings: every MeshConfig source of the file merged into one [`Mesh`], and the
//! service name Istio derives from it (mesh-tracing-spec §2.6).
//!
//! Several MeshConfig sources (two IstioOperator documents, say) merge in file order: a field set
//! later replaces the earlier value, `defaultConfig.tracing` fields merge one by one, and
//! `extensionProviders` lists are concatenated (names must stay unique), as overlaying
//! `istioctl install -f a.yaml -f b.yaml` files would.

use std::collections::BTreeMap;

use ::config::{ConfigError, ConfigErrors};

use super::custom_tags::CustomTag;
use super::extension_providers::ExtensionProvider;
use super::mesh_config::{GlobalValues, MeshConfigSource, TracingServiceName};
use super::sampling::SamplingPercentage;
use super::settings::{MeshIdentity, Workload};

/// Istio's default root namespace (`meshConfig.rootNamespace`).
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// Istio's default trust domain (`meshConfig.trustDomain`), the injector's last fallback for
/// the mesh id.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The cluster name Istio uses when `values.global.multiCluster.clusterName` is not set.
pub const DEFAULT_CLUSTER_ID: &str = "Kubernetes";

/// The merged mesh configuration.
#[derive(Debug, Clone)]
pub(crate) struct Mesh {
    /// `enableTracing`; Istio's built-in mesh config sets it true (`pkg/config/mesh/mesh.go`).
    pub(crate) enable_tracing: bool,
    pub(crate) root_namespace: String,
    /// `defaultProviders.tracing[0]` and where it is written.
    pub(crate) default_provider: Option<(String, String)>,
    /// Every extension provider and where it is defined.
    pub(crate) providers: Vec<(ExtensionProvider, String)>,
    pub(crate) proxy: Proxy,
    /// istiod's `PILOT_TRACE_SAMPLING` (an IstioOperator's `values.pilot.traceSampling`):
    /// the rate when neither Telemetry nor `defaultConfig.tracing.sampling` sets one. Default
    /// 1 %.
    pub(crate) pilot_trace_sampling: SamplingPercentage,
    /// `meshConfig.trustDomain`.
    pub(crate) trust_domain: Option<String>,
    /// The IstioOperators' `values.global` names of the mesh and the cluster.
    pub(crate) global: GlobalValues,
}

/// The merged `defaultConfig` (ProxyConfig), tracing part.
#[derive(Debug, Clone, Default)]
pub(crate) struct Proxy {
    /// `tracing.sampling`, `None` when unset or `0` (which Istio treats as unset).
    pub(crate) sampling: Option<SamplingPercentage>,
    pub(crate) custom_tags: Option<Vec<CustomTag>>,
    pub(crate) max_path_tag_length: Option<u32>,
    pub(crate) enable_istio_tags: Option<bool>,
    /// The legacy tracer address and where it is written.
    pub(crate) zipkin_address: Option<(String, String)>,
    pub(crate) tracing_service_name: Option<TracingServiceName>,
    pub(crate) service_cluster: Option<String>,
    /// `proxyMetadata.ISTIO_META_MESH_ID` and `proxyMetadata.ISTIO_META_CLUSTER_ID`.
    pub(crate) metadata_mesh_id: Option<String>,
    pub(crate) metadata_cluster_id: Option<String>,
}

impl Mesh {
    /// The mesh and cluster ids as Istio's sidecar injector sets them on istio-proxy
    /// (`ISTIO_META_MESH_ID`, `ISTIO_META_CLUSTER_ID`): `proxyMetadata` first (the injector
    /// appends it after its own variables, so it wins), then the Helm `values.global` names,
    /// then, for the mesh, the trust domain (`meshConfig.trustDomain`, then
    /// `values.global.trustDomain`, then `cluster.local`); for the cluster, `Kubernetes`.
    pub(crate) fn identity(&self) -> MeshIdentity {
        let proxy = &self.proxy;
        let global = &self.global;
        let mesh_id =
            [&proxy.metadata_mesh_id, &global.mesh_id, &self.trust_domain, &global.trust_domain]
                .into_iter()
                .find_map(Clone::clone)
                .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned());
        let cluster_id = [&proxy.metadata_cluster_id, &self.global.cluster_name]
            .into_iter()
            .find_map(Clone::clone)
            .unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_owned());
        MeshIdentity { mesh_id, cluster_id }
    }

    /// The provider called `name`.
    pub(crate) fn provider(&self, name: &str) -> Option<&ExtensionProvider> {
        self.providers.iter().map(|(provider, _)| provider).find(|provider| provider.name == name)
    }

    /// Provider names, for "unknown provider" messages.
    pub(crate) fn provider_names(&self) -> String {
        let names: Vec<&str> = self.providers.iter().map(|(p, _)| p.name.as_str()).collect();
        if names.is_empty() {
            "none are defined".to_owned()
        } else {
            format!("defined: {}", names.join(", "))
        }
    }
}

/// Merges the MeshConfig sources in file order.
pub(crate) fn merge(
    sources: &[&MeshConfigSource],
    warnings: &mut Vec<String>,
) -> Result<Mesh, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let mut mesh = Mesh {
        enable_tracing: true,
        root_namespace: DEFAULT_ROOT_NAMESPACE.to_owned(),
        default_provider: None,
        providers: Vec::new(),
        proxy: Proxy::default(),
        pilot_trace_sampling: SamplingPercentage::ISTIO_DEFAULT,
        trust_domain: None,
        global: GlobalValues::default(),
    };
    for source in sources {
        if source.global.mesh_id.is_some() {
            mesh.global.mesh_id.clone_from(&source.global.mesh_id);
        }
        if source.global.cluster_name.is_some() {
            mesh.global.cluster_name.clone_from(&source.global.cluster_name);
        }
        if source.global.trust_domain.is_some() {
            mesh.global.trust_domain.clone_from(&source.global.trust_domain);
        }
        if let Some(domain) = source.mesh.trust_domain.as_ref().filter(|d| !d.is_empty()) {
            mesh.trust_domain = Some(domain.clone());
        }
        if let Some((percent, at)) = &source.pilot_trace_sampling {
            mesh.pilot_trace_sampling = pilot_trace_sampling(*percent, at, warnings);
        }
        let config = &source.mesh;
        let path = &source.path;
        if let Some(enable) = config.enable_tracing {
            mesh.enable_tracing = enable;
        }
        if let Some(root) = config.root_namespace.as_ref().filter(|root| !root.is_empty()) {
            mesh.root_namespace = root.clone();
        }
        if let Some(defaults) = &config.default_providers {
            mesh.default_provider = defaults
                .tracing
                .first()
                .map(|name| (name.clone(), format!("{path}.defaultProviders.tracing[0]")));
        }
        for (i, provider) in config.extension_providers.iter().enumerate() {
            let at = format!("{path}.extensionProviders[{i}]");
            if let Some((_, first)) = mesh.providers.iter().find(|(p, _)| p.name == provider.name) {
                errors.push(ConfigError::new(
                    format!("{at}.name"),
                    format!("provider {:?} is already defined at {first}", provider.name),
                ));
                continue;
            }
            mesh.providers.push((provider.clone(), at));
        }
        if let Some(proxy) = &config.default_config {
            merge_proxy(
                &mut mesh.proxy,
                proxy,
                &format!("{path}.defaultConfig"),
                &mut errors,
                warnings,
            );
        }
    }
    if let Some((name, at)) = &mesh.default_provider
        && mesh.provider(name).is_none()
    {
        errors.push(ConfigError::new(
            at,
            format!("unknown provider {name:?}; {}", mesh.provider_names()),
        ));
    }
    errors.into_result()?;
    Ok(mesh)
}

/// The rate istiod takes from `PILOT_TRACE_SAMPLING`. The Helm chart sets that variable only
/// for a non-zero `traceSampling`, and istiod replaces a value outside 0 to 100 by its default,
/// 1 %, with a warning; so does the sidecar.
fn pilot_trace_sampling(percent: f64, at: &str, warnings: &mut Vec<String>) -> SamplingPercentage {
    if percent == 0.0 {
        return SamplingPercentage::ISTIO_DEFAULT;
    }
    SamplingPercentage::from_percent(percent).unwrap_or_else(|problem| {
        warnings.push(format!("{at}: {problem}; istiod samples at its default, 1 %"));
        SamplingPercentage::ISTIO_DEFAULT
    })
}

fn merge_proxy(
    into: &mut Proxy,
    proxy: &super::mesh_config::ProxyConfig,
    path: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) {
    if proxy.tracing_service_name.is_some() || proxy.service_cluster.is_some() {
        // One oneof in Istio: setting either replaces the other.
        into.tracing_service_name = proxy.tracing_service_name;
        into.service_cluster = proxy.service_cluster.clone();
    }
    if let Some(address) = proxy.zipkin_address.as_ref().filter(|a| !a.is_empty()) {
        into.zipkin_address = Some((address.clone(), format!("{path}.zipkinAddress")));
    }
    if let Some(id) = proxy.metadata("ISTIO_META_MESH_ID") {
        into.metadata_mesh_id = Some(id);
    }
    if let Some(id) = proxy.metadata("ISTIO_META_CLUSTER_ID") {
        into.metadata_cluster_id = Some(id);
    }
    let Some(tracing) = &proxy.tracing else {
        return;
    };
    let path = format!("{path}.tracing");
    match tracing.sampling {
        Some(SamplingPercentage::ZERO) => warnings.push(format!(
            "{path}.sampling: 0 means \"not set\" to Istio, so istiod's default applies \
             (1%, or values.pilot.traceSampling); use a Telemetry randomSamplingPercentage: 0 \
             to stop sampling"
        )),
        Some(sampling) => into.sampling = Some(sampling),
        None => {}
    }
    if let Some(tags) = tracing.custom_tags(&path, errors) {
        into.custom_tags = Some(tags);
    }
    if let Some(length) = tracing.max_path_tag_length.filter(|l| *l > 0) {
        into.max_path_tag_length = Some(length);
    }
    if let Some(enable) = tracing.enable_istio_tags {
        into.enable_istio_tags = Some(enable);
    }
    if let Some(address) =
        tracing.zipkin.as_ref().and_then(|z| z.address.as_ref()).filter(|a| !a.is_empty())
    {
        into.zipkin_address = Some((address.clone(), format!("{path}.zipkin.address")));
    }
}

/// The first non-empty value among `keys` in `labels`.
fn first_label<'a>(labels: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .filter_map(|key| labels.get(*key))
        .map(String::as_str)
        .find(|value| !value.is_empty())
}

/// Istio's canonical service label.
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";
/// Istio's canonical revision label.
pub const CANONICAL_REVISION_LABEL: &str = "service.istio.io/canonical-revision";

/// The span `service.name` Istio gives this workload (`getServiceCluster`, mesh-tracing-spec
/// §2.6):
///
/// * `serviceCluster: X` → `X` (unless empty or `istio-proxy`);
/// * `APP_LABEL_AND_NAMESPACE` (default) → `<app>.<namespace>`, app = first of the labels `app`,
///   `app.kubernetes.io/name`, `service.istio.io/canonical-name`, else the workload name;
/// * `CANONICAL_NAME_ONLY` → the canonical name: first of `service.istio.io/canonical-name`,
///   `app.kubernetes.io/name`, `app`, else the workload name;
/// * `CANONICAL_NAME_AND_NAMESPACE` → `<canonical name>.<namespace>`.
pub(crate) fn service_name(proxy: &Proxy, workload: &Workload) -> String {
    if let Some(cluster) =
        proxy.service_cluster.as_deref().filter(|c| !c.is_empty() && *c != "istio-proxy")
    {
        return cluster.to_owned();
    }
    let labels = &workload.labels;
    let canonical = || {
        first_label(labels, &[CANONICAL_NAME_LABEL, "app.kubernetes.io/name", "app"])
            .unwrap_or(&workload.name)
    };
    match proxy.tracing_service_name.unwrap_or_default() {
        TracingServiceName::AppLabelAndNamespace => {
            let app = first_label(labels, &["app", "app.kubernetes.io/name", CANONICAL_NAME_LABEL])
                .unwrap_or(&workload.name);
            format!("{app}.{}", workload.namespace)
        }
        TracingServiceName::CanonicalNameOnly => canonical().to_owned(),
        TracingServiceName::CanonicalNameAndNamespace => {
            format!("{}.{}", canonical(), workload.namespace)
        }
    }
}
