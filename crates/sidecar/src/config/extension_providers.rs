//! `meshConfig.extensionProviders[]`: a name and one provider kind. `opentelemetry` and
//! `zipkin` are read in full; the other kinds (`datadog`, `envoyExtAuthzHttp`, `prometheus`, …)
//! are valid Istio and accepted as they are, and refused only if a Telemetry selects one of them
//! for tracing (`exporters.rs`).

use ::config::{ConfigError, ConfigErrors, Duration, Value};
use serde::Deserialize;

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

/// Checks an `opentelemetry` provider at `at`: what serde cannot.
pub(crate) fn check_otel(otel: &OpenTelemetryProvider, at: &str, errors: &mut ConfigErrors) {
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
            http.headers
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("{at}.http.headers[{i}]"), h))
                .collect()
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
