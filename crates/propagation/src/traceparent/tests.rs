use http::HeaderMap;
use proptest::prelude::*;

use super::*;
use crate::header::fixture as headers;

const TRACE_ID: &str = "12345678901234567890123456789012";
const VALID: &str = "00-12345678901234567890123456789012-1234567890123456-01";

/// What a receiver does with the request.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// No `traceparent`: start a trace.
    Absent,
    /// Continue this trace id.
    Continue(&'static str),
    /// Ignore the header and restart, for this reason.
    Restart(TraceparentError),
}

/// Request header fields, in order.
type Fields<'a> = &'a [(&'a str, &'a str)];

fn outcome(fields: &[(&str, &str)]) -> Outcome {
    match extract(&headers(fields)) {
        Ok(None) => Outcome::Absent,
        Ok(Some(context)) => {
            assert_eq!(context.trace_id.to_string(), TRACE_ID, "only one trace id in the suite");
            Outcome::Continue(TRACE_ID)
        }
        Err(error) => Outcome::Restart(error),
    }
}

/// Every request of the W3C suite's `TraceContextTest` traceparent cases, `AdvancedTest` and
/// `TraceContext2Test` (w3c/trace-context `test/test.py`), with the outcome the suite expects
/// and, for rejections, the reason this crate reports.
#[test]
fn w3c_test_suite_traceparent_cases() {
    use Outcome::{Absent, Continue, Restart};
    use TraceparentError as E;
    let t = "traceparent";
    let cases: &[(&str, Fields<'_>, Outcome)] = &[
        ("both_traceparent_and_tracestate_missing", &[], Absent),
        ("traceparent_included_tracestate_missing", &[(t, VALID)], Continue(TRACE_ID)),
        (
            "traceparent_duplicated",
            &[
                (t, "00-12345678901234567890123456789011-1234567890123456-01"),
                (t, "00-12345678901234567890123456789012-1234567890123456-01"),
            ],
            Restart(E::Multiple),
        ),
        ("traceparent_header_name trace-parent", &[("trace-parent", VALID)], Absent),
        ("traceparent_header_name trace.parent", &[("trace.parent", VALID)], Absent),
        ("header_name_valid_casing TraceParent", &[("TraceParent", VALID)], Continue(TRACE_ID)),
        ("header_name_valid_casing TrAcEpArEnT", &[("TrAcEpArEnT", VALID)], Continue(TRACE_ID)),
        ("header_name_valid_casing TRACEPARENT", &[("TRACEPARENT", VALID)], Continue(TRACE_ID)),
        (
            "version_0x00 trailing dot",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-01.")],
            Restart(E::InvalidLength),
        ),
        (
            "version_0x00 extra fields",
            &[(
                t,
                "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            )],
            Restart(E::InvalidLength),
        ),
        (
            "version_0xcc",
            &[(t, "cc-12345678901234567890123456789012-1234567890123456-01")],
            Continue(TRACE_ID),
        ),
        (
            "version_0xcc extra fields",
            &[(
                t,
                "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            )],
            Continue(TRACE_ID),
        ),
        (
            "version_0xcc flags not followed by '-'",
            &[(
                t,
                "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            )],
            Restart(E::InvalidFlags),
        ),
        (
            "version_0xff",
            &[(t, "ff-12345678901234567890123456789012-1234567890123456-01")],
            Restart(E::ForbiddenVersion),
        ),
        (
            "version_illegal_characters .0",
            &[(t, ".0-12345678901234567890123456789012-1234567890123456-01")],
            Restart(E::InvalidVersion),
        ),
        (
            "version_illegal_characters 0.",
            &[(t, "0.-12345678901234567890123456789012-1234567890123456-01")],
            Restart(E::InvalidVersion),
        ),
        (
            "version_too_long 000",
            &[(t, "000-12345678901234567890123456789012-1234567890123456-01")],
            Restart(E::InvalidVersion),
        ),
        (
            "version_too_long 0000",
            &[(t, "0000-12345678901234567890123456789012-1234567890123456-01")],
            Restart(E::InvalidVersion),
        ),
        (
            "version_too_short",
            &[(t, "0-12345678901234567890123456789012-1234567890123456-01")],
            Restart(E::InvalidVersion),
        ),
        (
            "trace_id_all_zero",
            &[(t, "00-00000000000000000000000000000000-1234567890123456-01")],
            Restart(E::ZeroTraceId),
        ),
        (
            "trace_id_illegal_characters leading",
            &[(t, "00-.2345678901234567890123456789012-1234567890123456-01")],
            Restart(E::InvalidTraceId),
        ),
        (
            "trace_id_illegal_characters trailing",
            &[(t, "00-1234567890123456789012345678901.-1234567890123456-01")],
            Restart(E::InvalidTraceId),
        ),
        (
            "trace_id_too_long",
            &[(t, "00-123456789012345678901234567890123-1234567890123456-01")],
            Restart(E::InvalidLength),
        ),
        (
            "trace_id_too_short",
            &[(t, "00-1234567890123456789012345678901-1234567890123456-01")],
            Restart(E::InvalidLength),
        ),
        (
            "parent_id_all_zero",
            &[(t, "00-12345678901234567890123456789012-0000000000000000-01")],
            Restart(E::ZeroParentId),
        ),
        (
            "parent_id_illegal_characters leading",
            &[(t, "00-12345678901234567890123456789012-.234567890123456-01")],
            Restart(E::InvalidParentId),
        ),
        (
            "parent_id_illegal_characters trailing",
            &[(t, "00-12345678901234567890123456789012-123456789012345.-01")],
            Restart(E::InvalidParentId),
        ),
        (
            "parent_id_too_long",
            &[(t, "00-12345678901234567890123456789012-12345678901234567-01")],
            Restart(E::InvalidLength),
        ),
        (
            "parent_id_too_short",
            &[(t, "00-12345678901234567890123456789012-123456789012345-01")],
            Restart(E::InvalidLength),
        ),
        (
            "trace_flags_illegal_characters leading",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-.0")],
            Restart(E::InvalidFlags),
        ),
        (
            "trace_flags_illegal_characters trailing",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-0.")],
            Restart(E::InvalidFlags),
        ),
        (
            "trace_flags_too_long",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-001")],
            Restart(E::InvalidLength),
        ),
        (
            "trace_flags_too_short",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-1")],
            Restart(E::InvalidLength),
        ),
        (
            "ows_handling leading space",
            &[(t, " 00-12345678901234567890123456789012-1234567890123456-01")],
            Continue(TRACE_ID),
        ),
        (
            "ows_handling leading tab",
            &[(t, "\t00-12345678901234567890123456789012-1234567890123456-01")],
            Continue(TRACE_ID),
        ),
        (
            "ows_handling trailing space",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-01 ")],
            Continue(TRACE_ID),
        ),
        (
            "ows_handling trailing tab",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-01\t")],
            Continue(TRACE_ID),
        ),
        (
            "ows_handling both",
            &[(t, "\t 00-12345678901234567890123456789012-1234567890123456-01 \t")],
            Continue(TRACE_ID),
        ),
        // AdvancedTest.test_multiple_requests_with_illegal_traceparent
        (
            "multiple_requests_with_illegal_traceparent",
            &[(t, "00-00000000000000000000000000000000-1234567890123456-01")],
            Restart(E::ZeroTraceId),
        ),
        // TraceContext2Test.test_propagates_random_flag (flags checked below)
        (
            "propagates_random_flag",
            &[(t, "00-12345678901234567890123456789012-1234567890123456-02")],
            Continue(TRACE_ID),
        ),
    ];
    for (name, fields, expected) in cases {
        assert_eq!(&outcome(fields), expected, "case {name}");
    }
}

#[test]
fn level_2_random_flag_is_kept_and_re_emitted() {
    for flags in ["02", "03"] {
        let header = format!("00-{TRACE_ID}-1234567890123456-{flags}");
        let context = parse(&header).expect("valid");
        assert!(context.flags.random());
        assert_eq!(context.sampled(), flags == "03");
        // A child span keeps the trace id and the flags, random bit included.
        let child = context.child(SpanId::from_u64(7).expect("non-zero"));
        assert_eq!(format(&child), format!("00-{TRACE_ID}-0000000000000007-{flags}"));
    }
}

#[test]
fn reserved_flag_bits_are_cleared() {
    let context = parse(&format!("00-{TRACE_ID}-1234567890123456-ff")).expect("valid");
    assert_eq!(context.flags, TraceFlags::new(true, true));
    assert_eq!(format(&context), format!("00-{TRACE_ID}-1234567890123456-03"));
    let context = parse(&format!("00-{TRACE_ID}-1234567890123456-08")).expect("valid");
    assert_eq!(context.flags, TraceFlags::NONE);
}

#[test]
fn higher_versions_downgrade_to_00() {
    let cases = [
        format!("01-{TRACE_ID}-1234567890123456-01"),
        format!("fe-{TRACE_ID}-1234567890123456-01-"),
        format!("cc-{TRACE_ID}-1234567890123456-01-x-y-z"),
    ];
    for header in cases {
        let context = parse(&header).expect(&header);
        assert_eq!(format(&context), VALID, "{header}");
    }
}

/// The cases where Envoy's OpenTelemetry extractor disagrees with the specification; this crate
/// follows the specification.
#[test]
fn specification_over_envoy() {
    use TraceparentError as E;
    let cases: &[(&str, Result<&str, E>)] = &[
        // Envoy accepts uppercase hex (ascii_isxdigit).
        ("00-1234567890ABCDEF1234567890123456-1234567890123456-01", Err(E::InvalidTraceId)),
        ("00-12345678901234567890123456789012-1234567890ABCDEF-01", Err(E::InvalidParentId)),
        ("00-12345678901234567890123456789012-1234567890123456-0A", Err(E::InvalidFlags)),
        ("0A-12345678901234567890123456789012-1234567890123456-01", Err(E::InvalidVersion)),
        // Envoy does not check the version: a 55-character ff header passes there.
        ("ff-12345678901234567890123456789012-1234567890123456-01", Err(E::ForbiddenVersion)),
        // Envoy requires exactly 55 characters: future versions with more fields fail there.
        ("01-12345678901234567890123456789012-1234567890123456-01-00", Ok(TRACE_ID)),
    ];
    for (header, expected) in cases {
        let got = parse(header).map(|context| context.trace_id.to_string());
        assert_eq!(got.as_deref().map_err(|e| *e), *expected, "{header}");
    }
}

#[test]
fn other_malformed_values() {
    use TraceparentError as E;
    let cases: &[(&[u8], E)] = &[
        (b"", E::InvalidVersion),
        (b" \t ", E::InvalidVersion),
        (b"00", E::InvalidVersion),
        (b"00-", E::InvalidLength),
        (b"cc-12345678901234567890123456789012-1234567890123456-0", E::InvalidLength),
        (b"00_12345678901234567890123456789012-1234567890123456-01", E::InvalidVersion),
        (b"00-12345678901234567890123456789012_1234567890123456-01", E::InvalidTraceId),
        (b"00-12345678901234567890123456789012-1234567890123456_01", E::InvalidParentId),
        (b"00-12345678901234567890123456789012-1234567890123456-01\r", E::InvalidLength),
        (b"00-1234567890123456789012345678901\xc3\xa9-123456789012345-01", E::InvalidTraceId),
        (b"00-12345678901234567890123456789012-1234567890123456-\xff\xff", E::InvalidFlags),
        (b"00-12345678901234567890123456789012--234567890123456-01", E::InvalidParentId),
    ];
    for (header, expected) in cases {
        assert_eq!(parse_bytes(header), Err(*expected), "{}", String::from_utf8_lossy(header));
    }
}

#[test]
fn inject_replaces_existing_headers() {
    let mut map = headers(&[("traceparent", "garbage"), ("traceparent", "more")]);
    let context = parse(VALID).expect("valid");
    inject(&context, &mut map);
    assert_eq!(map.get_all(&HEADER).iter().count(), 1);
    assert_eq!(extract(&map), Ok(Some(context)));
}

#[test]
fn reasons_are_distinct() {
    use TraceparentError as E;
    let all = [
        E::Multiple,
        E::InvalidVersion,
        E::ForbiddenVersion,
        E::InvalidLength,
        E::InvalidTraceId,
        E::ZeroTraceId,
        E::InvalidParentId,
        E::ZeroParentId,
        E::InvalidFlags,
    ];
    let reasons: std::collections::HashSet<_> = all.iter().map(|e| e.reason()).collect();
    assert_eq!(reasons.len(), all.len());
    assert!(E::ZeroTraceId.to_string().starts_with("invalid traceparent: "));
}

fn span_contexts() -> impl Strategy<Value = SpanContext> {
    (1..=u128::MAX, 1..=u64::MAX, any::<u8>()).prop_map(|(trace, span, flags)| {
        SpanContext::new(
            TraceId::from_u128(trace).expect("non-zero"),
            SpanId::from_u64(span).expect("non-zero"),
            TraceFlags::from_bits(flags),
        )
    })
}

proptest! {
    #[test]
    fn parse_inverts_format(context in span_contexts()) {
        let text = format(&context);
        prop_assert_eq!(text.len(), VERSION_00_LEN);
        prop_assert_eq!(parse(&text), Ok(context));
        let mut map = HeaderMap::new();
        inject(&context, &mut map);
        prop_assert_eq!(map[&HEADER].as_bytes(), text.as_bytes());
        prop_assert_eq!(extract(&map), Ok(Some(context)));
        // The ids' stack-built hex is their Display text.
        prop_assert_eq!(context.trace_id.to_string(), &text[3..35]);
        prop_assert_eq!(context.span_id.to_string(), &text[36..52]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        crate::fuzz::traceparent(&bytes);
    }

    #[test]
    fn near_valid_strings_never_panic(text in "[0-9a-fA-F -]{50,60}") {
        crate::fuzz::traceparent(text.as_bytes());
    }
}
