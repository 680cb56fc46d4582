use http::HeaderMap;
use proptest::prelude::*;

use super::*;
use crate::baggage::Member;
use crate::context::{TraceFlags, TraceId};
use crate::header::fixture as headers;

const W3C_TRACE: &str = "12345678901234567890123456789012";
const VALID: &str = "00-12345678901234567890123456789012-1234567890123456-00";
const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";

fn all() -> Propagators {
    Propagator::ALL.into_iter().collect()
}

fn trace_id(extracted: &Extracted) -> Option<String> {
    extracted.context.map(|c| c.trace_id.to_string())
}

/// `test_tracestate_included_traceparent_missing`: without a `traceparent` the `tracestate` is
/// not read, so both requests leave the same (empty) state.
#[test]
fn w3c_tracestate_without_traceparent_is_discarded() {
    for value in ["foo=1", "foo=1,bar=2"] {
        let extracted = extract(&headers(&[("tracestate", value)]), all());
        assert_eq!(extracted.context, None);
        assert!(extracted.tracestate.is_empty());
    }
    // The same with an invalid traceparent.
    let fields = [
        ("traceparent", "00-00000000000000000000000000000000-1234567890123456-01"),
        ("tracestate", "foo=1"),
    ];
    let extracted = extract(&headers(&fields), all());
    assert_eq!(extracted.errors.traceparent, Some(TraceparentError::ZeroTraceId));
    assert!(extracted.tracestate.is_empty());
}

/// An invalid `tracestate` never affects `traceparent` (`test_tracestate_duplicated_keys` and the
/// other discard cases keep the trace id).
#[test]
fn w3c_invalid_tracestate_keeps_the_traceparent() {
    let extracted =
        extract(&headers(&[("traceparent", VALID), ("tracestate", "foo=1,foo=2")]), all());
    assert_eq!(trace_id(&extracted).as_deref(), Some(W3C_TRACE));
    assert_eq!(extracted.errors.tracestate, Some(TraceStateError::DuplicateKey));
    assert!(extracted.tracestate.is_empty());
    let mut out = HeaderMap::new();
    let context = extracted.context.expect("valid");
    inject(&Outgoing::new(context).with_tracestate(&extracted.tracestate), all(), &mut out);
    assert!(out.get("tracestate").is_none());
}

/// `AdvancedTest`: each outgoing call of one request is a child with the same trace id and its
/// own span id; an illegal `traceparent` leaves no context, so the caller starts a new trace.
#[test]
fn w3c_advanced_multiple_requests() {
    let extracted = extract(&headers(&[("traceparent", VALID)]), all());
    let parent = extracted.context.expect("valid");
    let children: Vec<String> = (1..=3u64)
        .map(|n| {
            let child = parent.child(SpanId::from_u64(n).expect("non-zero"));
            let mut out = HeaderMap::new();
            inject(
                &Outgoing::new(child),
                Propagators::NONE.with(Propagator::TraceContext),
                &mut out,
            );
            out.get("traceparent").expect("written").to_str().expect("ascii").to_owned()
        })
        .collect();
    for header in &children {
        assert_eq!(
            traceparent::parse(header).map(|c| c.trace_id.to_string()).as_deref(),
            Ok(W3C_TRACE)
        );
    }
    let parent_ids: std::collections::HashSet<_> = children.iter().map(|h| &h[36..52]).collect();
    assert_eq!(parent_ids.len(), 3);

    let illegal =
        headers(&[("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")]);
    assert_eq!(extract(&illegal, all()).context, None);
}

#[test]
fn traceparent_wins_over_b3() {
    let fields = [
        ("traceparent", VALID),
        ("tracestate", "a=1"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"),
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
    ];
    let extracted = extract(&headers(&fields), all());
    assert_eq!(extracted.source, Some(Propagator::TraceContext));
    assert_eq!(trace_id(&extracted).as_deref(), Some(W3C_TRACE));
    assert_eq!(extracted.tracestate.get("a"), Some("1"));
    assert_eq!(extracted.b3_sampling, None);
    assert!(!extracted.b3_debug);
}

#[test]
fn invalid_traceparent_falls_back_to_b3_without_tracestate() {
    let fields = [
        ("traceparent", "ff-12345678901234567890123456789012-1234567890123456-01"),
        ("tracestate", "a=1"),
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-flags", "1"),
    ];
    let extracted = extract(&headers(&fields), all());
    assert_eq!(extracted.errors.traceparent, Some(TraceparentError::ForbiddenVersion));
    assert_eq!(extracted.source, Some(Propagator::B3Multi));
    assert_eq!(trace_id(&extracted).as_deref(), Some(B3_TRACE));
    assert_eq!(extracted.parent_span_id, SpanId::from_hex("05e3ac9a4f6e3b90"));
    assert!(extracted.b3_debug);
    assert!(extracted.context.expect("b3").sampled(), "debug implies sampled");
    assert!(extracted.tracestate.is_empty());
}

#[test]
fn b3_single_wins_over_multi_and_disabled_formats_are_ignored() {
    let fields = [
        ("b3", "0000000000000000a2fb4a1d1a96d312-e457b5a2e4d86bd1-0"),
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
        ("traceparent", VALID),
    ];
    let map = headers(&fields);
    let single_first = Propagators::NONE.with(Propagator::B3Single).with(Propagator::B3Multi);
    let extracted = extract(&map, single_first);
    assert_eq!(extracted.source, Some(Propagator::B3Single));
    assert_eq!(trace_id(&extracted).as_deref(), Some("0000000000000000a2fb4a1d1a96d312"));
    assert_eq!(extracted.b3_sampling, Some(SamplingState::Deny));

    let multi_only = extract(&map, Propagators::NONE.with(Propagator::B3Multi));
    assert_eq!(multi_only.source, Some(Propagator::B3Multi));
    assert_eq!(multi_only.b3_sampling, Some(SamplingState::Accept));

    let nothing = extract(&map, Propagators::NONE);
    assert_eq!(nothing, Extracted::default());
}

#[test]
fn b3_sampling_only_and_errors() {
    let extracted = extract(&headers(&[("b3", "0")]), all());
    assert_eq!(extracted.context, None);
    assert_eq!(extracted.b3_sampling, Some(SamplingState::Deny));

    let extracted = extract(&headers(&[("b3", "nonsense"), ("x-b3-sampled", "maybe")]), all());
    assert_eq!(extracted.context, None);
    assert_eq!(extracted.errors.b3, Some(B3Error::InvalidFormat));

    // The single header's error is kept when the multiple headers are valid.
    let fields =
        [("b3", "nonsense"), ("x-b3-traceid", B3_TRACE), ("x-b3-spanid", "e457b5a2e4d86bd1")];
    let extracted = extract(&headers(&fields), all());
    assert_eq!(extracted.source, Some(Propagator::B3Multi));
    assert_eq!(extracted.errors.b3, Some(B3Error::InvalidFormat));
    assert_eq!(extracted.b3_sampling, Some(SamplingState::Defer));
}

#[test]
fn baggage_is_read_independently() {
    let extracted = extract(&headers(&[("baggage", "a=1,bad key=2"), ("baggage", "b=2")]), all());
    assert_eq!(extracted.context, None);
    assert_eq!(extracted.baggage.to_string(), "a=1,b=2");
    assert_eq!(extracted.errors.baggage.invalid, 1);
    let without =
        extract(&headers(&[("baggage", "a=1")]), Propagators::NONE.with(Propagator::TraceContext));
    assert!(without.baggage.is_empty());
}

#[test]
fn seed_composite_injects_tracecontext_baggage_and_b3_multi() {
    let context = SpanContext::new(
        TraceId::from_hex(W3C_TRACE).expect("valid"),
        SpanId::from_hex("00f067aa0ba902b7").expect("valid"),
        TraceFlags::new(true, true),
    );
    let tracestate = TraceState::parse("congo=t61rcWkgMzE").expect("valid");
    let mut baggage = Baggage::new();
    baggage.insert(Member::new("userId", "alice").expect("valid")).expect("fits");
    let outgoing = Outgoing::new(context)
        .with_tracestate(&tracestate)
        .with_baggage(&baggage)
        .with_parent_span_id(SpanId::from_hex("1234567890123456"));
    let mut out = headers(&[("b3", "stale"), ("x-b3-flags", "1")]);
    let seed = Propagators::seed_composite();
    assert_eq!(format!("{seed:?}"), r#"{"tracecontext", "b3multi", "baggage"}"#);
    inject(&outgoing, seed, &mut out);
    assert_eq!(
        out.get("traceparent").expect("set"),
        "00-12345678901234567890123456789012-00f067aa0ba902b7-03"
    );
    assert_eq!(out.get("tracestate").expect("set"), "congo=t61rcWkgMzE");
    assert_eq!(out.get("baggage").expect("set"), "userId=alice");
    assert_eq!(out.get("x-b3-traceid").expect("set"), W3C_TRACE);
    assert_eq!(out.get("x-b3-spanid").expect("set"), "00f067aa0ba902b7");
    assert_eq!(out.get("x-b3-parentspanid").expect("set"), "1234567890123456");
    assert_eq!(out.get("x-b3-sampled").expect("set"), "1");
    assert!(out.get("x-b3-flags").is_none());
    assert_eq!(out.get("b3").expect("not ours to touch"), "stale");

    let back = extract(&out, seed);
    assert_eq!(back.context, Some(context));
    assert_eq!(back.tracestate, tracestate);
    assert_eq!(back.baggage, baggage);
}

#[test]
fn every_is_every_format() {
    assert_eq!(Propagators::EVERY, all(), "a format missing here would keep its stale headers");
}

#[test]
fn propagator_lists() {
    assert_eq!(
        Propagators::parse_list("tracecontext, baggage,b3multi"),
        Ok(Propagators::seed_composite())
    );
    assert_eq!(Propagators::parse_list("none"), Ok(Propagators::NONE));
    assert_eq!(Propagators::parse_list(""), Ok(Propagators::NONE));
    assert_eq!(Propagators::parse_list("b3,b3"), Ok(Propagators::NONE.with(Propagator::B3Single)));
    let error = Propagators::parse_list("tracecontext,jaeger").expect_err("unknown");
    assert_eq!(error, UnknownPropagator("jaeger".to_owned()));
    assert!(error.to_string().contains("\"jaeger\""));
    for propagator in Propagator::ALL {
        assert_eq!(Propagator::from_name(propagator.name()), Some(propagator));
    }
    assert_eq!(Propagators::otel_default().iter().count(), 2);
}

fn outgoing_parts() -> impl Strategy<Value = (SpanContext, Option<SpanId>, bool)> {
    (1..=u128::MAX, 1..=u64::MAX, any::<u8>(), proptest::option::of(1..=u64::MAX), any::<bool>())
        .prop_map(|(trace, span, flags, parent, debug)| {
            let context = SpanContext::new(
                TraceId::from_u128(trace).expect("non-zero"),
                SpanId::from_u64(span).expect("non-zero"),
                TraceFlags::from_bits(flags),
            );
            (context, parent.and_then(SpanId::from_u64), debug)
        })
}

const B3_MULTI: [&str; 5] =
    ["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"];

/// Every header a propagator reads, and some it does not.
fn header_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "traceparent",
        "tracestate",
        "b3",
        B3_MULTI[0],
        B3_MULTI[1],
        B3_MULTI[2],
        B3_MULTI[3],
        B3_MULTI[4],
        "baggage",
        "x-request-id",
        "content-type",
    ])
}

/// Values valid for one header or another, and junk.
fn header_value() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "1",
        "d",
        "0",
        "congo=t61rcWkgMzE",
        "userId=alice,isProduction=false",
        "",
        "not valid",
    ])
}

proptest! {
    #[test]
    fn every_format_round_trips((context, parent, debug) in outgoing_parts()) {
        let outgoing = Outgoing::new(context).with_parent_span_id(parent).with_debug(debug);
        let b3_context = context.flags.with_random(false).with_sampled(context.sampled() || debug);
        for propagator in [Propagator::TraceContext, Propagator::B3Single, Propagator::B3Multi] {
            let set = Propagators::NONE.with(propagator);
            let mut map = HeaderMap::new();
            inject(&outgoing, set, &mut map);
            let back = extract(&map, set);
            prop_assert_eq!(back.source, Some(propagator));
            let got = back.context.expect("round trip");
            if propagator == Propagator::TraceContext {
                prop_assert_eq!(got, context);
            } else {
                prop_assert_eq!(got, SpanContext { flags: b3_context, ..context });
                prop_assert_eq!(back.parent_span_id, parent);
                prop_assert_eq!(back.b3_debug, debug);
            }
        }
    }

    #[test]
    fn extracting_only_the_carried_formats_changes_nothing(
        pairs in proptest::collection::vec((header_name(), header_value()), 0..6)
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
        }
        let carried = Propagators::carried(&map);
        prop_assert_eq!(extract(&map, all().intersection(carried)), extract(&map, all()));
        for propagator in Propagator::ALL {
            let names: &[&str] = match propagator {
                Propagator::TraceContext => &["traceparent"],
                Propagator::B3Single => &["b3"],
                Propagator::B3Multi => &B3_MULTI,
                Propagator::Baggage => &["baggage"],
            };
            let present = names.iter().any(|name| map.contains_key(*name));
            prop_assert_eq!(carried.contains(propagator), present, "{:?}", propagator);
        }
    }

    #[test]
    fn injecting_over_what_the_headers_may_hold_writes_what_inject_writes(
        pairs in proptest::collection::vec((header_name(), header_value()), 0..6),
        (context, parent, debug) in outgoing_parts(),
        formats in 0..16u8,
        members in proptest::collection::vec(0..3usize, 0..3),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
        }
        let propagators: Propagators =
            Propagator::ALL.into_iter().filter(|p| formats & p.bit() != 0).collect();
        let tracestate = TraceState::parse(["", "a=1", "a=1,b=2"][members.len()]).expect("valid");
        let mut baggage = Baggage::new();
        for member in members {
            let key = ["k0", "k1", "k2"][member];
            baggage.insert(Member::new(key, "v").expect("valid")).expect("fits");
        }
        let outgoing = Outgoing::new(context)
            .with_parent_span_id(parent)
            .with_debug(debug)
            .with_tracestate(&tracestate)
            .with_baggage(&baggage);
        let mut may_hold = Propagators::carried(&map);
        if map.contains_key("tracestate") {
            may_hold = may_hold.with(Propagator::TraceContext);
        }
        let mut everywhere = map.clone();
        inject(&outgoing, propagators, &mut everywhere);
        inject_over(&outgoing, propagators, may_hold, &mut map);
        prop_assert_eq!(map, everywhere);
    }

    #[test]
    fn arbitrary_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        crate::fuzz::extract(&bytes);
    }
}
