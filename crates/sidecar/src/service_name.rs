//! Kubernetes service names: how a client in a namespace completes a short name (`reviews`,
//! `reviews.default`, `reviews.default.svc`) into the service's FQDN. The config reads the
//! Service in front of the workload with it, and the metrics which service an exchange was for.

use std::net::IpAddr;

/// Kubernetes' default cluster domain, the one Istio's service FQDNs end with.
pub(crate) const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// The FQDN a Kubernetes client in `local_namespace` reaches by `host`, when `host` reads as a
/// service name: `name`, `name.namespace` (any namespace when `any_namespace`, otherwise only
/// the local one, since `name.other` is as likely an external domain), `name.namespace.svc`,
/// or the FQDN itself.
pub(crate) fn qualify(host: &str, local_namespace: &str, any_namespace: bool) -> Option<String> {
    if host.is_empty()
        || host == "localhost"
        || host.parse::<IpAddr>().is_ok()
        || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.iter().any(|label| label.is_empty()) {
        return None;
    }
    match labels[..] {
        [name] => Some(format!("{name}.{local_namespace}.{CLUSTER_DOMAIN}")),
        [name, namespace] if any_namespace || namespace == local_namespace => {
            Some(format!("{name}.{namespace}.{CLUSTER_DOMAIN}"))
        }
        [name, namespace, "svc"] => Some(format!("{name}.{namespace}.{CLUSTER_DOMAIN}")),
        [_, _, "svc", "cluster", "local"] => Some(host.to_owned()),
        _ => None,
    }
}
