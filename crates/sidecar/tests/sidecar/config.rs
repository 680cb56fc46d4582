//! The sidecar's configuration model, end to end: every seed resource loads unchanged (or, for
//! EnvoyFilters and collector ConfigMaps, fails with the exact message), the merge follows
//! Istio's order, and bad input gets golden error messages.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail the test loudly"
)]

use std::time::Duration;

use propagation::{Propagator, Propagators};

use sidecar::config::{
    CustomTag, DirectionSettings, Endpoint, ExportHeader, Exporter, HeaderMatch, HeaderValueSource,
    OtlpExporter, OtlpProtocol, PathMatch, ResourceDetector, SamplingPercentage, SidecarConfig,
    TagValue, WorkloadMode, ZipkinExporter, load, parse_documents,
};

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seeds");

/// The Sidecar document.
const PRODUCTPAGE: &str = "\
kind: Sidecar
metadata: {name: productpage-v1, namespace: default, labels: {app: productpage, version: v1}, annotations: {}}
spec:
  inbound: {listen: 0.0.0.0:15006, app: 127.0.0.1:9080}
  outbound: {listen: 127.0.0.1:15001}
  admin: {listen: 127.0.0.1:15000}
  services: {reviews.default.svc.cluster.local:9080: 127.0.0.1:19080}
";

fn seed(name: &str) -> String {
    std::fs::read_to_string(format!("{SEEDS}/{name}")).unwrap()
}

/// A Sidecar document for `name` in `namespace` with `labels` (a YAML flow map).
fn sidecar(name: &str, namespace: &str, labels: &str) -> String {
    format!(
        "kind: Sidecar\nmetadata: {{name: {name}, namespace: {namespace}, labels: {labels}}}\nspec:\n  inbound: {{app: 127.0.0.1:9080}}\n"
    )
}

/// Joins documents with `---`.
fn file(documents: &[&str]) -> String {
    documents.join("\n---\n")
}

fn settings(documents: &[&str]) -> SidecarConfig {
    let text = file(documents);
    load(&text, "sidecar.yaml").unwrap_or_else(|errors| panic!("{errors}\n--- in ---\n{text}"))
}

fn error(documents: &[&str]) -> String {
    load(&file(documents), "sidecar.yaml").unwrap_err().to_string()
}

fn percent(value: f64) -> SamplingPercentage {
    SamplingPercentage::from_percent(value).unwrap()
}

fn otlp(direction: &DirectionSettings) -> &OtlpExporter {
    match &direction.exporter {
        Some(Exporter::Otlp(otlp)) => otlp,
        other => panic!("expected an OTLP exporter, found {other:?}"),
    }
}

fn literal(name: &str, value: &str) -> CustomTag {
    CustomTag { name: name.into(), value: TagValue::Literal(value.into()) }
}

fn header_tag(name: &str, header: &str) -> CustomTag {
    CustomTag {
        name: name.into(),
        value: TagValue::RequestHeader { name: header.into(), default_value: None },
    }
}

/// An IstioOperator defining OTLP providers `a` (a-collector:4317) and `b` (b-collector:4317).
const TWO_PROVIDERS: &str = "\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - {name: a, opentelemetry: {service: a-collector, port: 4317}}
    - {name: b, opentelemetry: {service: b-collector, port: 4317}}
";

fn telemetry(name: &str, namespace: &str, body: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
    )
}

// ---- the seeds ------------------------------------------------------------------------------

#[test]
fn every_istio_linkerd_and_envoy_seed_resource_loads_unchanged() {
    let loads = [
        ("istio-config.yaml", "document 1 (IstioOperator istio-control-plane)"),
        ("telemetry.yaml", "document 1 (Telemetry mesh-tracing)"),
        ("namespace-telemetry.yaml", "document 1 (Telemetry api-tracing)"),
        ("deployment-with-linkerd.yaml", "document 1 (Deployment api-server)"),
        ("envoy-tracing-config.yaml", "document 1 (Envoy bootstrap)"),
        ("envoy-custom-tags.yaml", "document 1 (Envoy tracing)"),
        ("otel-collector-resources.yaml", "document 1 (Deployment otel-collector)"),
        ("istio-otel-config-grpc.yaml", "document 1 (IstioOperator)"),
        ("istio-otel-config-http.yaml", "document 1 (IstioOperator)"),
        ("istio-telemetry.yaml", "document 1 (Telemetry otel-demo)"),
        ("walkthrough-istio-operator.yaml", "document 1 (IstioOperator)"),
        ("walkthrough-telemetry.yaml", "document 1 (Telemetry otel-demo)"),
    ];
    for (name, label) in loads {
        let documents =
            parse_documents(&seed(name), name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(documents.labels(), [label], "{name}");
    }
    // And all of them together after a Sidecar document, Telemetries next to their providers.
    let all: Vec<String> = loads.iter().map(|(name, _)| seed(name)).collect();
    let mut documents: Vec<&str> = vec![PRODUCTPAGE];
    documents.extend(all.iter().map(String::as_str).filter(|d| !d.contains("kind: IstioOperator")));
    documents.push(TWO_PROVIDERS);
    let text = file(&documents).replace("otel-tracing", "a");
    let config = load(&text, "all.yaml").unwrap();
    assert_eq!(config.workload.name, "productpage-v1");
}

#[test]
fn seed_000_istio_operator_with_mesh_telemetry() {
    let config = settings(&[PRODUCTPAGE, &seed("istio-config.yaml"), &seed("telemetry.yaml")]);
    let tracing = &config.tracing;
    assert_eq!(tracing.service_name, "productpage.default");
    assert_eq!(tracing.mode(), Some(WorkloadMode::ClientAndServer));
    for direction in [&tracing.inbound, &tracing.outbound] {
        assert!(direction.enabled);
        assert_eq!(direction.sampling, SamplingPercentage::HUNDRED);
        assert_eq!(
            direction.custom_tags,
            [literal("cluster", "us-west-2"), literal("environment", "production")]
        );
        let exporter = otlp(direction);
        assert_eq!(exporter.protocol, OtlpProtocol::Grpc);
        assert_eq!(
            exporter.endpoint,
            Endpoint::new("otel-collector.observability.svc.cluster.local", 4317)
        );
        assert_eq!(exporter.authority, "otel-collector.observability.svc.cluster.local:4317");
    }
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn seed_000_istio_operator_alone_uses_the_legacy_zipkin_tracer() {
    // No Telemetry and no default provider: Istio falls back to enableTracing +
    // defaultConfig.tracing (sampling 100, zipkin address).
    let config = settings(&[PRODUCTPAGE, &seed("istio-config.yaml")]);
    let inbound = &config.tracing.inbound;
    assert!(inbound.enabled);
    assert_eq!(inbound.sampling, SamplingPercentage::HUNDRED);
    let zipkin = ZipkinExporter {
        endpoint: Endpoint::new("otel-collector.observability", 9411),
        authority: "otel-collector.observability:9411".into(),
        path: "/api/v2/spans".into(),
        trace_id_64bit: false,
    };
    assert_eq!(inbound.exporter, Some(Exporter::Zipkin(zipkin)));
    assert_eq!(config.tracing.outbound, config.tracing.inbound);
}

#[test]
fn seed_000_namespace_telemetry_overrides_the_mesh_one() {
    let api = sidecar("api-server", "api-services", "{app: api-server}");
    let config = settings(&[
        &api,
        &seed("istio-config.yaml"),
        &seed("telemetry.yaml"),
        &seed("namespace-telemetry.yaml"),
    ]);
    let inbound = &config.tracing.inbound;
    assert_eq!(inbound.sampling, percent(50.0));
    // customTags replace the mesh-level tags wholesale.
    assert_eq!(inbound.custom_tags, [literal("team", "platform")]);
    assert!(inbound.enabled && !inbound.disable_span_reporting);
    assert_eq!(config.tracing.service_name, "api-server.api-services");
    // The productpage workload (namespace default) only gets the mesh-level resource.
    let config = settings(&[
        PRODUCTPAGE,
        &seed("istio-config.yaml"),
        &seed("telemetry.yaml"),
        &seed("namespace-telemetry.yaml"),
    ]);
    assert_eq!(config.tracing.inbound.sampling, SamplingPercentage::HUNDRED);
    assert_eq!(config.tracing.inbound.custom_tags.len(), 2);
}

#[test]
fn seed_001_grpc_provider_and_telemetry() {
    let config = settings(&[
        PRODUCTPAGE,
        &seed("istio-otel-config-grpc.yaml"),
        &seed("istio-telemetry.yaml"),
    ]);
    let outbound = &config.tracing.outbound;
    assert_eq!(outbound.sampling, SamplingPercentage::HUNDRED);
    let expected = OtlpExporter {
        protocol: OtlpProtocol::Grpc,
        endpoint: Endpoint::new("<service-name>.<namespace>.svc.cluster.local", 4317),
        authority: "<service-name>.<namespace>.svc.cluster.local:4317".into(),
        path: None,
        timeout: None,
        headers: vec![],
        resource_detectors: vec![ResourceDetector::Environment],
    };
    assert_eq!(otlp(outbound), &expected);
    assert_eq!(config.tracing.service_name, "productpage.default");
}

#[test]
fn seed_001_http_provider_and_telemetry() {
    let config = settings(&[
        PRODUCTPAGE,
        &seed("istio-otel-config-http.yaml"),
        &seed("istio-telemetry.yaml"),
    ]);
    let expected = OtlpExporter {
        protocol: OtlpProtocol::Http,
        endpoint: Endpoint::new("opentelemetry-collector.observability.svc.cluster.local", 4318),
        authority: "opentelemetry-collector.observability.svc.cluster.local:4318".into(),
        path: Some("/v1/traces".into()),
        timeout: Some(Duration::from_secs(5)),
        headers: vec![ExportHeader {
            name: "custom-header".into(),
            value: HeaderValueSource::Literal("custom value".into()),
        }],
        resource_detectors: vec![ResourceDetector::Environment],
    };
    assert_eq!(otlp(&config.tracing.inbound), &expected);
}

#[test]
fn seed_001_walkthrough() {
    let config = settings(&[
        PRODUCTPAGE,
        &seed("walkthrough-istio-operator.yaml"),
        &seed("walkthrough-telemetry.yaml"),
    ]);
    let exporter = otlp(&config.tracing.inbound);
    assert_eq!(
        exporter.endpoint,
        Endpoint::new("opentelemetry-collector.observability.svc.cluster.local", 4317)
    );
    assert_eq!(config.tracing.inbound.sampling, SamplingPercentage::HUNDRED);
}

#[test]
fn seed_001_providers_defined_but_unselected_leave_the_defaults() {
    // The IstioOperator only defines the provider; without a Telemetry (or defaultProviders)
    // nothing selects it, so Istio's legacy path applies: 1 % to the built-in exporter.
    let config = settings(&[PRODUCTPAGE, &seed("istio-otel-config-http.yaml")]);
    assert_eq!(config.tracing.inbound.sampling, SamplingPercentage::ISTIO_DEFAULT);
    assert_eq!(otlp(&config.tracing.inbound).endpoint, Endpoint::new("localhost", 4317));
}

#[test]
fn seed_000_linkerd_deployment_annotations() {
    let api = sidecar("api-server", "default", "{app: api-server}");
    let config = settings(&[&api, &seed("deployment-with-linkerd.yaml")]);
    let linkerd = config.tracing.linkerd.expect("linkerd settings");
    assert_eq!(linkerd.collector, "otel-collector.linkerd-jaeger:4317");
    assert_eq!(linkerd.endpoint, Endpoint::new("otel-collector.linkerd-jaeger", 4317));
    assert_eq!(linkerd.service_account.as_deref(), Some("otel-collector"));
    assert_eq!(
        config.workload.annotations.get("config.linkerd.io/trace-collector").map(String::as_str),
        Some("otel-collector.linkerd-jaeger:4317")
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    // Alone in the file, the annotations decide how the workload traces: Linkerd's way.
    for direction in [&config.tracing.inbound, &config.tracing.outbound] {
        assert!(direction.enabled && !direction.start_traces);
        assert_eq!(direction.sampling, SamplingPercentage::ZERO);
        assert_eq!(otlp(direction).protocol, OtlpProtocol::Grpc);
        assert_eq!(otlp(direction).endpoint, Endpoint::new("otel-collector.linkerd-jaeger", 4317));
    }
    // Next to Istio resources they are reported and Istio decides.
    let config =
        settings(&[&api, &seed("deployment-with-linkerd.yaml"), &seed("istio-config.yaml")]);
    assert!(config.tracing.linkerd.is_some());
    assert!(config.tracing.inbound.start_traces && config.tracing.outbound.start_traces);
    // The seed's IstioOperator exports to its zipkin address.
    assert!(matches!(config.tracing.inbound.exporter, Some(Exporter::Zipkin(_))));
    assert_eq!(
        config.warnings,
        [
            "document 1 (Sidecar api-server).metadata.annotations: Linkerd's trace-collector annotation is ignored: the file's Istio or Envoy resources configure this workload's tracing"
        ]
    );
    // Istio resources that do not configure this workload's tracing leave Linkerd in charge:
    // a provider defined but not selected, a Telemetry of another namespace.
    let other_namespace = "\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: other, namespace: payments}
spec:
  tracing:
  - randomSamplingPercentage: 100
";
    let config = settings(&[
        &api,
        &seed("deployment-with-linkerd.yaml"),
        &seed("istio-otel-config-http.yaml"),
        other_namespace,
    ]);
    assert!(!config.tracing.inbound.start_traces, "{:?}", config.warnings);
    assert_eq!(otlp(&config.tracing.inbound).endpoint.host, "otel-collector.linkerd-jaeger");
    // Another workload's Deployment is not read, and says so.
    let config = settings(&[PRODUCTPAGE, &seed("deployment-with-linkerd.yaml")]);
    assert_eq!(config.tracing.linkerd, None);
    assert_eq!(
        config.warnings,
        [
            "document 2 (Deployment api-server): not the Sidecar's workload (default/productpage-v1); its pod template is not read"
        ]
    );
}

#[test]
fn linkerd_annotations_on_the_sidecar_document() {
    let doc = "kind: Sidecar\nmetadata:\n  name: web\n  annotations:\n    config.linkerd.io/trace-collector: collector.linkerd-jaeger:55678\n    config.alpha.linkerd.io/trace-collector-service-account: collector\nspec:\n  services: {collector.linkerd-jaeger:55678: 127.0.0.1:25678}\n";
    let linkerd = settings(&[doc]).tracing.linkerd.unwrap();
    assert_eq!(linkerd.endpoint, Endpoint::new("127.0.0.1", 25678));
    assert_eq!(linkerd.service_account.as_deref(), Some("collector"));
}

#[test]
fn seed_000_envoy_custom_tags() {
    let config = settings(&[PRODUCTPAGE, &seed("envoy-custom-tags.yaml")]);
    let expected = [
        literal("environment", "production"),
        header_tag("request.id", "x-request-id"),
        header_tag("tenant.id", "x-tenant-id"),
        header_tag("user.id", "x-user-id"),
    ];
    assert_eq!(config.tracing.inbound.custom_tags, expected);
    assert_eq!(config.tracing.outbound.custom_tags, expected);
}

#[test]
fn envoy_custom_tags_add_to_istio_tags() {
    let config = settings(&[
        PRODUCTPAGE,
        &seed("istio-config.yaml"),
        &seed("telemetry.yaml"),
        &seed("envoy-custom-tags.yaml"),
    ]);
    let names: Vec<&str> =
        config.tracing.inbound.custom_tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["cluster", "environment", "request.id", "tenant.id", "user.id"]);
    // Same name: the Envoy block's tag wins (here both say "production").
    assert_eq!(config.tracing.inbound.custom_tags[1], literal("environment", "production"));
}

#[test]
fn seed_000_envoy_bootstrap() {
    let config = settings(&[PRODUCTPAGE, &seed("envoy-tracing-config.yaml")]);
    assert_eq!(config.tracing.service_name, "envoy-proxy");
    let exporter = otlp(&config.tracing.inbound);
    assert_eq!(exporter.protocol, OtlpProtocol::Grpc);
    assert_eq!(exporter.endpoint, Endpoint::new("otel-collector", 4317));
    assert_eq!(exporter.timeout, Some(Duration::from_millis(250)));
    assert_eq!(config.tracing.outbound.exporter, config.tracing.inbound.exporter);
}

#[test]
fn seed_000_collector_deployment_loads_and_is_not_the_workload() {
    let config = settings(&[PRODUCTPAGE, &seed("otel-collector-resources.yaml")]);
    assert_eq!(config.workload.labels.get("app").map(String::as_str), Some("productpage"));
}

#[test]
fn seed_000_lua_envoy_filter_names_the_force_trace_rule() {
    assert_eq!(
        error(&[PRODUCTPAGE, &seed("dynamic-sampling.yaml")]),
        "document 2 (EnvoyFilter dynamic-sampling).spec.configPatches[0]: EnvoyFilter is not supported (the sidecar \
         has no Envoy to patch): this Lua filter forces tracing by request header; use the native rule in the Sidecar \
         document instead: spec.tracing.forceTraceHeaders: [{name: x-debug-trace, value: \"true\"}, {name: x-priority, \
         value: high}]"
    );
}

#[test]
fn seed_000_route_envoy_filter_names_the_never_trace_rule() {
    assert_eq!(
        error(&[PRODUCTPAGE, &seed("istio-selective-tracing.yaml")]),
        "document 2 (EnvoyFilter selective-tracing).spec.configPatches[0]: EnvoyFilter is not supported (the sidecar \
         has no Envoy to patch): this patch turns tracing off on routes (router filter metadata disable_tracing); use \
         the native rule in the Sidecar document instead: spec.tracing.neverTracePaths with the paths to skip (health \
         checks are skipped by default: [{exact: /healthz}, {exact: /livez}, {exact: /readyz}, {prefix: /app-health/}])\n\
         document 2 (EnvoyFilter selective-tracing).spec.configPatches[1]: EnvoyFilter is not supported (the sidecar \
         has no Envoy to patch): this patch sets a route decorator; span names follow Istio's rules (\"<host>:<port>/*\") \
         and cannot be set"
    );
}

#[test]
fn native_rules_replace_the_envoy_filters() {
    let doc = "kind: Sidecar\nmetadata: {name: api-gateway}\nspec:\n  tracing:\n    forceTraceHeaders: [{name: X-Debug-Trace, value: \"true\"}, {name: x-priority, value: high}, {name: x-canary}]\n    neverTracePaths: [{exact: /health}]\n    alwaysTracePaths: [{prefix: /checkout/}]\n    stitching: false\n";
    let tracing = settings(&[doc]).tracing;
    assert_eq!(
        tracing.force_trace_headers,
        [
            HeaderMatch { name: "x-debug-trace".into(), value: Some("true".into()) },
            HeaderMatch { name: "x-priority".into(), value: Some("high".into()) },
            HeaderMatch { name: "x-canary".into(), value: None },
        ]
    );
    assert_eq!(tracing.never_trace_paths, [PathMatch::Exact("/health".into())]);
    assert!(tracing.always_trace_paths[0].matches("/checkout/cart"));
    assert!(!tracing.stitching);
    // Defaults: health checks never traced, stitching on.
    let tracing = settings(&[PRODUCTPAGE]).tracing;
    assert!(tracing.never_trace_paths.iter().any(|rule| rule.matches("/app-health/reviews/livez")));
    assert!(tracing.stitching);
    let doc = "kind: Sidecar\nmetadata: {name: web}\nspec: {tracing: {neverTracePaths: []}}\n";
    assert!(settings(&[doc]).tracing.never_trace_paths.is_empty());
}

#[test]
fn propagators_name_the_formats_written_as_otel_propagators_does() {
    let with = |list: &str| {
        let doc = format!(
            "kind: Sidecar\nmetadata: {{name: web}}\nspec: {{tracing: {{propagators: {list}}}}}\n"
        );
        settings(&[&doc]).tracing.propagators
    };
    assert_eq!(with("[b3]"), Propagators::NONE.with(Propagator::B3Single));
    assert_eq!(
        with("[tracecontext, b3multi]"),
        Propagators::NONE.with(Propagator::TraceContext).with(Propagator::B3Multi)
    );
    assert_eq!(with("[none]"), Propagators::NONE);
    let empty = "kind: Sidecar\nmetadata: {name: web}\nspec: {tracing: {propagators: []}}\n";
    assert!(
        error(&[empty])
            .starts_with("document 1 (Sidecar web).spec.tracing.propagators: empty: write [none]")
    );
    // Default: the first seed's composite propagator.
    assert_eq!(settings(&[PRODUCTPAGE]).tracing.propagators, Propagators::seed_composite());
    let bad = "kind: Sidecar\nmetadata: {name: web}\nspec: {tracing: {propagators: [tracecontext, jaeger, none]}}\n";
    assert_eq!(
        error(&[bad]),
        "document 1 (Sidecar web).spec.tracing.propagators[1]: unknown propagator \"jaeger\": \
         expected tracecontext, baggage, b3, b3multi or none\n\
         document 1 (Sidecar web).spec.tracing.propagators[2]: \"none\" must be the only entry: it \
         means no format"
    );
}

#[test]
fn traced_the_linkerd_way_the_sidecar_writes_only_the_formats_a_request_carries() {
    let api = sidecar("api-server", "default", "{app: api-server}");
    let config = settings(&[&api, &seed("deployment-with-linkerd.yaml")]);
    assert_eq!(config.tracing.propagators, Propagators::NONE, "as linkerd-proxy");
    // Unless the Sidecar document says otherwise.
    let api = format!("{api}  tracing: {{propagators: [tracecontext]}}\n");
    let config = settings(&[&api, &seed("deployment-with-linkerd.yaml")]);
    assert_eq!(config.tracing.propagators, Propagators::NONE.with(Propagator::TraceContext));
    // With Istio in charge, Istio's default holds.
    let api = sidecar("api-server", "default", "{app: api-server}");
    let config =
        settings(&[&api, &seed("deployment-with-linkerd.yaml"), &seed("istio-config.yaml")]);
    assert_eq!(config.tracing.propagators, Propagators::seed_composite());
}

#[test]
fn collector_configmaps_and_services_are_not_sidecar_documents() {
    let supported = "the sidecar reads Sidecar, IstioOperator, Telemetry, Deployment and EnvoyFilter documents, and \
                     kind-less meshConfig:, tracing: and static_resources: documents";
    assert_eq!(
        error(&[PRODUCTPAGE, &seed("otel.yaml")]),
        format!(
            "document 2 (ConfigMap opentelemetry-collector-conf).kind: unsupported kind \"ConfigMap\" (a collector \
             config belongs to `meshtrace collector`): {supported}\n\
             document 3 (Service opentelemetry-collector).kind: unsupported kind \"Service\": {supported}"
        )
    );
    for name in [
        "otel-collector-config.yaml",
        "linkerd-otel-collector.yaml",
        "multi-cluster-collector.yaml",
    ] {
        let message = parse_documents(&seed(name), name).unwrap_err().to_string();
        assert!(message.starts_with("document 1 (ConfigMap "), "{name}: {message}");
    }
}

// ---- defaults -------------------------------------------------------------------------------

#[test]
fn without_istio_resources_the_sidecar_traces_at_istio_defaults() {
    let config = settings(&[PRODUCTPAGE]);
    let tracing = &config.tracing;
    assert_eq!(tracing.service_name, "productpage.default");
    for direction in [&tracing.inbound, &tracing.outbound] {
        assert!(direction.enabled);
        assert_eq!(direction.sampling, percent(1.0));
        assert_eq!(
            (direction.client_sampling, direction.overall_sampling),
            (SamplingPercentage::HUNDRED, SamplingPercentage::HUNDRED)
        );
        assert!(direction.enable_istio_tags && direction.use_request_id_for_trace_sampling);
        assert_eq!(direction.max_path_tag_length, 256);
        let exporter = otlp(direction);
        assert_eq!(
            (exporter.protocol, &exporter.endpoint),
            (OtlpProtocol::Grpc, &Endpoint::new("localhost", 4317))
        );
    }
    let listeners = &config.listeners;
    assert_eq!(listeners.inbound.as_ref().unwrap().app, Endpoint::new("127.0.0.1", 9080));
    assert_eq!(listeners.outbound.to_string(), "127.0.0.1:15001");
    assert_eq!(config.services[0].authority(), "reviews.default.svc.cluster.local:9080");
    assert_eq!(config.services[0].target, Endpoint::new("127.0.0.1", 19080));
}

#[test]
fn exporter_addresses_go_through_the_services_table() {
    let doc = "kind: Sidecar\nmetadata: {name: web}\nspec:\n  services: {collector.observability:4317: 127.0.0.1:14317}\n";
    let mesh = "meshConfig:\n  defaultProviders: {tracing: [otel]}\n  extensionProviders:\n  - {name: otel, opentelemetry: {service: observability/collector.observability, port: 4317}}\n";
    let exporter = otlp(&settings(&[doc, mesh]).tracing.inbound).clone();
    assert_eq!(exporter.endpoint, Endpoint::new("127.0.0.1", 14317));
    assert_eq!(exporter.authority, "collector.observability:4317");
}

// ---- merge order ----------------------------------------------------------------------------

fn sampling_entry(value: &str) -> String {
    format!("  tracing:\n  - randomSamplingPercentage: {value}\n")
}

/// productpage-v1 with root, namespace and selector Telemetries setting 10, 20 and 30 %.
fn three_levels() -> [String; 3] {
    [
        telemetry(
            "mesh-default",
            "istio-system",
            &format!("{}    providers: [{{name: a}}]\n", sampling_entry("10")),
        ),
        telemetry("namespace", "default", &sampling_entry("20")),
        telemetry(
            "productpage",
            "default",
            &format!("  selector: {{matchLabels: {{app: productpage}}}}\n{}", sampling_entry("30")),
        ),
    ]
}

#[test]
fn root_then_namespace_then_selector_later_overrides_earlier() {
    let [root, namespace, selector] = three_levels();
    // File order does not matter; Istio's order does.
    let all = settings(&[PRODUCTPAGE, TWO_PROVIDERS, &selector, &namespace, &root]);
    assert_eq!(all.tracing.inbound.sampling, percent(30.0));
    assert_eq!(
        otlp(&all.tracing.inbound).endpoint,
        Endpoint::new("a-collector", 4317),
        "inherited from the root"
    );
    assert_eq!(
        settings(&[PRODUCTPAGE, TWO_PROVIDERS, &root, &namespace]).tracing.inbound.sampling,
        percent(20.0)
    );
    assert_eq!(
        settings(&[PRODUCTPAGE, TWO_PROVIDERS, &root]).tracing.inbound.sampling,
        percent(10.0)
    );
    // A selector that does not match, and other namespaces, do not apply.
    let reviews = sidecar("reviews-v1", "default", "{app: reviews}");
    assert_eq!(
        settings(&[&reviews, TWO_PROVIDERS, &root, &namespace, &selector]).tracing.inbound.sampling,
        percent(20.0)
    );
    let elsewhere = sidecar("productpage-v1", "shop", "{app: productpage}");
    assert_eq!(
        settings(&[&elsewhere, TWO_PROVIDERS, &root, &namespace, &selector])
            .tracing
            .inbound
            .sampling,
        percent(10.0)
    );
}

#[test]
fn root_namespace_comes_from_mesh_config() {
    let [root, ..] = three_levels();
    let mesh = "meshConfig:\n  rootNamespace: mesh-root\n  extensionProviders:\n  - {name: a, opentelemetry: {service: a-collector, port: 4317}}\n";
    let moved = root.replace("istio-system", "mesh-root");
    assert_eq!(settings(&[PRODUCTPAGE, mesh, &moved]).tracing.inbound.sampling, percent(10.0));
    // istio-system is now an ordinary namespace: its Telemetry applies to nobody here, so the
    // legacy defaults apply.
    let config = settings(&[PRODUCTPAGE, mesh, &root]);
    assert_eq!(config.tracing.inbound.sampling, percent(1.0));
    assert_eq!(otlp(&config.tracing.inbound).endpoint, Endpoint::new("localhost", 4317));
}

#[test]
fn providers_override_per_level_and_are_inherited() {
    let root =
        telemetry("mesh-default", "istio-system", "  tracing:\n  - providers: [{name: a}]\n");
    let namespace =
        telemetry("namespace", "default", "  tracing:\n  - providers: [{name: b}, {name: a}]\n");
    let config = settings(&[PRODUCTPAGE, TWO_PROVIDERS, &root, &namespace]);
    assert_eq!(
        otlp(&config.tracing.inbound).endpoint,
        Endpoint::new("b-collector", 4317),
        "only the first is used"
    );
    // defaultProviders is the starting point; a Telemetry without providers inherits it.
    let mesh = format!("{TWO_PROVIDERS}    defaultProviders: {{tracing: [b]}}\n");
    let config = settings(&[PRODUCTPAGE, &mesh, &telemetry("n", "default", &sampling_entry("5"))]);
    assert_eq!(otlp(&config.tracing.outbound).endpoint, Endpoint::new("b-collector", 4317));
    assert_eq!(config.tracing.outbound.sampling, percent(5.0));
    // defaultProviders alone switches to the Telemetry path: sampling from defaultConfig.
    let mesh = format!(
        "{TWO_PROVIDERS}    defaultProviders: {{tracing: [a]}}\n    defaultConfig: {{tracing: {{sampling: 2.5}}}}\n"
    );
    let config = settings(&[PRODUCTPAGE, &mesh]);
    assert_eq!(config.tracing.inbound.sampling, percent(2.5));
    assert_eq!(otlp(&config.tracing.inbound).endpoint, Endpoint::new("a-collector", 4317));
}

#[test]
fn telemetry_without_any_provider_turns_tracing_off() {
    let config =
        settings(&[PRODUCTPAGE, TWO_PROVIDERS, &telemetry("n", "default", &sampling_entry("50"))]);
    assert_eq!(config.tracing.mode(), None);
    assert!(!config.tracing.inbound.enabled && config.tracing.inbound.exporter.is_none());
    assert_eq!(
        config.warnings,
        [
            "tracing is off for inbound traffic: no tracing provider (name one in a Telemetry's providers or in meshConfig.defaultProviders.tracing)",
            "tracing is off for outbound traffic: no tracing provider (name one in a Telemetry's providers or in meshConfig.defaultProviders.tracing)",
        ]
    );
}

#[test]
fn match_mode_touches_one_direction() {
    let root = telemetry(
        "mesh-default",
        "istio-system",
        "  tracing:\n  - providers: [{name: a}]\n    randomSamplingPercentage: 10\n  - match: {mode: CLIENT}\n    randomSamplingPercentage: 50\n  - match: {mode: SERVER}\n    disableSpanReporting: true\n",
    );
    let config = settings(&[PRODUCTPAGE, TWO_PROVIDERS, &root]);
    let tracing = &config.tracing;
    assert_eq!(tracing.outbound.sampling, percent(50.0));
    assert!(tracing.outbound.enabled);
    assert_eq!(tracing.inbound.sampling, percent(10.0));
    assert!(!tracing.inbound.enabled && tracing.inbound.disable_span_reporting);
    assert_eq!(tracing.mode(), Some(WorkloadMode::Client));
    // A later level can turn span reporting back on.
    let namespace = telemetry("n", "default", "  tracing:\n  - disableSpanReporting: false\n");
    assert_eq!(
        settings(&[PRODUCTPAGE, TWO_PROVIDERS, &root, &namespace]).tracing.mode(),
        Some(WorkloadMode::ClientAndServer)
    );
}

#[test]
fn custom_tags_replace_wholesale_and_fall_back_to_default_config() {
    let mesh = format!(
        "{TWO_PROVIDERS}    defaultConfig:\n      tracing:\n        customTags:\n          mesh: {{literal: {{value: m}}}}\n"
    );
    let root = telemetry(
        "mesh-default",
        "istio-system",
        "  tracing:\n  - providers: [{name: a}]\n    customTags:\n      a: {literal: {value: one}}\n      b: {environment: {name: POD_NAME, defaultValue: unknown}}\n",
    );
    let namespace = telemetry(
        "n",
        "default",
        "  tracing:\n  - customTags:\n      c: {header: {name: X-Tenant}}\n",
    );
    let inherited = telemetry("n", "default", "  tracing:\n  - randomSamplingPercentage: 5\n");
    let tags = |docs: &[&str]| settings(docs).tracing.inbound.custom_tags;
    assert_eq!(tags(&[PRODUCTPAGE, &mesh, &root, &namespace]), [header_tag("c", "x-tenant")]);
    assert_eq!(
        tags(&[PRODUCTPAGE, &mesh, &root, &inherited]),
        [
            literal("a", "one"),
            CustomTag {
                name: "b".into(),
                value: TagValue::Environment {
                    name: "POD_NAME".into(),
                    default_value: Some("unknown".into())
                },
            },
        ]
    );
    let only_provider =
        telemetry("mesh-default", "istio-system", "  tracing:\n  - providers: [{name: a}]\n");
    assert_eq!(tags(&[PRODUCTPAGE, &mesh, &only_provider]), [literal("mesh", "m")]);
}

#[test]
fn sampling_precedence_telemetry_then_default_config_then_one_percent() {
    let mesh = |sampling: &str| {
        format!("{TWO_PROVIDERS}    defaultConfig: {{tracing: {{sampling: {sampling}}}}}\n")
    };
    let root =
        telemetry("mesh-default", "istio-system", "  tracing:\n  - providers: [{name: a}]\n");
    let with_rate = telemetry("n", "default", &sampling_entry("0"));
    assert_eq!(
        settings(&[PRODUCTPAGE, &mesh("7"), &root, &with_rate]).tracing.inbound.sampling,
        SamplingPercentage::ZERO
    );
    assert_eq!(settings(&[PRODUCTPAGE, &mesh("7"), &root]).tracing.inbound.sampling, percent(7.0));
    // 0 in defaultConfig means "unset" to Istio.
    let config = settings(&[PRODUCTPAGE, &mesh("0"), &root]);
    assert_eq!(config.tracing.inbound.sampling, percent(1.0));
    assert_eq!(
        config.warnings,
        [
            "document 2 (IstioOperator).spec.meshConfig.defaultConfig.tracing.sampling: 0 means \"not set\" to Istio, so istiod's default applies (1%, or values.pilot.traceSampling); use a Telemetry randomSamplingPercentage: 0 to stop sampling"
        ]
    );
    // 0.01 % steps, rounded as Envoy does.
    assert_eq!(
        settings(&[PRODUCTPAGE, &mesh("0.125"), &root]).tracing.inbound.sampling.hundredths(),
        13
    );
}

#[test]
fn istiods_trace_sampling_value_is_the_last_fallback() {
    // `istioctl install --set values.pilot.traceSampling=100`: istiod's PILOT_TRACE_SAMPLING.
    let values = |sampling: &str| {
        format!(
            "{TWO_PROVIDERS}  values: {{pilot: {{traceSampling: {sampling}}}, global: {{hub: docker.io/istio}}}}\n"
        )
    };
    let root =
        telemetry("mesh-default", "istio-system", "  tracing:\n  - providers: [{name: a}]\n");
    let config = settings(&[PRODUCTPAGE, &values("100"), &root]);
    assert_eq!(config.tracing.inbound.sampling, SamplingPercentage::HUNDRED);
    assert_eq!(config.tracing.outbound.sampling, SamplingPercentage::HUNDRED);
    // The legacy path (no Telemetry, no default provider) falls back to it too.
    let legacy = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  values: {pilot: {traceSampling: 12.5}}\n";
    assert_eq!(settings(&[PRODUCTPAGE, legacy]).tracing.inbound.sampling, percent(12.5));
    // Below defaultConfig.tracing.sampling and Telemetry.
    let both = format!(
        "{TWO_PROVIDERS}    defaultConfig: {{tracing: {{sampling: 7}}}}\n  values: {{pilot: {{traceSampling: 100}}}}\n"
    );
    assert_eq!(settings(&[PRODUCTPAGE, &both, &root]).tracing.inbound.sampling, percent(7.0));
    let with_rate = telemetry("n", "default", &sampling_entry("3"));
    let config = settings(&[PRODUCTPAGE, &values("100"), &root, &with_rate]);
    assert_eq!(config.tracing.inbound.sampling, percent(3.0));
    // 0 is not written to istiod's environment by the Helm chart; out of range, istiod warns
    // and keeps 1 %.
    assert_eq!(
        settings(&[PRODUCTPAGE, &values("0"), &root]).tracing.inbound.sampling,
        percent(1.0)
    );
    let config = settings(&[PRODUCTPAGE, &values("150"), &root]);
    assert_eq!(config.tracing.inbound.sampling, percent(1.0));
    assert_eq!(
        config.warnings,
        [
            "document 2 (IstioOperator).spec.values.pilot.traceSampling: 150 is out of range: expected 0 to 100; istiod samples at its default, 1 %"
        ]
    );
    assert_eq!(
        error(&[PRODUCTPAGE, &values("high")]),
        "document 2 (IstioOperator).spec.values.pilot.traceSampling: expected a number (percent, 0 to 100), found string"
    );
    // Reported with the document's other errors.
    let both = values("high")
        .replace("    extensionProviders:", "    enableTraceing: true\n    extensionProviders:");
    let text = error(&[PRODUCTPAGE, &both]);
    assert!(text.contains("traceSampling") && text.contains("enableTraceing"), "{text}");
}

#[test]
fn enable_tracing_false_only_governs_the_legacy_path() {
    let off = "meshConfig:\n  enableTracing: false\n  extensionProviders:\n  - {name: a, opentelemetry: {service: a-collector, port: 4317}}\n";
    assert_eq!(settings(&[PRODUCTPAGE, off]).tracing.mode(), None);
    let root =
        telemetry("mesh-default", "istio-system", "  tracing:\n  - providers: [{name: a}]\n");
    assert_eq!(
        settings(&[PRODUCTPAGE, off, &root]).tracing.mode(),
        Some(WorkloadMode::ClientAndServer)
    );
}

#[test]
fn same_namespace_and_name_is_one_object() {
    let first = telemetry(
        "t",
        "default",
        &format!("{}    providers: [{{name: a}}]\n", sampling_entry("10")),
    );
    let second = telemetry(
        "t",
        "default",
        &format!("{}    providers: [{{name: a}}]\n", sampling_entry("20")),
    );
    let config = settings(&[PRODUCTPAGE, TWO_PROVIDERS, &first, &second]);
    assert_eq!(config.tracing.inbound.sampling, percent(20.0));
    assert_eq!(
        config.warnings,
        ["document 4 (Telemetry t) replaces document 3 (Telemetry t) (same namespace and name)"]
    );
}

#[test]
fn telemetry_without_namespace_is_the_workloads() {
    let doc = "apiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata: {name: t}\nspec:\n  tracing:\n  - providers: [{name: a}]\n    randomSamplingPercentage: 42\n";
    assert_eq!(
        settings(&[PRODUCTPAGE, TWO_PROVIDERS, doc]).tracing.inbound.sampling,
        percent(42.0)
    );
}

#[test]
fn target_refs_never_select_a_sidecar() {
    let gateway = telemetry(
        "gw",
        "default",
        "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: web}]\n  tracing:\n  - providers: [{name: a}]\n",
    );
    let config = settings(&[PRODUCTPAGE, TWO_PROVIDERS, &gateway]);
    assert_eq!(
        otlp(&config.tracing.inbound).endpoint,
        Endpoint::new("localhost", 4317),
        "legacy defaults"
    );
    assert_eq!(
        config.warnings,
        [
            "document 3 (Telemetry gw): targetRefs select gateways, waypoints or services, never a sidecar; it does not apply"
        ]
    );
}

// ---- service name ---------------------------------------------------------------------------

fn service_name(labels: &str, mesh: &str) -> String {
    let doc = sidecar("productpage-v1", "bookinfo", labels);
    let mut documents = vec![doc.as_str()];
    if !mesh.is_empty() {
        documents.push(mesh);
    }
    settings(&documents).tracing.service_name
}

#[test]
fn tracing_service_name_variants() {
    let mesh =
        |name: &str| format!("meshConfig: {{defaultConfig: {{tracingServiceName: {name}}}}}");
    let labels =
        "{app: productpage, app.kubernetes.io/name: pp, service.istio.io/canonical-name: product}";
    assert_eq!(service_name(labels, ""), "productpage.bookinfo");
    assert_eq!(service_name(labels, &mesh("APP_LABEL_AND_NAMESPACE")), "productpage.bookinfo");
    assert_eq!(service_name(labels, &mesh("CANONICAL_NAME_ONLY")), "product");
    assert_eq!(service_name(labels, &mesh("CANONICAL_NAME_AND_NAMESPACE")), "product.bookinfo");
    // Fallbacks: app.kubernetes.io/name, then app, then the workload name.
    assert_eq!(
        service_name(
            "{app: productpage, app.kubernetes.io/name: pp}",
            &mesh("CANONICAL_NAME_ONLY")
        ),
        "pp"
    );
    assert_eq!(
        service_name("{app: productpage}", &mesh("CANONICAL_NAME_AND_NAMESPACE")),
        "productpage.bookinfo"
    );
    assert_eq!(service_name("{app.kubernetes.io/name: pp}", ""), "pp.bookinfo");
    assert_eq!(service_name("{service.istio.io/canonical-name: product}", ""), "product.bookinfo");
    assert_eq!(service_name("{}", &mesh("CANONICAL_NAME_ONLY")), "productpage-v1");
    assert_eq!(service_name("{}", ""), "productpage-v1.bookinfo");
    assert_eq!(
        service_name("{app: x}", "meshConfig: {defaultConfig: {serviceCluster: reviews-cluster}}"),
        "reviews-cluster"
    );
    assert_eq!(
        service_name("{app: x}", "meshConfig: {defaultConfig: {serviceCluster: istio-proxy}}"),
        "x.bookinfo"
    );
}

#[test]
fn deployment_labels_complete_the_workload() {
    let doc =
        "kind: Sidecar\nmetadata: {name: api-server, namespace: default, labels: {version: v2}}\n";
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api-server}\nspec:\n  replicas: 2\n  template:\n    metadata:\n      labels: {app: api, version: v1}\n    spec: {containers: [{name: api, image: api:1}]}\n";
    let config = settings(&[doc, deployment]);
    assert_eq!(config.tracing.service_name, "api.default");
    assert_eq!(
        config.workload.labels.get("version").map(String::as_str),
        Some("v2"),
        "the Sidecar document wins"
    );
}

// ---- golden errors --------------------------------------------------------------------------

#[test]
fn out_of_range_sampling_names_document_kind_and_path() {
    let doc = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: otel-demo}\nspec:\n  tracing:\n  - providers: [{name: otel-tracing}]\n    randomSamplingPercentage: 150\n";
    assert_eq!(
        error(&[PRODUCTPAGE, doc]),
        "document 2 (Telemetry otel-demo).spec.tracing[0].randomSamplingPercentage: 150 is out of range: expected 0 to 100"
    );
    let envoy = "tracing:\n  random_sampling: {value: -0.5}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, envoy]),
        "document 2 (Envoy tracing).tracing.random_sampling.value: -0.5 is out of range: expected 0 to 100"
    );
    let legacy = "meshConfig: {defaultConfig: {tracing: {sampling: 100.01}}}";
    assert_eq!(
        error(&[PRODUCTPAGE, legacy]),
        "document 2 (meshConfig).meshConfig.defaultConfig.tracing.sampling: 100.01 is out of range: expected 0 to 100"
    );
}

#[test]
fn unknown_fields_are_all_reported_with_their_paths() {
    let operator = "\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  profile: demo
  meshConfig:
    accessLogFile: /dev/stdout
    enableTraceing: true
    defaultConfig:
      proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}
      tracing: {samplingRate: 5}
    extensionProviders:
    - name: otel
      opentelemetry: {service: c, port: 4317, protocol: grpc}
";
    let telemetry = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: default}\nspec:\n  tracing:\n  - randomSampling: 5\n    match: {mode: BOTH}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, operator, telemetry]),
        "\
document 2 (IstioOperator).spec.meshConfig.enableTraceing: unknown key \"enableTraceing\"; valid keys: enableTracing, rootNamespace, defaultConfig, extensionProviders, defaultProviders, trustDomain, trust_domain
document 2 (IstioOperator).spec.meshConfig.defaultConfig.tracing.samplingRate: unknown key \"samplingRate\"; valid keys: sampling, customTags, maxPathTagLength, enableIstioTags, zipkin, tlsSettings, lightstep, datadog, stackdriver, openCensusAgent
document 2 (IstioOperator).spec.meshConfig.extensionProviders[0].opentelemetry.protocol: unknown key \"protocol\"; valid keys: service, port, maxTagLength, http, grpc, resourceDetectors, resource_detectors, dynatraceSampler
document 3 (Telemetry t).spec.tracing[0].randomSampling: unknown key \"randomSampling\"; valid keys: match, providers, randomSamplingPercentage, disableSpanReporting, customTags, useRequestIdForTraceSampling, enableIstioTags, disableContextPropagation
document 3 (Telemetry t).spec.tracing[0].match.mode: invalid value \"BOTH\", expected one of CLIENT_AND_SERVER, CLIENT, SERVER"
    );
}

#[test]
fn istio_fields_that_do_not_affect_tracing_are_accepted() {
    let operator = "\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: control-plane, namespace: istio-system}
spec:
  profile: default
  hub: docker.io/istio
  values: {global: {hub: docker.io/istio, proxy: {resources: {requests: {cpu: 10m}}}}}
  components: {ingressGateways: [{name: istio-ingressgateway, enabled: true}]}
  meshConfig:
    accessLogFile: /dev/stdout
    outbound_traffic_policy: {mode: REGISTRY_ONLY}
    enablePrometheusMerge: true
    defaultConfig:
      holdApplicationUntilProxyStarts: true
      proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}
      tracing: {sampling: 10, maxPathTagLength: 99, tlsSettings: {mode: DISABLE}}
    extensionProviders:
    - {name: authz, envoyExtAuthzHttp: {service: authz.auth.svc.cluster.local, port: 8000}}
    - {name: log, envoyFileAccessLog: {path: /dev/stdout}}
status: {status: HEALTHY}
";
    let config = settings(&[PRODUCTPAGE, operator]);
    assert_eq!(config.tracing.inbound.sampling, percent(10.0));
    assert_eq!(config.tracing.inbound.max_path_tag_length, 99);
}

#[test]
fn mesh_and_cluster_ids_come_from_istio_s_install_settings_as_its_injector_takes_them() {
    let ids = |documents: &[&str]| {
        let mesh = settings(documents).mesh;
        (mesh.mesh_id, mesh.cluster_id)
    };
    let owned = |mesh: &str, cluster: &str| (mesh.to_owned(), cluster.to_owned());
    // Istio's defaults: the trust domain and the cluster name `Kubernetes`.
    assert_eq!(ids(&[PRODUCTPAGE]), owned("cluster.local", "Kubernetes"));
    let operator = |values: &str, mesh: &str| {
        format!(
            "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  values: {values}\n  meshConfig: {mesh}\n"
        )
    };
    let values = "{global: {meshID: mesh1, multiCluster: {clusterName: east}}}";
    assert_eq!(ids(&[PRODUCTPAGE, &operator(values, "{}")]), owned("mesh1", "east"));
    assert_eq!(
        ids(&[PRODUCTPAGE, &operator("{}", "{trustDomain: example.org}")]),
        owned("example.org", "Kubernetes")
    );
    // The injector reads meshID before the trust domain, and never defaultConfig.meshId.
    assert_eq!(
        ids(&[
            PRODUCTPAGE,
            &operator(values, "{trustDomain: example.org, defaultConfig: {meshId: mesh2}}")
        ]),
        owned("mesh1", "east")
    );
    assert_eq!(
        ids(&[PRODUCTPAGE, &operator("{global: {trustDomain: corp.example}}", "{}")]),
        owned("corp.example", "Kubernetes")
    );
    assert_eq!(
        ids(&[
            PRODUCTPAGE,
            &operator("{global: {trustDomain: corp.example}}", "{trustDomain: example.org}")
        ]),
        owned("example.org", "Kubernetes")
    );
    // proxyMetadata becomes istio-proxy's environment, over what the injector derived.
    let metadata = "{defaultConfig: {proxyMetadata: {ISTIO_META_MESH_ID: mesh3, ISTIO_META_CLUSTER_ID: west, ISTIO_META_DNS_CAPTURE: true}}}";
    assert_eq!(ids(&[PRODUCTPAGE, &operator(values, metadata)]), owned("mesh3", "west"));
    // Later documents override earlier ones.
    let later = operator("{global: {meshID: mesh4}}", "{}");
    assert_eq!(ids(&[PRODUCTPAGE, &operator(values, "{}"), &later]), owned("mesh4", "east"));
}

#[test]
fn telemetry_metrics_access_logs_and_bucket_annotations_are_reported_as_not_applied() {
    let body = "  metrics:\n  - overrides: [{match: {metric: REQUEST_COUNT}, disabled: true}]\n  accessLogging:\n  - providers: [{name: envoy}]\n";
    let applies = telemetry("mesh-default", "istio-system", body);
    let elsewhere = telemetry("other", "payments", body);
    let annotated = "kind: Sidecar\nmetadata:\n  name: productpage-v1\n  annotations: {sidecar.istio.io/statsHistogramBuckets: '{\"istiocustom\":[1,5,10]}'}\nspec:\n  inbound: {app: 127.0.0.1:9080}\n";
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: productpage-v1, namespace: default}\nspec:\n  template:\n    metadata:\n      annotations: {sidecar.istio.io/statsHistogramBuckets: '{\"istiocustom\":[1,5]}'}\n";
    let config = settings(&[PRODUCTPAGE, deployment]);
    assert_eq!(
        config.warnings,
        [
            "document 2 (Deployment productpage-v1).spec.template.metadata.annotations.sidecar.istio.io/statsHistogramBuckets: not applied: the histograms keep Envoy's default buckets"
        ]
    );
    let config = settings(&[annotated, &applies, &elsewhere]);
    assert_eq!(
        config.warnings,
        [
            "document 1 (Sidecar productpage-v1).metadata.annotations.sidecar.istio.io/statsHistogramBuckets: not applied: the histograms keep Envoy's default buckets",
            "document 2 (Telemetry mesh-default).spec.metrics: not applied: the sidecar serves Istio's standard metrics with their default labels and buckets; metric overrides, disabled metrics and providers are not applied",
            "document 2 (Telemetry mesh-default).spec.accessLogging: not applied: the sidecar writes no access log",
        ]
    );
    // Tracing is read as before.
    assert!(config.tracing.inbound.enabled);
}

#[test]
fn the_inbound_service_is_qualified_in_the_workload_namespace() {
    let doc = |service: &str| {
        format!(
            "kind: Sidecar\nmetadata: {{name: httpbin, namespace: web}}\nspec:\n  inbound: {{app: 127.0.0.1:80, service: {service}}}\n"
        )
    };
    let with = |service: &str| settings(&[&doc(service)]).listeners.inbound.unwrap().service;
    let fqdn = Some(Endpoint::new("httpbin.web.svc.cluster.local", 8000));
    for written in [
        "httpbin:8000",
        "httpbin.web:8000",
        "httpbin.web.svc:8000",
        "HTTPBIN.web.svc.cluster.local:8000",
    ] {
        assert_eq!(with(written), fqdn, "{written}");
    }
    assert_eq!(settings(&[PRODUCTPAGE]).listeners.inbound.unwrap().service, None);
    let path = "document 1 (Sidecar httpbin).spec.inbound.service";
    assert_eq!(
        error(&[&doc("httpbin.other:8000")]),
        format!(
            "{path}: the Service in front of the workload is in its namespace, \"web\", not \"other\""
        )
    );
    for bad in ["10.0.0.1:80", "httpbin.web.svc.cluster:80", "http_bin:80", "httpbin."] {
        assert!(error(&[&doc(bad)]).starts_with(path), "{bad}: {}", error(&[&doc(bad)]));
    }
    assert!(error(&[&doc("httpbin")]).starts_with(path), "a port is needed");
}

#[test]
fn sidecar_document_errors_come_all_at_once() {
    let doc = "\
kind: Sidecar
metadata: {namespace: x}
spec:
  inbound: {listen: 0.0.0.0:99999}
  services: {reviews: 127.0.0.1:1}
  tracing: {forceTraceHeaders: [{name: 'bad header'}], neverTracePaths: [{exact: health}], alwaysTracePaths: [{regex: '.*'}]}
  extra: 1
";
    assert_eq!(
        error(&[doc]),
        "\
document 1 (Sidecar).spec.extra: unknown key \"extra\"; valid keys: inbound, outbound, admin, services, tracing
document 1 (Sidecar).spec.inbound.listen: invalid address \"0.0.0.0:99999\": port out of range
document 1 (Sidecar).spec.inbound.app: missing required key
document 1 (Sidecar).spec.tracing.alwaysTracePaths[0]: invalid value \"regex\", expected one of exact, prefix
document 1 (Sidecar).metadata.name: missing required key
document 1 (Sidecar).spec.services.reviews: invalid address \"reviews\": missing port
document 1 (Sidecar).spec.tracing.forceTraceHeaders[0].name: invalid header name \"bad header\"
document 1 (Sidecar).spec.tracing.neverTracePaths[0].exact: invalid path \"health\": must start with \"/\""
    );
}

#[test]
fn document_level_errors() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["meshConfig: {enableTracing: true}"],
            "no Sidecar document: the file needs a kind: Sidecar document describing the workload",
        ),
        (
            &[PRODUCTPAGE, PRODUCTPAGE],
            "document 2 (Sidecar productpage-v1): a second Sidecar document (the first is document 1 (Sidecar productpage-v1)): one file configures one sidecar",
        ),
        (
            &[
                "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec: {egress: [{hosts: ['./*']}]}\n",
            ],
            "document 1 (Sidecar default).apiVersion: Istio's networking Sidecar resource (egress scoping) is not supported; the meshtrace Sidecar document has no apiVersion, or meshtrace.io/v1alpha1",
        ),
        (
            &[
                PRODUCTPAGE,
                "apiVersion: telemetry.istio.io/v1beta1\nkind: Telemetry\nmetadata: {name: t}\n",
            ],
            "document 2 (Telemetry t).apiVersion: unsupported apiVersion \"telemetry.istio.io/v1beta1\" for kind Telemetry: expected telemetry.istio.io/v1 or telemetry.istio.io/v1alpha1",
        ),
        (
            &[
                PRODUCTPAGE,
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n",
            ],
            "document 2 (VirtualService reviews).kind: unsupported kind \"VirtualService\": the sidecar reads Sidecar, IstioOperator, Telemetry, Deployment and EnvoyFilter documents, and kind-less meshConfig:, tracing: and static_resources: documents",
        ),
        (
            &[PRODUCTPAGE, "foo: bar\n"],
            "document 2: cannot tell what this document is: it has no kind; the sidecar reads Sidecar, IstioOperator, Telemetry, Deployment and EnvoyFilter documents, and kind-less meshConfig:, tracing: and static_resources: documents",
        ),
        (
            &[PRODUCTPAGE, "kind: Telemetry\nmetadata: {name: [x\n"],
            "sidecar.yaml:11:18: unclosed bracket '['",
        ),
        (
            &[
                PRODUCTPAGE,
                &telemetry("a", "default", "  tracing: []\n"),
                &telemetry("b", "default", "  tracing: []\n"),
            ],
            "document 3 (Telemetry b): a second Telemetry without a selector in namespace default (the first is document 2 (Telemetry a)); Istio allows only one",
        ),
    ];
    for (documents, expected) in cases {
        assert_eq!(error(documents), expected);
    }
}

#[test]
fn provider_errors() {
    let telemetry_b =
        telemetry("t", "default", "  tracing:\n  - providers: [{name: otel-tracing}]\n");
    assert_eq!(
        error(&[PRODUCTPAGE, TWO_PROVIDERS, &telemetry_b]),
        "document 3 (Telemetry t).spec.tracing[0].providers[0].name: unknown provider \"otel-tracing\"; defined: a, b"
    );
    let mesh = "\
meshConfig:
  extensionProviders:
  - {name: dd, datadog: {service: dd, port: 8126}}
  - {name: dd, zipkin: {service: z, port: 9411}}
  - {name: none}
  - {name: both, opentelemetry: {service: c, port: 4317}, zipkin: {service: z, port: 9411}}
  - {name: http, opentelemetry: {service: c, port: 4318, http: {path: v1/traces, headers: [{name: h}]}}}
";
    assert_eq!(
        error(&[PRODUCTPAGE, mesh]),
        "\
document 2 (meshConfig).meshConfig.extensionProviders[1].name: provider \"dd\" is defined more than once
document 2 (meshConfig).meshConfig.extensionProviders[2]: missing provider: expected one provider kind such as opentelemetry or zipkin
document 2 (meshConfig).meshConfig.extensionProviders[3]: expected exactly one provider kind, found opentelemetry, zipkin
document 2 (meshConfig).meshConfig.extensionProviders[4].opentelemetry.http.path: invalid path \"v1/traces\": must start with \"/\"
document 2 (meshConfig).meshConfig.extensionProviders[4].opentelemetry.http.headers[0]: expected exactly one of value, envName"
    );
    let datadog = "meshConfig:\n  defaultProviders: {tracing: [dd]}\n  extensionProviders:\n  - {name: dd, datadog: {service: dd, port: 8126}}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, datadog]),
        "document 2 (meshConfig).meshConfig.defaultProviders.tracing[0]: provider \"dd\" is a datadog provider; the sidecar exports to opentelemetry and zipkin providers only"
    );
    let authz = "meshConfig:\n  defaultProviders: {tracing: [authz]}\n  extensionProviders:\n  - {name: authz, envoyExtAuthzGrpc: {service: a, port: 9000}}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, authz]),
        "document 2 (meshConfig).meshConfig.defaultProviders.tracing[0]: provider \"authz\" is not a tracing provider (it is envoyExtAuthzGrpc)"
    );
    let legacy =
        "meshConfig:\n  defaultConfig:\n    tracing: {lightstep: {address: x}, sampling: 101}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, legacy]),
        "\
document 2 (meshConfig).meshConfig.defaultConfig.tracing.sampling: 101 is out of range: expected 0 to 100
document 2 (meshConfig).meshConfig.defaultConfig.tracing.lightstep: this tracer is not supported: the sidecar exports OTLP or Zipkin; define an extensionProviders[].opentelemetry provider instead"
    );
}

#[test]
fn envoy_block_errors() {
    let block = "\
tracing:
  custom_tags:
  - tag: a
  - tag: b
    metadata: {kind: {request: {}}, metadata_key: {key: k}}
  - tag: c
    literal: {value: ''}
  random_sampling: {value: 200}
  provider:
    name: envoy.tracers.opentelemetry
    typed_config: {}
";
    assert_eq!(
        error(&[PRODUCTPAGE, block]),
        "\
document 2 (Envoy tracing).tracing.random_sampling.value: 200 is out of range: expected 0 to 100
document 2 (Envoy tracing).tracing.provider.typed_config.@type: missing required key
document 2 (Envoy tracing).tracing.custom_tags[0]: missing tag value: expected one of literal, environment, request_header
document 2 (Envoy tracing).tracing.custom_tags[1].metadata: metadata tags are not supported: the sidecar has no Envoy metadata; use literal, environment or request_header
document 2 (Envoy tracing).tracing.custom_tags[2].literal.value: must not be empty"
    );
    let no_cluster = "tracing:\n  provider:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      '@type': type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      grpc_service: {envoy_grpc: {cluster_name: otel}}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, no_cluster]),
        "document 2 (Envoy tracing).tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name: cluster \"otel\" is not defined in static_resources.clusters (none are defined)"
    );
    let zipkin = "tracing:\n  provider:\n    name: envoy.tracers.zipkin\n    typed_config: {'@type': type.googleapis.com/envoy.config.trace.v3.ZipkinConfig}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, zipkin]),
        "document 2 (Envoy tracing).tracing.provider.name: unsupported tracer \"envoy.tracers.zipkin\": the sidecar supports envoy.tracers.opentelemetry"
    );
}

#[test]
fn annotation_and_deployment_errors() {
    let doc = "kind: Sidecar\nmetadata: {name: w, annotations: {config.linkerd.io/trace-collector: collector}}\n";
    assert_eq!(
        error(&[doc]),
        "document 1 (Sidecar w).metadata.annotations.config.linkerd.io/trace-collector: invalid address \"collector\": missing port"
    );
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, labelz: {}}\nspec:\n  template:\n    metadata: {labels: {a: b}}\n";
    assert_eq!(
        error(&[PRODUCTPAGE, deployment]),
        "document 2 (Deployment x).metadata.labelz: unknown key \"labelz\"; valid keys: name, namespace, labels, annotations, uid, resourceVersion, generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds, generateName, managedFields, ownerReferences, finalizers, selfLink"
    );
}

#[test]
fn bare_mesh_config_document_as_in_the_istio_configmap() {
    let mesh = "\
enableTracing: true
accessLogFile: /dev/stdout
defaultProviders: {tracing: [zipkin]}
extensionProviders:
- name: zipkin
  zipkin: {service: istio-system/zipkin.istio-system.svc.cluster.local, port: 9411, enable64bitTraceId: true}
";
    let config = settings(&[PRODUCTPAGE, mesh]);
    assert_eq!(
        config.tracing.outbound.exporter,
        Some(Exporter::Zipkin(ZipkinExporter {
            endpoint: Endpoint::new("zipkin.istio-system.svc.cluster.local", 9411),
            authority: "zipkin.istio-system.svc.cluster.local:9411".into(),
            path: "/api/v2/spans".into(),
            trace_id_64bit: true,
        }))
    );
    assert_eq!(parse_documents(mesh, "m.yaml").unwrap().labels(), ["document 1 (MeshConfig)"]);
}

#[test]
fn envoy_bootstrap_with_an_http_exporter() {
    let bootstrap = "\
static_resources:
  listeners:
  - name: egress
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: egress_http
          tracing:
            random_sampling: {value: 25}
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                '@type': type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                http_service:
                  http_uri: {uri: 'http://collector:4318/v1/traces', cluster: otlp_http, timeout: 2s}
                  request_headers_to_add: [{header: {key: x-token, value: abc}}]
                resource_detectors:
                - name: envoy.tracers.opentelemetry.resource_detectors.environment
                  typed_config: {'@type': type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig}
  clusters:
  - name: otlp_http
    load_assignment:
      cluster_name: otlp_http
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: collector, port_value: 4318}}}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}}
";
    let config = settings(&[PRODUCTPAGE, bootstrap]);
    let expected = OtlpExporter {
        protocol: OtlpProtocol::Http,
        endpoint: Endpoint::new("collector", 4318),
        authority: "collector:4318".into(),
        path: Some("/v1/traces".into()),
        timeout: Some(Duration::from_secs(2)),
        headers: vec![ExportHeader {
            name: "x-token".into(),
            value: HeaderValueSource::Literal("abc".into()),
        }],
        resource_detectors: vec![ResourceDetector::Environment],
    };
    assert_eq!(otlp(&config.tracing.inbound), &expected);
    assert_eq!(config.tracing.inbound.sampling, percent(25.0));
    assert_eq!(config.tracing.service_name, "productpage.default", "no service_name in the block");
}
