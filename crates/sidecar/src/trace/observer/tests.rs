use std::collections::BTreeMap;

use http::{HeaderMap, Request, StatusCode, Version};

use super::*;
use crate::received::Received;
use crate::trace::{Environment, LocalInfo, TracingOptions, direction_tracer};

const CONFIG: &str = "\
kind: Sidecar
metadata: {name: productpage-v1, namespace: default, labels: {app: productpage}}
spec:
  inbound: {listen: 0.0.0.0:15006, app: 127.0.0.1:9080}
---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - {name: otel, opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: 4317}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel}]
    randomSamplingPercentage: 100
";

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const DECORATOR: &str = "x-envoy-decorator-operation";

/// The tracer of [`CONFIG`], without exporters (finished spans are counted as dropped).
fn tracer() -> Tracer {
    let config = crate::config::load(CONFIG, "observer-test.yaml").unwrap();
    let options = TracingOptions {
        environment: Environment::Fixed(BTreeMap::new()),
        ..TracingOptions::default()
    };
    let local = LocalInfo::new(&config, &options.environment);
    let metrics = TraceMetrics::default();
    let rules = &config.tracing;
    let direction = |direction, settings| {
        Some(direction_tracer(direction, settings, &config, &local, &options, &metrics, None))
    };
    Tracer {
        inbound: direction(Direction::Inbound, &rules.inbound),
        outbound: direction(Direction::Outbound, &rules.outbound),
        rules: SamplingRules::new(rules),
        stitching: None,
        inject: rules.propagators,
        inbound_host: local.inbound_host.clone(),
        inbound_port: Some(9080),
        inbound_service_port: None,
        metrics: metrics.clone(),
    }
}

/// The proxy read `request` on the `direction` listener and applied its hop-by-hop rules;
/// returns the head as forwarded.
fn request(
    tracer: &Tracer,
    direction: Direction,
    request: http::request::Builder,
    cluster: &str,
) -> (http::request::Parts, Traced) {
    let mut head = request.body(()).unwrap().into_parts().0;
    let received = Received::scan(&head.headers);
    let received = crate::proxy::headers::strip_request(&mut head.headers, received, false);
    let grpc = crate::grpc::is_grpc_request(&head.headers, received);
    let mut view = RequestView {
        direction,
        head: &mut head,
        peer: "10.1.0.9:51234".parse().unwrap(),
        local: "10.1.0.5:15006".parse().unwrap(),
        upstream_cluster: cluster,
        started: SystemTime::now(),
        received,
        routed_authority: None,
        grpc,
        head_bytes: 0,
    };
    let traced = tracer.observe(&mut view);
    (head, traced)
}

/// The response head `headers` is about to go downstream.
fn respond(traced: &mut Traced, headers: &mut HeaderMap) {
    let received = Received::scan(headers);
    traced.response(&mut ResponseView {
        status: StatusCode::OK,
        version: Version::HTTP_11,
        headers,
        upstream: None,
        received,
    });
}

fn span_name(traced: &Traced) -> &str {
    &traced.recording.as_ref().unwrap().name
}

#[test]
fn force_trace_returns_the_forwarded_request_id_in_the_response() {
    let tracer = tracer();
    let received = "5b0e8a86-4d1e-4c7b-9f0a-2c61e1a5e6d4";
    for (direction, cluster) in
        [(Direction::Inbound, "inbound|9080||"), (Direction::Outbound, REVIEWS)]
    {
        let (head, mut traced) = request(
            &tracer,
            direction,
            Request::get("/reviews/0")
                .header("host", "reviews:9080")
                .header("x-envoy-force-trace", "true")
                .header("x-request-id", received),
            cluster,
        );
        // ServiceForced (`a`) packed into the id, as Envoy forwards it.
        assert_eq!(head.headers["x-request-id"], "5b0e8a86-4d1e-ac7b-9f0a-2c61e1a5e6d4");
        let mut headers = HeaderMap::new();
        respond(&mut traced, &mut headers);
        assert_eq!(headers.get("x-request-id"), head.headers.get("x-request-id"));
    }

    // Never traced, yet the id still comes back: the echo does not depend on sampling.
    let (head, mut probe) = request(
        &tracer,
        Direction::Inbound,
        Request::get("/healthz").header("x-envoy-force-trace", "1"),
        "inbound|9080||",
    );
    assert!(probe.recording.is_none());
    let mut headers = HeaderMap::new();
    respond(&mut probe, &mut headers);
    assert_eq!(headers.get("x-request-id"), head.headers.get("x-request-id"));

    // Without the force header the response is left alone.
    let (_, mut plain) = request(
        &tracer,
        Direction::Outbound,
        Request::get("/").header("host", "reviews:9080").header("x-request-id", received),
        REVIEWS,
    );
    let mut headers = HeaderMap::new();
    respond(&mut plain, &mut headers);
    assert!(headers.is_empty(), "{headers:?}");
}

/// Headers a `Connection` header names are the caller's hop-by-hop headers: gone before the
/// tracer looks, they neither force a trace nor make their format one to write.
#[test]
fn headers_named_in_connection_are_gone_before_the_tracer_reads() {
    let tracer = tracer();
    let id = "5b0e8a86-4d1e-4c7b-9f0a-2c61e1a5e6d4";
    let (head, mut traced) = request(
        &tracer,
        Direction::Inbound,
        Request::get("/reviews/0")
            .header("connection", "b3, x-envoy-force-trace, x-client-trace-id")
            .header("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
            .header("x-envoy-force-trace", "true")
            .header("x-client-trace-id", "client-1")
            .header("x-request-id", id),
        "inbound|9080||",
    );
    assert!(!head.headers.contains_key("b3"), "b3 single is not configured");
    assert!(!head.headers.contains_key("x-envoy-force-trace"));
    // Sampled by the request id at 100 %, not forced: `9`, not `a` (nor `b`), is packed.
    assert_eq!(head.headers["x-request-id"], "5b0e8a86-4d1e-9c7b-9f0a-2c61e1a5e6d4");
    let trace_id = head.headers["traceparent"].to_str().unwrap().split('-').nth(1).unwrap();
    assert_ne!(trace_id, "80f198ee56343ba864fe8b2a57d3eff7", "the b3 context was not read");
    let mut headers = HeaderMap::new();
    respond(&mut traced, &mut headers);
    assert!(!headers.contains_key("x-request-id"), "only a forced request gets it back");
}

#[test]
fn inbound_responses_tell_the_caller_the_operation_unless_it_named_one() {
    let tracer = tracer();
    let (_, mut traced) =
        request(&tracer, Direction::Inbound, Request::get("/productpage"), "inbound|9080||");
    let mut headers = HeaderMap::new();
    respond(&mut traced, &mut headers);
    assert_eq!(headers[DECORATOR], "productpage.default.svc.cluster.local:9080/*");

    let (head, mut named) = request(
        &tracer,
        Direction::Inbound,
        Request::get("/productpage").header(DECORATOR, "checkout"),
        "inbound|9080||",
    );
    assert!(!head.headers.contains_key(DECORATOR), "never reaches the app");
    assert_eq!(span_name(&named), "checkout");
    let mut headers = HeaderMap::new();
    respond(&mut named, &mut headers);
    assert!(!headers.contains_key(DECORATOR));

    // An empty override renames nothing, so the operation goes back as usual.
    let (_, mut empty) = request(
        &tracer,
        Direction::Inbound,
        Request::get("/productpage").header(DECORATOR, ""),
        "inbound|9080||",
    );
    let mut headers = HeaderMap::new();
    respond(&mut empty, &mut headers);
    assert_eq!(headers[DECORATOR], "productpage.default.svc.cluster.local:9080/*");
}

#[test]
fn outbound_responses_rename_the_client_span_and_never_reach_the_app() {
    let tracer = tracer();
    let (head, mut traced) = request(
        &tracer,
        Direction::Outbound,
        Request::get("/reviews/0").header("host", "reviews:9080"),
        REVIEWS,
    );
    assert_eq!(head.headers[DECORATOR], "reviews.default.svc.cluster.local:9080/*");
    let mut headers = HeaderMap::new();
    headers.insert(DECORATOR, HeaderValue::from_static("reviews:9080/reviews/*"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    respond(&mut traced, &mut headers);
    assert!(!headers.contains_key(DECORATOR));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(span_name(&traced), "reviews:9080/reviews/*");

    let (_, mut empty) = request(
        &tracer,
        Direction::Outbound,
        Request::get("/reviews/1").header("host", "reviews:9080"),
        REVIEWS,
    );
    let mut headers = HeaderMap::new();
    headers.insert(DECORATOR, HeaderValue::from_static(""));
    respond(&mut empty, &mut headers);
    assert!(headers.is_empty());
    assert_eq!(span_name(&empty), "reviews.default.svc.cluster.local:9080/*");
}

#[test]
fn the_destination_service_comes_from_the_cluster_then_the_authority() {
    let cluster = "outbound|9080||reviews.default.svc.cluster.local";
    assert_eq!(destination_service(cluster, Some("x:1")), "reviews.default.svc.cluster.local");
    assert_eq!(
        destination_service("PassthroughCluster", Some("api.example.com:443")),
        "api.example.com"
    );
    assert_eq!(
        destination_service("PassthroughCluster", Some("api.example.com")),
        "api.example.com"
    );
    assert_eq!(destination_service("outbound|80||", None), "unknown");
}
