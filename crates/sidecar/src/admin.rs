//! The admin endpoint (`127.0.0.1:15000` by default, Envoy's admin port in Istio):
//!
//! - `GET /ready`: `200 LIVE` once every listener is up, `503 PRE_INITIALIZING` before and
//!   `503 DRAINING` during shutdown (Envoy's `/ready` answers);
//! - `GET /stats/prometheus`: the Prometheus/OpenMetrics text of the [`AdminState`]'s stats
//!   encoder (the metrics module registers into a `prometheus_client` registry and passes it
//!   with [`AdminState::with_registry`]);
//! - `GET /config_dump`: the effective settings as JSON, exporter header values redacted;
//! - anything else: `404`.
//!
//! The HTTP serving is the proxy's listener machinery (`proxy/mod.rs`); this module only
//! decides the answers.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, StatusCode};
use prometheus_client::registry::Registry;
use propagation::Propagator;
use serde_json::{Value, json};

use crate::config::{
    CustomTag, DirectionSettings, Exporter, HeaderValueSource, OtlpProtocol, PathMatch,
    SidecarConfig, TagValue,
};
use crate::metrics;

/// Produces the `/stats/prometheus` text.
pub type StatsEncoder = Arc<dyn Fn() -> String + Send + Sync>;

/// What the admin endpoint serves; cheap to clone, shared with the running sidecar.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    stats: Option<StatsEncoder>,
    phase: AtomicU8,
    config_dump: Mutex<Bytes>,
}

const PRE_INITIALIZING: u8 = 0;
const LIVE: u8 = 1;
const DRAINING: u8 = 2;

/// One admin answer.
pub(crate) struct AdminReply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
}

impl AdminState {
    /// No stats: `/stats/prometheus` serves an empty page.
    pub fn new() -> AdminState {
        AdminState::build(None)
    }

    /// Stats from `encode`, called on each scrape (keep it quick: it runs on the runtime).
    pub fn with_stats(encode: impl Fn() -> String + Send + Sync + 'static) -> AdminState {
        AdminState::build(Some(Arc::new(encode)))
    }

    /// Stats from a `prometheus_client` registry, encoded as OpenMetrics text on each scrape;
    /// the lock is held only while encoding.
    pub fn with_registry(registry: Arc<Mutex<Registry>>) -> AdminState {
        AdminState::with_stats(move || {
            let mut text = String::new();
            let registry = registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
                tracing::warn!(%error, "cannot encode metrics");
            }
            text
        })
    }

    fn build(stats: Option<StatsEncoder>) -> AdminState {
        let inner = Inner {
            stats,
            phase: AtomicU8::new(PRE_INITIALIZING),
            config_dump: Mutex::new(Bytes::from_static(b"{}")),
        };
        AdminState { inner: Arc::new(inner) }
    }

    /// Whether every listener is up and the sidecar is not draining.
    pub fn is_ready(&self) -> bool {
        self.inner.phase.load(Ordering::Relaxed) == LIVE
    }

    pub(crate) fn set_live(&self) {
        self.inner.phase.store(LIVE, Ordering::Relaxed);
    }

    pub(crate) fn set_draining(&self) {
        self.inner.phase.store(DRAINING, Ordering::Relaxed);
    }

    pub(crate) fn set_config_dump(&self, dump: &Value) {
        let text = serde_json::to_string_pretty(dump).unwrap_or_else(|_| "{}".to_owned());
        let mut slot = self.inner.config_dump.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Bytes::from(text);
    }

    /// The answer to `method path`.
    pub(crate) fn answer(&self, method: &Method, path: &str) -> AdminReply {
        let known = matches!(path, "/ready" | "/stats/prometheus" | "/config_dump");
        if !known {
            return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n");
        }
        if method != Method::GET && method != Method::HEAD {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n");
        }
        match path {
            "/ready" => match self.inner.phase.load(Ordering::Relaxed) {
                LIVE => reply(StatusCode::OK, "text/plain", "LIVE\n"),
                DRAINING => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "DRAINING\n"),
                _ => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "PRE_INITIALIZING\n"),
            },
            "/stats/prometheus" => {
                let text = self.inner.stats.as_ref().map(|encode| encode()).unwrap_or_default();
                AdminReply {
                    status: StatusCode::OK,
                    content_type: metrics::CONTENT_TYPE,
                    body: Bytes::from(text),
                }
            }
            _ => {
                let body = self.inner.config_dump.lock().unwrap_or_else(|p| p.into_inner()).clone();
                AdminReply { status: StatusCode::OK, content_type: "application/json", body }
            }
        }
    }
}

impl Default for AdminState {
    fn default() -> AdminState {
        AdminState::new()
    }
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("ready", &self.is_ready())
            .field("stats", &self.inner.stats.is_some())
            .finish()
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: &'static str) -> AdminReply {
    AdminReply { status, content_type, body: Bytes::from_static(body.as_bytes()) }
}

/// What a value hidden from `/config_dump` reads.
const REDACTED: &str = "[redacted]";

/// The effective settings as `/config_dump` shows them; `listeners` and `proxy` describe what
/// the running proxy bound and uses.
pub(crate) fn config_dump(config: &SidecarConfig, listeners: Value, proxy: Value) -> Value {
    let workload = &config.workload;
    let services: Vec<Value> = config
        .services
        .iter()
        .map(|route| {
            json!({
                "host": route.host,
                "port": route.port,
                "target": route.target.to_string(),
                "cluster": format!("outbound|{}||{}", route.port, route.host),
            })
        })
        .collect();
    let tracing = &config.tracing;
    let header_matches: Vec<Value> = tracing
        .force_trace_headers
        .iter()
        .map(
            |header| json!({"name": header.name, "value": header.value.as_ref().map(|_| REDACTED)}),
        )
        .collect();
    json!({
        "workload": {
            "name": workload.name,
            "namespace": workload.namespace,
            "labels": workload.labels,
            "annotations": workload.annotations,
        },
        "listeners": listeners,
        "proxy": proxy,
        "services": services,
        "tracing": {
            "service_name": tracing.service_name,
            "inbound": direction(&tracing.inbound),
            "outbound": direction(&tracing.outbound),
            "force_trace_headers": header_matches,
            "never_trace_paths": paths(&tracing.never_trace_paths),
            "always_trace_paths": paths(&tracing.always_trace_paths),
            "linkerd": tracing.linkerd.as_ref().map(|linkerd| json!({
                "collector": linkerd.collector,
                "endpoint": linkerd.endpoint.to_string(),
                "service_account": linkerd.service_account,
            })),
            "stitching": tracing.stitching,
            "propagators": tracing.propagators.iter().map(Propagator::name).collect::<Vec<_>>(),
        },
        "warnings": config.warnings,
    })
}

fn direction(settings: &DirectionSettings) -> Value {
    json!({
        "enabled": settings.enabled,
        "disable_span_reporting": settings.disable_span_reporting,
        "sampling_percent": settings.sampling.percent(),
        "client_sampling_percent": settings.client_sampling.percent(),
        "overall_sampling_percent": settings.overall_sampling.percent(),
        "custom_tags": settings.custom_tags.iter().map(custom_tag).collect::<Vec<_>>(),
        "enable_istio_tags": settings.enable_istio_tags,
        "use_request_id_for_trace_sampling": settings.use_request_id_for_trace_sampling,
        "disable_context_propagation": settings.disable_context_propagation,
        "max_path_tag_length": settings.max_path_tag_length,
        "start_traces": settings.start_traces,
        "exporter": settings.exporter.as_ref().map(exporter),
    })
}

fn custom_tag(tag: &CustomTag) -> Value {
    let value = match &tag.value {
        TagValue::Literal(value) => json!({"literal": value}),
        TagValue::RequestHeader { name, default_value } => {
            json!({"request_header": {"name": name, "default_value": default_value}})
        }
        TagValue::Environment { name, default_value } => {
            json!({"environment": {"name": name, "default_value": default_value}})
        }
    };
    json!({"name": tag.name, "value": value})
}

fn exporter(exporter: &Exporter) -> Value {
    match exporter {
        Exporter::Otlp(otlp) => {
            let headers: Vec<Value> = otlp
                .headers
                .iter()
                .map(|header| match &header.value {
                    HeaderValueSource::Literal(_) => {
                        json!({"name": header.name, "value": REDACTED})
                    }
                    HeaderValueSource::Environment(variable) => {
                        json!({"name": header.name, "env": variable})
                    }
                })
                .collect();
            json!({"otlp": {
                "protocol": match otlp.protocol { OtlpProtocol::Grpc => "grpc", OtlpProtocol::Http => "http" },
                "endpoint": otlp.endpoint.to_string(),
                "authority": otlp.authority,
                "path": otlp.path,
                "timeout_ms": otlp.timeout.map(|timeout| timeout.as_millis() as u64),
                "headers": headers,
                "resource_detectors": otlp.resource_detectors.iter().map(|d| format!("{d:?}").to_lowercase()).collect::<Vec<_>>(),
            }})
        }
        Exporter::Zipkin(zipkin) => json!({"zipkin": {
            "endpoint": zipkin.endpoint.to_string(),
            "authority": zipkin.authority,
            "path": zipkin.path,
            "trace_id_64bit": zipkin.trace_id_64bit,
        }}),
    }
}

fn paths(rules: &[PathMatch]) -> Vec<Value> {
    rules
        .iter()
        .map(|rule| match rule {
            PathMatch::Exact(path) => json!({"exact": path}),
            PathMatch::Prefix(path) => json!({"prefix": path}),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_follows_the_phase() {
        let state = AdminState::new();
        assert_eq!(state.answer(&Method::GET, "/ready").status, StatusCode::SERVICE_UNAVAILABLE);
        state.set_live();
        let reply = state.answer(&Method::GET, "/ready");
        assert_eq!((reply.status, &reply.body[..]), (StatusCode::OK, &b"LIVE\n"[..]));
        state.set_draining();
        assert_eq!(&state.answer(&Method::GET, "/ready").body[..], b"DRAINING\n");
        assert_eq!(state.answer(&Method::GET, "/nope").status, StatusCode::NOT_FOUND);
        assert_eq!(state.answer(&Method::POST, "/ready").status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn stats_come_from_the_encoder() {
        let state = AdminState::with_stats(|| "# EOF\n".to_owned());
        assert_eq!(&state.answer(&Method::GET, "/stats/prometheus").body[..], b"# EOF\n");
    }
}
