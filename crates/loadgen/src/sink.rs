//! `sink`: a counting OTLP trace sink.
//!
//! It accepts OTLP/gRPC `TraceService/Export` (tonic with a pass-through bytes codec, so the
//! request is never decoded into objects) or OTLP/HTTP `POST /v1/traces` (protobuf, optionally
//! gzip), counts spans with [`otlp::wire::scan`], which walks the wire format without
//! allocating, and replies with the empty export response. A stats endpoint answers
//! `GET /count` with the totals as JSON, for a driver in another process.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use otlp::Signal;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use transport::grpc_codec::PassThroughCodec;

use crate::Protocol;

/// The largest request the sink takes: far above the collector's batches (8192 spans of about
/// 700 bytes is under 6 MiB), so the sink never refuses one.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

#[derive(clap::Args)]
pub struct SinkArgs {
    /// Where to listen, e.g. 127.0.0.1:4317 (port 0 picks a free port).
    #[arg(long)]
    listen: String,
    /// The OTLP transport to serve.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    /// Where to serve `GET /count` (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    stats: String,
}

/// Runs the `sink` subcommand until SIGINT.
pub async fn command(args: SinkArgs) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let sink = Sink::start(&args.listen, args.protocol, counters.clone()).await?;
    let stats = serve_stats(&args.stats, counters.clone()).await?;
    println!("listening {}", sink.address());
    println!("stats {stats}");
    tokio::signal::ctrl_c().await.context("cannot wait for SIGINT")?;
    let counts = counters.counts();
    println!(
        "received {} spans in {} requests ({} invalid)",
        counts.spans, counts.requests, counts.invalid
    );
    Ok(())
}

// === counting ===

/// What the sink has received so far; shared by every connection.
#[derive(Debug, Default)]
pub struct Counters {
    spans: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    invalid: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Spans in valid requests.
    pub spans: u64,
    /// Valid requests.
    pub requests: u64,
    /// Uncompressed protobuf bytes of valid requests.
    pub bytes: u64,
    /// Requests refused as malformed.
    pub invalid: u64,
}

impl Counters {
    pub fn counts(&self) -> Counts {
        Counts {
            spans: self.spans.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
        }
    }

    /// Validates and counts one `ExportTraceServiceRequest` encoding.
    fn record(&self, message: &[u8]) -> Result<(), String> {
        match otlp::wire::scan(Signal::Traces, message) {
            Ok(scan) => {
                self.spans.fetch_add(scan.items, Ordering::Relaxed);
                self.requests.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(message.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                self.invalid.fetch_add(1, Ordering::Relaxed);
                Err(error.to_string())
            }
        }
    }
}

impl Counts {
    /// The `GET /count` body.
    pub fn to_json(self) -> String {
        format!(
            "{{\"spans\":{},\"requests\":{},\"bytes\":{},\"invalid\":{}}}",
            self.spans, self.requests, self.bytes, self.invalid
        )
    }
}

// === the sink ===

/// A running sink; it stops when dropped.
pub struct Sink {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Sink {
    /// Binds `listen` and serves `protocol` there, counting into `counters`.
    pub async fn start(
        listen: &str,
        protocol: Protocol,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Sink> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("sink: cannot listen on {listen}"))?;
        let address = listener.local_addr().context("sink: no local address")?;
        let task = match protocol {
            Protocol::Grpc => tokio::spawn(serve_grpc(listener, counters)),
            Protocol::Http => {
                let handler: Handler =
                    Arc::new(move |request| Box::pin(otlp_http(counters.clone(), request)));
                tokio::spawn(serve_http(listener, handler))
            }
        };
        Ok(Sink { address, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /count` on `listen` in the background; returns the bound address.
pub async fn serve_stats(listen: &str, counters: Arc<Counters>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("stats: cannot listen on {listen}"))?;
    let address = listener.local_addr().context("stats: no local address")?;
    let handler: Handler = Arc::new(move |request| {
        let counts = counters.counts();
        Box::pin(async move {
            if request.method() == http::Method::GET && request.uri().path() == "/count" {
                respond(StatusCode::OK, "application/json", counts.to_json())
            } else {
                respond(StatusCode::NOT_FOUND, "text/plain", "only GET /count is served here\n")
            }
        })
    });
    tokio::spawn(serve_http(listener, handler));
    Ok(address)
}

// === OTLP/HTTP ===

type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// Serves HTTP/1.1 and HTTP/2 on `listener` with `handler`, forever.
async fn serve_http(listener: TcpListener, handler: Handler) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                eprintln!("sink: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let response = handler(request);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// `POST /v1/traces` with a protobuf body, gzip or not.
async fn otlp_http(counters: Arc<Counters>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != Signal::Traces.http_path() {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "only POST /v1/traces is served here\n",
        );
    }
    if request.method() != http::Method::POST {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use POST\n");
    }
    let header =
        |name| request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    if !header(http::header::CONTENT_TYPE).starts_with("application/x-protobuf") {
        return respond(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/plain",
            "only application/x-protobuf\n",
        );
    }
    let gzip = match header(http::header::CONTENT_ENCODING) {
        "" | "identity" => false,
        "gzip" => true,
        _ => return respond(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", "only gzip\n"),
    };
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return respond(StatusCode::BAD_REQUEST, "text/plain", format!("{error}\n")),
    };
    let message = if gzip {
        match transport::gzip::decompress(&body, MAX_MESSAGE_BYTES) {
            Ok(message) => Bytes::from(message),
            Err(error) => {
                return respond(StatusCode::BAD_REQUEST, "text/plain", format!("{error}\n"));
            }
        }
    } else {
        body
    };
    match counters.record(&message) {
        // The empty ExportTraceServiceResponse encodes to zero bytes.
        Ok(()) => respond(StatusCode::OK, "application/x-protobuf", Bytes::new()),
        Err(error) => respond(StatusCode::BAD_REQUEST, "text/plain", format!("{error}\n")),
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

// === OTLP/gRPC ===

async fn serve_grpc(listener: TcpListener, counters: Arc<Counters>) {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = tonic::transport::Server::builder()
        // Large windows: the collector's batches are megabytes, and the sink should cost little.
        .initial_stream_window_size(8 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .add_service(TraceSink(counters))
        .serve_with_incoming(incoming)
        .await;
    if let Err(error) = result {
        eprintln!("sink: grpc server failed: {error}");
    }
}

#[derive(Clone)]
struct TraceSink(Arc<Counters>);

impl NamedService for TraceSink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for TraceSink {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let counters = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != Signal::Traces.grpc_path() {
                let status =
                    Status::unimplemented(format!("unknown method {}", request.uri().path()));
                return Ok(status.into_http());
            }
            let mut grpc = Grpc::new(PassThroughCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(usize::MAX);
            Ok(grpc.unary(Export(counters), request).await)
        })
    }
}

/// The unary handler: count the request's bytes, answer with the empty response.
struct Export(Arc<Counters>);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let result = match self.0.record(request.get_ref()) {
            Ok(()) => Ok(tonic::Response::new(Bytes::new())),
            Err(message) => Err(Status::new(Code::InvalidArgument, message)),
        };
        std::future::ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn counts_valid_requests_and_refuses_malformed_ones() {
        let counters = Counters::default();
        let request = otlp::fixtures::sidecar_traces_seeded(100, 3, 1).encode_to_vec();
        counters.record(&request).unwrap();
        counters.record(&request).unwrap();
        assert!(counters.record(&[0xff, 0xff]).is_err());
        let counts = counters.counts();
        assert_eq!(counts.spans, 200);
        assert_eq!(counts.requests, 2);
        assert_eq!(counts.bytes, 2 * request.len() as u64);
        assert_eq!(counts.invalid, 1);
        assert_eq!(
            counts.to_json(),
            format!("{{\"spans\":200,\"requests\":2,\"bytes\":{},\"invalid\":1}}", counts.bytes)
        );
    }

    #[test]
    fn gunzip_reverses_gzip() {
        let message = otlp::fixtures::sidecar_traces(10, 1).encode_to_vec();
        let compressed = crate::load::gzip(&message).unwrap();
        assert!(compressed.len() < message.len());
        assert_eq!(transport::gzip::decompress(&compressed, MAX_MESSAGE_BYTES).unwrap(), message);
    }
}
