//! The sidecar's acceptance test: a small mesh, all in this process on 127.0.0.1:0.
//!
//! ```text
//! client ─▶ sidecar A ─▶ app A ─HTTP/1.1─▶ sidecar A (outbound) ─▶ sidecar B ─▶ app B
//!                              └─gRPC────▶ sidecar A (outbound) ─▶ sidecar C ─▶ app C
//! ```
//!
//! Three real services, each behind its own [`Sidecar`] with the tracing and Istio metrics
//! observers the binary wires, configured from Istio YAML (a Telemetry at 100 % and an
//! OpenTelemetry extension provider) that points at the collector's real `otlp` receiver. B is
//! a hyper HTTP/1.1 app, C a tonic gRPC server, A a hyper app that calls B with hyper and C with
//! a tonic client through its sidecar's outbound listener, naming the service in `Host` /
//! `:authority`. The client sends one plain request, with no trace headers.
//!
//! An Istio sidecar makes one span per request and direction, so the design gives five spans:
//! A's SERVER span, A's CLIENT spans to B and to C, and the SERVER spans of B and C. Checked
//! at the receiver: trace ids, kinds, parents, names, Envoy's tags, each workload's
//! `service.name`; and on the way the headers the sidecars exchange (`x-request-id`,
//! `x-envoy-decorator-operation`, Istio's peer metadata, which fills the client side's
//! `destination_*` labels).
//!
//! Apps that forward `traceparent` give one connected trace; apps that forward only
//! `x-request-id` still give one with stitching on (the CLIENT spans say
//! `meshtrace.stitched=true`), and disconnected traces with it off.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail the test loudly"
)]

#[path = "mesh/apps.rs"]
mod apps;
#[path = "../../src/metrics/tests/series.rs"]
mod series;
use crate::support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apps::{Forwarding, Seen, app_a, app_b, app_c};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use otlp::proto::trace::v1::span::SpanKind;
use otlp::proto::trace::v1::status::StatusCode as OtlpStatus;
use otlp::proto::trace::v1::{Span, SpanFlags};
use series::series;
use sidecar::admin::AdminState;
use sidecar::config::{SidecarConfig, load};
use sidecar::metrics::MeshMetrics;
use sidecar::observe::Observers;
use sidecar::proxy::{RunningSidecar, Sidecar};
use sidecar::trace::TracingRuntime;
use support::{Collector, attribute, hex, within};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const COLLECTOR_HOST: &str = "otel-collector.observability.svc.cluster.local";
const B_HOST: &str = "b.default.svc.cluster.local";
const C_HOST: &str = "c.default.svc.cluster.local";
const B_CLUSTER: &str = "outbound|9080||b.default.svc.cluster.local";
const C_CLUSTER: &str = "outbound|9090||c.default.svc.cluster.local";
/// C's unary method (any method of the service is answered the same way).
const ECHO_METHOD: &str = "/meshtrace.test.Echo/Call";

/// Headers the sidecars exchange that no app may see.
const PEER_METADATA: &str = "x-envoy-peer-metadata";
const PEER_METADATA_ID: &str = "x-envoy-peer-metadata-id";
const DECORATOR: &str = "x-envoy-decorator-operation";

// === the sidecars ===

/// The YAML of workload `app` (`<app>-v1` in `default`, labels `app`, `version: v1`): its
/// inbound listener in front of `app_address`, `services`, stitching, and Istio's
/// OpenTelemetry provider at 100 % pointing at the collector.
fn sidecar_config(
    app: &str,
    app_address: SocketAddr,
    services: &[(&str, SocketAddr)],
    collector: SocketAddr,
    stitching: bool,
) -> SidecarConfig {
    let mut table = format!("    \"{COLLECTOR_HOST}:4317\": \"{collector}\"\n");
    for (authority, target) in services {
        table.push_str(&format!("    \"{authority}\": \"{target}\"\n"));
    }
    let text = format!(
        "\
kind: Sidecar
metadata: {{name: {app}-v1, namespace: default, labels: {{app: {app}, version: v1}}}}
spec:
  inbound: {{listen: 127.0.0.1:0, app: {app_address}}}
  outbound: {{listen: 127.0.0.1:0}}
  admin: {{listen: 127.0.0.1:0}}
  services:
{table}  tracing: {{stitching: {stitching}}}
---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - name: otel-tracing
      opentelemetry: {{service: {COLLECTOR_HOST}, port: 4317}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: otel-tracing}}]
    randomSamplingPercentage: 100
"
    );
    load(&text, "sidecar.yaml").unwrap_or_else(|errors| panic!("{errors}\n{text}"))
}

/// A started sidecar with both observers, as `meshtrace sidecar` wires them.
struct MeshSidecar {
    running: RunningSidecar,
    tracing: TracingRuntime,
    metrics: Arc<MeshMetrics>,
}

impl MeshSidecar {
    async fn start(config: &SidecarConfig) -> MeshSidecar {
        let (trace_observer, mut tracing) = sidecar::trace::observer(config).unwrap();
        within("tracing start", tracing.start()).await.unwrap();
        let (metrics_observer, metrics) = sidecar::metrics::observer(config);
        let observer = Arc::new(Observers(vec![trace_observer, metrics_observer]));
        let running = Sidecar::start(config, observer, AdminState::new()).await.unwrap();
        MeshSidecar { running, tracing, metrics }
    }

    fn inbound(&self) -> SocketAddr {
        self.running.inbound_addr().unwrap()
    }

    /// The `istio_requests_total` series, as label maps.
    fn requests(&self) -> Vec<BTreeMap<String, String>> {
        series(&self.metrics.encode(), "istio_requests_total")
    }
}

// === the mesh ===

/// The collector, three apps and their sidecars.
struct Mesh {
    collector: Collector,
    a: MeshSidecar,
    b: MeshSidecar,
    c: MeshSidecar,
    /// The apps' own ports: the inbound clusters (`inbound|<port>||`) and SERVER span names.
    a_port: u16,
    b_port: u16,
    c_port: u16,
    seen_a: Arc<Seen>,
    seen_b: Arc<Seen>,
    seen_c: Arc<Seen>,
    apps: Vec<JoinHandle<()>>,
    stop_c: oneshot::Sender<()>,
}

impl Mesh {
    async fn start(forwarding: Forwarding, stitching: bool) -> Mesh {
        let collector = Collector::start().await;
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (listener_a, listener_b, listener_c) =
            (bind().await.unwrap(), bind().await.unwrap(), bind().await.unwrap());
        let address = |listener: &TcpListener| listener.local_addr().unwrap();
        let (app_a_address, app_b_address, app_c_address) =
            (address(&listener_a), address(&listener_b), address(&listener_c));
        let (seen_a, seen_b, seen_c) =
            (Arc::new(Seen::default()), Arc::new(Seen::default()), Arc::new(Seen::default()));
        let mut apps = vec![app_b(listener_b, seen_b.clone())];
        let stop_c = app_c(listener_c, seen_c.clone());

        let b =
            MeshSidecar::start(&sidecar_config("b", app_b_address, &[], collector.grpc, stitching))
                .await;
        let c =
            MeshSidecar::start(&sidecar_config("c", app_c_address, &[], collector.grpc, stitching))
                .await;
        let (b_service, c_service) = (format!("{B_HOST}:9080"), format!("{C_HOST}:9090"));
        let services = [(b_service.as_str(), b.inbound()), (c_service.as_str(), c.inbound())];
        let a = MeshSidecar::start(&sidecar_config(
            "a",
            app_a_address,
            &services,
            collector.grpc,
            stitching,
        ))
        .await;
        apps.push(app_a(listener_a, a.running.outbound_addr(), forwarding, seen_a.clone()));
        Mesh {
            collector,
            a,
            b,
            c,
            a_port: app_a_address.port(),
            b_port: app_b_address.port(),
            c_port: app_c_address.port(),
            seen_a,
            seen_b,
            seen_c,
            apps,
            stop_c,
        }
    }

    /// The client's request to A's inbound listener; returns the response head and body.
    async fn get(&self, extra: &[(&str, &str)]) -> (http::response::Parts, String) {
        let stream = TcpStream::connect(self.a.inbound()).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let mut request = Request::get("/a").header(header::HOST, "a.default.svc.cluster.local");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).unwrap();
        let response = within("the client's request", sender.send_request(request)).await.unwrap();
        let (head, body) = response.into_parts();
        let body = within("the response body", body.collect()).await.unwrap().to_bytes();
        (head, String::from_utf8_lossy(&body).into_owned())
    }

    /// Waits for `count` spans at the collector.
    async fn wait_for_spans(&self, count: usize) {
        self.collector.spans(count).await;
    }

    /// Drains the sidecars front to back, then flushes their spans, and stops the rest; returns
    /// every span received, with its resource's `service.name`.
    async fn shutdown(self) -> Finished {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut tracing = Vec::new();
        for sidecar in [self.a, self.b, self.c] {
            within("sidecar shutdown", sidecar.running.shutdown(deadline)).await;
            tracing.push(sidecar.tracing);
        }
        for runtime in &mut tracing {
            within("tracing shutdown", runtime.shutdown(deadline)).await;
        }
        let spans = self.collector.traces.spans_by_service();
        self.collector.stop().await;
        drop(self.stop_c);
        for app in self.apps {
            app.abort();
        }
        Finished { spans, a_metrics: tracing[0].metrics().clone() }
    }
}

/// What is left to check once the mesh is down.
struct Finished {
    /// Every span received, with its resource's `service.name`.
    spans: Vec<(String, Span)>,
    /// A's tracer counters (stitching).
    a_metrics: sidecar::trace::TraceMetrics,
}

// === reading the trace ===

/// The five spans of one client request, found by workload, kind and cluster.
struct MeshSpans<'a> {
    a_server: &'a Span,
    a_to_b: &'a Span,
    b_server: &'a Span,
    a_to_c: &'a Span,
    c_server: &'a Span,
}

impl<'a> MeshSpans<'a> {
    /// The spans whose `guid:x-request-id` is `request_id`.
    fn of(spans: &'a [(String, Span)], request_id: &str) -> MeshSpans<'a> {
        let mine: Vec<&(String, Span)> = spans
            .iter()
            .filter(|(_, span)| attribute(span, "guid:x-request-id") == Some(request_id))
            .collect();
        assert_eq!(mine.len(), 5, "one span per sidecar and direction: {mine:#?}");
        let one = |service: &str, kind: SpanKind, cluster: Option<&str>| -> &'a Span {
            let found: Vec<&'a Span> = mine
                .iter()
                .filter(|(name, span)| {
                    name == service
                        && span.kind == kind as i32
                        && cluster.is_none_or(|c| attribute(span, "upstream_cluster") == Some(c))
                })
                .map(|(_, span)| span)
                .collect();
            assert_eq!(found.len(), 1, "{service} {kind:?} {cluster:?}: {mine:#?}");
            found[0]
        };
        MeshSpans {
            a_server: one("a.default", SpanKind::Server, None),
            a_to_b: one("a.default", SpanKind::Client, Some(B_CLUSTER)),
            b_server: one("b.default", SpanKind::Server, None),
            a_to_c: one("a.default", SpanKind::Client, Some(C_CLUSTER)),
            c_server: one("c.default", SpanKind::Server, None),
        }
    }

    fn all(&self) -> [&'a Span; 5] {
        [self.a_server, self.a_to_b, self.b_server, self.a_to_c, self.c_server]
    }

    /// What holds whatever the app forwards: names, Envoy's tags, statuses, each callee's
    /// SERVER span the child of the caller's CLIENT span.
    fn check_common(&self, mesh: &Ports) {
        let names = [
            format!("a.default.svc.cluster.local:{}/*", mesh.a),
            format!("{B_HOST}:9080/*"),
            format!("{B_HOST}:9080/*"),
            format!("{C_HOST}:9090/*"),
            format!("{C_HOST}:9090/*"),
        ];
        let clusters = [
            format!("inbound|{}||", mesh.a),
            B_CLUSTER.to_owned(),
            format!("inbound|{}||", mesh.b),
            C_CLUSTER.to_owned(),
            format!("inbound|{}||", mesh.c),
        ];
        let grpc = [false, false, false, true, true];
        for (((span, name), cluster), grpc) in
            self.all().into_iter().zip(names).zip(clusters).zip(grpc)
        {
            assert_eq!(span.name, name);
            assert_eq!(attribute(span, "upstream_cluster"), Some(cluster.as_str()), "{name}");
            assert_eq!(attribute(span, "upstream_cluster.name"), Some(cluster.as_str()));
            assert_eq!(attribute(span, "http.status_code"), Some("200"), "{name}");
            assert_eq!(attribute(span, "component"), Some("proxy"));
            assert_eq!(attribute(span, "response_flags"), Some("-"), "{name}");
            assert_eq!(attribute(span, "error"), None, "{name}");
            assert_eq!(span.status.as_ref().unwrap().code, OtlpStatus::Unset as i32, "{name}");
            let protocol = if grpc { "HTTP/2" } else { "HTTP/1.1" };
            assert_eq!(attribute(span, "http.protocol"), Some(protocol), "{name}");
            let grpc_status = grpc.then_some("0");
            assert_eq!(attribute(span, "grpc.status_code"), grpc_status, "{name}");
            if grpc {
                assert_eq!(attribute(span, "grpc.path"), Some(ECHO_METHOD));
                assert_eq!(
                    attribute(span, "grpc.authority"),
                    Some("c.default.svc.cluster.local:9090")
                );
            }
            assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        }
        assert_eq!(attribute(self.a_server, "istio.canonical_service"), Some("a"));
        assert_eq!(attribute(self.b_server, "istio.canonical_revision"), Some("v1"));
        assert!(self.a_server.parent_span_id.is_empty(), "the client sent no context");
        assert_eq!(
            attribute(self.a_server, "http.url"),
            Some("http://a.default.svc.cluster.local/a")
        );
        assert_eq!(
            attribute(self.b_server, "http.url"),
            Some("http://b.default.svc.cluster.local:9080/b")
        );
        for (client, server) in [(self.a_to_b, self.b_server), (self.a_to_c, self.c_server)] {
            assert_eq!(server.trace_id, client.trace_id);
            assert_eq!(hex(&server.parent_span_id), hex(&client.span_id), "{}", server.name);
            assert_eq!(attribute(server, "meshtrace.stitched"), None);
            assert_remote_parent(server, true);
        }
        // Each CLIENT span's upstream is the next sidecar's inbound listener.
        assert_eq!(
            attribute(self.a_to_b, "upstream_address"),
            Some(mesh.b_inbound.to_string().as_str())
        );
        assert_eq!(
            attribute(self.a_to_c, "upstream_address"),
            Some(mesh.c_inbound.to_string().as_str())
        );
    }

    /// One trace; each CLIENT span the child of A's SERVER span.
    fn check_connected(&self) {
        for span in self.all() {
            assert_eq!(hex(&span.trace_id), hex(&self.a_server.trace_id), "{}", span.name);
        }
        for client in [self.a_to_b, self.a_to_c] {
            assert_eq!(hex(&client.parent_span_id), hex(&self.a_server.span_id), "{}", client.name);
        }
    }
}

/// Whether `span`'s parent came over the wire (OTLP span flags bits 8 and 9).
fn assert_remote_parent(span: &Span, remote: bool) {
    let known = span.flags & SpanFlags::ContextHasIsRemoteMask as u32 != 0;
    let is_remote = span.flags & SpanFlags::ContextIsRemoteMask as u32 != 0;
    assert!(known, "{}: flags {:#x}", span.name, span.flags);
    assert_eq!(is_remote, remote, "{}: flags {:#x}", span.name, span.flags);
}

/// The ports the names and clusters are made of.
struct Ports {
    a: u16,
    b: u16,
    c: u16,
    b_inbound: SocketAddr,
    c_inbound: SocketAddr,
}

impl Mesh {
    fn ports(&self) -> Ports {
        Ports {
            a: self.a_port,
            b: self.b_port,
            c: self.c_port,
            b_inbound: self.b.inbound(),
            c_inbound: self.c.inbound(),
        }
    }

    /// The `x-request-id` app A received with the client's request (its only one so far).
    fn request_id(&self) -> String {
        let requests = self.seen_a.requests();
        assert_eq!(requests.len(), 1);
        requests[0]["x-request-id"].to_str().unwrap().to_owned()
    }

    /// No app saw what the sidecars exchange among themselves; returns nothing, panics on a
    /// leak.
    fn assert_nothing_leaked_to_apps(&self) {
        for seen in [&self.seen_a, &self.seen_b, &self.seen_c] {
            for head in seen.requests().iter().chain(&seen.responses()) {
                for name in [PEER_METADATA, PEER_METADATA_ID, DECORATOR] {
                    assert!(!head.contains_key(name), "{name} reached an app: {head:?}");
                }
            }
        }
        // B's and C's apps got the context their sidecars made.
        for seen in [&self.seen_b, &self.seen_c] {
            assert!(seen.requests()[0].contains_key("traceparent"));
        }
    }

    /// Istio's metadata exchange worked both ways: each side's labels name the other workload.
    fn assert_metrics_name_both_sides(&self) {
        let a_requests = self.a.requests();
        let to = |workload: &str| {
            a_requests
                .iter()
                .find(|s| s["reporter"] == "source" && s["destination_workload"] == workload)
                .unwrap_or_else(|| panic!("no series to {workload}: {a_requests:#?}"))
                .clone()
        };
        let to_b = to("b-v1");
        assert_eq!(
            (to_b["destination_app"].as_str(), to_b["destination_version"].as_str()),
            ("b", "v1")
        );
        assert_eq!(to_b["destination_service"], B_HOST);
        assert_eq!(to_b["request_protocol"], "http");
        let to_c = to("c-v1");
        assert_eq!(
            (to_c["destination_app"].as_str(), to_c["destination_version"].as_str()),
            ("c", "v1")
        );
        assert_eq!(
            (to_c["request_protocol"].as_str(), to_c["grpc_response_status"].as_str()),
            ("grpc", "0")
        );
        let from_client = a_requests.iter().find(|s| s["reporter"] == "destination").unwrap();
        assert_eq!(from_client["source_workload"], "unknown", "the client is not in the mesh");
        for (sidecar, workload) in [(&self.b, "b-v1"), (&self.c, "c-v1")] {
            let requests = sidecar.requests();
            assert_eq!(requests.len(), 1, "{requests:#?}");
            assert_eq!(requests[0]["reporter"], "destination");
            assert_eq!(requests[0]["source_workload"], "a-v1");
            assert_eq!(requests[0]["source_app"], "a");
            assert_eq!(requests[0]["destination_workload"], workload);
            // Sizes are wire bytes, heads included, as istio-proxy meters them: A's calls
            // carry trace context and A's peer metadata (hundreds of bytes) before any body,
            // and B's and C's answers carry theirs.
            let text = sidecar.metrics.encode();
            for family in ["istio_request_bytes", "istio_response_bytes"] {
                let sum = sample(&text, &format!("{family}_sum"));
                assert!(sum > 400.0, "{workload} {family}: {sum}");
            }
        }
    }
}

/// The value of the one sample of `name` in `text`.
fn sample(text: &str, name: &str) -> f64 {
    let line = text.lines().find(|line| line.starts_with(&format!("{name}{{"))).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The client's plain request went through; A's inbound told it the operation and kept the
/// mesh's headers to itself.
fn assert_client_answer(head: &http::response::Parts, body: &str, a_port: u16) {
    assert_eq!(head.status, StatusCode::OK, "{body}");
    assert_eq!(body, "b=200 c=Ok");
    assert_eq!(head.headers[DECORATOR], format!("a.default.svc.cluster.local:{a_port}/*"));
    assert!(!head.headers.contains_key(PEER_METADATA), "the client sent no metadata");
    assert!(!head.headers.contains_key(PEER_METADATA_ID));
    assert!(!head.headers.contains_key("x-request-id"), "returned only on x-envoy-force-trace");
}

// === the tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_forwarding_trace_context_give_one_connected_trace() {
    let mesh = Mesh::start(Forwarding::TraceContext, true).await;
    let (head, body) = mesh.get(&[]).await;
    assert_client_answer(&head, &body, mesh.a_port);
    let request_id = mesh.request_id();
    mesh.wait_for_spans(5).await;
    mesh.assert_nothing_leaked_to_apps();
    mesh.assert_metrics_name_both_sides();

    // A forced trace returns its request id to the caller, with the reason packed in it.
    let (forced, _) = mesh.get(&[("x-envoy-force-trace", "true")]).await;
    let forced_id = forced.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(forced_id.as_bytes()[14], b'a', "ServiceForced: {forced_id}");
    assert_eq!(mesh.seen_a.requests()[1]["x-request-id"], forced_id.as_str());
    mesh.wait_for_spans(10).await;

    let ports = mesh.ports();
    let finished = mesh.shutdown().await;
    assert_eq!(finished.spans.len(), 10, "nothing more after the flush: {:#?}", finished.spans);
    for id in [&request_id, &forced_id] {
        let trace = MeshSpans::of(&finished.spans, id);
        trace.check_common(&ports);
        trace.check_connected();
        for client in [trace.a_to_b, trace.a_to_c] {
            assert_eq!(attribute(client, "meshtrace.stitched"), None);
            assert_remote_parent(client, true);
        }
    }
    let b = "b.default.svc.cluster.local";
    let metrics = &finished.a_metrics;
    assert_eq!((metrics.stitched_requests(b), metrics.unstitchable_requests(b)), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_forwarding_only_the_request_id_are_stitched_into_one_trace() {
    let mesh = Mesh::start(Forwarding::RequestIdOnly, true).await;
    let (head, body) = mesh.get(&[]).await;
    assert_client_answer(&head, &body, mesh.a_port);
    let request_id = mesh.request_id();
    mesh.wait_for_spans(5).await;
    mesh.assert_nothing_leaked_to_apps();

    let ports = mesh.ports();
    let finished = mesh.shutdown().await;
    assert_eq!(finished.spans.len(), 5);
    let trace = MeshSpans::of(&finished.spans, &request_id);
    trace.check_common(&ports);
    trace.check_connected();
    for client in [trace.a_to_b, trace.a_to_c] {
        assert_eq!(attribute(client, "meshtrace.stitched"), Some("true"), "{}", client.name);
        assert_remote_parent(client, false);
    }
    let metrics = &finished.a_metrics;
    for service in [B_HOST, C_HOST] {
        assert_eq!(metrics.stitched_requests(service), 1, "{service}");
        assert_eq!(metrics.unstitchable_requests(service), 0, "{service}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stitching_apps_forwarding_only_the_request_id_break_the_trace() {
    let mesh = Mesh::start(Forwarding::RequestIdOnly, false).await;
    let (head, body) = mesh.get(&[]).await;
    assert_client_answer(&head, &body, mesh.a_port);
    let request_id = mesh.request_id();
    mesh.wait_for_spans(5).await;

    let ports = mesh.ports();
    let finished = mesh.shutdown().await;
    assert_eq!(finished.spans.len(), 5);
    let trace = MeshSpans::of(&finished.spans, &request_id);
    trace.check_common(&ports);
    let a_trace = hex(&trace.a_server.trace_id);
    // Each call starts its own trace: B's and C's spans are cut off from A's SERVER span.
    for client in [trace.a_to_b, trace.a_to_c] {
        assert!(client.parent_span_id.is_empty(), "{}: a new root", client.name);
        assert_ne!(hex(&client.trace_id), a_trace, "{}", client.name);
        assert_eq!(attribute(client, "meshtrace.stitched"), None);
    }
    assert_ne!(trace.b_server.trace_id, trace.c_server.trace_id);
    // With stitching off the tracer keeps no map of inbound requests, so it counts neither way.
    let metrics = &finished.a_metrics;
    for service in [B_HOST, C_HOST] {
        assert_eq!(metrics.stitched_requests(service), 0, "{service}");
        assert_eq!(metrics.unstitchable_requests(service), 0, "{service}");
    }
}
