//! Which service an exchange was for: `destination_service`, `destination_service_name` and
//! (as a stand-in for endpoint metadata) the service's namespace.
//!
//! Istio reads these from the upstream cluster's `istio.services` metadata (the service FQDN
//! `host` and its `name`), falling back to the request's `Host` header as written, and names
//! the `PassthroughCluster` / `BlackHoleCluster` / `InboundPassthroughCluster…` clusters by
//! their own names (`populatePeerInfo`, istio/proxy `istio_stats.cc`). The sidecar has no
//! cluster metadata, so it derives the same values from what it has:
//!
//! * the upstream cluster name the proxy reports, `outbound|9080||reviews.default.svc.cluster.local`
//!   (the host Istio's cluster metadata would give);
//! * the Sidecar document's services table, matched the way Istio's virtual hosts match an
//!   authority (`reviews`, `reviews.default`, `reviews.default.svc`, the FQDN; short names are
//!   relative to the workload's namespace);
//! * Kubernetes service names in the authority (`name.namespace.svc[.cluster.local]`).
//!
//! Outbound, anything else falls back to the authority as written, as Istio's `Host` fallback
//! does. Inbound, where Istio's inbound cluster names the workload's own service, an authority
//! that names a service in this namespace is used, and anything else (an IP, another domain)
//! falls back to the workload's canonical service, as Istio does when it knows no host.

use std::sync::Arc;

use crate::config::ServiceRoute;
use crate::observe::Direction;
use crate::service_name::{CLUSTER_DOMAIN, qualify};

/// Envoy/Istio clusters that stand for "not a mesh service"; each is its own service name.
const SPECIAL_CLUSTERS: [&str; 5] = [
    "PassthroughCluster",
    "BlackHoleCluster",
    "InboundPassthroughCluster",
    "InboundPassthroughClusterIpv4",
    "InboundPassthroughClusterIpv6",
];

/// The service an exchange was addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DestinationService {
    /// `destination_service`: the FQDN, or the authority as written.
    pub(crate) host: Arc<str>,
    /// `destination_service_name`: the FQDN's first label, or a special cluster's name.
    pub(crate) name: Arc<str>,
    /// The namespace the FQDN names, when it is a Kubernetes service name.
    pub(crate) namespace: Option<Arc<str>>,
    /// Whether it is a mesh service (so the sidecar may send it its metadata).
    pub(crate) in_mesh: bool,
}

/// Derives the destination service of a request; `None` when nothing names one (inbound,
/// the workload's canonical service is used instead; outbound, `unknown`).
pub(crate) fn destination(
    direction: Direction,
    authority: Option<&str>,
    upstream_cluster: &str,
    services: &[ServiceRoute],
    local_namespace: &str,
) -> Option<DestinationService> {
    if let Some(special) = SPECIAL_CLUSTERS.iter().find(|name| **name == upstream_cluster) {
        return Some(DestinationService {
            host: Arc::from(authority.unwrap_or(special)),
            name: Arc::from(*special),
            namespace: None,
            in_mesh: false,
        });
    }
    if let Some(host) = cluster_host(upstream_cluster) {
        return Some(from_fqdn(&host.to_ascii_lowercase()));
    }
    let authority = authority?;
    let (host, port) = split_authority(authority);
    let host = host.to_ascii_lowercase();
    match direction {
        Direction::Outbound => {
            let fqdn = qualify(&host, local_namespace, true);
            let in_table = |fqdn: &str| {
                services
                    .iter()
                    .any(|route| route.host.eq_ignore_ascii_case(fqdn) && route.port == port)
            };
            match fqdn {
                Some(fqdn) if in_table(&fqdn) || is_service_domain(&host) => Some(from_fqdn(&fqdn)),
                _ => Some(DestinationService {
                    host: Arc::from(authority),
                    name: Arc::from(authority),
                    namespace: None,
                    in_mesh: false,
                }),
            }
        }
        Direction::Inbound => qualify(&host, local_namespace, false).map(|fqdn| from_fqdn(&fqdn)),
    }
}

/// The host of an Envoy cluster name `direction|port|subset|host`, when it has one.
fn cluster_host(cluster: &str) -> Option<&str> {
    let mut parts = cluster.split('|');
    let direction = parts.next()?;
    if direction != "outbound" && direction != "inbound" {
        return None;
    }
    let host = parts.nth(2)?;
    (!host.is_empty() && parts.next().is_none()).then_some(host)
}

/// `host:port` → (host, port); the port defaults to 80 and IPv6 brackets are removed.
fn split_authority(authority: &str) -> (&str, u16) {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()),
        _ => (authority, None),
    };
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (host, port.unwrap_or(80))
}

/// Whether `host` is spelled as a Kubernetes service (`….svc` or `….svc.cluster.local`).
fn is_service_domain(host: &str) -> bool {
    host.ends_with(".svc") || host.ends_with(".svc.cluster.local")
}

/// A service from its FQDN: name = first label; namespace = second label for Kubernetes FQDNs.
pub(crate) fn from_fqdn(fqdn: &str) -> DestinationService {
    let name = fqdn.split('.').next().unwrap_or(fqdn);
    let namespace = fqdn
        .strip_suffix(CLUSTER_DOMAIN)
        .and_then(|rest| rest.strip_suffix('.'))
        .and_then(|rest| rest.split_once('.'))
        .map(|(_, namespace)| namespace)
        .filter(|namespace| !namespace.is_empty() && !namespace.contains('.'));
    DestinationService {
        host: Arc::from(fqdn),
        name: Arc::from(name),
        namespace: namespace.map(Arc::from),
        in_mesh: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Endpoint;

    fn table() -> Vec<ServiceRoute> {
        vec![ServiceRoute {
            host: "reviews.default.svc.cluster.local".into(),
            port: 9080,
            target: Endpoint::new("127.0.0.1", 19080),
        }]
    }

    fn outbound(authority: &str, cluster: &str) -> Option<DestinationService> {
        destination(Direction::Outbound, Some(authority), cluster, &table(), "default")
    }

    fn inbound(authority: &str) -> Option<DestinationService> {
        destination(Direction::Inbound, Some(authority), "inbound|9080||", &[], "default")
    }

    fn fields(service: Option<DestinationService>) -> Option<(String, String, Option<String>)> {
        service
            .map(|s| (s.host.to_string(), s.name.to_string(), s.namespace.map(|ns| ns.to_string())))
    }

    fn expect(
        host: &str,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<(String, String, Option<String>)> {
        Some((host.into(), name.into(), namespace.map(String::from)))
    }

    #[test]
    fn outbound_names_the_service_from_the_authority_or_the_cluster() {
        let reviews = expect("reviews.default.svc.cluster.local", "reviews", Some("default"));
        for authority in [
            "reviews.default.svc.cluster.local:9080",
            "reviews.default.svc:9080",
            "reviews.default:9080",
            "reviews:9080",
            "Reviews.Default.svc.cluster.local:9080",
        ] {
            assert_eq!(fields(outbound(authority, "")), reviews, "{authority}");
        }
        // The cluster the proxy chose wins over the authority, as Istio's cluster metadata does.
        let by_cluster = outbound("10.0.0.7:9080", "outbound|9080||ratings.shop.svc.cluster.local");
        assert_eq!(
            fields(by_cluster),
            expect("ratings.shop.svc.cluster.local", "ratings", Some("shop"))
        );
        // A Kubernetes FQDN outside the services table is still a service.
        assert_eq!(
            fields(outbound("details.shop.svc.cluster.local", "")),
            expect("details.shop.svc.cluster.local", "details", Some("shop"))
        );
    }

    #[test]
    fn outbound_falls_back_to_the_authority_as_written() {
        let external = outbound("api.example.com:443", "");
        assert_eq!(
            fields(external.clone()),
            expect("api.example.com:443", "api.example.com:443", None)
        );
        assert!(!external.is_some_and(|s| s.in_mesh));
        // Not in the table on that port: `reviews` on port 80 is not the table's service.
        assert_eq!(fields(outbound("reviews", "")), expect("reviews", "reviews", None));
        assert_eq!(
            fields(outbound("api.example.com", "PassthroughCluster")),
            expect("api.example.com", "PassthroughCluster", None)
        );
        assert_eq!(fields(destination(Direction::Outbound, None, "", &[], "default")), None);
    }

    #[test]
    fn inbound_names_this_namespace_s_services_only() {
        let productpage =
            expect("productpage.default.svc.cluster.local", "productpage", Some("default"));
        for authority in [
            "productpage:9080",
            "productpage.default",
            "productpage.default.svc.cluster.local:9080",
        ] {
            assert_eq!(fields(inbound(authority)), productpage, "{authority}");
        }
        for authority in
            ["10.1.2.3:9080", "[::1]:9080", "localhost:9080", "www.example.com", "a..b", "x y"]
        {
            assert_eq!(fields(inbound(authority)), None, "{authority}");
        }
    }

    #[test]
    fn reads_cluster_names() {
        assert_eq!(
            cluster_host("outbound|9080||reviews.default.svc.cluster.local"),
            Some("reviews.default.svc.cluster.local")
        );
        assert_eq!(
            cluster_host("outbound|9080|v1|reviews.default.svc.cluster.local"),
            Some("reviews.default.svc.cluster.local")
        );
        assert_eq!(cluster_host("inbound|9080||"), None);
        assert_eq!(cluster_host("reviews"), None);
        assert_eq!(split_authority("[::1]:8080"), ("::1", 8080));
        assert_eq!(split_authority("[::1]"), ("::1", 80));
    }
}
