//! Synthetic exchanges through the observer, checked against the exact exposition text:
//! `exposition.rs` for names, labels, buckets and TCP counters, `mesh.rs` for the metadata
//! exchange between two sidecars and the seed's PromQL selectors.

mod exposition;
mod mesh;
mod series;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Request, StatusCode, Version};

use self::series::series;
use super::peer_metadata::{self, PEER_METADATA, PEER_METADATA_ID};
use super::{MeshMetrics, observer_with};
use crate::config::{SidecarConfig, load};
use crate::environment::Environment;
use crate::observe::{
    Completion, Direction, Observation, Observer, RequestView, ResponseView, Tunnel,
};
use crate::received::Received;

const PRODUCTPAGE: &str = "\
kind: Sidecar
metadata: {name: productpage-v1, namespace: default, labels: {app: productpage, version: v1}}
spec:
  inbound: {listen: 0.0.0.0:15006, app: 127.0.0.1:9080}
  services: {reviews.default.svc.cluster.local:9080: 127.0.0.1:19080}
";

const REVIEWS: &str = "\
kind: Sidecar
metadata: {name: reviews-v2, namespace: default, labels: {app: reviews, version: v2}}
spec:
  inbound: {listen: 0.0.0.0:15006, app: 127.0.0.1:9080}
";

/// productpage's labels on its outbound call to reviews, before any response metadata.
const OUTBOUND_TO_REVIEWS: &str = "reporter=\"source\",source_workload=\"productpage-v1\",\
source_canonical_service=\"productpage\",source_canonical_revision=\"v1\",\
source_workload_namespace=\"default\",source_principal=\"unknown\",source_app=\"productpage\",\
source_version=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"unknown\",\
destination_workload_namespace=\"default\",destination_principal=\"unknown\",\
destination_app=\"unknown\",destination_version=\"unknown\",\
destination_service=\"reviews.default.svc.cluster.local\",destination_canonical_service=\"unknown\",\
destination_canonical_revision=\"latest\",destination_service_name=\"reviews\",\
destination_service_namespace=\"default\",destination_cluster=\"unknown\"";

/// A sidecar configured by `yaml`, whatever the test process's environment holds.
fn sidecar(yaml: &str) -> (Arc<dyn Observer>, Arc<MeshMetrics>) {
    sidecar_with(yaml, &[])
}

fn sidecar_with(yaml: &str, env: &[(&str, &str)]) -> (Arc<dyn Observer>, Arc<MeshMetrics>) {
    let config: SidecarConfig = load(yaml, "metrics-test.yaml").unwrap();
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    observer_with(&config, &Environment::Fixed(env))
}

/// One synthetic exchange.
struct Call {
    direction: Direction,
    request: Request<()>,
    cluster: &'static str,
    status: Option<u16>,
    response_headers: HeaderMap,
    trailers: Option<HeaderMap>,
    flags: &'static str,
    duration: Duration,
    bytes: (u64, u64),
}

impl Call {
    fn outbound(authority: &str) -> Call {
        let request = Request::get(format!("http://{authority}/reviews/0")).body(()).unwrap();
        Call::new(Direction::Outbound, request, "outbound|9080||reviews.default.svc.cluster.local")
    }

    fn inbound(host: &str) -> Call {
        let request = Request::get("/reviews/0").header("host", host).body(()).unwrap();
        Call::new(Direction::Inbound, request, "inbound|9080||")
    }

    fn new(direction: Direction, request: Request<()>, cluster: &'static str) -> Call {
        Call {
            direction,
            request,
            cluster,
            status: Some(200),
            response_headers: HeaderMap::new(),
            trailers: None,
            flags: "-",
            duration: Duration::from_micros(7_400),
            bytes: (0, 295),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Call {
        self.request.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
        self
    }

    /// Runs the exchange and returns the request head as forwarded.
    fn run(self, observer: &dyn Observer) -> http::request::Parts {
        self.exchange(observer).0
    }

    /// Runs the exchange; returns the request head as forwarded and the response headers as
    /// sent downstream.
    fn exchange(mut self, observer: &dyn Observer) -> (http::request::Parts, HeaderMap) {
        let (mut head, ()) = self.request.into_parts();
        let mut observation = observe_request(observer, self.direction, &mut head, self.cluster);
        let mut response_head_bytes = 0;
        if let Some(status) = self.status {
            respond(&mut *observation, status, &mut self.response_headers);
            // As the proxy measures it, once the observers are done with it.
            let status = StatusCode::from_u16(status).unwrap();
            response_head_bytes =
                crate::head_size::response_head_len(status, &self.response_headers);
        }
        observation.complete(&Completion {
            request_body_bytes: self.bytes.0,
            response_body_bytes: self.bytes.1,
            response_head_bytes,
            trailers: self.trailers.as_ref(),
            response_flags: self.flags,
            duration: self.duration,
        });
        (head, self.response_headers)
    }
}

/// The proxy read `head` on the `direction` listener, bound for `cluster`.
fn observe_request(
    observer: &dyn Observer,
    direction: Direction,
    head: &mut http::request::Parts,
    cluster: &str,
) -> Box<dyn Observation> {
    let peer: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    let local: SocketAddr = "10.0.0.1:15006".parse().unwrap();
    let received = Received::scan(&head.headers);
    let grpc = crate::grpc::is_grpc_request(&head.headers, received);
    let head_bytes = crate::head_size::request_head_len(head);
    let mut view = RequestView {
        direction,
        head,
        peer,
        local,
        upstream_cluster: cluster,
        started: SystemTime::now(),
        received,
        routed_authority: None,
        grpc,
        head_bytes,
    };
    observer.request(&mut view)
}

/// The response head `headers` with `status` is about to go downstream.
fn respond(observation: &mut dyn Observation, status: u16, headers: &mut HeaderMap) {
    let received = Received::scan(headers);
    observation.response(&mut ResponseView {
        status: StatusCode::from_u16(status).unwrap(),
        version: Version::HTTP_11,
        headers,
        upstream: None,
        received,
    });
}

/// A plain successful completion.
fn completed(observation: Box<dyn Observation>) {
    observation.complete(&Completion {
        request_body_bytes: 0,
        response_body_bytes: 295,
        response_head_bytes: 0,
        trailers: None,
        response_flags: "-",
        duration: Duration::from_micros(7_400),
    });
}

fn assert_lines(text: &str, expected: &[String]) {
    for line in expected {
        assert!(text.lines().any(|l| l == line), "missing line\n{line}\nin\n{text}");
    }
}

fn grpc_headers(status: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from_str(status).unwrap());
    headers
}

/// Every sample belongs to the family typed above it, with Istio's suffixes, and carries a
/// number: what both Prometheus parsers (OpenMetrics and the classic text format) need.
fn assert_exposition_is_well_formed(text: &str) {
    let mut family: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            family = typed.split_once(' ');
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (family, kind) = family.expect("a sample before any # TYPE line");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            other => panic!("unexpected type {other}"),
        };
        let sample = line.split(['{', ' ']).next().unwrap();
        assert!(
            suffixes.iter().any(|suffix| sample == format!("{family}{suffix}")),
            "{sample} is not a {kind} sample of {family}"
        );
        let number = line.rsplit(' ').next().unwrap();
        assert!(number.parse::<f64>().is_ok(), "{line}");
    }
}
