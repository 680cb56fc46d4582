//! Fuzz entry points, one per parser: each takes arbitrary bytes, runs the parser and checks the
//! round-trip invariants. They panic only when an invariant breaks, which is what a fuzzer (for
//! example `cargo fuzz` with a target calling one of them) is looking for; the property tests run
//! them on random input too.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::b3::{self, B3, SamplingState};
use crate::baggage::{self, Baggage, Dropped};
use crate::propagator::{self, Outgoing, Propagator, Propagators};
use crate::request_id::{self, SamplingConfig, TraceReason, TraceRequest};
use crate::traceparent;
use crate::tracestate::{self, KeyGrammar, TraceState};

/// Splits fuzz input into header field values at `\n`.
fn fields(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
}

/// A header map with one field per line (lines that are not valid header values are skipped).
fn header_map(name: HeaderName, data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for field in fields(data) {
        if let Ok(value) = HeaderValue::from_bytes(field) {
            map.append(name.clone(), value);
        }
    }
    map
}

/// `traceparent`: a parsed context formats to 55 characters that parse back to it.
pub fn traceparent(data: &[u8]) {
    if let Ok(context) = traceparent::parse_bytes(data) {
        let text = traceparent::format(&context);
        assert_eq!(text.len(), traceparent::VERSION_00_LEN);
        assert_eq!(traceparent::parse(&text), Ok(context));
    }
}

/// `tracestate` (fields separated by `\n`): a parsed list formats and parses back to itself, and
/// an update keeps the limits.
pub fn tracestate(data: &[u8]) {
    for grammar in [KeyGrammar::Level2, KeyGrammar::Level1] {
        let Ok(state) = TraceState::parse_fields(fields(data), grammar) else { continue };
        let text = state.to_string();
        assert_eq!(text.len(), state.header_len());
        assert!(state.len() <= tracestate::MAX_MEMBERS);
        assert_eq!(TraceState::parse_fields([text.as_bytes()], grammar).as_ref(), Ok(&state));
        let mut updated = state.clone();
        assert!(updated.update("fuzz", "1").is_ok());
        assert!(updated.len() <= tracestate::MAX_MEMBERS);
        assert!(updated.header_len() <= tracestate::MAX_HEADER_LEN);
    }
}

/// `baggage` (fields separated by `\n`): what is kept fits the limits and formats to a header that
/// parses back to the same members with nothing dropped; [`baggage::pass_through`] keeps as many
/// members.
pub fn baggage(data: &[u8]) {
    let parsed = Baggage::parse_fields(fields(data));
    let text = parsed.baggage.to_string();
    assert!(parsed.baggage.len() <= baggage::MAX_MEMBERS);
    assert!(text.len() <= baggage::MAX_BYTES);
    let again = Baggage::parse(&text);
    assert_eq!(again.dropped, Dropped::default());
    assert_eq!(again.baggage, parsed.baggage);
    let (value, dropped) = baggage::pass_through(&header_map(baggage::HEADER, data));
    if let Some(value) = value {
        assert!(value.len() <= baggage::MAX_BYTES);
        assert_eq!(Baggage::parse_fields([value.as_bytes()]).dropped.invalid, 0);
    }
    assert!(dropped.invalid <= data.len());
}

/// B3: the single header parses and formats consistently; the first five lines, used as the five
/// `X-B3-*` headers, inject and extract back to the same context.
pub fn b3(data: &[u8]) {
    if let Ok(B3::Context(context)) = b3::parse_single_bytes(data) {
        let mut expected = context;
        if expected.sampling == SamplingState::Defer {
            expected.parent_span_id = None;
        }
        assert_eq!(b3::parse_single(&b3::format_single(&context)), Ok(B3::Context(expected)));
    }
    let mut map = HeaderMap::new();
    for (name, field) in b3::MULTI_HEADERS.into_iter().zip(fields(data)) {
        if let Ok(value) = HeaderValue::from_bytes(field) {
            map.insert(name, value);
        }
    }
    if let Ok(Some(B3::Context(context))) = b3::extract_multi(&map) {
        let mut out = HeaderMap::new();
        b3::inject_multi(&context, &mut out);
        assert_eq!(b3::extract_multi(&out), Ok(Some(B3::Context(context))));
    }
}

/// `x-request-id`: reading never panics, packing a reason reads back, the decision is consistent.
pub fn request_id(data: &[u8]) {
    let id = String::from_utf8_lossy(data);
    let received = request_id::trace_reason(&id);
    for reason in [TraceReason::Sampling, TraceReason::NotTraceable] {
        if let Some(packed) = request_id::with_trace_reason(&id, reason) {
            assert_eq!(request_id::trace_reason(&packed), reason);
            assert_eq!(request_id::integer(&packed), request_id::integer(&id));
        }
    }
    let always = request_id::sampled_by_request_id(&id, 100.0);
    assert_eq!(always, request_id::integer(&id).is_some());
    assert!(!request_id::sampled_by_request_id(&id, 0.0));
    let config = SamplingConfig { random_percentage: 0.0, ..SamplingConfig::default() };
    let decision = request_id::decide(Some(&id), &config, TraceRequest::default());
    assert_eq!(decision.reason, received, "nothing asks for a new reason");
}

/// Full extraction over a header map built from `name: value` lines, then injection of what was
/// found and extraction again.
pub fn extract(data: &[u8]) {
    let mut map = HeaderMap::new();
    for line in fields(data) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    let all: Propagators = Propagator::ALL.into_iter().collect();
    let extracted = propagator::extract(&map, all);
    if let (Some(context), Some(source)) = (extracted.context, extracted.source) {
        let outgoing = Outgoing::new(context)
            .with_tracestate(&extracted.tracestate)
            .with_baggage(&extracted.baggage)
            .with_parent_span_id(extracted.parent_span_id)
            .with_debug(extracted.b3_debug);
        let only = Propagators::NONE.with(source).with(Propagator::Baggage);
        let mut out = HeaderMap::new();
        propagator::inject(&outgoing, only, &mut out);
        let again = propagator::extract(&out, only);
        assert_eq!(again.context, Some(context));
        assert_eq!(again.tracestate, extracted.tracestate);
        assert_eq!(again.baggage, extracted.baggage);
    }
}
