//! OTLP/JSON: the JSON encoding of OTLP that OTLP/HTTP uses with `application/json`.
//!
//! The mapping itself is opentelemetry-proto's serde derives: lowerCamelCase keys, trace and
//! span ids as hex strings (either case), 64-bit integers as decimal strings (bare numbers are
//! accepted too), enums as integers, `bytesValue` as base64, and unknown keys ignored, as the
//! OTLP spec requires of receivers. What this module adds is the checks the protobuf path makes
//! in [`wire::scan`](crate::wire::scan) and serde does not: ids must have their proper length and
//! attribute values may not nest deeper than [`wire::MAX_DEPTH`](crate::wire::MAX_DEPTH), so a
//! request accepted here is also accepted after it has been forwarded as protobuf.
//!
//! Known gaps of opentelemetry-proto 0.33's mapping, left as they are rather than patched with
//! a hand-written parser:
//! - enum values given by name (`"kind": "SPAN_KIND_SERVER"`) are refused, although the spec
//!   asks receivers to accept them; every mainstream encoder sends integers;
//! - `ArrayValue`, `KeyValueList` and `KeyValue` have no serde defaults, so `"arrayValue": {}`
//!   (an empty array with its `values` omitted) and a key-value without `"key"` are refused;
//! - a `NaN` or infinite `doubleValue` is written as `null` and so reads back as an empty value;
//! - serde reads a JSON array as a struct's fields in order, so a body of `[]` is an empty request.

use serde::Serialize;

use crate::batch::DecodeError;
use crate::proto::common::v1::{AnyValue, KeyValue, any_value};
use crate::proto::metrics::v1::{Exemplar, Metric, metric};
use crate::proto::resource::v1::Resource;
use crate::signal::Signal;
use crate::wire::MAX_DEPTH;
use crate::{
    Batch, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
};

/// An OTLP/JSON body that cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or JSON that does not fit the OTLP mapping: a wrong type, a bad hex id, a
    /// number that does not parse.
    #[error("invalid OTLP/JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// A trace or span id of the wrong length.
    #[error("invalid OTLP/JSON: {path}: length {actual}, expected {expected} bytes or empty")]
    IdLength { path: String, actual: usize, expected: usize },
    /// Attribute values nested so deep that the protobuf path would refuse them.
    #[error("invalid OTLP/JSON: {path}: values nested deeper than {MAX_DEPTH} messages")]
    TooDeep { path: String },
}

/// Decodes an OTLP/JSON `Export*ServiceRequest` for `signal`. An empty body, like `{}`, is an
/// empty batch.
pub fn decode(signal: Signal, bytes: &[u8]) -> Result<Batch, JsonError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Batch::empty(signal));
    }
    match signal {
        Signal::Traces => {
            let request: ExportTraceServiceRequest = serde_json::from_slice(bytes)?;
            check_traces(&request)?;
            Ok(Batch::from_traces(request))
        }
        Signal::Logs => {
            let request: ExportLogsServiceRequest = serde_json::from_slice(bytes)?;
            check_logs(&request)?;
            Ok(Batch::from_logs(request))
        }
        Signal::Metrics => {
            let request: ExportMetricsServiceRequest = serde_json::from_slice(bytes)?;
            check_metrics(&request)?;
            Ok(Batch::from_metrics(request))
        }
    }
}

/// Encodes a batch as one OTLP/JSON `Export*ServiceRequest`, decoding it first if it is still
/// in wire form.
pub fn encode(batch: Batch) -> Result<Vec<u8>, DecodeError> {
    Ok(match batch.signal() {
        Signal::Traces => encode_message(&batch.into_traces()?),
        Signal::Logs => encode_message(&batch.into_logs()?),
        Signal::Metrics => encode_message(&batch.into_metrics()?),
    })
}

/// [`encode`] for a borrowed batch: a decoded request is serialized where it is, and only a
/// batch still in wire form is cloned (its list of byte chunks, not the data) to be decoded.
pub fn encode_ref(batch: &Batch) -> Result<Vec<u8>, DecodeError> {
    if let Some(request) = batch.as_traces() {
        return Ok(encode_message(request));
    }
    if let Some(request) = batch.as_logs() {
        return Ok(encode_message(request));
    }
    if let Some(request) = batch.as_metrics() {
        return Ok(encode_message(request));
    }
    encode(batch.clone())
}

/// Encodes any generated OTLP message, such as an `Export*ServiceResponse`, as OTLP/JSON.
pub fn encode_message<T: Serialize>(message: &T) -> Vec<u8> {
    // serde_json fails only on map keys that are not strings and on writer errors; the generated
    // OTLP types have no maps and a Vec never fails to grow, so the fallback is unreachable.
    serde_json::to_vec(message).unwrap_or_default()
}

// === checks serde does not make ===

/// Message depths (the request is 0) at which the protobuf path meets these messages; used to
/// refuse exactly the attribute nesting that `wire::scan` refuses.
const RESOURCE_DEPTH: u32 = 2;
const SCOPE_DEPTH: u32 = 3;
const ITEM_DEPTH: u32 = 3;
const METRIC_DEPTH: u32 = 3;
const DATA_POINT_DEPTH: u32 = 5;

fn check_traces(request: &ExportTraceServiceRequest) -> Result<(), JsonError> {
    for (r, resource_spans) in request.resource_spans.iter().enumerate() {
        let at = format!("resourceSpans[{r}]");
        check_resource(resource_spans.resource.as_ref(), &at)?;
        for (s, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            let at = format!("{at}.scopeSpans[{s}]");
            if let Some(scope) = &scope_spans.scope {
                check_attributes(&scope.attributes, SCOPE_DEPTH + 1, || format!("{at}.scope"))?;
            }
            for (i, span) in scope_spans.spans.iter().enumerate() {
                let path = |field: &str| format!("{at}.spans[{i}].{field}");
                check_id(&span.trace_id, 16, || path("traceId"))?;
                check_id(&span.span_id, 8, || path("spanId"))?;
                check_id(&span.parent_span_id, 8, || path("parentSpanId"))?;
                check_attributes(&span.attributes, ITEM_DEPTH + 1, || path("attributes"))?;
                for (e, event) in span.events.iter().enumerate() {
                    let depth = ITEM_DEPTH + 2;
                    check_attributes(&event.attributes, depth, || path(&format!("events[{e}]")))?;
                }
                for (l, link) in span.links.iter().enumerate() {
                    let path = |field: &str| path(&format!("links[{l}].{field}"));
                    check_id(&link.trace_id, 16, || path("traceId"))?;
                    check_id(&link.span_id, 8, || path("spanId"))?;
                    check_attributes(&link.attributes, ITEM_DEPTH + 2, || path("attributes"))?;
                }
            }
        }
    }
    Ok(())
}

fn check_logs(request: &ExportLogsServiceRequest) -> Result<(), JsonError> {
    for (r, resource_logs) in request.resource_logs.iter().enumerate() {
        let at = format!("resourceLogs[{r}]");
        check_resource(resource_logs.resource.as_ref(), &at)?;
        for (s, scope_logs) in resource_logs.scope_logs.iter().enumerate() {
            let at = format!("{at}.scopeLogs[{s}]");
            if let Some(scope) = &scope_logs.scope {
                check_attributes(&scope.attributes, SCOPE_DEPTH + 1, || format!("{at}.scope"))?;
            }
            for (i, record) in scope_logs.log_records.iter().enumerate() {
                let path = |field: &str| format!("{at}.logRecords[{i}].{field}");
                check_id(&record.trace_id, 16, || path("traceId"))?;
                check_id(&record.span_id, 8, || path("spanId"))?;
                check_attributes(&record.attributes, ITEM_DEPTH + 1, || path("attributes"))?;
                if let Some(body) = &record.body
                    && value_too_deep(body, ITEM_DEPTH + 1)
                {
                    return Err(JsonError::TooDeep { path: path("body") });
                }
            }
        }
    }
    Ok(())
}

fn check_metrics(request: &ExportMetricsServiceRequest) -> Result<(), JsonError> {
    for (r, resource_metrics) in request.resource_metrics.iter().enumerate() {
        let at = format!("resourceMetrics[{r}]");
        check_resource(resource_metrics.resource.as_ref(), &at)?;
        for (s, scope_metrics) in resource_metrics.scope_metrics.iter().enumerate() {
            let at = format!("{at}.scopeMetrics[{s}]");
            if let Some(scope) = &scope_metrics.scope {
                check_attributes(&scope.attributes, SCOPE_DEPTH + 1, || format!("{at}.scope"))?;
            }
            for (m, metric) in scope_metrics.metrics.iter().enumerate() {
                check_metric(metric, &format!("{at}.metrics[{m}]"))?;
            }
        }
    }
    Ok(())
}

fn check_metric(metric: &Metric, at: &str) -> Result<(), JsonError> {
    check_attributes(&metric.metadata, METRIC_DEPTH + 1, || format!("{at}.metadata"))?;
    // Every data point type keeps its attributes and exemplars the same way.
    let points: Vec<(&[KeyValue], &[Exemplar])> = match &metric.data {
        None => Vec::new(),
        Some(metric::Data::Gauge(data)) => {
            data.data_points.iter().map(|p| (&p.attributes[..], &p.exemplars[..])).collect()
        }
        Some(metric::Data::Sum(data)) => {
            data.data_points.iter().map(|p| (&p.attributes[..], &p.exemplars[..])).collect()
        }
        Some(metric::Data::Histogram(data)) => {
            data.data_points.iter().map(|p| (&p.attributes[..], &p.exemplars[..])).collect()
        }
        Some(metric::Data::ExponentialHistogram(data)) => {
            data.data_points.iter().map(|p| (&p.attributes[..], &p.exemplars[..])).collect()
        }
        Some(metric::Data::Summary(data)) => {
            data.data_points.iter().map(|p| (&p.attributes[..], &[][..])).collect()
        }
    };
    for (p, (attributes, exemplars)) in points.into_iter().enumerate() {
        let path = |field: &str| format!("{at}.dataPoints[{p}].{field}");
        check_attributes(attributes, DATA_POINT_DEPTH + 1, || path("attributes"))?;
        for (e, exemplar) in exemplars.iter().enumerate() {
            let path = |field: &str| path(&format!("exemplars[{e}].{field}"));
            check_id(&exemplar.trace_id, 16, || path("traceId"))?;
            check_id(&exemplar.span_id, 8, || path("spanId"))?;
            let depth = DATA_POINT_DEPTH + 2;
            check_attributes(&exemplar.filtered_attributes, depth, || path("filteredAttributes"))?;
        }
    }
    Ok(())
}

fn check_resource(resource: Option<&Resource>, at: &str) -> Result<(), JsonError> {
    let Some(resource) = resource else { return Ok(()) };
    check_attributes(&resource.attributes, RESOURCE_DEPTH + 1, || format!("{at}.resource"))
}

fn check_id(id: &[u8], expected: usize, path: impl FnOnce() -> String) -> Result<(), JsonError> {
    if id.is_empty() || id.len() == expected {
        return Ok(());
    }
    Err(JsonError::IdLength { path: path(), actual: id.len(), expected })
}

/// Refuses a list of key-values, held at message depth `depth`, whose values nest too deep.
fn check_attributes(
    attributes: &[KeyValue],
    depth: u32,
    path: impl FnOnce() -> String,
) -> Result<(), JsonError> {
    if attributes_too_deep(attributes, depth) {
        return Err(JsonError::TooDeep { path: path() });
    }
    Ok(())
}

fn attributes_too_deep(attributes: &[KeyValue], depth: u32) -> bool {
    if attributes.is_empty() {
        return false;
    }
    if depth > MAX_DEPTH {
        return true;
    }
    attributes.iter().any(|kv| kv.value.as_ref().is_some_and(|v| value_too_deep(v, depth + 1)))
}

/// Whether an `AnyValue` at message depth `depth` nests deeper than the protobuf path allows.
/// The depth grows on every call, so the recursion stops by `MAX_DEPTH` whatever the input.
fn value_too_deep(value: &AnyValue, depth: u32) -> bool {
    if depth > MAX_DEPTH {
        return true;
    }
    match &value.value {
        Some(any_value::Value::ArrayValue(array)) => {
            depth + 1 > MAX_DEPTH || array.values.iter().any(|v| value_too_deep(v, depth + 2))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            depth + 1 > MAX_DEPTH || attributes_too_deep(&list.values, depth + 2)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::proto::trace::v1::{span, status};
    use prost::Message;

    const SPEC_TRACE: &str = r#"{
      "resourceSpans": [{
        "resource": {
          "attributes": [{ "key": "service.name", "value": { "stringValue": "my.service" } }]
        },
        "scopeSpans": [{
          "scope": { "name": "my.library", "version": "1.0.0" },
          "spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "EEE19B7EC3C1B173",
            "name": "I'm a server span",
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": 1544712661000000000,
            "kind": 2,
            "attributes": [
              { "key": "my.span.attr", "value": { "stringValue": "some value" } },
              { "key": "http.status_code", "value": { "intValue": "200" } },
              { "key": "retries", "value": { "intValue": 3 } },
              { "key": "cache.hit", "value": { "boolValue": true } },
              { "key": "ratio", "value": { "doubleValue": 0.25 } }
            ],
            "status": { "code": 2, "message": "upstream reset" }
          }]
        }]
      }]
    }"#;

    fn traces(bytes: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
        Ok(decode(Signal::Traces, bytes)?.into_traces().unwrap())
    }

    fn string_value(value: &str) -> Option<AnyValue> {
        Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) })
    }

    #[test]
    fn decodes_the_spec_example_field_by_field() {
        let request = traces(SPEC_TRACE.as_bytes()).unwrap();
        let [resource_spans] = &request.resource_spans[..] else { panic!("one resource") };
        let resource = resource_spans.resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
        assert_eq!(resource.attributes[0].value, string_value("my.service"));
        let scope_spans = &resource_spans.scope_spans[0];
        let scope = scope_spans.scope.as_ref().unwrap();
        assert_eq!((scope.name.as_str(), scope.version.as_str()), ("my.library", "1.0.0"));
        let [span] = &scope_spans.spans[..] else { panic!("one span") };
        let trace_id = [
            0x5B, 0x8E, 0xFF, 0xF7, 0x98, 0x03, 0x81, 0x03, 0xD2, 0x69, 0xB6, 0x33, 0x81, 0x3F,
            0xC6, 0x0C,
        ];
        assert_eq!(span.trace_id, trace_id);
        assert_eq!(span.span_id, [0xEE, 0xE1, 0x9B, 0x7E, 0xC3, 0xC1, 0xB1, 0x74]);
        assert_eq!(span.parent_span_id, [0xEE, 0xE1, 0x9B, 0x7E, 0xC3, 0xC1, 0xB1, 0x73]);
        assert_eq!(span.name, "I'm a server span");
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        let values: Vec<_> = span.attributes.iter().map(|kv| kv.value.clone()).collect();
        let expected = [
            string_value("some value"),
            Some(AnyValue { value: Some(any_value::Value::IntValue(200)) }),
            Some(AnyValue { value: Some(any_value::Value::IntValue(3)) }),
            Some(AnyValue { value: Some(any_value::Value::BoolValue(true)) }),
            Some(AnyValue { value: Some(any_value::Value::DoubleValue(0.25)) }),
        ];
        assert_eq!(values, expected);
        let status = span.status.as_ref().unwrap();
        assert_eq!(status.code, status::StatusCode::Error as i32);
        assert_eq!(status.message, "upstream reset");
    }

    #[test]
    fn encodes_ids_as_hex_and_64_bit_ints_as_strings() {
        let request = traces(SPEC_TRACE.as_bytes()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&encode_message(&request)).unwrap();
        let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(span["spanId"], "eee19b7ec3c1b174");
        assert_eq!(span["startTimeUnixNano"], "1544712660000000000");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["attributes"][1]["value"]["intValue"], "200");
    }

    #[test]
    fn fixtures_round_trip_through_encode_and_decode() {
        let traces = fixtures::sidecar_traces(25, 3);
        let logs = fixtures::sidecar_logs(25, 3);
        let metrics = fixtures::sidecar_metrics(25, 3);
        let json = encode(Batch::from_traces(traces.clone())).unwrap();
        assert_eq!(decode(Signal::Traces, &json).unwrap().into_traces().unwrap(), traces);
        let json = encode(Batch::from_logs(logs.clone())).unwrap();
        assert_eq!(decode(Signal::Logs, &json).unwrap().into_logs().unwrap(), logs);
        let json = encode(Batch::from_metrics(metrics.clone())).unwrap();
        assert_eq!(decode(Signal::Metrics, &json).unwrap().into_metrics().unwrap(), metrics);
    }

    #[test]
    fn encodes_wire_form_batches_too() {
        let request = fixtures::sidecar_traces(5, 2);
        let batch = Batch::from_wire(Signal::Traces, request.encode_to_vec().into()).unwrap();
        let decoded = decode(Signal::Traces, &encode(batch).unwrap()).unwrap();
        assert_eq!(decoded.items(), 5);
        assert_eq!(decoded.into_traces().unwrap(), request);
    }

    #[test]
    fn decoded_json_passes_the_wire_scan() {
        let batch = decode(Signal::Traces, SPEC_TRACE.as_bytes()).unwrap();
        let bytes = batch.into_traces().unwrap().encode_to_vec();
        assert_eq!(crate::wire::scan(Signal::Traces, &bytes).unwrap().items, 1);
    }

    #[test]
    fn empty_bodies_are_empty_batches() {
        for (signal, body) in [
            (Signal::Traces, &b""[..]),
            (Signal::Logs, b" \n"),
            (Signal::Metrics, b"{}"),
            (Signal::Traces, b"{\"resourceSpans\": []}"),
        ] {
            let batch = decode(signal, body).unwrap();
            assert_eq!((batch.signal(), batch.items()), (signal, 0));
        }
    }

    #[test]
    fn unknown_fields_are_ignored_at_every_level() {
        let body = r#"{
          "futureTopLevel": {"a": [1, 2]},
          "resourceSpans": [{
            "resource": { "attributes": [], "futureResourceField": 1 },
            "scopeSpans": [{
              "futureScopeField": "x",
              "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "name": "s",
                "futureSpanField": {"nested": true},
                "attributes": [{ "key": "k", "value": { "stringValue": "v", "futureValue": 1 } }]
              }]
            }]
          }]
        }"#;
        let request = traces(body.as_bytes()).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "s");
        assert_eq!(span.attributes[0].value, string_value("v"));
    }

    #[test]
    fn unknown_fields_are_ignored_in_metric_points() {
        let body = r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
            "name": "m", "futureMetricField": 1,
            "gauge": {"dataPoints": [{"asInt": "7", "futurePointField": [1]}]}
        }]}]}]}"#;
        let batch = decode(Signal::Metrics, body.as_bytes()).unwrap();
        assert_eq!(batch.items(), 1);
    }

    #[test]
    fn enum_names_are_refused_as_documented() {
        let body =
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_SERVER"}]}]}]}"#;
        let error = decode(Signal::Traces, body.as_bytes()).unwrap_err();
        assert!(matches!(error, JsonError::Syntax(_)), "{error}");
    }

    #[test]
    fn invalid_json_and_wrong_types_are_errors() {
        let cases = [
            "{",
            "not json",
            "7",
            r#"{"resourceSpans": {}}"#,
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7}]}]}]}"#,
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}"#,
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}"#,
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": -1}]}]}]}"#,
        ];
        for body in cases {
            let error = decode(Signal::Traces, body.as_bytes()).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with("invalid OTLP/JSON: "), "{message}");
            assert!(message.contains("line 1 column"), "{message}");
        }
    }

    #[test]
    fn ids_of_the_wrong_length_are_refused_with_their_path() {
        let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}, {"spanId":"0102"}]}]}]}"#;
        let error = decode(Signal::Traces, body.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTLP/JSON: resourceSpans[0].scopeSpans[0].spans[1].spanId: \
             length 2, expected 8 bytes or empty"
        );
        let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"01"}]}]}]}"#;
        let error = decode(Signal::Logs, body.as_bytes()).unwrap_err();
        assert!(matches!(error, JsonError::IdLength { actual: 1, expected: 16, .. }), "{error}");
    }

    /// A log body of `levels` nested single-entry kvlists.
    fn nested_log_body(levels: usize) -> String {
        let mut value = r#"{"stringValue":"leaf"}"#.to_owned();
        for _ in 0..levels {
            value = format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{value}}}]}}}}"#);
        }
        format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{value}}}]}}]}}]}}"#)
    }

    #[test]
    fn nesting_is_limited_exactly_like_the_wire_scan() {
        // The body sits at depth 4 and each kvlist level adds 3, so 20 levels reach depth 64.
        for levels in [19, 20, 21] {
            let json = decode(Signal::Logs, nested_log_body(levels).as_bytes());
            let request: ExportLogsServiceRequest =
                serde_json::from_str(&nested_log_body(levels)).unwrap();
            let wire = crate::wire::scan(Signal::Logs, &request.encode_to_vec());
            assert_eq!(json.is_ok(), wire.is_ok(), "{levels} levels: {json:?} vs {wire:?}");
            assert_eq!(json.is_ok(), levels <= 20, "{levels} levels");
        }
        let error = decode(Signal::Logs, nested_log_body(24).as_bytes()).unwrap_err();
        assert!(error.to_string().contains("logRecords[0].body"), "{error}");
    }
}
