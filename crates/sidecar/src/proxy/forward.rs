//! Forwarding one request upstream and its response back, with the observers watching.
//!
//! The order of steps is the point of this layer:
//!
//! 1. route the request ([`Router`]); strip hop-by-hop headers; set `x-forwarded-proto`; for
//!    an absolute-form request set `Host` to the URI's authority (RFC 9112 §3.2.2);
//! 2. let the observers see the request, and change its headers, **before** it is forwarded
//!    (trace context, `x-request-id`); they see the URI as the client sent it;
//! 3. send it through a connection [`Pool`]: HTTP/2 with prior knowledge when the client spoke
//!    HTTP/2 (gRPC needs trailers and streams end to end), HTTP/1.1 otherwise; request and
//!    response bodies stream frame by frame, counted, trailers included;
//! 4. relay the response head (hop-by-hop headers stripped) and let the observers see it; the
//!    response body completes the exchange when it ends ([`Exchange`]);
//! 5. or answer as Envoy would when forwarding failed ([`local_reply`](super::local_reply)),
//!    observed the same way.
//!
//! An `Upgrade` whose upstream answers `101`, and an outbound `CONNECT` (connected to its
//! target instead of sent through a pool), continue as tunnels in [`upgrade`](super::upgrade).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::connect::{ConnectSettings, Connector};
use super::drain::Drain;
use super::exchange::{BodyCounter, Exchange, RequestBody, ResponseBody, Unobserved, shielded};
use super::headers;
use super::idle::{HeadWait, wait_for_head};
use super::listener::{ConnectionInfo, Handler};
use super::local_reply::{self, Failure};
use super::pool::{Pool, Protocol, SendError, Sent};
use super::upgrade::{self, TcpReport, TunnelSettings};
use super::upstream::{Route, Router};
use crate::grpc::is_grpc_request;
use crate::head_size;
use crate::observe::{Observer, RequestView};
use crate::received::{Known, Received};

/// How the forwarder talks to upstreams.
#[derive(Debug, Clone)]
pub(crate) struct ForwardSettings {
    pub(crate) connect: ConnectSettings,
    /// Longest wait for the upstream's response head; `None` waits as long as it takes.
    pub(crate) upstream_timeout: Option<Duration>,
    /// How long an idle pooled upstream connection is kept.
    pub(crate) pool_idle_timeout: Duration,
    /// Envoy's stream idle timeout; `None` never.
    pub(crate) stream_idle_timeout: Option<Duration>,
    /// How often an open `CONNECT` tunnel's bytes are reported.
    pub(crate) tcp_report_interval: Duration,
}

/// The inbound or outbound listener's request handler.
pub(crate) struct Forwarder {
    router: Arc<Router>,
    /// For `CONNECT` tunnels, which are not pooled.
    connector: Arc<Connector>,
    http1: Arc<Pool>,
    http2: Arc<Pool>,
    observer: Arc<dyn Observer>,
    upstream_timeout: Option<Duration>,
    stream_idle_timeout: Option<Duration>,
    tcp_report_interval: Duration,
    /// Upgrade tunnels outlive their request; they take part in draining through this.
    drain: Drain,
}

impl Forwarder {
    /// Must be called on the runtime that serves the listener (the pools' sweeps run there).
    pub(crate) fn new(
        router: Arc<Router>,
        observer: Arc<dyn Observer>,
        settings: ForwardSettings,
        drain: Drain,
    ) -> Forwarder {
        let connector = Arc::new(Connector::new(router.clone(), settings.connect));
        let idle = settings.pool_idle_timeout;
        let http1 = Pool::new(Protocol::Http1, connector.clone(), idle);
        let http2 = Pool::new(Protocol::Http2, connector.clone(), idle);
        Forwarder {
            router,
            connector,
            http1,
            http2,
            observer,
            upstream_timeout: settings.upstream_timeout,
            stream_idle_timeout: settings.stream_idle_timeout,
            tcp_report_interval: settings.tcp_report_interval,
            drain,
        }
    }

    async fn forward(
        self: Arc<Self>,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> Response<ResponseBody> {
        let clock = Instant::now();
        let started = SystemTime::now();
        let (mut head, body) = request.into_parts();
        let head_bytes = head_size::request_head_len(&head);
        let tunnel = head.method == Method::CONNECT;
        let received = Received::scan(&head.headers);
        // hyper keeps the handle to the upgraded connection in the request's extensions.
        let upgrade = received.has(Known::Upgrade) && headers::is_upgrade_request(&head);
        let downstream =
            if tunnel || upgrade { head.extensions.remove::<OnUpgrade>() } else { None };
        let version = head.version;
        let grpc = is_grpc_request(&head.headers, received);
        let route = if tunnel { self.router.tunnel_route(&head) } else { self.router.route(&head) };
        let received = headers::strip_request(&mut head.headers, received, downstream.is_some());
        headers::add_forwarded_proto(&mut head.headers);
        if version != Version::HTTP_2
            && let Some(authority) = head.uri.authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            head.headers.insert(header::HOST, host);
        }

        let counter = Arc::new(BodyCounter::new());
        let cluster = route.as_ref().map_or("-", |route| &*route.cluster);
        let observation = {
            let mut view = RequestView {
                direction: self.router.direction(),
                head: &mut head,
                peer: connection.peer,
                local: connection.local,
                upstream_cluster: cluster,
                started,
                received,
                routed_authority: route
                    .as_ref()
                    .filter(|route| route.named)
                    .map(|route| route.authority.as_str()),
                // A `content-type` the request's `Connection` named is gone upstream.
                grpc: grpc && received.has(Known::ContentType),
                head_bytes,
            };
            shielded("request", || self.observer.request(&mut view))
        };
        let observation = observation.unwrap_or_else(|| Box::new(Unobserved));
        let exchange = Exchange::new(observation, clock, counter.clone());

        let Some(route) = route else {
            return local_reply::respond(Failure::NoRoute, exchange, grpc, version, None);
        };
        if tunnel {
            return self.open_tunnel(&route, downstream, exchange, version).await;
        }
        let pool = if version == Version::HTTP_2 {
            let Some(uri) = upstream_uri(&route, &head.uri) else {
                return local_reply::respond(Failure::BadRequest, exchange, grpc, version, None);
            };
            head.uri = uri;
            &self.http2
        } else {
            // The HTTP/1 pool writes origin form itself.
            head.version = Version::HTTP_11;
            &self.http1
        };
        let idle = self.stream_idle_timeout;
        let request = Request::from_parts(head, RequestBody::new(body, counter.clone(), idle));
        let sent = std::pin::pin!(pool.send(route.authority, request));
        let result = match wait_for_head(sent, self.upstream_timeout, idle, counter.activity())
            .await
        {
            HeadWait::Answered(result) => result,
            HeadWait::UpstreamTimeout => {
                return local_reply::respond(Failure::Timeout, exchange, grpc, version, None);
            }
            HeadWait::Idle => {
                return local_reply::respond(Failure::StreamIdle, exchange, grpc, version, None);
            }
        };
        let (mut response, upstream) = match result {
            Ok(Sent { response, upstream }) => (response, upstream),
            Err(error) => return failed(&error, &counter, exchange, grpc, version),
        };
        if let Some(downstream) = downstream
            && response.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            let tunnel = hyper::upgrade::on(&mut response);
            let settings = self.tunnel_settings();
            return upgrade::splice(response, upstream, downstream, tunnel, exchange, settings);
        }
        relay(response, upstream, exchange, version, idle)
    }

    fn tunnel_settings(&self) -> TunnelSettings {
        TunnelSettings {
            drain: self.drain.clone(),
            idle_limit: self.stream_idle_timeout,
            report_interval: self.tcp_report_interval,
        }
    }

    /// Connects a `CONNECT` to its target and hands both connections to a tunnel; a failed
    /// connect is answered as any failed forward is (`503` with `UF`/`URX`, `504` with `UT`).
    async fn open_tunnel(
        &self,
        route: &Route,
        downstream: Option<OnUpgrade>,
        exchange: Exchange,
        version: Version,
    ) -> Response<ResponseBody> {
        let Some(downstream) = downstream else {
            // hyper hands out every CONNECT's connection; without it there is nothing to join.
            return local_reply::respond(Failure::BadRequest, exchange, false, version, None);
        };
        let connect = self.connector.connect(&route.authority);
        let connected = match self.upstream_timeout {
            Some(limit) => match tokio::time::timeout(limit, connect).await {
                Ok(result) => result,
                Err(_) => {
                    return local_reply::respond(Failure::Timeout, exchange, false, version, None);
                }
            },
            None => connect.await,
        };
        match connected {
            Ok(upstream) => {
                let tcp = TcpReport {
                    observer: self.observer.clone(),
                    direction: self.router.direction(),
                    upstream_cluster: route.cluster.clone(),
                    authority: route.authority.to_string(),
                };
                let settings = self.tunnel_settings();
                upgrade::connect(upstream, downstream, exchange, settings, version, tcp)
            }
            Err(error) => {
                tracing::debug!(%error, "tunnel connect failed");
                local_reply::respond(Failure::from(&error), exchange, false, version, None)
            }
        }
    }
}

impl Handler for Forwarder {
    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static {
        self.forward(request, connection)
    }
}

/// `http://<route authority><path and query>`: what hyper writes as `:scheme` and `:authority`
/// for an HTTP/2 upstream.
fn upstream_uri(route: &Route, uri: &Uri) -> Option<Uri> {
    let path = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(route.authority.clone())
        .path_and_query(path)
        .build()
        .ok()
}

/// Sends the upstream's response head downstream, as the observers left it; the body streams
/// behind it.
fn relay(
    response: Response<Incoming>,
    upstream: SocketAddr,
    mut exchange: Exchange,
    version: Version,
    idle: Option<Duration>,
) -> Response<ResponseBody> {
    let (mut head, body) = response.into_parts();
    let received = headers::strip_response(&mut head.headers, false);
    head.version = version;
    exchange.response(head.status, version, &mut head.headers, received, Some(upstream));
    Response::from_parts(head, ResponseBody::upstream(body, exchange, idle))
}

/// Maps a failed upstream exchange to Envoy's answer.
fn failed(
    error: &SendError,
    counter: &BodyCounter,
    exchange: Exchange,
    grpc: bool,
    version: Version,
) -> Response<ResponseBody> {
    if counter.idle() {
        // The client stopped sending its body: Envoy's stream idle timeout.
        tracing::debug!(%error, "downstream request body idle");
        return local_reply::respond(Failure::StreamIdle, exchange, grpc, version, None);
    }
    if counter.failed() {
        // The client's own request body broke off: nobody is left to answer. Dropping the
        // exchange completes it with `DC`.
        tracing::debug!(%error, "downstream request body failed");
        drop(exchange);
        let mut response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    }
    let failure = match error {
        SendError::Connect(connect) => Failure::from(connect),
        SendError::Exchange { .. } => Failure::ConnectionTermination,
    };
    tracing::debug!(%error, ?failure, "upstream request failed");
    local_reply::respond(failure, exchange, grpc, version, error.upstream())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        let grpc = |text: &'static str| crate::grpc::is_grpc(&HeaderValue::from_static(text));
        assert!(grpc("application/grpc"));
        assert!(grpc("application/grpc+proto"));
        assert!(!grpc("application/grpc; charset=utf-8"));
        assert!(!grpc("application/grpc-web"));
        assert!(!grpc("application/grpc-web+proto"));
        assert!(!grpc("application/json"));
    }

    /// The size of what a function returns, without calling it.
    fn size_of_returned<A, B, C, R>(_function: impl FnOnce(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn a_requests_future_stays_small() {
        // hyper keeps a connection's request future in a box for the connection's life, and
        // the future is copied as it is made. It was 7,416 bytes while the pool's send future
        // was held twice, 4,216 with the connection-opening paths inline and 2,712 with them
        // boxed (the same in every build profile; BENCHMARKS.md, "Sidecar"). A new rare path
        // with a large future belongs in a box, like those.
        let size = size_of_returned(Forwarder::forward);
        assert!(size <= 3072, "Forwarder::forward's future is {size} bytes");
    }
}
