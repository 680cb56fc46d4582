//! What the format tests build their requests from.

use otlp::ExportTraceServiceRequest;
use otlp::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use otlp::proto::resource::v1::Resource;
use otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};

/// 2023-11-14 22:13:20 UTC.
pub(super) const START: u64 = 1_700_000_000_000_000_000;

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

pub(super) fn string(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.into()))
}

pub(super) fn int(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

pub(super) fn resource() -> Option<Resource> {
    Some(Resource { attributes: vec![string("service.name", "checkout")], ..Default::default() })
}

pub(super) fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "envoy".into(),
        version: "1.27.2".into(),
        ..Default::default()
    })
}

/// One server span with an event and a link.
pub(super) fn traces() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: (1..=16).collect(),
        span_id: vec![0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x02, 0x03, 0x04],
        parent_span_id: vec![],
        name: "GET /cart".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: START,
        end_time_unix_nano: START + 1_500_000,
        attributes: vec![string("http.method", "GET"), int("http.status_code", 200)],
        events: vec![span::Event {
            time_unix_nano: START + 1000,
            name: "retry".into(),
            attributes: vec![int("attempt", 2)],
            dropped_attributes_count: 0,
        }],
        links: vec![span::Link {
            trace_id: vec![0xff; 16],
            span_id: vec![0xee; 8],
            ..Default::default()
        }],
        status: Some(Status { message: "".into(), code: status::StatusCode::Ok as i32 }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
