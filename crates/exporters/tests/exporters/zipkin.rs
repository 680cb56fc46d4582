//! The `zipkin` exporter against a loopback HTTP server standing in for a Zipkin collector.

use exporters::ZipkinExporterFactory;
use exporters::debug::format::hex;

use super::*;

/// The spans of a Zipkin JSON body.
fn json_spans(body: &[u8]) -> Vec<serde_json::Value> {
    match serde_json::from_slice(body).unwrap() {
        serde_json::Value::Array(spans) => spans,
        other => panic!("expected a JSON array, got {other}"),
    }
}

#[tokio::test]
async fn zipkin_posts_every_span_as_json_to_the_endpoint() {
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, None).await;
    let yaml =
        format!("endpoint: http://{address}/api/v2/spans\nheaders:\n  x-tenant: t1\n{FAST_RETRY}");
    let exporter = Running::start(&ZipkinExporterFactory, &yaml, Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    eventually("the sent count", || exporter.metric("otelcol_exporter_sent_spans_total") == 10)
        .await;
    exporter.stop().await;

    let requests = destination.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, http::Method::POST);
    assert_eq!(request.path, "/api/v2/spans");
    assert_eq!(header(request, "content-type"), Some("application/json"));
    assert_eq!(header(request, "content-encoding"), None, "uncompressed by default");
    assert_eq!(header(request, "x-tenant"), Some("t1"));
    let spans = json_spans(&request.body);
    let sent: Vec<_> = traces_request()
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .cloned()
        .collect();
    assert_eq!(spans.len(), sent.len());
    for (zipkin, otlp) in spans.iter().zip(&sent) {
        assert_eq!(zipkin["traceId"], hex(&otlp.trace_id));
        assert_eq!(zipkin["id"], hex(&otlp.span_id));
        assert_eq!(zipkin["name"], otlp.name.as_str());
        assert_eq!(zipkin["timestamp"], (otlp.start_time_unix_nano + 500) / 1000);
        assert!(
            zipkin["localEndpoint"]["serviceName"].as_str().is_some_and(|name| !name.is_empty())
        );
        assert!(matches!(zipkin["kind"].as_str(), Some("SERVER" | "CLIENT")), "{zipkin}");
    }
}

#[tokio::test]
async fn zipkin_proto_and_gzip_when_configured() {
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, None).await;
    let yaml = format!(
        "endpoint: http://{address}/api/v2/spans\nformat: proto\ncompression: gzip\n{FAST_RETRY}"
    );
    let exporter = Running::start(&ZipkinExporterFactory, &yaml, Signal::Traces).await;
    // A batch the pipeline holds decoded is translated without a round trip through bytes.
    exporter.consume(Batch::from_traces(traces_request())).await.unwrap();
    eventually("the request", || !destination.requests().is_empty()).await;
    exporter.stop().await;
    let request = &destination.requests()[0];
    assert_eq!(header(request, "content-type"), Some("application/x-protobuf"));
    assert_eq!(header(request, "content-encoding"), Some("gzip"));
    let body = transport::gzip::decompress(&request.body, 16 << 20).unwrap();
    // zipkin.proto3 ListOfSpans: field 1, length-delimited, once per span.
    let mut spans = 0;
    let mut rest = body.as_slice();
    while !rest.is_empty() {
        assert_eq!(rest[0], 0x0a, "ListOfSpans holds only spans");
        rest = &rest[1..];
        let length = usize::try_from(prost::encoding::decode_varint(&mut rest).unwrap()).unwrap();
        rest = &rest[length..];
        spans += 1;
    }
    assert_eq!(spans, 10);
}

#[tokio::test]
async fn zipkin_retries_unavailable_and_counts_a_refused_batch() {
    let unavailable = response(StatusCode::SERVICE_UNAVAILABLE, &[], b"");
    let accepted = response(StatusCode::ACCEPTED, &[], b"");
    let destination = HttpDestination::with_script(vec![unavailable, accepted]);
    let address = http_server(&destination, None).await;
    let yaml = format!("endpoint: http://{address}/api/v2/spans\n{FAST_RETRY}");
    let exporter = Running::start(&ZipkinExporterFactory, &yaml, Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    eventually("the sent count", || exporter.metric("otelcol_exporter_sent_spans_total") == 10)
        .await;
    assert_eq!(destination.requests().len(), 2);
    exporter.stop().await;

    let refused = response(StatusCode::BAD_REQUEST, &[("content-type", "text/plain")], b"bad span");
    let destination = HttpDestination::with_script(vec![refused]);
    let address = http_server(&destination, None).await;
    // Without a queue the caller learns the outcome.
    let yaml = format!(
        "endpoint: http://{address}/api/v2/spans\nsending_queue:\n  enabled: false\n{FAST_RETRY}"
    );
    let exporter = Running::start(&ZipkinExporterFactory, &yaml, Signal::Traces).await;
    let refusal = exporter.consume(traces_batch()).await.unwrap_err();
    assert!(matches!(refusal, ConsumeError::Permanent { rejected: 10, .. }), "{refusal:?}");
    assert_eq!(destination.requests().len(), 1);
    assert_eq!(exporter.metric("otelcol_exporter_send_failed_spans_total"), 10);
    exporter.stop().await;
}

#[tokio::test]
async fn zipkin_refuses_a_batch_with_an_invalid_span_without_sending_it() {
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, None).await;
    let yaml = format!(
        "endpoint: http://{address}/api/v2/spans\nsending_queue:\n  enabled: false\n{FAST_RETRY}"
    );
    let exporter = Running::start(&ZipkinExporterFactory, &yaml, Signal::Traces).await;
    let mut request = traces_request();
    request.resource_spans[0].scope_spans[0].spans[0].span_id = vec![0; 8];
    let refusal = exporter.consume(Batch::from_traces(request)).await.unwrap_err();
    assert!(matches!(refusal, ConsumeError::Permanent { rejected: 10, .. }), "{refusal:?}");
    assert!(destination.requests().is_empty());
    assert_eq!(exporter.metric("otelcol_exporter_send_failed_spans_total"), 10);
    exporter.stop().await;
}

#[test]
fn zipkin_config_errors_name_the_key() {
    assert_eq!(
        config_error(&ZipkinExporterFactory, "format: json"),
        "exporters.zipkin.endpoint: missing: set the Zipkin collector's URL, e.g. http://zipkin:9411/api/v2/spans"
    );
    assert_eq!(
        config_error(
            &ZipkinExporterFactory,
            "endpoint: zipkin:9411\nformat: thrift\ncompression: zstd"
        ),
        "exporters.zipkin.endpoint: invalid endpoint \"zipkin:9411\": expected an http:// or https:// URL with a host\n\
         exporters.zipkin.format: unsupported format \"thrift\": expected \"json\" or \"proto\"\n\
         exporters.zipkin.compression: unsupported compression \"zstd\": expected \"gzip\" or \"none\""
    );
    let errors = config_error(
        &ZipkinExporterFactory,
        "endpoint: http://zipkin:9411/api/v2/spans\nmax_idle_conns: 10",
    );
    assert!(errors.starts_with("exporters.zipkin.max_idle_conns: unknown key"), "{errors}");
    assert!(
        configure(
            &ZipkinExporterFactory,
            "endpoint: http://zipkin:9411/api/v2/spans\ndefault_service_name: mesh"
        )
        .is_ok()
    );
}

#[tokio::test]
async fn zipkin_sends_a_batch_above_the_blocking_pool_threshold_whole() {
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, None).await;
    let yaml = format!("endpoint: http://{address}/api/v2/spans\n{FAST_RETRY}");
    let exporter = Running::start(&ZipkinExporterFactory, &yaml, Signal::Traces).await;
    // Above the exporter's 256-span threshold for the blocking pool.
    let request = otlp::fixtures::sidecar_traces(300, 3);
    let batch = Batch::from_wire(Signal::Traces, request.encode_to_vec().into()).unwrap();
    exporter.consume(batch).await.unwrap();
    eventually("the sent count", || exporter.metric("otelcol_exporter_sent_spans_total") == 300)
        .await;
    exporter.stop().await;
    let spans: Vec<_> = destination.requests().iter().flat_map(|r| json_spans(&r.body)).collect();
    assert_eq!(spans.len(), 300);
}
