//! Istio's standard metrics, in Prometheus text, with Istio's names, labels and buckets, so
//! dashboards written for an Istio mesh work unchanged against the sidecar.
//!
//! [`observer()`] returns the [`Observer`] the proxy calls for every exchange and connection,
//! and the [`MeshMetrics`] the admin endpoint serves with [`MeshMetrics::encode`] (as
//! [`CONTENT_TYPE`]). The families (mesh-tracing-spec §3; istio/proxy `istio_stats.cc`):
//!
//! | Family | Type | Recorded |
//! |---|---|---|
//! | `istio_requests_total` | counter | every HTTP/gRPC exchange, at its end |
//! | `istio_request_duration_milliseconds` | histogram | whole milliseconds, head received → end |
//! | `istio_request_bytes`, `istio_response_bytes` | histogram | head and body bytes each way¹ |
//! | `istio_tcp_connections_opened_total`, `…_closed_total` | counter | `CONNECT` tunnels² |
//! | `istio_tcp_sent_bytes_total`, `istio_tcp_received_bytes_total` | counter | every 5 s and at close² |
//!
//! ¹ istio-proxy meters the downstream connection's wire bytes, headers included, though
//! Istio's docs speak of body sizes (mesh-tracing-spec §3). The head is counted as its HTTP/1.1
//! text ([`crate::head_size`]): the request as the caller sent it, the response as it went back
//! (peer metadata included); HTTP/2 heads uncompressed.
//!
//! ² Istio's TCP metrics cover only what its sidecar proxies as plain TCP: its stats filter sits
//! before `tcp_proxy` and in no HTTP filter chain. Here that is a `CONNECT` tunnel (an app's TLS
//! traffic to another host, the traffic Istio passes through as TCP), labelled as an HTTP
//! exchange to the same target is (a services-table service, else `PassthroughCluster`). Its
//! bytes are added every 5 s while it is open and at its close, as Istio reports them
//! (`tcp_reporting_duration`). HTTP connections, and upgrades on them, are HTTP traffic, as
//! in Istio.
//!
//! All three histograms use Envoy's default buckets, which Istio keeps unless a pod sets
//! `sidecar.istio.io/statsHistogramBuckets` (`0.5, 1, 5, …, 3600000`; [`BUCKETS`]). (Mixer-era
//! Istio used exponential size buckets; telemetry v2 does not.)
//!
//! The text is OpenMetrics: counters are declared without `_total` (`# TYPE istio_requests
//! counter`) and sampled with it, bucket bounds read `le="1.0"` (Prometheus 3 normalizes them
//! to `le="1"` on ingestion), and the text ends with `# EOF`. Label order is Istio's. Families
//! appear once they have a series.
//!
//! Reading order: `labels.rs` (the 25 labels and how each is filled), `service.rs` (which
//! service an exchange was for), `peer_metadata.rs` (the `x-envoy-peer-metadata` exchange that
//! names the peer workload, with `base64.rs`), `observer.rs` (the observer and its label
//! caches). Tests are in `tests/`.

mod base64;
mod labels;
mod observer;
pub(crate) mod peer_metadata;
mod service;
#[cfg(test)]
mod tests;

use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use self::labels::{HttpSeries, TcpSeries};
use self::observer::MeshObserver;
use crate::config::SidecarConfig;
use crate::environment::Environment;
use crate::observe::Observer;
use crate::request_map::RequestMap;

/// The `Content-Type` of [`MeshMetrics::encode`]'s text: OpenMetrics 1.0, which Prometheus
/// scrapes natively. The text also parses as Prometheus' classic text format (its `# EOF`
/// line is a comment there).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Envoy's default histogram buckets (`source/common/stats/histogram_impl.cc`), used by Istio
/// for request duration (ms) and request and response sizes (bytes) alike.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Builds the metrics for the workload `config` describes, and the observer that records
/// them. Hand the observer to the proxy and the metrics to the admin endpoint. The cluster id
/// may come from the process environment (`ISTIO_META_CLUSTER_ID`).
pub fn observer(config: &SidecarConfig) -> (Arc<dyn Observer>, Arc<MeshMetrics>) {
    observer_with(config, &Environment::Process)
}

/// [`observer`], reading `env` instead of the process environment.
pub fn observer_with(
    config: &SidecarConfig,
    env: &Environment,
) -> (Arc<dyn Observer>, Arc<MeshMetrics>) {
    let metrics = Arc::new(MeshMetrics::new());
    let observer = MeshObserver::new(config, env, metrics.clone());
    (Arc::new(observer), metrics)
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Istio's standard metric families, in one Prometheus registry.
#[derive(Debug)]
pub struct MeshMetrics {
    registry: Registry,
    requests: Family<HttpSeries, Counter>,
    request_duration: HistogramFamily<HttpSeries>,
    request_bytes: HistogramFamily<HttpSeries>,
    response_bytes: HistogramFamily<HttpSeries>,
    tcp_connections_opened: Family<TcpSeries, Counter>,
    tcp_connections_closed: Family<TcpSeries, Counter>,
    tcp_sent_bytes: Family<TcpSeries, Counter>,
    tcp_received_bytes: Family<TcpSeries, Counter>,
    /// The four metrics of each HTTP series seen, found with one lookup instead of four: each
    /// family lookup hashes and compares the whole label set. The handles share their values
    /// with the families' (prometheus-client metrics are `Arc`s inside).
    http_series: RwLock<RequestMap<HttpSeries, HttpMetrics>>,
}

/// One HTTP series' metrics.
#[derive(Debug, Clone)]
struct HttpMetrics {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl MeshMetrics {
    fn new() -> MeshMetrics {
        let histogram: fn() -> Histogram = || Histogram::new(BUCKETS);
        let requests = Family::<HttpSeries, Counter>::default();
        let request_duration = HistogramFamily::new_with_constructor(histogram);
        let request_bytes = HistogramFamily::new_with_constructor(histogram);
        let response_bytes = HistogramFamily::new_with_constructor(histogram);
        let tcp_sent_bytes = Family::<TcpSeries, Counter>::default();
        let tcp_received_bytes = Family::<TcpSeries, Counter>::default();
        let tcp_connections_opened = Family::<TcpSeries, Counter>::default();
        let tcp_connections_closed = Family::<TcpSeries, Counter>::default();

        // Counters are registered without `_total`: the encoder appends it to their samples.
        let mut registry = Registry::default();
        registry.register("istio_requests", "Requests handled by the sidecar", requests.clone());
        let histograms = [
            (
                "istio_request_duration_milliseconds",
                "Request duration in milliseconds",
                &request_duration,
            ),
            ("istio_request_bytes", "Request size in bytes, head and body", &request_bytes),
            ("istio_response_bytes", "Response size in bytes, head and body", &response_bytes),
        ];
        for (name, help, family) in histograms {
            registry.register(name, help, family.clone());
        }
        let tcp = [
            (
                "istio_tcp_sent_bytes",
                "Bytes sent to the downstream peer on TCP connections",
                &tcp_sent_bytes,
            ),
            (
                "istio_tcp_received_bytes",
                "Bytes received from the downstream peer on TCP connections",
                &tcp_received_bytes,
            ),
            ("istio_tcp_connections_opened", "TCP connections opened", &tcp_connections_opened),
            ("istio_tcp_connections_closed", "TCP connections closed", &tcp_connections_closed),
        ];
        for (name, help, family) in tcp {
            registry.register(name, help, family.clone());
        }
        MeshMetrics {
            registry,
            requests,
            request_duration,
            request_bytes,
            response_bytes,
            tcp_connections_opened,
            tcp_connections_closed,
            tcp_sent_bytes,
            tcp_received_bytes,
            http_series: RwLock::new(RequestMap::default()),
        }
    }

    /// Every family in OpenMetrics text ([`CONTENT_TYPE`]), ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, and the registry's metrics never fail to encode.
        let _ = text::encode(&mut text, &self.registry);
        text
    }

    /// Records one finished HTTP/gRPC exchange.
    fn record_request(
        &self,
        series: &HttpSeries,
        duration_ms: f64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let record = |metrics: &HttpMetrics| {
            metrics.requests.inc();
            metrics.duration.observe(duration_ms);
            metrics.request_bytes.observe(request_bytes as f64);
            metrics.response_bytes.observe(response_bytes as f64);
        };
        let known = self.http_series.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(metrics) = known.get(series) {
            record(metrics);
            return;
        }
        drop(known);
        let metrics = HttpMetrics {
            requests: self.requests.get_or_create(series).clone(),
            duration: self.request_duration.get_or_create(series).clone(),
            request_bytes: self.request_bytes.get_or_create(series).clone(),
            response_bytes: self.response_bytes.get_or_create(series).clone(),
        };
        record(&metrics);
        let mut known = self.http_series.write().unwrap_or_else(PoisonError::into_inner);
        known.insert(series.clone(), metrics);
    }
}
