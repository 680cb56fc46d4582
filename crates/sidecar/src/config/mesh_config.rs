//! Istio's mesh configuration, tracing part: an `IstioOperator` document's `spec.meshConfig`, a
//! bare `meshConfig:` document (the Helm values form), or a bare MeshConfig (the contents of the
//! `istio` ConfigMap's `mesh` key).
//!
//! Read: `enableTracing`, `rootNamespace`, `defaultProviders.tracing`, `extensionProviders[]`
//! (`opentelemetry` and `zipkin` fully; the other kinds are accepted and refused only if a
//! Telemetry selects them for tracing), and from `defaultConfig` (ProxyConfig):
//! `tracingServiceName`, `serviceCluster`, `zipkinAddress` and `tracing` (`sampling`,
//! `customTags`, `maxPathTagLength`, `enableIstioTags`, `zipkin.address`) and `proxyMetadata`
//! (`ISTIO_META_MESH_ID`, `ISTIO_META_CLUSTER_ID`); `trustDomain`; from an `IstioOperator`'s
//! Helm `values`, `pilot.traceSampling` (istiod's `PILOT_TRACE_SAMPLING`) and `global`'s
//! `meshID`, `multiCluster.clusterName` and `trustDomain`. The fields listed in
//! `istio_fields.rs` are accepted and ignored; any other key is an error.

use std::collections::BTreeMap;

use ::config::{ConfigError, ConfigErrors, Value};
use serde::Deserialize;

use super::custom_tags::{CustomTag, IstioCustomTag, istio_tags};
use super::extension_providers::{ExtensionProvider, check_otel};
use super::istio_fields::{strip_istio_operator, strip_mesh_config};
use super::object_meta::ObjectMeta;
use super::read::read;
use super::sampling::SamplingPercentage;

/// The apiVersion of `kind: IstioOperator`.
pub const ISTIO_OPERATOR_API_VERSION: &str = "install.istio.io/v1alpha1";

/// `meshConfig` as the sidecar reads it; `path` is where it sits, for later error messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MeshConfigSource {
    pub(crate) path: String,
    pub(crate) mesh: MeshConfig,
    /// `values.pilot.traceSampling` of an `IstioOperator`, and where it is written: the Helm
    /// value istiod reads as `PILOT_TRACE_SAMPLING`, the last fallback of the sampling rate
    /// (mesh-tracing-spec §2.3).
    pub(crate) pilot_trace_sampling: Option<(f64, String)>,
    /// `values.global.meshID`, `values.global.multiCluster.clusterName` and
    /// `values.global.trustDomain` of an `IstioOperator`: what Istio's injector sets
    /// istio-proxy's `ISTIO_META_MESH_ID` and `ISTIO_META_CLUSTER_ID` from.
    pub(crate) global: GlobalValues,
}

/// The Helm `values.global` fields that name the mesh and the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GlobalValues {
    pub(crate) mesh_id: Option<String>,
    pub(crate) cluster_name: Option<String>,
    pub(crate) trust_domain: Option<String>,
}

impl GlobalValues {
    fn read(document: &Value) -> GlobalValues {
        let text = |path: &[&str]| {
            document.get_path(path).and_then(Value::scalar_text).filter(|text| !text.is_empty())
        };
        GlobalValues {
            mesh_id: text(&["spec", "values", "global", "meshID"]),
            cluster_name: text(&["spec", "values", "global", "multiCluster", "clusterName"]),
            trust_domain: text(&["spec", "values", "global", "trustDomain"]),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MeshConfig {
    #[serde(default)]
    pub(crate) enable_tracing: Option<bool>,
    #[serde(default)]
    pub(crate) root_namespace: Option<String>,
    #[serde(default)]
    pub(crate) default_config: Option<ProxyConfig>,
    #[serde(default)]
    pub(crate) extension_providers: Vec<ExtensionProvider>,
    #[serde(default)]
    pub(crate) default_providers: Option<DefaultProviders>,
    /// The mesh id's last fallback, as Istio's sidecar injector takes it.
    #[serde(default, alias = "trust_domain")]
    pub(crate) trust_domain: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DefaultProviders {
    #[serde(default)]
    pub(crate) tracing: Vec<String>,
    #[serde(default)]
    #[allow(dead_code, reason = "valid Istio, not read by the sidecar")]
    metrics: Option<Value>,
    #[serde(default)]
    #[allow(dead_code, reason = "valid Istio, not read by the sidecar")]
    access_logging: Option<Value>,
}

/// `meshConfig.defaultConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProxyConfig {
    #[serde(default)]
    pub(crate) tracing: Option<ProxyTracing>,
    #[serde(default)]
    pub(crate) tracing_service_name: Option<TracingServiceName>,
    #[serde(default)]
    pub(crate) service_cluster: Option<String>,
    /// Deprecated in Istio for `tracing.zipkin.address`; read the same way.
    #[serde(default)]
    pub(crate) zipkin_address: Option<String>,
    /// Environment variables of istio-proxy; the sidecar reads `ISTIO_META_MESH_ID` and
    /// `ISTIO_META_CLUSTER_ID` from it (the others configure istio-proxy itself).
    #[serde(default, alias = "proxy_metadata")]
    pub(crate) proxy_metadata: BTreeMap<String, Value>,
}

impl ProxyConfig {
    /// A `proxyMetadata` variable's value, when it is set and not empty.
    pub(crate) fn metadata(&self, name: &str) -> Option<String> {
        self.proxy_metadata.get(name).and_then(Value::scalar_text).filter(|text| !text.is_empty())
    }
}

/// How Istio names the sidecar's service (`defaultConfig.tracingServiceName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TracingServiceName {
    /// `<app label>.<namespace>` (Istio's default).
    #[default]
    AppLabelAndNamespace,
    /// `<canonical name>`.
    CanonicalNameOnly,
    /// `<canonical name>.<namespace>`.
    CanonicalNameAndNamespace,
}

/// `defaultConfig.tracing` (ProxyConfig `Tracing`), the legacy mesh-wide tracing settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProxyTracing {
    /// `0` means "unset" to Istio (mesh-tracing-spec §2.3).
    #[serde(default)]
    pub(crate) sampling: Option<SamplingPercentage>,
    #[serde(default)]
    custom_tags: Option<BTreeMap<String, IstioCustomTag>>,
    #[serde(default)]
    pub(crate) max_path_tag_length: Option<u32>,
    #[serde(default)]
    pub(crate) enable_istio_tags: Option<bool>,
    #[serde(default)]
    pub(crate) zipkin: Option<ZipkinAddress>,
    #[serde(default)]
    #[allow(dead_code, reason = "TLS to the legacy tracer; not read")]
    tls_settings: Option<Value>,
    #[serde(default)]
    lightstep: Option<Value>,
    #[serde(default)]
    datadog: Option<Value>,
    #[serde(default)]
    stackdriver: Option<Value>,
    #[serde(default)]
    open_census_agent: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZipkinAddress {
    #[serde(default)]
    pub(crate) address: Option<String>,
}

impl ProxyTracing {
    /// `customTags` as tags, when set.
    pub(crate) fn custom_tags(
        &self,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Vec<CustomTag>> {
        self.custom_tags
            .as_ref()
            .map(|tags| istio_tags(tags, &format!("{path}.customTags"), errors))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IstioOperatorDocument {
    #[serde(default)]
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    api_version: Option<Value>,
    #[allow(dead_code, reason = "checked before the typed read; declared so it is a known key")]
    kind: Value,
    #[serde(default)]
    #[allow(dead_code, reason = "an IstioOperator's name does not matter to the sidecar")]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: IstioOperatorSpec,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and ignored: written by the cluster, not the user")]
    status: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IstioOperatorSpec {
    #[serde(default)]
    mesh_config: Option<MeshConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BareMeshConfigDocument {
    mesh_config: MeshConfig,
}

/// Parses an `IstioOperator` document.
pub(crate) fn parse_istio_operator(
    value: &Value,
    label: &str,
) -> Result<MeshConfigSource, ConfigErrors> {
    // Read apart from the rest, and reported with the rest's errors, not instead of them.
    let pilot = pilot_trace_sampling(value, label);
    let mut stripped = value.clone();
    strip_istio_operator(&mut stripped);
    let source = read(&stripped, label, |document: IstioOperatorDocument| {
        let mesh = document.spec.mesh_config.unwrap_or_default();
        let path = format!("{label}.spec.meshConfig");
        check(&mesh, &path)?;
        Ok(MeshConfigSource {
            path,
            mesh,
            pilot_trace_sampling: None,
            global: GlobalValues::read(value),
        })
    });
    match (source, pilot) {
        (Ok(source), Ok(pilot_trace_sampling)) => {
            Ok(MeshConfigSource { pilot_trace_sampling, ..source })
        }
        (Ok(_), Err(errors)) | (Err(errors), Ok(_)) => Err(errors),
        (Err(errors), Err(more)) => Err(ConfigErrors(errors.into_iter().chain(more).collect())),
    }
}

/// `spec.values.pilot.traceSampling`, when set; the rest of `values` installs Istio and is not
/// read. Helm writes it as a number; anything else is an error.
fn pilot_trace_sampling(
    document: &Value,
    label: &str,
) -> Result<Option<(f64, String)>, ConfigErrors> {
    let Some(value) = document.get_path(&["spec", "values", "pilot", "traceSampling"]) else {
        return Ok(None);
    };
    let path = format!("{label}.spec.values.pilot.traceSampling");
    match value.as_f64() {
        Some(percent) => Ok(Some((percent, path))),
        None => Err(ConfigError::new(
            path,
            format!("expected a number (percent, 0 to 100), found {}", value.kind()),
        )
        .into()),
    }
}

/// Parses a document whose only key is `meshConfig`.
pub(crate) fn parse_bare_mesh_config(
    value: &Value,
    label: &str,
) -> Result<MeshConfigSource, ConfigErrors> {
    let mut stripped = value.clone();
    if let Some(mesh) = stripped.get_mut("meshConfig") {
        strip_mesh_config(mesh);
    }
    read(&stripped, label, |document: BareMeshConfigDocument| {
        let path = format!("{label}.meshConfig");
        check(&document.mesh_config, &path)?;
        Ok(MeshConfigSource {
            path,
            mesh: document.mesh_config,
            pilot_trace_sampling: None,
            global: GlobalValues::default(),
        })
    })
}

/// Parses a document that is a MeshConfig itself (`enableTracing: …` at the top).
pub(crate) fn parse_mesh_config(
    value: &Value,
    label: &str,
) -> Result<MeshConfigSource, ConfigErrors> {
    let mut stripped = value.clone();
    strip_mesh_config(&mut stripped);
    read(&stripped, label, |mesh: MeshConfig| {
        check(&mesh, label)?;
        Ok(MeshConfigSource {
            path: label.to_owned(),
            mesh,
            pilot_trace_sampling: None,
            global: GlobalValues::default(),
        })
    })
}

/// Checks what serde cannot: one kind per provider, unique names, supported legacy tracers,
/// header values.
fn check(mesh: &MeshConfig, path: &str) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::new();
    for (i, provider) in mesh.extension_providers.iter().enumerate() {
        let at = format!("{path}.extensionProviders[{i}]");
        if provider.name.is_empty() {
            errors.push(ConfigError::new(format!("{at}.name"), "must not be empty"));
        }
        if mesh.extension_providers[..i].iter().any(|other| other.name == provider.name) {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                format!("provider {:?} is defined more than once", provider.name),
            ));
        }
        match provider.kinds().len() {
            1 => {}
            0 => errors.push(ConfigError::new(
                &at,
                "missing provider: expected one provider kind such as opentelemetry or zipkin",
            )),
            _ => errors.push(ConfigError::new(
                &at,
                format!(
                    "expected exactly one provider kind, found {}",
                    provider.kinds().join(", ")
                ),
            )),
        }
        if let Some(otel) = &provider.opentelemetry {
            check_otel(otel, &format!("{at}.opentelemetry"), &mut errors);
        }
    }
    if let Some(proxy) = &mesh.default_config
        && proxy.service_cluster.is_some()
        && proxy.tracing_service_name.is_some()
    {
        errors.push(ConfigError::new(
            format!("{path}.defaultConfig"),
            "serviceCluster and tracingServiceName are mutually exclusive",
        ));
    }
    if let Some(tracing) = mesh.default_config.as_ref().and_then(|proxy| proxy.tracing.as_ref()) {
        let at = format!("{path}.defaultConfig.tracing");
        let legacy = [
            ("lightstep", tracing.lightstep.is_some()),
            ("datadog", tracing.datadog.is_some()),
            ("stackdriver", tracing.stackdriver.is_some()),
            ("openCensusAgent", tracing.open_census_agent.is_some()),
        ];
        for (kind, _) in legacy.iter().filter(|(_, set)| *set) {
            errors.push(ConfigError::new(
                format!("{at}.{kind}"),
                "this tracer is not supported: the sidecar exports OTLP or Zipkin; \
                 define an extensionProviders[].opentelemetry provider instead",
            ));
        }
        tracing.custom_tags(&at, &mut errors);
    }
    errors.into_result()
}
