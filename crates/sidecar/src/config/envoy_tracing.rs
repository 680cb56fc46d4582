//! An Envoy HTTP connection manager `tracing` block, on its own (`tracing:` as the document's
//! only key, as the first seed's `envoy-custom-tags.yaml` writes it) or inside an Envoy bootstrap
//! (`envoy_bootstrap.rs`).
//!
//! Read: `custom_tags` (`literal`, `environment`, `request_header`), `random_sampling`,
//! `client_sampling`, `overall_sampling`, `max_path_tag_length`, and `provider` when it is
//! `envoy.tracers.opentelemetry` (`grpc_service.envoy_grpc.cluster_name`, `http_service.http_uri`,
//! `timeout`, headers, `service_name`, `resource_detectors`). Envoy spells fields the protobuf
//! way (snake_case).
//!
//! Merge (`effective.rs`): such a block is applied after the Istio resources, the way an
//! `EnvoyFilter` MERGE patch lands on the connection manager Istio generated: its custom tags are
//! added to Istio's (same name: the block's wins), the fields it sets override, and a provider
//! turns tracing on for both directions with that exporter.

use ::config::{ConfigError, ConfigErrors, Duration, Value};
use serde::Deserialize;

use super::custom_tags::{CustomTag, EnvoyCustomTag, envoy_tags};
use super::read::read;
use super::sampling::SamplingPercentage;
use super::tracing_settings::{ExportHeader, HeaderValueSource, OtlpProtocol, ResourceDetector};

/// Envoy's name for the OpenTelemetry tracer.
const OPENTELEMETRY_TRACER: &str = "envoy.tracers.opentelemetry";

/// A validated tracing block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvoyTracing {
    pub(crate) custom_tags: Vec<CustomTag>,
    pub(crate) random_sampling: Option<SamplingPercentage>,
    pub(crate) client_sampling: Option<SamplingPercentage>,
    pub(crate) overall_sampling: Option<SamplingPercentage>,
    pub(crate) max_path_tag_length: Option<u32>,
    pub(crate) provider: Option<EnvoyOtelProvider>,
}

/// The OpenTelemetry provider of a tracing block; the cluster is resolved later (it needs the
/// bootstrap's clusters).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvoyOtelProvider {
    pub(crate) protocol: OtlpProtocol,
    /// The upstream cluster name (gRPC `envoy_grpc.cluster_name`, HTTP `http_uri.cluster`).
    pub(crate) cluster: String,
    /// Where the cluster name is written.
    pub(crate) cluster_path: String,
    /// HTTP only: the path of `http_uri.uri`.
    pub(crate) http_path: Option<String>,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) headers: Vec<ExportHeader>,
    pub(crate) service_name: Option<String>,
    pub(crate) resource_detectors: Vec<ResourceDetector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TracingDocument {
    tracing: TracingBlock,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TracingBlock {
    #[serde(default)]
    custom_tags: Vec<EnvoyCustomTag>,
    #[serde(default)]
    random_sampling: Option<Percent>,
    #[serde(default)]
    client_sampling: Option<Percent>,
    #[serde(default)]
    overall_sampling: Option<Percent>,
    #[serde(default)]
    max_path_tag_length: Option<u32>,
    #[serde(default)]
    provider: Option<Provider>,
}

/// `envoy.type.v3.Percent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Percent {
    value: SamplingPercentage,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Provider {
    name: String,
    typed_config: OtelConfig,
}

/// `envoy.config.trace.v3.OpenTelemetryConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OtelConfig {
    #[serde(rename = "@type")]
    type_url: String,
    #[serde(default)]
    grpc_service: Option<GrpcService>,
    #[serde(default)]
    http_service: Option<HttpService>,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    resource_detectors: Vec<TypedExtension>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrpcService {
    #[serde(default)]
    envoy_grpc: Option<EnvoyGrpc>,
    #[serde(default)]
    google_grpc: Option<Value>,
    #[serde(default)]
    timeout: Option<Duration>,
    #[serde(default)]
    initial_metadata: Vec<HeaderValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvoyGrpc {
    cluster_name: String,
    #[serde(default)]
    #[allow(dead_code, reason = "the authority comes from the cluster's address")]
    authority: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpService {
    http_uri: HttpUri,
    #[serde(default)]
    request_headers_to_add: Vec<HeaderValueOption>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpUri {
    uri: String,
    cluster: String,
    #[serde(default)]
    timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderValue {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderValueOption {
    header: HeaderValue,
    #[serde(default)]
    #[allow(dead_code, reason = "export requests carry each header once")]
    append_action: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypedExtension {
    name: String,
    #[serde(default)]
    #[allow(dead_code, reason = "neither detector takes settings the sidecar reads")]
    typed_config: Option<Value>,
}

/// Parses a document whose only key is `tracing`.
pub(crate) fn parse_document(value: &Value, label: &str) -> Result<EnvoyTracing, ConfigErrors> {
    read(value, label, |document: TracingDocument| {
        check(document.tracing, &format!("{label}.tracing"))
    })
}

/// Parses the `tracing` block at `path` inside a bootstrap.
pub(crate) fn parse_block(value: &Value, path: &str) -> Result<EnvoyTracing, ConfigErrors> {
    read(value, path, |block: TracingBlock| check(block, path))
}

fn check(block: TracingBlock, path: &str) -> Result<EnvoyTracing, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let custom_tags = envoy_tags(&block.custom_tags, &format!("{path}.custom_tags"), &mut errors);
    let provider = block.provider.and_then(|provider| {
        let at = format!("{path}.provider");
        check_provider(provider, &at).map_err(|more| errors.extend(more)).ok()
    });
    errors.into_result()?;
    Ok(EnvoyTracing {
        custom_tags,
        random_sampling: block.random_sampling.map(|p| p.value),
        client_sampling: block.client_sampling.map(|p| p.value),
        overall_sampling: block.overall_sampling.map(|p| p.value),
        max_path_tag_length: block.max_path_tag_length,
        provider,
    })
}

fn check_provider(provider: Provider, at: &str) -> Result<EnvoyOtelProvider, ConfigErrors> {
    if provider.name != OPENTELEMETRY_TRACER {
        return Err(ConfigError::new(
            format!("{at}.name"),
            format!(
                "unsupported tracer {:?}: the sidecar supports {OPENTELEMETRY_TRACER}",
                provider.name
            ),
        )
        .into());
    }
    let config = provider.typed_config;
    let at = format!("{at}.typed_config");
    let mut errors = ConfigErrors::new();
    if !config.type_url.ends_with("envoy.config.trace.v3.OpenTelemetryConfig") {
        errors.push(ConfigError::new(
            format!("{at}.@type"),
            format!("expected type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, found {:?}", config.type_url),
        ));
    }
    let mut resource_detectors = Vec::new();
    for (i, detector) in config.resource_detectors.iter().enumerate() {
        match detector.name.rsplit('.').next() {
            Some("environment") => resource_detectors.push(ResourceDetector::Environment),
            Some("dynatrace") => resource_detectors.push(ResourceDetector::Dynatrace),
            _ => errors.push(ConfigError::new(
                format!("{at}.resource_detectors[{i}].name"),
                format!("unsupported resource detector {:?}: expected the environment or dynatrace detector", detector.name),
            )),
        }
    }
    let transport = match (config.grpc_service, config.http_service) {
        (Some(grpc), None) => grpc_transport(grpc, &format!("{at}.grpc_service"), &mut errors),
        (None, Some(http)) => http_transport(http, &format!("{at}.http_service"), &mut errors),
        (Some(_), Some(_)) => {
            errors.push(ConfigError::new(
                &at,
                "grpc_service and http_service are mutually exclusive",
            ));
            None
        }
        (None, None) => {
            errors.push(ConfigError::new(
                &at,
                "missing exporter: expected grpc_service or http_service",
            ));
            None
        }
    };
    errors.into_result()?;
    let Some(transport) = transport else {
        return Err(ConfigError::new(at, "missing exporter").into());
    };
    Ok(EnvoyOtelProvider {
        protocol: transport.protocol,
        cluster: transport.cluster,
        cluster_path: transport.cluster_path,
        http_path: transport.http_path,
        timeout: transport.timeout,
        headers: transport.headers,
        service_name: config.service_name.filter(|name| !name.is_empty()),
        resource_detectors,
    })
}

/// What `grpc_service` or `http_service` says.
struct Transport {
    protocol: OtlpProtocol,
    cluster: String,
    cluster_path: String,
    http_path: Option<String>,
    timeout: Option<std::time::Duration>,
    headers: Vec<ExportHeader>,
}

fn literal_headers(headers: impl Iterator<Item = HeaderValue>) -> Vec<ExportHeader> {
    headers
        .map(|h| ExportHeader { name: h.key, value: HeaderValueSource::Literal(h.value) })
        .collect()
}

fn grpc_transport(grpc: GrpcService, at: &str, errors: &mut ConfigErrors) -> Option<Transport> {
    if grpc.google_grpc.is_some() {
        errors.push(ConfigError::new(format!("{at}.google_grpc"), "not supported; use envoy_grpc"));
        return None;
    }
    let Some(envoy_grpc) = grpc.envoy_grpc else {
        errors.push(ConfigError::new(format!("{at}.envoy_grpc"), "missing required key"));
        return None;
    };
    Some(Transport {
        protocol: OtlpProtocol::Grpc,
        cluster: envoy_grpc.cluster_name,
        cluster_path: format!("{at}.envoy_grpc.cluster_name"),
        http_path: None,
        timeout: grpc.timeout.map(Duration::get),
        headers: literal_headers(grpc.initial_metadata.into_iter()),
    })
}

fn http_transport(http: HttpService, at: &str, errors: &mut ConfigErrors) -> Option<Transport> {
    // `uri` is a full URL whose authority Envoy ignores (the cluster decides); keep its path.
    let uri = http.http_uri.uri;
    let after_scheme = uri.split_once("://").map_or(uri.as_str(), |(_, rest)| rest);
    let path = after_scheme.find('/').map(|at| after_scheme[at..].to_owned());
    let Some(path) = path else {
        errors.push(ConfigError::new(
            format!("{at}.http_uri.uri"),
            format!("invalid uri {uri:?}: expected a path such as http://collector:4318/v1/traces"),
        ));
        return None;
    };
    Some(Transport {
        protocol: OtlpProtocol::Http,
        cluster: http.http_uri.cluster,
        cluster_path: format!("{at}.http_uri.cluster"),
        http_path: Some(path),
        timeout: http.http_uri.timeout.map(Duration::get),
        headers: literal_headers(http.request_headers_to_add.into_iter().map(|h| h.header)),
    })
}
