use super::*;
use crate::batch::{count_log_records, count_metric_points, count_spans};
use crate::fixtures;
use crate::proto::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use crate::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::proto::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use crate::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest};
use proptest::prelude::*;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

// === helpers ===

/// What prost makes of `bytes`: the item count, or an error.
fn prost_items(signal: Signal, bytes: &[u8]) -> Result<u64, prost::DecodeError> {
    Ok(match signal {
        Signal::Traces => count_spans(&ExportTraceServiceRequest::decode(bytes)?),
        Signal::Logs => count_log_records(&ExportLogsServiceRequest::decode(bytes)?),
        Signal::Metrics => count_metric_points(&ExportMetricsServiceRequest::decode(bytes)?),
    })
}

/// The key guarantee: whatever `scan` accepts, prost decodes, with the same count.
fn assert_scan_implies_prost(signal: Signal, bytes: &[u8]) {
    if let Ok(scan) = scan(signal, bytes) {
        match prost_items(signal, bytes) {
            Ok(items) => assert_eq!(scan.items, items, "counts differ for {bytes:02x?}"),
            Err(error) => panic!("scan accepted what prost refuses ({error}): {bytes:02x?}"),
        }
    }
}

fn key(number: u32, wire: WireType) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_key(number, wire, &mut buf);
    buf
}

/// A length-delimited field holding `body`.
fn len_field(number: u32, body: &[u8]) -> Vec<u8> {
    let mut buf = key(number, WireType::LengthDelimited);
    encode_varint(body.len() as u64, &mut buf);
    buf.extend_from_slice(body);
    buf
}

/// A trace request with one resource, one scope and one span encoded as `span`.
fn request_with_span(span: &[u8]) -> Vec<u8> {
    let scope_spans = len_field(2, span);
    len_field(1, &len_field(2, &scope_spans))
}

fn span_bytes() -> Vec<u8> {
    let request = fixtures::sidecar_traces(1, 1);
    request.resource_spans[0].scope_spans[0].spans[0].encode_to_vec()
}

fn string(key: &str, value: &str) -> KeyValue {
    let value = Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) });
    KeyValue { key: key.to_owned(), value, key_strindex: 0 }
}

// === valid input ===

#[test]
fn fixtures_scan_with_the_right_counts() {
    for (items, resources) in [(0, 0), (1, 1), (7, 3), (100, 10), (250, 1)] {
        let traces = fixtures::sidecar_traces(items, resources).encode_to_vec();
        let logs = fixtures::sidecar_logs(items, resources).encode_to_vec();
        let metrics = fixtures::sidecar_metrics(items, resources).encode_to_vec();
        assert_eq!(scan(Signal::Traces, &traces).unwrap().items, items as u64);
        assert_eq!(scan(Signal::Logs, &logs).unwrap().items, items as u64);
        assert_eq!(scan(Signal::Metrics, &metrics).unwrap().items, items as u64);
    }
}

#[test]
fn empty_input_is_an_empty_request() {
    for signal in Signal::ALL {
        assert_eq!(scan(signal, &[]).unwrap(), Scan { items: 0 });
    }
}

#[test]
fn concatenated_requests_count_like_one() {
    let mut bytes = fixtures::sidecar_traces(3, 1).encode_to_vec();
    bytes.extend(fixtures::sidecar_traces(5, 2).encode_to_vec());
    assert_eq!(scan(Signal::Traces, &bytes).unwrap().items, 8);
}

#[test]
fn every_field_of_every_message_is_in_the_schema() {
    // The requests below set every field of every message (struct literals without `..`, so the
    // compiler lists them), hence prost emits every field number it knows. None of them may be
    // unknown to the tables, or scan would skip a field that prost checks.
    let cases = [
        (Signal::Traces, everything_traces().encode_to_vec(), 1),
        (Signal::Logs, everything_logs().encode_to_vec(), 1),
        (Signal::Metrics, everything_metrics().encode_to_vec(), 7),
    ];
    for (signal, bytes, items) in cases {
        let mut unknown = Vec::new();
        unknown_fields(&bytes, schema::request(signal), &mut unknown);
        assert_eq!(unknown, Vec::<String>::new(), "{signal}");
        assert_eq!(scan(signal, &bytes).unwrap().items, items, "{signal}");
        assert_eq!(prost_items(signal, &bytes).unwrap(), items, "{signal}");
    }
}

/// Collects `Message.field` for every field in `buf` that `schema` does not list.
fn unknown_fields(buf: &[u8], schema: &'static schema::Schema, unknown: &mut Vec<String>) {
    let mut pos = 0;
    while pos < buf.len() {
        let (number, wire) = super::key(buf, &mut pos).unwrap();
        let start = pos;
        super::skip(buf, &mut pos, wire).unwrap();
        match schema.field(number) {
            None => unknown.push(format!("{}.{number}", schema.name)),
            Some(field) => {
                if let (Kind::Message(inner), Wire::Len) = (field.kind, wire) {
                    let mut body_pos = start;
                    let body = super::delimited(buf, &mut body_pos).unwrap();
                    unknown_fields(body, inner, unknown);
                }
            }
        }
    }
}

#[test]
fn unknown_fields_are_skipped() {
    let mut span = span_bytes();
    span.extend(key(99, WireType::Varint));
    encode_varint(300, &mut span);
    span.extend(len_field(100, b"\xff\xfe not utf-8, not checked"));
    span.extend(key(101, WireType::SixtyFourBit));
    span.extend([0; 8]);
    span.extend(key(102, WireType::ThirtyTwoBit));
    span.extend([0; 4]);
    let bytes = request_with_span(&span);
    assert_eq!(scan(Signal::Traces, &bytes).unwrap().items, 1);
    assert_scan_implies_prost(Signal::Traces, &bytes);
}

#[test]
fn unknown_fields_are_still_checked_structurally() {
    let mut span = span_bytes();
    span.extend(key(99, WireType::LengthDelimited));
    encode_varint(50, &mut span);
    span.extend([0; 10]);
    let error = scan(Signal::Traces, &request_with_span(&span)).unwrap_err();
    assert_eq!(error.kind(), WireErrorKind::Truncated { needed: 50, available: 10 });
    assert_eq!(error.path(), "resource_spans[0].scope_spans[0].spans[0].<field 99>");
}

#[test]
fn packed_and_unpacked_repeated_scalars_are_both_accepted() {
    // HistogramDataPoint bucket_counts (6) and explicit_bounds (7), one element per key as old
    // encoders send them, then packed.
    let mut point = Vec::new();
    for number in [6, 6, 7] {
        point.extend(key(number, WireType::SixtyFourBit));
        point.extend(1u64.to_le_bytes());
    }
    point.extend(len_field(6, &[0; 16]));
    let histogram = metrics_request(&len_field(9, &len_field(1, &point)));
    assert_eq!(scan(Signal::Metrics, &histogram).unwrap().items, 1);
    assert_scan_implies_prost(Signal::Metrics, &histogram);
    // Exponential histogram Buckets.bucket_counts (2): a varint, then packed varints.
    let mut buckets = key(2, WireType::Varint);
    encode_varint(12, &mut buckets);
    buckets.extend(len_field(2, &[1, 0x80, 0x01, 5]));
    let point = len_field(8, &buckets);
    let exponential = metrics_request(&len_field(10, &len_field(1, &point)));
    assert_eq!(scan(Signal::Metrics, &exponential).unwrap().items, 1);
    assert_scan_implies_prost(Signal::Metrics, &exponential);
}

#[test]
fn bad_packed_bodies_are_refused() {
    let point = len_field(6, &[0; 12]);
    let bytes = metrics_request(&len_field(9, &len_field(1, &point)));
    let error = scan(Signal::Metrics, &bytes).unwrap_err();
    assert_eq!(error.kind(), WireErrorKind::PackedLength { actual: 12, width: 8 });
    assert!(prost_items(Signal::Metrics, &bytes).is_err());
    let point = len_field(8, &len_field(2, &[1, 0x80]));
    let bytes = metrics_request(&len_field(10, &len_field(1, &point)));
    assert_eq!(scan(Signal::Metrics, &bytes).unwrap_err().kind(), WireErrorKind::TruncatedVarint);
    assert!(prost_items(Signal::Metrics, &bytes).is_err());
}

/// A metrics request with one metric whose encoding is `metric`.
fn metrics_request(metric: &[u8]) -> Vec<u8> {
    let scope_metrics = len_field(2, metric);
    len_field(1, &len_field(2, &scope_metrics))
}

#[test]
fn a_metric_with_two_data_kinds_counts_like_prost() {
    // Protobuf merges repeated occurrences of a oneof member but replaces a different member,
    // so only the last run of one kind counts.
    let gauge = |points: usize| {
        let data = Gauge { data_points: vec![NumberDataPoint::default(); points] };
        Metric { data: Some(metric::Data::Gauge(data)), ..Default::default() }.encode_to_vec()
    };
    let sum = |points: usize| {
        let data =
            Sum { data_points: vec![NumberDataPoint::default(); points], ..Default::default() };
        Metric { data: Some(metric::Data::Sum(data)), ..Default::default() }.encode_to_vec()
    };
    let cases: [(Vec<Vec<u8>>, u64); 4] = [
        (vec![gauge(2), sum(3)], 3),
        (vec![sum(3), gauge(2)], 2),
        (vec![gauge(2), gauge(4)], 6),
        (vec![gauge(2), sum(3), gauge(4)], 4),
    ];
    for (parts, expected) in cases {
        let bytes = metrics_request(&parts.concat());
        assert_eq!(scan(Signal::Metrics, &bytes).unwrap().items, expected);
        assert_eq!(prost_items(Signal::Metrics, &bytes).unwrap(), expected);
    }
}

#[test]
fn varints_of_up_to_ten_bytes_are_accepted() {
    let mut span = span_bytes();
    span.extend(key(99, WireType::Varint));
    span.extend([0xff; 9]);
    span.push(0x01);
    // A non-minimal encoding of the dropped_attributes_count field, as prost accepts it.
    span.extend(key(10, WireType::Varint));
    span.extend([0x80, 0x80, 0x00]);
    let bytes = request_with_span(&span);
    assert_eq!(scan(Signal::Traces, &bytes).unwrap().items, 1);
    assert_scan_implies_prost(Signal::Traces, &bytes);
}

// === invalid input ===

#[test]
fn every_truncation_of_a_request_is_refused() {
    // With one resource, every cut except "nothing" falls inside the only top-level field.
    let bytes = fixtures::sidecar_traces(10, 1).encode_to_vec();
    for cut in 1..bytes.len() {
        assert!(scan(Signal::Traces, &bytes[..cut]).is_err(), "prefix of {cut} bytes accepted");
    }
}

#[test]
fn every_prefix_of_a_request_scans_like_prost_decodes() {
    for signal in Signal::ALL {
        let bytes = match signal {
            Signal::Traces => fixtures::sidecar_traces(6, 3).encode_to_vec(),
            Signal::Logs => fixtures::sidecar_logs(6, 3).encode_to_vec(),
            Signal::Metrics => fixtures::sidecar_metrics(6, 3).encode_to_vec(),
        };
        for cut in 0..=bytes.len() {
            let prefix = &bytes[..cut];
            assert_scan_implies_prost(signal, prefix);
            assert_eq!(scan(signal, prefix).is_ok(), prost_items(signal, prefix).is_ok(), "{cut}");
        }
    }
}

#[test]
fn garbage_is_refused() {
    let cases: [&[u8]; 6] = [
        b"\x00",
        b"hello, world",
        b"{\"resourceSpans\": []}",
        &[0xff; 11],
        &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0x0b, 0x0c],
    ];
    for bytes in cases {
        for signal in Signal::ALL {
            assert!(scan(signal, bytes).is_err(), "{bytes:?} accepted as {signal}");
        }
    }
}

#[test]
fn framing_errors_name_the_problem() {
    let cases: [(&[u8], WireErrorKind, &str); 7] = [
        (
            b"\x00",
            WireErrorKind::FieldZero,
            "ExportTraceServiceRequest: field number 0 (at byte 0)",
        ),
        (
            b"\x8a",
            WireErrorKind::TruncatedVarint,
            "ExportTraceServiceRequest: varint runs past the end (at byte 0)",
        ),
        (
            b"\x0a\x05ab",
            WireErrorKind::Truncated { needed: 5, available: 2 },
            "resource_spans[0]: length 5 runs past the end (2 bytes left) (at byte 0)",
        ),
        (
            b"\x0b",
            WireErrorKind::Group(3),
            "ExportTraceServiceRequest: group (wire type 3) is not allowed (at byte 0)",
        ),
        (
            b"\x0e",
            WireErrorKind::InvalidWireType(6),
            "ExportTraceServiceRequest: invalid wire type 6 (at byte 0)",
        ),
        (
            &[0xff; 11],
            WireErrorKind::OverlongVarint,
            "ExportTraceServiceRequest: varint does not fit 64 bits (at byte 0)",
        ),
        (
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            WireErrorKind::KeyOverflow,
            "ExportTraceServiceRequest: field key does not fit 32 bits (at byte 0)",
        ),
    ];
    for (bytes, kind, message) in cases {
        let error = scan(Signal::Traces, bytes).unwrap_err();
        assert_eq!(error.kind(), kind);
        assert_eq!(error.to_string(), message);
        assert!(prost_items(Signal::Traces, bytes).is_err());
    }
}

#[test]
fn a_wrong_wire_type_on_a_known_field_is_refused() {
    // Span.name (5) as a varint.
    let mut span = span_bytes();
    span.extend(key(5, WireType::Varint));
    span.push(1);
    let bytes = request_with_span(&span);
    let error = scan(Signal::Traces, &bytes).unwrap_err();
    assert_eq!(
        error.kind(),
        WireErrorKind::WrongWireType { expected: "length-delimited", actual: 0 }
    );
    assert_eq!(error.path(), "resource_spans[0].scope_spans[0].spans[0].name");
    assert!(error.to_string().contains("wire type 0 (varint), expected length-delimited"));
    assert!(prost_items(Signal::Traces, &bytes).is_err());
    // Span.start_time_unix_nano (7, fixed64) as length-delimited.
    let mut span = span_bytes();
    span.extend(len_field(7, &[0; 8]));
    let error = scan(Signal::Traces, &request_with_span(&span)).unwrap_err();
    assert_eq!(error.kind(), WireErrorKind::WrongWireType { expected: "64-bit", actual: 2 });
}

#[test]
fn bad_utf8_in_a_span_name_is_refused() {
    let mut request = fixtures::sidecar_traces(5, 1);
    request.resource_spans[0].scope_spans[0].spans[3].name = "RNAME".to_owned();
    let mut bytes = request.encode_to_vec();
    let at = bytes.windows(5).position(|w| w == b"RNAME").unwrap();
    bytes[at + 2] = 0xc3;
    let error = scan(Signal::Traces, &bytes).unwrap_err();
    assert_eq!(error.kind(), WireErrorKind::InvalidUtf8 { valid_up_to: 2 });
    assert_eq!(error.path(), "resource_spans[0].scope_spans[0].spans[3].name");
    assert!(prost_items(Signal::Traces, &bytes).is_err());
}

#[test]
fn a_bad_id_length_is_reported_with_its_full_path() {
    let mut request = fixtures::sidecar_traces(6, 1);
    let spans = std::mem::take(&mut request.resource_spans[0].scope_spans[0].spans);
    let mut second = request.resource_spans[0].scope_spans[0].clone();
    second.spans = spans[2..].to_vec();
    request.resource_spans[0].scope_spans[0].spans = spans[..2].to_vec();
    second.spans[3].trace_id = vec![7; 7];
    request.resource_spans[0].scope_spans.push(second);
    let bytes = request.encode_to_vec();
    let error = scan(Signal::Traces, &bytes).unwrap_err();
    let message = error.to_string();
    let expected =
        "resource_spans[0].scope_spans[1].spans[3].trace_id: length 7, expected 16 bytes or empty";
    assert!(message.starts_with(expected), "{message}");
    assert_eq!(&bytes[error.offset()..error.offset() + 2], &[0x0a, 7], "offset points at the key");
    // Prost does not check id lengths: this is where scan is deliberately stricter.
    assert!(prost_items(Signal::Traces, &bytes).is_ok());
}

#[test]
fn ids_are_checked_in_links_logs_and_exemplars() {
    let link = span::Link { span_id: vec![1; 9], ..Default::default() };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span { links: vec![link], ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let error = scan(Signal::Traces, &request.encode_to_vec()).unwrap_err();
    assert_eq!(error.path(), "resource_spans[0].scope_spans[0].spans[0].links[0].span_id");

    let mut logs = fixtures::sidecar_logs(1, 1);
    logs.resource_logs[0].scope_logs[0].log_records[0].trace_id = vec![1; 8];
    let error = scan(Signal::Logs, &logs.encode_to_vec()).unwrap_err();
    assert_eq!(error.kind(), WireErrorKind::IdLength { actual: 8, expected: 16 });
    assert_eq!(error.path(), "resource_logs[0].scope_logs[0].log_records[0].trace_id");

    let mut metrics = everything_metrics();
    let Some(metric::Data::Gauge(gauge)) =
        &mut metrics.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("the first metric is a gauge")
    };
    gauge.data_points[0].exemplars[0].span_id = vec![1; 16];
    let error = scan(Signal::Metrics, &metrics.encode_to_vec()).unwrap_err();
    assert_eq!(
        error.path(),
        "resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0].span_id"
    );
}

/// An `AnyValue` nested `levels` kvlists deep. Each level is a prefix followed by the level
/// inside it, so the bytes are built outside in from precomputed sizes: wrapping inside out
/// would copy quadratically, and building messages would make prost recurse.
fn nested_value(levels: usize) -> Vec<u8> {
    let leaf = len_field(1, b"leaf");
    let key = len_field(1, b"k");
    let wrapped = |inner: usize| inner + 1 + encoded_len_varint(inner as u64);
    // (value, KeyValue, KeyValueList) body sizes of each level, innermost first.
    let mut sizes = Vec::with_capacity(levels);
    let mut inner = leaf.len();
    for _ in 0..levels {
        let key_value = key.len() + wrapped(inner);
        let list = wrapped(key_value);
        sizes.push((inner, key_value, list));
        inner = wrapped(list);
    }
    let mut out = Vec::with_capacity(inner);
    for &(value, key_value, list) in sizes.iter().rev() {
        out.push(0x32); // kvlist_value (6), length-delimited
        encode_varint(list as u64, &mut out);
        out.push(0x0a); // values (1)
        encode_varint(key_value as u64, &mut out);
        out.extend_from_slice(&key);
        out.push(0x12); // value (2)
        encode_varint(value as u64, &mut out);
    }
    out.extend_from_slice(&leaf);
    out
}

#[test]
fn nested_values_are_built_like_prost_encodes_them() {
    let mut value = AnyValue { value: Some(any_value::Value::StringValue("leaf".to_owned())) };
    for _ in 0..3 {
        let values = vec![KeyValue { key: "k".to_owned(), value: Some(value), key_strindex: 0 }];
        value = AnyValue { value: Some(any_value::Value::KvlistValue(KeyValueList { values })) };
    }
    assert_eq!(nested_value(3), value.encode_to_vec());
}

#[test]
fn nesting_is_limited() {
    // The span attribute's AnyValue sits at depth 5; each kvlist level adds 3.
    let at_depth = |levels: usize| {
        let attribute = [len_field(1, b"a"), len_field(2, &nested_value(levels))].concat();
        let mut span = span_bytes();
        span.extend(len_field(9, &attribute));
        request_with_span(&span)
    };
    assert!(scan(Signal::Traces, &at_depth(19)).is_ok(), "depth 62 is fine");
    let error = scan(Signal::Traces, &at_depth(20)).unwrap_err();
    assert_eq!(error.kind(), WireErrorKind::TooDeep);
    assert!(error.path().starts_with("resource_spans[0].scope_spans[0].spans[0].attributes[20].value.kvlist_value.values[0].value"));
    assert!(error.to_string().contains("messages nested deeper than 64"));
    // Far deeper than any stack could take if the walk did not stop.
    let bytes = at_depth(100_000);
    assert_eq!(scan(Signal::Traces, &bytes).unwrap_err().kind(), WireErrorKind::TooDeep);
}

#[test]
fn depth_limit_is_exact() {
    // Depth counts messages from the request (0): ResourceLogs 1, ScopeLogs 2, LogRecord 3,
    // body 4, then 3 per kvlist level, so 20 levels end at 64 and 21 exceed it.
    let logs = |levels: usize| {
        let record = len_field(5, &nested_value(levels));
        len_field(1, &len_field(2, &len_field(2, &record)))
    };
    assert!(scan(Signal::Logs, &logs(20)).is_ok());
    assert_eq!(scan(Signal::Logs, &logs(21)).unwrap_err().kind(), WireErrorKind::TooDeep);
    assert_scan_implies_prost(Signal::Logs, &logs(20));
}

// === randomised ===

fn arb_any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        ".{0,12}".prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(any_value::Value::BytesValue),
        any::<i32>().prop_map(any_value::Value::StringValueStrindex),
    ]
    .prop_map(|value| AnyValue { value: Some(value) });
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            prop::collection::vec(("[a-z.]{0,6}", inner), 0..3).prop_map(|pairs| {
                let values = pairs
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value: Some(value), key_strindex: 0 })
                    .collect();
                AnyValue { value: Some(any_value::Value::KvlistValue(KeyValueList { values })) }
            }),
        ]
    })
}

fn arb_attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    let key_value = ("[a-z._]{0,10}", prop::option::of(arb_any_value()), any::<i32>())
        .prop_map(|(key, value, key_strindex)| KeyValue { key, value, key_strindex });
    prop::collection::vec(key_value, 0..4)
}

fn arb_id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), prop::collection::vec(any::<u8>(), len)]
}

fn arb_span() -> impl Strategy<Value = Span> {
    let event = (any::<u64>(), ".{0,8}", arb_attributes()).prop_map(|(time, name, attributes)| {
        span::Event { time_unix_nano: time, name, attributes, dropped_attributes_count: 0 }
    });
    let link = (arb_id(16), arb_id(8), arb_attributes(), any::<u32>()).prop_map(
        |(trace_id, span_id, attributes, flags)| span::Link {
            trace_id,
            span_id,
            attributes,
            flags,
            ..Default::default()
        },
    );
    (
        (arb_id(16), arb_id(8), arb_id(8), ".{0,16}", any::<i32>(), any::<u64>()),
        arb_attributes(),
        prop::collection::vec(event, 0..2),
        prop::collection::vec(link, 0..2),
        prop::option::of((".{0,8}", any::<i32>())),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id, name, kind, start),
                attributes,
                events,
                links,
                status,
            )| {
                Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name,
                    kind,
                    start_time_unix_nano: start,
                    attributes,
                    events,
                    links,
                    status: status.map(|(message, code)| Status { message, code }),
                    ..Default::default()
                }
            },
        )
}

fn arb_resource() -> impl Strategy<Value = Option<Resource>> {
    prop::option::of(
        arb_attributes().prop_map(|attributes| Resource { attributes, ..Default::default() }),
    )
}

fn arb_scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    prop::option::of(("[a-z]{0,6}", arb_attributes()).prop_map(|(name, attributes)| {
        InstrumentationScope { name, attributes, ..Default::default() }
    }))
}

fn arb_traces() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (arb_scope(), prop::collection::vec(arb_span(), 0..4))
        .prop_map(|(scope, spans)| ScopeSpans { scope, spans, schema_url: String::new() });
    let resource =
        (arb_resource(), prop::collection::vec(scope, 0..3)).prop_map(|(resource, scope_spans)| {
            ResourceSpans { resource, scope_spans, schema_url: String::new() }
        });
    prop::collection::vec(resource, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

fn arb_logs() -> impl Strategy<Value = ExportLogsServiceRequest> {
    let record =
        (arb_id(16), arb_id(8), prop::option::of(arb_any_value()), arb_attributes(), any::<i32>())
            .prop_map(|(trace_id, span_id, body, attributes, severity_number)| LogRecord {
                trace_id,
                span_id,
                body,
                attributes,
                severity_number,
                ..Default::default()
            });
    let scope =
        (arb_scope(), prop::collection::vec(record, 0..4)).prop_map(|(scope, log_records)| {
            ScopeLogs { scope, log_records, schema_url: String::new() }
        });
    let resource =
        (arb_resource(), prop::collection::vec(scope, 0..3)).prop_map(|(resource, scope_logs)| {
            ResourceLogs { resource, scope_logs, schema_url: String::new() }
        });
    prop::collection::vec(resource, 0..3)
        .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

fn arb_exemplars() -> impl Strategy<Value = Vec<Exemplar>> {
    let exemplar = (arb_id(16), arb_id(8), arb_attributes(), any::<f64>()).prop_map(
        |(trace_id, span_id, filtered_attributes, value)| Exemplar {
            trace_id,
            span_id,
            filtered_attributes,
            value: Some(exemplar::Value::AsDouble(value)),
            ..Default::default()
        },
    );
    prop::collection::vec(exemplar, 0..2)
}

fn arb_data() -> impl Strategy<Value = Option<metric::Data>> {
    let number = || {
        (arb_attributes(), arb_exemplars(), any::<i64>()).prop_map(
            |(attributes, exemplars, value)| NumberDataPoint {
                attributes,
                exemplars,
                value: Some(number_data_point::Value::AsInt(value)),
                ..Default::default()
            },
        )
    };
    let histogram = (
        arb_attributes(),
        prop::collection::vec(any::<u64>(), 0..5),
        prop::collection::vec(any::<f64>(), 0..4),
    )
        .prop_map(|(attributes, bucket_counts, explicit_bounds)| HistogramDataPoint {
            attributes,
            bucket_counts,
            explicit_bounds,
            sum: Some(1.0),
            ..Default::default()
        });
    let exponential = (arb_attributes(), any::<i32>(), prop::collection::vec(any::<u64>(), 0..5))
        .prop_map(|(attributes, scale, bucket_counts)| ExponentialHistogramDataPoint {
            attributes,
            scale,
            positive: Some(Buckets { offset: -3, bucket_counts }),
            ..Default::default()
        });
    let summary = (arb_attributes(), prop::collection::vec((any::<f64>(), any::<f64>()), 0..3))
        .prop_map(|(attributes, quantiles)| SummaryDataPoint {
            attributes,
            quantile_values: quantiles
                .into_iter()
                .map(|(quantile, value)| ValueAtQuantile { quantile, value })
                .collect(),
            ..Default::default()
        });
    prop_oneof![
        Just(None),
        prop::collection::vec(number(), 0..4)
            .prop_map(|data_points| Some(metric::Data::Gauge(Gauge { data_points }))),
        prop::collection::vec(number(), 0..4).prop_map(|data_points| Some(metric::Data::Sum(
            Sum { data_points, ..Default::default() }
        ))),
        prop::collection::vec(histogram, 0..4).prop_map(|data_points| Some(
            metric::Data::Histogram(Histogram { data_points, ..Default::default() })
        )),
        prop::collection::vec(exponential, 0..4).prop_map(|data_points| {
            Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points,
                ..Default::default()
            }))
        }),
        prop::collection::vec(summary, 0..4)
            .prop_map(|data_points| Some(metric::Data::Summary(Summary { data_points }))),
    ]
}

fn arb_metrics() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    let metric = ("[a-z_]{0,10}", arb_data(), arb_attributes())
        .prop_map(|(name, data, metadata)| Metric { name, data, metadata, ..Default::default() });
    let scope = (arb_scope(), prop::collection::vec(metric, 0..4))
        .prop_map(|(scope, metrics)| ScopeMetrics { scope, metrics, schema_url: String::new() });
    let resource = (arb_resource(), prop::collection::vec(scope, 0..3)).prop_map(
        |(resource, scope_metrics)| ResourceMetrics {
            resource,
            scope_metrics,
            schema_url: String::new(),
        },
    );
    prop::collection::vec(resource, 0..3)
        .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
}

/// Small requests of every signal with events, links, exemplars and every data point type:
/// dense in the field kinds that mutations can break.
fn seed_requests() -> Vec<(Signal, Vec<u8>)> {
    vec![
        (Signal::Traces, everything_traces().encode_to_vec()),
        (Signal::Traces, fixtures::sidecar_traces(2, 2).encode_to_vec()),
        (Signal::Logs, everything_logs().encode_to_vec()),
        (Signal::Metrics, everything_metrics().encode_to_vec()),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Xor(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        (any::<prop::sample::Index>(), prop::sample::select(vec![1u8, 2, 3, 4, 5, 7, 0x80]))
            .prop_map(|(at, bits)| Mutation::Xor(at, bits)),
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Set(at, byte) => bytes[at.index(len)] = *byte,
        Mutation::Xor(at, bits) => bytes[at.index(len)] ^= bits,
        Mutation::Insert(at, byte) => bytes.insert(at.index(len + 1), *byte),
        Mutation::Remove(at) => {
            bytes.remove(at.index(len));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_imply_prost(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for signal in Signal::ALL {
            assert_scan_implies_prost(signal, &bytes);
        }
    }

    #[test]
    fn mutated_requests_imply_prost(
        seed in 0..4usize,
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let (signal, mut bytes) = seed_requests().swap_remove(seed);
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        assert_scan_implies_prost(signal, &bytes);
    }

    #[test]
    fn random_traces_count_like_prost(request in arb_traces()) {
        let bytes = request.encode_to_vec();
        prop_assert_eq!(scan(Signal::Traces, &bytes).unwrap().items, count_spans(&request));
    }

    #[test]
    fn random_logs_count_like_prost(request in arb_logs()) {
        let bytes = request.encode_to_vec();
        prop_assert_eq!(scan(Signal::Logs, &bytes).unwrap().items, count_log_records(&request));
    }

    #[test]
    fn random_metrics_count_like_prost(request in arb_metrics()) {
        let bytes = request.encode_to_vec();
        prop_assert_eq!(scan(Signal::Metrics, &bytes).unwrap().items, count_metric_points(&request));
    }
}

#[test]
fn single_byte_changes_of_dense_requests_imply_prost() {
    // A deterministic sweep complementing the random mutations: every byte of requests that use
    // every field, changed so that wire types and lengths flip.
    for (signal, bytes) in seed_requests() {
        for at in 0..bytes.len() {
            for bits in [1u8, 2, 3, 4, 5, 7, 0x40, 0x80] {
                let mut mutated = bytes.clone();
                mutated[at] ^= bits;
                assert_scan_implies_prost(signal, &mutated);
            }
        }
    }
}

// === requests that set every field ===

fn every_value() -> Vec<KeyValue> {
    let values = [
        any_value::Value::StringValue("s".to_owned()),
        any_value::Value::BoolValue(true),
        any_value::Value::IntValue(-1),
        any_value::Value::DoubleValue(1.5),
        any_value::Value::ArrayValue(ArrayValue {
            values: vec![AnyValue { value: Some(any_value::Value::IntValue(2)) }],
        }),
        any_value::Value::KvlistValue(KeyValueList { values: vec![string("inner", "v")] }),
        any_value::Value::BytesValue(vec![0xff, 0x00]),
        any_value::Value::StringValueStrindex(3),
    ];
    values
        .into_iter()
        .map(|value| KeyValue {
            key: "k".to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            key_strindex: 4,
        })
        .collect()
}

fn every_resource() -> Resource {
    Resource {
        attributes: every_value(),
        dropped_attributes_count: 1,
        entity_refs: vec![EntityRef {
            schema_url: "u".to_owned(),
            r#type: "service".to_owned(),
            id_keys: vec!["service.name".to_owned()],
            description_keys: vec!["service.version".to_owned()],
        }],
    }
}

fn every_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "n".to_owned(),
        version: "v".to_owned(),
        attributes: every_value(),
        dropped_attributes_count: 1,
    }
}

fn everything_traces() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        trace_state: "t=1".to_owned(),
        parent_span_id: vec![3; 8],
        flags: 1,
        name: "n".to_owned(),
        kind: 2,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes: every_value(),
        dropped_attributes_count: 1,
        events: vec![span::Event {
            time_unix_nano: 1,
            name: "e".to_owned(),
            attributes: every_value(),
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 1,
        links: vec![span::Link {
            trace_id: vec![4; 16],
            span_id: vec![5; 8],
            trace_state: "t=2".to_owned(),
            attributes: every_value(),
            dropped_attributes_count: 1,
            flags: 1,
        }],
        dropped_links_count: 1,
        status: Some(Status { message: "m".to_owned(), code: 2 }),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(every_resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(every_scope()),
                spans: vec![span],
                schema_url: "u".to_owned(),
            }],
            schema_url: "u".to_owned(),
        }],
    }
}

fn everything_logs() -> ExportLogsServiceRequest {
    let record = LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 2,
        severity_number: 9,
        severity_text: "INFO".to_owned(),
        body: Some(AnyValue { value: Some(any_value::Value::StringValue("b".to_owned())) }),
        attributes: every_value(),
        dropped_attributes_count: 1,
        flags: 1,
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        event_name: "e".to_owned(),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(every_resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(every_scope()),
                log_records: vec![record],
                schema_url: "u".to_owned(),
            }],
            schema_url: "u".to_owned(),
        }],
    }
}

fn every_exemplar() -> Vec<Exemplar> {
    [exemplar::Value::AsDouble(1.5), exemplar::Value::AsInt(2)]
        .into_iter()
        .map(|value| Exemplar {
            filtered_attributes: every_value(),
            time_unix_nano: 1,
            span_id: vec![2; 8],
            trace_id: vec![1; 16],
            value: Some(value),
        })
        .collect()
}

/// Seven data points: two number points in each of a gauge and a sum, one of each other type.
fn everything_metrics() -> ExportMetricsServiceRequest {
    let numbers = || {
        [number_data_point::Value::AsDouble(1.5), number_data_point::Value::AsInt(2)]
            .into_iter()
            .map(|value| NumberDataPoint {
                attributes: every_value(),
                start_time_unix_nano: 1,
                time_unix_nano: 2,
                exemplars: every_exemplar(),
                flags: 1,
                value: Some(value),
            })
            .collect::<Vec<_>>()
    };
    let histogram = HistogramDataPoint {
        attributes: every_value(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        count: 3,
        sum: Some(1.5),
        bucket_counts: vec![1, 2],
        explicit_bounds: vec![0.5],
        exemplars: every_exemplar(),
        flags: 1,
        min: Some(0.1),
        max: Some(0.9),
    };
    let buckets = Buckets { offset: -1, bucket_counts: vec![1, 300] };
    let exponential = ExponentialHistogramDataPoint {
        attributes: every_value(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        count: 3,
        sum: Some(1.5),
        scale: -2,
        zero_count: 1,
        positive: Some(buckets.clone()),
        negative: Some(buckets),
        flags: 1,
        exemplars: every_exemplar(),
        min: Some(0.1),
        max: Some(0.9),
        zero_threshold: 0.01,
    };
    let summary = SummaryDataPoint {
        attributes: every_value(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        count: 3,
        sum: 1.5,
        quantile_values: vec![ValueAtQuantile { quantile: 0.5, value: 1.5 }],
        flags: 1,
    };
    let data = [
        metric::Data::Gauge(Gauge { data_points: numbers() }),
        metric::Data::Sum(Sum {
            data_points: numbers(),
            aggregation_temporality: 2,
            is_monotonic: true,
        }),
        metric::Data::Histogram(Histogram {
            data_points: vec![histogram],
            aggregation_temporality: 1,
        }),
        metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![exponential],
            aggregation_temporality: 1,
        }),
        metric::Data::Summary(Summary { data_points: vec![summary] }),
    ];
    let metrics = data
        .into_iter()
        .map(|data| Metric {
            name: "m".to_owned(),
            description: "d".to_owned(),
            unit: "1".to_owned(),
            metadata: every_value(),
            data: Some(data),
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(every_resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(every_scope()),
                metrics,
                schema_url: "u".to_owned(),
            }],
            schema_url: "u".to_owned(),
        }],
    }
}
