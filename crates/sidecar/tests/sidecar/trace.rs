//! Tracing end to end without a proxy: the tracing [`Observer`] is driven with realistic
//! request heads (a caller → inbound → app → outbound chain), and its spans go through the
//! collector's real OTLP exporters to the collector's real `otlp` receiver on 127.0.0.1:0.
//! Checked: span kinds, names, parent ids, tags, resource; the forwarded headers name the
//! proxy's span as the next parent; stitching on and off; a dead collector never slows a
//! request and its spans are dropped and counted once the buffers are full.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail the test loudly"
)]

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Request, StatusCode, Version};
use otlp::proto::common::v1::any_value;
use otlp::proto::trace::v1::span::SpanKind;
use otlp::proto::trace::v1::status::StatusCode as OtlpStatus;
use sidecar::config::{SidecarConfig, load};
use sidecar::observe::{Completion, Direction, Observation, Observer, RequestView, ResponseView};
use sidecar::received::Received;
use sidecar::trace::{DropReason, Environment, TracingOptions, TracingRuntime, observer_with};
use support::{Collector, ZipkinCollector, attribute, eventually, find, hex, within};

const COLLECTOR_HOST: &str = "otel-collector.observability.svc.cluster.local";

/// The caller's span: the productpage → reviews call arrives with it.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";
/// The app's own span (an OpenTelemetry SDK in the app, child of the sidecar's SERVER span).
const APP_SPAN: &str = "b7ad6b7169203331";

// === the sidecar ===

/// The productpage sidecar: Istio's OpenTelemetry provider pointing at `collector`, 100 %
/// sampling, a header custom tag; `protocol` is `grpc` or `http`.
fn sidecar_config(collector: SocketAddr, protocol: &str, stitching: bool) -> SidecarConfig {
    let http = if protocol == "http" { ", http: {path: /v1/traces}" } else { "" };
    let text = format!(
        "\
kind: Sidecar
metadata: {{name: productpage-v1, namespace: default, labels: {{app: productpage, version: v1}}}}
spec:
  inbound: {{listen: 0.0.0.0:15006, app: 127.0.0.1:9080}}
  services: {{{COLLECTOR_HOST}:4317: {collector}}}
  tracing: {{stitching: {stitching}}}
---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    defaultConfig: {{tracingServiceName: APP_LABEL_AND_NAMESPACE}}
    extensionProviders:
    - name: otel-tracing
      opentelemetry: {{service: {COLLECTOR_HOST}, port: 4317{http}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: otel-tracing}}]
    randomSamplingPercentage: 100
    customTags:
      user: {{header: {{name: x-user-id, defaultValue: anonymous}}}}
"
    );
    load(&text, "sidecar.yaml").unwrap_or_else(|errors| panic!("{errors}\n{text}"))
}

fn options() -> TracingOptions {
    let vars = [("INSTANCE_IP", "10.1.0.5"), ("POD_NAME", "productpage-v1-7d9c")];
    TracingOptions {
        environment: Environment::Fixed(
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ),
        batch_timeout: Duration::from_millis(100),
        ..TracingOptions::default()
    }
}

async fn start_tracing(
    config: &SidecarConfig,
    options: TracingOptions,
) -> (Arc<dyn Observer>, TracingRuntime) {
    let (observer, mut runtime) = observer_with(config, options).unwrap();
    within("tracing start", runtime.start()).await.unwrap();
    (observer, runtime)
}

/// One exchange as the proxy would report it.
struct Exchange {
    /// The request head as forwarded.
    head: http::request::Parts,
    observation: Box<dyn Observation>,
}

/// The proxy read `request` on the `direction` listener, bound for `cluster`.
fn request(
    observer: &dyn Observer,
    direction: Direction,
    request: http::request::Builder,
    cluster: &str,
) -> Exchange {
    let mut head = request.body(()).unwrap().into_parts().0;
    let (peer, local) = match direction {
        Direction::Inbound => ("10.1.0.9:51234", "10.1.0.5:15006"),
        Direction::Outbound => ("127.0.0.1:40112", "127.0.0.1:15001"),
    };
    let received = Received::scan(&head.headers);
    let mut view = RequestView {
        direction,
        head: &mut head,
        peer: peer.parse().unwrap(),
        local: local.parse().unwrap(),
        upstream_cluster: cluster,
        started: SystemTime::now(),
        received,
        routed_authority: None,
        // These exchanges are plain HTTP.
        grpc: false,
        head_bytes: 0,
    };
    let observation = observer.request(&mut view);
    Exchange { head, observation }
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// The span id this exchange's forwarded `traceparent` names as the next parent.
    fn forwarded_parent(&self) -> String {
        self.header("traceparent").unwrap().split('-').nth(2).unwrap().to_owned()
    }

    /// The client went away before any response (`DC`).
    fn hang_up(self) {
        self.observation.complete(&Completion {
            request_body_bytes: 0,
            response_body_bytes: 0,
            response_head_bytes: 0,
            trailers: None,
            response_flags: "DC",
            duration: Duration::from_millis(4),
        });
    }

    /// The upstream answered `status`, and both bodies are done.
    fn finish(mut self, status: u16) {
        let mut headers = HeaderMap::new();
        self.observation.response(&mut ResponseView {
            status: StatusCode::from_u16(status).unwrap(),
            version: Version::HTTP_11,
            headers: &mut headers,
            upstream: Some("10.1.0.20:9080".parse().unwrap()),
            received: Received::default(),
        });
        self.observation.complete(&Completion {
            request_body_bytes: 0,
            response_body_bytes: 1024,
            response_head_bytes: 0,
            trailers: None,
            response_flags: "-",
            duration: Duration::from_millis(4),
        });
    }
}

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";

// === the tests ===

#[tokio::test]
async fn a_request_chain_gives_server_and_client_spans_linked_through_the_headers() {
    let collector = Collector::start().await;
    let config = sidecar_config(collector.grpc, "grpc", true);
    let (observer, mut runtime) = start_tracing(&config, options()).await;

    // A caller's request arrives at productpage's inbound listener.
    let inbound = request(
        &*observer,
        Direction::Inbound,
        Request::get("/productpage?u=normal")
            .header("host", "productpage:9080")
            .header("user-agent", "Mozilla/5.0")
            .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
            .header("tracestate", "congo=t61rcWkgMzE")
            .header("baggage", "session=abc")
            .header("x-request-id", "5b0e8a86-4d1e-4c7b-9f0a-2c61e1a5e6d4")
            .header("x-user-id", "jason")
            .header("x-envoy-decorator-operation", "productpage.default.svc.cluster.local:9080/*"),
        "inbound|9080||",
    );
    let server_id = inbound.forwarded_parent();
    assert_eq!(inbound.header("tracestate"), Some("congo=t61rcWkgMzE"));
    assert_eq!(inbound.header("baggage"), Some("session=abc"));
    assert_eq!(inbound.header("x-envoy-decorator-operation"), None, "never reaches the app");
    // Sampled at 100 %: the decision is packed into the id the app sees.
    let request_id = inbound.header("x-request-id").unwrap().to_owned();
    assert_eq!(request_id, "5b0e8a86-4d1e-9c7b-9f0a-2c61e1a5e6d4");

    // The app (instrumented) calls reviews with its own span as parent.
    let outbound = request(
        &*observer,
        Direction::Outbound,
        Request::get("/reviews/0")
            .header("host", "reviews:9080")
            .header("traceparent", format!("00-{TRACE}-{APP_SPAN}-01"))
            .header("x-request-id", &request_id),
        REVIEWS,
    );
    let client_id = outbound.forwarded_parent();
    assert_eq!(outbound.header("x-b3-spanid"), Some(client_id.as_str()), "b3multi by default");
    assert_eq!(outbound.header("x-b3-parentspanid"), Some(APP_SPAN));
    assert_eq!(
        outbound.header("x-envoy-decorator-operation"),
        Some("reviews.default.svc.cluster.local:9080/*")
    );

    // The same app calls reviews again without trace headers, only x-request-id.
    let stitched = request(
        &*observer,
        Direction::Outbound,
        Request::get("/reviews/1")
            .header("host", "reviews:9080")
            .header("x-request-id", &request_id),
        REVIEWS,
    );
    let stitched_id = stitched.forwarded_parent();
    assert!(stitched.header("traceparent").unwrap().contains(TRACE), "continues the trace");

    // A health check is never traced, though its headers are still written.
    let probe = request(&*observer, Direction::Inbound, Request::get("/healthz"), "inbound|9080||");
    assert!(probe.header("traceparent").unwrap().ends_with("-02"), "unsampled, random id");

    outbound.finish(200);
    stitched.finish(503);
    inbound.finish(200);
    probe.finish(200);

    let spans = collector.spans(3).await;
    assert_eq!(spans.len(), 3, "one span per traced request, none for the probe");

    let server = find(&spans, &server_id);
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.name, "productpage.default.svc.cluster.local:9080/*");
    assert_eq!(hex(&server.trace_id), TRACE);
    assert_eq!(hex(&server.parent_span_id), CALLER);
    assert_eq!(server.trace_state, "congo=t61rcWkgMzE");
    for (key, value) in [
        ("node_id", "sidecar~10.1.0.5~productpage-v1-7d9c.default~default.svc.cluster.local"),
        ("guid:x-request-id", request_id.as_str()),
        ("http.url", "http://productpage:9080/productpage?u=normal"),
        ("http.method", "GET"),
        ("http.protocol", "HTTP/1.1"),
        ("user_agent", "Mozilla/5.0"),
        ("peer.address", "10.1.0.9:51234"),
        ("upstream_cluster", "inbound|9080||"),
        ("http.status_code", "200"),
        ("response_size", "1024"),
        ("component", "proxy"),
        ("istio.canonical_service", "productpage"),
        ("istio.namespace", "default"),
        ("user", "jason"),
    ] {
        assert_eq!(attribute(server, key), Some(value), "server {key}");
    }
    assert_eq!(server.status.as_ref().unwrap().code, OtlpStatus::Unset as i32);

    let client = find(&spans, &client_id);
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.name, "reviews.default.svc.cluster.local:9080/*");
    assert_eq!(hex(&client.parent_span_id), APP_SPAN);
    assert_eq!(attribute(client, "upstream_cluster"), Some(REVIEWS));
    assert_eq!(attribute(client, "user"), Some("anonymous"), "header tag default");
    assert_eq!(attribute(client, "meshtrace.stitched"), None);

    let joined = find(&spans, &stitched_id);
    assert_eq!(hex(&joined.trace_id), TRACE);
    assert_eq!(hex(&joined.parent_span_id), server_id, "child of the inbound SERVER span");
    assert_eq!(attribute(joined, "meshtrace.stitched"), Some("true"));
    assert_eq!(attribute(joined, "error"), Some("true"));
    assert_eq!(joined.status.as_ref().unwrap().code, OtlpStatus::Error as i32, "5xx");

    let resources = collector.traces.resource_spans();
    let resource = resources[0].resource.as_ref().unwrap();
    let service = resource.attributes.iter().find(|kv| kv.key == "service.name").unwrap();
    let service = match service.value.as_ref().unwrap().value.as_ref().unwrap() {
        any_value::Value::StringValue(name) => name.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(service, "productpage.default");

    let metrics = runtime.metrics();
    assert_eq!(metrics.stitched_requests("reviews.default.svc.cluster.local"), 1);
    assert_eq!(metrics.spans_started(Direction::Inbound), 1);
    assert_eq!(metrics.spans_started(Direction::Outbound), 2);
    // The exporter counts a batch as sent once the collector's answer is back.
    let sent = "otelcol_exporter_sent_spans_total{exporter=\"otlp/sidecar\"} 3";
    let page = || {
        // Appended to another component's page (the mesh metrics), one `# EOF` remains.
        let mut text = "# TYPE istio_requests counter\nistio_requests_total 1\n# EOF\n".to_owned();
        runtime.stats().append_to(&mut text);
        text
    };
    eventually("exporter sent counted", || page().contains(sent)).await;
    let text = page();
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    assert!(text.starts_with("# TYPE istio_requests counter"));
    assert!(text.contains("meshtrace_sidecar_spans_exported_total 3"), "{text}");
    assert!(text.ends_with("# EOF\n"));

    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(5))).await;
    collector.stop().await;
}

#[tokio::test]
async fn spans_also_leave_over_otlp_http_and_b3_callers_get_w3c_and_b3() {
    let collector = Collector::start().await;
    let config = sidecar_config(collector.http, "http", true);
    let (observer, mut runtime) = start_tracing(&config, options()).await;
    let inbound = request(
        &*observer,
        Direction::Inbound,
        Request::get("/")
            .header("host", "productpage:9080")
            .header("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"),
        "inbound|9080||",
    );
    let server_id = inbound.forwarded_parent();
    assert_eq!(
        inbound.header("b3"),
        Some(format!("80f198ee56343ba864fe8b2a57d3eff7-{server_id}-1-e457b5a2e4d86bd1").as_str())
    );
    assert_eq!(inbound.header("x-b3-traceid"), Some("80f198ee56343ba864fe8b2a57d3eff7"));
    assert_eq!(inbound.header("x-request-id").map(str::len), Some(36), "generated");
    inbound.finish(404);
    let spans = collector.spans(1).await;
    let server = find(&spans, &server_id);
    assert_eq!(hex(&server.parent_span_id), "e457b5a2e4d86bd1");
    assert_eq!(server.status.as_ref().unwrap().code, OtlpStatus::Unset as i32, "4xx: SERVER unset");
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(5))).await;
    collector.stop().await;
}

#[tokio::test]
async fn without_stitching_a_call_without_context_starts_its_own_trace() {
    let collector = Collector::start().await;
    for stitching in [false, true] {
        let config = sidecar_config(collector.grpc, "grpc", stitching);
        let (observer, mut runtime) = start_tracing(&config, options()).await;
        let inbound = request(
            &*observer,
            Direction::Inbound,
            Request::get("/productpage")
                .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
                .header("x-request-id", "11111111-2222-4333-8444-555555555555"),
            "inbound|9080||",
        );
        let request_id = inbound.header("x-request-id").unwrap().to_owned();
        // The app lost every header but x-request-id; another request lost that too.
        let lost = request(
            &*observer,
            Direction::Outbound,
            Request::get("/ratings/0").header("x-request-id", &request_id),
            "outbound|9080||ratings.default.svc.cluster.local",
        );
        let orphan = request(
            &*observer,
            Direction::Outbound,
            Request::get("/ratings/1")
                .header("x-request-id", "99999999-2222-4333-8444-555555555555"),
            "outbound|9080||ratings.default.svc.cluster.local",
        );
        let (lost_id, orphan_id) = (lost.forwarded_parent(), orphan.forwarded_parent());
        lost.finish(200);
        orphan.finish(200);
        inbound.finish(200);
        within("flush", runtime.shutdown(Instant::now() + Duration::from_secs(5))).await;
        let spans = collector.traces.spans();
        let (lost, orphan) = (find(&spans, &lost_id), find(&spans, &orphan_id));
        assert!(orphan.parent_span_id.is_empty(), "stitching {stitching}: nothing to join");
        assert_ne!(hex(&orphan.trace_id), TRACE);
        let metrics = runtime.metrics();
        let ratings = "ratings.default.svc.cluster.local";
        if stitching {
            assert_eq!(hex(&lost.trace_id), TRACE);
            assert_eq!(attribute(lost, "meshtrace.stitched"), Some("true"));
            assert_eq!(
                (metrics.stitched_requests(ratings), metrics.unstitchable_requests(ratings)),
                (1, 1)
            );
        } else {
            assert!(lost.parent_span_id.is_empty(), "a new trace");
            assert_ne!(hex(&lost.trace_id), TRACE);
            assert_eq!(attribute(lost, "meshtrace.stitched"), None);
            assert_eq!(
                (metrics.stitched_requests(ratings), metrics.unstitchable_requests(ratings)),
                (0, 0)
            );
        }
        collector.traces.batches.lock().unwrap().clear();
    }
    collector.stop().await;
}

#[tokio::test]
async fn a_dead_collector_never_slows_requests_and_full_buffers_drop_and_count() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = sidecar_config(dead, "grpc", true);
    let options = TracingOptions {
        buffer_spans: 64,
        batch_max_spans: 32,
        export_queue_spans: 128,
        ..options()
    };
    let (observer, mut runtime) = start_tracing(&config, options).await;
    let total: u64 = 5000;
    let burst: u64 = 500;
    let buffer_full =
        |runtime: &TracingRuntime| runtime.metrics().spans_dropped(DropReason::BufferFull);
    for i in 0..total {
        let exchange = request(
            &*observer,
            Direction::Outbound,
            Request::get(format!("/reviews/{i}"))
                .header("host", "reviews:9080")
                .header("traceparent", format!("00-{TRACE}-{APP_SPAN}-01")),
            REVIEWS,
        );
        assert!(exchange.header("traceparent").is_some(), "requests are still propagated");
        exchange.finish(200);
        if i == burst - 1 {
            // The test's runtime has one thread and this loop has not yielded yet, so the export
            // task has not run: had the request path waited for room in the buffer, it would
            // never have got here. Everything beyond the buffer was dropped and counted instead.
            assert!(
                buffer_full(&runtime) >= burst - 64,
                "{} of {burst} spans dropped while the export task could not run",
                buffer_full(&runtime)
            );
        }
        if i % burst == burst - 1 {
            // Let the export task run, as it would between requests on a busy proxy.
            tokio::task::yield_now().await;
        }
    }

    let metrics = runtime.metrics().clone();
    let dropped = || {
        metrics.spans_dropped(DropReason::BufferFull)
            + metrics.spans_dropped(DropReason::ExportRefused)
    };
    // At most the buffer, the exporter's queue, its two workers' batches and one batch being
    // formed are held; everything else is dropped and counted.
    eventually("spans dropped", || dropped() >= total - (64 + 128 + 2 * 32 + 32)).await;
    // A collector that is down does not hold shutdown until its deadline: what is queued gets
    // one attempt each, without retries (`within` gives up long before this deadline).
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(600))).await;
    assert_eq!(metrics.spans_started(Direction::Outbound), total);
    assert_eq!(
        metrics.spans_exported() + dropped() + metrics.spans_dropped(DropReason::Shutdown),
        total,
        "every span is either handed to the exporter or counted as dropped"
    );
}

/// The productpage Sidecar document followed by `documents`.
fn config_with(documents: &str) -> SidecarConfig {
    let text = format!(
        "kind: Sidecar\nmetadata: {{name: productpage-v1, namespace: default, labels: {{app: productpage}}}}\nspec:\n  inbound: {{app: 127.0.0.1:9080}}\n---\n{documents}"
    );
    load(&text, "sidecar.yaml").unwrap_or_else(|errors| panic!("{errors}\n{text}"))
}

#[tokio::test]
async fn the_legacy_zipkin_address_gets_zipkin_json_as_envoy_sends_it() {
    let zipkin = ZipkinCollector::start().await;
    let config = config_with(&format!(
        "\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    enableTracing: true
    defaultConfig:
      tracing: {{sampling: 100.0, zipkin: {{address: '{}'}}}}
",
        zipkin.address
    ));
    let (observer, mut runtime) = start_tracing(&config, options()).await;
    assert!(runtime.warnings().is_empty(), "{:?}", runtime.warnings());
    let exchange =
        request(&*observer, Direction::Inbound, Request::get("/productpage"), "inbound|9080||");
    let traceparent = exchange.header("traceparent").unwrap().to_owned();
    exchange.finish(503);
    // As Envoy's Zipkin tracer tags them: a client's 404 is no error, a hang-up is.
    let not_found = request(&*observer, Direction::Outbound, Request::get("/missing"), REVIEWS);
    let not_found_id = not_found.forwarded_parent();
    not_found.finish(404);
    let hung_up = request(&*observer, Direction::Outbound, Request::get("/gone"), REVIEWS);
    let hung_up_id = hung_up.forwarded_parent();
    hung_up.hang_up();
    let spans = zipkin.spans(3).await;
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(1))).await;

    let uploads = zipkin.uploads.lock().unwrap().clone();
    assert_eq!(uploads[0].path, "/api/v2/spans");
    assert_eq!(uploads[0].content_type, "application/json");
    assert_eq!(spans.len(), 3);
    let by_id = |id: &str| spans.iter().find(|span| span["id"] == id).unwrap();
    assert_eq!(by_id(&not_found_id)["tags"].get("error"), None);
    assert_eq!(by_id(&not_found_id)["tags"]["http.status_code"], "404");
    assert_eq!(by_id(&hung_up_id)["tags"]["error"], "true");
    assert_eq!(by_id(&hung_up_id)["tags"]["response_flags"], "DC");
    let span = spans.iter().find(|span| span["kind"] == "SERVER").unwrap();
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(span["traceId"], fields[1]);
    assert_eq!(span["id"], fields[2], "the span the app sees as its parent");
    assert_eq!(span.get("parentId"), None, "a new trace");
    assert_eq!(span["kind"], "SERVER");
    assert_eq!(span["name"], "productpage.default.svc.cluster.local:9080/*");
    assert_eq!(span["localEndpoint"], serde_json::json!({"serviceName": "productpage.default"}));
    assert!(span["duration"].as_u64().unwrap() >= 1);
    let tags = &span["tags"];
    assert_eq!(tags["http.method"], "GET");
    assert_eq!(tags["http.status_code"], "503");
    assert_eq!(tags["component"], "proxy");
    assert_eq!(tags["error"], "true");
    assert_eq!(tags["otel.status_code"], "STATUS_CODE_ERROR");
    assert_eq!(tags.get("k8s.namespace.name"), None, "only the service name from the resource");
    let metrics = runtime.metrics();
    assert_eq!(metrics.spans_started(Direction::Inbound), 1);
    assert_eq!(metrics.spans_started(Direction::Outbound), 2);
    assert_eq!(metrics.spans_dropped(DropReason::NoExporter), 0);
}

#[tokio::test]
async fn a_zipkin_provider_with_64_bit_ids_and_its_own_path() {
    let zipkin = ZipkinCollector::start().await;
    let config = config_with(&format!(
        "\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - name: zipkin
      zipkin: {{service: '{ip}', port: {port}, path: /custom/spans, enable64bitTraceId: true}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: zipkin}}]
    randomSamplingPercentage: 100
",
        ip = zipkin.address.ip(),
        port = zipkin.address.port()
    ));
    let (observer, mut runtime) = start_tracing(&config, options()).await;
    let exchange = request(
        &*observer,
        Direction::Outbound,
        Request::get("/reviews/0"),
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    let traceparent = exchange.header("traceparent").unwrap().to_owned();
    exchange.finish(200);
    let spans = zipkin.spans(1).await;
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(1))).await;
    assert_eq!(zipkin.uploads.lock().unwrap()[0].path, "/custom/spans");
    let trace_id = traceparent.split('-').nth(1).unwrap();
    assert!(trace_id.starts_with("0000000000000000"), "{traceparent}");
    assert_eq!(spans[0]["traceId"], trace_id[16..], "64-bit ids are 16 hex digits in Zipkin");
    assert_eq!(spans[0]["kind"], "CLIENT");
}

#[tokio::test]
async fn telemetry_switches_turn_off_propagation_and_span_reporting_per_direction() {
    let collector = Collector::start().await;
    let config = config_with(&format!(
        "\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - {{name: otel, opentelemetry: {{service: {collector_ip}, port: {collector_port}}}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: otel}}]
    randomSamplingPercentage: 100
  - match: {{mode: CLIENT}}
    disableContextPropagation: true
  - match: {{mode: SERVER}}
    disableSpanReporting: true
",
        collector_ip = collector.grpc.ip(),
        collector_port = collector.grpc.port(),
    ));
    assert!(!config.tracing.inbound.enabled && config.tracing.outbound.disable_context_propagation);
    let (observer, mut runtime) = start_tracing(&config, options()).await;

    // Inbound has no tracing at all, as when Istio gives the listener no tracing block; Envoy
    // still sets a missing request id, one that carries no trace decision, and keeps a
    // caller's.
    let inbound = request(&*observer, Direction::Inbound, Request::get("/"), "inbound|9080||");
    assert_eq!(inbound.header("traceparent"), None);
    let id = inbound.header("x-request-id").unwrap();
    assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
    inbound.finish(200);
    let kept = request(
        &*observer,
        Direction::Inbound,
        Request::get("/")
            .header("x-request-id", "caller-id")
            .header("traceparent", format!("00-{TRACE}-{CALLER}-01")),
        "inbound|9080||",
    );
    assert_eq!(kept.header("x-request-id"), Some("caller-id"));
    assert_eq!(
        kept.header("traceparent"),
        Some(format!("00-{TRACE}-{CALLER}-01").as_str()),
        "untouched"
    );
    kept.finish(200);

    // Outbound records its span but writes no trace context; the request id still goes.
    let outbound = request(
        &*observer,
        Direction::Outbound,
        Request::get("/reviews/0")
            .header("host", "reviews:9080")
            .header("traceparent", format!("00-{TRACE}-{APP_SPAN}-01")),
        REVIEWS,
    );
    assert_eq!(
        outbound.header("traceparent"),
        Some(format!("00-{TRACE}-{APP_SPAN}-01").as_str()),
        "forwarded as the app sent it"
    );
    assert_eq!(outbound.header("x-b3-traceid"), None);
    assert_eq!(outbound.header("x-request-id").map(str::len), Some(36));
    outbound.finish(200);

    let spans = collector.spans(1).await;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].kind, SpanKind::Client as i32);
    assert_eq!(hex(&spans[0].parent_span_id), APP_SPAN);
    assert_eq!(runtime.metrics().spans_started(Direction::Inbound), 0);
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(5))).await;
    collector.stop().await;
}

/// A Sidecar document (`metadata` and `spec`, the spec last, without `services`) whose
/// services table reaches `collector`, followed by an OpenTelemetry provider for it and a
/// mesh-wide Telemetry sampling 100 %.
fn traced_by_otel(sidecar: &str, collector: &Collector) -> SidecarConfig {
    let text = format!(
        "\
kind: Sidecar
{sidecar}  services: {{{COLLECTOR_HOST}:4317: {collector}}}
---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - {{name: otel, opentelemetry: {{service: {COLLECTOR_HOST}, port: 4317}}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: otel}}]
    randomSamplingPercentage: 100
",
        collector = collector.grpc,
    );
    load(&text, "sidecar.yaml").unwrap_or_else(|errors| panic!("{errors}\n{text}"))
}

#[tokio::test]
async fn propagators_choose_the_formats_written_besides_those_a_request_carries() {
    let collector = Collector::start().await;
    let config = traced_by_otel(
        "metadata: {name: productpage-v1, namespace: default, labels: {app: productpage}}\n\
         spec:\n  inbound: {app: 127.0.0.1:9080}\n  tracing: {propagators: [b3]}\n",
        &collector,
    );
    let (observer, mut runtime) = start_tracing(&config, options()).await;

    // No context: a new trace, written as the one configured format.
    let fresh = request(&*observer, Direction::Inbound, Request::get("/"), "inbound|9080||");
    let b3 = fresh.header("b3").unwrap().to_owned();
    let fields: Vec<&str> = b3.split('-').collect();
    assert_eq!((fields.len(), fields[0].len(), fields[2]), (3, 32, "1"), "{b3}");
    for header in ["traceparent", "x-b3-traceid", "x-b3-spanid", "baggage"] {
        assert_eq!(fresh.header(header), None, "{header} is not configured");
    }
    assert_eq!(fresh.header("x-request-id").map(str::len), Some(36));
    let fresh_span = fields[1].to_owned();
    fresh.finish(200);

    // A W3C caller keeps its format, rewritten, and gets the configured one besides.
    let caller = request(
        &*observer,
        Direction::Inbound,
        Request::get("/").header("traceparent", format!("00-{TRACE}-{CALLER}-01")),
        "inbound|9080||",
    );
    let span = caller.forwarded_parent();
    assert_eq!(caller.header("b3"), Some(format!("{TRACE}-{span}-1-{CALLER}").as_str()));
    assert_eq!(caller.header("x-b3-traceid"), None);
    caller.finish(200);

    let spans = collector.spans(2).await;
    assert_eq!(hex(&find(&spans, &fresh_span).trace_id), fields[0]);
    assert_eq!(hex(&find(&spans, &span).parent_span_id), CALLER);
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(5))).await;
    collector.stop().await;
}

#[tokio::test]
async fn inbound_spans_are_named_after_the_configured_service_and_its_port() {
    let collector = Collector::start().await;
    // httpbin's Service listens on 8000 and its container on 80: Istio names the inbound span
    // `httpbin.<ns>.svc.cluster.local:8000/*`, after the Service.
    let config = traced_by_otel(
        "metadata: {name: httpbin-v1, namespace: web, labels: {app: httpbin-app}}\n\
         spec:\n  inbound: {app: 127.0.0.1:80, service: httpbin:8000}\n",
        &collector,
    );
    let (observer, mut runtime) = start_tracing(&config, options()).await;
    let inbound = request(&*observer, Direction::Inbound, Request::get("/get"), "inbound|80||");
    let span = inbound.forwarded_parent();
    inbound.finish(200);
    let spans = collector.spans(1).await;
    assert_eq!(find(&spans, &span).name, "httpbin.web.svc.cluster.local:8000/*");
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(5))).await;
    collector.stop().await;
}

#[tokio::test]
async fn linkerd_annotations_alone_continue_callers_traces_and_never_start_one() {
    let collector = Collector::start().await;
    let text = format!(
        "\
kind: Sidecar
metadata: {{name: productpage-v1, namespace: default, labels: {{app: productpage}}}}
spec:
  inbound: {{app: 127.0.0.1:9080}}
  services: {{otel-collector.linkerd-jaeger:4317: {collector}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: productpage-v1, namespace: default}}
spec:
  template:
    metadata:
      annotations: {{config.linkerd.io/trace-collector: otel-collector.linkerd-jaeger:4317}}
",
        collector = collector.grpc,
    );
    let config = load(&text, "sidecar.yaml").unwrap_or_else(|errors| panic!("{errors}"));
    let (observer, mut runtime) = start_tracing(&config, options()).await;

    // No context: forwarded unmodified, no span.
    let plain = request(&*observer, Direction::Inbound, Request::get("/"), "inbound|9080||");
    for header in ["traceparent", "x-request-id", "x-b3-traceid", "b3"] {
        assert_eq!(plain.header(header), None, "{header} written");
    }
    plain.finish(200);

    // A sampled caller: continued, with this proxy's span as the next parent.
    let sampled = request(
        &*observer,
        Direction::Inbound,
        Request::get("/productpage").header("traceparent", format!("00-{TRACE}-{CALLER}-01")),
        "inbound|9080||",
    );
    let forwarded = sampled.header("traceparent").unwrap().to_owned();
    assert!(forwarded.starts_with(&format!("00-{TRACE}-")) && forwarded.ends_with("-01"));
    let server_span = sampled.forwarded_parent();
    assert_ne!(server_span, CALLER);
    for header in ["x-b3-traceid", "x-b3-spanid", "b3"] {
        assert_eq!(sampled.header(header), None, "{header}: only the formats it carried");
    }
    sampled.finish(200);

    // An unsampled caller: a new span id goes on, no span is recorded.
    let unsampled = request(
        &*observer,
        Direction::Outbound,
        Request::get("/reviews/0")
            .header("host", "reviews:9080")
            .header("traceparent", format!("00-{TRACE}-{APP_SPAN}-00")),
        REVIEWS,
    );
    let forwarded = unsampled.header("traceparent").unwrap();
    assert!(forwarded.starts_with(&format!("00-{TRACE}-")) && forwarded.ends_with("-00"));
    assert_ne!(unsampled.forwarded_parent(), APP_SPAN);
    unsampled.finish(200);

    // The app's own call without context: untouched, and no blame for breaking propagation
    // (inbound requests without context are never remembered in this mode).
    let call = request(
        &*observer,
        Direction::Outbound,
        Request::get("/reviews/1").header("host", "reviews:9080").header("x-request-id", "r-1"),
        REVIEWS,
    );
    assert_eq!(call.header("traceparent"), None);
    call.finish(200);
    let reviews = "reviews.default.svc.cluster.local";
    assert_eq!(runtime.metrics().unstitchable_requests(reviews), 0);

    let spans = collector.spans(1).await;
    assert_eq!(spans.len(), 1, "only the sampled caller's request made a span");
    assert_eq!(spans[0].kind, SpanKind::Server as i32);
    assert_eq!(hex(&spans[0].trace_id), TRACE);
    assert_eq!(hex(&spans[0].parent_span_id), CALLER);
    assert_eq!(hex(&spans[0].span_id), server_span);
    let metrics = runtime.metrics();
    assert_eq!(metrics.spans_started(Direction::Inbound), 1);
    assert_eq!(metrics.spans_started(Direction::Outbound), 0);
    within("tracing shutdown", runtime.shutdown(Instant::now() + Duration::from_secs(5))).await;
    collector.stop().await;
}
