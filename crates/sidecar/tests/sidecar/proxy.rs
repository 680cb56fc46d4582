//! The sidecar proxy end to end: real sockets on 127.0.0.1, real hyper servers as apps, real
//! hyper clients (or raw bytes where the test needs exact control), and a recording observer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail the test loudly"
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sidecar::admin::AdminState;
use sidecar::config::SidecarConfig;
use sidecar::observe::{
    Completion, Direction, Observation, Observer, RequestView, ResponseView, Tunnel,
};
use sidecar::proxy::{ProxyOptions, RunningSidecar, Sidecar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::within;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type AppBody = UnsyncBoxBody<Bytes, BoxError>;

const DEADLINE: Duration = Duration::from_secs(20);

mod idle;
mod tunnels;

// === the recording observer ===

#[derive(Debug, Clone, Default)]
struct Record {
    direction: Option<Direction>,
    cluster: String,
    path: String,
    status: Option<u16>,
    upstream: Option<SocketAddr>,
    flags: Option<String>,
    request_bytes: u64,
    response_bytes: u64,
    request_head_bytes: u64,
    response_head_bytes: u64,
    grpc_status: Option<String>,
}

#[derive(Default)]
struct Recorder {
    exchanges: Mutex<Vec<Arc<Mutex<Record>>>>,
    tunnels: Mutex<Vec<TunnelEvent>>,
}

impl Recorder {
    fn records(&self) -> Vec<Record> {
        let exchanges = self.exchanges.lock().unwrap();
        exchanges.iter().map(|r| r.lock().unwrap().clone()).collect()
    }

    fn find(&self, path: &str) -> Vec<Record> {
        self.records().into_iter().filter(|r| r.path == path).collect()
    }

    /// The first completed exchange that `matches`, waiting for it.
    async fn completed_where(&self, matches: impl Fn(&Record) -> bool) -> Record {
        eventually(|| self.records().into_iter().find(|r| r.flags.is_some() && matches(r))).await
    }

    /// The one completed exchange for `path`, waiting for it to complete.
    async fn completed(&self, path: &str) -> Record {
        eventually(|| {
            let found = self.find(path);
            (found.len() == 1 && found[0].flags.is_some()).then(|| found[0].clone())
        })
        .await
    }
}

struct Recording(Arc<Recorder>);

impl Observer for Recording {
    fn request(&self, request: &mut RequestView<'_>) -> Box<dyn Observation> {
        let direction = match request.direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        };
        // The observer may change the forwarded headers (trace propagation does).
        request.head.headers.insert("x-observed", HeaderValue::from_static(direction));
        let record = Record {
            direction: Some(request.direction),
            cluster: request.upstream_cluster.to_owned(),
            path: request.head.uri.path().to_owned(),
            request_head_bytes: request.head_bytes,
            ..Record::default()
        };
        let record = Arc::new(Mutex::new(record));
        self.0.exchanges.lock().unwrap().push(record.clone());
        Box::new(Watching(record))
    }

    fn tunnel_opened(&self, tunnel: &Tunnel<'_>) {
        let event = TunnelEvent::of(tunnel, "opened", 0, 0);
        self.0.tunnels.lock().unwrap().push(event);
    }

    fn tunnel_bytes(&self, tunnel: &Tunnel<'_>, sent: u64, received: u64) {
        let event = TunnelEvent::of(tunnel, "bytes", sent, received);
        self.0.tunnels.lock().unwrap().push(event);
    }

    fn tunnel_closed(&self, tunnel: &Tunnel<'_>) {
        let event = TunnelEvent::of(tunnel, "closed", 0, 0);
        self.0.tunnels.lock().unwrap().push(event);
    }
}

/// A tunnel reported open or closed: direction, cluster, target, event, bytes sent and
/// received.
#[derive(Debug, Clone, PartialEq)]
struct TunnelEvent {
    direction: Direction,
    cluster: String,
    authority: String,
    event: &'static str,
    sent: u64,
    received: u64,
}

impl TunnelEvent {
    fn of(tunnel: &Tunnel<'_>, event: &'static str, sent: u64, received: u64) -> TunnelEvent {
        TunnelEvent {
            direction: tunnel.direction,
            cluster: tunnel.upstream_cluster.to_owned(),
            authority: tunnel.authority.to_owned(),
            event,
            sent,
            received,
        }
    }
}

struct Watching(Arc<Mutex<Record>>);

impl Observation for Watching {
    fn response(&mut self, response: &mut ResponseView<'_>) {
        // The observer may change the response head sent downstream (request-id echo, peer
        // metadata exchange), local replies included.
        response.headers.insert("x-observed-response", HeaderValue::from_static("1"));
        let mut record = self.0.lock().unwrap();
        record.status = Some(response.status.as_u16());
        record.upstream = response.upstream;
        if let Some(status) = response.headers.get("grpc-status") {
            record.grpc_status = Some(status.to_str().unwrap().to_owned());
        }
    }

    fn complete(self: Box<Self>, completion: &Completion<'_>) {
        let mut record = self.0.lock().unwrap();
        record.flags = Some(completion.response_flags.to_owned());
        record.request_bytes = completion.request_body_bytes;
        record.response_bytes = completion.response_body_bytes;
        record.response_head_bytes = completion.response_head_bytes;
        if let Some(status) = completion.trailers.and_then(|t| t.get("grpc-status")) {
            record.grpc_status = Some(status.to_str().unwrap().to_owned());
        }
    }
}

/// Polls `check` until it returns `Some`, failing after [`DEADLINE`].
async fn eventually<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// === apps ===

/// Serves `handler` on 127.0.0.1:0 (HTTP/1.1 and HTTP/2, upgrades on); returns the address.
async fn app<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<AppBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = handler(request, peer);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
            });
        }
    });
    address
}

/// Serves each connection on 127.0.0.1:0 with `serve`, bytes in and out (for upstreams that
/// misbehave as no HTTP library would); the connection closes when `serve` returns.
async fn raw_app<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    address
}

fn full(body: impl Into<Bytes>) -> AppBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed_unsync()
}

/// Answers with what it received: `METHOD URI VERSION` then one `name: value` line per
/// header; `x-app-peer` says which connection carried the request. `/hop` also answers with
/// hop-by-hop headers.
async fn echo(request: Request<Incoming>, peer: SocketAddr) -> Response<AppBody> {
    let mut text = format!("{} {} {:?}\n", request.method(), request.uri(), request.version());
    for (name, value) in request.headers() {
        text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
    }
    let mut response = Response::new(full(text));
    response.headers_mut().insert("x-app-peer", peer.to_string().parse().unwrap());
    if request.uri().path() == "/hop" {
        let headers = response.headers_mut();
        headers.insert("connection", HeaderValue::from_static("x-resp-hop"));
        headers.insert("x-resp-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-resp-end", HeaderValue::from_static("kept"));
    }
    response
}

/// The value of header `name` as the echo app saw it.
fn seen(echo: &str, name: &str) -> Option<String> {
    echo.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(": ")?;
        (key == name).then(|| value.to_owned())
    })
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// === the sidecar under test ===

struct Harness {
    sidecar: RunningSidecar,
    recorder: Arc<Recorder>,
}

fn config(app: Option<SocketAddr>, services: &[(&str, SocketAddr)], extra: &str) -> SidecarConfig {
    let mut yaml = String::from(
        "kind: Sidecar\nmetadata: {name: productpage-v1, namespace: default, labels: {app: productpage}}\nspec:\n  outbound: {listen: 127.0.0.1:0}\n  admin: {listen: 127.0.0.1:0}\n",
    );
    if let Some(app) = app {
        yaml.push_str(&format!("  inbound: {{listen: 127.0.0.1:0, app: {app}}}\n"));
    }
    if !services.is_empty() {
        yaml.push_str("  services:\n");
        for (authority, target) in services {
            yaml.push_str(&format!("    \"{authority}\": \"{target}\"\n"));
        }
    }
    yaml.push_str(extra);
    sidecar::config::load(&yaml, "test").unwrap_or_else(|errors| panic!("{errors}"))
}

async fn start(config: SidecarConfig, options: ProxyOptions, admin: AdminState) -> Harness {
    let recorder = Arc::new(Recorder::default());
    let observer = Arc::new(Recording(recorder.clone()));
    let sidecar = Sidecar::start_with(&config, observer, admin, options).await.unwrap();
    Harness { sidecar, recorder }
}

async fn start_default(config: SidecarConfig) -> Harness {
    start(config, ProxyOptions::default(), AdminState::new()).await
}

// === clients ===

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn h1(address: SocketAddr) -> H1 {
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn h2<B>(address: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

fn get(uri: &str, host: &str) -> Request<Full<Bytes>> {
    Request::get(uri).header("host", host).body(Full::new(Bytes::new())).unwrap()
}

/// Sends `request`; returns the response head and its whole body as text.
async fn send(sender: &mut H1, request: Request<Full<Bytes>>) -> (http::response::Parts, String) {
    let response = sender.send_request(request).await.unwrap();
    let (head, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// Writes `bytes` on a fresh connection and reads until the server closes it.
async fn raw(address: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads a response head byte by byte (so nothing after it is consumed).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(read, 1, "closed before the end of the head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

// === forwarding ===

#[tokio::test]
async fn inbound_forwards_to_the_app() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let inbound = harness.sidecar.inbound_addr().unwrap();
    let mut client = h1(inbound).await;
    let request = Request::post("/inbound?q=1")
        .header("host", "productpage:9080")
        .header("x-forwarded-for", "10.1.2.3")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let (head, body) = send(&mut client, request).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(body.starts_with("POST /inbound?q=1 HTTP/1.1\n"), "{body}");
    assert_eq!(seen(&body, "host").as_deref(), Some("productpage:9080"));
    assert_eq!(seen(&body, "x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen(&body, "x-forwarded-for").as_deref(), Some("10.1.2.3"));
    // The observer's header changes reached the app, and the client.
    assert_eq!(seen(&body, "x-observed").as_deref(), Some("inbound"));
    assert_eq!(head.headers["x-observed-response"], "1");

    let record = harness.recorder.completed("/inbound").await;
    assert_eq!(record.direction, Some(Direction::Inbound));
    assert_eq!(record.cluster, format!("inbound|{}||", app.port()));
    assert_eq!(record.status, Some(200));
    assert_eq!(record.upstream, Some(app));
    assert_eq!(record.flags.as_deref(), Some("-"));
    assert_eq!(record.request_bytes, 5);
    assert_eq!(record.response_bytes, body.len() as u64);
}

#[tokio::test]
async fn outbound_routes_through_the_services_table() {
    let app = app(echo).await;
    let harness =
        start_default(config(None, &[("reviews.default.svc.cluster.local:9080", app)], "")).await;
    let outbound = harness.sidecar.outbound_addr();
    let mut client = h1(outbound).await;
    let (head, body) = send(&mut client, get("/table", "reviews:9080")).await;
    assert_eq!(head.status, StatusCode::OK, "{body}");
    assert_eq!(seen(&body, "host").as_deref(), Some("reviews:9080"));
    assert_eq!(seen(&body, "x-observed").as_deref(), Some("outbound"));
    let record = harness.recorder.completed("/table").await;
    assert_eq!(record.direction, Some(Direction::Outbound));
    assert_eq!(record.cluster, "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!(record.flags.as_deref(), Some("-"));
}

#[tokio::test]
async fn outbound_passes_unknown_hosts_through() {
    let app = app(echo).await;
    let harness = start_default(config(None, &[], "")).await;
    let mut client = h1(harness.sidecar.outbound_addr()).await;
    let host = format!("localhost:{}", app.port());
    let (head, body) = send(&mut client, get("/passthrough", &host)).await;
    assert_eq!(head.status, StatusCode::OK, "{body}");
    assert_eq!(seen(&body, "host"), Some(host));
    let record = harness.recorder.completed("/passthrough").await;
    assert_eq!(record.cluster, "PassthroughCluster");
}

#[tokio::test]
async fn outbound_takes_absolute_form_requests_like_an_http_proxy() {
    let app = app(echo).await;
    let harness =
        start_default(config(None, &[("reviews.default.svc.cluster.local:9080", app)], "")).await;
    let request = "GET http://reviews.default.svc.cluster.local:9080/absolute?x=1 HTTP/1.1\r\nHost: stale.example\r\nProxy-Connection: keep-alive\r\nConnection: close\r\n\r\n";
    let answer = raw(harness.sidecar.outbound_addr(), request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.starts_with("GET /absolute?x=1 HTTP/1.1\n"), "{body}");
    assert_eq!(seen(body, "host").as_deref(), Some("reviews.default.svc.cluster.local:9080"));
    assert_eq!(seen(body, "proxy-connection"), None);
    let record = harness.recorder.completed("/absolute").await;
    assert_eq!(record.cluster, "outbound|9080||reviews.default.svc.cluster.local");
}

#[tokio::test]
async fn head_sizes_are_the_heads_on_the_downstream_connection() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let mut client = TcpStream::connect(harness.sidecar.inbound_addr().unwrap()).await.unwrap();
    let request = "GET /sized?q=1 HTTP/1.1\r\nHost: app\r\nUser-Agent: curl/8\r\nConnection: keep-alive\r\n\r\n";
    client.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut client).await;
    let record = harness.recorder.completed("/sized").await;
    // As the caller wrote it, hop-by-hop headers included; only the names' case differs.
    assert_eq!(record.request_head_bytes, request.len() as u64);
    // As the caller got it, the observer's own header included (the app's `date` and
    // `content-length` are forwarded, so hyper adds none).
    assert!(head.contains("x-observed-response: 1\r\n"), "{head}");
    assert_eq!(record.response_head_bytes, head.len() as u64, "{head}");
}

#[tokio::test]
async fn keep_alive_reuses_both_connections() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let mut client = h1(harness.sidecar.inbound_addr().unwrap()).await;
    let (first, _) = send(&mut client, get("/first", "app")).await;
    let (second, _) = send(&mut client, get("/second", "app")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    // The same upstream connection carried both requests (pooled).
    assert_eq!(first.headers["x-app-peer"], second.headers["x-app-peer"]);
    harness.recorder.completed("/second").await;
    let tcp = harness.recorder.tunnels.lock().unwrap().clone();
    assert!(tcp.is_empty(), "HTTP connections are HTTP traffic, not TCP, as in Istio: {tcp:?}");
}

/// Echoes like [`echo`], after `/slow` waited 300 ms.
async fn slow_echo(request: Request<Incoming>, peer: SocketAddr) -> Response<AppBody> {
    if request.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    echo(request, peer).await
}

#[tokio::test]
async fn concurrent_requests_get_their_own_upstream_connections_which_are_then_reused() {
    let app = app(slow_echo).await;
    let options = ProxyOptions { workers: 1, ..ProxyOptions::default() };
    let harness = start(config(Some(app), &[], ""), options, AdminState::new()).await;
    let inbound = harness.sidecar.inbound_addr().unwrap();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(h1(inbound).await);
    }
    // Three requests in flight at once: a busy HTTP/1 connection takes no second request.
    let answers = futures_util::future::join_all(
        clients.iter_mut().map(|client| send(client, get("/slow", "app"))),
    )
    .await;
    let mut peers: Vec<String> = answers
        .iter()
        .map(|(head, _)| head.headers["x-app-peer"].to_str().unwrap().to_owned())
        .collect();
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), 3, "one upstream connection per request in flight: {peers:?}");
    // Afterwards, requests one at a time reuse those connections; no new one is opened.
    for client in &mut clients {
        for _ in 0..3 {
            let (head, _) = send(client, get("/fast", "app")).await;
            assert_eq!(head.status, StatusCode::OK);
            let peer = head.headers["x-app-peer"].to_str().unwrap();
            assert!(peers.iter().any(|known| known == peer), "new connection {peer}");
        }
    }
}

/// GETs every URI of `uris` on its own HTTP/2 stream, all at once; the responses in order.
async fn h2_all_at_once(
    client: &hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    uris: impl Iterator<Item = String>,
) -> Vec<Response<Incoming>> {
    futures_util::future::join_all(uris.map(|uri| {
        let mut client = client.clone();
        async move {
            let request = Request::get(uri).body(Empty::new()).unwrap();
            client.send_request(request).await.unwrap()
        }
    }))
    .await
}

#[tokio::test]
async fn concurrent_first_http2_requests_share_one_upstream_connection() {
    let app = app(slow_echo).await;
    let options = ProxyOptions { workers: 1, ..ProxyOptions::default() };
    let services = [("echo.default.svc.cluster.local:50051", app)];
    let harness = start(config(None, &services, ""), options, AdminState::new()).await;
    let client = h2::<Empty<Bytes>>(harness.sidecar.outbound_addr()).await;
    // Five streams at once, before any upstream connection exists: as Envoy queues them on the
    // one connection being opened, they all travel on it.
    let answers =
        h2_all_at_once(&client, (0..5).map(|_| "http://echo:50051/slow".to_owned())).await;
    let mut peers: Vec<String> = answers
        .iter()
        .map(|response| {
            assert_eq!(response.status(), StatusCode::OK);
            response.headers()["x-app-peer"].to_str().unwrap().to_owned()
        })
        .collect();
    peers.dedup();
    assert_eq!(peers.len(), 1, "one upstream connection: {peers:?}");
}

#[tokio::test]
async fn concurrent_first_http2_requests_to_a_refusing_upstream_all_fail_uf() {
    let dead = closed_port().await;
    let options = ProxyOptions { workers: 1, ..ProxyOptions::default() };
    let services = [("echo.default.svc.cluster.local:50051", dead)];
    let harness = start(config(None, &services, ""), options, AdminState::new()).await;
    let client = h2::<Empty<Bytes>>(harness.sidecar.outbound_addr()).await;
    let uris = (0..5).map(|i| format!("http://echo:50051/refused/{i}"));
    let answers = h2_all_at_once(&client, uris).await;
    let statuses: Vec<StatusCode> = answers.iter().map(Response::status).collect();
    assert_eq!(statuses, [StatusCode::SERVICE_UNAVAILABLE; 5]);
    // The one connect (retried, as outbound connects are) failed them all alike.
    for i in 0..5 {
        let record = harness.recorder.completed(&format!("/refused/{i}")).await;
        assert_eq!(record.flags.as_deref(), Some("UF,URX"), "request {i}");
    }
    // The pool forgot the failure: a later request tries again (and fails again, now alone).
    let mut client = client.clone();
    let request = Request::get("http://echo:50051/refused/later").body(Empty::new()).unwrap();
    assert_eq!(
        client.send_request(request).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let app = app(echo).await;
    let idle = Duration::from_millis(200);
    let options = ProxyOptions { workers: 1, pool_idle_timeout: idle, ..ProxyOptions::default() };
    let harness = start(config(Some(app), &[], ""), options, AdminState::new()).await;
    let mut client = h1(harness.sidecar.inbound_addr().unwrap()).await;
    let (first, _) = send(&mut client, get("/first", "app")).await;
    let (second, _) = send(&mut client, get("/second", "app")).await;
    assert_eq!(first.headers["x-app-peer"], second.headers["x-app-peer"], "reused while fresh");
    // Idle for more than 1.5 timeouts (the sweep runs every half timeout): closed, so the
    // next request comes on a new connection.
    tokio::time::sleep(idle * 3).await;
    let (third, _) = send(&mut client, get("/third", "app")).await;
    assert_eq!(third.status, StatusCode::OK);
    assert_ne!(second.headers["x-app-peer"], third.headers["x-app-peer"]);
}

#[tokio::test]
async fn upstreams_that_close_after_each_response_never_cost_a_request() {
    // An app that answers one request per connection and closes it without saying so
    // (no `Connection: close`): each pooled connection dies just after its response, so the
    // pool must notice, or send the request again when the connection hands it back.
    let closing = raw_app(|mut stream| async move {
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => request.extend_from_slice(&buffer[..read]),
            }
        }
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let _ = stream.write_all(answer).await;
    })
    .await;
    let options = ProxyOptions { workers: 1, ..ProxyOptions::default() };
    let harness = start(config(Some(closing), &[], ""), options, AdminState::new()).await;
    let mut client = h1(harness.sidecar.inbound_addr().unwrap()).await;
    for round in 0..30 {
        let (head, body) = send(&mut client, get(&format!("/{round}"), "app")).await;
        assert_eq!((head.status, body.as_str()), (StatusCode::OK, "ok"), "request {round}");
        let record = harness.recorder.completed(&format!("/{round}")).await;
        assert_eq!(record.flags.as_deref(), Some("-"));
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_end_to_end_headers_kept() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let mut client = h1(harness.sidecar.inbound_addr().unwrap()).await;
    let request = Request::get("/hop")
        .header("host", "app")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-end", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (head, body) = send(&mut client, request).await;
    for gone in ["x-hop", "keep-alive", "proxy-authorization", "connection"] {
        assert_eq!(seen(&body, gone), None, "{gone} reached the app:\n{body}");
    }
    assert_eq!(seen(&body, "x-end").as_deref(), Some("kept"));
    assert_eq!(seen(&body, "te").as_deref(), Some("trailers"));
    assert!(!head.headers.contains_key("x-resp-hop"));
    assert!(!head.headers.contains_key("keep-alive"));
    assert_eq!(head.headers["x-resp-end"], "kept");
}

#[tokio::test]
async fn http2_prior_knowledge_end_to_end() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let mut client = h2::<Empty<Bytes>>(harness.sidecar.inbound_addr().unwrap()).await;
    let request = Request::get("http://productpage:9080/h2").body(Empty::new()).unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("GET http://productpage:9080/h2 HTTP/2.0\n"), "{body}");
    let record = harness.recorder.completed("/h2").await;
    assert_eq!(record.flags.as_deref(), Some("-"));
}

/// A request body fed from a channel, so the test decides when each message is sent.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|message| message.map(|data| Ok(Frame::data(data))))
    }
}

/// Echoes the request body frame by frame, then `grpc-status: 0` in trailers.
struct GrpcEcho {
    request: Incoming,
    done: bool,
}

impl Body for GrpcEcho {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.request).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::new())))),
            },
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => {
                self.done = true;
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                trailers.insert("grpc-message", HeaderValue::from_static("ok"));
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn grpc_streams_both_ways_and_trailers_arrive() {
    let app = app(|request: Request<Incoming>, _| async move {
        let body = GrpcEcho { request: request.into_body(), done: false };
        let mut response = Response::new(body.boxed_unsync());
        response.headers_mut().insert("content-type", HeaderValue::from_static("application/grpc"));
        response
    })
    .await;
    let harness =
        start_default(config(None, &[("echo.default.svc.cluster.local:50051", app)], "")).await;
    let mut client = h2::<ChannelBody>(harness.sidecar.outbound_addr()).await;
    let (messages, receiver) = tokio::sync::mpsc::channel(4);
    let request = Request::post("http://echo:50051/echo.Echo/Stream")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(ChannelBody(receiver))
        .unwrap();
    messages.send(Bytes::from_static(b"one")).await.unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // Each message comes back before the next is sent: nothing is buffered on the way.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "one");
    messages.send(Bytes::from_static(b"two")).await.unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "two");
    drop(messages);
    let trailers = loop {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(trailers) = frame.into_trailers() {
            break trailers;
        }
    };
    assert_eq!(trailers["grpc-status"], "0");
    let record = harness.recorder.completed("/echo.Echo/Stream").await;
    assert_eq!(record.grpc_status.as_deref(), Some("0"));
    assert_eq!(record.flags.as_deref(), Some("-"));
    assert_eq!((record.request_bytes, record.response_bytes), (6, 6));
}

#[tokio::test]
async fn head_responses_keep_their_content_length() {
    let app = app(|_request, _| async { Response::new(full("0123456789")) }).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let mut client = h1(harness.sidecar.inbound_addr().unwrap()).await;
    let request =
        Request::head("/head").header("host", "app").body(Full::new(Bytes::new())).unwrap();
    let (head, body) = send(&mut client, request).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(head.headers["content-length"], "10");
    let record = harness.recorder.completed("/head").await;
    assert_eq!((record.flags.as_deref(), record.response_bytes), (Some("-"), 0));
}

// === bad input and failures ===

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let big = "a".repeat(70 * 1024);
    let request = format!("GET /big HTTP/1.1\r\nHost: app\r\nx-big: {big}\r\n\r\n");
    let answer = raw(harness.sidecar.inbound_addr().unwrap(), request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(harness.recorder.find("/big").is_empty(), "never forwarded");
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let inbound = harness.sidecar.inbound_addr().unwrap();
    let answer = raw(inbound, b"GET / HTTP/1.1\r\nHost: app\r\nbad header\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let (head, _) = send(&mut h1(inbound).await, get("/after", "app")).await;
    assert_eq!(head.status, StatusCode::OK);
}

#[tokio::test]
async fn slowloris_clients_are_cut_off_while_others_are_served() {
    let app = app(echo).await;
    let options =
        ProxyOptions { header_read_timeout: Duration::from_millis(300), ..ProxyOptions::default() };
    let harness = start(config(Some(app), &[], ""), options, AdminState::new()).await;
    let inbound = harness.sidecar.inbound_addr().unwrap();
    let mut slow_h1 = TcpStream::connect(inbound).await.unwrap();
    slow_h1.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n").await.unwrap();
    let mut slow_h2 = TcpStream::connect(inbound).await.unwrap();
    slow_h2.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();

    let (head, _) = send(&mut h1(inbound).await, get("/meanwhile", "app")).await;
    assert_eq!(head.status, StatusCode::OK);

    for stream in [&mut slow_h1, &mut slow_h2] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the slow client was not cut off");
    }
}

#[tokio::test]
async fn refused_upstreams_get_503_with_envoy_flags() {
    let dead = closed_port().await;
    let harness =
        start_default(config(Some(dead), &[("reviews.default.svc.cluster.local:9080", dead)], ""))
            .await;
    let (head, body) =
        send(&mut h1(harness.sidecar.inbound_addr().unwrap()).await, get("/refused-in", "app"))
            .await;
    assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    );
    assert_eq!(head.headers["x-observed-response"], "1", "observers see local replies too");
    let record = harness.recorder.completed("/refused-in").await;
    assert_eq!((record.status, record.flags.as_deref()), (Some(503), Some("UF")));

    // Outbound requests are retried first, as under Istio's default retry policy.
    let (head, body) =
        send(&mut h1(harness.sidecar.outbound_addr()).await, get("/refused-out", "reviews:9080"))
            .await;
    assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("retried and the latest reset reason: connection failure"), "{body}");
    let record = harness.recorder.completed("/refused-out").await;
    assert_eq!(record.flags.as_deref(), Some("UF,URX"));
}

#[tokio::test]
async fn refused_grpc_upstreams_get_a_grpc_status() {
    let dead = closed_port().await;
    let harness = start_default(config(Some(dead), &[], "")).await;
    let mut client = h2::<Empty<Bytes>>(harness.sidecar.inbound_addr().unwrap()).await;
    let request = Request::post("http://app/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .body(Empty::new())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "14");
    let record = harness.recorder.completed("/pkg.Service/Method").await;
    assert_eq!(record.grpc_status.as_deref(), Some("14"));
    assert_eq!(record.flags.as_deref(), Some("UF"));
}

#[tokio::test]
async fn upstream_resets_get_503_uc() {
    let resetting = raw_app(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
    })
    .await;
    let harness = start_default(config(Some(resetting), &[], "")).await;
    let (head, body) =
        send(&mut h1(harness.sidecar.inbound_addr().unwrap()).await, get("/reset", "app")).await;
    assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.ends_with("reset reason: connection termination"), "{body}");
    let record = harness.recorder.completed("/reset").await;
    assert_eq!(record.flags.as_deref(), Some("UC"));
    assert_eq!(record.upstream, Some(resetting));
}

#[tokio::test]
async fn silent_upstreams_time_out_with_504() {
    // Holds each connection open without ever answering.
    let silent = raw_app(|stream| async move {
        let _held = stream;
        std::future::pending::<()>().await;
    })
    .await;
    let options = ProxyOptions {
        upstream_timeout: Some(Duration::from_millis(200)),
        ..ProxyOptions::default()
    };
    let harness = start(config(Some(silent), &[], ""), options, AdminState::new()).await;
    let (head, body) =
        send(&mut h1(harness.sidecar.inbound_addr().unwrap()).await, get("/slow", "app")).await;
    assert_eq!(head.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "upstream request timeout");
    let record = harness.recorder.completed("/slow").await;
    assert_eq!(record.flags.as_deref(), Some("UT"));
}

#[tokio::test]
async fn client_hang_ups_complete_with_dc() {
    let app = app(|_request, _| std::future::pending::<Response<AppBody>>()).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let mut client = h2::<Empty<Bytes>>(harness.sidecar.inbound_addr().unwrap()).await;
    let request = Request::get("http://app/hang-up").body(Empty::new()).unwrap();
    let pending = client.send_request(request);
    // Wait until the sidecar has the request, then give up on it (HTTP/2 RST_STREAM).
    let mut pending = Box::pin(pending);
    let wait = async {
        eventually(|| (!harness.recorder.find("/hang-up").is_empty()).then_some(())).await;
    };
    tokio::select! {
        _ = &mut pending => panic!("the app never answers"),
        () = wait => {}
    }
    drop(pending);
    let record = harness.recorder.completed("/hang-up").await;
    assert_eq!(record.flags.as_deref(), Some("DC"));
    assert_eq!(record.status, None);
}

/// An observer whose completions wait for the test's word: spans and metrics are finished after
/// the response has left, so the client gets its answer first.
struct Holding {
    release: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
    completed: Arc<Mutex<Vec<String>>>,
}

struct Held(Holding, String);

impl Observer for Holding {
    fn request(&self, request: &mut RequestView<'_>) -> Box<dyn Observation> {
        let holding = Holding { release: self.release.clone(), completed: self.completed.clone() };
        Box::new(Held(holding, request.head.uri.path().to_owned()))
    }
}

impl Observation for Held {
    fn response(&mut self, _response: &mut ResponseView<'_>) {}

    fn complete(self: Box<Self>, _completion: &Completion<'_>) {
        let Held(holding, path) = *self;
        // Blocks the worker: before the flush, the client would wait as long.
        let released = holding.release.lock().unwrap().recv_timeout(DEADLINE * 2).is_ok();
        holding.completed.lock().unwrap().push(format!("{path} released={released}"));
    }
}

#[tokio::test]
async fn responses_leave_before_their_exchange_completes() {
    let app = app(echo).await;
    let (release, released) = std::sync::mpsc::channel();
    let completed = Arc::new(Mutex::new(Vec::new()));
    let observer =
        Arc::new(Holding { release: Arc::new(Mutex::new(released)), completed: completed.clone() });
    let config = config(Some(app), &[], "");
    let sidecar =
        Sidecar::start_with(&config, observer, AdminState::new(), ProxyOptions::default())
            .await
            .unwrap();
    let mut client = h1(sidecar.inbound_addr().unwrap()).await;
    let answered = tokio::time::timeout(DEADLINE, send(&mut client, get("/held", "app"))).await;
    let (head, body) = answered.expect("the response waited for the observer's completion");
    assert_eq!(head.status, StatusCode::OK);
    assert!(body.starts_with("GET /held HTTP/1.1\n"), "{body}");
    assert!(completed.lock().unwrap().is_empty(), "completed before its release");
    release.send(()).unwrap();
    let done = eventually(|| {
        let completed = completed.lock().unwrap();
        (!completed.is_empty()).then(|| completed.clone())
    })
    .await;
    assert_eq!(done, ["/held released=true"]);
}

#[tokio::test]
async fn outbound_requests_naming_nothing_get_404_nr() {
    let harness = start_default(config(None, &[], "")).await;
    let answer = raw(harness.sidecar.outbound_addr(), b"GET /nowhere HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 404 "), "{answer}");
    let record = harness.recorder.completed("/nowhere").await;
    assert_eq!((record.cluster.as_str(), record.flags.as_deref()), ("-", Some("NR")));
}

#[tokio::test]
async fn requests_to_the_outbound_listener_itself_do_not_loop() {
    let harness = start_default(config(None, &[], "")).await;
    let outbound = harness.sidecar.outbound_addr();
    let (head, _) =
        send(&mut h1(outbound).await, get("/loop", &format!("localhost:{}", outbound.port())))
            .await;
    assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);
    let records = harness.recorder.find("/loop");
    assert_eq!(records.len(), 1, "forwarded to itself: {records:?}");
}

// === admin and lifecycle ===

const MESH_WITH_SECRET: &str = "---\nmeshConfig:\n  defaultProviders: {tracing: [otel]}\n  extensionProviders:\n  - {name: otel, opentelemetry: {service: collector.observability.svc.cluster.local, port: 4318, http: {path: /v1/traces, headers: [{name: x-token, value: s3cret}]}}}\n";

#[tokio::test]
async fn admin_serves_ready_stats_and_config_dump() {
    let mut registry = prometheus_client::registry::Registry::default();
    let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    registry.register("meshtrace_test", "A test counter", counter.clone());
    counter.inc();
    let admin = AdminState::with_registry(Arc::new(Mutex::new(registry)));
    let harness =
        start(config(None, &[], MESH_WITH_SECRET), ProxyOptions::default(), admin.clone()).await;
    assert!(admin.is_ready());
    let address = harness.sidecar.admin_addr();
    let mut client = h1(address).await;

    let (head, body) = send(&mut client, get("/ready", "admin")).await;
    assert_eq!((head.status, body.as_str()), (StatusCode::OK, "LIVE\n"));

    let (head, body) = send(&mut client, get("/stats/prometheus", "admin")).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(body.contains("meshtrace_test_total 1"), "{body}");

    let (head, body) = send(&mut client, get("/config_dump", "admin")).await;
    assert_eq!(head.status, StatusCode::OK);
    let dump: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dump["workload"]["name"], "productpage-v1");
    let outbound = harness.sidecar.outbound_addr().to_string();
    assert_eq!(dump["listeners"]["outbound"]["bound"], outbound.as_str());
    let headers = &dump["tracing"]["outbound"]["exporter"]["otlp"]["headers"];
    assert_eq!(headers[0]["name"], "x-token");
    assert!(!body.contains("s3cret"), "{body}");
    let propagators = serde_json::json!(["tracecontext", "b3multi", "baggage"]);
    assert_eq!(dump["tracing"]["propagators"], propagators, "extraction order");

    let (head, _) = send(&mut client, get("/nope", "admin")).await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shutdown_closes_the_listeners() {
    let app = app(echo).await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let addresses = [
        harness.sidecar.inbound_addr().unwrap(),
        harness.sidecar.outbound_addr(),
        harness.sidecar.admin_addr(),
    ];
    let mut idle = TcpStream::connect(addresses[0]).await.unwrap();
    idle.write_all(b"GET /before HTTP/1.1\r\nHost: app\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let drained = harness.sidecar.shutdown(Instant::now() + DEADLINE).await;
    assert!(drained, "an idle keep-alive connection must not hold up shutdown");
    for address in addresses {
        assert!(TcpStream::connect(address).await.is_err(), "{address} still accepts");
    }
    // The idle connection was closed: what is left of the answer, then the end.
    let mut rest = Vec::new();
    within("the idle connection closes", idle.read_to_end(&mut rest)).await.unwrap();
}

#[tokio::test]
async fn several_workers_serve_and_all_stop_at_shutdown() {
    let app = app(echo).await;
    let options = ProxyOptions { workers: 4, ..ProxyOptions::default() };
    let harness = start(config(Some(app), &[], ""), options, AdminState::new()).await;
    let inbound = harness.sidecar.inbound_addr().unwrap();
    let mut clients = Vec::new();
    for i in 0..16 {
        clients.push(tokio::spawn(async move {
            let mut client = h1(inbound).await;
            let (head, body) = send(&mut client, get(&format!("/c{i}"), "app")).await;
            (head.status, body, client)
        }));
    }
    let mut idle = Vec::new();
    for client in clients {
        let (status, body, client) = client.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        idle.push(client);
    }
    let drained = harness.sidecar.shutdown(Instant::now() + DEADLINE).await;
    assert!(drained);
    assert!(TcpStream::connect(inbound).await.is_err(), "still accepts");
    for client in idle {
        // Every worker closed its idle keep-alive connections.
        eventually(|| client.is_closed().then_some(())).await;
    }
}
