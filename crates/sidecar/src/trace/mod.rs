//! Spans the way istio-proxy makes them: one SERVER span per inbound request and one CLIENT span
//! per outbound request, with Envoy's tags, Istio's names and sampling, W3C / B3 / baggage /
//! `x-request-id` propagation, exported over OTLP through the collector's own exporters.
//!
//! Start at [`observer()`]: it turns the sidecar's [`SidecarConfig`] into an [`Observer`] for the
//! proxy and a [`TracingRuntime`] that starts and stops the export side and exposes the
//! counters. Then, in the order a request meets them:
//!
//! 1. `observer.rs`: the [`Observer`] implementation, which runs each step below;
//! 2. `context.rs`: read the caller's context, make this proxy's span, write it into the
//!    forwarded request (the next hop's parent is this proxy's span);
//! 3. `stitching.rs`: outbound calls the app made without trace context continue the inbound
//!    trace of the same `x-request-id` (`meshtrace.stitched=true`);
//! 4. `sampling.rs`: never/always-trace paths, force headers, the parent's flag, Envoy's
//!    request-id sampling;
//! 5. `tags.rs`, `local.rs`, `span.rs`: the span's attributes, status, name and ids;
//! 6. `export.rs` (with `export/staging.rs`), `exporter.rs`: the bounded span buffer, batching,
//!    and the OTLP exporter;
//! 7. `counters.rs`: what the runtime counts.
//!
//! Tracing never slows or fails a request: nothing on the request path waits, and a span that
//! does not fit in the buffer is dropped and counted.

pub(crate) mod context;
mod counters;
mod export;
mod exporter;
mod local;
mod observer;
mod protobuf;
pub(crate) mod sampling;
mod span;
mod stitching;
pub(crate) mod tags;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline::telemetry::Telemetry;

pub use counters::{DropReason, MAX_SERVICES, TraceMetrics};
pub use local::LocalInfo;

pub use crate::environment::Environment;

pub use crate::config::CANONICAL_REVISION_LABEL;
use crate::request_map::RequestMap;

use self::context::TraceIdLength;
use self::export::{BatchSettings, ExportQueue, SpanSink, export_queue};
use self::exporter::{ExporterContext, build_exporter, resource, zipkin_resource};
use self::observer::{DirectionTracer, KnownName, Tracer};
use self::sampling::{DirectionSampling, SamplingRules};
use self::stitching::Stitching;
use self::tags::{DirectionTags, Kind};
use crate::config::{DirectionSettings, Exporter, SidecarConfig};
use crate::observe::{Direction, Observer};
use crate::proxy::upstream;

/// Tracing could not be set up (an exporter's settings were refused, or it failed to start).
#[derive(Debug, Clone, thiserror::Error)]
#[error("tracing: {message}")]
pub struct TracingError {
    message: String,
}

impl TracingError {
    pub(crate) fn new(message: impl Into<String>) -> TracingError {
        TracingError { message: message.into() }
    }
}

/// What the config does not say: buffer sizes, the environment.
#[derive(Clone, Debug)]
pub struct TracingOptions {
    /// Where environment custom tags, exporter headers from `envName`, `OTEL_RESOURCE_ATTRIBUTES`
    /// and the pod variables of [`LocalInfo::new`] are read, once, at set-up.
    pub environment: Environment,
    /// The node id, zone and mesh/cluster ids; default [`LocalInfo::new`].
    pub local: Option<LocalInfo>,
    /// Spans buffered between the request path and an export task (default 2048).
    pub buffer_spans: usize,
    /// Most spans per export request (default 128: at 1,000 requests/s a batch still leaves
    /// every eighth of a second, and the export request, built and sent in one piece, stays
    /// small; 512 cost the sidecar 1.6 MiB more memory under load).
    pub batch_max_spans: usize,
    /// Longest a span waits for its batch (default 1 s).
    pub batch_timeout: Duration,
    /// The exporter's sending queue, in spans (default 8192).
    pub export_queue_spans: u64,
    /// In-flight inbound requests remembered for stitching (default 16384).
    pub stitching_capacity: usize,
}

impl Default for TracingOptions {
    fn default() -> Self {
        TracingOptions {
            environment: Environment::Process,
            local: None,
            buffer_spans: 2048,
            batch_max_spans: 128,
            batch_timeout: Duration::from_secs(1),
            export_queue_spans: 8192,
            stitching_capacity: 16_384,
        }
    }
}

/// The export side of tracing: start it once the runtime is up, shut it down last (after the
/// listeners stop) so buffered spans are sent.
pub struct TracingRuntime {
    queues: Vec<ExportQueue>,
    metrics: TraceMetrics,
    telemetry: Arc<Telemetry>,
    warnings: Vec<String>,
}

/// The tracing observer for `config` with the default [`TracingOptions`], and its runtime.
pub fn observer(
    config: &SidecarConfig,
) -> Result<(Arc<dyn Observer>, TracingRuntime), TracingError> {
    observer_with(config, TracingOptions::default())
}

/// The tracing observer for `config` with `options`, and its runtime. Builds (but does not
/// start) one exporter per distinct exporter setting; needs no Tokio runtime.
pub fn observer_with(
    config: &SidecarConfig,
    options: TracingOptions,
) -> Result<(Arc<dyn Observer>, TracingRuntime), TracingError> {
    let rules = &config.tracing;
    let local =
        options.local.clone().unwrap_or_else(|| LocalInfo::new(config, &options.environment));
    let metrics = TraceMetrics::default();
    let mut exports = Exports {
        config,
        options: &options,
        metrics: &metrics,
        telemetry: Arc::new(Telemetry::new()),
        sinks: Vec::new(),
        queues: Vec::new(),
        warnings: Vec::new(),
    };
    // One exporter when both directions export to the same place, as Envoy's one tracer.
    let shared = rules.inbound.enabled
        && rules.outbound.enabled
        && rules.inbound.exporter == rules.outbound.exporter;
    let mut tracers = [None, None];
    for (slot, direction) in [Direction::Inbound, Direction::Outbound].into_iter().enumerate() {
        let (settings, label) = match direction {
            Direction::Inbound => (&rules.inbound, "inbound"),
            Direction::Outbound => (&rules.outbound, "outbound"),
        };
        if !settings.enabled {
            continue;
        }
        let sink = match &settings.exporter {
            Some(exporter) => {
                Some(exports.sink(exporter, label, if shared { "sidecar" } else { label })?)
            }
            None => None,
        };
        tracers[slot] =
            Some(direction_tracer(direction, settings, config, &local, &options, &metrics, sink));
    }
    for warning in &exports.warnings {
        tracing::warn!(warning = %warning, "tracing set-up");
    }
    let [inbound, outbound] = tracers;
    let tracer = Tracer {
        inbound,
        outbound,
        rules: SamplingRules::new(rules),
        stitching: rules.stitching.then(|| Stitching::new(options.stitching_capacity)),
        inject: rules.propagators,
        inbound_host: local.inbound_host.clone(),
        inbound_port: config.listeners.inbound.as_ref().map(|inbound| inbound.app.port),
        inbound_service_port: local.inbound_service_port,
        metrics: metrics.clone(),
    };
    let runtime = TracingRuntime {
        queues: exports.queues,
        metrics: metrics.clone(),
        telemetry: exports.telemetry,
        warnings: exports.warnings,
    };
    Ok((Arc::new(tracer), runtime))
}

/// The exporters being built.
struct Exports<'a> {
    config: &'a SidecarConfig,
    options: &'a TracingOptions,
    metrics: &'a TraceMetrics,
    telemetry: Arc<Telemetry>,
    /// One sink per distinct exporter setting.
    sinks: Vec<(Exporter, SpanSink)>,
    queues: Vec<ExportQueue>,
    warnings: Vec<String>,
}

impl Exports<'_> {
    /// The sink of `exporter`, built on first use as `otlp/<id>`, `otlphttp/<id>` or
    /// `zipkin/<id>`.
    fn sink(
        &mut self,
        exporter: &Exporter,
        label: &str,
        id: &str,
    ) -> Result<SpanSink, TracingError> {
        if let Some((_, sink)) = self.sinks.iter().find(|(known, _)| known == exporter) {
            return Ok(sink.clone());
        }
        let env = &self.options.environment;
        let context = ExporterContext {
            env,
            queue_spans: self.options.export_queue_spans,
            telemetry: &self.telemetry,
        };
        let path = format!("tracing.{label}.exporter");
        let built = build_exporter(exporter, id, &path, &context, &mut self.warnings)?;
        let service_name = &self.config.tracing.service_name;
        let resource = match exporter {
            Exporter::Otlp(otlp) => resource(
                service_name,
                &self.config.workload,
                &otlp.resource_detectors,
                env,
                &mut self.warnings,
            ),
            Exporter::Zipkin(_) => zipkin_resource(service_name),
        };
        let batch = BatchSettings {
            buffer: self.options.buffer_spans,
            max_spans: self.options.batch_max_spans,
            timeout: self.options.batch_timeout,
        };
        let (sink, queue) =
            export_queue(format!("tracing/{id}"), built, resource, batch, self.metrics);
        self.sinks.push((exporter.clone(), sink.clone()));
        self.queues.push(queue);
        Ok(sink)
    }
}

/// The tracer of one direction.
fn direction_tracer(
    direction: Direction,
    settings: &DirectionSettings,
    config: &SidecarConfig,
    local: &LocalInfo,
    options: &TracingOptions,
    metrics: &TraceMetrics,
    sink: Option<SpanSink>,
) -> Arc<DirectionTracer> {
    let kind = match direction {
        Direction::Inbound => Kind::Server,
        Direction::Outbound => Kind::Client,
    };
    Arc::new(DirectionTracer {
        kind,
        sampling: DirectionSampling::new(settings),
        tags: DirectionTags::new(settings, &config.workload, local, &options.environment),
        propagate: !settings.disable_context_propagation,
        start_traces: settings.start_traces,
        trace_id_length: match &settings.exporter {
            Some(Exporter::Zipkin(zipkin)) if zipkin.trace_id_64bit => TraceIdLength::Bits64,
            _ => TraceIdLength::Bits128,
        },
        sink,
        started: metrics.started_handle(direction),
        no_exporter: metrics.dropped_handle(DropReason::NoExporter),
        names: known_names(direction, kind, config, local),
    })
}

/// The span names of the clusters `direction`'s requests go to that are known from the config:
/// the inbound app's, or the services table's.
fn known_names(
    direction: Direction,
    kind: Kind,
    config: &SidecarConfig,
    local: &LocalInfo,
) -> RequestMap<Box<str>, KnownName> {
    let clusters: Vec<String> = match direction {
        Direction::Inbound => config
            .listeners
            .inbound
            .iter()
            .map(|inbound| upstream::inbound_cluster(&inbound.app))
            .collect(),
        Direction::Outbound => config.services.iter().map(upstream::outbound_cluster).collect(),
    };
    clusters
        .into_iter()
        .filter_map(|cluster| {
            let inbound = (local.inbound_host.as_str(), local.inbound_service_port);
            let name = span::cluster_operation_name(kind, &cluster, inbound)?;
            Some((cluster.into_boxed_str(), KnownName::new(name)))
        })
        .collect()
}

// === impl TracingRuntime ===

impl TracingRuntime {
    /// Starts every exporter and its batching task. Call once, inside a Tokio runtime.
    pub async fn start(&mut self) -> Result<(), TracingError> {
        for queue in &mut self.queues {
            queue.start().await.map_err(|error| TracingError::new(error.to_string()))?;
        }
        Ok(())
    }

    /// Stops taking spans, sends what is buffered and drains the exporters, by `deadline`.
    /// Spans finished after this are dropped and counted (`shutdown`).
    pub async fn shutdown(&mut self, deadline: Instant) {
        for queue in &mut self.queues {
            queue.shutdown(deadline).await;
        }
    }

    /// The tracer's counters.
    pub fn metrics(&self) -> &TraceMetrics {
        &self.metrics
    }

    /// A handle on every tracing metric, for the admin endpoint's stats encoder.
    pub fn stats(&self) -> TracingStats {
        TracingStats { metrics: self.metrics.clone(), telemetry: self.telemetry.clone() }
    }

    /// Set-up problems worth telling the operator (an unsupported exporter, a missing
    /// environment variable); each was also logged.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Every tracing metric: the tracer's counters ([`TraceMetrics`]) and its exporters'
/// `otelcol_exporter_*` metrics. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct TracingStats {
    metrics: TraceMetrics,
    telemetry: Arc<Telemetry>,
}

impl TracingStats {
    /// Appends these metrics to an OpenMetrics text, keeping exactly one `# EOF` at the end,
    /// so another component's text (the mesh metrics) and this one make one valid page:
    /// `let mut text = mesh.encode(); stats.append_to(&mut text);`.
    pub fn append_to(&self, out: &mut String) {
        const EOF: &str = "# EOF\n";
        if out.ends_with(EOF) {
            out.truncate(out.len() - EOF.len());
        }
        self.metrics.encode(out);
        let exporters = self.telemetry.encode();
        out.push_str(exporters.strip_suffix(EOF).unwrap_or(&exporters));
        out.push_str(EOF);
    }
}
