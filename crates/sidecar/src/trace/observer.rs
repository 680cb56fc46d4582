//! The [`Observer`] the proxy calls: per request it reads the caller's context, stitches
//! context-less outbound calls, decides sampling, makes this proxy's span and writes it into the
//! forwarded request; per response head it does what Envoy's connection manager does to it
//! (below); per completion it builds the OTLP span and hands it to the export buffer.
//!
//! The response head, as Envoy's `ActiveStream::encodeHeaders` and
//! `ConnectionManagerUtility::mutateResponseHeaders` treat it (mesh-tracing-spec §1.2, §1.6):
//!
//! * a request that carried `x-envoy-force-trace` gets its `x-request-id` (as forwarded, with
//!   the trace reason packed) back in the response, in both directions;
//! * inbound, the span's operation goes back to the caller in `x-envoy-decorator-operation`,
//!   unless the caller named the operation itself in the request (ingress decorator);
//! * outbound, a callee's `x-envoy-decorator-operation` renames the CLIENT span and is removed,
//!   so the app never sees it (egress decorator).
//!
//! Everything here runs on the request path: no I/O, no waiting, no lock held longer than one
//! map operation; a span that cannot be buffered is dropped and counted.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::HeaderValue;
use prometheus_client::metrics::counter::Counter;
use propagation::{Propagators, request_id};
use rand::Rng;

use super::context::{self, DECORATOR_OPERATION, ProxySpan, TraceIdLength};
use super::counters::TraceMetrics;
use super::export::SpanSink;
use super::sampling::{DirectionSampling, SamplingInput, SamplingRules, parent_decision};
use super::span::{self, AttributeFields, Finished, Naming};
use super::stitching::{Registration, Stitching};
use super::tags::{DirectionTags, Kind, RequestInfo, ResponseInfo, TagSink, span_tags, write_tags};
use crate::observe::{Completion, Direction, Observation, Observer, RequestView, ResponseView};
use crate::received::Known;
use crate::request_map::RequestMap;

/// The tracing observer.
pub(crate) struct Tracer {
    pub(crate) inbound: Option<Arc<DirectionTracer>>,
    pub(crate) outbound: Option<Arc<DirectionTracer>>,
    pub(crate) rules: SamplingRules,
    /// `None` when stitching is off.
    pub(crate) stitching: Option<Arc<Stitching>>,
    /// The formats written on every forwarded request (plus those it arrived with).
    pub(crate) inject: Propagators,
    /// This workload's service host and port, for inbound span names.
    pub(crate) inbound_host: String,
    pub(crate) inbound_port: Option<u16>,
    /// The Service's port, when the config names the Service (`spec.inbound.service`).
    pub(crate) inbound_service_port: Option<u16>,
    pub(crate) metrics: TraceMetrics,
}

/// One traced direction.
pub(crate) struct DirectionTracer {
    pub(crate) kind: Kind,
    pub(crate) sampling: DirectionSampling,
    pub(crate) tags: DirectionTags,
    /// False with Telemetry `disableContextPropagation`: only `x-request-id` is written.
    pub(crate) propagate: bool,
    /// False the Linkerd way: a request without trace context is left alone.
    pub(crate) start_traces: bool,
    /// How long the ids of the traces this direction starts are.
    pub(crate) trace_id_length: TraceIdLength,
    /// `None` when the direction has no exporter: spans are counted as dropped.
    pub(crate) sink: Option<SpanSink>,
    pub(crate) started: Counter,
    pub(crate) no_exporter: Counter,
    /// The span names of the clusters known up front (the inbound app's, the services
    /// table's), by cluster; other clusters are named per request.
    pub(crate) names: RequestMap<Box<str>, KnownName>,
}

/// A span name worked out once, with its header value.
pub(crate) struct KnownName {
    /// Shared by every span of the cluster, not copied per span.
    pub(crate) name: Arc<str>,
    /// `None` when the name is not a valid header value (it is then not written).
    pub(crate) header: Option<HeaderValue>,
}

impl KnownName {
    pub(crate) fn new(name: String) -> KnownName {
        let header = HeaderValue::from_str(&name).ok();
        KnownName { name: name.into(), header }
    }
}

/// One exchange as the tracer follows it. The default follows nothing (a direction without
/// tracing).
#[derive(Default)]
pub(crate) struct Traced {
    /// What the response head gets on its way downstream.
    response_headers: ResponseHeaders,
    /// The span, when the exchange is sampled.
    recording: Option<Recording>,
    /// Keeps an inbound request stitchable while it is in flight (sampled or not); dropped
    /// with the exchange, which ends the window.
    _registration: Option<Registration>,
}

/// The tracer's changes to the response head.
#[derive(Default)]
struct ResponseHeaders {
    /// `x-request-id` to return: the request carried `x-envoy-force-trace`.
    request_id: Option<HeaderValue>,
    /// Inbound: the operation to send back in `x-envoy-decorator-operation`.
    operation: Option<HeaderValue>,
    /// Outbound: a callee's `x-envoy-decorator-operation` names the span and is removed.
    adopt_operation: bool,
}

/// A sampled exchange's span in the making.
struct Recording {
    tracer: Arc<DirectionTracer>,
    name: Arc<str>,
    span: ProxySpan,
    remote_parent: bool,
    start: SystemTime,
    request: RequestInfo,
    response: Option<ResponseInfo>,
}

/// Sets a generated `x-request-id` on a request that has none, as Envoy's connection manager
/// does for every request whether or not its listener traces (`generate_request_id`, default
/// true, which Istio leaves on): apps and access logs get a request id with tracing off too.
/// The id carries no trace decision (`'4'` at index 14, a plain UUIDv4).
fn set_missing_request_id(request: &mut RequestView<'_>) {
    if request.received.has(Known::RequestId) {
        return;
    }
    let id = request_id::generate(rand::rng().random());
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.head.headers.insert(request_id::HEADER, value);
    }
}

// === impl Tracer ===

impl Observer for Tracer {
    fn request(&self, request: &mut RequestView<'_>) -> Box<dyn Observation> {
        Box::new(self.observe(request))
    }
}

impl Tracer {
    /// Runs the request steps; the returned exchange does the response and completion ones.
    pub(crate) fn observe(&self, request: &mut RequestView<'_>) -> Traced {
        let tracer = match request.direction {
            Direction::Inbound => self.inbound.as_ref(),
            Direction::Outbound => self.outbound.as_ref(),
        };
        let Some(tracer) = tracer else {
            set_missing_request_id(request);
            return Traced::default();
        };
        let mut rng = rand::rng();
        let received = request.received;
        let incoming = context::read(&request.head.headers, received, &mut rng);
        self.metrics.rejected(&incoming.extracted.errors);
        let extracted = &incoming.extracted;
        // The caller's operation name renames an inbound span and never reaches the app.
        let decorated = match request.direction {
            Direction::Inbound if received.has(Known::DecoratorOperation) => {
                request.head.headers.remove(DECORATOR_OPERATION)
            }
            _ => None,
        };
        let authority = request.authority().map(str::to_owned);

        let mut parent = extracted.context;
        let mut parent_sampled = parent_decision(extracted);
        let mut stitched = false;
        if request.direction == Direction::Outbound
            && parent.is_none()
            && let Some(stitching) = &self.stitching
        {
            let service = destination_service(request.upstream_cluster, authority.as_deref());
            // A generated id cannot name an inbound request.
            let found = if incoming.generated_request_id {
                None
            } else {
                stitching.lookup(&incoming.request_id)
            };
            match found {
                Some(inbound) => {
                    parent = Some(inbound);
                    parent_sampled = Some(inbound.sampled());
                    stitched = true;
                    self.metrics.stitched(service);
                }
                // Traced the Linkerd way, inbound requests without context are never
                // registered: a miss says nothing about the app.
                None if !tracer.start_traces => {}
                None => self.metrics.unstitchable(service),
            }
        }

        if parent.is_none() && !tracer.start_traces {
            // Linkerd never starts a trace: no span, no header written, not even a request id.
            return Traced::default();
        }

        let input = SamplingInput {
            path: request.head.uri.path(),
            headers: &request.head.headers,
            received,
            request_id: &incoming.request_id,
            parent_sampled,
            b3_debug: extracted.b3_debug,
        };
        let decision = self.rules.decide(&tracer.sampling, &input, &mut rng);
        let request_id = decision.rewritten_request_id.as_deref().unwrap_or(&incoming.request_id);
        let span = context::new_span(
            parent,
            &extracted.tracestate,
            extracted.b3_debug,
            decision.sampled,
            tracer.trace_id_length,
            &mut rng,
        );

        let headers = &mut request.head.headers;
        let forced = received.has(Known::ForceTrace);
        let caller_operation = decorated
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .filter(|operation| !operation.is_empty());
        let known = match caller_operation {
            Some(_) => None,
            None => tracer.names.get(request.upstream_cluster),
        };
        let computed;
        let name: &str = match (caller_operation, known) {
            (Some(operation), _) => operation,
            (None, Some(known)) => &known.name,
            (None, None) => {
                computed = span::operation_name(&Naming {
                    kind: tracer.kind,
                    upstream_cluster: request.upstream_cluster,
                    authority: authority.as_deref(),
                    inbound_host: &self.inbound_host,
                    inbound_port: self.inbound_service_port,
                    fallback_port: self.inbound_port.unwrap_or(request.local.port()),
                });
                &computed
            }
        };
        let name_header = || match known {
            Some(known) => known.header.clone(),
            None => HeaderValue::from_str(name).ok(),
        };
        if tracer.propagate {
            context::write(&span, self.inject, &incoming, request_id, headers);
            if request.direction == Direction::Outbound
                && let Some(value) = name_header()
            {
                headers.insert(DECORATOR_OPERATION, value);
            }
        } else {
            context::write_request_id(&incoming, request_id, headers);
        }

        // Envoy's ingress decorator goes back to the caller unless the caller named the
        // operation itself; with context propagation off nothing but the request id is written.
        let inbound = request.direction == Direction::Inbound;
        let response_headers = ResponseHeaders {
            request_id: forced.then(|| HeaderValue::from_str(request_id).ok()).flatten(),
            operation: (inbound && tracer.propagate && caller_operation.is_none())
                .then(name_header)
                .flatten(),
            adopt_operation: !inbound,
        };
        let registration = match (request.direction, &self.stitching) {
            (Direction::Inbound, Some(stitching)) => stitching.register(request_id, span.context),
            _ => None,
        };
        let recording = decision.sampled.then(|| {
            tracer.started.inc();
            Recording {
                tracer: tracer.clone(),
                // A known name is shared, not copied (`known` is `None` when the caller named
                // the operation).
                name: known.map_or_else(|| Arc::from(name), |known| known.name.clone()),
                remote_parent: parent.is_some() && !stitched,
                span,
                start: request.started,
                request: RequestInfo::read(&tracer.tags, request, stitched),
                response: None,
            }
        });
        Traced { response_headers, recording, _registration: registration }
    }
}

/// The service an outbound request goes to: the host of an Istio outbound cluster name, else
/// the authority's host.
fn destination_service<'a>(cluster: &'a str, authority: Option<&'a str>) -> &'a str {
    let mut parts = cluster.split('|');
    if let (Some("outbound"), Some(_), Some(_), Some(host)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
        && !host.is_empty()
    {
        return host;
    }
    match authority {
        Some(authority) => match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        },
        None => "unknown",
    }
}

// === impl Traced ===

impl Observation for Traced {
    fn response(&mut self, response: &mut ResponseView<'_>) {
        let changes = &mut self.response_headers;
        let headers = &mut *response.headers;
        if changes.adopt_operation
            && response.received.has(Known::DecoratorOperation)
            && let Some(operation) = headers.remove(DECORATOR_OPERATION)
            && let Some(recording) = self.recording.as_mut()
            && let Ok(operation) = operation.to_str()
            && !operation.is_empty()
        {
            recording.name = Arc::from(operation);
        }
        if let Some(operation) = changes.operation.take() {
            headers.insert(DECORATOR_OPERATION, operation);
        }
        if let Some(id) = changes.request_id.take() {
            headers.insert(request_id::HEADER, id);
        }
        if let Some(recording) = self.recording.as_mut() {
            recording.response = Some(ResponseInfo::read(response));
        }
    }

    fn complete(self: Box<Self>, completion: &Completion<'_>) {
        if let Some(recording) = self.recording {
            recording.finish(completion);
        }
    }
}

thread_local! {
    /// A worker's buffer for the attribute fields of the span being made, reused span after
    /// span (a span's are about 1 KiB, over what glibc's per-thread cache keeps).
    static ATTRIBUTES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The most a worker's [`ATTRIBUTES`] buffer keeps between spans: one span with a huge tag
/// (a long URL, a large custom header) must not hold its memory for the worker's life.
const ATTRIBUTES_KEPT: usize = 16 * 1024;

impl Recording {
    /// Builds the span and hands it to the export buffer (or counts it as dropped).
    fn finish(self, completion: &Completion<'_>) {
        let Some(sink) = &self.tracer.sink else {
            self.tracer.no_exporter.inc();
            return;
        };
        ATTRIBUTES.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut attributes) => {
                attributes.clear();
                self.submit(sink, completion, &mut attributes);
                attributes.clear();
                attributes.shrink_to(ATTRIBUTES_KEPT);
            }
            // Only if making a span ever made another on the same thread.
            Err(_) => self.submit(sink, completion, &mut Vec::new()),
        });
    }

    /// Writes the span's attributes into `attributes` (empty), then the span into `sink`.
    fn submit(&self, sink: &SpanSink, completion: &Completion<'_>, attributes: &mut Vec<u8>) {
        let tracer = &self.tracer;
        let response = self.response.as_ref();
        let mut fields = AttributeFields(attributes);
        let status = if tracer.tags.replaces() {
            let list = span_tags(&tracer.tags, tracer.kind, &self.request, response, completion);
            for (key, value) in list.attributes {
                fields.tag(&key, value);
            }
            list.status
        } else {
            write_tags(&tracer.tags, tracer.kind, &self.request, response, completion, &mut fields)
        };
        sink.submit(&Finished {
            kind: tracer.kind,
            name: &self.name,
            span: &self.span,
            remote_parent: self.remote_parent,
            start: self.start,
            duration: completion.duration,
            attributes,
            status,
        });
    }
}

#[cfg(test)]
mod tests;
