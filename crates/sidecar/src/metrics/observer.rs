//! The [`Observer`] that feeds [`MeshMetrics`]: one series update per finished exchange and
//! per connection event.
//!
//! Label sets are resolved once per (direction, upstream cluster, authority) and per peer
//! metadata value, then shared: a request costs two map look-ups under read locks and the
//! four family updates at the end. The maps share one bound per direction (a caller controls
//! the authority and the metadata header); past it, new authorities share one route whose
//! service is unknown (inbound: the workload's canonical service) and new peers are counted as
//! unknown.
//!
//! Like istio-proxy's metadata exchange (the `peer_metadata` filter with `istio_headers`
//! discovery and propagation), the sidecar:
//!
//! * inbound, reads `x-envoy-peer-metadata[-id]` from the request and removes them before the
//!   app sees them, then answers with its own in the response, each header only if the caller
//!   sent that header (so only mesh peers learn who the workload is);
//! * outbound, adds its own to requests bound for a mesh service (not to external hosts), reads
//!   the callee's from the response (the `destination_*` labels) and removes them before the app
//!   sees them.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use super::MeshMetrics;
use super::labels::{self, HttpSeries, LocalWorkload, SourceDestination, TcpSeries};
use super::peer_metadata::{self, PEER_METADATA, PEER_METADATA_ID};
use super::service::{self, DestinationService};
use crate::bounded::{Bounded, Budget};
use crate::config::{ServiceRoute, SidecarConfig};
use crate::environment::Environment;
use crate::grpc::{self, GRPC_STATUS};
use crate::observe::{
    Completion, Direction, Observation, Observer, RequestView, ResponseView, Tunnel,
};
use crate::received::Known;

/// Entries (upstream clusters, authorities, peer label sets) remembered per direction. A
/// sidecar sees a few services and peer versions; the bound keeps memory and series counts in
/// check when callers send arbitrary authorities or metadata (at most ~8 KiB per entry).
pub(crate) const ENTRIES_PER_DIRECTION: usize = 2048;

// === impl MeshObserver ===

/// Records Istio's metrics for every exchange and connection the proxy reports.
pub(crate) struct MeshObserver {
    shared: Arc<Shared>,
}

struct Shared {
    metrics: Arc<MeshMetrics>,
    local: LocalWorkload,
    services: Vec<ServiceRoute>,
    /// The Service in front of the workload, when the config names it
    /// (`spec.inbound.service`): every inbound exchange's `destination_service`, as Istio's
    /// inbound cluster metadata gives it.
    inbound_service: Option<DestinationService>,
    /// Inbound, outbound.
    routes: [Routes; 2],
    /// This workload's `x-envoy-peer-metadata-id` and `x-envoy-peer-metadata` values.
    exchange: Option<(HeaderValue, HeaderValue)>,
}

impl MeshObserver {
    pub(crate) fn new(
        config: &SidecarConfig,
        env: &Environment,
        metrics: Arc<MeshMetrics>,
    ) -> MeshObserver {
        let cluster = config.mesh.with_environment(env).cluster_id;
        let local = LocalWorkload::new(&config.workload, &cluster);
        let services = config.services.clone();
        let identity = local.identity();
        // Istio's node id shape (`sidecar~<pod IP>~<pod>.<namespace>~<namespace>.svc.cluster.local`);
        // the sidecar knows no pod IP or name, and peers only use the id as a cache key.
        let id = format!(
            "sidecar~0.0.0.0~{}.{}~{}.svc.cluster.local",
            identity.workload, identity.namespace, identity.namespace
        );
        // Both values are built from config text: a name that cannot be a header value (a
        // control character) only turns the exchange off.
        let exchange = HeaderValue::from_str(&id)
            .ok()
            .zip(HeaderValue::from_str(&peer_metadata::encode(&identity)).ok());
        let inbound_service = config
            .listeners
            .inbound
            .as_ref()
            .and_then(|inbound| inbound.service.as_ref())
            .map(|service| service::from_fqdn(&service.host));
        let shared = Shared {
            inbound_service,
            routes: [
                Routes::new(Direction::Inbound, &local),
                Routes::new(Direction::Outbound, &local),
            ],
            metrics,
            local,
            services,
            exchange,
        };
        MeshObserver { shared: Arc::new(shared) }
    }
}

impl Observer for MeshObserver {
    fn request(&self, request: &mut RequestView<'_>) -> Box<dyn Observation> {
        let shared = &self.shared;
        let direction = request.direction;
        let authority = request.authority();
        let cluster = request.upstream_cluster;
        let route = shared.routes[index(direction)].route(cluster, authority, |budget| {
            let service = match (direction, &shared.inbound_service) {
                (Direction::Inbound, Some(service)) => Some(service.clone()),
                _ => service::destination(
                    direction,
                    authority,
                    cluster,
                    &shared.services,
                    shared.local.namespace(),
                ),
            };
            Route::new(direction, &shared.local, service, budget)
        });
        let received = request.received;
        let headers = &mut request.head.headers;
        let mut answer = PeerAnswer::default();
        let parties = match direction {
            Direction::Inbound => {
                // The caller's metadata is read, answered and kept from the app; a request
                // from outside the mesh has none, so nothing is looked up.
                let metadata = match received.has(Known::PeerMetadata) {
                    true => headers.remove(PEER_METADATA),
                    false => None,
                };
                let parties = route.parties(direction, &shared.local, metadata.as_ref());
                answer.id = received.has(Known::PeerMetadataId)
                    && headers.remove(PEER_METADATA_ID).is_some();
                answer.metadata = metadata.is_some();
                parties
            }
            Direction::Outbound => {
                if let Some((id, metadata)) = &shared.exchange
                    && route.service.as_ref().is_some_and(|service| service.in_mesh)
                {
                    headers.insert(PEER_METADATA_ID, id.clone());
                    headers.insert(PEER_METADATA, metadata.clone());
                }
                route.anonymous.clone()
            }
        };
        Box::new(Exchange {
            shared: self.shared.clone(),
            direction,
            route,
            parties,
            grpc: request.grpc,
            answer,
            response_code: 0,
            header_grpc_status: None,
            request_head_bytes: request.head_bytes,
        })
    }

    fn tunnel_opened(&self, tunnel: &Tunnel<'_>) {
        let series = self.shared.tcp_series(tunnel);
        self.shared.metrics.tcp_connections_opened.get_or_create(&series).inc();
    }

    fn tunnel_bytes(&self, tunnel: &Tunnel<'_>, sent: u64, received: u64) {
        let metrics = &self.shared.metrics;
        let series = self.shared.tcp_series(tunnel);
        metrics.tcp_sent_bytes.get_or_create(&series).inc_by(sent);
        metrics.tcp_received_bytes.get_or_create(&series).inc_by(received);
    }

    fn tunnel_closed(&self, tunnel: &Tunnel<'_>) {
        let series = self.shared.tcp_series(tunnel);
        self.shared.metrics.tcp_connections_closed.get_or_create(&series).inc();
    }
}

impl Shared {
    /// A tunnel's labels: its destination found as an HTTP exchange's is, from its cluster
    /// and `CONNECT` target (a services-table service, or `PassthroughCluster`). Made for each
    /// report (open, every few seconds, close): tunnels are few, and equal labels are the same
    /// series.
    fn tcp_series(&self, tunnel: &Tunnel<'_>) -> TcpSeries {
        let service = service::destination(
            tunnel.direction,
            Some(tunnel.authority),
            tunnel.upstream_cluster,
            &self.services,
            self.local.namespace(),
        );
        TcpSeries {
            parties: Arc::new(SourceDestination::new(
                tunnel.direction,
                &self.local,
                service.as_ref(),
                None,
            )),
            security_policy: labels::security_policy(tunnel.direction),
        }
    }
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

/// A `grpc-status` value as Envoy reads it: absent when empty, `-1` when not a known code.
fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(GRPC_STATUS)?.as_bytes().trim_ascii();
    if value.is_empty() {
        return None;
    }
    let code = std::str::from_utf8(value).ok().and_then(|text| text.parse::<u8>().ok());
    Some(code.filter(|code| *code <= 16).map_or(-1, i64::from))
}

// === impl Exchange ===

/// One exchange in flight.
struct Exchange {
    shared: Arc<Shared>,
    direction: Direction,
    route: Arc<Route>,
    parties: Arc<SourceDestination>,
    grpc: bool,
    /// Inbound: which of this workload's headers the response carries back.
    answer: PeerAnswer,
    response_code: u16,
    header_grpc_status: Option<i64>,
    /// The request head's size as received downstream; Istio's size histograms count the
    /// heads with the bodies (the response head's comes with the completion).
    request_head_bytes: u64,
}

/// Which metadata headers an inbound caller sent, and so gets back (Istio's
/// `MXPropagationMethod::inject` downstream: `request_peer_id_received_`,
/// `request_peer_received_`).
#[derive(Debug, Default, Clone, Copy)]
struct PeerAnswer {
    id: bool,
    metadata: bool,
}

impl Observation for Exchange {
    fn response(&mut self, response: &mut ResponseView<'_>) {
        self.response_code = response.status.as_u16();
        let headers = &mut *response.headers;
        if self.grpc && response.received.has(Known::GrpcStatus) {
            self.header_grpc_status = grpc_status(headers);
        }
        match self.direction {
            Direction::Outbound => {
                let received = response.received;
                let metadata = match received.has(Known::PeerMetadata) {
                    true => headers.remove(PEER_METADATA),
                    false => None,
                };
                self.parties =
                    self.route.parties(self.direction, &self.shared.local, metadata.as_ref());
                if received.has(Known::PeerMetadataId) {
                    headers.remove(PEER_METADATA_ID);
                }
            }
            Direction::Inbound => {
                if let Some((id, metadata)) = &self.shared.exchange {
                    if self.answer.id {
                        headers.insert(PEER_METADATA_ID, id.clone());
                    }
                    if self.answer.metadata {
                        headers.insert(PEER_METADATA, metadata.clone());
                    }
                }
            }
        }
    }

    fn complete(self: Box<Self>, completion: &Completion<'_>) {
        let grpc_status = match self.grpc {
            false => None,
            true => completion
                .trailers
                .and_then(grpc_status)
                .or(self.header_grpc_status)
                .or((self.response_code != 0)
                    .then(|| i64::from(grpc::http_to_grpc_status(self.response_code)))),
        };
        let series = HttpSeries {
            parties: self.parties,
            grpc: self.grpc,
            response_code: self.response_code,
            grpc_status,
            response_flags: labels::response_flags(completion.response_flags),
            security_policy: labels::security_policy(self.direction),
        };
        // Istio records whole milliseconds (`requestComplete()` / 1 ms, truncated).
        let duration_ms = completion.duration.as_millis() as f64;
        self.shared.metrics.record_request(
            &series,
            duration_ms,
            self.request_head_bytes.saturating_add(completion.request_body_bytes),
            completion.response_head_bytes.saturating_add(completion.response_body_bytes),
        );
    }
}

// === impl Routes, Route ===

/// Routes of one direction by upstream cluster, then authority.
struct Routes {
    by_cluster: Bounded<Arc<Bounded<Arc<Route>>>>,
    budget: Arc<Budget>,
    /// Shared by every authority past the bound.
    overflow: Arc<Route>,
}

impl Routes {
    fn new(direction: Direction, local: &LocalWorkload) -> Routes {
        let budget = Arc::new(Budget::new(ENTRIES_PER_DIRECTION));
        Routes {
            by_cluster: Bounded::new(&budget),
            overflow: Arc::new(Route::new(direction, local, None, &budget)),
            budget,
        }
    }

    fn route(
        &self,
        cluster: &str,
        authority: Option<&str>,
        make: impl FnOnce(&Arc<Budget>) -> Route,
    ) -> Arc<Route> {
        self.by_cluster
            .get_or_insert_with(cluster, || Arc::new(Bounded::new(&self.budget)))
            .and_then(|authorities| {
                authorities
                    .get_or_insert_with(authority.unwrap_or(""), || Arc::new(make(&self.budget)))
            })
            .unwrap_or_else(|| self.overflow.clone())
    }
}

/// One (direction, cluster, authority): its service, and its label sets per peer.
struct Route {
    service: Option<DestinationService>,
    /// The labels when the peer sent no metadata.
    anonymous: Arc<SourceDestination>,
    /// Keyed by the metadata header's bytes: a peer sends the same value on every request, and
    /// checking it as text (a few hundred bytes) cost more than the rest of the lookup.
    with_peer: Bounded<Arc<SourceDestination>, [u8]>,
}

impl Route {
    fn new(
        direction: Direction,
        local: &LocalWorkload,
        service: Option<DestinationService>,
        budget: &Arc<Budget>,
    ) -> Route {
        let anonymous = Arc::new(SourceDestination::new(direction, local, service.as_ref(), None));
        Route { service, anonymous, with_peer: Bounded::new(budget) }
    }

    /// The labels for a peer that sent `metadata` (`x-envoy-peer-metadata`), if any.
    fn parties(
        &self,
        direction: Direction,
        local: &LocalWorkload,
        metadata: Option<&HeaderValue>,
    ) -> Arc<SourceDestination> {
        // Only values that decode are remembered, so the map's budget goes to real peers, and
        // a key is at most the longest value decoded.
        let Some(metadata) = metadata
            .map(HeaderValue::as_bytes)
            .filter(|bytes| bytes.len() <= peer_metadata::MAX_ENCODED_LEN)
        else {
            return self.anonymous.clone();
        };
        self.with_peer
            .get_or_try_insert_with(metadata, || {
                let peer = peer_metadata::decode(metadata)?;
                Some(Arc::new(SourceDestination::new(
                    direction,
                    local,
                    self.service.as_ref(),
                    Some(&peer),
                )))
            })
            .unwrap_or_else(|| self.anonymous.clone())
    }
}
