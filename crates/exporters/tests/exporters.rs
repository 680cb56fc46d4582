//! The exporters against real servers on loopback sockets: a tonic OTLP/gRPC server, a hyper
//! OTLP/HTTP server, with TLS where it matters, plus the config errors users see.

// In a test, an unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use config::ConfigErrors;
use exporters::{
    DebugExporterFactory, LoggingExporterFactory, OtlpExporterFactory, OtlpHttpExporterFactory,
};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use otlp::{Batch, ExportLogsServiceRequest, ExportTraceServiceRequest, Signal};
use pipeline::health::HealthReporter;
use pipeline::telemetry::Telemetry;
use pipeline::{BuildContext, Built, ComponentId, Configured, ConsumeError, Factory, Kind};
use prost::Message;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use transport::status::{RpcStatus, code};

// === shared helpers ===

/// Retries fast enough for tests, bounded so a broken test ends.
const FAST_RETRY: &str = "
retry_on_failure:
  initial_interval: 50ms
  max_interval: 200ms
  max_elapsed_time: 20s
";

fn configure(factory: &dyn Factory, yaml: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
    let path = format!("exporters.{}", factory.type_name());
    let value = config::parse_yaml(yaml, "test.yaml").unwrap();
    factory.configure(&value, &path)
}

fn config_error(factory: &dyn Factory, yaml: &str) -> String {
    match configure(factory, yaml) {
        Ok(_) => panic!("expected a config error for:\n{yaml}"),
        Err(errors) => errors.to_string(),
    }
}

fn context(telemetry: &Arc<Telemetry>, id: &str, signal: Signal) -> BuildContext {
    BuildContext {
        id: ComponentId::parse(id).unwrap(),
        kind: Kind::Exporter,
        signal: Some(signal),
        next: None,
        outputs: Vec::new(),
        telemetry: telemetry.clone(),
        health: HealthReporter::new(),
    }
}

/// A configured, built and started exporter.
struct Running {
    built: Built,
    telemetry: Arc<Telemetry>,
}

impl Running {
    async fn start(factory: &dyn Factory, yaml: &str, signal: Signal) -> Running {
        let configured = configure(factory, yaml).unwrap();
        let telemetry = Arc::new(Telemetry::new());
        let id = format!("{}/test", factory.type_name());
        let mut built = configured.build(context(&telemetry, &id, signal)).unwrap();
        built.lifecycle.start().await.unwrap();
        Running { built, telemetry }
    }

    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.built.consumer.as_ref().unwrap().consume(batch).await
    }

    /// The value of the first sample of `name` in the Prometheus text.
    fn metric(&self, name: &str) -> u64 {
        let text = self.telemetry.encode();
        let line = text.lines().find(|line| line.starts_with(name)).unwrap_or("");
        line.rsplit(' ').next().and_then(|value| value.parse().ok()).unwrap_or(0)
    }

    async fn stop(mut self) {
        self.built.lifecycle.shutdown(Instant::now() + Duration::from_secs(2)).await;
    }
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn traces_request() -> ExportTraceServiceRequest {
    otlp::fixtures::sidecar_traces(10, 2)
}

/// The fixture as a receiver hands it on: wire bytes, never decoded.
fn traces_batch() -> Batch {
    Batch::from_wire(Signal::Traces, traces_request().encode_to_vec().into()).unwrap()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A CA and a `localhost` certificate it signed, as PEM: (ca, cert, key).
fn certificates() -> (String, String, String) {
    let certificates = transport::test_support::localhost_certificates().unwrap();
    (certificates.ca, certificates.cert, certificates.key)
}

/// Writes `pem` to a fresh file and returns its path.
fn pem_file(name: &str, pem: &str) -> String {
    transport::test_support::pem_file("meshtrace-exporters", name, pem).unwrap()
}

// === an OTLP/gRPC server ===

/// Records what arrives; answers with `script`'s statuses first, then OK.
#[derive(Default)]
struct GrpcDestination {
    traces: Mutex<Vec<(MetadataMap, ExportTraceServiceRequest)>>,
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    script: Mutex<VecDeque<tonic::Status>>,
    attempts: Mutex<Vec<Instant>>,
    rejected_spans: Mutex<Option<i64>>,
}

impl GrpcDestination {
    fn with_script(statuses: Vec<tonic::Status>) -> Arc<GrpcDestination> {
        let destination = GrpcDestination::default();
        *destination.script.lock().unwrap() = statuses.into();
        Arc::new(destination)
    }

    fn scripted_failure(&self) -> Option<tonic::Status> {
        self.attempts.lock().unwrap().push(Instant::now());
        self.script.lock().unwrap().pop_front()
    }

    fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }

    fn first_trace(&self) -> (MetadataMap, ExportTraceServiceRequest) {
        self.traces.lock().unwrap()[0].clone()
    }

    fn spans(&self) -> usize {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .map(|(_, request)| otlp::batch::count_spans(request) as usize)
            .sum()
    }
}

/// The services' handle on a destination the test keeps too.
struct Service(Arc<GrpcDestination>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Some(status) = self.0.scripted_failure() {
            return Err(status);
        }
        let (metadata, _, message) = request.into_parts();
        self.0.traces.lock().unwrap().push((metadata, message));
        let partial_success = self.0.rejected_spans.lock().unwrap().map(|rejected| {
            ExportTracePartialSuccess { rejected_spans: rejected, error_message: "bad ids".into() }
        });
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success }))
    }
}

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        if let Some(status) = self.0.scripted_failure() {
            return Err(status);
        }
        self.0.logs.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Serves `destination` on `listener`, optionally with TLS (cert, key).
fn serve_grpc(
    destination: &Arc<GrpcDestination>,
    listener: TcpListener,
    tls: Option<(String, String)>,
) {
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap();
    }
    let router = builder
        .add_service(
            TraceServiceServer::new(Service(destination.clone()))
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            LogsServiceServer::new(Service(destination.clone()))
                .accept_compressed(CompressionEncoding::Gzip),
        );
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(router.serve_with_incoming(incoming));
}

async fn grpc_server(destination: &Arc<GrpcDestination>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    serve_grpc(destination, listener, None);
    address
}

fn otlp_yaml(address: SocketAddr, extra: &str) -> String {
    format!("endpoint: http://{address}\n{FAST_RETRY}{extra}")
}

/// Both ways a call is made: gzip through tonic's client, uncompressed with the batch's own
/// bytes. YAML lines for [`otlp_yaml`]'s `extra`.
const COMPRESSIONS: [&str; 2] = ["compression: gzip\n", "compression: none\n"];

/// Serves `destination`, starts an `otlp` traces exporter to it with `extra` YAML and hands it
/// the fixture's ten spans.
async fn export_traces(destination: &Arc<GrpcDestination>, extra: &str) -> Running {
    let address = grpc_server(destination).await;
    let exporter =
        Running::start(&OtlpExporterFactory, &otlp_yaml(address, extra), Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    exporter
}

// === otlp (gRPC) ===

#[tokio::test]
async fn otlp_forwards_the_exact_spans_with_and_without_gzip() {
    for compression in ["gzip", "none"] {
        let destination = Arc::new(GrpcDestination::default());
        let exporter = export_traces(&destination, &format!("compression: {compression}\n")).await;
        eventually("the spans", || destination.spans() == 10).await;
        let (metadata, request) = destination.first_trace();
        assert_eq!(request, traces_request(), "{compression}: the spans arrive unchanged");
        let encoding =
            metadata.get("grpc-encoding").map(|value| value.to_str().unwrap().to_string());
        let expected = (compression == "gzip").then(|| "gzip".to_string());
        assert_eq!(encoding, expected, "{compression}");
        assert_eq!(exporter.metric("otelcol_exporter_sent_spans_total"), 10);
        exporter.stop().await;
    }
}

#[tokio::test]
async fn otlp_sends_decoded_batches_and_logs_too() {
    for compression in COMPRESSIONS {
        let destination = Arc::new(GrpcDestination::default());
        let address = grpc_server(&destination).await;
        let yaml = otlp_yaml(address, compression);
        let exporter = Running::start(&OtlpExporterFactory, &yaml, Signal::Traces).await;
        // A batch a processor decoded is encoded on the way out.
        exporter.consume(Batch::from_traces(traces_request())).await.unwrap();
        eventually("the spans", || destination.spans() == 10).await;
        assert_eq!(destination.first_trace().1, traces_request(), "{compression}");
        exporter.stop().await;

        let logs = Running::start(&OtlpExporterFactory, &yaml, Signal::Logs).await;
        let request = otlp::fixtures::sidecar_logs(6, 2);
        let batch = Batch::from_wire(Signal::Logs, request.encode_to_vec().into()).unwrap();
        logs.consume(batch).await.unwrap();
        eventually("the logs", || !destination.logs.lock().unwrap().is_empty()).await;
        assert_eq!(destination.logs.lock().unwrap()[0], request, "{compression}");
        logs.stop().await;
    }
}

#[tokio::test]
async fn otlp_headers_arrive_as_metadata() {
    for compression in COMPRESSIONS {
        let destination = Arc::new(GrpcDestination::default());
        let extra = format!(
            "{compression}headers:\n  authorization: Bearer t0ken\n  X-Tenant: acme\n  trace-bin: raw\n"
        );
        let exporter = export_traces(&destination, &extra).await;
        eventually("the spans", || destination.spans() == 10).await;
        let (metadata, _) = destination.first_trace();
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer t0ken", "{compression}");
        assert_eq!(metadata.get("x-tenant").unwrap(), "acme");
        assert_eq!(metadata.get_bin("trace-bin").unwrap().to_bytes().unwrap(), "raw");
        let agent = metadata.get("user-agent").unwrap().to_str().unwrap();
        assert!(agent.starts_with("meshtrace/"), "{compression}: {agent}");
        // The default 5 s timeout, told to the destination.
        let timeout = metadata.get("grpc-timeout").unwrap().to_str().unwrap();
        assert_eq!(timeout, "5000000u", "{compression}");
        exporter.stop().await;
    }
}

#[tokio::test]
async fn otlp_retries_unavailable_until_delivered() {
    for compression in COMPRESSIONS {
        let destination =
            GrpcDestination::with_script(vec![tonic::Status::unavailable("restarting")]);
        let exporter = export_traces(&destination, compression).await;
        eventually("the spans", || destination.spans() == 10).await;
        assert_eq!(destination.attempts().len(), 2, "{compression}");
        assert_eq!(exporter.metric("otelcol_exporter_send_failed_spans_total"), 0);
        exporter.stop().await;
    }
}

#[tokio::test]
async fn otlp_waits_at_least_the_retry_info_delay() {
    let hint = Duration::from_millis(300);
    let details = RpcStatus::new(code::RESOURCE_EXHAUSTED, "slow down", Some(hint));
    let throttled = tonic::Status::with_details(
        tonic::Code::ResourceExhausted,
        "slow down",
        details.encode_to_vec().into(),
    );
    for compression in COMPRESSIONS {
        let destination = GrpcDestination::with_script(vec![throttled.clone()]);
        let address = grpc_server(&destination).await;
        let extra = "retry_on_failure:\n  initial_interval: 5ms\n  max_interval: 10ms\n";
        let yaml = format!("endpoint: http://{address}\n{extra}{compression}");
        let exporter = Running::start(&OtlpExporterFactory, &yaml, Signal::Traces).await;
        exporter.consume(traces_batch()).await.unwrap();
        eventually("the spans", || destination.spans() == 10).await;
        let attempts = destination.attempts();
        assert_eq!(attempts.len(), 2, "{compression}");
        let waited = attempts[1] - attempts[0];
        assert!(waited >= hint, "{compression}: retried after {waited:?}, before {hint:?}");
        exporter.stop().await;
    }
}

#[tokio::test]
async fn otlp_does_not_retry_invalid_argument_and_counts_the_loss() {
    for compression in COMPRESSIONS {
        let destination =
            GrpcDestination::with_script(vec![tonic::Status::invalid_argument("bad span id")]);
        let exporter = export_traces(&destination, compression).await;
        eventually("the failure count", || {
            exporter.metric("otelcol_exporter_send_failed_spans_total") == 10
        })
        .await;
        // Long enough for several retries, had there been any.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(destination.attempts().len(), 1, "{compression}");
        assert_eq!(destination.spans(), 0);
        assert_eq!(exporter.metric("otelcol_exporter_sent_spans_total"), 0);
        exporter.stop().await;
    }
}

#[tokio::test]
async fn otlp_counts_rejected_spans_of_a_partial_success() {
    for compression in COMPRESSIONS {
        let destination = Arc::new(GrpcDestination::default());
        *destination.rejected_spans.lock().unwrap() = Some(3);
        let exporter = export_traces(&destination, compression).await;
        eventually("the rejected count", || {
            exporter.metric("otelcol_exporter_send_failed_spans_total") == 3
        })
        .await;
        assert_eq!(destination.attempts().len(), 1, "{compression}: a partial success is final");
        exporter.stop().await;
    }
}

#[tokio::test]
async fn otlp_delivers_once_a_down_destination_comes_up() {
    for compression in COMPRESSIONS {
        let port = free_port();
        let yaml = format!(
            "endpoint: 127.0.0.1:{port}\ntls:\n  insecure: true\n{FAST_RETRY}{compression}"
        );
        // Start-up must not need the destination.
        let exporter = Running::start(&OtlpExporterFactory, &yaml, Signal::Traces).await;
        exporter.consume(traces_batch()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let destination = Arc::new(GrpcDestination::default());
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        serve_grpc(&destination, listener, None);
        eventually("the spans", || destination.spans() == 10).await;
        assert_eq!(exporter.metric("otelcol_exporter_send_failed_spans_total"), 0);
        exporter.stop().await;
    }
}

#[tokio::test]
async fn otlp_speaks_tls_with_the_configured_ca_and_server_name() {
    let (ca, cert, key) = certificates();
    let destination = Arc::new(GrpcDestination::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    serve_grpc(&destination, listener, Some((cert, key)));
    let ca_file = pem_file("grpc-ca.pem", &ca);
    for (sent, compression) in COMPRESSIONS.into_iter().enumerate() {
        // No scheme and no `insecure`: TLS, checked against `localhost` rather than the IP.
        let yaml = format!(
            "endpoint: {address}\ntls:\n  ca_file: {ca_file}\n  server_name_override: localhost\n{FAST_RETRY}{compression}"
        );
        let exporter = Running::start(&OtlpExporterFactory, &yaml, Signal::Traces).await;
        exporter.consume(traces_batch()).await.unwrap();
        eventually("the spans", || destination.spans() == 10 * (sent + 1)).await;
        exporter.stop().await;
    }
}

// === an OTLP/HTTP server ===

#[derive(Debug, Clone)]
struct HttpRequest {
    method: http::Method,
    path: String,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
}

/// Records every request; answers with `script`'s responses first, then 200.
#[derive(Default)]
struct HttpDestination {
    requests: Mutex<Vec<(Instant, HttpRequest)>>,
    script: Mutex<VecDeque<http::Response<Full<Bytes>>>>,
}

impl HttpDestination {
    fn with_script(responses: Vec<http::Response<Full<Bytes>>>) -> Arc<HttpDestination> {
        let destination = HttpDestination::default();
        *destination.script.lock().unwrap() = responses.into();
        Arc::new(destination)
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().iter().map(|(_, request)| request.clone()).collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.requests.lock().unwrap().iter().map(|(time, _)| *time).collect()
    }

    async fn handle(
        self: Arc<Self>,
        request: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, Infallible> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|body| body.to_bytes()).unwrap_or_default();
        let recorded = HttpRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            version: parts.version,
            headers: parts.headers,
            body,
        };
        self.requests.lock().unwrap().push((Instant::now(), recorded));
        let scripted = self.script.lock().unwrap().pop_front();
        Ok(scripted.unwrap_or_else(|| http::Response::new(Full::new(Bytes::new()))))
    }
}

/// Serves `destination` on a fresh port, over TLS when given an acceptor.
async fn http_server(
    destination: &Arc<HttpDestination>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let destination = destination.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let destination = destination.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| destination.clone().handle(request));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else { return };
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    address
}

fn response(
    status: StatusCode,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::copy_from_slice(body)));
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|value| value.to_str().unwrap())
}

// === otlphttp ===

#[tokio::test]
async fn otlphttp_proto_and_json_carry_the_same_spans() {
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, None).await;
    for encoding in ["proto", "json"] {
        let yaml = format!(
            "endpoint: http://{address}\nencoding: {encoding}\ncompression: none\nheaders:\n  x-api-key: k3y\n{FAST_RETRY}"
        );
        let exporter = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
        exporter.consume(traces_batch()).await.unwrap();
        exporter.stop().await;
    }
    let requests = destination.requests();
    assert_eq!(requests.len(), 2);
    let (proto, json) = (&requests[0], &requests[1]);
    for request in [proto, json] {
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(header(request, "x-api-key"), Some("k3y"));
        assert_eq!(header(request, "content-encoding"), None);
        assert!(header(request, "user-agent").unwrap().starts_with("meshtrace/"));
    }
    assert_eq!(header(proto, "content-type"), Some("application/x-protobuf"));
    assert_eq!(header(json, "content-type"), Some("application/json"));
    let from_proto = ExportTraceServiceRequest::decode(proto.body.clone()).unwrap();
    let from_json = otlp::json::decode(Signal::Traces, &json.body).unwrap().into_traces().unwrap();
    assert_eq!(from_proto, traces_request());
    assert_eq!(from_json, traces_request());
}

#[tokio::test]
async fn otlphttp_gzips_by_default() {
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, None).await;
    let yaml = format!("endpoint: http://{address}\n{FAST_RETRY}");
    let exporter = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    eventually("the request", || !destination.requests().is_empty()).await;
    let request = &destination.requests()[0];
    assert_eq!(header(request, "content-encoding"), Some("gzip"));
    let body = transport::gzip::decompress(&request.body, 16 << 20).unwrap();
    assert_eq!(body, traces_request().encode_to_vec());
    exporter.stop().await;
}

#[tokio::test]
async fn otlphttp_builds_signal_urls_from_endpoint_unless_overridden() {
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, None).await;
    let yaml = format!(
        "endpoint: http://{address}/otlp/\ntraces_endpoint: http://{address}/custom/spans\n{FAST_RETRY}"
    );
    let traces = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
    traces.consume(traces_batch()).await.unwrap();
    traces.stop().await;
    let logs = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Logs).await;
    let request = otlp::fixtures::sidecar_logs(3, 1);
    logs.consume(Batch::from_logs(request)).await.unwrap();
    logs.stop().await;
    let paths: Vec<String> = destination.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/custom/spans", "/otlp/v1/logs"]);
}

#[tokio::test]
async fn otlphttp_honours_retry_after_then_delivers() {
    let unavailable = response(StatusCode::SERVICE_UNAVAILABLE, &[("retry-after", "1")], b"");
    let destination = HttpDestination::with_script(vec![unavailable]);
    let address = http_server(&destination, None).await;
    let yaml = format!("endpoint: http://{address}\n{FAST_RETRY}");
    let exporter = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    eventually("the sent count", || exporter.metric("otelcol_exporter_sent_spans_total") == 10)
        .await;
    let times = destination.times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retried after {:?}",
        times[1] - times[0]
    );
    exporter.stop().await;
}

#[tokio::test]
async fn otlphttp_does_not_retry_bad_request() {
    let status = RpcStatus::new(code::INVALID_ARGUMENT, "trace id too short", None);
    let bad = response(
        StatusCode::BAD_REQUEST,
        &[("content-type", "application/x-protobuf")],
        &status.encode_to_vec(),
    );
    let destination = HttpDestination::with_script(vec![bad]);
    let address = http_server(&destination, None).await;
    // Without a queue the caller learns the outcome.
    let yaml =
        format!("endpoint: http://{address}\nsending_queue:\n  enabled: false\n{FAST_RETRY}");
    let exporter = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
    let refusal = exporter.consume(traces_batch()).await.unwrap_err();
    assert!(matches!(refusal, ConsumeError::Permanent { rejected: 10, .. }), "{refusal:?}");
    assert_eq!(destination.requests().len(), 1);
    assert_eq!(exporter.metric("otelcol_exporter_send_failed_spans_total"), 10);
    exporter.stop().await;
}

#[tokio::test]
async fn otlphttp_counts_a_json_partial_success() {
    let body = br#"{"partialSuccess":{"rejectedSpans":"4","errorMessage":"too old"}}"#;
    let partial = response(StatusCode::OK, &[("content-type", "application/json")], body);
    let destination = HttpDestination::with_script(vec![partial]);
    let address = http_server(&destination, None).await;
    let yaml = format!("endpoint: http://{address}\nencoding: json\n{FAST_RETRY}");
    let exporter = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    eventually("the rejected count", || {
        exporter.metric("otelcol_exporter_send_failed_spans_total") == 4
    })
    .await;
    assert_eq!(destination.requests().len(), 1);
    exporter.stop().await;
}

#[tokio::test]
async fn otlphttp_retries_while_the_destination_is_down() {
    let port = free_port();
    let yaml = format!("endpoint: http://127.0.0.1:{port}\n{FAST_RETRY}");
    let exporter = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let destination = Arc::new(HttpDestination::default());
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let service_destination = destination.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let destination = service_destination.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| destination.clone().handle(request));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    eventually("the sent count", || exporter.metric("otelcol_exporter_sent_spans_total") == 10)
        .await;
    assert_eq!(destination.requests().len(), 1);
    exporter.stop().await;
}

#[tokio::test]
async fn otlphttp_speaks_tls_and_http2_by_alpn() {
    let (ca, cert, key) = certificates();
    let server = transport::tls::ServerTlsConfig {
        cert_pem: Some(cert),
        key_pem: Some(key),
        ..Default::default()
    }
    .build(&[b"h2", b"http/1.1"])
    .unwrap();
    let destination = Arc::new(HttpDestination::default());
    let address = http_server(&destination, Some(tokio_rustls::TlsAcceptor::from(server))).await;
    let ca_file = pem_file("http-ca.pem", &ca);
    let yaml = format!(
        "endpoint: https://localhost:{}\ntls:\n  ca_file: {ca_file}\n{FAST_RETRY}",
        address.port()
    );
    let exporter = Running::start(&OtlpHttpExporterFactory, &yaml, Signal::Traces).await;
    exporter.consume(traces_batch()).await.unwrap();
    eventually("the request", || !destination.requests().is_empty()).await;
    assert_eq!(destination.requests()[0].version, http::Version::HTTP_2);
    exporter.stop().await;
}

// === debug ===

#[tokio::test]
async fn debug_prints_every_signal_and_counts_it_sent() {
    for yaml in ["", "verbosity: detailed", "use_internal_logger: false"] {
        let exporter = Running::start(&DebugExporterFactory, yaml, Signal::Traces).await;
        exporter.consume(traces_batch()).await.unwrap();
        assert_eq!(exporter.metric("otelcol_exporter_sent_spans_total"), 10, "{yaml}");
        exporter.stop().await;
    }
    let logs = Running::start(&LoggingExporterFactory, "loglevel: debug", Signal::Logs).await;
    logs.consume(Batch::from_logs(otlp::fixtures::sidecar_logs(3, 1))).await.unwrap();
    logs.stop().await;
    let metrics =
        Running::start(&DebugExporterFactory, "verbosity: detailed", Signal::Metrics).await;
    metrics.consume(Batch::from_metrics(otlp::fixtures::sidecar_metrics(20, 2))).await.unwrap();
    metrics.stop().await;
}

#[test]
fn debug_formats_a_fixture_span() {
    use exporters::debug::format;
    let request = otlp::fixtures::sidecar_traces(1, 1);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    let trace_id = format::hex(&span.trace_id);
    assert_eq!(trace_id.len(), 32);
    let normal = format::traces_normal(&request);
    let line = normal.lines().nth(2).unwrap();
    assert!(
        line.starts_with(&format!("{} {trace_id} {}", span.name, format::hex(&span.span_id))),
        "{line}"
    );
    let detailed = format::traces_detailed(&request);
    assert!(detailed.contains(&format!("    Trace ID       : {trace_id}\n")), "{detailed}");
    assert!(detailed.contains(&format!("    Name           : {}\n", span.name)));
    let first = &span.attributes[0];
    let shown = format::typed(first.value.as_ref().unwrap());
    assert!(detailed.contains(&format!("     -> {}: {shown}\n", first.key)));
}

// === config errors ===

#[test]
fn unknown_keys_are_errors() {
    let errors =
        config_error(&OtlpExporterFactory, "endpoint: collector:4317\nbalancer_name: round_robin");
    assert_eq!(
        errors,
        "exporters.otlp.balancer_name: unknown key \"balancer_name\"; valid keys: endpoint, tls, headers, compression, timeout, retry_on_failure, sending_queue"
    );
    let errors = config_error(&DebugExporterFactory, "verbosity: basic\nloglevel: debug");
    assert!(errors.starts_with("exporters.debug.loglevel: unknown key \"loglevel\""), "{errors}");
}

#[test]
fn unsupported_compression_is_an_error() {
    let errors = config_error(&OtlpExporterFactory, "endpoint: collector:4317\ncompression: zstd");
    assert_eq!(
        errors,
        "exporters.otlp.compression: unsupported compression \"zstd\": expected \"gzip\" or \"none\""
    );
    let errors = config_error(
        &OtlpHttpExporterFactory,
        "endpoint: http://collector:4318\ncompression: snappy",
    );
    assert_eq!(
        errors,
        "exporters.otlphttp.compression: unsupported compression \"snappy\": expected \"gzip\" or \"none\""
    );
}

#[test]
fn bad_and_missing_endpoints_are_errors() {
    assert_eq!(
        config_error(&OtlpExporterFactory, "compression: gzip"),
        "exporters.otlp.endpoint: invalid endpoint \"\": expected host:port"
    );
    assert_eq!(
        config_error(&OtlpExporterFactory, "endpoint: collector"),
        "exporters.otlp.endpoint: invalid endpoint \"collector\": expected host:port"
    );
    assert_eq!(
        config_error(&OtlpHttpExporterFactory, "encoding: proto"),
        "exporters.otlphttp.endpoint: missing: set endpoint, or traces_endpoint, logs_endpoint or metrics_endpoint"
    );
    assert_eq!(
        config_error(&OtlpHttpExporterFactory, "endpoint: ftp://collector"),
        "exporters.otlphttp.endpoint: invalid endpoint \"ftp://collector\": expected an http:// or https:// URL with a host"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml = "
endpoint: ''
compression: lz4
headers:
  authorization: \"Bearer secret\\n\"
timeout: 1s
retry_on_failure:
  multiplier: 0.5
sending_queue:
  queue_size: 0
";
    let errors = config_error(&OtlpExporterFactory, yaml);
    assert_eq!(
        errors,
        "exporters.otlp.endpoint: invalid endpoint \"\": expected host:port\n\
         exporters.otlp.compression: unsupported compression \"lz4\": expected \"gzip\" or \"none\"\n\
         exporters.otlp.headers.authorization: invalid header value (not shown): expected visible ASCII characters, spaces and tabs\n\
         exporters.otlp.retry_on_failure.multiplier: 0.5 is out of range: expected 1 or more\n\
         exporters.otlp.sending_queue.queue_size: must be greater than zero"
    );
    assert!(!errors.contains("secret"));
}

#[test]
fn key_errors_do_not_hide_validation_errors() {
    let yaml = "endpoint: collector\ncompresion: gzip\ncompression: zstd\ntimeout: soon";
    assert_eq!(
        config_error(&OtlpExporterFactory, yaml),
        "exporters.otlp.compresion: unknown key \"compresion\"; valid keys: endpoint, tls, headers, compression, timeout, retry_on_failure, sending_queue\n\
         exporters.otlp.timeout: invalid duration \"soon\": expected a number with a unit such as 200ms, 5s or 1m\n\
         exporters.otlp.endpoint: invalid endpoint \"collector\": expected host:port\n\
         exporters.otlp.compression: unsupported compression \"zstd\": expected \"gzip\" or \"none\""
    );
}

#[test]
fn defaults_need_only_an_endpoint() {
    assert!(configure(&OtlpExporterFactory, "endpoint: collector:4317").is_ok());
    assert!(configure(&OtlpHttpExporterFactory, "endpoint: https://collector:4318").is_ok());
    assert!(configure(&DebugExporterFactory, "").is_ok());
    assert!(configure(&LoggingExporterFactory, "loglevel: debug").is_ok());
    // `timeout: 0` is "no timeout", as in the collector.
    assert!(configure(&OtlpExporterFactory, "endpoint: collector:4317\ntimeout: 0s").is_ok());
}

// === zipkin ===

#[path = "exporters/zipkin.rs"]
mod zipkin;
