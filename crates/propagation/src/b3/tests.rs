use http::HeaderMap;
use proptest::prelude::*;

use super::*;
use crate::header::fixture as headers;

const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const SPAN: &str = "e457b5a2e4d86bd1";
const PARENT: &str = "05e3ac9a4f6e3b90";

/// Request header fields, in order.
type Fields<'a> = &'a [(&'a str, &'a str)];

fn context(trace: &str, parent: Option<&str>, sampling: SamplingState) -> B3 {
    B3::Context(B3Context {
        trace_id: TraceId::from_hex(trace).expect("trace id"),
        span_id: SpanId::from_hex(SPAN).expect("span id"),
        parent_span_id: parent.map(|p| SpanId::from_hex(p).expect("parent id")),
        sampling,
    })
}

#[test]
fn single_header_forms() {
    use SamplingState::{Accept, Debug, Defer, Deny};
    let padded = "0000000000000000a2fb4a1d1a96d312";
    let cases: Vec<(String, Result<B3, B3Error>)> = vec![
        (format!("{TRACE}-{SPAN}"), Ok(context(TRACE, None, Defer))),
        (format!("{TRACE}-{SPAN}-1"), Ok(context(TRACE, None, Accept))),
        (format!("{TRACE}-{SPAN}-0"), Ok(context(TRACE, None, Deny))),
        (format!("{TRACE}-{SPAN}-d"), Ok(context(TRACE, None, Debug))),
        (format!("{TRACE}-{SPAN}-1-{PARENT}"), Ok(context(TRACE, Some(PARENT), Accept))),
        (format!(" \t{TRACE}-{SPAN}-1 "), Ok(context(TRACE, None, Accept))),
        (format!("a2fb4a1d1a96d312-{SPAN}-1"), Ok(context(padded, None, Accept))),
        ("0".to_owned(), Ok(B3::SamplingOnly(Deny))),
        ("1".to_owned(), Ok(B3::SamplingOnly(Accept))),
        ("d".to_owned(), Ok(B3::SamplingOnly(Debug))),
        (String::new(), Err(B3Error::InvalidFormat)),
        ("2".to_owned(), Err(B3Error::InvalidFormat)),
        ("true".to_owned(), Err(B3Error::InvalidFormat)),
        (TRACE.to_owned(), Err(B3Error::InvalidFormat)),
        (format!("{TRACE}-{SPAN}-1-{PARENT}-x"), Err(B3Error::InvalidFormat)),
        (format!("{TRACE}-{SPAN}-true"), Err(B3Error::InvalidSampling)),
        (format!("{TRACE}-{SPAN}-D"), Err(B3Error::InvalidSampling)),
        (format!("{TRACE}-{SPAN}-"), Err(B3Error::InvalidSampling)),
        (format!("{TRACE}-{SPAN}--{PARENT}"), Err(B3Error::InvalidSampling)),
        (format!("{TRACE}-{SPAN}-{PARENT}"), Err(B3Error::InvalidSampling)),
        (format!("{}-{SPAN}-1", TRACE.to_uppercase()), Err(B3Error::InvalidTraceId)),
        (format!("{}-{SPAN}-1", &TRACE[1..]), Err(B3Error::InvalidTraceId)),
        (format!("{}-{SPAN}-1", "0".repeat(32)), Err(B3Error::InvalidTraceId)),
        (format!("{}-{SPAN}-1", "0".repeat(16)), Err(B3Error::InvalidTraceId)),
        (format!("{TRACE}-{}-1", "0".repeat(16)), Err(B3Error::InvalidSpanId)),
        (format!("{TRACE}-{}-1", &SPAN[1..]), Err(B3Error::InvalidSpanId)),
        (format!("{TRACE}-{SPAN}-1-{}", "0".repeat(16)), Err(B3Error::InvalidParentSpanId)),
        (format!("{TRACE}-{SPAN}-1-{}", PARENT.to_uppercase()), Err(B3Error::InvalidParentSpanId)),
    ];
    for (header, expected) in cases {
        assert_eq!(parse_single(&header), expected, "b3: {header:?}");
    }
}

#[test]
fn multi_header_forms() {
    use SamplingState::{Accept, Debug, Defer, Deny};
    let t = "X-B3-TraceId";
    let s = "X-B3-SpanId";
    let p = "X-B3-ParentSpanId";
    let cases: &[(Fields<'_>, Result<Option<B3>, B3Error>)] = &[
        (&[], Ok(None)),
        (&[(t, TRACE), (s, SPAN)], Ok(Some(context(TRACE, None, Defer)))),
        (&[(t, TRACE), (s, SPAN), ("X-B3-Sampled", "1")], Ok(Some(context(TRACE, None, Accept)))),
        (
            &[(t, TRACE), (s, SPAN), ("X-B3-Sampled", "true")],
            Ok(Some(context(TRACE, None, Accept))),
        ),
        (&[(t, TRACE), (s, SPAN), ("X-B3-Sampled", "0")], Ok(Some(context(TRACE, None, Deny)))),
        (&[(t, TRACE), (s, SPAN), ("X-B3-Sampled", "false")], Ok(Some(context(TRACE, None, Deny)))),
        (&[(t, TRACE), (s, SPAN), ("X-B3-Flags", "1")], Ok(Some(context(TRACE, None, Debug)))),
        (
            &[(t, TRACE), (s, SPAN), ("X-B3-Flags", "1"), ("X-B3-Sampled", "0")],
            Ok(Some(context(TRACE, None, Debug))),
        ),
        (&[(t, TRACE), (s, SPAN), ("X-B3-Flags", "0")], Ok(Some(context(TRACE, None, Defer)))),
        (
            &[(t, TRACE), (s, SPAN), (p, PARENT), ("X-B3-Sampled", "1")],
            Ok(Some(context(TRACE, Some(PARENT), Accept))),
        ),
        (
            &[(t, "a2fb4a1d1a96d312"), (s, SPAN)],
            Ok(Some(context("0000000000000000a2fb4a1d1a96d312", None, Defer))),
        ),
        // The first value wins.
        (
            &[(t, TRACE), (t, "ffffffffffffffffffffffffffffffff"), (s, SPAN), (s, "bad")],
            Ok(Some(context(TRACE, None, Defer))),
        ),
        (&[("X-B3-Sampled", "0")], Ok(Some(B3::SamplingOnly(Deny)))),
        (&[("X-B3-Sampled", "1")], Ok(Some(B3::SamplingOnly(Accept)))),
        (&[("X-B3-Flags", "1")], Ok(Some(B3::SamplingOnly(Debug)))),
        (&[("X-B3-Flags", "0")], Ok(None)),
        (&[(t, TRACE)], Err(B3Error::MissingSpanId)),
        (&[(s, SPAN)], Err(B3Error::MissingTraceId)),
        (&[(t, TRACE), (s, SPAN), ("X-B3-Sampled", "yes")], Err(B3Error::InvalidSampling)),
        (&[(t, TRACE), (s, SPAN), ("X-B3-Sampled", "d")], Err(B3Error::InvalidSampling)),
        (&[(t, "80F198EE56343BA864FE8B2A57D3EFF7"), (s, SPAN)], Err(B3Error::InvalidTraceId)),
        (&[(t, TRACE), (s, "0000000000000000")], Err(B3Error::InvalidSpanId)),
        (&[(t, TRACE), (s, SPAN), (p, "xyz")], Err(B3Error::InvalidParentSpanId)),
    ];
    for (fields, expected) in cases {
        assert_eq!(extract_multi(&headers(fields)), *expected, "{fields:?}");
    }
}

#[test]
fn single_header_takes_precedence() {
    use SamplingState::{Accept, Deny};
    let multi = [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("x-b3-sampled", "1")];
    let single = format!("{}-{SPAN}-0", "1".repeat(32));
    let mut fields = multi.to_vec();
    fields.push(("b3", &single));
    assert_eq!(extract(&headers(&fields)), Ok(Some(context(&"1".repeat(32), None, Deny))));
    // An invalid single header falls back to the multiple headers...
    let mut fields = multi.to_vec();
    fields.push(("b3", "garbage"));
    assert_eq!(extract(&headers(&fields)), Ok(Some(context(TRACE, None, Accept))));
    // ...and its error is reported when they carry nothing.
    assert_eq!(extract(&headers(&[("b3", "garbage")])), Err(B3Error::InvalidFormat));
    assert_eq!(extract(&headers(&[])), Ok(None));
    assert_eq!(extract(&headers(&[("b3", "0")])), Ok(Some(B3::SamplingOnly(Deny))));
}

/// The README's example state; note the README's own single-header rendering swaps span and
/// parent, while its field definitions (followed here) put SpanId second and ParentSpanId last.
#[test]
fn readme_example_in_both_encodings() {
    let Ok(B3::Context(b3)) = parse_single(&format!("{TRACE}-{SPAN}-1-{PARENT}")) else {
        panic!("valid")
    };
    let mut map = HeaderMap::new();
    inject_multi(&b3, &mut map);
    assert_eq!(map.get(&TRACE_ID_HEADER).expect("set"), TRACE);
    assert_eq!(map.get(&PARENT_SPAN_ID_HEADER).expect("set"), PARENT);
    assert_eq!(map.get(&SPAN_ID_HEADER).expect("set"), SPAN);
    assert_eq!(map.get(&SAMPLED_HEADER).expect("set"), "1");
    assert_eq!(format_single(&b3), format!("{TRACE}-{SPAN}-1-{PARENT}"));
    assert!(b3.span_context().sampled());
}

#[test]
fn inject_multi_clears_stale_headers() {
    let mut map = headers(&[
        ("x-b3-parentspanid", PARENT),
        ("x-b3-sampled", "0"),
        ("x-b3-flags", "1"),
        ("x-b3-traceid", "old"),
    ]);
    let Ok(B3::Context(mut b3)) = parse_single(&format!("{TRACE}-{SPAN}-d")) else {
        panic!("valid")
    };
    inject_multi(&b3, &mut map);
    assert_eq!(map.get(&FLAGS_HEADER).expect("debug"), "1");
    assert!(map.get(&SAMPLED_HEADER).is_none(), "debug is not also sent as sampled");
    assert!(map.get(&PARENT_SPAN_ID_HEADER).is_none());
    b3.sampling = SamplingState::Deny;
    inject_multi(&b3, &mut map);
    assert!(map.get(&FLAGS_HEADER).is_none());
    assert_eq!(map.get(&SAMPLED_HEADER).expect("deny"), "0");
    b3.sampling = SamplingState::Defer;
    inject_multi(&b3, &mut map);
    assert!(map.get(&SAMPLED_HEADER).is_none());
    assert_eq!(map.len(), 2);
}

#[test]
fn deferred_context_with_parent_drops_the_parent_in_the_single_header() {
    let Ok(B3::Context(mut b3)) = parse_single(&format!("{TRACE}-{SPAN}-1-{PARENT}")) else {
        panic!("valid")
    };
    b3.sampling = SamplingState::Defer;
    assert_eq!(format_single(&b3), format!("{TRACE}-{SPAN}"));
}

fn b3_contexts() -> impl Strategy<Value = B3Context> {
    let sampling = prop_oneof![
        Just(SamplingState::Defer),
        Just(SamplingState::Deny),
        Just(SamplingState::Accept),
        Just(SamplingState::Debug),
    ];
    (1..=u128::MAX, 1..=u64::MAX, proptest::option::of(1..=u64::MAX), sampling).prop_map(
        |(trace, span, parent, sampling)| B3Context {
            trace_id: TraceId::from_u128(trace).expect("non-zero"),
            span_id: SpanId::from_u64(span).expect("non-zero"),
            parent_span_id: parent.and_then(SpanId::from_u64),
            sampling,
        },
    )
}

proptest! {
    #[test]
    fn multi_round_trip(b3 in b3_contexts()) {
        let mut map = HeaderMap::new();
        inject_multi(&b3, &mut map);
        prop_assert_eq!(extract_multi(&map), Ok(Some(B3::Context(b3))));
        prop_assert_eq!(extract(&map), Ok(Some(B3::Context(b3))));
    }

    #[test]
    fn single_round_trip(mut b3 in b3_contexts()) {
        if b3.sampling == SamplingState::Defer {
            b3.parent_span_id = None;
        }
        prop_assert_eq!(parse_single(&format_single(&b3)), Ok(B3::Context(b3)));
        let mut map = HeaderMap::new();
        inject_single(&b3, &mut map);
        prop_assert_eq!(extract(&map), Ok(Some(B3::Context(b3))));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        crate::fuzz::b3(&bytes);
    }

    #[test]
    fn near_valid_strings_never_panic(text in "[0-9a-fd -]{0,90}") {
        crate::fuzz::b3(text.as_bytes());
    }
}
