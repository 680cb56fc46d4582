//! Metrics and their data points at every verbosity.

use std::fmt::Write;

use otlp::ExportMetricsServiceRequest;
use otlp::proto::common::v1::KeyValue;
use otlp::proto::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, Gauge, HistogramDataPoint, Metric,
    NumberDataPoint, Sum, SummaryDataPoint, metric, number_data_point,
};

use super::hierarchy::{self, LevelNames};
use super::lines::{Lines, key_equals_values};
use super::values::timestamp;

const NAMES: LevelNames = LevelNames {
    normal: ["ResourceMetrics", "ScopeMetrics"],
    detailed: ["ResourceMetrics", "ScopeMetrics", "Metric"],
};

/// `MetricsExporter {"resource metrics": 1, "metrics": 2, "data points": 6}`.
pub fn metrics_summary(request: &ExportMetricsServiceRequest) -> String {
    let metrics: Vec<&Metric> = hierarchy::items(&request.resource_metrics).collect();
    let points: usize = metrics.iter().map(|metric| data_type(metric).1).sum();
    format!(
        "MetricsExporter {{\"resource metrics\": {}, \"metrics\": {}, \"data points\": {points}}}",
        request.resource_metrics.len(),
        metrics.len()
    )
}

/// The collector's name for a metric's data type, and how many data points it has.
fn data_type(metric: &Metric) -> (&'static str, usize) {
    match &metric.data {
        Some(metric::Data::Gauge(data)) => ("Gauge", data.data_points.len()),
        Some(metric::Data::Sum(data)) => ("Sum", data.data_points.len()),
        Some(metric::Data::Histogram(data)) => ("Histogram", data.data_points.len()),
        Some(metric::Data::ExponentialHistogram(data)) => {
            ("ExponentialHistogram", data.data_points.len())
        }
        Some(metric::Data::Summary(data)) => ("Summary", data.data_points.len()),
        None => ("Empty", 0),
    }
}

/// What every kind of data point has: attributes and two times.
trait DataPoint {
    /// What the collector calls a list of these at `detailed`: `NumberDataPoints`.
    const KIND: &'static str;
    fn attributes(&self) -> &[KeyValue];
    /// Start time and time, in nanoseconds since the Unix epoch.
    fn times(&self) -> (u64, u64);
}

macro_rules! data_point {
    ($point:ty, $kind:literal) => {
        impl DataPoint for $point {
            const KIND: &'static str = $kind;
            fn attributes(&self) -> &[KeyValue] {
                &self.attributes
            }
            fn times(&self) -> (u64, u64) {
                (self.start_time_unix_nano, self.time_unix_nano)
            }
        }
    };
}

data_point!(NumberDataPoint, "NumberDataPoints");
data_point!(HistogramDataPoint, "HistogramDataPoints");
data_point!(ExponentialHistogramDataPoint, "ExponentialHistogramDataPoints");
data_point!(SummaryDataPoint, "SummaryDataPoints");

// === normal ===

/// One line per data point: `name{key=value,...} value`.
pub fn metrics_normal(request: &ExportMetricsServiceRequest) -> String {
    hierarchy::normal(&request.resource_metrics, &NAMES, metric_normal)
}

fn metric_normal(out: &mut String, metric: &Metric) {
    let name = &metric.name;
    match &metric.data {
        Some(
            metric::Data::Gauge(Gauge { data_points }) | metric::Data::Sum(Sum { data_points, .. }),
        ) => points_normal(out, name, data_points, number),
        Some(metric::Data::Histogram(data)) => {
            points_normal(out, name, &data.data_points, histogram_normal);
        }
        Some(metric::Data::ExponentialHistogram(data)) => {
            points_normal(out, name, &data.data_points, exponential_normal);
        }
        Some(metric::Data::Summary(data)) => {
            points_normal(out, name, &data.data_points, summary_normal);
        }
        None => {}
    }
}

/// `name{key=value,...} value` for each of `points`, the value as `value` writes it.
fn points_normal<P: DataPoint>(
    out: &mut String,
    name: &str,
    points: &[P],
    value: fn(&P) -> String,
) {
    for point in points {
        let labels = key_equals_values(point.attributes()).join(",");
        let _ = writeln!(out, "{name}{{{labels}}} {}", value(point));
    }
}

fn number(point: &NumberDataPoint) -> String {
    match point.value {
        Some(number_data_point::Value::AsInt(value)) => value.to_string(),
        Some(number_data_point::Value::AsDouble(value)) => value.to_string(),
        None => String::new(),
    }
}

/// `count=3 sum=1.5 min=0.1 max=1 le0.5=1 le1=2 +Inf=0`.
fn histogram_normal(point: &HistogramDataPoint) -> String {
    let mut value = format!("count={}", point.count);
    for (name, stat) in [("sum", point.sum), ("min", point.min), ("max", point.max)] {
        if let Some(stat) = stat {
            let _ = write!(value, " {name}={stat}");
        }
    }
    for (bound, count) in point.explicit_bounds.iter().zip(&point.bucket_counts) {
        let _ = write!(value, " le{bound}={count}");
    }
    if point.bucket_counts.len() > point.explicit_bounds.len()
        && let Some(last) = point.bucket_counts.last()
    {
        let _ = write!(value, " +Inf={last}");
    }
    value
}

/// `count=3 scale=2 sum=1.5`.
fn exponential_normal(point: &ExponentialHistogramDataPoint) -> String {
    let mut value = format!("count={} scale={}", point.count, point.scale);
    if let Some(sum) = point.sum {
        let _ = write!(value, " sum={sum}");
    }
    value
}

/// `count=3 sum=1.5 q0.5=0.2 q0.99=1`.
fn summary_normal(point: &SummaryDataPoint) -> String {
    let mut value = format!("count={} sum={}", point.count, point.sum);
    for quantile in &point.quantile_values {
        let _ = write!(value, " q{}={}", quantile.quantile, quantile.value);
    }
    value
}

// === detailed ===

/// Every field of every metric and data point.
pub fn metrics_detailed(request: &ExportMetricsServiceRequest) -> String {
    hierarchy::detailed(&request.resource_metrics, &NAMES, metric_detailed)
}

fn metric_detailed(out: &mut Lines, metric: &Metric) {
    out.line("Descriptor:".to_string());
    out.arrow("Name", &metric.name);
    out.arrow("Description", &metric.description);
    out.arrow("Unit", &metric.unit);
    out.arrow("DataType", data_type(metric).0);
    match &metric.data {
        Some(metric::Data::Gauge(data)) => points_detailed(out, &data.data_points, number_detailed),
        Some(metric::Data::Sum(data)) => {
            out.arrow("IsMonotonic", data.is_monotonic);
            out.arrow("AggregationTemporality", temporality(data.aggregation_temporality));
            points_detailed(out, &data.data_points, number_detailed);
        }
        Some(metric::Data::Histogram(data)) => {
            out.arrow("AggregationTemporality", temporality(data.aggregation_temporality));
            points_detailed(out, &data.data_points, histogram_detailed);
        }
        Some(metric::Data::ExponentialHistogram(data)) => {
            out.arrow("AggregationTemporality", temporality(data.aggregation_temporality));
            points_detailed(out, &data.data_points, exponential_detailed);
        }
        Some(metric::Data::Summary(data)) => {
            points_detailed(out, &data.data_points, summary_detailed);
        }
        None => {}
    }
}

/// For each of `points`: `NumberDataPoints #0`, its attributes and times, then what `value`
/// writes.
fn points_detailed<P: DataPoint>(out: &mut Lines, points: &[P], value: fn(&mut Lines, &P)) {
    for (index, point) in points.iter().enumerate() {
        let (start, time) = point.times();
        out.line(format!("{} #{index}", P::KIND));
        out.attributes("Data point attributes", point.attributes());
        out.entry("StartTimestamp", timestamp(start));
        out.entry("Timestamp", timestamp(time));
        value(out, point);
    }
}

fn number_detailed(out: &mut Lines, point: &NumberDataPoint) {
    match point.value {
        Some(number_data_point::Value::AsInt(value)) => out.entry("Value", value),
        // Go's %f: six decimals.
        Some(number_data_point::Value::AsDouble(value)) => {
            out.entry("Value", format!("{value:.6}"))
        }
        None => out.entry("Value", ""),
    }
}

/// `Count`, then `Sum`, `Min` and `Max` for those the point has, in Go's `%f`.
fn count_and_stats(out: &mut Lines, count: u64, stats: [Option<f64>; 3]) {
    out.entry("Count", count);
    for (name, stat) in ["Sum", "Min", "Max"].into_iter().zip(stats) {
        if let Some(stat) = stat {
            out.entry(name, format!("{stat:.6}"));
        }
    }
}

fn histogram_detailed(out: &mut Lines, point: &HistogramDataPoint) {
    count_and_stats(out, point.count, [point.sum, point.min, point.max]);
    for (i, bound) in point.explicit_bounds.iter().enumerate() {
        out.line(format!("ExplicitBounds #{i}: {bound:.6}"));
    }
    for (i, count) in point.bucket_counts.iter().enumerate() {
        out.line(format!("Buckets #{i}, Count: {count}"));
    }
}

fn exponential_detailed(out: &mut Lines, point: &ExponentialHistogramDataPoint) {
    count_and_stats(out, point.count, [point.sum, point.min, point.max]);
    out.entry("Scale", point.scale);
    out.entry("ZeroCount", point.zero_count);
    for (name, buckets) in [("Positive", &point.positive), ("Negative", &point.negative)] {
        if let Some(buckets) = buckets {
            out.line(format!("{name}.Offset: {}", buckets.offset));
            out.line(format!("{name}.BucketCounts: {:?}", buckets.bucket_counts));
        }
    }
}

fn summary_detailed(out: &mut Lines, point: &SummaryDataPoint) {
    count_and_stats(out, point.count, [Some(point.sum), None, None]);
    for (i, quantile) in point.quantile_values.iter().enumerate() {
        out.line(format!(
            "QuantileValue #{i}: Quantile {:.6}, Value {:.6}",
            quantile.quantile, quantile.value
        ));
    }
}

fn temporality(value: i32) -> &'static str {
    match AggregationTemporality::try_from(value) {
        Ok(AggregationTemporality::Delta) => "Delta",
        Ok(AggregationTemporality::Cumulative) => "Cumulative",
        Ok(AggregationTemporality::Unspecified) | Err(_) => "Unspecified",
    }
}

#[cfg(test)]
mod tests {
    use otlp::proto::metrics::v1::{ResourceMetrics, ScopeMetrics};

    use super::*;
    use crate::debug::format::fixtures::{START, int, resource, scope};

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
}
