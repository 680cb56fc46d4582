//! Realistic, deterministic telemetry for tests, benchmarks and the load generator.
//!
//! A benchmark measures what it is fed: tiny synthetic spans make every codec look fast and every
//! per-request cost look large. These fixtures imitate what an Istio mesh running the Bookinfo
//! demo sends through a collector: Envoy sidecar spans carrying Envoy's twenty string tags (about
//! 700 bytes a span once encoded), Envoy access-log records, and the standard Istio metrics. Every
//! id, time and value is derived from an index and a seed rather than drawn from a random
//! generator, so a test sees the same bytes on every run and the load generator can still make
//! ids unique per request by changing the seed.

use crate::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use crate::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use crate::proto::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use crate::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest};

/// 2023-11-14T22:13:20Z: a fixed, plausible epoch so timestamps encode to realistic widths.
const EPOCH_NANOS: u64 = 1_700_000_000_000_000_000;

/// Spans per trace: ingress → productpage → reviews → ratings is four hops in Bookinfo.
const TRACE_LEN: u64 = 4;

const NAMESPACE: &str = "default";
const MESH_ID: &str = "mesh1";
const CLUSTER_DOMAIN: &str = "cluster.local";
const ZONE: &str = "us-east1-b";
const SCOPE_NAME: &str = "envoy";
const SCOPE_VERSION: &str = "1.27.2";

/// A Bookinfo workload; a resource in the fixtures is one of its pods.
struct Service {
    name: &'static str,
    version: &'static str,
    path: &'static str,
    pod: &'static str,
}

const SERVICES: [Service; 4] = [
    Service {
        name: "productpage",
        version: "v1",
        path: "/productpage",
        pod: "productpage-v1-6b746f-4x8jq",
    },
    Service { name: "reviews", version: "v2", path: "/reviews/0", pod: "reviews-v2-7d79d5-9zl2k" },
    Service { name: "ratings", version: "v1", path: "/ratings/0", pod: "ratings-v1-b6994b-q7d4s" },
    Service { name: "details", version: "v1", path: "/details/0", pod: "details-v1-5f4d58-hx9n2" },
];

const USER_AGENTS: [&str; 3] = ["python-requests/2.31", "curl/8.4.0", "Java/17.0.9"];

// === traces ===

/// A trace request of `spans` Envoy sidecar spans spread over `resources` pods, with seed 0.
///
/// See [`sidecar_traces_seeded`].
pub fn sidecar_traces(spans: usize, resources: usize) -> ExportTraceServiceRequest {
    sidecar_traces_seeded(spans, resources, 0)
}

/// A trace request of `spans` Envoy sidecar spans spread as evenly as possible over `resources`
/// pods (clamped to `1..=spans`), each pod with one `envoy` scope. Spans come in traces of four,
/// each child pointing at the span before it; ids are derived from `seed`, so distinct seeds give
/// distinct ids. Zero spans give an empty request.
pub fn sidecar_traces_seeded(
    spans: usize,
    resources: usize,
    seed: u64,
) -> ExportTraceServiceRequest {
    let mut request = ExportTraceServiceRequest::default();
    let mut next = 0u64;
    for (r, count) in spread(spans, resources).enumerate() {
        let service = service(r);
        let mut scope = ScopeSpans { scope: Some(envoy_scope()), ..Default::default() };
        for _ in 0..count {
            scope.spans.push(sidecar_span(service, r, next, seed));
            next += 1;
        }
        request.resource_spans.push(ResourceSpans {
            resource: Some(pod_resource(service, r)),
            scope_spans: vec![scope],
            schema_url: String::new(),
        });
    }
    request
}

/// Span number `index` of the request: trace `index / 4`, hop `index % 4`.
fn sidecar_span(service: &Service, resource: usize, index: u64, seed: u64) -> Span {
    let trace = index / TRACE_LEN;
    let hop = index % TRACE_LEN;
    let server = hop.is_multiple_of(2);
    let target = if server { service } else { self::service(resource + 1) };
    let host = format!("{}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}", target.name);
    let failed = fails(seed, index);
    let start = EPOCH_NANOS + trace * 50_000_000 + hop * 1_500_000;
    let duration = 1_000_000 + mix(seed, index, 8) % 40_000_000;
    let parent = if hop == 0 { Vec::new() } else { span_id(seed, index - 1) };
    // Istio names every inbound cluster of a port alike; outbound ones name the destination.
    let upstream =
        if server { "inbound|9080||".to_owned() } else { format!("outbound|9080||{host}") };
    let attributes = vec![
        string(
            "node_id",
            format!(
                "sidecar~{}~{}.{NAMESPACE}~{NAMESPACE}.svc.{CLUSTER_DOMAIN}",
                pod_ip(resource),
                service.pod
            ),
        ),
        string("zone", ZONE),
        string("guid:x-request-id", request_id(seed, trace)),
        string("http.url", format!("http://{}:9080{}", target.name, target.path)),
        string("http.method", if index % 9 == 8 { "POST" } else { "GET" }),
        string("http.protocol", "HTTP/1.1"),
        string("downstream_cluster", "-"),
        string("user_agent", pick(&USER_AGENTS, mix(seed, trace, 9))),
        string("request_size", "0"),
        string("response_size", (200 + mix(seed, index, 10) % 5000).to_string()),
        string("peer.address", pod_ip(resource + usize::from(!server))),
        string("upstream_cluster", upstream.clone()),
        string("upstream_cluster.name", upstream),
        string("http.status_code", if failed { "503" } else { "200" }),
        string("response_flags", if failed { "UF" } else { "-" }),
        string("component", "proxy"),
        string("istio.canonical_service", service.name),
        string("istio.canonical_revision", service.version),
        string("istio.mesh_id", MESH_ID),
        string("istio.namespace", NAMESPACE),
    ];
    // Envoy only sets a status on failure.
    let status =
        failed.then(|| Status { message: String::new(), code: status::StatusCode::Error as i32 });
    let kind = if server { span::SpanKind::Server } else { span::SpanKind::Client };
    Span {
        trace_id: trace_id(seed, trace),
        span_id: span_id(seed, index),
        parent_span_id: parent,
        name: format!("{host}:9080/*"),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes,
        status,
        ..Default::default()
    }
}

// === logs ===

/// A logs request of `records` Envoy access-log records over `resources` pods, with seed 0.
pub fn sidecar_logs(records: usize, resources: usize) -> ExportLogsServiceRequest {
    sidecar_logs_seeded(records, resources, 0)
}

/// A logs request of `records` Envoy access-log records spread over `resources` pods (clamped to
/// `1..=records`), each correlated with a span of [`sidecar_traces_seeded`] for the same seed.
pub fn sidecar_logs_seeded(
    records: usize,
    resources: usize,
    seed: u64,
) -> ExportLogsServiceRequest {
    let mut request = ExportLogsServiceRequest::default();
    let mut next = 0u64;
    for (r, count) in spread(records, resources).enumerate() {
        let service = service(r);
        let mut scope = ScopeLogs { scope: Some(envoy_scope()), ..Default::default() };
        for _ in 0..count {
            scope.log_records.push(access_log(service, r, next, seed));
            next += 1;
        }
        request.resource_logs.push(ResourceLogs {
            resource: Some(pod_resource(service, r)),
            scope_logs: vec![scope],
            schema_url: String::new(),
        });
    }
    request
}

fn access_log(service: &Service, resource: usize, index: u64, seed: u64) -> LogRecord {
    let trace = index / TRACE_LEN;
    let failed = fails(seed, index);
    let code = if failed { 503 } else { 200 };
    let flags = if failed { "UF" } else { "-" };
    let time = EPOCH_NANOS + trace * 50_000_000 + (index % TRACE_LEN) * 1_500_000;
    let duration_ms = 1 + mix(seed, index, 8) % 40;
    let bytes = 200 + mix(seed, index, 10) % 5000;
    let body = format!(
        "[2023-11-14T22:13:20.000Z] \"GET {path} HTTP/1.1\" {code} {flags} via_upstream - \"-\" 0 \
         {bytes} {duration_ms} {duration_ms} \"-\" \"{agent}\" \"{id}\" \"{name}:9080\" \"{ip}:9080\"",
        path = service.path,
        agent = pick(&USER_AGENTS, mix(seed, trace, 9)),
        id = request_id(seed, trace),
        name = service.name,
        ip = pod_ip(resource),
    );
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time + 2_000_000,
        severity_number: SeverityNumber::Info as i32,
        severity_text: "INFO".to_owned(),
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(body)) }),
        attributes: vec![
            string("http.method", "GET"),
            string("http.url", service.path),
            int("http.status_code", code),
            string("response_flags", flags),
            string("upstream_cluster", format!("inbound|9080||{}", service.name)),
            int("duration_ms", duration_ms as i64),
        ],
        flags: 1,
        trace_id: trace_id(seed, trace),
        span_id: span_id(seed, index),
        ..Default::default()
    }
}

// === metrics ===

/// Upper bounds of Istio's default request duration buckets, in milliseconds.
const DURATION_BOUNDS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// A metrics request of `points` data points of the standard Istio metrics over `resources`
/// pods (clamped to `1..=points`): a request counter (sum), a request duration histogram and an
/// active-connections gauge, with the pod's points dealt among them in turn.
pub fn sidecar_metrics(points: usize, resources: usize) -> ExportMetricsServiceRequest {
    let mut request = ExportMetricsServiceRequest::default();
    let mut next = 0u64;
    for (r, count) in spread(points, resources).enumerate() {
        let service = service(r);
        let mut requests = Vec::new();
        let mut durations = Vec::new();
        let mut connections = Vec::new();
        for k in 0..count {
            let labels = metric_labels(service, r, next);
            match k % 3 {
                0 => requests.push(counter_point(labels, next)),
                1 => durations.push(histogram_point(labels, next)),
                _ => connections.push(gauge_point(labels, next)),
            }
            next += 1;
        }
        let scope = ScopeMetrics {
            scope: Some(envoy_scope()),
            metrics: istio_metrics(requests, durations, connections),
            schema_url: String::new(),
        };
        request.resource_metrics.push(ResourceMetrics {
            resource: Some(pod_resource(service, r)),
            scope_metrics: vec![scope],
            schema_url: String::new(),
        });
    }
    request
}

/// The three metrics holding the given points; a metric without points is left out.
fn istio_metrics(
    requests: Vec<NumberDataPoint>,
    durations: Vec<HistogramDataPoint>,
    connections: Vec<NumberDataPoint>,
) -> Vec<Metric> {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut metrics = Vec::new();
    if !requests.is_empty() {
        let data =
            Sum { data_points: requests, aggregation_temporality: cumulative, is_monotonic: true };
        metrics.push(istio_metric("istio_requests_total", "1", metric::Data::Sum(data)));
    }
    if !durations.is_empty() {
        let data = Histogram { data_points: durations, aggregation_temporality: cumulative };
        metrics.push(istio_metric(
            "istio_request_duration_milliseconds",
            "ms",
            metric::Data::Histogram(data),
        ));
    }
    if !connections.is_empty() {
        let data = Gauge { data_points: connections };
        metrics.push(istio_metric(
            "envoy_cluster_upstream_cx_active",
            "1",
            metric::Data::Gauge(data),
        ));
    }
    metrics
}

fn istio_metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric { name: name.to_owned(), unit: unit.to_owned(), data: Some(data), ..Default::default() }
}

fn metric_labels(service: &Service, resource: usize, index: u64) -> Vec<KeyValue> {
    let destination = self::service(resource + 1);
    let code = if index % 23 == 22 { "503" } else { "200" };
    vec![
        string("reporter", "source"),
        string("source_workload", format!("{}-{}", service.name, service.version)),
        string("source_workload_namespace", NAMESPACE),
        string("destination_workload", format!("{}-{}", destination.name, destination.version)),
        string(
            "destination_service",
            format!("{}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}", destination.name),
        ),
        string("request_protocol", "http"),
        string("response_code", code),
        string("connection_security_policy", "mutual_tls"),
    ]
}

fn counter_point(attributes: Vec<KeyValue>, index: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: EPOCH_NANOS,
        time_unix_nano: EPOCH_NANOS + 60_000_000_000,
        value: Some(number_data_point::Value::AsInt(1 + (mix(0, index, 11) % 10_000) as i64)),
        ..Default::default()
    }
}

fn gauge_point(attributes: Vec<KeyValue>, index: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: EPOCH_NANOS + 60_000_000_000,
        value: Some(number_data_point::Value::AsDouble((mix(0, index, 12) % 64) as f64)),
        ..Default::default()
    }
}

fn histogram_point(attributes: Vec<KeyValue>, index: u64) -> HistogramDataPoint {
    let mut bucket_counts = vec![0u64; DURATION_BOUNDS_MS.len() + 1];
    let mut count = 0;
    for (b, bucket) in bucket_counts.iter_mut().enumerate().take(10) {
        *bucket = mix(index, b as u64, 13) % 50;
        count += *bucket;
    }
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: EPOCH_NANOS,
        time_unix_nano: EPOCH_NANOS + 60_000_000_000,
        count,
        sum: Some(count as f64 * 12.5),
        bucket_counts,
        explicit_bounds: DURATION_BOUNDS_MS.to_vec(),
        min: Some(0.4),
        max: Some(980.0),
        ..Default::default()
    }
}

// === shared pieces ===

/// How many items each of `resources` resources gets when `items` are dealt out evenly; the
/// resource count is clamped so that every resource gets at least one.
fn spread(items: usize, resources: usize) -> impl Iterator<Item = usize> {
    let resources = resources.clamp(1, items.max(1));
    let (each, extra) = if items == 0 { (0, 0) } else { (items / resources, items % resources) };
    let used = if items == 0 { 0 } else { resources };
    (0..used).map(move |r| each + usize::from(r < extra))
}

fn service(resource: usize) -> &'static Service {
    let [first, ..] = &SERVICES;
    SERVICES.get(resource % SERVICES.len()).unwrap_or(first)
}

fn pick(choices: &[&'static str], hash: u64) -> &'static str {
    let index = (hash % choices.len().max(1) as u64) as usize;
    choices.get(index).copied().unwrap_or_default()
}

fn pod_resource(service: &Service, resource: usize) -> Resource {
    Resource {
        attributes: vec![
            string("service.name", format!("{}.{NAMESPACE}", service.name)),
            string("service.version", service.version),
            string("k8s.namespace.name", NAMESPACE),
            string("k8s.pod.name", service.pod),
            string("k8s.pod.ip", pod_ip(resource)),
        ],
        ..Default::default()
    }
}

fn envoy_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: SCOPE_VERSION.to_owned(),
        ..Default::default()
    }
}

fn pod_ip(resource: usize) -> String {
    format!("10.4.{}.{}", resource / 250 % 250, 2 + resource % 250)
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    let value = any_value::Value::StringValue(value.into());
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

fn int(key: &str, value: i64) -> KeyValue {
    let value = any_value::Value::IntValue(value);
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

fn trace_id(seed: u64, trace: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(16);
    id.extend_from_slice(&mix(seed, trace, 1).to_be_bytes());
    id.extend_from_slice(&mix(seed, trace, 2).to_be_bytes());
    id
}

fn span_id(seed: u64, index: u64) -> Vec<u8> {
    // An all-zero span id means "no span" in OTLP, so never produce one.
    mix(seed, index, 3).max(1).to_be_bytes().to_vec()
}

/// An `x-request-id` in Envoy's UUID format, shared by the spans of one trace.
fn request_id(seed: u64, trace: u64) -> String {
    let high = mix(seed, trace, 4);
    let low = mix(seed, trace, 5);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        0x8000 | (low >> 48 & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}

/// Whether request `index` fails with a 503: about one in 23, as when an upstream restarts.
fn fails(seed: u64, index: u64) -> bool {
    mix(seed, index, 7).is_multiple_of(23)
}

/// A well-mixed 64-bit value for (`seed`, `index`, `lane`); lanes keep the values drawn for
/// different purposes independent.
fn mix(seed: u64, index: u64, lane: u64) -> u64 {
    splitmix64(splitmix64(seed ^ lane.wrapping_mul(0xa076_1d64_78bd_642f)) ^ index)
}

/// The SplitMix64 finaliser: cheap, and good enough to make ids look random.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{count_log_records, count_metric_points, count_spans};
    use prost::Message;
    use std::collections::HashSet;

    #[test]
    fn spans_encode_to_realistic_sizes() {
        // Envoy's twenty tags with realistic values come to 770..880 bytes a span; server spans
        // are the smaller ones, as their inbound cluster names no destination.
        let request = sidecar_traces(100, 4);
        let per_span = request.encoded_len() / 100;
        assert!((600..=850).contains(&per_span), "{per_span} bytes per span in the request");
        for span in request.resource_spans.iter().flat_map(|r| &r.scope_spans[0].spans) {
            let len = span.encoded_len();
            assert!((600..=900).contains(&len), "span of {len} bytes");
        }
    }

    #[test]
    fn counts_and_resources_are_as_asked() {
        for (items, resources) in [(0, 0), (0, 3), (1, 0), (1, 5), (7, 3), (100, 10), (10, 10)] {
            let traces = sidecar_traces(items, resources);
            let logs = sidecar_logs(items, resources);
            let metrics = sidecar_metrics(items, resources);
            assert_eq!(count_spans(&traces), items as u64);
            assert_eq!(count_log_records(&logs), items as u64);
            assert_eq!(count_metric_points(&metrics), items as u64);
            let expected_resources = if items == 0 { 0 } else { resources.clamp(1, items) };
            assert_eq!(traces.resource_spans.len(), expected_resources);
            assert_eq!(logs.resource_logs.len(), expected_resources);
            assert_eq!(metrics.resource_metrics.len(), expected_resources);
            for resource in &traces.resource_spans {
                assert!(!resource.scope_spans.is_empty());
                assert!(resource.scope_spans.iter().all(|s| !s.spans.is_empty()));
            }
            for resource in &metrics.resource_metrics {
                assert!(resource.scope_metrics.iter().all(|s| !s.metrics.is_empty()));
            }
        }
    }

    #[test]
    fn fixtures_are_deterministic_and_seeds_change_ids() {
        assert_eq!(sidecar_traces(20, 3), sidecar_traces(20, 3));
        assert_eq!(sidecar_logs(20, 3), sidecar_logs(20, 3));
        assert_eq!(sidecar_metrics(20, 3), sidecar_metrics(20, 3));
        let ids = |seed| -> HashSet<Vec<u8>> {
            let request = sidecar_traces_seeded(40, 2, seed);
            request
                .resource_spans
                .iter()
                .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
                .map(|s| s.span_id.clone())
                .collect()
        };
        let (a, b) = (ids(1), ids(2));
        assert_eq!(a.len(), 40, "span ids are unique within a request");
        assert!(a.is_disjoint(&b), "different seeds give different span ids");
    }

    #[test]
    fn spans_form_traces_with_valid_ids() {
        let request = sidecar_traces(12, 2);
        let spans: Vec<_> = request
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
            .collect();
        for (i, span) in spans.iter().enumerate() {
            assert_eq!(span.trace_id.len(), 16);
            assert_eq!(span.span_id.len(), 8);
            assert!(span.end_time_unix_nano > span.start_time_unix_nano);
            assert_eq!(span.attributes.len(), 20);
            if i % 4 == 0 {
                assert!(span.parent_span_id.is_empty());
            } else {
                assert_eq!(span.parent_span_id, spans[i - 1].span_id);
                assert_eq!(span.trace_id, spans[i - 1].trace_id);
            }
        }
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = request_id(3, 9);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
