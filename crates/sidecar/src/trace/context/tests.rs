use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use propagation::request_id::{TraceReason, trace_reason};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().unwrap())
}

/// Reads `pairs`, makes the span (`sampled`) and writes it with `configured` formats; returns
/// the span and the forwarded headers.
fn forward(
    pairs: &[(&str, &str)],
    configured: Propagators,
    sampled: bool,
) -> (ProxySpan, HeaderMap) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut headers = headers(pairs);
    let incoming = read(&headers, Received::scan(&headers), &mut rng);
    let extracted = &incoming.extracted;
    let span = new_span(
        extracted.context,
        &extracted.tracestate,
        extracted.b3_debug,
        sampled,
        TraceIdLength::Bits128,
        &mut rng,
    );
    write(&span, configured, &incoming, &incoming.request_id, &mut headers);
    (span, headers)
}

fn w3c() -> Propagators {
    Propagators::otel_default()
}

#[test]
fn new_traces_get_64_bit_ids_when_asked_and_continued_ones_keep_theirs() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..100 {
        let root = new_span(None, &TraceState::new(), false, true, TraceIdLength::Bits64, &mut rng);
        assert!(root.context.trace_id.to_string().starts_with("0000000000000000"));
        assert!(root.context.flags.random(), "the low half is random");
        let long =
            new_span(None, &TraceState::new(), false, true, TraceIdLength::Bits128, &mut rng);
        assert!(!long.context.trace_id.to_string().starts_with("0000000000000000"));
    }
    let parent = SpanContext::new(
        TraceId::from_hex(TRACE).unwrap(),
        SpanId::from_hex(PARENT).unwrap(),
        TraceFlags::new(true, false),
    );
    let child =
        new_span(Some(parent), &TraceState::new(), false, true, TraceIdLength::Bits64, &mut rng);
    assert_eq!(child.context.trace_id.to_string(), TRACE);
}

#[test]
fn a_valid_traceparent_is_continued_with_this_span_as_the_next_parent() {
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let (span, out) = forward(&[("traceparent", &incoming)], w3c(), true);
    assert_eq!(span.context.trace_id.to_string(), TRACE);
    assert_eq!(span.parent.map(|id| id.to_string()).as_deref(), Some(PARENT));
    assert_ne!(span.context.span_id.to_string(), PARENT);
    let expected = format!("00-{TRACE}-{}-01", span.context.span_id);
    assert_eq!(get(&out, "traceparent"), Some(expected.as_str()));
}

#[test]
fn the_random_flag_is_kept_and_the_sampled_flag_is_this_proxys_decision() {
    let incoming = format!("00-{TRACE}-{PARENT}-03");
    let (span, out) = forward(&[("traceparent", &incoming)], w3c(), false);
    let expected = format!("00-{TRACE}-{}-02", span.context.span_id);
    assert_eq!(get(&out, "traceparent"), Some(expected.as_str()));
}

#[test]
fn a_new_trace_sets_the_random_flag() {
    let (span, out) = forward(&[], w3c(), true);
    assert_eq!(span.parent, None);
    let value = get(&out, "traceparent").unwrap();
    assert!(value.starts_with("00-") && value.ends_with("-03"), "{value}");
    assert!(value.contains(&span.context.trace_id.to_string()));
}

#[test]
fn an_invalid_traceparent_restarts_the_trace_and_drops_tracestate() {
    for invalid in [
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("ff-{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}-0000000000000000-01"),
        "00-garbage".to_owned(),
    ] {
        let (span, out) =
            forward(&[("traceparent", &invalid), ("tracestate", "vendor=value")], w3c(), true);
        assert_eq!(span.parent, None, "{invalid}");
        assert_ne!(span.context.trace_id.to_string(), TRACE.to_lowercase(), "{invalid}");
        let written = get(&out, "traceparent").unwrap();
        assert_ne!(written, invalid);
        assert!(propagation::traceparent::parse(written).is_ok(), "{written}");
        assert_eq!(get(&out, "tracestate"), None, "{invalid}");
    }
}

#[test]
fn tracestate_is_kept_and_kept_within_its_limits() {
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let (_, out) = forward(
        &[("traceparent", &incoming), ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")],
        w3c(),
        true,
    );
    assert_eq!(get(&out, "tracestate"), Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));

    // 600 characters: the large entry (over 128) goes first, the rest stays in order.
    let large = format!("big={}", "x".repeat(200));
    let small: Vec<String> = (0..20).map(|i| format!("k{i:02}={}", "v".repeat(15))).collect();
    let state = format!("{},{large}", small.join(","));
    assert!(state.len() > 512);
    let (_, out) = forward(&[("traceparent", &incoming), ("tracestate", &state)], w3c(), true);
    assert_eq!(get(&out, "tracestate"), Some(small.join(",").as_str()));
}

#[test]
fn b3_multi_in_gives_w3c_and_b3_out_with_this_span() {
    let pairs = [
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
    ];
    let (span, out) = forward(&pairs, Propagators::seed_composite(), true);
    let id = span.context.span_id.to_string();
    assert_eq!(span.context.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
    let expected = format!("00-80f198ee56343ba864fe8b2a57d3eff7-{id}-01");
    assert_eq!(get(&out, "traceparent"), Some(expected.as_str()));
    assert_eq!(get(&out, "x-b3-traceid"), Some("80f198ee56343ba864fe8b2a57d3eff7"));
    assert_eq!(get(&out, "x-b3-spanid"), Some(id.as_str()));
    assert_eq!(get(&out, "x-b3-parentspanid"), Some("e457b5a2e4d86bd1"));
    assert_eq!(get(&out, "x-b3-sampled"), Some("1"));
}

#[test]
fn b3_formats_that_arrive_are_rewritten_even_when_not_configured() {
    let pairs = [("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")];
    let (span, out) = forward(&pairs, w3c(), true);
    // A 64-bit trace id is padded to 128 bits.
    let trace = "0000000000000000a3ce929d0e0e4736";
    assert_eq!(span.context.trace_id.to_string(), trace);
    let expected = format!("{trace}-{}-1-00f067aa0ba902b7", span.context.span_id);
    assert_eq!(get(&out, "b3"), Some(expected.as_str()));
    assert!(get(&out, "traceparent").unwrap().contains(trace));
    assert_eq!(get(&out, "x-b3-traceid"), None, "multi is neither configured nor received");
}

#[test]
fn configured_b3_single_is_written_on_a_new_trace() {
    let configured = Propagators::NONE.with(Propagator::B3Single);
    let (span, out) = forward(&[], configured, false);
    let expected = format!("{}-{}-0", span.context.trace_id, span.context.span_id);
    assert_eq!(get(&out, "b3"), Some(expected.as_str()));
    assert_eq!(get(&out, "traceparent"), None);
}

#[test]
fn b3_debug_is_forwarded() {
    let pairs = [
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-flags", "1"),
    ];
    let (_, out) = forward(&pairs, Propagators::seed_composite(), true);
    assert_eq!(get(&out, "x-b3-flags"), Some("1"));
    assert_eq!(get(&out, "x-b3-sampled"), None);
}

#[test]
fn baggage_is_passed_through_within_the_limits() {
    let pairs = [("baggage", "userId=alice, isProduction=false;p=1"), ("baggage", "bad member")];
    let (_, out) = forward(&pairs, w3c(), true);
    assert_eq!(get(&out, "baggage"), Some("userId=alice,isProduction=false;p=1"));
    let (_, out) =
        forward(&[("baggage", "k=v")], Propagators::NONE.with(Propagator::TraceContext), true);
    assert_eq!(
        get(&out, "baggage"),
        Some("k=v"),
        "untouched when baggage is not a configured format"
    );
}

#[test]
fn a_missing_request_id_is_generated_and_a_present_one_kept() {
    let mut rng = StdRng::seed_from_u64(3);
    let incoming = read(&HeaderMap::new(), Received::default(), &mut rng);
    assert!(incoming.generated_request_id);
    assert_eq!(incoming.request_id.len(), 36);
    assert_eq!(trace_reason(&incoming.request_id), TraceReason::NotTraceable);

    let id = "8c6f3a5e-29c1-9b3f-a1d2-6f0e4a9c7b11";
    let with_id = headers(&[("x-request-id", id)]);
    let incoming = read(&with_id, Received::scan(&with_id), &mut rng);
    assert!(!incoming.generated_request_id);
    assert_eq!(incoming.request_id, id);

    let (_, out) = forward(&[("x-request-id", id)], w3c(), true);
    assert_eq!(get(&out, "x-request-id"), Some(id));
    let (_, out) = forward(&[], w3c(), true);
    assert_eq!(get(&out, "x-request-id").map(str::len), Some(36), "generated and forwarded");
}

#[test]
fn a_request_id_is_rewritten_only_when_the_request_does_not_hold_it_as_forwarded() {
    let mut rng = StdRng::seed_from_u64(4);
    let id = "8c6f3a5e-29c1-9b3f-a1d2-6f0e4a9c7b11";
    let as_received = |pairs: &[(&str, &str)], rng: &mut StdRng| {
        let headers = headers(pairs);
        read(&headers, Received::scan(&headers), rng).request_id_as_received
    };
    assert!(as_received(&[("x-request-id", id)], &mut rng));
    assert!(!as_received(&[("x-request-id", &format!(" {id} "))], &mut rng), "padded");
    assert!(!as_received(&[("x-request-id", id), ("x-request-id", "other")], &mut rng), "two");
    assert!(!as_received(&[], &mut rng), "generated");

    // What is forwarded is one value, trimmed, whichever way it got there.
    for pairs in [
        vec![("x-request-id", id)],
        vec![("x-request-id", " 8c6f3a5e-29c1-9b3f-a1d2-6f0e4a9c7b11 ")],
        vec![("x-request-id", id), ("x-request-id", "other")],
    ] {
        let (_, out) = forward(&pairs, w3c(), true);
        let values: Vec<_> = out.get_all("x-request-id").iter().collect();
        assert_eq!(values, [id], "{pairs:?}");
    }
}
