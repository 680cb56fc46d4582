//! Choosing the destination of a request, and naming it the way Envoy names clusters.
//!
//! This layer stands in for Istio's routing tables:
//!
//! - **inbound** requests all go to the local app (`inbound|<app port>||`);
//! - **outbound** requests name their destination in the request: the authority of an
//!   absolute-form URI (an app run with `HTTP_PROXY=http://127.0.0.1:15001`), else `:authority`
//!   (HTTP/2) or `Host`. A host without a port means port 80. The authority is looked up in the
//!   Sidecar's `services` table (which stands in for service discovery): a hit goes to the
//!   table's address as `outbound|<port>||<host>`; Istio's short names of a Kubernetes
//!   service (`reviews`, `reviews.default`, `reviews.default.svc` for
//!   `reviews.default.svc.cluster.local` seen from namespace `default`) match too. A miss is
//!   passed through to the authority itself, resolved by DNS (`PassthroughCluster`, Istio's
//!   `ALLOW_ANY` outbound policy). A request that names nothing has no route (`NR`);
//! - an outbound `CONNECT host:port` (how an app behind `HTTP_PROXY` reaches an HTTPS
//!   destination) is routed the same way, to a TCP tunnel ([`Router::tunnel_route`]), as Istio
//!   passes an app's TLS traffic through; inbound, `CONNECT` has no route.
//!
//! The forwarded request keeps its authority (so the app sees the `Host` it was called with);
//! the connector asks [`Router::target`] where that authority really lives.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::request::Parts;
use http::uri::Authority;
use http::{Method, header};

use crate::config::{Endpoint, ServiceRoute, SidecarConfig};
use crate::observe::Direction;

/// Envoy's name for the outbound passthrough cluster.
pub(crate) const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

static PASSTHROUGH: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| Arc::from(PASSTHROUGH_CLUSTER));

/// Where one listener's requests go.
#[derive(Debug)]
pub(crate) struct Router {
    direction: Direction,
    /// Inbound: the app; every request goes there.
    app: Option<Service>,
    /// Outbound: port → lowercase host → service, with Istio's short-name aliases. Keyed by
    /// port first so that a request's host is looked up as it is, without building a key.
    services: HashMap<u16, HashMap<String, Service>>,
}

#[derive(Debug, Clone)]
struct Service {
    /// Shared by every request routed to it.
    cluster: Arc<str>,
    target: Endpoint,
}

/// A routed request.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// Envoy's cluster name (`outbound|9080||reviews.default.svc.cluster.local`).
    pub(crate) cluster: Arc<str>,
    /// The authority to put in the forwarded request's URI: the pool key, `:authority` for
    /// HTTP/2 and `Host` for HTTP/1 requests that had none.
    pub(crate) authority: Authority,
    /// Whether the request named [`authority`](Self::authority) (its URI or `Host`), rather
    /// than the inbound app's address standing in for it.
    pub(crate) named: bool,
}

impl Router {
    /// The inbound router: everything goes to `app`.
    pub(crate) fn inbound(app: &Endpoint) -> Router {
        let service = Service { cluster: inbound_cluster(app).into(), target: app.clone() };
        Router { direction: Direction::Inbound, app: Some(service), services: HashMap::new() }
    }

    /// The outbound router over the config's `services` table.
    pub(crate) fn outbound(config: &SidecarConfig) -> Router {
        let mut services: HashMap<u16, HashMap<String, Service>> = HashMap::new();
        let namespace = config.workload.namespace.to_ascii_lowercase();
        // Aliases first, so exact entries written in the table overwrite them.
        for route in &config.services {
            let service = service(route);
            for alias in aliases(&route.host.to_ascii_lowercase(), &namespace) {
                services.entry(route.port).or_default().insert(alias, service.clone());
            }
        }
        for route in &config.services {
            let host = route.host.to_ascii_lowercase();
            services.entry(route.port).or_default().insert(host, service(route));
        }
        Router { direction: Direction::Outbound, app: None, services }
    }

    pub(crate) fn direction(&self) -> Direction {
        self.direction
    }

    /// Routes a request head; `None` when an outbound request names no destination, and for
    /// `CONNECT`, which is routed by [`Router::tunnel_route`].
    pub(crate) fn route(&self, head: &Parts) -> Option<Route> {
        if head.method == Method::CONNECT {
            return None;
        }
        let requested = requested_authority(head);
        if let Some(app) = &self.app {
            let (authority, named) = match requested {
                Some(authority) => (authority, true),
                None => (app.target.to_string().parse().ok()?, false),
            };
            return Some(Route { cluster: app.cluster.clone(), authority, named });
        }
        let authority = requested?;
        Some(Route { cluster: self.cluster_of(&authority), authority, named: true })
    }

    /// Routes an outbound `CONNECT`: its target (`host:port`, the port required) through the
    /// services table, or passed through. `None` inbound (the app is not a proxy) and for a
    /// target without a port.
    pub(crate) fn tunnel_route(&self, head: &Parts) -> Option<Route> {
        if self.app.is_some() || head.method != Method::CONNECT {
            return None;
        }
        let authority = head.uri.authority()?;
        authority.port_u16()?;
        Some(Route {
            cluster: self.cluster_of(authority),
            authority: authority.clone(),
            named: true,
        })
    }

    /// The cluster of an outbound authority: its service's, or the passthrough.
    fn cluster_of(&self, authority: &Authority) -> Arc<str> {
        let (host, port) = host_port(authority);
        match self.service(&host, port) {
            Some(service) => service.cluster.clone(),
            None => Arc::clone(&PASSTHROUGH),
        }
    }

    fn service(&self, host: &str, port: u16) -> Option<&Service> {
        self.services.get(&port)?.get(host)
    }

    /// Where to connect for a forwarded request's authority.
    pub(crate) fn target(&self, authority: Option<&Authority>) -> Option<Endpoint> {
        if let Some(app) = &self.app {
            return Some(app.target.clone());
        }
        let (host, port) = host_port(authority?);
        match self.service(&host, port) {
            Some(service) => Some(service.target.clone()),
            None => Some(Endpoint::new(host.into_owned(), port)),
        }
    }
}

fn service(route: &ServiceRoute) -> Service {
    Service { cluster: outbound_cluster(route).into(), target: route.target.clone() }
}

/// The cluster of every inbound request to `app`: `inbound|<app port>||`.
pub(crate) fn inbound_cluster(app: &Endpoint) -> String {
    format!("inbound|{}||", app.port)
}

/// The cluster of a services-table entry: `outbound|<port>||<host>`.
pub(crate) fn outbound_cluster(route: &ServiceRoute) -> String {
    format!("outbound|{}||{}", route.port, route.host)
}

/// The names a pod in `namespace` may use for a Kubernetes service FQDN, as Istio's outbound
/// virtual hosts list them (`<name>` only from the same namespace).
fn aliases(host: &str, namespace: &str) -> Vec<String> {
    let Some(short) = host.strip_suffix(".svc.cluster.local") else {
        return Vec::new();
    };
    let Some((name, service_namespace)) = short.split_once('.') else {
        return Vec::new();
    };
    if service_namespace.contains('.') {
        return Vec::new();
    }
    let mut aliases = vec![short.to_owned(), format!("{short}.svc")];
    if service_namespace == namespace {
        aliases.push(name.to_owned());
    }
    aliases
}

/// The authority a request names: an absolute-form URI's (HTTP/1 proxy requests, and every
/// HTTP/2 request), else the `Host` header's.
pub(crate) fn requested_authority(head: &Parts) -> Option<Authority> {
    if let Some(authority) = head.uri.authority() {
        return Some(authority.clone());
    }
    let host = head.headers.get(header::HOST)?;
    Authority::try_from(host.as_bytes()).ok().filter(|authority| !authority.host().is_empty())
}

/// Lowercase host without IPv6 brackets (copied only when it has capitals), and the port (80
/// when absent).
fn host_port(authority: &Authority) -> (Cow<'_, str>, u16) {
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let host = if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    (host, authority.port_u16().unwrap_or(80))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(services: &[(&str, u16, &str)], namespace: &str) -> SidecarConfig {
        let text = format!(
            "kind: Sidecar\nmetadata: {{name: app, namespace: {namespace}}}\nspec:\n  services: {{{}}}\n",
            services
                .iter()
                .map(|(host, port, target)| format!("\"{host}:{port}\": \"{target}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match crate::config::load(&text, "test") {
            Ok(config) => config,
            Err(errors) => panic!("{errors}"),
        }
    }

    fn head(uri: &str, host: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(()).map(|request| request.into_parts().0).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn outbound_routes_by_table_alias_and_passthrough() {
        let config = config(
            &[
                ("reviews.default.svc.cluster.local", 9080, "127.0.0.1:19080"),
                ("web", 80, "127.0.0.1:18080"),
                ("ratings.other.svc.cluster.local", 9080, "127.0.0.1:29080"),
            ],
            "default",
        );
        let router = Router::outbound(&config);
        let cluster = |uri: &str, host: Option<&str>| {
            router.route(&head(uri, host)).map(|r| r.cluster.to_string())
        };
        let reviews = Some("outbound|9080||reviews.default.svc.cluster.local".to_owned());
        assert_eq!(cluster("/", Some("reviews.default.svc.cluster.local:9080")), reviews);
        assert_eq!(cluster("/", Some("Reviews:9080")), reviews);
        assert_eq!(cluster("/", Some("reviews.default.svc:9080")), reviews);
        assert_eq!(cluster("http://reviews.default:9080/x", Some("ignored:1")), reviews);
        assert_eq!(cluster("/", Some("web")), Some("outbound|80||web".to_owned()));
        assert_eq!(cluster("/", Some("ratings:9080")).as_deref(), Some(PASSTHROUGH_CLUSTER));
        assert_eq!(
            cluster("/", Some("ratings.other:9080")).as_deref(),
            Some("outbound|9080||ratings.other.svc.cluster.local")
        );
        assert_eq!(cluster("/", Some("example.com:8080")).as_deref(), Some(PASSTHROUGH_CLUSTER));
        assert_eq!(cluster("/", None), None);
        let named = |uri: &str, host: Option<&str>| router.route(&head(uri, host)).map(|r| r.named);
        assert_eq!(named("/", Some("web")), Some(true));
        assert_eq!(named("http://reviews.default:9080/x", None), Some(true));
        let connect = http::Request::connect("example.com:443").body(()).map(|r| r.into_parts().0);
        assert!(router.route(&connect.unwrap_or_else(|e| panic!("{e}"))).is_none());

        let target = |authority: &str| router.target(authority.parse().ok().as_ref());
        assert_eq!(target("reviews:9080"), Some(Endpoint::new("127.0.0.1", 19080)));
        assert_eq!(target("web"), Some(Endpoint::new("127.0.0.1", 18080)));
        assert_eq!(target("example.com"), Some(Endpoint::new("example.com", 80)));
        assert_eq!(target("[::1]:81"), Some(Endpoint::new("::1", 81)));
    }

    #[test]
    fn inbound_goes_to_the_app() {
        let router = Router::inbound(&Endpoint::new("127.0.0.1", 9080));
        let route = router.route(&head("/", None)).unwrap_or_else(|| panic!("no route"));
        assert_eq!(&*route.cluster, "inbound|9080||");
        assert_eq!(route.authority.as_str(), "127.0.0.1:9080");
        assert!(!route.named, "the app's address stands in; observers see no authority");
        let route = router.route(&head("/", Some("productpage:9080")));
        let route = route.unwrap_or_else(|| panic!("no route"));
        assert_eq!(route.authority.as_str(), "productpage:9080");
        assert!(route.named);
        assert_eq!(router.target(None), Some(Endpoint::new("127.0.0.1", 9080)));
    }
}
