//! The collector's own metrics, under the OpenTelemetry Collector's names.
//!
//! Components get small handles ([`ReceiverMetrics`], [`ExporterMetrics`], ...) holding the
//! counters for their labels, so counting on a hot path is one atomic add with no lookup.
//! Names follow `otelcol`: `otelcol_receiver_accepted_spans` and friends; in the Prometheus text
//! counters carry the `_total` suffix, exactly as the current collector exposes them.

use otlp::Signal;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::component::ComponentId;

type Labels = Vec<(&'static str, String)>;
type CounterFamily = Family<Labels, Counter>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Counters of one signal for one stage, in the order of [`Signal::ALL`].
struct PerSignal([CounterFamily; 3]);

impl PerSignal {
    fn new(registry: &mut Registry, stage: &str, what: &str, help: &str) -> PerSignal {
        let families = Signal::ALL.map(|signal| {
            let family = CounterFamily::default();
            registry.register(
                format!("otelcol_{stage}_{what}_{}", signal.item_unit()),
                help.replace("{items}", signal.item_unit()),
                family.clone(),
            );
            family
        });
        PerSignal(families)
    }

    fn get(&self, signal: Signal, labels: &Labels) -> Counter {
        let index = Signal::ALL.iter().position(|s| *s == signal).unwrap_or(0);
        self.0[index].get_or_create_owned(labels)
    }
}

/// The metrics registry of one collector.
pub struct Telemetry {
    registry: Registry,
    receiver_accepted: PerSignal,
    receiver_refused: PerSignal,
    exporter_sent: PerSignal,
    exporter_send_failed: PerSignal,
    exporter_enqueue_failed: PerSignal,
    processor_dropped: PerSignal,
    queue_size: Family<Labels, Gauge>,
    queue_capacity: Family<Labels, Gauge>,
    batch_send_size: HistogramFamily,
    batch_size_trigger: CounterFamily,
    batch_timeout_trigger: CounterFamily,
}

fn batch_size_buckets() -> Histogram {
    // The collector's buckets for otelcol_processor_batch_batch_send_size.
    Histogram::new([
        10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0,
        6000.0, 7000.0, 8000.0, 9000.0, 10000.0, 20000.0, 30000.0, 50000.0, 100000.0,
    ])
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let r = &mut registry;
        let receiver_accepted = PerSignal::new(
            r,
            "receiver",
            "accepted",
            "Number of {items} successfully pushed into the pipeline.",
        );
        let receiver_refused = PerSignal::new(
            r,
            "receiver",
            "refused",
            "Number of {items} that could not be pushed into the pipeline.",
        );
        let exporter_sent = PerSignal::new(
            r,
            "exporter",
            "sent",
            "Number of {items} successfully sent to destination.",
        );
        let exporter_send_failed = PerSignal::new(
            r,
            "exporter",
            "send_failed",
            "Number of {items} in failed attempts to send to destination.",
        );
        let exporter_enqueue_failed = PerSignal::new(
            r,
            "exporter",
            "enqueue_failed",
            "Number of {items} failed to be added to the sending queue.",
        );
        let processor_dropped = PerSignal::new(
            r,
            "processor",
            "dropped",
            "Number of {items} that were dropped by a processor.",
        );
        let queue_size = Family::<Labels, Gauge>::default();
        r.register(
            "otelcol_exporter_queue_size",
            "Current size of the retry queue (in batches).",
            queue_size.clone(),
        );
        let queue_capacity = Family::<Labels, Gauge>::default();
        r.register(
            "otelcol_exporter_queue_capacity",
            "Fixed capacity of the retry queue (in batches).",
            queue_capacity.clone(),
        );
        let batch_send_size = HistogramFamily::new_with_constructor(batch_size_buckets);
        r.register(
            "otelcol_processor_batch_batch_send_size",
            "Number of units in the batch.",
            batch_send_size.clone(),
        );
        let batch_size_trigger = CounterFamily::default();
        r.register(
            "otelcol_processor_batch_batch_size_trigger_send",
            "Number of times the batch was sent due to a size trigger.",
            batch_size_trigger.clone(),
        );
        let batch_timeout_trigger = CounterFamily::default();
        r.register(
            "otelcol_processor_batch_timeout_trigger_send",
            "Number of times the batch was sent due to a timeout trigger.",
            batch_timeout_trigger.clone(),
        );
        Telemetry {
            registry,
            receiver_accepted,
            receiver_refused,
            exporter_sent,
            exporter_send_failed,
            exporter_enqueue_failed,
            processor_dropped,
            queue_size,
            queue_capacity,
            batch_send_size,
            batch_size_trigger,
            batch_timeout_trigger,
        }
    }

    /// The Prometheus (OpenMetrics) text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Counters for a receiver id on one transport (`grpc`, `http`).
    pub fn receiver(&self, id: &ComponentId, transport: &str, signal: Signal) -> ReceiverMetrics {
        let labels = vec![("receiver", id.to_string()), ("transport", transport.to_string())];
        ReceiverMetrics {
            accepted: self.receiver_accepted.get(signal, &labels),
            refused: self.receiver_refused.get(signal, &labels),
        }
    }

    /// Counters and gauges for an exporter id.
    pub fn exporter(&self, id: &ComponentId, signal: Signal) -> ExporterMetrics {
        let labels = vec![("exporter", id.to_string())];
        ExporterMetrics {
            sent: self.exporter_sent.get(signal, &labels),
            send_failed: self.exporter_send_failed.get(signal, &labels),
            enqueue_failed: self.exporter_enqueue_failed.get(signal, &labels),
            queue_size: self.queue_size.get_or_create_owned(&labels),
            queue_capacity: self.queue_capacity.get_or_create_owned(&labels),
        }
    }

    /// Counters for a batch processor id.
    pub fn batch_processor(&self, id: &ComponentId, signal: Signal) -> BatchMetrics {
        let labels = vec![("processor", id.to_string())];
        BatchMetrics {
            send_size: self.batch_send_size.get_or_create_owned(&labels),
            size_trigger: self.batch_size_trigger.get_or_create_owned(&labels),
            timeout_trigger: self.batch_timeout_trigger.get_or_create_owned(&labels),
            dropped: self.processor_dropped.get(signal, &labels),
        }
    }
}

/// A receiver's counters for one transport and signal.
#[derive(Clone)]
pub struct ReceiverMetrics {
    pub accepted: Counter,
    pub refused: Counter,
}

/// An exporter's counters for one signal.
#[derive(Clone)]
pub struct ExporterMetrics {
    pub sent: Counter,
    pub send_failed: Counter,
    pub enqueue_failed: Counter,
    pub queue_size: Gauge,
    pub queue_capacity: Gauge,
}

/// A batch processor's metrics.
#[derive(Clone)]
pub struct BatchMetrics {
    pub send_size: Histogram,
    pub size_trigger: Counter,
    pub timeout_trigger: Counter,
    pub dropped: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_under_the_collector_names_with_labels() {
        let telemetry = Telemetry::new();
        let id = ComponentId::parse("otlp/in").unwrap();
        telemetry.receiver(&id, "grpc", Signal::Traces).accepted.inc_by(7);
        telemetry.exporter(&ComponentId::new("otlp"), Signal::Logs).enqueue_failed.inc_by(3);
        let text = telemetry.encode();
        assert!(
            text.contains(
                "otelcol_receiver_accepted_spans_total{receiver=\"otlp/in\",transport=\"grpc\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains("otelcol_exporter_enqueue_failed_log_records_total{exporter=\"otlp\"} 3"),
            "{text}"
        );
    }
}
