//! Trace context in and out: read the caller's context, make this proxy span's context, and
//! write it into the forwarded request so that the next hop sees **this proxy's span** as its
//! parent.
//!
//! * Inbound, the forwarded request goes to the app: its `traceparent` carries the SERVER span,
//!   so the app's own spans, and through them its outbound calls, become children of it.
//! * Outbound, the forwarded request goes to the next service: its `traceparent` carries the
//!   CLIENT span, the parent of the next sidecar's SERVER span.
//!
//! Every trace format is read ([`extract_formats`]; precedence as in
//! [`propagation::propagator`]). On the way out the configured formats are written, plus every
//! trace format the request arrived with, so no stale header with the caller's span id is
//! forwarded: B3 in gives W3C and B3 out.
//! Following the W3C specification where Envoy does not: an invalid `traceparent` restarts the
//! trace (Envoy records nothing and forwards it), the Level 2 random flag is kept (Envoy drops
//! it), and `tracestate` is forwarded within its limits (32 members, 512 characters, whole
//! entries removed, large ones first). Baggage is passed through as received, within the W3C
//! limits. `x-request-id` is kept, or generated when absent (Envoy does both for internal
//! requests), and always forwarded.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use propagation::tracestate::{self, TraceState};
use propagation::{
    Extracted, Outgoing, Propagator, Propagators, SpanContext, SpanId, TraceFlags, TraceId,
    baggage, extract, inject_over, request_id,
};
use rand::Rng;

use crate::received::{Known, Received};

/// The trace formats a sidecar reads: all of them. Baggage is not parsed here: it is passed
/// through as received ([`write()`]).
pub(crate) fn extract_formats() -> Propagators {
    Propagator::ALL.into_iter().filter(|format| *format != Propagator::Baggage).collect()
}

/// `x-envoy-decorator-operation`: the caller's operation name for the span.
pub(crate) const DECORATOR_OPERATION: HeaderName =
    HeaderName::from_static("x-envoy-decorator-operation");

/// What a request carried.
pub(crate) struct Incoming {
    /// The propagation headers.
    pub(crate) extracted: Extracted,
    /// The known headers it arrived with: the formats it carries, and those whose stale
    /// headers need removing when the context is written ([`Received::may_hold`]).
    pub(crate) received: Received,
    /// The received `x-request-id`, or a generated one.
    pub(crate) request_id: String,
    /// Whether [`request_id`](Self::request_id) was generated here.
    pub(crate) generated_request_id: bool,
    /// Whether the request holds [`request_id`](Self::request_id) as its only `x-request-id`,
    /// byte for byte: forwarding it unchanged then needs no write. Every hop after a mesh's
    /// first receives its id this way.
    pub(crate) request_id_as_received: bool,
}

/// Reads a request's propagation headers and request id; generates the id when it is absent
/// or not text. `received` is what the request arrived with.
pub(crate) fn read(headers: &HeaderMap, received: Received, rng: &mut impl Rng) -> Incoming {
    let extracted = extract(headers, extract_formats().intersection(received.formats()));
    let (first, only) = match received.has(Known::RequestId) {
        true => {
            let mut values = headers.get_all(request_id::HEADER).iter();
            (values.next(), values.next().is_none())
        }
        false => (None, true),
    };
    let text = first.and_then(|value| value.to_str().ok());
    let id = text.map(str::trim).filter(|id| !id.is_empty());
    let (request_id, generated_request_id, request_id_as_received) = match id {
        Some(id) => (id.to_owned(), false, only && text.is_some_and(|text| text.len() == id.len())),
        None => (request_id::generate(rng.random()), true, false),
    };
    Incoming { extracted, received, request_id, generated_request_id, request_id_as_received }
}

/// This proxy's span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProxySpan {
    /// The span's own context: the trace, this span's id, the flags it forwards.
    pub(crate) context: SpanContext,
    /// The parent span, if the trace continues one.
    pub(crate) parent: Option<SpanId>,
    /// The `tracestate` forwarded with the context.
    pub(crate) tracestate: TraceState,
    /// B3 debug, forwarded as it came.
    pub(crate) b3_debug: bool,
}

/// How long the ids of the traces a sidecar starts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TraceIdLength {
    /// 128 bits, as W3C trace context and Envoy's OpenTelemetry tracer make them.
    Bits128,
    /// 64 bits (the high half zero), as Envoy's Zipkin tracer makes them when Istio's
    /// `enable64bitTraceId` is set.
    Bits64,
}

/// The span of a request whose caller sent `parent` (or nothing), sampled or not: a child
/// of the parent in the same trace with the random flag kept, or the root of a new trace
/// whose id is random (so the random flag is set, as W3C Level 2 asks; a 64-bit id's random
/// part is still its rightmost 7 bytes).
pub(crate) fn new_span(
    parent: Option<SpanContext>,
    tracestate: &TraceState,
    b3_debug: bool,
    sampled: bool,
    length: TraceIdLength,
    rng: &mut impl Rng,
) -> ProxySpan {
    let span_id = random_span_id(rng);
    match parent {
        Some(parent) => {
            let mut tracestate = tracestate.clone();
            tracestate.truncate(tracestate::MAX_HEADER_LEN);
            ProxySpan {
                context: SpanContext::new(
                    parent.trace_id,
                    span_id,
                    parent.flags.with_sampled(sampled),
                ),
                parent: Some(parent.span_id),
                tracestate,
                b3_debug,
            }
        }
        None => ProxySpan {
            context: SpanContext::new(
                random_trace_id(length, rng),
                span_id,
                TraceFlags::new(sampled, true),
            ),
            parent: None,
            tracestate: TraceState::new(),
            b3_debug,
        },
    }
}

/// A random, non-zero trace id of `length`.
fn random_trace_id(length: TraceIdLength, rng: &mut impl Rng) -> TraceId {
    loop {
        let bits = match length {
            TraceIdLength::Bits128 => rng.random::<u128>(),
            TraceIdLength::Bits64 => u128::from(rng.random::<u64>()),
        };
        if let Some(id) = TraceId::from_u128(bits) {
            return id;
        }
    }
}

/// A random, non-zero span id.
fn random_span_id(rng: &mut impl Rng) -> SpanId {
    loop {
        if let Some(id) = SpanId::from_u64(rng.random()) {
            return id;
        }
    }
}

/// Writes `span` into the forwarded request: the configured trace formats and those the
/// request carried (`incoming`, read before anything was written), the baggage passed through
/// (when `configured` has it), and `request_id` (see [`write_request_id`]).
pub(crate) fn write(
    span: &ProxySpan,
    configured: Propagators,
    incoming: &Incoming,
    request_id: &str,
    headers: &mut HeaderMap,
) {
    let carried = incoming.received.formats();
    let outgoing = Outgoing::new(span.context)
        .with_tracestate(&span.tracestate)
        .with_parent_span_id(span.parent)
        .with_debug(span.b3_debug);
    // The configured trace formats plus every one the request carries; baggage apart, below.
    let trace_formats = configured.union(carried).intersection(extract_formats());
    inject_over(&outgoing, trace_formats, incoming.received.may_hold(), headers);
    // Without a `baggage` header there is nothing to pass through or to drop.
    if configured.contains(Propagator::Baggage) && carried.contains(Propagator::Baggage) {
        match baggage::pass_through(headers).0 {
            Some(value) => {
                headers.insert(baggage::HEADER, value);
            }
            None => {
                headers.remove(baggage::HEADER);
            }
        }
    }
    write_request_id(incoming, request_id, headers);
}

/// Sets `x-request-id` to `request_id` (replacing every value received), unless the request
/// already holds exactly that.
pub(crate) fn write_request_id(incoming: &Incoming, request_id: &str, headers: &mut HeaderMap) {
    if incoming.request_id_as_received && request_id == incoming.request_id {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(request_id::HEADER, value);
    }
}

#[cfg(test)]
mod tests;
