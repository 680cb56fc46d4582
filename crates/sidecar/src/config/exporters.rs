//! Turning a provider into an [`Exporter`]: Istio extension providers, the legacy zipkin
//! address, the built-in default, and an Envoy OpenTelemetry provider's cluster.

use std::time::Duration;

use ::config::ConfigError;

use super::envoy_tracing::EnvoyOtelProvider;
use super::extension_providers::{
    ExtensionProvider, OpenTelemetryProvider, ProviderHeader, ZipkinProvider,
};
use super::settings::{Endpoint, ServiceRoute, resolve};
use super::tracing_settings::{
    ExportHeader, Exporter, HeaderValueSource, OtlpExporter, OtlpProtocol, ResourceDetector,
    ZipkinExporter,
};

/// Where spans go when no Istio resource says otherwise: OTLP/gRPC to `localhost:4317` (the
/// issue's default; Istio's own built-in default would be Zipkin at `zipkin.istio-system:9411`).
pub const DEFAULT_OTLP_ENDPOINT: (&str, u16) = ("localhost", 4317);

/// Istio's default `http.timeout` for OTLP/HTTP providers.
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Zipkin's span-upload path.
const ZIPKIN_PATH: &str = "/api/v2/spans";

/// Provider kinds that trace but that the sidecar cannot export to.
const OTHER_TRACERS: &[&str] = &["datadog", "lightstep", "skywalking", "stackdriver", "opencensus"];

/// The built-in default exporter, resolved through the services table.
pub(crate) fn default_exporter(services: &[ServiceRoute]) -> Exporter {
    let (host, port) = DEFAULT_OTLP_ENDPOINT;
    plain_otlp_grpc(resolve(services, host, port), Endpoint::new(host, port).to_string())
}

/// OTLP/gRPC to `endpoint` (called `authority`), with no path, timeout, headers or resource
/// detectors of its own: the built-in default's and Linkerd's collector export.
pub(crate) fn plain_otlp_grpc(endpoint: Endpoint, authority: String) -> Exporter {
    Exporter::Otlp(OtlpExporter {
        protocol: OtlpProtocol::Grpc,
        endpoint,
        authority,
        path: None,
        timeout: None,
        headers: Vec::new(),
        resource_detectors: Vec::new(),
    })
}

/// The legacy `defaultConfig.tracing.zipkin.address` exporter.
pub(crate) fn legacy_zipkin(
    address: &str,
    path: &str,
    services: &[ServiceRoute],
) -> Result<Exporter, ConfigError> {
    let parsed = Endpoint::parse(address).map_err(|message| ConfigError::new(path, message))?;
    Ok(Exporter::Zipkin(ZipkinExporter {
        endpoint: resolve(services, &parsed.host, parsed.port),
        authority: parsed.to_string(),
        path: ZIPKIN_PATH.to_owned(),
        trace_id_64bit: false,
    }))
}

/// The exporter for an Istio extension provider that a Telemetry (or `defaultProviders`)
/// selected at `reference` (the path of the reference, for errors).
pub(crate) fn provider_exporter(
    provider: &ExtensionProvider,
    reference: &str,
    services: &[ServiceRoute],
) -> Result<Exporter, ConfigError> {
    if let Some(otel) = &provider.opentelemetry {
        return Ok(Exporter::Otlp(otlp(otel, services)));
    }
    if let Some(zipkin) = &provider.zipkin {
        return Ok(Exporter::Zipkin(zipkin_exporter(zipkin, services)));
    }
    let kind = provider.kinds().first().copied().unwrap_or("unknown");
    let message = if OTHER_TRACERS.contains(&kind) {
        format!(
            "provider {:?} is a {kind} provider; the sidecar exports to opentelemetry and zipkin providers only",
            provider.name
        )
    } else {
        format!("provider {:?} is not a tracing provider (it is {kind})", provider.name)
    };
    Err(ConfigError::new(reference, message))
}

/// The `max_path_tag_length` a provider sets, if any.
pub(crate) fn provider_max_tag_length(provider: &ExtensionProvider) -> Option<u32> {
    let length = match (&provider.opentelemetry, &provider.zipkin) {
        (Some(otel), _) => otel.max_tag_length,
        (None, Some(zipkin)) => zipkin.max_tag_length,
        (None, None) => None,
    };
    length.filter(|l| *l > 0)
}

/// Istio's `[<Namespace>/]<Hostname>`: the host name, without the namespace.
fn service_host(service: &str) -> &str {
    service.rsplit_once('/').map_or(service, |(_, host)| host)
}

fn header(header: &ProviderHeader) -> ExportHeader {
    let value = match (&header.value, &header.env_name) {
        (_, Some(env)) => HeaderValueSource::Environment(env.clone()),
        (Some(value), None) => HeaderValueSource::Literal(value.clone()),
        (None, None) => HeaderValueSource::Literal(String::new()),
    };
    ExportHeader { name: header.name.clone(), value }
}

fn otlp(otel: &OpenTelemetryProvider, services: &[ServiceRoute]) -> OtlpExporter {
    let host = service_host(&otel.service);
    let mut resource_detectors = Vec::new();
    if let Some(detectors) = &otel.resource_detectors {
        if detectors.environment.is_some() {
            resource_detectors.push(ResourceDetector::Environment);
        }
        if detectors.dynatrace.is_some() {
            resource_detectors.push(ResourceDetector::Dynatrace);
        }
    }
    let (protocol, path, timeout, headers) = match (&otel.http, &otel.grpc) {
        (Some(http), _) => (
            OtlpProtocol::Http,
            Some(http.path.clone()),
            Some(http.timeout.map_or(DEFAULT_HTTP_TIMEOUT, ::config::Duration::get)),
            http.headers.iter().map(header).collect(),
        ),
        (None, Some(grpc)) => (
            OtlpProtocol::Grpc,
            None,
            grpc.timeout.map(::config::Duration::get),
            grpc.initial_metadata.iter().map(header).collect(),
        ),
        (None, None) => (OtlpProtocol::Grpc, None, None, Vec::new()),
    };
    OtlpExporter {
        protocol,
        endpoint: resolve(services, host, otel.port),
        authority: Endpoint::new(host, otel.port).to_string(),
        path,
        timeout,
        headers,
        resource_detectors,
    }
}

fn zipkin_exporter(zipkin: &ZipkinProvider, services: &[ServiceRoute]) -> ZipkinExporter {
    let host = service_host(&zipkin.service);
    ZipkinExporter {
        endpoint: resolve(services, host, zipkin.port),
        authority: Endpoint::new(host, zipkin.port).to_string(),
        path: zipkin
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ZIPKIN_PATH.to_owned()),
        trace_id_64bit: zipkin.enable_64bit_trace_id.unwrap_or(false),
    }
}

/// The exporter of an Envoy OpenTelemetry provider whose cluster is at `cluster` (resolved
/// through the services table like any other address).
pub(crate) fn envoy_exporter(
    provider: &EnvoyOtelProvider,
    cluster: &Endpoint,
    services: &[ServiceRoute],
) -> Exporter {
    Exporter::Otlp(OtlpExporter {
        protocol: provider.protocol,
        endpoint: resolve(services, &cluster.host, cluster.port),
        authority: cluster.to_string(),
        path: provider.http_path.clone(),
        timeout: provider.timeout,
        headers: provider.headers.clone(),
        resource_detectors: provider.resource_detectors.clone(),
    })
}
