//! The mesh's three apps: B, a hyper HTTP/1.1 app; C, a tonic gRPC server (a unary method
//! through the pass-through codec, no codegen); A, a hyper app that calls B with hyper and C
//! with a tonic client through its sidecar's outbound listener. Each records the heads it saw.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use transport::grpc_codec::PassThroughCodec;

use super::{B_HOST, ECHO_METHOD};
use crate::support::serve_http1;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What app A copies from its inbound request onto its two outbound calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// `traceparent`, `tracestate` and `x-request-id`: an instrumented (or careful) app.
    TraceContext,
    /// Only `x-request-id`: what many apps do.
    RequestIdOnly,
}

impl Forwarding {
    fn headers(self) -> &'static [&'static str] {
        match self {
            Forwarding::TraceContext => &["traceparent", "tracestate", "x-request-id"],
            Forwarding::RequestIdOnly => &["x-request-id"],
        }
    }
}

/// What an app saw: request heads it received, response heads it got from its calls.
#[derive(Default)]
pub struct Seen {
    pub requests: Mutex<Vec<HeaderMap>>,
    pub responses: Mutex<Vec<HeaderMap>>,
}

impl Seen {
    pub fn requests(&self) -> Vec<HeaderMap> {
        self.requests.lock().unwrap().clone()
    }

    pub fn responses(&self) -> Vec<HeaderMap> {
        self.responses.lock().unwrap().clone()
    }
}

/// App B: answers every request with `b <path>`.
pub fn app_b(listener: TcpListener, seen: Arc<Seen>) -> JoinHandle<()> {
    serve_http1(listener, move |request: Request<Incoming>| {
        seen.requests.lock().unwrap().push(request.headers().clone());
        let body = format!("b {}", request.uri().path());
        async move { Response::new(Full::new(Bytes::from(body))) }
    })
}

/// App C's gRPC service, routed by tonic under its name.
#[derive(Clone)]
struct Echo(Arc<Seen>);

impl NamedService for Echo {
    const NAME: &'static str = "meshtrace.test.Echo";
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.0.requests.lock().unwrap().push(request.headers().clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(PassThroughCodec);
            Ok(grpc.unary(EchoCall, request).await)
        })
    }
}

/// The unary method: the message comes back as it came.
struct EchoCall;

impl UnaryService<Bytes> for EchoCall {
    type Response = Bytes;
    type Future = Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

/// App C: a tonic server; stops when the sender is dropped.
pub fn app_c(listener: TcpListener, seen: Arc<Seen>) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let server = Server::builder().add_service(Echo(seen));
    tokio::spawn(server.serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
        let _ = stopped.await;
    }));
    stop
}

/// App A: calls B over HTTP/1.1 and C over gRPC through its sidecar's outbound listener, then
/// answers `b=<status> c=<status>`; 502 with the error when a call fails outright.
pub fn app_a(
    listener: TcpListener,
    outbound: SocketAddr,
    forwarding: Forwarding,
    seen: Arc<Seen>,
) -> JoinHandle<()> {
    serve_http1(listener, move |request: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            seen.requests.lock().unwrap().push(request.headers().clone());
            let mut forwarded = HeaderMap::new();
            for name in forwarding.headers() {
                if let Some(value) = request.headers().get(*name) {
                    forwarded.insert(HeaderName::from_static(name), value.clone());
                }
            }
            let answer = async {
                let b = call_b(outbound, &forwarded, &seen).await?;
                let c = call_c(outbound, &forwarded, &seen).await?;
                Ok::<_, BoxError>(format!("b={} c={c:?}", b.as_u16()))
            };
            match answer.await {
                Ok(text) => Response::new(Full::new(Bytes::from(text))),
                Err(error) => {
                    let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
                    *response.status_mut() = StatusCode::BAD_GATEWAY;
                    response
                }
            }
        }
    })
}

/// `GET /b` to B, origin-form, the service named in `Host`.
async fn call_b(
    outbound: SocketAddr,
    forwarded: &HeaderMap,
    seen: &Seen,
) -> Result<StatusCode, BoxError> {
    let stream = TcpStream::connect(outbound).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::get("/b").header(header::HOST, format!("{B_HOST}:9080"));
    for (name, value) in forwarded {
        request = request.header(name, value);
    }
    let response = sender.send_request(request.body(Empty::<Bytes>::new())?).await?;
    seen.responses.lock().unwrap().push(response.headers().clone());
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// The unary gRPC call to C, `:authority` naming the service.
async fn call_c(
    outbound: SocketAddr,
    forwarded: &HeaderMap,
    seen: &Seen,
) -> Result<tonic::Code, BoxError> {
    let channel = Endpoint::from_shared(format!("http://{outbound}"))?
        .origin(Uri::from_static("http://c.default.svc.cluster.local:9090"))
        .connect()
        .await?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await?;
    let request = tonic::Request::from_parts(
        MetadataMap::from_headers(forwarded.clone()),
        tonic::Extensions::default(),
        Bytes::from_static(b"ping"),
    );
    let path = PathAndQuery::from_static(ECHO_METHOD);
    match client.unary(request, path, PassThroughCodec).await {
        Ok(response) => {
            seen.responses.lock().unwrap().push(response.metadata().clone().into_headers());
            assert_eq!(response.into_inner(), "ping");
            Ok(tonic::Code::Ok)
        }
        Err(status) => Ok(status.code()),
    }
}
