//! The `otlp` receiver over real sockets: OTLP/gRPC through a tonic client with a bytes codec,
//! OTLP/HTTP through hyper's HTTP/1.1 client (and raw TCP where hyper would not send what a
//! broken client sends), the config errors users see, and shutdown.

// Helpers outside `#[test]` functions panic on set-up failures too: that is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::grpc_codec::PassThroughCodec;

use bytes::Bytes;
use config::{ConfigErrors, Value};
use futures_util::future::BoxFuture;
use http::header;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use otlp::{Batch, ExportLogsServiceRequest, ExportTraceServiceRequest, Signal};
use pipeline::health::HealthReporter;
use pipeline::telemetry::Telemetry;
use pipeline::{BuildContext, ComponentId, ConsumeError, Consumer, Factory, Kind, Lifecycle};
use prost::Message;
use receivers::OtlpReceiverFactory;
use receivers::otlp::OtlpReceiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Status};
use transport::status::{RpcStatus, code};

const PATH: &str = "receivers.otlp";

/// Every network step of a test gets this long before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(20);

const GRPC: &str = "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n";
const HTTP: &str = "protocols:\n  http:\n    endpoint: 127.0.0.1:0\n";

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {STEP:?}"),
    }
}

// === the consumer ===

/// Records what it receives; refuses with `refusal` while one is set, and waits for a permit of
/// `gate` first while one is set.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Batch>>,
    refusal: Mutex<Option<ConsumeError>>,
    gate: Mutex<Option<Arc<Semaphore>>>,
    waiting: AtomicUsize,
}

impl Recorder {
    /// From now on each batch waits for a permit of the returned gate.
    fn hold(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// Until `count` batches wait at the gate.
    async fn wait_for_held(&self, count: usize) {
        within("batches at the gate", async {
            while self.waiting.load(Ordering::SeqCst) < count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    fn refuse(&self, refusal: Option<ConsumeError>) {
        *self.refusal.lock().unwrap() = refusal;
    }

    fn take(&self) -> Vec<Batch> {
        std::mem::take(&mut *self.batches.lock().unwrap())
    }

    fn count(&self) -> usize {
        self.batches.lock().unwrap().len()
    }

    /// The one batch received since the last call, which must be all there is.
    fn only(&self) -> Batch {
        let mut batches = self.take();
        assert_eq!(batches.len(), 1, "expected exactly one batch");
        batches.remove(0)
    }
}

impl Consumer for Recorder {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let gate = self.gate.lock().unwrap().clone();
            if let Some(gate) = gate {
                self.waiting.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            if let Some(refusal) = self.refusal.lock().unwrap().clone() {
                return Err(refusal);
            }
            self.batches.lock().unwrap().push(batch);
            Ok(())
        })
    }
}

// === the receiver ===

fn yaml(text: &str) -> Value {
    config::parse_yaml(text, "test.yaml").unwrap()
}

/// A started receiver with a traces and a logs pipeline (no metrics one), and its addresses.
struct Running {
    receiver: OtlpReceiver,
    telemetry: Arc<Telemetry>,
    traces: Arc<Recorder>,
    logs: Arc<Recorder>,
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
}

impl Running {
    fn grpc(&self) -> SocketAddr {
        self.grpc.expect("grpc enabled")
    }

    fn http(&self) -> SocketAddr {
        self.http.expect("http enabled")
    }

    /// The value of one sample line of the Prometheus text, such as
    /// `otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"}`.
    fn metric(&self, series: &str) -> u64 {
        let text = self.telemetry.encode();
        let line = text
            .lines()
            .find(|line| line.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    }

    async fn stop(mut self) {
        within("shutdown", self.receiver.shutdown(Instant::now() + Duration::from_secs(5))).await;
    }
}

fn context(
    telemetry: &Arc<Telemetry>,
    traces: &Arc<Recorder>,
    logs: &Arc<Recorder>,
) -> BuildContext {
    let traces: Arc<dyn Consumer> = traces.clone();
    let logs: Arc<dyn Consumer> = logs.clone();
    BuildContext {
        id: ComponentId::new("otlp"),
        kind: Kind::Receiver,
        signal: None,
        next: None,
        outputs: vec![(Signal::Traces, traces), (Signal::Logs, logs)],
        telemetry: telemetry.clone(),
        health: HealthReporter::new(),
    }
}

async fn start(text: &str) -> Running {
    let configured = OtlpReceiverFactory.configure_typed(&yaml(text), PATH).unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let traces = Arc::new(Recorder::default());
    let logs = Arc::new(Recorder::default());
    let mut receiver = configured.receiver(&context(&telemetry, &traces, &logs));
    within("start", receiver.start()).await.unwrap();
    let bound = receiver.bound_addresses();
    let find = |protocol| bound.iter().find(|(p, _)| *p == protocol).map(|(_, address)| *address);
    let (grpc, http) = (find("grpc"), find("http"));
    Running { receiver, telemetry, traces, logs, grpc, http }
}

fn traces_bytes(request: &ExportTraceServiceRequest) -> Bytes {
    Bytes::from(request.encode_to_vec())
}

// === an OTLP/gRPC client ===

/// One unary call of `method` (a gRPC path) with `body` as the message.
async fn grpc_call(
    address: SocketAddr,
    method: &str,
    body: Bytes,
    gzip: bool,
) -> Result<Bytes, Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap();
    let channel = within("grpc connect", channel.connect()).await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    if gzip {
        client = client.send_compressed(CompressionEncoding::Gzip);
    }
    within("grpc ready", client.ready()).await.unwrap();
    let path = http::uri::PathAndQuery::try_from(method).unwrap();
    let response =
        within("grpc call", client.unary(tonic::Request::new(body), path, PassThroughCodec)).await;
    response.map(tonic::Response::into_inner)
}

async fn grpc_export(address: SocketAddr, signal: Signal, body: Bytes) -> Result<Bytes, Status> {
    grpc_call(address, signal.grpc_path(), body, false).await
}

/// Asserts the call failed with `expected`, and returns the status.
fn grpc_refused(result: Result<Bytes, Status>, expected: Code) -> Status {
    match result {
        Ok(_) => panic!("expected {expected:?}, the call succeeded"),
        Err(status) => {
            assert_eq!(status.code(), expected, "{status:?}");
            status
        }
    }
}

/// The receiver still takes a good request on `address` after whatever came before.
async fn grpc_still_accepts(running: &Running) {
    let request = otlp::fixtures::sidecar_traces(5, 1);
    let reply = grpc_export(running.grpc(), Signal::Traces, traces_bytes(&request)).await;
    assert_eq!(reply.unwrap(), Bytes::new());
    assert_eq!(running.traces.only().into_traces().unwrap(), request);
}

// === an OTLP/HTTP client ===

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// The `google.rpc.Status` of a protobuf error body.
    fn rpc_status(&self) -> RpcStatus {
        assert_eq!(self.header("content-type"), Some("application/x-protobuf"));
        RpcStatus::decode(self.body.clone()).unwrap()
    }

    /// The `{"code":…,"message":…}` of a JSON error body.
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP/1.1 request to `address`.
fn http_message(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    let mut request =
        http::Request::builder().method(method).uri(path).header(header::HOST, address.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Full::new(body.into())).unwrap()
}

/// Opens an HTTP/1.1 connection for [`send`].
async fn http_connect(address: SocketAddr) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request on an open connection.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> Result<Reply, hyper::Error> {
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
}

/// One request on a fresh HTTP/1.1 connection.
async fn http_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut sender = within("http connect", http_connect(address)).await.unwrap();
    let request = http_message(address, method, path, headers, body);
    within("http request", send(&mut sender, request)).await.unwrap()
}

async fn post(
    address: SocketAddr,
    path: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Reply {
    http_request(address, "POST", path, &[("content-type", content_type)], body).await
}

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Writes `request` as is on a fresh connection and returns the status and the raw answer.
/// Reading stops at the end of the stream or at an error such as a reset after the answer.
async fn raw_http(address: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = within("raw connect", TcpStream::connect(address)).await.unwrap();
    within("raw write", stream.write_all(request)).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within("raw read", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The receiver still takes a good request after whatever came before.
async fn http_still_accepts(running: &Running) {
    let request = otlp::fixtures::sidecar_traces(3, 1);
    let reply = post(running.http(), "/v1/traces", PROTOBUF, traces_bytes(&request)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(running.traces.only().into_traces().unwrap(), request);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    transport::gzip::compress(data)
}

// === OTLP/gRPC ===

#[tokio::test]
async fn grpc_traces_arrive_unchanged_and_still_encoded() {
    let running = start(GRPC).await;

    let request = otlp::fixtures::sidecar_traces(100, 3);
    let reply = grpc_export(running.grpc(), Signal::Traces, traces_bytes(&request)).await.unwrap();
    assert!(
        reply.is_empty(),
        "the ExportTraceServiceResponse of a full success encodes to nothing"
    );
    let batch = running.traces.only();
    assert!(batch.is_encoded(), "the receiver must not decode what it forwards");
    assert_eq!(batch.signal(), Signal::Traces);
    assert_eq!(batch.items(), 100);
    assert_eq!(batch.to_bytes(), traces_bytes(&request), "the very bytes that were sent");
    assert_eq!(batch.into_traces().unwrap(), request);

    let request = otlp::fixtures::sidecar_traces_seeded(40, 2, 7);
    let body = traces_bytes(&request);
    grpc_call(running.grpc(), Signal::Traces.grpc_path(), body, true).await.unwrap();
    let batch = running.traces.only();
    assert!(batch.is_encoded());
    assert_eq!(batch.items(), 40);
    assert_eq!(batch.into_traces().unwrap(), request);

    assert_eq!(running.logs.count(), 0);
    running.stop().await;
}

#[tokio::test]
async fn grpc_logs_reach_the_logs_pipeline() {
    let running = start(GRPC).await;
    let request: ExportLogsServiceRequest = otlp::fixtures::sidecar_logs(30, 2);
    let body = Bytes::from(request.encode_to_vec());
    grpc_export(running.grpc(), Signal::Logs, body).await.unwrap();
    let batch = running.logs.only();
    assert!(batch.is_encoded());
    assert_eq!(batch.items(), 30);
    assert_eq!(batch.into_logs().unwrap(), request);
    assert_eq!(running.traces.count(), 0);
    assert_eq!(
        running.metric(
            r#"otelcol_receiver_accepted_log_records_total{receiver="otlp",transport="grpc"}"#
        ),
        30
    );
    running.stop().await;
}

#[tokio::test]
async fn grpc_empty_request_succeeds_without_reaching_the_pipeline() {
    let running = start(GRPC).await;
    grpc_export(running.grpc(), Signal::Traces, Bytes::new()).await.unwrap();
    assert_eq!(running.traces.count(), 0);
    grpc_still_accepts(&running).await;
    running.stop().await;
}

#[tokio::test]
async fn grpc_bad_requests_are_refused_with_the_otlp_codes() {
    let config = "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n    max_recv_msg_size_mib: 1\n";
    let running = start(config).await;
    let address = running.grpc();

    // Not a protobuf request at all: 0xff starts a varint that never ends.
    let garbage = Bytes::from_static(b"\xff\xff\xff\xff\xff");
    let status =
        grpc_refused(grpc_export(address, Signal::Traces, garbage).await, Code::InvalidArgument);
    assert!(status.message().contains("varint"), "the message says what is wrong: {status:?}");

    // A valid request cut short.
    let whole = traces_bytes(&otlp::fixtures::sidecar_traces(10, 1));
    let cut = whole.slice(..whole.len() - 7);
    let status =
        grpc_refused(grpc_export(address, Signal::Traces, cut).await, Code::InvalidArgument);
    assert!(status.message().contains("past the end"), "{status:?}");

    // A valid request over 1 MiB.
    let large = traces_bytes(&otlp::fixtures::sidecar_traces(2_000, 4));
    assert!(large.len() > 1 << 20);
    let status =
        grpc_refused(grpc_export(address, Signal::Traces, large).await, Code::ResourceExhausted);
    assert!(!status.message().is_empty());

    // A small gzip message that inflates far past the limit.
    let bomb = Bytes::from(vec![0u8; 16 << 20]);
    let result = grpc_call(address, Signal::Traces.grpc_path(), bomb, true).await;
    grpc_refused(result, Code::ResourceExhausted);

    // A method the service does not have.
    let method = "/opentelemetry.proto.collector.trace.v1.TraceService/Import";
    let body = traces_bytes(&otlp::fixtures::sidecar_traces(1, 1));
    grpc_refused(grpc_call(address, method, body.clone(), false).await, Code::Unimplemented);

    // A service the server does not have.
    let method = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";
    grpc_refused(grpc_call(address, method, body, false).await, Code::Unimplemented);

    assert_eq!(running.traces.count(), 0, "nothing bad reached the pipeline");
    let accepted = r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"}"#;
    let refused = r#"otelcol_receiver_refused_spans_total{receiver="otlp",transport="grpc"}"#;
    assert_eq!(running.metric(accepted), 0);
    assert_eq!(running.metric(refused), 0, "malformed requests are not refusals by the pipeline");

    grpc_still_accepts(&running).await;
    running.stop().await;
}

#[tokio::test]
async fn grpc_metrics_without_a_metrics_pipeline_is_unimplemented() {
    let running = start(GRPC).await;
    let body = Bytes::from(otlp::fixtures::sidecar_metrics(10, 1).encode_to_vec());
    let status =
        grpc_refused(grpc_export(running.grpc(), Signal::Metrics, body).await, Code::Unimplemented);
    assert!(status.message().contains("metrics"), "{status:?}");
    grpc_still_accepts(&running).await;
    running.stop().await;
}

#[tokio::test]
async fn grpc_pipeline_refusals_map_to_retryable_codes_with_a_retry_delay() {
    let running = start(GRPC).await;
    let address = running.grpc();
    let request = traces_bytes(&otlp::fixtures::sidecar_traces(10, 2));

    running.traces.refuse(Some(ConsumeError::exhausted("queue is full", Duration::from_secs(2))));
    let result = grpc_export(address, Signal::Traces, request.clone()).await;
    let status = grpc_refused(result, Code::ResourceExhausted);
    assert_eq!(status.message(), "queue is full");
    let details = RpcStatus::decode(status.details()).unwrap();
    assert_eq!(details.code, code::RESOURCE_EXHAUSTED);
    assert_eq!(details.message, "queue is full");
    assert_eq!(details.retry_after(), Some(Duration::from_secs(2)));

    running.traces.refuse(Some(ConsumeError::unavailable("exporter is down")));
    let result = grpc_export(address, Signal::Traces, request.clone()).await;
    let status = grpc_refused(result, Code::Unavailable);
    let details = RpcStatus::decode(status.details()).unwrap();
    assert_eq!(details.code, code::UNAVAILABLE);
    assert_eq!(details.retry_after(), Some(Duration::from_secs(1)));

    let permanent = ConsumeError::Permanent { message: "cannot take it".into(), rejected: 10 };
    running.traces.refuse(Some(permanent));
    let result = grpc_export(address, Signal::Traces, request.clone()).await;
    let status = grpc_refused(result, Code::InvalidArgument);
    assert_eq!(status.message(), "cannot take it");

    running.traces.refuse(None);
    grpc_export(address, Signal::Traces, request).await.unwrap();
    assert_eq!(running.traces.only().items(), 10);
    grpc_still_accepts(&running).await;

    let series = |what: &str| {
        format!(r#"otelcol_receiver_{what}_spans_total{{receiver="otlp",transport="grpc"}}"#)
    };
    assert_eq!(running.metric(&series("accepted")), 10 + 5);
    assert_eq!(running.metric(&series("refused")), 3 * 10);
    running.stop().await;
}

// === OTLP/HTTP ===

#[tokio::test]
async fn http_protobuf_and_json_arrive_equal_and_are_answered_in_kind() {
    let running = start(HTTP).await;
    let address = running.http();
    let request = otlp::fixtures::sidecar_traces(100, 3);

    let reply = post(address, "/v1/traces", PROTOBUF, traces_bytes(&request)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(PROTOBUF));
    assert!(reply.body.is_empty(), "the empty ExportTraceServiceResponse");
    let batch = running.traces.only();
    assert!(batch.is_encoded(), "a protobuf body is forwarded as received");
    assert_eq!(batch.items(), 100);
    assert_eq!(batch.into_traces().unwrap(), request);

    let json = otlp::json::encode(Batch::from_traces(request.clone())).unwrap();
    let reply = post(address, "/v1/traces", JSON, json.clone()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some(JSON));
    assert_eq!(reply.body, Bytes::from_static(b"{}"));
    let batch = running.traces.only();
    assert_eq!(batch.items(), 100);
    assert_eq!(batch.into_traces().unwrap(), request);

    // Parameters and case in the media type are fine.
    let reply = post(address, "/v1/traces", "Application/JSON; charset=utf-8", json).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(JSON));
    assert_eq!(running.traces.only().into_traces().unwrap(), request);

    let logs = otlp::fixtures::sidecar_logs(20, 2);
    let reply = post(address, "/v1/logs", PROTOBUF, logs.encode_to_vec()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(running.logs.only().into_logs().unwrap(), logs);
    let logs_json = otlp::json::encode(Batch::from_logs(logs.clone())).unwrap();
    let reply = post(address, "/v1/logs", JSON, logs_json).await;
    assert_eq!(reply.status, 200);
    assert_eq!(running.logs.only().into_logs().unwrap(), logs);

    assert_eq!(running.traces.count(), 0);
    let series = r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"}"#;
    assert_eq!(running.metric(series), 300);
    running.stop().await;
}

#[tokio::test]
async fn http_gzip_bodies_are_inflated() {
    let running = start(HTTP).await;
    let address = running.http();
    let request = otlp::fixtures::sidecar_traces(50, 2);

    let headers = [("content-type", PROTOBUF), ("content-encoding", "gzip")];
    let reply =
        http_request(address, "POST", "/v1/traces", &headers, gzip(&traces_bytes(&request))).await;
    assert_eq!(reply.status, 200);
    let batch = running.traces.only();
    assert!(batch.is_encoded());
    assert_eq!(batch.into_traces().unwrap(), request);

    let json = otlp::json::encode(Batch::from_traces(request.clone())).unwrap();
    let headers = [("content-type", JSON), ("content-encoding", "gzip")];
    let reply = http_request(address, "POST", "/v1/traces", &headers, gzip(&json)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, Bytes::from_static(b"{}"));
    assert_eq!(running.traces.only().into_traces().unwrap(), request);
    running.stop().await;
}

#[tokio::test]
async fn http_empty_bodies_succeed_without_reaching_the_pipeline() {
    let running = start(HTTP).await;
    let reply = post(running.http(), "/v1/traces", PROTOBUF, Bytes::new()).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    let reply = post(running.http(), "/v1/traces", JSON, Bytes::new()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, Bytes::from_static(b"{}"));
    let reply = post(running.http(), "/v1/traces", JSON, "{}").await;
    assert_eq!(reply.status, 200);
    assert_eq!(running.traces.count(), 0);
    http_still_accepts(&running).await;
    running.stop().await;
}

#[tokio::test]
async fn http_bad_requests_get_the_right_status_and_body() {
    let config =
        "protocols:\n  http:\n    endpoint: 127.0.0.1:0\n    max_request_body_size: 4096\n";
    let running = start(config).await;
    let address = running.http();
    let small = traces_bytes(&otlp::fixtures::sidecar_traces(3, 1));
    assert!(small.len() < 4096);

    // Wrong or missing media type.
    let reply = post(address, "/v1/traces", "text/plain", small.clone()).await;
    assert_eq!(reply.status, 415);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains("text/plain") && text.contains(PROTOBUF), "{text}");
    let reply = http_request(address, "POST", "/v1/traces", &[], small.clone()).await;
    assert_eq!(reply.status, 415);

    // Over the body limit, declared up front.
    let large = traces_bytes(&otlp::fixtures::sidecar_traces(20, 1));
    assert!(large.len() > 4096);
    let reply = post(address, "/v1/traces", PROTOBUF, large.clone()).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.rpc_status().code, code::RESOURCE_EXHAUSTED);

    // Over the body limit, chunked so that only reading finds out.
    let mut chunked = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {address}\r\ncontent-type: {PROTOBUF}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in large.chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw_http(address, &chunked).await;
    assert_eq!(status, 413, "{text}");

    // Small gzip that inflates past the limit.
    let bomb = gzip(&vec![0u8; 256 << 10]);
    assert!(bomb.len() < 4096);
    let headers = [("content-type", PROTOBUF), ("content-encoding", "gzip")];
    let reply = http_request(address, "POST", "/v1/traces", &headers, bomb).await;
    assert_eq!(reply.status, 413);

    // Not gzip at all, and an encoding the receiver does not speak.
    let reply = http_request(address, "POST", "/v1/traces", &headers, small.clone()).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.rpc_status().code, code::INVALID_ARGUMENT);
    let headers = [("content-type", PROTOBUF), ("content-encoding", "br")];
    let reply = http_request(address, "POST", "/v1/traces", &headers, small.clone()).await;
    assert_eq!(reply.status, 400);
    assert!(reply.rpc_status().message.contains("br"));

    // A protobuf request cut short: a google.rpc.Status in protobuf says why.
    let cut = small.slice(..small.len() - 7);
    let reply = post(address, "/v1/traces", PROTOBUF, cut).await;
    assert_eq!(reply.status, 400);
    let status = reply.rpc_status();
    assert_eq!(status.code, code::INVALID_ARGUMENT);
    assert!(status.message.contains("past the end"), "{status:?}");
    assert_eq!(status.retry_after(), None);

    // Invalid JSON: the same status, in JSON.
    let reply = post(address, "/v1/traces", JSON, "{\"resourceSpans\": [").await;
    assert_eq!(reply.status, 400);
    let body = reply.json();
    assert_eq!(body["code"], 3);
    assert!(body["message"].as_str().unwrap().contains("invalid OTLP/JSON"), "{body}");
    let reply = post(address, "/v1/traces", JSON, "{\"resourceSpans\": 7}").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["code"], 3);

    // Wrong method, path, or a signal without a pipeline.
    let reply = http_request(address, "GET", "/v1/traces", &[], Bytes::new()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = post(address, "/v1/spans", PROTOBUF, small.clone()).await;
    assert_eq!(reply.status, 404);
    let reply = post(address, "/v1/metrics", PROTOBUF, Bytes::new()).await;
    assert_eq!(reply.status, 404);

    assert_eq!(running.traces.count(), 0, "nothing bad reached the pipeline");
    let refused = r#"otelcol_receiver_refused_spans_total{receiver="otlp",transport="http"}"#;
    assert_eq!(running.metric(refused), 0);
    http_still_accepts(&running).await;
    running.stop().await;
}

#[tokio::test]
async fn http_pipeline_refusals_carry_retry_after() {
    let running = start(HTTP).await;
    let address = running.http();
    let request = traces_bytes(&otlp::fixtures::sidecar_traces(10, 2));

    running.traces.refuse(Some(ConsumeError::exhausted("queue is full", Duration::from_secs(2))));
    let reply = post(address, "/v1/traces", PROTOBUF, request.clone()).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("2"));
    let status = reply.rpc_status();
    assert_eq!(status.code, code::RESOURCE_EXHAUSTED);
    assert_eq!(status.message, "queue is full");
    assert_eq!(status.retry_after(), Some(Duration::from_secs(2)));

    let json =
        otlp::json::encode(Batch::from_wire(Signal::Traces, request.clone()).unwrap()).unwrap();
    let reply = post(address, "/v1/traces", JSON, json).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert_eq!(reply.json()["code"], code::RESOURCE_EXHAUSTED);

    running.traces.refuse(Some(ConsumeError::unavailable("exporter is down")));
    let reply = post(address, "/v1/traces", PROTOBUF, request.clone()).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.rpc_status().code, code::UNAVAILABLE);

    let permanent = ConsumeError::Permanent { message: "cannot take it".into(), rejected: 10 };
    running.traces.refuse(Some(permanent));
    let reply = post(address, "/v1/traces", PROTOBUF, request).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("retry-after"), None);
    assert_eq!(reply.rpc_status().message, "cannot take it");

    running.traces.refuse(None);
    http_still_accepts(&running).await;
    let series = |what: &str| {
        format!(r#"otelcol_receiver_{what}_spans_total{{receiver="otlp",transport="http"}}"#)
    };
    assert_eq!(running.metric(&series("refused")), 4 * 10);
    assert_eq!(running.metric(&series("accepted")), 3);
    running.stop().await;
}

#[tokio::test]
async fn http_cors_allows_only_the_configured_origins() {
    let config = "protocols:\n  http:\n    endpoint: 127.0.0.1:0\n    cors:\n      allowed_origins: [\"https://*.example.com\"]\n      max_age: 600\n";
    let running = start(config).await;
    let address = running.http();
    let request = traces_bytes(&otlp::fixtures::sidecar_traces(2, 1));
    let preflight = |origin: &'static str, headers: &'static str| {
        let mut list = vec![("origin", origin), ("access-control-request-method", "POST")];
        if !headers.is_empty() {
            list.push(("access-control-request-headers", headers));
        }
        async move { http_request(address, "OPTIONS", "/v1/traces", &list, Bytes::new()).await }
    };

    let good = "https://app.example.com";
    let reply = preflight(good, "Content-Type, Content-Encoding").await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some(good));
    assert_eq!(reply.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("content-type, content-encoding")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    let vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
    assert_eq!(reply.header("vary"), Some(vary), "the answer depends on all three");
    assert_eq!(running.traces.count(), 0, "a preflight carries no telemetry");

    let headers = [("content-type", PROTOBUF), ("origin", good)];
    let reply = http_request(address, "POST", "/v1/traces", &headers, request.clone()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some(good));
    assert_eq!(running.traces.take().len(), 1);

    // An error answer also needs the header, or the browser hides it from the page.
    let headers = [("content-type", "text/plain"), ("origin", good)];
    let reply = http_request(address, "POST", "/v1/traces", &headers, request.clone()).await;
    assert_eq!(reply.status, 415);
    assert_eq!(reply.header("access-control-allow-origin"), Some(good));

    let evil = "https://evil.test";
    let reply = preflight(evil, "").await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(reply.header("access-control-allow-methods"), None);
    let headers = [("content-type", PROTOBUF), ("origin", evil)];
    let reply = http_request(address, "POST", "/v1/traces", &headers, request.clone()).await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
    running.traces.take();

    // The suffix must match at a label boundary.
    let reply = preflight("https://example.com.evil.test", "").await;
    assert_eq!(reply.header("access-control-allow-origin"), None);

    // An allowed origin asking for a header that is not allowed gets no permission at all.
    let reply = preflight(good, "x-secret-token").await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), None, "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-headers"), None);
    // Nor one asking for another method.
    let list = [("origin", good), ("access-control-request-method", "PUT")];
    let reply = http_request(address, "OPTIONS", "/v1/traces", &list, Bytes::new()).await;
    assert_eq!(reply.header("access-control-allow-origin"), None, "{:?}", reply.headers);

    http_still_accepts(&running).await;
    running.stop().await;
}

#[tokio::test]
async fn http_without_cors_answers_options_with_405() {
    let running = start(HTTP).await;
    let list = [("origin", "https://app.example.com"), ("access-control-request-method", "POST")];
    let reply = http_request(running.http(), "OPTIONS", "/v1/traces", &list, Bytes::new()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    running.stop().await;
}

#[tokio::test]
async fn http_custom_url_paths_replace_the_defaults() {
    let config =
        "protocols:\n  http:\n    endpoint: 127.0.0.1:0\n    traces_url_path: /custom/traces\n";
    let running = start(config).await;
    let request = otlp::fixtures::sidecar_traces(4, 1);
    let reply = post(running.http(), "/custom/traces", PROTOBUF, traces_bytes(&request)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(running.traces.only().into_traces().unwrap(), request);
    let reply = post(running.http(), "/v1/traces", PROTOBUF, traces_bytes(&request)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(running.traces.count(), 0);
    // The other signals keep their defaults.
    let logs = otlp::fixtures::sidecar_logs(2, 1);
    let reply = post(running.http(), "/v1/logs", PROTOBUF, logs.encode_to_vec()).await;
    assert_eq!(reply.status, 200);
    running.stop().await;
}

// === both transports ===

#[tokio::test]
async fn grpc_and_http_count_separately() {
    let config =
        "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n  http:\n    endpoint: 127.0.0.1:0\n";
    let running = start(config).await;
    let request = otlp::fixtures::sidecar_traces(7, 1);
    grpc_export(running.grpc(), Signal::Traces, traces_bytes(&request)).await.unwrap();
    let reply = post(running.http(), "/v1/traces", PROTOBUF, traces_bytes(&request)).await;
    assert_eq!(reply.status, 200);
    let reply = post(running.http(), "/v1/traces", PROTOBUF, traces_bytes(&request)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(running.traces.take().len(), 3);
    let series = |transport: &str| {
        format!(
            r#"otelcol_receiver_accepted_spans_total{{receiver="otlp",transport="{transport}"}}"#
        )
    };
    assert_eq!(running.metric(&series("grpc")), 7);
    assert_eq!(running.metric(&series("http")), 14);
    running.stop().await;
}

// === config ===

fn config_errors(text: &str) -> ConfigErrors {
    match OtlpReceiverFactory.configure(&yaml(text), PATH) {
        Ok(_) => panic!("expected config errors for:\n{text}"),
        Err(errors) => errors,
    }
}

#[test]
fn config_a_protocol_key_alone_enables_it_with_the_default_endpoint() {
    let configured = OtlpReceiverFactory.configure(&yaml("protocols:\n  grpc:\n"), PATH).unwrap();
    let addresses = configured.listen_addresses();
    let expected =
        [("receivers.otlp.protocols.grpc.endpoint".to_string(), "localhost:4317".to_string())];
    assert_eq!(addresses, expected);

    let configured =
        OtlpReceiverFactory.configure(&yaml("protocols:\n  grpc:\n  http:\n"), PATH).unwrap();
    let addresses = configured.listen_addresses();
    assert_eq!(addresses.len(), 2);
    assert_eq!(addresses[1].0, "receivers.otlp.protocols.http.endpoint");
    assert_eq!(addresses[1].1, "localhost:4318");
}

#[test]
fn config_without_a_protocol_is_an_error() {
    let expected = "receivers.otlp.protocols: must enable at least one protocol: grpc or http";
    for text in ["protocols: {}\n", "protocols:\n", "{}\n"] {
        assert_eq!(config_errors(text).to_string(), expected, "for {text:?}");
    }
    // `otlp:` with nothing after it.
    match OtlpReceiverFactory.configure(&Value::Null, PATH) {
        Ok(_) => panic!("a receiver without protocols was accepted"),
        Err(errors) => assert_eq!(errors.to_string(), expected),
    }
}

#[test]
fn config_bad_endpoints_are_named_by_their_key() {
    let errors = config_errors("protocols:\n  grpc:\n    endpoint: localhost\n");
    assert_eq!(errors.len(), 1, "{errors}");
    let error = errors.iter().next().unwrap();
    assert_eq!(error.path, "receivers.otlp.protocols.grpc.endpoint");
    assert!(error.message.contains("missing port"), "{error}");

    // Every problem at once.
    let text = "protocols:\n  grpc:\n    endpoint: 0.0.0.0:99999\n  http:\n    endpoint: nohost\n    max_request_body_size: 0\n";
    let paths: Vec<String> = config_errors(text).iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "receivers.otlp.protocols.grpc.endpoint",
            "receivers.otlp.protocols.http.endpoint",
            "receivers.otlp.protocols.http.max_request_body_size",
        ]
    );
}

#[test]
fn config_unknown_keys_are_named() {
    let errors =
        config_errors("protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n    max_recv_msg_size: 4\n");
    let text = errors.to_string();
    assert!(text.contains("receivers.otlp.protocols.grpc.max_recv_msg_size"), "{text}");
    assert!(text.contains("unknown key"), "{text}");

    let text = config_errors("protocol:\n  grpc:\n").to_string();
    assert!(text.contains("receivers.otlp.protocol"), "{text}");
    assert!(text.contains("unknown key"), "{text}");

    let text = config_errors("protocols:\n  grpc:\n  thrift:\n").to_string();
    assert!(text.contains("receivers.otlp.protocols.thrift"), "{text}");
}

// === lifecycle ===

#[tokio::test]
async fn built_through_the_factory_the_receiver_starts_and_stops() {
    let configured = OtlpReceiverFactory.configure(&yaml(GRPC), PATH).unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let (traces, logs) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let mut built = configured.build(context(&telemetry, &traces, &logs)).unwrap();
    assert!(built.consumer.is_none(), "a receiver has no consumer of its own");
    within("start", built.lifecycle.start()).await.unwrap();
    within("shutdown", built.lifecycle.shutdown(Instant::now() + Duration::from_secs(5))).await;
    // Shutting down again is harmless.
    within("shutdown", built.lifecycle.shutdown(Instant::now() + Duration::from_secs(5))).await;
}

#[tokio::test]
async fn a_port_in_use_fails_start_with_the_key() {
    let blocker = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let taken = blocker.local_addr().unwrap();
    let text = format!("protocols:\n  http:\n    endpoint: {taken}\n");
    let configured = OtlpReceiverFactory.configure_typed(&yaml(&text), PATH).unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let (traces, logs) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let mut receiver = configured.receiver(&context(&telemetry, &traces, &logs));
    let error = within("start", receiver.start()).await.unwrap_err();
    assert!(error.to_string().contains("protocols.http.endpoint"), "{error}");
    within("shutdown", receiver.shutdown(Instant::now() + Duration::from_secs(5))).await;
}

async fn assert_refused(address: SocketAddr, what: &str) {
    match within("connect after shutdown", TcpStream::connect(address)).await {
        Ok(_) => panic!("{what}: a connection to {address} was accepted after shutdown"),
        Err(error) => {
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{what}: {error}")
        }
    }
}

#[tokio::test]
async fn after_shutdown_new_connections_are_refused() {
    let config =
        "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n  http:\n    endpoint: 127.0.0.1:0\n";
    let running = start(config).await;
    let (grpc, http) = (running.grpc(), running.http());
    grpc_still_accepts(&running).await;
    http_still_accepts(&running).await;

    let Running { mut receiver, .. } = running;
    // An idle receiver stops without waiting for its deadline: an hour away, far past
    // `within`'s limit, so a shutdown that waited for it fails here.
    within("shutdown", receiver.shutdown(Instant::now() + Duration::from_secs(3600))).await;
    assert_refused(grpc, "grpc").await;
    assert_refused(http, "http").await;
}

/// Starts a request on a fresh connection to `address` and never finishes it.
async fn stalled_http_request(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {address}\r\ncontent-type: {PROTOBUF}\r\n\
         content-length: 1000\r\n\r\nabc"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn grpc_shutdown_stops_listening_at_once_despite_a_stalled_call() {
    let running = start(GRPC).await;
    let address = running.grpc();
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap();
    let channel = within("grpc connect", channel.connect()).await.unwrap();
    // A call whose request message never comes.
    let stalled = tokio::spawn(async move {
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(Signal::Traces.grpc_path());
        let never = futures_util::stream::pending::<Bytes>();
        client.client_streaming(tonic::Request::new(never), path, PassThroughCodec).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stalled.is_finished());

    let Running { mut receiver, .. } = running;
    // The stalled call never ends, so shutdown returns by its deadline or not at all
    // (`within` fails it then).
    within("shutdown", receiver.shutdown(Instant::now() + Duration::from_millis(500))).await;
    assert_refused(address, "grpc").await;
    stalled.abort();
}

#[tokio::test]
async fn http_shutdown_stops_listening_at_once_despite_a_stalled_request() {
    let running = start(HTTP).await;
    let address = running.http();
    let stalled = stalled_http_request(address).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let Running { mut receiver, .. } = running;
    // The stalled request never ends, so shutdown returns by its deadline or not at all
    // (`within` fails it then).
    within("shutdown", receiver.shutdown(Instant::now() + Duration::from_millis(500))).await;
    assert_refused(address, "http").await;
    drop(stalled);
}

#[tokio::test]
async fn shutdown_stops_both_transports_at_once_then_drains_requests_in_flight() {
    let config =
        "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n  http:\n    endpoint: 127.0.0.1:0\n";
    let running = start(config).await;
    let (grpc, http) = (running.grpc(), running.http());
    let body = traces_bytes(&otlp::fixtures::sidecar_traces(10, 1));
    let gate = running.traces.hold();
    let grpc_in_flight = tokio::spawn(grpc_export(grpc, Signal::Traces, body.clone()));
    let http_in_flight = tokio::spawn(post(http, "/v1/traces", PROTOBUF, body.clone()));
    running.traces.wait_for_held(2).await;

    let Running { mut receiver, traces, telemetry, .. } = running;
    let shutdown = tokio::spawn(async move {
        receiver.shutdown(Instant::now() + Duration::from_secs(10)).await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the requests in flight");

    // Neither transport takes new work while the old drains. (The late request is empty, so
    // that serving it would not need the held pipeline.)
    assert_refused(grpc, "grpc").await;
    let late = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sender = http_connect(http).await?;
        let headers = [("content-type", PROTOBUF)];
        let request = http_message(http, "POST", "/v1/traces", &headers, Bytes::new());
        send(&mut sender, request).await.map_err(std::io::Error::other)
    })
    .await;
    if let Ok(Ok(reply)) = late {
        panic!("a new HTTP request was answered {} during the drain", reply.status);
    }

    gate.add_permits(2);
    assert_eq!(within("grpc in flight", grpc_in_flight).await.unwrap().unwrap(), Bytes::new());
    assert_eq!(within("http in flight", http_in_flight).await.unwrap().status, 200);
    within("shutdown", shutdown).await.unwrap();
    assert_eq!(traces.take().len(), 2, "both requests in flight were delivered");
    let text = telemetry.encode();
    assert!(
        text.contains(
            r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 10"#
        )
    );
    assert!(
        text.contains(
            r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 10"#
        )
    );
}

/// `request`'s encoding grown to exactly `size` bytes by an unknown field (number 15), which
/// receivers must skip.
fn padded(request: &ExportTraceServiceRequest, size: usize) -> Bytes {
    let mut bytes = request.encode_to_vec();
    let padding = size - bytes.len() - 3;
    assert!((128..16_384).contains(&padding), "the length takes two bytes");
    bytes.push((15 << 3) | 2);
    prost::encoding::encode_varint(padding as u64, &mut bytes);
    bytes.extend(std::iter::repeat_n(b'x', padding));
    assert_eq!(bytes.len(), size);
    Bytes::from(bytes)
}

#[tokio::test]
async fn http_body_limit_is_inclusive_compressed_or_not() {
    let config =
        "protocols:\n  http:\n    endpoint: 127.0.0.1:0\n    max_request_body_size: 4096\n";
    let running = start(config).await;
    let address = running.http();
    let request = otlp::fixtures::sidecar_traces(3, 1);

    let reply = post(address, "/v1/traces", PROTOBUF, padded(&request, 4096)).await;
    assert_eq!(reply.status, 200);
    let batch = running.traces.only();
    assert_eq!(batch.items(), 3);
    assert_eq!(batch.into_traces().unwrap(), request, "unknown fields are skipped");
    let reply = post(address, "/v1/traces", PROTOBUF, padded(&request, 4097)).await;
    assert_eq!(reply.status, 413);

    let headers = [("content-type", PROTOBUF), ("content-encoding", "gzip")];
    let reply =
        http_request(address, "POST", "/v1/traces", &headers, gzip(&padded(&request, 4096))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(running.traces.only().items(), 3);
    let reply =
        http_request(address, "POST", "/v1/traces", &headers, gzip(&padded(&request, 4097))).await;
    assert_eq!(reply.status, 413);
    assert_eq!(running.traces.count(), 0);
    running.stop().await;
}

#[tokio::test]
async fn http_a_refused_request_does_not_spoil_its_connection() {
    let config =
        "protocols:\n  http:\n    endpoint: 127.0.0.1:0\n    max_request_body_size: 4096\n";
    let running = start(config).await;
    let address = running.http();
    let good = traces_bytes(&otlp::fixtures::sidecar_traces(3, 1));
    let large = traces_bytes(&otlp::fixtures::sidecar_traces(20, 1));
    // Method, headers, body, and the status expected.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Bytes, u16);
    let bad: [Case<'_>; 4] = [
        ("POST", &[("content-type", "text/plain")], good.clone(), 415),
        ("GET", &[], Bytes::new(), 405),
        ("POST", &[("content-type", PROTOBUF)], large, 413),
        ("POST", &[("content-type", PROTOBUF)], good.slice(..good.len() - 7), 400),
    ];
    for (method, headers, body, status) in bad {
        let mut sender = within("connect", http_connect(address)).await.unwrap();
        let request = http_message(address, method, "/v1/traces", headers, body);
        let reply = within("bad request", send(&mut sender, request)).await.unwrap();
        assert_eq!(reply.status, status);
        // The same connection either serves the next request properly or is closed; never does
        // the unread body of the last request get read as the next one.
        within("ready", sender.ready()).await.ok();
        let request = http_message(
            address,
            "POST",
            "/v1/traces",
            &[("content-type", PROTOBUF)],
            good.clone(),
        );
        match within("next request", send(&mut sender, request)).await {
            Ok(reply) => {
                assert_eq!(reply.status, 200, "after {status}: {:?}", reply.body);
                assert_eq!(running.traces.only().items(), 3);
            }
            Err(error) => {
                assert!(error.is_closed() || error.is_canceled(), "after {status}: {error}")
            }
        }
    }
    http_still_accepts(&running).await;
    running.stop().await;
}

// === TLS ===

/// A CA and a `localhost` certificate it signed, as PEM: (ca, cert, key).
fn certificates() -> (String, String, String) {
    let certificates = transport::test_support::localhost_certificates().unwrap();
    (certificates.ca, certificates.cert, certificates.key)
}

/// Writes `pem` to a fresh file and returns its path.
fn pem_file(name: &str, pem: &str) -> String {
    transport::test_support::pem_file("meshtrace-receivers", name, pem).unwrap()
}

#[tokio::test]
async fn grpc_with_tls_serves_clients_that_trust_its_ca_and_refuses_plain_text() {
    let (ca, cert, key) = certificates();
    let config = format!(
        "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n    tls:\n      cert_file: {}\n      key_file: {}\n",
        pem_file("server.pem", &cert),
        pem_file("server.key", &key),
    );
    let running = start(&config).await;
    let address = running.grpc();
    let request = otlp::fixtures::sidecar_traces(5, 1);

    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
        .domain_name("localhost");
    let endpoint = tonic::transport::Channel::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let channel = within("tls connect", endpoint.connect()).await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    within("grpc ready", client.ready()).await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    within(
        "tls export",
        client.unary(tonic::Request::new(traces_bytes(&request)), path, PassThroughCodec),
    )
    .await
    .unwrap();
    assert_eq!(running.traces.only().items(), 5);

    let plain = grpc_export(address, Signal::Traces, traces_bytes(&request)).await;
    assert!(plain.is_err(), "a plain-text client must not get through a TLS listener");
    assert_eq!(running.traces.count(), 0);
    running.stop().await;
}

#[test]
fn tls_with_a_missing_certificate_file_is_a_config_error_naming_the_key() {
    let errors = config_errors(
        "protocols:\n  grpc:\n    tls:\n      cert_file: /nonexistent/cert.pem\n      key_file: /nonexistent/key.pem\n",
    );
    let text = errors.to_string();
    assert!(
        text.starts_with(
            "receivers.otlp.protocols.grpc.tls.cert_file: cannot read \"/nonexistent/cert.pem\""
        ),
        "{text}"
    );
}
