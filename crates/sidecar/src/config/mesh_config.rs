//! Istio's mesh configuration, tracing part: an `IstioOperator` document's `spec.meshConfig`, a
//! bare `meshConfig:` document (the Helm values form), or a bare MeshConfig (the contents of the
//! `istio` ConfigMap's `mesh` key).
//!
//! Read: `enableTracing`, `rootNamespace`, `defaultProviders.tracing`, `extensionProviders[]`
//! (`opentelemetry` and `zipkin` fully; the other kinds are accepted and refused only if a
//! Telemetry selects them for tracing), and from `defaultConfig` (ProxyConfig):
//! `tracingServiceName`, `serviceCluster`, `zipkinAddress` and `tracing` (`sampling`,
//! `customTags`, `maxPathTagLength`, `enableIstioTags`, `zipkin.address`). The fields listed in
//! `istio_fields.rs` are accepted and ignored; any other key is an error.

use std::collections::BTreeMap;

use ::config::{ConfigError, ConfigErrors, Duration, Value};
use serde::Deserialize;

use super::custom_tags::{CustomTag, IstioCustomTag, istio_tags};
use super::istio_fields::{strip_istio_operator, strip_mesh_config};
use super::object_meta::ObjectMeta;
use super::sampling::SamplingPercentage;

/// The apiVersion of `kind: IstioOperator`.
pub const ISTIO_OPERATOR_API_VERSION: &str = "install.istio.io/v1alpha1";

/// `meshConfig` as the sidecar reads it; `path` is where it sits, for later error messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MeshConfigSource {
    pub(crate) path: String,
    pub(crate) mesh: MeshConfig,
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

/// One `meshConfig.extensionProviders[]` entry: a name and exactly one provider kind.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ExtensionProvider {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) opentelemetry: Option<OpenTelemetryProvider>,
    #[serde(default)]
    pub(crate) zipkin: Option<ZipkinProvider>,
    #[serde(default)]
    datadog: Option<Value>,
    #[serde(default)]
    lightstep: Option<Value>,
    #[serde(default)]
    skywalking: Option<Value>,
    #[serde(default)]
    stackdriver: Option<Value>,
    #[serde(default)]
    opencensus: Option<Value>,
    #[serde(default)]
    prometheus: Option<Value>,
    #[serde(default)]
    envoy_ext_authz_http: Option<Value>,
    #[serde(default)]
    envoy_ext_authz_grpc: Option<Value>,
    #[serde(default)]
    envoy_file_access_log: Option<Value>,
    #[serde(default)]
    envoy_http_als: Option<Value>,
    #[serde(default)]
    envoy_tcp_als: Option<Value>,
    #[serde(default)]
    envoy_otel_als: Option<Value>,
    #[serde(default)]
    sds: Option<Value>,
}

/// `extensionProviders[].opentelemetry` (Istio 1.16.1+).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OpenTelemetryProvider {
    pub(crate) service: String,
    pub(crate) port: u16,
    #[serde(default)]
    pub(crate) max_tag_length: Option<u32>,
    #[serde(default)]
    pub(crate) http: Option<OtlpHttpService>,
    #[serde(default)]
    pub(crate) grpc: Option<OtlpGrpcService>,
    /// The istio.io docs and the second seed write the proto name `resource_detectors`.
    #[serde(default, alias = "resource_detectors")]
    pub(crate) resource_detectors: Option<ResourceDetectors>,
    #[serde(default)]
    pub(crate) dynatrace_sampler: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtlpHttpService {
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) timeout: Option<Duration>,
    #[serde(default)]
    pub(crate) headers: Vec<ProviderHeader>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OtlpGrpcService {
    #[serde(default)]
    pub(crate) timeout: Option<Duration>,
    #[serde(default)]
    pub(crate) initial_metadata: Vec<ProviderHeader>,
}

/// A header for export requests: `value` or `envName`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProviderHeader {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) env_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourceDetectors {
    #[serde(default, deserialize_with = "::config::some_if_present")]
    pub(crate) environment: Option<Empty>,
    #[serde(default, deserialize_with = "::config::some_if_present")]
    pub(crate) dynatrace: Option<Empty>,
}

/// `{}`: a message without fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

/// `extensionProviders[].zipkin`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ZipkinProvider {
    pub(crate) service: String,
    pub(crate) port: u16,
    #[serde(default)]
    pub(crate) max_tag_length: Option<u32>,
    #[serde(default, rename = "enable64bitTraceId")]
    pub(crate) enable_64bit_trace_id: Option<bool>,
    #[serde(default)]
    pub(crate) path: Option<String>,
}

impl ExtensionProvider {
    /// The provider kind that is set (`opentelemetry`, `zipkin`, `datadog`, …), if exactly one.
    pub(crate) fn kinds(&self) -> Vec<&'static str> {
        let all: [(&'static str, bool); 15] = [
            ("opentelemetry", self.opentelemetry.is_some()),
            ("zipkin", self.zipkin.is_some()),
            ("datadog", self.datadog.is_some()),
            ("lightstep", self.lightstep.is_some()),
            ("skywalking", self.skywalking.is_some()),
            ("stackdriver", self.stackdriver.is_some()),
            ("opencensus", self.opencensus.is_some()),
            ("prometheus", self.prometheus.is_some()),
            ("envoyExtAuthzHttp", self.envoy_ext_authz_http.is_some()),
            ("envoyExtAuthzGrpc", self.envoy_ext_authz_grpc.is_some()),
            ("envoyFileAccessLog", self.envoy_file_access_log.is_some()),
            ("envoyHttpAls", self.envoy_http_als.is_some()),
            ("envoyTcpAls", self.envoy_tcp_als.is_some()),
            ("envoyOtelAls", self.envoy_otel_als.is_some()),
            ("sds", self.sds.is_some()),
        ];
        all.iter().filter(|(_, set)| *set).map(|(kind, _)| *kind).collect()
    }
}

impl ProxyTracing {
    /// `customTags` as tags, when set.
    pub(crate) fn custom_tags(&self, path: &str, errors: &mut ConfigErrors) -> Option<Vec<CustomTag>> {
        self.custom_tags.as_ref().map(|tags| istio_tags(tags, &format!("{path}.customTags"), errors))
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
pub(crate) fn parse_istio_operator(value: &Value, label: &str) -> Result<MeshConfigSource, ConfigErrors> {
    let mut stripped = value.clone();
    strip_istio_operator(&mut stripped);
    let document: IstioOperatorDocument = ::config::from_value(&stripped, label)?;
    let mesh = document.spec.mesh_config.unwrap_or_default();
    let path = format!("{label}.spec.meshConfig");
    check(&mesh, &path)?;
    Ok(MeshConfigSource { path, mesh })
}

/// Parses a document whose only key is `meshConfig`.
pub(crate) fn parse_bare_mesh_config(value: &Value, label: &str) -> Result<MeshConfigSource, ConfigErrors> {
    let mut stripped = value.clone();
    if let Some(mesh) = stripped.get_mut("meshConfig") {
        strip_mesh_config(mesh);
    }
    let document: BareMeshConfigDocument = ::config::from_value(&stripped, label)?;
    let path = format!("{label}.meshConfig");
    check(&document.mesh_config, &path)?;
    Ok(MeshConfigSource { path, mesh: document.mesh_config })
}

/// Parses a document that is a MeshConfig itself (`enableTracing: …` at the top).
pub(crate) fn parse_mesh_config(value: &Value, label: &str) -> Result<MeshConfigSource, ConfigErrors> {
    let mut stripped = value.clone();
    strip_mesh_config(&mut stripped);
    let mesh: MeshConfig = ::config::from_value(&stripped, label)?;
    check(&mesh, label)?;
    Ok(MeshConfigSource { path: label.to_owned(), mesh })
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
            0 => errors.push(ConfigError::new(&at, "missing provider: expected one provider kind such as opentelemetry or zipkin")),
            _ => errors.push(ConfigError::new(&at, format!("expected exactly one provider kind, found {}", provider.kinds().join(", ")))),
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

fn check_otel(otel: &OpenTelemetryProvider, at: &str, errors: &mut ConfigErrors) {
    if otel.service.is_empty() {
        errors.push(ConfigError::new(format!("{at}.service"), "must not be empty"));
    }
    if otel.http.is_some() && otel.grpc.is_some() {
        errors.push(ConfigError::new(at, "http and grpc are mutually exclusive"));
    }
    if otel.dynatrace_sampler.is_some() {
        errors.push(ConfigError::new(
            format!("{at}.dynatraceSampler"),
            "not supported: the sidecar samples with randomSamplingPercentage",
        ));
    }
    let headers = match (&otel.http, &otel.grpc) {
        (Some(http), _) => {
            if !http.path.starts_with('/') {
                errors.push(ConfigError::new(
                    format!("{at}.http.path"),
                    format!("invalid path {:?}: must start with \"/\"", http.path),
                ));
            }
            http.headers.iter().enumerate().map(|(i, h)| (format!("{at}.http.headers[{i}]"), h)).collect()
        }
        (None, Some(grpc)) => grpc
            .initial_metadata
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("{at}.grpc.initialMetadata[{i}]"), h))
            .collect(),
        (None, None) => Vec::new(),
    };
    for (path, header) in headers {
        if header.name.is_empty() {
            errors.push(ConfigError::new(format!("{path}.name"), "must not be empty"));
        }
        if header.value.is_some() == header.env_name.is_some() {
            errors.push(ConfigError::new(path, "expected exactly one of value, envName"));
        }
    }
}
