//! The tracer's own counters (Prometheus text, `_total` on counters as prometheus-client writes
//! them; help texts get their final period from the encoder):
//!
//! | metric | labels | counts |
//! |---|---|---|
//! | `meshtrace_sidecar_spans_started_total` | `direction` | sampled spans begun |
//! | `meshtrace_sidecar_spans_exported_total` | | spans the exporter accepted |
//! | `meshtrace_sidecar_spans_dropped_total` | `reason` | spans lost: `buffer_full`, `export_refused`, `shutdown`, `no_exporter` |
//! | `meshtrace_sidecar_stitched_requests_total` | `service` | outbound calls joined to their inbound trace |
//! | `meshtrace_sidecar_unstitchable_requests_total` | `service` | outbound calls without trace context that could not be |
//! | `meshtrace_sidecar_propagation_rejected_total` | `header`, `reason` | invalid `traceparent`, `tracestate`, B3 headers received |
//!
//! `service` is the destination service host; at most [`MAX_SERVICES`] distinct values are
//! kept, later ones count under `other`, so a client calling arbitrary hosts cannot grow the
//! series without bound.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use propagation::ExtractErrors;

use crate::bounded::{Bounded, Budget};
use crate::observe::Direction;

/// Distinct `service` label values kept.
pub const MAX_SERVICES: usize = 256;

type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;

/// Why a span was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The span buffer between the proxy and the export task was full.
    BufferFull,
    /// The exporter refused the batch (its queue was full, or it failed for good).
    ExportRefused,
    /// The tracer was shutting down.
    Shutdown,
    /// The direction is traced (for propagation and sampling) but has no exporter.
    NoExporter,
}

impl DropReason {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::ExportRefused => "export_refused",
            DropReason::Shutdown => "shutdown",
            DropReason::NoExporter => "no_exporter",
        }
    }
}

/// The counters; cheap to clone (every family is shared).
#[derive(Clone)]
pub struct TraceMetrics {
    started: Counters,
    exported: Counter,
    dropped: Counters,
    stitched: Counters,
    unstitchable: Counters,
    rejected: Counters,
    services: Arc<Services>,
}

impl Default for TraceMetrics {
    fn default() -> Self {
        TraceMetrics {
            started: Counters::default(),
            exported: Counter::default(),
            dropped: Counters::default(),
            stitched: Counters::default(),
            unstitchable: Counters::default(),
            rejected: Counters::default(),
            services: Arc::new(Services {
                known: Bounded::new(&Arc::new(Budget::new(MAX_SERVICES))),
                other: Arc::new(ServiceHandles::new("other")),
            }),
        }
    }
}

/// The `service`-labelled counters of each known service, and of `other` past [`MAX_SERVICES`].
struct Services {
    known: Bounded<Arc<ServiceHandles>>,
    other: Arc<ServiceHandles>,
}

/// One `service` label's counters, each bound on its first count (so a service only counted as
/// stitched has no `unstitchable` series, as with `get_or_create` on every count).
struct ServiceHandles {
    label: Box<str>,
    stitched: OnceLock<Counter>,
    unstitchable: OnceLock<Counter>,
}

impl ServiceHandles {
    fn new(label: &str) -> Self {
        ServiceHandles {
            label: label.into(),
            stitched: OnceLock::new(),
            unstitchable: OnceLock::new(),
        }
    }

    fn bound<'a>(&self, handle: &'a OnceLock<Counter>, family: &Counters) -> &'a Counter {
        handle
            .get_or_init(|| family.get_or_create_owned(&vec![("service", self.label.to_string())]))
    }
}

impl TraceMetrics {
    /// Adds every counter to `registry` (they stay shared with this value).
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "meshtrace_sidecar_spans_started",
            "Sampled proxy spans begun",
            self.started.clone(),
        );
        registry.register(
            "meshtrace_sidecar_spans_exported",
            "Proxy spans accepted by the exporter",
            self.exported.clone(),
        );
        registry.register(
            "meshtrace_sidecar_spans_dropped",
            "Proxy spans lost, by reason",
            self.dropped.clone(),
        );
        registry.register(
            "meshtrace_sidecar_stitched_requests",
            "Outbound requests without trace context joined to their inbound trace by x-request-id",
            self.stitched.clone(),
        );
        registry.register(
            "meshtrace_sidecar_unstitchable_requests",
            "Outbound requests without trace context and without an in-flight inbound request to join",
            self.unstitchable.clone(),
        );
        registry.register(
            "meshtrace_sidecar_propagation_rejected",
            "Invalid propagation headers received, by header and reason",
            self.rejected.clone(),
        );
    }

    /// The Prometheus text of these counters alone (no `# EOF`).
    pub fn encode(&self, out: &mut String) {
        let mut registry = Registry::default();
        self.register(&mut registry);
        // Writing into a String cannot fail.
        let _ = encode_registry(out, &registry);
    }

    /// The `spans_started` counter of `direction`, bound once so counting is one atomic add.
    pub(crate) fn started_handle(&self, direction: Direction) -> Counter {
        self.started.get_or_create_owned(&vec![("direction", direction_label(direction))])
    }

    /// The `spans_exported` counter.
    pub(crate) fn exported_handle(&self) -> Counter {
        self.exported.clone()
    }

    /// The `spans_dropped` counter of `reason`.
    pub(crate) fn dropped_handle(&self, reason: DropReason) -> Counter {
        self.dropped.get_or_create_owned(&vec![("reason", reason.as_str().to_owned())])
    }

    pub(crate) fn stitched(&self, service: &str) {
        let handles = self.service(service);
        handles.bound(&handles.stitched, &self.stitched).inc();
    }

    pub(crate) fn unstitchable(&self, service: &str) {
        let handles = self.service(service);
        handles.bound(&handles.unstitchable, &self.unstitchable).inc();
    }

    /// Counts what [`propagation::extract`] rejected.
    pub(crate) fn rejected(&self, errors: &ExtractErrors) {
        let count = |header: &'static str, reason: &'static str| {
            let labels = vec![("header", header.to_owned()), ("reason", reason.to_owned())];
            self.rejected.get_or_create(&labels).inc();
        };
        if let Some(error) = errors.traceparent {
            count("traceparent", error.reason());
        }
        if let Some(error) = errors.tracestate {
            count("tracestate", error.reason());
        }
        if let Some(error) = errors.b3 {
            count("b3", error.reason());
        }
    }

    /// The counters of `service`: its own while fewer than [`MAX_SERVICES`] are known, else
    /// `other`'s. A known service costs a read lock and no allocation.
    fn service(&self, service: &str) -> Arc<ServiceHandles> {
        let services = &self.services;
        services
            .known
            .get_or_insert_with(service, || Arc::new(ServiceHandles::new(service)))
            .unwrap_or_else(|| services.other.clone())
    }

    /// Spans begun in `direction`.
    pub fn spans_started(&self, direction: Direction) -> u64 {
        self.started.get_or_create(&vec![("direction", direction_label(direction))]).get()
    }

    /// Spans the exporter accepted.
    pub fn spans_exported(&self) -> u64 {
        self.exported.get()
    }

    /// Spans lost for `reason`.
    pub fn spans_dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get_or_create(&vec![("reason", reason.as_str().to_owned())]).get()
    }

    /// Outbound requests to `service` stitched to their inbound trace.
    pub fn stitched_requests(&self, service: &str) -> u64 {
        self.stitched.get_or_create(&vec![("service", service.to_owned())]).get()
    }

    /// Outbound requests to `service` that could not be stitched.
    pub fn unstitchable_requests(&self, service: &str) -> u64 {
        self.unstitchable.get_or_create(&vec![("service", service.to_owned())]).get()
    }
}

fn direction_label(direction: Direction) -> String {
    match direction {
        Direction::Inbound => "inbound".to_owned(),
        Direction::Outbound => "outbound".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_prometheus_text() {
        let metrics = TraceMetrics::default();
        metrics.started_handle(Direction::Inbound).inc();
        metrics.dropped_handle(DropReason::BufferFull).inc_by(3);
        metrics.stitched("reviews.default.svc.cluster.local");
        let mut text = String::new();
        metrics.encode(&mut text);
        assert!(
            text.contains("meshtrace_sidecar_spans_started_total{direction=\"inbound\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("meshtrace_sidecar_spans_dropped_total{reason=\"buffer_full\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("meshtrace_sidecar_stitched_requests_total{service=\"reviews.default.svc.cluster.local\"} 1"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn the_service_label_is_bounded() {
        let metrics = TraceMetrics::default();
        for i in 0..MAX_SERVICES + 10 {
            metrics.unstitchable(&format!("host-{i}"));
        }
        assert_eq!(metrics.unstitchable_requests("host-0"), 1);
        assert_eq!(metrics.unstitchable_requests("other"), 10);
    }
}
