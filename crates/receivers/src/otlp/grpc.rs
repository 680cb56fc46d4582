//! OTLP/gRPC: the three export services on one tonic server.
//!
//! The services use a pass-through codec: the request message arrives as its protobuf bytes and
//! goes to [`Ingest::protobuf`], which validates and counts it without building objects. A
//! successful reply is the empty `Export*ServiceResponse`, whose encoding is zero bytes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use otlp::Signal;
use pipeline::{ConsumeError, RefusalKind};
use prost::Message;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Status};
use transport::grpc_codec::PassThroughCodec;
use transport::status::{RpcStatus, code};

use super::ingest::{Ingest, IngestError};

/// The shared state of the three services.
struct Shared {
    traces: Option<Ingest>,
    logs: Option<Ingest>,
    metrics: Option<Ingest>,
    max_message_bytes: usize,
}

impl Shared {
    fn ingest(&self, signal: Signal) -> Option<&Ingest> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Logs => self.logs.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
        }
    }
}

/// Builds the tonic server for `ingests` and serves `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ingests: Vec<Ingest>,
    max_message_bytes: usize,
    max_concurrent_streams: u32,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let find = |signal| ingests.iter().find(|i| i.signal() == signal).cloned();
    let shared = Arc::new(Shared {
        traces: find(Signal::Traces),
        logs: find(Signal::Logs),
        metrics: find(Signal::Metrics),
        max_message_bytes,
    });
    let mut builder = tonic::transport::Server::builder();
    if max_concurrent_streams > 0 {
        builder = builder.max_concurrent_streams(max_concurrent_streams);
    }
    let router = builder
        .add_service(TraceService(shared.clone()))
        .add_service(LogsService(shared.clone()))
        .add_service(MetricsService(shared));
    match tls {
        None => {
            // Without TCP_NODELAY small replies wait on Nagle's algorithm and the client's delayed
            // ACK: measured, it capped throughput at a third of what the CPU allows.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        }
        Some(config) => {
            let incoming = super::tls_incoming::accept(listener, config);
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        }
    }
}

/// Defines a service type per OTLP service name: tonic routes by name, and all three share one
/// implementation.
macro_rules! otlp_service {
    ($name:ident, $signal:expr, $service_name:literal) => {
        #[derive(Clone)]
        struct $name(Arc<Shared>);

        impl NamedService for $name {
            const NAME: &'static str = $service_name;
        }

        impl tower_service::Service<http::Request<tonic::body::Body>> for $name {
            type Response = http::Response<tonic::body::Body>;
            type Error = Infallible;
            type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
                Box::pin(handle(self.0.clone(), $signal, request))
            }
        }
    };
}

otlp_service!(TraceService, Signal::Traces, "opentelemetry.proto.collector.trace.v1.TraceService");
otlp_service!(LogsService, Signal::Logs, "opentelemetry.proto.collector.logs.v1.LogsService");
otlp_service!(
    MetricsService,
    Signal::Metrics,
    "opentelemetry.proto.collector.metrics.v1.MetricsService"
);

async fn handle(
    shared: Arc<Shared>,
    signal: Signal,
    request: http::Request<tonic::body::Body>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    if request.uri().path() != signal.grpc_path() {
        return Ok(
            Status::unimplemented(format!("unknown method {}", request.uri().path())).into_http()
        );
    }
    let Some(ingest) = shared.ingest(signal).cloned() else {
        // The receiver is not in any pipeline of this signal: say so, as the collector does.
        return Ok(
            Status::unimplemented(format!("this receiver has no {signal} pipeline")).into_http()
        );
    };
    let mut grpc = Grpc::new(PassThroughCodec)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(shared.max_message_bytes)
        .max_encoding_message_size(usize::MAX);
    let response = grpc.unary(Export(ingest), request).await;
    Ok(oversized_is_resource_exhausted(response))
}

/// tonic reports a message over the size limit as OUT_OF_RANGE; OTLP (and the collector) answer
/// RESOURCE_EXHAUSTED, which clients know not to retry unchanged.
fn oversized_is_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|value| Code::from_bytes(value.as_bytes()) == Code::OutOfRange);
    if out_of_range {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from(code::RESOURCE_EXHAUSTED));
    }
    response
}

/// The unary handler: bytes in, (empty) response bytes out.
struct Export(Ingest);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<Bytes>, Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            match ingest.protobuf(request.into_inner()).await {
                Ok(()) => Ok(tonic::Response::new(Bytes::new())),
                Err(error) => Err(status_for(error)),
            }
        })
    }
}

/// The gRPC status OTLP prescribes for each refusal; retryable ones carry a `RetryInfo`.
fn status_for(error: IngestError) -> Status {
    match error {
        IngestError::Invalid(message) => Status::invalid_argument(message),
        IngestError::Refused(ConsumeError::Permanent { message, .. }) => {
            Status::invalid_argument(message)
        }
        IngestError::Refused(ConsumeError::Retryable { kind, message, retry_after }) => {
            let code = match kind {
                RefusalKind::ResourceExhausted => Code::ResourceExhausted,
                RefusalKind::Unavailable => Code::Unavailable,
            };
            let details = RpcStatus::new(code as i32, message.clone(), retry_after).encode_to_vec();
            Status::with_details(code, message, Bytes::from(details))
        }
    }
}
