//! The text the debug exporter prints, laid out as the collector's debug exporter lays it out,
//! so that people reading it (and scripts grepping it) find what they know.
//!
//! - basic: one summary line with counts;
//! - normal: a line per resource and scope, then one line per span, log record or data point;
//! - detailed: everything, field by field.
//!
//! Times print as Go prints them (`2023-11-14 22:13:20.5 +0000 UTC`), values as the collector
//! does (`Str(GET)`, `Int(200)`), ids as lowercase hex.

use std::fmt::Write;

use otlp::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use otlp::proto::logs::v1::{LogRecord, SeverityNumber};
use otlp::proto::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint, metric, number_data_point,
};
use otlp::proto::resource::v1::Resource;
use otlp::proto::trace::v1::{Span, span, status};
use otlp::{
    Batch, DecodeError, ExportLogsServiceRequest, ExportMetricsServiceRequest,
    ExportTraceServiceRequest, Signal,
};

/// How much the debug exporter prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Basic,
    Normal,
    Detailed,
}

impl Verbosity {
    /// Reads a `verbosity` value; the collector compares case-insensitively.
    pub fn parse(text: &str) -> Option<Verbosity> {
        match text.to_ascii_lowercase().as_str() {
            "basic" => Some(Verbosity::Basic),
            "normal" => Some(Verbosity::Normal),
            "detailed" => Some(Verbosity::Detailed),
            _ => None,
        }
    }
}

/// The printout of one batch: the summary line, and at `normal` and `detailed` the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printout {
    pub summary: String,
    pub body: Option<String>,
}

/// Decodes `batch` and formats it at `verbosity`.
pub fn render(batch: Batch, verbosity: Verbosity) -> Result<Printout, DecodeError> {
    Ok(match batch.signal() {
        Signal::Traces => {
            let request = batch.into_traces()?;
            let body = match verbosity {
                Verbosity::Basic => None,
                Verbosity::Normal => Some(traces_normal(&request)),
                Verbosity::Detailed => Some(traces_detailed(&request)),
            };
            Printout { summary: traces_summary(&request), body }
        }
        Signal::Logs => {
            let request = batch.into_logs()?;
            let body = match verbosity {
                Verbosity::Basic => None,
                Verbosity::Normal => Some(logs_normal(&request)),
                Verbosity::Detailed => Some(logs_detailed(&request)),
            };
            Printout { summary: logs_summary(&request), body }
        }
        Signal::Metrics => {
            let request = batch.into_metrics()?;
            let body = match verbosity {
                Verbosity::Basic => None,
                Verbosity::Normal => Some(metrics_normal(&request)),
                Verbosity::Detailed => Some(metrics_detailed(&request)),
            };
            Printout { summary: metrics_summary(&request), body }
        }
    })
}

// === basic ===

/// `TracesExporter {"resource spans": 1, "spans": 4}`.
pub fn traces_summary(request: &ExportTraceServiceRequest) -> String {
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum();
    format!(
        "TracesExporter {{\"resource spans\": {}, \"spans\": {spans}}}",
        request.resource_spans.len()
    )
}

/// `LogsExporter {"resource logs": 1, "log records": 4}`.
pub fn logs_summary(request: &ExportLogsServiceRequest) -> String {
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|resource| &resource.scope_logs)
        .map(|scope| scope.log_records.len())
        .sum();
    format!(
        "LogsExporter {{\"resource logs\": {}, \"log records\": {records}}}",
        request.resource_logs.len()
    )
}

/// `MetricsExporter {"resource metrics": 1, "metrics": 2, "data points": 6}`.
pub fn metrics_summary(request: &ExportMetricsServiceRequest) -> String {
    let metrics: Vec<&Metric> = request
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .collect();
    let points: usize = metrics.iter().map(|metric| data_points(metric)).sum();
    format!(
        "MetricsExporter {{\"resource metrics\": {}, \"metrics\": {}, \"data points\": {points}}}",
        request.resource_metrics.len(),
        metrics.len()
    )
}

fn data_points(metric: &Metric) -> usize {
    match &metric.data {
        Some(metric::Data::Gauge(data)) => data.data_points.len(),
        Some(metric::Data::Sum(data)) => data.data_points.len(),
        Some(metric::Data::Histogram(data)) => data.data_points.len(),
        Some(metric::Data::ExponentialHistogram(data)) => data.data_points.len(),
        Some(metric::Data::Summary(data)) => data.data_points.len(),
        None => 0,
    }
}

// === normal ===

/// One line per span: `name trace_id span_id key=value ...`, under a line per resource and
/// scope.
pub fn traces_normal(request: &ExportTraceServiceRequest) -> String {
    let mut out = String::new();
    for (i, resource) in request.resource_spans.iter().enumerate() {
        resource_line(
            &mut out,
            "ResourceTraces",
            i,
            resource.resource.as_ref(),
            &resource.schema_url,
        );
        for (j, scope) in resource.scope_spans.iter().enumerate() {
            scope_line(&mut out, "ScopeTraces", j, scope.scope.as_ref(), &scope.schema_url);
            for span in &scope.spans {
                let _ = write!(out, "{} {} {}", span.name, hex(&span.trace_id), hex(&span.span_id));
                attributes_inline(&mut out, &span.attributes, " ");
                out.push('\n');
            }
        }
    }
    out
}

/// One line per log record: `body key=value ...`.
pub fn logs_normal(request: &ExportLogsServiceRequest) -> String {
    let mut out = String::new();
    for (i, resource) in request.resource_logs.iter().enumerate() {
        resource_line(&mut out, "ResourceLog", i, resource.resource.as_ref(), &resource.schema_url);
        for (j, scope) in resource.scope_logs.iter().enumerate() {
            scope_line(&mut out, "ScopeLog", j, scope.scope.as_ref(), &scope.schema_url);
            for record in &scope.log_records {
                out.push_str(&record.body.as_ref().map(as_string).unwrap_or_default());
                attributes_inline(&mut out, &record.attributes, " ");
                out.push('\n');
            }
        }
    }
    out
}

/// One line per data point: `name{key=value,...} value`.
pub fn metrics_normal(request: &ExportMetricsServiceRequest) -> String {
    let mut out = String::new();
    for (i, resource) in request.resource_metrics.iter().enumerate() {
        resource_line(
            &mut out,
            "ResourceMetrics",
            i,
            resource.resource.as_ref(),
            &resource.schema_url,
        );
        for (j, scope) in resource.scope_metrics.iter().enumerate() {
            scope_line(&mut out, "ScopeMetrics", j, scope.scope.as_ref(), &scope.schema_url);
            for metric in &scope.metrics {
                metric_normal(&mut out, metric);
            }
        }
    }
    out
}

fn metric_normal(out: &mut String, metric: &Metric) {
    let mut line = |attributes: &[KeyValue], value: String| {
        let labels: Vec<String> = attributes.iter().map(key_equals_value).collect();
        let _ = writeln!(out, "{}{{{}}} {value}", metric.name, labels.join(","));
    };
    match &metric.data {
        Some(metric::Data::Gauge(data)) => {
            for point in &data.data_points {
                line(&point.attributes, number(point));
            }
        }
        Some(metric::Data::Sum(data)) => {
            for point in &data.data_points {
                line(&point.attributes, number(point));
            }
        }
        Some(metric::Data::Histogram(data)) => {
            for point in &data.data_points {
                let mut value = format!("count={}", point.count);
                if let Some(sum) = point.sum {
                    let _ = write!(value, " sum={sum}");
                }
                if let Some(min) = point.min {
                    let _ = write!(value, " min={min}");
                }
                if let Some(max) = point.max {
                    let _ = write!(value, " max={max}");
                }
                for (bound, count) in point.explicit_bounds.iter().zip(&point.bucket_counts) {
                    let _ = write!(value, " le{bound}={count}");
                }
                if point.bucket_counts.len() > point.explicit_bounds.len()
                    && let Some(last) = point.bucket_counts.last()
                {
                    let _ = write!(value, " +Inf={last}");
                }
                line(&point.attributes, value);
            }
        }
        Some(metric::Data::ExponentialHistogram(data)) => {
            for point in &data.data_points {
                let mut value = format!("count={} scale={}", point.count, point.scale);
                if let Some(sum) = point.sum {
                    let _ = write!(value, " sum={sum}");
                }
                line(&point.attributes, value);
            }
        }
        Some(metric::Data::Summary(data)) => {
            for point in &data.data_points {
                let mut value = format!("count={} sum={}", point.count, point.sum);
                for quantile in &point.quantile_values {
                    let _ = write!(value, " q{}={}", quantile.quantile, quantile.value);
                }
                line(&point.attributes, value);
            }
        }
        None => {}
    }
}

fn number(point: &NumberDataPoint) -> String {
    match point.value {
        Some(number_data_point::Value::AsInt(value)) => value.to_string(),
        Some(number_data_point::Value::AsDouble(value)) => value.to_string(),
        None => String::new(),
    }
}

fn resource_line(
    out: &mut String,
    label: &str,
    index: usize,
    resource: Option<&Resource>,
    schema: &str,
) {
    let _ = write!(out, "{label} #{index}");
    if !schema.is_empty() {
        let _ = write!(out, " [{schema}]");
    }
    if let Some(resource) = resource {
        attributes_inline(out, &resource.attributes, " ");
    }
    out.push('\n');
}

fn scope_line(
    out: &mut String,
    label: &str,
    index: usize,
    scope: Option<&InstrumentationScope>,
    schema: &str,
) {
    let _ = write!(out, "{label} #{index}");
    if let Some(scope) = scope {
        let _ = write!(out, " {}", scope.name);
        if !scope.version.is_empty() {
            let _ = write!(out, "@{}", scope.version);
        }
    }
    if !schema.is_empty() {
        let _ = write!(out, " [{schema}]");
    }
    if let Some(scope) = scope {
        attributes_inline(out, &scope.attributes, " ");
    }
    out.push('\n');
}

/// Appends ` key=value key=value` (joined by `separator`), nothing when there are none.
fn attributes_inline(out: &mut String, attributes: &[KeyValue], separator: &str) {
    if attributes.is_empty() {
        return;
    }
    let pairs: Vec<String> = attributes.iter().map(key_equals_value).collect();
    out.push(' ');
    out.push_str(&pairs.join(separator));
}

fn key_equals_value(attribute: &KeyValue) -> String {
    format!("{}={}", attribute.key, attribute.value.as_ref().map(as_string).unwrap_or_default())
}

// === detailed ===

/// Every field of every span.
pub fn traces_detailed(request: &ExportTraceServiceRequest) -> String {
    let mut out = Lines::default();
    for (i, resource) in request.resource_spans.iter().enumerate() {
        out.line(format!("ResourceSpans #{i}"));
        out.resource(resource.resource.as_ref(), &resource.schema_url);
        for (j, scope) in resource.scope_spans.iter().enumerate() {
            out.line(format!("ScopeSpans #{j}"));
            out.line(format!("ScopeSpans SchemaURL: {}", scope.schema_url));
            out.scope(scope.scope.as_ref());
            for (k, span) in scope.spans.iter().enumerate() {
                out.line(format!("Span #{k}"));
                span_detailed(&mut out, span);
            }
        }
    }
    out.0
}

fn span_detailed(out: &mut Lines, span: &Span) {
    out.field("Trace ID", &hex(&span.trace_id));
    out.field("Parent ID", &hex(&span.parent_span_id));
    out.field("ID", &hex(&span.span_id));
    out.field("Name", &span.name);
    out.field("Kind", span_kind(span.kind));
    if !span.trace_state.is_empty() {
        out.field("TraceState", &span.trace_state);
    }
    out.field("Start time", &timestamp(span.start_time_unix_nano));
    out.field("End time", &timestamp(span.end_time_unix_nano));
    let (code, message) = match &span.status {
        Some(status) => (status.code, status.message.as_str()),
        None => (0, ""),
    };
    out.field("Status code", status_code(code));
    out.field("Status message", message);
    out.attributes("Attributes", &span.attributes);
    if !span.events.is_empty() {
        out.line("Events:".to_string());
        for (i, event) in span.events.iter().enumerate() {
            out.line(format!("SpanEvent #{i}"));
            out.line(format!("     -> Name: {}", event.name));
            out.line(format!("     -> Timestamp: {}", timestamp(event.time_unix_nano)));
            out.line(format!("     -> DroppedAttributesCount: {}", event.dropped_attributes_count));
            out.nested_attributes(&event.attributes);
        }
    }
    if !span.links.is_empty() {
        out.line("Links:".to_string());
        for (i, link) in span.links.iter().enumerate() {
            out.line(format!("SpanLink #{i}"));
            out.line(format!("     -> Trace ID: {}", hex(&link.trace_id)));
            out.line(format!("     -> ID: {}", hex(&link.span_id)));
            out.line(format!("     -> TraceState: {}", link.trace_state));
            out.line(format!("     -> DroppedAttributesCount: {}", link.dropped_attributes_count));
            out.nested_attributes(&link.attributes);
        }
    }
}

/// Every field of every log record.
pub fn logs_detailed(request: &ExportLogsServiceRequest) -> String {
    let mut out = Lines::default();
    for (i, resource) in request.resource_logs.iter().enumerate() {
        out.line(format!("ResourceLog #{i}"));
        out.resource(resource.resource.as_ref(), &resource.schema_url);
        for (j, scope) in resource.scope_logs.iter().enumerate() {
            out.line(format!("ScopeLogs #{j}"));
            out.line(format!("ScopeLogs SchemaURL: {}", scope.schema_url));
            out.scope(scope.scope.as_ref());
            for (k, record) in scope.log_records.iter().enumerate() {
                out.line(format!("LogRecord #{k}"));
                log_detailed(&mut out, record);
            }
        }
    }
    out.0
}

fn log_detailed(out: &mut Lines, record: &LogRecord) {
    out.line(format!("ObservedTimestamp: {}", timestamp(record.observed_time_unix_nano)));
    out.line(format!("Timestamp: {}", timestamp(record.time_unix_nano)));
    out.line(format!("SeverityText: {}", record.severity_text));
    out.line(format!(
        "SeverityNumber: {}({})",
        severity_name(record.severity_number),
        record.severity_number
    ));
    if !record.event_name.is_empty() {
        out.line(format!("EventName: {}", record.event_name));
    }
    let body = record.body.as_ref().map(typed).unwrap_or_else(|| "Empty()".to_string());
    out.line(format!("Body: {body}"));
    out.attributes("Attributes", &record.attributes);
    out.line(format!("Trace ID: {}", hex(&record.trace_id)));
    out.line(format!("Span ID: {}", hex(&record.span_id)));
    out.line(format!("Flags: {}", record.flags));
}

/// Every field of every metric and data point.
pub fn metrics_detailed(request: &ExportMetricsServiceRequest) -> String {
    let mut out = Lines::default();
    for (i, resource) in request.resource_metrics.iter().enumerate() {
        out.line(format!("ResourceMetrics #{i}"));
        out.resource(resource.resource.as_ref(), &resource.schema_url);
        for (j, scope) in resource.scope_metrics.iter().enumerate() {
            out.line(format!("ScopeMetrics #{j}"));
            out.line(format!("ScopeMetrics SchemaURL: {}", scope.schema_url));
            out.scope(scope.scope.as_ref());
            for (k, metric) in scope.metrics.iter().enumerate() {
                out.line(format!("Metric #{k}"));
                metric_detailed(&mut out, metric);
            }
        }
    }
    out.0
}

fn metric_detailed(out: &mut Lines, metric: &Metric) {
    out.line("Descriptor:".to_string());
    out.line(format!("     -> Name: {}", metric.name));
    out.line(format!("     -> Description: {}", metric.description));
    out.line(format!("     -> Unit: {}", metric.unit));
    let data_type = match &metric.data {
        Some(metric::Data::Gauge(_)) => "Gauge",
        Some(metric::Data::Sum(_)) => "Sum",
        Some(metric::Data::Histogram(_)) => "Histogram",
        Some(metric::Data::ExponentialHistogram(_)) => "ExponentialHistogram",
        Some(metric::Data::Summary(_)) => "Summary",
        None => "Empty",
    };
    out.line(format!("     -> DataType: {data_type}"));
    match &metric.data {
        Some(metric::Data::Gauge(data)) => {
            for (i, point) in data.data_points.iter().enumerate() {
                number_point(out, i, point);
            }
        }
        Some(metric::Data::Sum(data)) => {
            out.line(format!("     -> IsMonotonic: {}", data.is_monotonic));
            out.line(format!(
                "     -> AggregationTemporality: {}",
                temporality(data.aggregation_temporality)
            ));
            for (i, point) in data.data_points.iter().enumerate() {
                number_point(out, i, point);
            }
        }
        Some(metric::Data::Histogram(data)) => {
            out.line(format!(
                "     -> AggregationTemporality: {}",
                temporality(data.aggregation_temporality)
            ));
            for (i, point) in data.data_points.iter().enumerate() {
                histogram_point(out, i, point);
            }
        }
        Some(metric::Data::ExponentialHistogram(data)) => {
            out.line(format!(
                "     -> AggregationTemporality: {}",
                temporality(data.aggregation_temporality)
            ));
            for (i, point) in data.data_points.iter().enumerate() {
                exponential_point(out, i, point);
            }
        }
        Some(metric::Data::Summary(data)) => {
            for (i, point) in data.data_points.iter().enumerate() {
                summary_point(out, i, point);
            }
        }
        None => {}
    }
}

fn number_point(out: &mut Lines, index: usize, point: &NumberDataPoint) {
    out.line(format!("NumberDataPoints #{index}"));
    out.attributes("Data point attributes", &point.attributes);
    out.line(format!("StartTimestamp: {}", timestamp(point.start_time_unix_nano)));
    out.line(format!("Timestamp: {}", timestamp(point.time_unix_nano)));
    match point.value {
        Some(number_data_point::Value::AsInt(value)) => out.line(format!("Value: {value}")),
        // Go's %f: six decimals.
        Some(number_data_point::Value::AsDouble(value)) => out.line(format!("Value: {value:.6}")),
        None => out.line("Value: ".to_string()),
    }
}

fn histogram_point(out: &mut Lines, index: usize, point: &HistogramDataPoint) {
    out.line(format!("HistogramDataPoints #{index}"));
    out.attributes("Data point attributes", &point.attributes);
    out.line(format!("StartTimestamp: {}", timestamp(point.start_time_unix_nano)));
    out.line(format!("Timestamp: {}", timestamp(point.time_unix_nano)));
    out.line(format!("Count: {}", point.count));
    if let Some(sum) = point.sum {
        out.line(format!("Sum: {sum:.6}"));
    }
    if let Some(min) = point.min {
        out.line(format!("Min: {min:.6}"));
    }
    if let Some(max) = point.max {
        out.line(format!("Max: {max:.6}"));
    }
    for (i, bound) in point.explicit_bounds.iter().enumerate() {
        out.line(format!("ExplicitBounds #{i}: {bound:.6}"));
    }
    for (i, count) in point.bucket_counts.iter().enumerate() {
        out.line(format!("Buckets #{i}, Count: {count}"));
    }
}

fn exponential_point(out: &mut Lines, index: usize, point: &ExponentialHistogramDataPoint) {
    out.line(format!("ExponentialHistogramDataPoints #{index}"));
    out.attributes("Data point attributes", &point.attributes);
    out.line(format!("StartTimestamp: {}", timestamp(point.start_time_unix_nano)));
    out.line(format!("Timestamp: {}", timestamp(point.time_unix_nano)));
    out.line(format!("Count: {}", point.count));
    if let Some(sum) = point.sum {
        out.line(format!("Sum: {sum:.6}"));
    }
    if let Some(min) = point.min {
        out.line(format!("Min: {min:.6}"));
    }
    if let Some(max) = point.max {
        out.line(format!("Max: {max:.6}"));
    }
    out.line(format!("Scale: {}", point.scale));
    out.line(format!("ZeroCount: {}", point.zero_count));
    for (name, buckets) in [("Positive", &point.positive), ("Negative", &point.negative)] {
        if let Some(buckets) = buckets {
            out.line(format!("{name}.Offset: {}", buckets.offset));
            out.line(format!("{name}.BucketCounts: {:?}", buckets.bucket_counts));
        }
    }
}

fn summary_point(out: &mut Lines, index: usize, point: &SummaryDataPoint) {
    out.line(format!("SummaryDataPoints #{index}"));
    out.attributes("Data point attributes", &point.attributes);
    out.line(format!("StartTimestamp: {}", timestamp(point.start_time_unix_nano)));
    out.line(format!("Timestamp: {}", timestamp(point.time_unix_nano)));
    out.line(format!("Count: {}", point.count));
    out.line(format!("Sum: {:.6}", point.sum));
    for (i, quantile) in point.quantile_values.iter().enumerate() {
        out.line(format!(
            "QuantileValue #{i}: Quantile {:.6}, Value {:.6}",
            quantile.quantile, quantile.value
        ));
    }
}

/// A text built line by line, each ending in a newline.
#[derive(Default)]
struct Lines(String);

impl Lines {
    fn line(&mut self, line: String) {
        self.0.push_str(&line);
        self.0.push('\n');
    }

    /// `    Trace ID       : ...`: the collector pads field names to 15 columns.
    fn field(&mut self, name: &str, value: &str) {
        self.line(format!("    {name:<15}: {value}"));
    }

    fn resource(&mut self, resource: Option<&Resource>, schema: &str) {
        self.line(format!("Resource SchemaURL: {schema}"));
        if let Some(resource) = resource {
            self.attributes("Resource attributes", &resource.attributes);
        }
    }

    fn scope(&mut self, scope: Option<&InstrumentationScope>) {
        let (name, version) =
            scope.map_or(("", ""), |scope| (scope.name.as_str(), scope.version.as_str()));
        self.line(format!("InstrumentationScope {name} {version}"));
        if let Some(scope) = scope {
            self.attributes("InstrumentationScope attributes", &scope.attributes);
        }
    }

    /// `Attributes:` then `     -> key: Str(value)` lines; nothing when there are none.
    fn attributes(&mut self, header: &str, attributes: &[KeyValue]) {
        if attributes.is_empty() {
            return;
        }
        self.line(format!("{header}:"));
        for attribute in attributes {
            self.line(format!("     -> {}: {}", attribute.key, typed_of(attribute)));
        }
    }

    /// The attributes of an event or link, one level deeper.
    fn nested_attributes(&mut self, attributes: &[KeyValue]) {
        if attributes.is_empty() {
            return;
        }
        self.line("     -> Attributes::".to_string());
        for attribute in attributes {
            self.line(format!("         -> {}: {}", attribute.key, typed_of(attribute)));
        }
    }
}

// === values ===

fn typed_of(attribute: &KeyValue) -> String {
    attribute.value.as_ref().map(typed).unwrap_or_else(|| "Empty()".to_string())
}

/// A value with its type, as the collector's detailed output shows it: `Str(GET)`, `Int(200)`.
pub fn typed(value: &AnyValue) -> String {
    let kind = match &value.value {
        Some(any_value::Value::StringValue(_)) => "Str",
        Some(any_value::Value::BoolValue(_)) => "Bool",
        Some(any_value::Value::IntValue(_)) => "Int",
        Some(any_value::Value::DoubleValue(_)) => "Double",
        Some(any_value::Value::ArrayValue(_)) => "Slice",
        Some(any_value::Value::KvlistValue(_)) => "Map",
        Some(any_value::Value::BytesValue(_)) => "Bytes",
        Some(any_value::Value::StringValueStrindex(_)) | None => "Empty",
    };
    format!("{kind}({})", as_string(value))
}

/// A value as plain text: strings as they are, maps and slices as JSON, bytes as base64.
pub fn as_string(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => base64(bytes),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            to_json(value).to_string()
        }
        Some(any_value::Value::StringValueStrindex(_)) | None => String::new(),
    }
}

fn to_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as Json;
    match &value.value {
        Some(any_value::Value::StringValue(text)) => Json::String(text.clone()),
        Some(any_value::Value::BoolValue(b)) => Json::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Json::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number)
        }
        Some(any_value::Value::BytesValue(bytes)) => Json::String(base64(bytes)),
        Some(any_value::Value::ArrayValue(array)) => {
            Json::Array(array.values.iter().map(to_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, to_json)))
                .collect(),
        ),
        Some(any_value::Value::StringValueStrindex(_)) | None => Json::Null,
    }
}

/// Standard base64 with padding, as Go prints `[]byte` values.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Lowercase hex; empty ids print as nothing, as in the collector.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Nanoseconds since the Unix epoch, the way Go prints a UTC time:
/// `2023-11-14 22:13:20.000000001 +0000 UTC`, with the fraction's trailing zeros trimmed.
pub fn timestamp(nanos: u64) -> String {
    let seconds = nanos / 1_000_000_000;
    let fraction = nanos % 1_000_000_000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let in_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    );
    if fraction > 0 {
        let digits = format!("{fraction:09}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    text
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

fn span_kind(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => "Internal",
        Ok(span::SpanKind::Server) => "Server",
        Ok(span::SpanKind::Client) => "Client",
        Ok(span::SpanKind::Producer) => "Producer",
        Ok(span::SpanKind::Consumer) => "Consumer",
        Ok(span::SpanKind::Unspecified) | Err(_) => "Unspecified",
    }
}

fn status_code(code: i32) -> &'static str {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Ok) => "Ok",
        Ok(status::StatusCode::Error) => "Error",
        Ok(status::StatusCode::Unset) | Err(_) => "Unset",
    }
}

fn temporality(value: i32) -> &'static str {
    match AggregationTemporality::try_from(value) {
        Ok(AggregationTemporality::Delta) => "Delta",
        Ok(AggregationTemporality::Cumulative) => "Cumulative",
        Ok(AggregationTemporality::Unspecified) | Err(_) => "Unspecified",
    }
}

/// `Info`, `Warn2`, ...: the collector's names for severity numbers.
fn severity_name(number: i32) -> String {
    let Ok(severity) = SeverityNumber::try_from(number) else {
        return String::new();
    };
    if severity == SeverityNumber::Unspecified {
        return "Unspecified".to_string();
    }
    // "SEVERITY_NUMBER_INFO2" → "Info2".
    let name = severity.as_str_name().trim_start_matches("SEVERITY_NUMBER_");
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_string() + &chars.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::proto::common::v1::{ArrayValue, KeyValueList};
    use otlp::proto::logs::v1::{ResourceLogs, ScopeLogs};
    use otlp::proto::metrics::v1::{ResourceMetrics, ScopeMetrics, Sum};
    use otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Status};

    const START: u64 = 1_700_000_000_000_000_000;

    fn string(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
            ..Default::default()
        }
    }

    fn int(key: &str, value: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
            ..Default::default()
        }
    }

    fn resource() -> Option<Resource> {
        Some(Resource {
            attributes: vec![string("service.name", "checkout")],
            ..Default::default()
        })
    }

    fn scope() -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: "envoy".into(),
            version: "1.27.2".into(),
            ..Default::default()
        })
    }

    fn traces() -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: (1..=16).collect(),
            span_id: vec![0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x02, 0x03, 0x04],
            parent_span_id: vec![],
            name: "GET /cart".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: START,
            end_time_unix_nano: START + 1_500_000,
            attributes: vec![string("http.method", "GET"), int("http.status_code", 200)],
            events: vec![span::Event {
                time_unix_nano: START + 1000,
                name: "retry".into(),
                attributes: vec![int("attempt", 2)],
                dropped_attributes_count: 0,
            }],
            links: vec![span::Link {
                trace_id: vec![0xff; 16],
                span_id: vec![0xee; 8],
                ..Default::default()
            }],
            status: Some(Status { message: "".into(), code: status::StatusCode::Ok as i32 }),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(),
                scope_spans: vec![ScopeSpans {
                    scope: scope(),
                    spans: vec![span],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn traces_print_at_every_verbosity() {
        let request = traces();
        assert_eq!(
            traces_summary(&request),
            "TracesExporter {\"resource spans\": 1, \"spans\": 1}"
        );
        assert_eq!(
            traces_normal(&request),
            "ResourceTraces #0 service.name=checkout\n\
             ScopeTraces #0 envoy@1.27.2\n\
             GET /cart 0102030405060708090a0b0c0d0e0f10 aabbccdd01020304 http.method=GET http.status_code=200\n"
        );
        let detailed = traces_detailed(&request);
        let expected = "\
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(checkout)
ScopeSpans #0
ScopeSpans SchemaURL: 
InstrumentationScope envoy 1.27.2
Span #0
    Trace ID       : 0102030405060708090a0b0c0d0e0f10
    Parent ID      : 
    ID             : aabbccdd01020304
    Name           : GET /cart
    Kind           : Server
    Start time     : 2023-11-14 22:13:20 +0000 UTC
    End time       : 2023-11-14 22:13:20.0015 +0000 UTC
    Status code    : Ok
    Status message : 
Attributes:
     -> http.method: Str(GET)
     -> http.status_code: Int(200)
Events:
SpanEvent #0
     -> Name: retry
     -> Timestamp: 2023-11-14 22:13:20.000001 +0000 UTC
     -> DroppedAttributesCount: 0
     -> Attributes::
         -> attempt: Int(2)
Links:
SpanLink #0
     -> Trace ID: ffffffffffffffffffffffffffffffff
     -> ID: eeeeeeeeeeeeeeee
     -> TraceState: 
     -> DroppedAttributesCount: 0
";
        assert_eq!(detailed, expected);
    }

    #[test]
    fn render_decodes_wire_batches() {
        use prost::Message;
        let wire = traces().encode_to_vec();
        let batch = Batch::from_wire(Signal::Traces, wire.into()).unwrap();
        let printout = render(batch, Verbosity::Basic).unwrap();
        assert_eq!(printout.summary, "TracesExporter {\"resource spans\": 1, \"spans\": 1}");
        assert_eq!(printout.body, None);
        let printout = render(Batch::from_traces(traces()), Verbosity::Normal).unwrap();
        assert!(printout.body.unwrap().contains("GET /cart 0102030405060708090a0b0c0d0e0f10"));
    }

    #[test]
    fn logs_print_at_every_verbosity() {
        let record = LogRecord {
            time_unix_nano: START,
            observed_time_unix_nano: START + 5,
            severity_number: SeverityNumber::Warn2 as i32,
            severity_text: "WARN".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("disk almost full".into())),
            }),
            attributes: vec![int("free_mb", 12)],
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    scope: scope(),
                    log_records: vec![record],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        assert_eq!(
            logs_summary(&request),
            "LogsExporter {\"resource logs\": 1, \"log records\": 1}"
        );
        assert!(
            logs_normal(&request)
                .ends_with("ScopeLog #0 envoy@1.27.2\ndisk almost full free_mb=12\n")
        );
        let detailed = logs_detailed(&request);
        for line in [
            "LogRecord #0",
            "ObservedTimestamp: 2023-11-14 22:13:20.000000005 +0000 UTC",
            "SeverityText: WARN",
            "SeverityNumber: Warn2(14)",
            "Body: Str(disk almost full)",
            "     -> free_mb: Int(12)",
            "Trace ID: 11111111111111111111111111111111",
            "Span ID: 2222222222222222",
            "Flags: 0",
        ] {
            assert!(detailed.lines().any(|l| l == line), "missing {line:?} in\n{detailed}");
        }
    }

    #[test]
    fn metrics_print_at_every_verbosity() {
        let point = NumberDataPoint {
            attributes: vec![int("response_code", 200)],
            start_time_unix_nano: START,
            time_unix_nano: START + 1_000_000_000,
            value: Some(number_data_point::Value::AsInt(42)),
            ..Default::default()
        };
        let metric = Metric {
            name: "istio_requests_total".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope(),
                    metrics: vec![metric],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        assert_eq!(
            metrics_summary(&request),
            "MetricsExporter {\"resource metrics\": 1, \"metrics\": 1, \"data points\": 1}"
        );
        assert!(metrics_normal(&request).ends_with("istio_requests_total{response_code=200} 42\n"));
        let detailed = metrics_detailed(&request);
        for line in [
            "     -> Name: istio_requests_total",
            "     -> DataType: Sum",
            "     -> IsMonotonic: true",
            "     -> AggregationTemporality: Cumulative",
            "NumberDataPoints #0",
            "     -> response_code: Int(200)",
            "Timestamp: 2023-11-14 22:13:21 +0000 UTC",
            "Value: 42",
        ] {
            assert!(detailed.lines().any(|l| l == line), "missing {line:?} in\n{detailed}");
        }
    }

    #[test]
    fn values_print_like_the_collector() {
        let list = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![string("b", "x"), int("a", 1)],
            })),
        };
        assert_eq!(typed(&list), "Map({\"a\":1,\"b\":\"x\"})");
        let array = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(any_value::Value::BoolValue(true)) }],
            })),
        };
        assert_eq!(typed(&array), "Slice([true])");
        let bytes = AnyValue { value: Some(any_value::Value::BytesValue(b"hello".to_vec())) };
        assert_eq!(typed(&bytes), "Bytes(aGVsbG8=)");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(
            typed(&AnyValue { value: Some(any_value::Value::DoubleValue(1.5)) }),
            "Double(1.5)"
        );
        assert_eq!(typed(&AnyValue::default()), "Empty()");
    }

    #[test]
    fn timestamps_print_like_go() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(timestamp(START + 1), "2023-11-14 22:13:20.000000001 +0000 UTC");
        // A leap day, and the end of a year.
        assert_eq!(timestamp(951_782_400_000_000_000), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(timestamp(1_704_067_199_500_000_000), "2023-12-31 23:59:59.5 +0000 UTC");
    }
}
