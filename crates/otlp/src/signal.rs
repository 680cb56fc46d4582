//! The three telemetry signals and the names the collector uses for them.

use std::fmt;

/// A kind of telemetry. Pipelines carry exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    /// Every signal, in the order the collector lists them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The pipeline type as written in `service.pipelines` (`traces`, `logs`, `metrics`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// Parses a pipeline type; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Signal> {
        match name {
            "traces" => Some(Signal::Traces),
            "logs" => Some(Signal::Logs),
            "metrics" => Some(Signal::Metrics),
            _ => None,
        }
    }

    /// The unit the collector's own metrics count for this signal, as in
    /// `otelcol_receiver_accepted_spans` / `_log_records` / `_metric_points`.
    pub fn item_unit(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "log_records",
            Signal::Metrics => "metric_points",
        }
    }

    /// The path of the OTLP/HTTP endpoint for this signal (`/v1/traces`, ...).
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }

    /// The gRPC method path of the OTLP export service for this signal.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
