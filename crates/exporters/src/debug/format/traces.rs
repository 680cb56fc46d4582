//! Spans at every verbosity.

use std::fmt::Write;

use otlp::ExportTraceServiceRequest;
use otlp::proto::trace::v1::{Span, span, status};

use super::hierarchy::{self, LevelNames};
use super::lines::{Lines, attributes_inline};
use super::values::{hex, timestamp};

const NAMES: LevelNames = LevelNames {
    normal: ["ResourceTraces", "ScopeTraces"],
    detailed: ["ResourceSpans", "ScopeSpans", "Span"],
};

/// `TracesExporter {"resource spans": 1, "spans": 4}`.
pub fn traces_summary(request: &ExportTraceServiceRequest) -> String {
    let spans = hierarchy::items(&request.resource_spans).count();
    format!(
        "TracesExporter {{\"resource spans\": {}, \"spans\": {spans}}}",
        request.resource_spans.len()
    )
}

/// One line per span: `name trace_id span_id key=value ...`, under a line per resource and
/// scope.
pub fn traces_normal(request: &ExportTraceServiceRequest) -> String {
    hierarchy::normal(&request.resource_spans, &NAMES, |out, span| {
        let _ = write!(out, "{} {} {}", span.name, hex(&span.trace_id), hex(&span.span_id));
        attributes_inline(out, &span.attributes, " ");
        out.push('\n');
    })
}

/// Every field of every span.
pub fn traces_detailed(request: &ExportTraceServiceRequest) -> String {
    hierarchy::detailed(&request.resource_spans, &NAMES, span_detailed)
}

fn span_detailed(out: &mut Lines, span: &Span) {
    out.field("Trace ID", &hex(&span.trace_id));
    out.field("Parent ID", &hex(&span.parent_span_id));
    out.field("ID", &hex(&span.span_id));
    out.field("Name", &span.name);
    out.field("Kind", span_kind(span.kind));
    if !span.trace_state.is_empty() {
        out.field("TraceState", &span.trace_state);
    }
    out.field("Start time", &timestamp(span.start_time_unix_nano));
    out.field("End time", &timestamp(span.end_time_unix_nano));
    let (code, message) = match &span.status {
        Some(status) => (status.code, status.message.as_str()),
        None => (0, ""),
    };
    out.field("Status code", status_code(code));
    out.field("Status message", message);
    out.attributes("Attributes", &span.attributes);
    out.list("Events", "SpanEvent", &span.events, |out, event| {
        out.arrow("Name", &event.name);
        out.arrow("Timestamp", timestamp(event.time_unix_nano));
        out.arrow("DroppedAttributesCount", event.dropped_attributes_count);
        out.nested_attributes(&event.attributes);
    });
    out.list("Links", "SpanLink", &span.links, |out, link| {
        out.arrow("Trace ID", hex(&link.trace_id));
        out.arrow("ID", hex(&link.span_id));
        out.arrow("TraceState", &link.trace_state);
        out.arrow("DroppedAttributesCount", link.dropped_attributes_count);
        out.nested_attributes(&link.attributes);
    });
}

fn span_kind(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => "Internal",
        Ok(span::SpanKind::Server) => "Server",
        Ok(span::SpanKind::Client) => "Client",
        Ok(span::SpanKind::Producer) => "Producer",
        Ok(span::SpanKind::Consumer) => "Consumer",
        Ok(span::SpanKind::Unspecified) | Err(_) => "Unspecified",
    }
}

fn status_code(code: i32) -> &'static str {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Ok) => "Ok",
        Ok(status::StatusCode::Error) => "Error",
        Ok(status::StatusCode::Unset) | Err(_) => "Unset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::format::fixtures::traces;

    #[test]
    fn traces_print_at_every_verbosity() {
        let request = traces();
        assert_eq!(
            traces_summary(&request),
            "TracesExporter {\"resource spans\": 1, \"spans\": 1}"
        );
        assert_eq!(
            traces_normal(&request),
            "ResourceTraces #0 service.name=checkout\n\
             ScopeTraces #0 envoy@1.27.2\n\
             GET /cart 0102030405060708090a0b0c0d0e0f10 aabbccdd01020304 http.method=GET http.status_code=200\n"
        );
        let detailed = traces_detailed(&request);
        let expected = "\
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(checkout)
ScopeSpans #0
ScopeSpans SchemaURL: 
InstrumentationScope envoy 1.27.2
Span #0
    Trace ID       : 0102030405060708090a0b0c0d0e0f10
    Parent ID      : 
    ID             : aabbccdd01020304
    Name           : GET /cart
    Kind           : Server
    Start time     : 2023-11-14 22:13:20 +0000 UTC
    End time       : 2023-11-14 22:13:20.0015 +0000 UTC
    Status code    : Ok
    Status message : 
Attributes:
     -> http.method: Str(GET)
     -> http.status_code: Int(200)
Events:
SpanEvent #0
     -> Name: retry
     -> Timestamp: 2023-11-14 22:13:20.000001 +0000 UTC
     -> DroppedAttributesCount: 0
     -> Attributes::
         -> attempt: Int(2)
Links:
SpanLink #0
     -> Trace ID: ffffffffffffffffffffffffffffffff
     -> ID: eeeeeeeeeeeeeeee
     -> TraceState: 
     -> DroppedAttributesCount: 0
";
        assert_eq!(detailed, expected);
    }
}
