//! Helpers shared by the test binaries that need a real collector: the collector's own `otlp`
//! receiver on 127.0.0.1:0 with a recording consumer, an HTTP server taking Zipkin's
//! `POST /api/v2/spans` (and the HTTP/1.1 serving loop under it), deadline-bound waits, and span
//! readers. Each binary uses part of them.

#![allow(dead_code, reason = "each test binary uses a different part of the helpers")]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use otlp::proto::common::v1::any_value;
use otlp::proto::trace::v1::{ResourceSpans, Span};
use otlp::{Batch, Signal};
use pipeline::health::HealthReporter;
use pipeline::telemetry::Telemetry;
use pipeline::{BuildContext, ComponentId, ConsumeError, Consumer, Kind, Lifecycle};
use receivers::OtlpReceiverFactory;
use receivers::otlp::OtlpReceiver;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Every wait of a test gets this long before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(20);

// === the collector ===

/// Records every trace batch it receives.
#[derive(Default)]
pub struct Recorder {
    pub batches: Mutex<Vec<Batch>>,
}

impl Consumer for Recorder {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            self.batches.lock().unwrap().push(batch);
            Ok(())
        })
    }
}

impl Recorder {
    pub fn resource_spans(&self) -> Vec<ResourceSpans> {
        let batches = self.batches.lock().unwrap().clone();
        batches.into_iter().flat_map(|b| b.into_traces().unwrap().resource_spans).collect()
    }

    pub fn spans(&self) -> Vec<Span> {
        let resources = self.resource_spans();
        resources.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans).collect()
    }

    /// Every span with the `service.name` of the resource it came under.
    pub fn spans_by_service(&self) -> Vec<(String, Span)> {
        let mut found = Vec::new();
        for resource_spans in self.resource_spans() {
            let resource = resource_spans.resource.unwrap_or_default();
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| string_value(kv.value.as_ref()))
                .unwrap_or_default()
                .to_owned();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    found.push((service.clone(), span));
                }
            }
        }
        found
    }
}

/// A started `otlp` receiver (gRPC and HTTP on loopback) and what it received.
pub struct Collector {
    receiver: OtlpReceiver,
    pub traces: Arc<Recorder>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl Collector {
    /// The receiver built by its factory, as the collector builds it, and started.
    pub async fn start() -> Collector {
        let yaml =
            "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n  http:\n    endpoint: 127.0.0.1:0\n";
        let raw = config::parse_yaml(yaml, "collector.yaml").unwrap();
        let configured = OtlpReceiverFactory.configure_typed(&raw, "receivers.otlp").unwrap();
        let traces = Arc::new(Recorder::default());
        let consumer: Arc<dyn Consumer> = traces.clone();
        let context = BuildContext {
            id: ComponentId::new("otlp"),
            kind: Kind::Receiver,
            signal: None,
            next: None,
            outputs: vec![(Signal::Traces, consumer)],
            telemetry: Arc::new(Telemetry::new()),
            health: HealthReporter::new(),
        };
        let mut receiver = configured.receiver(&context);
        within("receiver start", receiver.start()).await.unwrap();
        let bound = receiver.bound_addresses();
        let find = |protocol| bound.iter().find(|(p, _)| *p == protocol).unwrap().1;
        let (grpc, http) = (find("grpc"), find("http"));
        Collector { receiver, traces, grpc, http }
    }

    /// Waits until `count` spans arrived, and returns them.
    pub async fn spans(&self, count: usize) -> Vec<Span> {
        eventually(&format!("{count} spans at the collector"), || {
            self.traces.spans().len() >= count
        })
        .await;
        self.traces.spans()
    }

    pub async fn stop(mut self) {
        within("receiver stop", self.receiver.shutdown(Instant::now() + Duration::from_secs(5)))
            .await;
    }
}

// === a Zipkin collector ===

/// One upload to [`ZipkinCollector`].
#[derive(Debug, Clone)]
pub struct ZipkinUpload {
    pub path: String,
    pub content_type: String,
    pub spans: Vec<serde_json::Value>,
}

/// Takes Zipkin v2 JSON uploads on 127.0.0.1:0 and answers 202, as a Zipkin server does.
pub struct ZipkinCollector {
    pub address: SocketAddr,
    pub uploads: Arc<Mutex<Vec<ZipkinUpload>>>,
    server: JoinHandle<()>,
}

impl ZipkinCollector {
    pub async fn start() -> ZipkinCollector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let uploads: Arc<Mutex<Vec<ZipkinUpload>>> = Arc::default();
        let recorded = uploads.clone();
        let server = serve_http1(listener, move |request: Request<Incoming>| {
            let recorded = recorded.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let content_type = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|value| value.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let spans = serde_json::from_slice(&body).unwrap();
                recorded.lock().unwrap().push(ZipkinUpload {
                    path: parts.uri.path().to_owned(),
                    content_type,
                    spans,
                });
                let mut response = Response::new(Full::default());
                *response.status_mut() = http::StatusCode::ACCEPTED;
                response
            }
        });
        ZipkinCollector { address, uploads, server }
    }

    /// Waits until `count` spans arrived, and returns them.
    pub async fn spans(&self, count: usize) -> Vec<serde_json::Value> {
        let received = || -> Vec<serde_json::Value> {
            self.uploads.lock().unwrap().iter().flat_map(|upload| upload.spans.clone()).collect()
        };
        eventually(&format!("{count} Zipkin spans"), || received().len() >= count).await;
        received()
    }
}

impl Drop for ZipkinCollector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// === waiting ===

/// `future`, or a test failure after [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not done within {STEP:?}"),
    }
}

/// Polls `condition` until it holds (never a fixed sleep).
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

// === reading spans ===

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn string_value(value: Option<&otlp::proto::common::v1::AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.as_str()),
        _ => None,
    }
}

/// A string attribute of `span`.
pub fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| string_value(kv.value.as_ref()))
}

/// The span with id `span_id` (hex).
pub fn find<'a>(spans: &'a [Span], span_id: &str) -> &'a Span {
    spans.iter().find(|s| hex(&s.span_id) == span_id).unwrap_or_else(|| {
        let ids: Vec<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
        panic!("no span {span_id} among {ids:?}")
    })
}

// === serving HTTP/1.1 ===

/// Serves HTTP/1.1 on `listener` with `handler` until aborted.
pub fn serve_http1<F, Fut>(listener: TcpListener, handler: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = handler(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let _ = connection.await;
            });
        }
    })
}
