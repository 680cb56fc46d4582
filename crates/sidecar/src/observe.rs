//! The seam between the proxy and what watches its traffic.
//!
//! The proxy forwards; observers (tracing in [`crate::trace`], Istio metrics in
//! [`crate::metrics`]) learn about each exchange through these calls and never touch sockets.
//! The proxy calls [`Observer::request`] once the request head is read and before it is
//! forwarded (so a tracer can add `traceparent`, `x-request-id`, … to the forwarded request),
//! [`Observation::response`] when the response head is about to be sent downstream, from the
//! upstream or made by the proxy itself (so a tracer can return `x-request-id` and a metrics
//! observer can exchange peer metadata, as Envoy's filters do in `encodeHeaders`), and
//! [`Observation::complete`] when both bodies are done or the exchange failed. A `CONNECT`
//! tunnel is also reported as a [`Tunnel`] (opened, closed with its bytes), which feeds Istio's
//! TCP metrics; HTTP connections are not, as Istio reports TCP metrics only for traffic its
//! sidecar proxies as plain TCP.
//!
//! Both heads are the ones the proxy sends on, after its own hop-by-hop rules: what an observer
//! adds reaches the other side, what it removes does not. [`Observers`] call their observers in
//! order, each seeing the head as the previous ones left it. Each view also carries which of
//! the headers the proxy and its observers consult the head held after the hop-by-hop rules
//! ([`Received`]); an observer's own changes are not in it, so a header one observer writes
//! for another is looked up, not asked of the set.
//!
//! Observers run on the request path: they must not block, and must never fail a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, Version};

use crate::received::Received;

/// Which listener saw the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Into the local app: the sidecar is the server side (SERVER spans, `reporter="destination"`).
    Inbound,
    /// From the local app to another service: the client side (CLIENT spans,
    /// `reporter="source"`).
    Outbound,
}

/// A request as the proxy is about to forward it.
pub struct RequestView<'a> {
    pub direction: Direction,
    /// Method, URI, version and headers; observers may add or change headers (propagation).
    pub head: &'a mut http::request::Parts,
    /// The downstream peer (the caller).
    pub peer: SocketAddr,
    /// The address of the listener that accepted it.
    pub local: SocketAddr,
    /// Envoy's cluster name for the destination, e.g.
    /// `outbound|9080||reviews.default.svc.cluster.local` or `inbound|9080||`.
    pub upstream_cluster: &'a str,
    /// When the request head was received.
    pub started: SystemTime,
    /// The known headers the request holds after the proxy's hop-by-hop rules, before any
    /// observer wrote to it: a header not in it is absent unless an observer has added it.
    pub received: Received,
    /// The authority the proxy routed by, when the request named one (its URI's, else its
    /// `Host`): [`authority`](Self::authority) without looking it up again.
    pub routed_authority: Option<&'a str>,
    /// Whether it is a gRPC request (`grpc::is_grpc_request`), as the proxy decided.
    pub grpc: bool,
    /// The head's size as it arrived, before any rule or observer changed it
    /// ([`crate::head_size::request_head_len`]): the wire bytes Istio's `istio_request_bytes`
    /// counts besides the body.
    pub head_bytes: u64,
}

impl RequestView<'_> {
    /// The request's `:authority` (absolute form, HTTP/2), else its `Host`; `None` without
    /// either or when `Host` is not text.
    pub fn authority(&self) -> Option<&str> {
        if let Some(authority) = self.routed_authority {
            return Some(authority);
        }
        match self.head.uri.authority() {
            Some(authority) => Some(authority.as_str()),
            None => self.head.headers.get(http::header::HOST).and_then(|host| host.to_str().ok()),
        }
    }
}

/// The response head, from upstream or made by the proxy, as it will be sent downstream.
pub struct ResponseView<'a> {
    pub status: StatusCode,
    pub version: Version,
    /// The headers sent downstream; observers may add, change or remove headers (Envoy's
    /// `x-request-id` echo, `x-envoy-decorator-operation`, Istio's metadata exchange).
    pub headers: &'a mut HeaderMap,
    /// The upstream address actually used, if a connection was made.
    pub upstream: Option<SocketAddr>,
    /// The known headers of the response after the proxy's hop-by-hop rules, before any
    /// observer changed it.
    pub received: Received,
}

/// How an exchange ended.
#[derive(Clone, Copy)]
pub struct Completion<'a> {
    /// Bytes of request body sent upstream, and of response body sent downstream.
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// The response head's size as sent downstream, after every observer's change
    /// ([`crate::head_size::response_head_len`]); 0 when no response was sent.
    pub response_head_bytes: u64,
    /// Trailers of the response (gRPC status lives here), if any.
    pub trailers: Option<&'a HeaderMap>,
    /// Envoy's response flags for the exchange, e.g. `-`, `UF`, `URX`, `UT`, `DC`, `UC`.
    pub response_flags: &'static str,
    /// From request head received to response body finished (or failure).
    pub duration: Duration,
}

/// Watches exchanges. One per sidecar; called concurrently.
pub trait Observer: Send + Sync + 'static {
    /// A request is about to be forwarded.
    fn request(&self, request: &mut RequestView<'_>) -> Box<dyn Observation>;

    /// A stream relayed as plain TCP (a `CONNECT` tunnel) opened (TCP metrics).
    fn tunnel_opened(&self, _tunnel: &Tunnel<'_>) {}

    /// Bytes moved through it since its last report: sent to the client, received from it.
    /// Reported every few seconds while it is open and once at its close, as Istio reports
    /// TCP traffic.
    fn tunnel_bytes(&self, _tunnel: &Tunnel<'_>, _sent: u64, _received: u64) {}

    /// It closed (after its last bytes were reported).
    fn tunnel_closed(&self, _tunnel: &Tunnel<'_>) {}
}

/// A stream the proxy relays as plain TCP: a `CONNECT` tunnel, the traffic Istio's sidecar
/// passes through as TCP.
#[derive(Clone, Copy, Debug)]
pub struct Tunnel<'a> {
    pub direction: Direction,
    /// The upstream address it reached.
    pub upstream: SocketAddr,
    /// Envoy's cluster name for its destination (`outbound|443||api.example.com`,
    /// `PassthroughCluster`), as its exchange reports it.
    pub upstream_cluster: &'a str,
    /// The `CONNECT` target, `host:port`.
    pub authority: &'a str,
}

/// One exchange in flight.
pub trait Observation: Send + 'static {
    /// The response head is about to be sent downstream; at most once per exchange (never for
    /// an exchange that ends before any response, such as a client hanging up first).
    fn response(&mut self, response: &mut ResponseView<'_>);
    /// The exchange ended; exactly once.
    fn complete(self: Box<Self>, completion: &Completion<'_>);
}

/// Several observers behind one.
pub struct Observers(pub Vec<Arc<dyn Observer>>);

struct Many(Vec<Box<dyn Observation>>);

impl Observer for Observers {
    fn request(&self, request: &mut RequestView<'_>) -> Box<dyn Observation> {
        Box::new(Many(self.0.iter().map(|observer| observer.request(request)).collect()))
    }

    fn tunnel_opened(&self, tunnel: &Tunnel<'_>) {
        for observer in &self.0 {
            observer.tunnel_opened(tunnel);
        }
    }

    fn tunnel_bytes(&self, tunnel: &Tunnel<'_>, sent: u64, received: u64) {
        for observer in &self.0 {
            observer.tunnel_bytes(tunnel, sent, received);
        }
    }

    fn tunnel_closed(&self, tunnel: &Tunnel<'_>) {
        for observer in &self.0 {
            observer.tunnel_closed(tunnel);
        }
    }
}

impl Observation for Many {
    fn response(&mut self, response: &mut ResponseView<'_>) {
        for observation in &mut self.0 {
            observation.response(response);
        }
    }

    fn complete(self: Box<Self>, completion: &Completion<'_>) {
        for observation in self.0 {
            observation.complete(completion);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(uri: &str, host: Option<&str>, routed: Option<&str>) -> Option<String> {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        let mut head = builder.body(()).unwrap().into_parts().0;
        let received = Received::scan(&head.headers);
        let view = RequestView {
            direction: Direction::Inbound,
            head: &mut head,
            peer: "10.0.0.9:40000".parse().unwrap(),
            local: "10.0.0.1:15006".parse().unwrap(),
            upstream_cluster: "inbound|9080||",
            started: SystemTime::now(),
            received,
            routed_authority: routed,
            grpc: false,
            head_bytes: 0,
        };
        view.authority().map(str::to_owned)
    }

    /// The routed authority is what the request named, so reading it gives what looking the
    /// request up gives; without one, the request is looked up.
    #[test]
    fn the_authority_is_the_routed_one_else_the_uri_else_host() {
        let cases = [
            ("/", Some("reviews:9080"), Some("reviews:9080")),
            ("http://ratings:9080/x", Some("ignored"), Some("ratings:9080")),
            ("/", None, None),
            ("/", Some("a b"), None),
            ("/", Some(":80"), None),
        ];
        for (uri, host, routed) in cases {
            let looked_up = authority(uri, host, None);
            assert_eq!(authority(uri, host, routed), looked_up, "{uri} {host:?}");
        }
        assert_eq!(authority("/", Some("a b"), None).as_deref(), Some("a b"));
        assert_eq!(authority("/", None, None), None);
    }
}
