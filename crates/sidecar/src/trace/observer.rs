//! The [`Observer`] the proxy calls: per request it reads the caller's context, stitches
//! context-less outbound calls, decides sampling, makes this proxy's span and writes it into the
//! forwarded request; per completion it builds the OTLP span and hands it to the export channel.
//!
//! Everything here runs on the request path: no I/O, no waiting, no lock held longer than one
//! map operation; a span that cannot be buffered is dropped and counted.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{HOST, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use propagation::Propagators;

use super::context::{self, DECORATOR_OPERATION, ProxySpan};
use super::counters::TraceMetrics;
use super::export::SpanSink;
use super::sampling::{DirectionSampling, SamplingInput, SamplingRules, parent_decision};
use super::span::{self, Finished, Naming};
use super::stitching::{Registration, Stitching};
use super::tags::{DirectionTags, Kind, RequestInfo, ResponseInfo, span_tags};
use crate::observe::{Completion, Direction, Observation, Observer, RequestView, ResponseView};

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
    pub(crate) metrics: TraceMetrics,
}

/// One traced direction.
pub(crate) struct DirectionTracer {
    pub(crate) kind: Kind,
    pub(crate) sampling: DirectionSampling,
    pub(crate) tags: DirectionTags,
    /// False with Telemetry `disableContextPropagation`: only `x-request-id` is written.
    pub(crate) propagate: bool,
    /// `None` when the direction's exporter is not supported: spans are counted as dropped.
    pub(crate) sink: Option<SpanSink>,
    pub(crate) started: Counter,
    pub(crate) no_exporter: Counter,
}

/// An exchange that is not recorded (direction off, or not sampled and nothing to undo).
struct Untraced;

/// An unsampled inbound exchange that other requests may stitch to while it is in flight.
struct Registered {
    _registration: Registration,
}

/// A sampled exchange.
struct Recording {
    tracer: Arc<DirectionTracer>,
    name: String,
    span: ProxySpan,
    remote_parent: bool,
    start: SystemTime,
    request: RequestInfo,
    response: Option<ResponseInfo>,
    _registration: Option<Registration>,
}

// === impl Tracer ===

impl Observer for Tracer {
    fn request(&self, request: &mut RequestView<'_>) -> Box<dyn Observation> {
        let tracer = match request.direction {
            Direction::Inbound => self.inbound.as_ref(),
            Direction::Outbound => self.outbound.as_ref(),
        };
        let Some(tracer) = tracer else { return Box::new(Untraced) };
        let mut rng = rand::rng();
        let incoming = context::read(&request.head.headers, &mut rng);
        self.metrics.rejected(&incoming.extracted.errors);
        let extracted = &incoming.extracted;
        // The caller's operation name renames an inbound span and never reaches the app.
        let decorated = match request.direction {
            Direction::Inbound => request.head.headers.remove(DECORATOR_OPERATION),
            Direction::Outbound => None,
        };
        let authority = authority(request).map(str::to_owned);

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
                None => self.metrics.unstitchable(service),
            }
        }

        let input = SamplingInput {
            path: request.head.uri.path(),
            headers: &request.head.headers,
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
            &mut rng,
        );

        let headers = &mut request.head.headers;
        let name = match decorated.as_ref().and_then(|value| value.to_str().ok()) {
            Some(operation) if !operation.is_empty() => operation.to_owned(),
            _ => span::operation_name(&Naming {
                kind: tracer.kind,
                upstream_cluster: request.upstream_cluster,
                authority: authority.as_deref(),
                inbound_host: &self.inbound_host,
                fallback_port: self.inbound_port.unwrap_or(request.local.port()),
            }),
        };
        if tracer.propagate {
            context::write(&span, self.inject, request_id, headers);
            if request.direction == Direction::Outbound
                && let Ok(value) = HeaderValue::from_str(&name)
            {
                headers.insert(DECORATOR_OPERATION, value);
            }
        } else {
            context::write_request_id(request_id, headers);
        }

        let registration = match (request.direction, &self.stitching) {
            (Direction::Inbound, Some(stitching)) => stitching.register(request_id, span.context),
            _ => None,
        };
        if !decision.sampled {
            return match registration {
                Some(registration) => Box::new(Registered { _registration: registration }),
                None => Box::new(Untraced),
            };
        }
        tracer.started.inc();
        Box::new(Recording {
            tracer: tracer.clone(),
            name,
            remote_parent: parent.is_some() && !stitched,
            span,
            start: request.started,
            request: RequestInfo::read(&tracer.tags, request, stitched),
            response: None,
            _registration: registration,
        })
    }
}

/// The request's `:authority`, else its `Host`.
fn authority<'a>(request: &'a RequestView<'_>) -> Option<&'a str> {
    match request.head.uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => request.head.headers.get(HOST).and_then(|value| value.to_str().ok()),
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

// === impl Observations ===

impl Observation for Untraced {
    fn response(&mut self, _response: &ResponseView<'_>) {}

    fn complete(self: Box<Self>, _completion: &Completion<'_>) {}
}

impl Observation for Registered {
    fn response(&mut self, _response: &ResponseView<'_>) {}

    /// Dropping the registration ends the stitching window.
    fn complete(self: Box<Self>, _completion: &Completion<'_>) {}
}

impl Observation for Recording {
    fn response(&mut self, response: &ResponseView<'_>) {
        self.response = Some(ResponseInfo::read(response));
    }

    fn complete(self: Box<Self>, completion: &Completion<'_>) {
        let tracer = &self.tracer;
        let Some(sink) = &tracer.sink else {
            tracer.no_exporter.inc();
            return;
        };
        let tags =
            span_tags(&tracer.tags, tracer.kind, &self.request, self.response.as_ref(), completion);
        sink.submit(span::build(Finished {
            kind: tracer.kind,
            name: self.name,
            span: &self.span,
            remote_parent: self.remote_parent,
            start: self.start,
            duration: completion.duration,
            tags,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_service_comes_from_the_cluster_then_the_authority() {
        let cluster = "outbound|9080||reviews.default.svc.cluster.local";
        assert_eq!(destination_service(cluster, Some("x:1")), "reviews.default.svc.cluster.local");
        assert_eq!(
            destination_service("PassthroughCluster", Some("api.example.com:443")),
            "api.example.com"
        );
        assert_eq!(
            destination_service("PassthroughCluster", Some("api.example.com")),
            "api.example.com"
        );
        assert_eq!(destination_service("outbound|80||", None), "unknown");
    }
}
