//! [`TracingSettings`]: how the sidecar traces, once every document has been merged.
//!
//! Istio configures tracing per listener direction: the sidecar's inbound listener gets the
//! Telemetry "server" spec and its outbound listener the "client" spec (`configureTracing-
//! FromTelemetry`, mesh-tracing-spec §2.1), and a Telemetry entry with `match.mode` touches one
//! of them only. So the per-direction settings live in [`DirectionSettings`], once for
//! [`inbound`](TracingSettings::inbound) and once for [`outbound`](TracingSettings::outbound).

use std::time::Duration;

use propagation::Propagators;

use super::custom_tags::CustomTag;
use super::sampling::SamplingPercentage;
use super::settings::Endpoint;
use super::sidecar_resource::{HeaderMatch, PathMatch};
use super::telemetry::WorkloadMode;

/// The sidecar's tracing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// The `service.name` of the sidecar's spans (Istio: the Envoy service cluster, computed
    /// from `defaultConfig.tracingServiceName`, labels and namespace; mesh-tracing-spec §2.6).
    pub service_name: String,
    /// The inbound listener: SERVER spans (Istio's server spec).
    pub inbound: DirectionSettings,
    /// The outbound listener: CLIENT spans (Istio's client spec).
    pub outbound: DirectionSettings,
    /// Requests carrying one of these headers are traced whatever the sampling rate, as Envoy
    /// treats `x-envoy-force-trace` (Sidecar `spec.tracing.forceTraceHeaders`).
    pub force_trace_headers: Vec<HeaderMatch>,
    /// Requests to these paths are never traced; checked first (Sidecar
    /// `spec.tracing.neverTracePaths`, by default the health-check paths of
    /// [`default_never_trace_paths`](super::sidecar_resource::default_never_trace_paths)).
    pub never_trace_paths: Vec<PathMatch>,
    /// Requests to these paths are always traced (Sidecar `spec.tracing.alwaysTracePaths`).
    pub always_trace_paths: Vec<PathMatch>,
    /// Linkerd's tracing settings, when the workload carries Linkerd's annotations.
    pub linkerd: Option<LinkerdTracing>,
    /// Whether the sidecar joins the app's outbound requests to the inbound request that caused
    /// them when the app does not forward trace headers (Sidecar `spec.tracing.stitching`,
    /// default on).
    pub stitching: bool,
    /// The trace formats written on every forwarded request, besides those it arrived with
    /// (Sidecar `spec.tracing.propagators`, `OTEL_PROPAGATORS` names). Default: the first
    /// seed's composite propagator, `tracecontext,baggage,b3multi`; for a workload traced the
    /// Linkerd way, none, since linkerd-proxy rewrites only the formats a request carries.
    pub propagators: Propagators,
}

impl TracingSettings {
    /// Which directions trace, as a Telemetry `match.mode` would say it; `None` when neither.
    pub fn mode(&self) -> Option<WorkloadMode> {
        match (self.inbound.enabled, self.outbound.enabled) {
            (true, true) => Some(WorkloadMode::ClientAndServer),
            (true, false) => Some(WorkloadMode::Server),
            (false, true) => Some(WorkloadMode::Client),
            (false, false) => None,
        }
    }
}

/// The tracing settings of one listener direction: what Istio puts in that listener's HTTP
/// connection manager `tracing` block.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionSettings {
    /// Whether this direction traces at all. False when legacy `enableTracing: false` applies,
    /// when no tracing provider resolves for it, or when `disableSpanReporting` is set: Istio
    /// then gives the listener no tracing block, so no spans, no sampling decision and no
    /// trace-header rewriting (mesh-tracing-spec §2.1).
    pub enabled: bool,
    /// Set when `disableSpanReporting: true` is why this direction is off. Istio's API doc says
    /// context propagation and sampling continue in that case; its implementation drops the
    /// tracing block (§2.1). Kept apart so the proxy can follow either.
    pub disable_span_reporting: bool,
    /// Random sampling for requests without a prior decision (Envoy `random_sampling`).
    pub sampling: SamplingPercentage,
    /// Envoy `client_sampling` (for `x-client-trace-id`); Istio always sets 100 %.
    pub client_sampling: SamplingPercentage,
    /// Envoy `overall_sampling`; Istio always sets 100 %.
    pub overall_sampling: SamplingPercentage,
    /// Custom tags, sorted by name (the `istio.*` tags are not listed: see
    /// [`enable_istio_tags`](Self::enable_istio_tags)).
    pub custom_tags: Vec<CustomTag>,
    /// Add Istio's `istio.canonical_service`, `istio.namespace`, … tags (mesh-tracing-spec
    /// §2.4); Telemetry `enableIstioTags`, default true.
    pub enable_istio_tags: bool,
    /// Decide sampling from the `x-request-id` (mesh-tracing-spec §1.6); Telemetry
    /// `useRequestIdForTraceSampling`, default true.
    pub use_request_id_for_trace_sampling: bool,
    /// Do not propagate trace headers; Telemetry `disableContextPropagation`, default false.
    pub disable_context_propagation: bool,
    /// Longest request path written to the `http.url` tag (Envoy `max_path_tag_length`,
    /// default 256; Istio's provider `maxTagLength` or `defaultConfig.tracing.maxPathTagLength`).
    pub max_path_tag_length: u32,
    /// Where spans go; `Some` exactly when [`enabled`](Self::enabled).
    pub exporter: Option<Exporter>,
    /// Whether a request without trace context starts a trace, as Envoy does. False the
    /// Linkerd way (a workload configured by Linkerd's annotations alone): such a request is
    /// forwarded unmodified and makes no span; only a caller's context is continued, sampled
    /// as the caller decided (mesh-tracing-spec §4.2).
    pub start_traces: bool,
}

impl DirectionSettings {
    /// A direction that does not trace.
    pub(crate) fn off() -> DirectionSettings {
        DirectionSettings {
            enabled: false,
            disable_span_reporting: false,
            sampling: SamplingPercentage::ISTIO_DEFAULT,
            client_sampling: SamplingPercentage::HUNDRED,
            overall_sampling: SamplingPercentage::HUNDRED,
            custom_tags: Vec::new(),
            enable_istio_tags: true,
            use_request_id_for_trace_sampling: true,
            disable_context_propagation: false,
            max_path_tag_length: DEFAULT_MAX_PATH_TAG_LENGTH,
            exporter: None,
            start_traces: true,
        }
    }
}

/// Envoy's default `max_path_tag_length`.
pub const DEFAULT_MAX_PATH_TAG_LENGTH: u32 = 256;

/// Where spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub enum Exporter {
    /// OTLP over gRPC or HTTP (Istio `extensionProviders[].opentelemetry`, an Envoy
    /// OpenTelemetry provider, or the built-in default `localhost:4317`).
    Otlp(OtlpExporter),
    /// Zipkin v2 JSON over HTTP (Istio `extensionProviders[].zipkin`, or the legacy
    /// `defaultConfig.tracing.zipkin.address`).
    Zipkin(ZipkinExporter),
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`TraceService/Export`): Istio's provider without `http`.
    Grpc,
    /// OTLP/HTTP protobuf POST to [`OtlpExporter::path`]: Istio's provider with `http`.
    Http,
}

/// An OTLP exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpExporter {
    /// gRPC or HTTP.
    pub protocol: OtlpProtocol,
    /// Where to connect: the provider's `service:port` resolved through the Sidecar's
    /// `services` table when the table has it, otherwise as written.
    pub endpoint: Endpoint,
    /// The provider's `service:port` as written, a leading `<namespace>/` removed (for
    /// `/config_dump`; requests go to [`endpoint`](Self::endpoint), whose address is also
    /// their `Host`/`:authority`).
    pub authority: String,
    /// HTTP only: the request path (Istio `http.path`, e.g. `/v1/traces`).
    pub path: Option<String>,
    /// Export request timeout; for HTTP Istio's default is 3 s, for gRPC none is set.
    pub timeout: Option<Duration>,
    /// Extra request headers (HTTP) or gRPC metadata.
    pub headers: Vec<ExportHeader>,
    /// Resource detectors to run, in order.
    pub resource_detectors: Vec<ResourceDetector>,
}

/// A Zipkin exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct ZipkinExporter {
    /// Where to connect (resolved like [`OtlpExporter::endpoint`]).
    pub endpoint: Endpoint,
    /// The provider's `service:port` as written (for `/config_dump`; requests go to
    /// [`endpoint`](Self::endpoint)).
    pub authority: String,
    /// The collector path, `/api/v2/spans` unless the provider says otherwise.
    pub path: String,
    /// Send 64-bit trace ids (Istio `enable64bitTraceId`).
    pub trace_id_64bit: bool,
}

/// A header added to export requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHeader {
    /// Header (or gRPC metadata) name.
    pub name: String,
    /// Its value.
    pub value: HeaderValueSource,
}

/// Where an [`ExportHeader`]'s value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValueSource {
    /// Written in the config.
    Literal(String),
    /// Read from this environment variable (Istio `envName`; istiod reads it from its own
    /// environment, the sidecar from its own).
    Environment(String),
}

/// An OpenTelemetry resource detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceDetector {
    /// `OTEL_RESOURCE_ATTRIBUTES` as `k=v,k=v` (Envoy's environment detector).
    Environment,
    /// Dynatrace enrichment files.
    Dynatrace,
}

/// Linkerd's tracing annotations, as the linkerd-jaeger injector reads them (mesh-tracing-spec
/// §4.1). A workload that carries them, and whose file has no Istio or Envoy tracing resource,
/// traces the Linkerd way: it never starts a trace (see
/// [`DirectionSettings::start_traces`]), and exports to the collector over OTLP/gRPC. The spans
/// it makes keep Istio's shape (names, tags, one per direction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkerdTracing {
    /// `config.linkerd.io/trace-collector` as written, e.g. `otel-collector.linkerd-jaeger:4317`.
    pub collector: String,
    /// The collector address resolved through the Sidecar's `services` table.
    pub endpoint: Endpoint,
    /// The collector's service account
    /// (`config.alpha.linkerd.io/trace-collector-service-account`), which Linkerd uses to build
    /// the collector's mesh identity.
    pub service_account: Option<String>,
}
