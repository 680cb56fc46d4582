use otlp::proto::common::v1::{AnyValue, any_value};
use otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Status, span::Event, span::Link};

use prost::Message;

use super::*;
use crate::zipkin::encode;

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
const PARENT: [u8; 8] = [0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8];

fn tag<'t>(tags: &'t Tags<'_>, key: &str) -> Option<&'t str> {
    tags.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_ref())
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

/// A CLIENT span as a sidecar makes it: Envoy's tags, a 503 answer.
fn client_span() -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: SPAN.to_vec(),
        parent_span_id: PARENT.to_vec(),
        trace_state: "rojo=00f067aa0ba902b7".into(),
        name: "reviews.default.svc.cluster.local:9080/*".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 1_700_000_000_123_456_789,
        end_time_unix_nano: 1_700_000_000_125_456_000,
        attributes: vec![
            text("http.method", "GET"),
            int("http.status_code", 503),
            text("response_flags", "UF,URX"),
            text("error", "true"),
            text("net.peer.ip", "10.1.2.3"),
            int("net.peer.port", 9080),
            text("peer.service", "reviews"),
        ],
        events: vec![
            Event {
                time_unix_nano: 1_700_000_000_124_000_000,
                name: "retry".into(),
                ..Default::default()
            },
            Event {
                time_unix_nano: 1_700_000_000_125_000_000,
                name: "reset".into(),
                attributes: vec![int("attempt", 2), text("cause", "refused")],
                dropped_attributes_count: 1,
            },
        ],
        links: vec![Link {
            trace_id: TRACE.to_vec(),
            span_id: PARENT.to_vec(),
            trace_state: "a=b".into(),
            attributes: vec![text("why", "batch")],
            dropped_attributes_count: 0,
            flags: 0,
        }],
        status: Some(Status {
            code: status::StatusCode::Error as i32,
            message: "upstream reset".into(),
        }),
        ..Default::default()
    }
}

fn request(
    resource: Vec<KeyValue>,
    scope: Option<InstrumentationScope>,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: resource, ..Default::default() }),
            scope_spans: vec![ScopeSpans { scope, spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

#[test]
fn a_sidecar_client_span_becomes_the_zipkin_span_the_collector_would_send() {
    let request = request(
        vec![text("service.name", "productpage.default"), text("k8s.namespace.name", "default")],
        Some(InstrumentationScope {
            name: "envoy".into(),
            version: "1.0".into(),
            ..Default::default()
        }),
        vec![client_span()],
    );
    let spans = zipkin_spans(&request, "unknown").unwrap();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.trace_id, u128::from_be_bytes(TRACE));
    assert_eq!(span.id, 0x00f0_67aa_0ba9_02b7);
    assert_eq!(span.parent_id, Some(0x5399_5c3f_42cd_8ad8));
    assert_eq!(span.kind, Some(ZipkinKind::Client));
    assert_eq!(span.timestamp, Some(1_700_000_000_123_457), "rounded to the microsecond");
    assert_eq!(span.duration, Some(1_999));
    assert_eq!(
        span.local_endpoint,
        Some(Endpoint { service_name: "productpage.default".into(), ..Endpoint::default() })
    );
    assert_eq!(
        span.remote_endpoint,
        Some(Endpoint {
            service_name: "reviews".into(),
            ipv4: Some(Ipv4Addr::new(10, 1, 2, 3)),
            ipv6: None,
            port: 9080,
        })
    );
    let tags: Vec<(&str, &str)> = span.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    assert_eq!(
        tags,
        [
            ("error", "true"),
            ("http.method", "GET"),
            ("http.status_code", "503"),
            ("k8s.namespace.name", "default"),
            ("otel.library.name", "envoy"),
            ("otel.library.version", "1.0"),
            ("otel.status_code", "STATUS_CODE_ERROR"),
            ("otel.status_description", "upstream reset"),
            (
                "otlp.link.0",
                "4bf92f3577b34da6a3ce929d0e0e4736|53995c3f42cd8ad8|a=b|{\"why\":\"batch\"}|0"
            ),
            ("response_flags", "UF,URX"),
            ("w3c.tracestate", "rojo=00f067aa0ba902b7"),
        ]
    );
    assert_eq!(
        span.annotations,
        [
            Annotation { timestamp: 1_700_000_000_124_000, value: "retry".into() },
            Annotation {
                timestamp: 1_700_000_000_125_000,
                value: "reset|{\"attempt\":2,\"cause\":\"refused\"}|1".into()
            },
        ]
    );
}

#[test]
fn the_json_is_zipkin_v2() {
    let request =
        request(vec![text("service.name", "productpage.default")], None, vec![client_span()]);
    let spans = zipkin_spans(&request, "unknown").unwrap();
    let json: serde_json::Value = serde_json::from_str(&encode::json(&spans)).unwrap();
    let span = &json[0];
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["id"], "00f067aa0ba902b7");
    assert_eq!(span["parentId"], "53995c3f42cd8ad8");
    assert_eq!(span["kind"], "CLIENT");
    assert_eq!(span["name"], "reviews.default.svc.cluster.local:9080/*");
    assert_eq!(span["timestamp"], 1_700_000_000_123_457_u64);
    assert_eq!(span["duration"], 1_999);
    assert_eq!(span["localEndpoint"], serde_json::json!({"serviceName": "productpage.default"}));
    assert_eq!(
        span["remoteEndpoint"],
        serde_json::json!({"serviceName": "reviews", "ipv4": "10.1.2.3", "port": 9080})
    );
    assert_eq!(
        span["annotations"][0],
        serde_json::json!({"timestamp": 1_700_000_000_124_000_u64, "value": "retry"})
    );
    assert_eq!(span["tags"]["http.status_code"], "503");
    assert_eq!(span.as_object().unwrap().len(), 11);
}

#[test]
fn the_protobuf_is_zipkin_proto3() {
    let mut root = client_span();
    root.parent_span_id.clear();
    root.trace_id[..8].fill(0);
    root.kind = span::SpanKind::Server as i32;
    let request = request(vec![text("service.name", "a")], None, vec![root]);
    let spans = zipkin_spans(&request, "x").unwrap();
    let list = encode::ListOfSpans::decode(encode::proto(&spans).as_slice()).unwrap();
    let span = &list.spans[0];
    assert_eq!(span.trace_id, TRACE[8..].to_vec(), "a 64-bit trace id is 8 bytes");
    assert!(span.parent_id.is_empty());
    assert_eq!(span.id, SPAN.to_vec());
    assert_eq!(span.kind, 2);
    assert_eq!(span.timestamp, 1_700_000_000_123_457);
    assert_eq!(span.duration, 1_999);
    assert_eq!(span.local_endpoint.as_ref().unwrap().service_name, "a");
    let remote = span.remote_endpoint.as_ref().unwrap();
    assert_eq!((remote.ipv4.as_slice(), remote.port), (&[10, 1, 2, 3][..], 9080));
    assert_eq!(span.annotations.len(), 2);
    assert_eq!(span.tags.get("error").map(String::as_str), Some("true"));
    let json: serde_json::Value = serde_json::from_str(&encode::json(&spans)).unwrap();
    assert_eq!(json[0]["traceId"], "a3ce929d0e0e4736", "and 16 hex digits in JSON");
}

#[test]
fn service_names_come_from_the_resource_or_the_default() {
    let span = || Span { trace_id: TRACE.to_vec(), span_id: SPAN.to_vec(), ..Default::default() };
    let local = |resource: Vec<KeyValue>| {
        let request = request(resource, None, vec![span()]);
        let spans = zipkin_spans(&request, "<missing service name>").unwrap();
        let tags: Tags<'static> = spans[0]
            .tags
            .iter()
            .map(|(k, v)| (Cow::Owned(k.to_string()), Cow::Owned(v.to_string())))
            .collect();
        (spans[0].local_endpoint.clone().unwrap().service_name.into_owned(), tags)
    };
    let (name, tags) =
        local(vec![text("k8s.deployment.name", "reviews-v1"), text("faas.name", "fn")]);
    assert_eq!(name, "fn");
    assert_eq!(tag(&tags, "otlp.service.name.source"), Some("faas.name"));
    assert_eq!(tag(&tags, "k8s.deployment.name"), Some("reviews-v1"));
    let (name, tags) = local(vec![text("k8s.deployment.name", "reviews-v1")]);
    assert_eq!(name, "reviews-v1");
    assert!(tag(&tags, "k8s.deployment.name").is_none());
    let (name, tags) = local(Vec::new());
    assert_eq!(name, "<missing service name>");
    assert!(tags.is_empty());
}

#[test]
fn status_kind_and_times_edge_cases() {
    let mut span = Span {
        trace_id: TRACE.to_vec(),
        span_id: SPAN.to_vec(),
        parent_span_id: vec![1, 2, 3],
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: 5,
        end_time_unix_nano: 400,
        attributes: vec![
            text("error", "false"),
            text("net.host.ip", "::1"),
            int("net.host.port", 15006),
        ],
        status: Some(Status { code: status::StatusCode::Ok as i32, message: String::new() }),
        ..Default::default()
    };
    let named = request(vec![text("service.name", "s")], None, vec![span.clone()]);
    let spans = zipkin_spans(&named, "x").unwrap();
    let zipkin = &spans[0];
    assert_eq!(zipkin.parent_id, None, "a malformed parent id makes a root");
    assert_eq!(zipkin.kind, None);
    assert_eq!(tag(&zipkin.tags, "span.kind"), Some("internal"));
    assert!(tag(&zipkin.tags, "error").is_none(), "only an error status sets error");
    assert_eq!(tag(&zipkin.tags, "otel.status_code"), Some("STATUS_CODE_OK"));
    assert_eq!(zipkin.timestamp, None, "a start in the epoch's first second is absent");
    assert_eq!(zipkin.duration, Some(1), "under a microsecond rounds up");
    let local = zipkin.local_endpoint.as_ref().unwrap();
    assert_eq!((local.ipv6, local.port), (Some(Ipv6Addr::LOCALHOST), 15006));
    assert!(tag(&zipkin.tags, "net.host.ip").is_none());
    assert_eq!(zipkin.remote_endpoint, None);

    span.start_time_unix_nano = 1_700_000_000_000_000_000;
    for (length, micros) in [(0, None), (999, Some(1)), (1_499, Some(1)), (1_500, Some(2))] {
        span.end_time_unix_nano = span.start_time_unix_nano + length;
        let timed = request(vec![], None, vec![span.clone()]);
        assert_eq!(zipkin_spans(&timed, "x").unwrap()[0].duration, micros, "{length} ns");
    }
    span.end_time_unix_nano = span.start_time_unix_nano - 1;
    let backwards = request(vec![], None, vec![span.clone()]);
    assert!(matches!(zipkin_spans(&backwards, "x"), Err(InvalidSpan::NegativeDuration { .. })));

    span.status = None;
    span.end_time_unix_nano = 0;
    let unnamed = request(vec![], None, vec![span.clone()]);
    let spans = zipkin_spans(&unnamed, "x").unwrap();
    assert!(tag(&spans[0].tags, "otel.status_code").is_none());
    assert_eq!(spans[0].duration, None);

    span.span_id = vec![0; 8];
    let zero_span_id = request(vec![], None, vec![span.clone()]);
    let error = zipkin_spans(&zero_span_id, "x").unwrap_err();
    assert_eq!(error.to_string(), "span \"\" has an invalid span id (zero or not 8 bytes)");
    span.span_id = SPAN.to_vec();
    span.trace_id = vec![1; 15];
    let short_trace_id = request(vec![], None, vec![span]);
    assert!(matches!(zipkin_spans(&short_trace_id, "x"), Err(InvalidSpan::TraceId { .. })));
}

#[test]
fn a_span_attribute_wins_over_a_resource_one_and_the_last_of_a_repeated_key_wins() {
    let span = Span {
        trace_id: TRACE.to_vec(),
        span_id: SPAN.to_vec(),
        attributes: vec![text("zone", "span"), int("dup", 1), text("a", "x"), int("dup", 2)],
        ..Default::default()
    };
    let request = request(
        vec![text("service.name", "s"), text("zone", "resource"), text("region", "eu")],
        None,
        vec![span],
    );
    let spans = zipkin_spans(&request, "x").unwrap();
    let tags: Vec<(&str, &str)> =
        spans[0].tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    assert_eq!(tags, [("a", "x"), ("dup", "2"), ("region", "eu"), ("zone", "span")]);
}

mod randomised {
    use otlp::proto::common::v1::{ArrayValue, KeyValueList};
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = Option<AnyValue>> {
        let leaf = prop_oneof![
            any::<String>().prop_map(any_value::Value::StringValue),
            any::<bool>().prop_map(any_value::Value::BoolValue),
            any::<i64>().prop_map(any_value::Value::IntValue),
            any::<f64>().prop_map(any_value::Value::DoubleValue),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(any_value::Value::BytesValue),
        ];
        let nested = leaf.prop_recursive(2, 8, 3, |inner| {
            let item = inner.prop_map(|value| AnyValue { value: Some(value) });
            prop_oneof![
                prop::collection::vec(item.clone(), 0..3)
                    .prop_map(|values| any_value::Value::ArrayValue(ArrayValue { values })),
                prop::collection::vec((any::<String>(), item), 0..3).prop_map(|pairs| {
                    let values = pairs
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value: Some(value), key_strindex: 0 })
                        .collect();
                    any_value::Value::KvlistValue(KeyValueList { values })
                }),
            ]
        });
        prop::option::of(nested.prop_map(|value| AnyValue { value: Some(value) }))
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        let pair = (any::<String>(), value()).prop_map(|(key, value)| KeyValue {
            key,
            value,
            key_strindex: 0,
        });
        prop::collection::vec(pair, 0..5)
    }

    fn span() -> impl Strategy<Value = Span> {
        let id = |len: usize| prop::collection::vec(any::<u8>(), 0..=len + 1);
        let event = (any::<u64>(), any::<String>(), attributes(), any::<u32>()).prop_map(
            |(time_unix_nano, name, attributes, dropped_attributes_count)| Event {
                time_unix_nano,
                name,
                attributes,
                dropped_attributes_count,
            },
        );
        (
            (id(16), id(8), id(8), any::<String>(), any::<i32>()),
            (any::<u64>(), any::<u64>(), attributes()),
            prop::collection::vec(event, 0..2),
            prop::option::of((any::<i32>(), any::<String>())),
        )
            .prop_map(
                |((trace_id, span_id, parent, name, kind), (start, end, attrs), events, status)| {
                    Span {
                        trace_id,
                        span_id,
                        parent_span_id: parent,
                        name,
                        kind,
                        start_time_unix_nano: start,
                        end_time_unix_nano: end,
                        attributes: attrs,
                        events,
                        status: status.map(|(code, message)| Status { code, message }),
                        ..Default::default()
                    }
                },
            )
    }

    proptest! {
        /// Any batch translates or is refused with a reason, and what translates is valid JSON
        /// and protobuf with one span per input span.
        #[test]
        fn any_batch_translates_or_is_refused(
            resource in attributes(),
            spans in prop::collection::vec(span(), 0..4),
        ) {
            let count = spans.len();
            let request = request(resource, None, spans);
            if let Ok(zipkin) = zipkin_spans(&request, "default") {
                prop_assert_eq!(zipkin.len(), count);
                let json: serde_json::Value = serde_json::from_str(&encode::json(&zipkin)).unwrap();
                prop_assert_eq!(json.as_array().map(Vec::len), Some(count));
                let list = encode::ListOfSpans::decode(encode::proto(&zipkin).as_slice()).unwrap();
                prop_assert_eq!(list.spans.len(), count);
            }
        }
    }
}
