//! Who this sidecar is, as its spans say it: the Envoy `node_id` and `zone` tags, the
//! `istio.*` tags, and the host its inbound spans are named after. Read once at start-up from
//! the workload and the process environment (the variables Istio's injector sets on
//! istio-proxy), so nothing on the request path reads the environment.

use crate::config::{
    CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL, MeshIdentity, SidecarConfig, Workload,
};
use crate::environment::Environment;

/// The sidecar's identity in its spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalInfo {
    /// The `node_id` tag: Istio's `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`.
    pub node_id: String,
    /// The `zone` tag; not written when unknown. Envoy takes it from the node's locality, which
    /// istiod derives from the Kubernetes node's topology labels; the sidecar's config has no
    /// node, so only an embedder setting [`TracingOptions::local`](super::TracingOptions) gives
    /// one, and `meshtrace sidecar` writes none (as Envoy without a locality).
    pub zone: Option<String>,
    /// `istio.mesh_id` (by default the trust domain, `cluster.local`, as Istio's injector sets
    /// it).
    pub mesh_id: String,
    /// `istio.cluster_id` (by default `Kubernetes`, Istio's default cluster name).
    pub cluster_id: String,
    /// The service host inbound spans are named after when the cluster name carries none: the
    /// configured Service (`spec.inbound.service`), else `<app>.<namespace>.svc.cluster.local`.
    pub inbound_host: String,
    /// The Service's port inbound spans are named after, when the config names the Service
    /// (`spec.inbound.service`); otherwise the inbound cluster's port names them.
    pub inbound_service_port: Option<u16>,
}

impl LocalInfo {
    /// The identity of `config`'s workload, completed from `env`: `INSTANCE_IP` and `POD_NAME`
    /// (the pod's IP and name, which Istio's injector passes to istio-proxy) build the node id,
    /// `ISTIO_META_MESH_ID` and `ISTIO_META_CLUSTER_ID` the mesh and cluster ids, over the
    /// config's ([`MeshIdentity::with_environment`]). Without them the node id uses
    /// `127.0.0.1` and the workload name.
    pub fn new(config: &SidecarConfig, env: &Environment) -> LocalInfo {
        let workload = &config.workload;
        let namespace = &workload.namespace;
        let ip = env.var("INSTANCE_IP").filter(|ip| !ip.is_empty());
        let pod = env.var("POD_NAME").filter(|pod| !pod.is_empty());
        let ip = ip.as_deref().unwrap_or("127.0.0.1");
        let pod = pod.as_deref().unwrap_or(&workload.name);
        let MeshIdentity { mesh_id, cluster_id } = config.mesh.with_environment(env);
        let service =
            config.listeners.inbound.as_ref().and_then(|inbound| inbound.service.as_ref());
        LocalInfo {
            node_id: format!("sidecar~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local"),
            zone: None,
            mesh_id,
            cluster_id,
            inbound_host: service
                .map(|service| service.host.clone())
                .unwrap_or_else(|| format!("{}.{namespace}.svc.cluster.local", app_name(workload))),
            inbound_service_port: service.map(|service| service.port),
        }
    }
}

/// The first of the labels Istio reads an app name from, else the workload name.
fn app_name(workload: &Workload) -> &str {
    first_label(workload, &["app", "app.kubernetes.io/name", CANONICAL_NAME_LABEL])
        .unwrap_or(&workload.name)
}

fn first_label<'a>(workload: &'a Workload, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| workload.labels.get(*name))
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

/// The `istio.*` tags (mesh-tracing-spec §2.4), sorted by name as Istio sends them. The
/// canonical service and revision follow Istio's label chains (`labels.CanonicalService`), as
/// Istio's injector writes them on every pod: canonical name, then `app.kubernetes.io/name`,
/// then `app`, then the workload name; canonical revision, then `app.kubernetes.io/version`,
/// then `version`, then `latest`.
pub(crate) fn istio_tags(workload: &Workload, local: &LocalInfo) -> Vec<(String, String)> {
    let service = first_label(workload, &[CANONICAL_NAME_LABEL, "app.kubernetes.io/name", "app"])
        .unwrap_or(&workload.name);
    let revision =
        first_label(workload, &[CANONICAL_REVISION_LABEL, "app.kubernetes.io/version", "version"])
            .unwrap_or("latest");
    vec![
        ("istio.canonical_revision".to_owned(), revision.to_owned()),
        ("istio.canonical_service".to_owned(), service.to_owned()),
        ("istio.cluster_id".to_owned(), local.cluster_id.clone()),
        ("istio.mesh_id".to_owned(), local.mesh_id.clone()),
        ("istio.namespace".to_owned(), workload.namespace.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn workload(labels: &[(&str, &str)]) -> Workload {
        Workload {
            name: "reviews-v2".into(),
            namespace: "bookinfo".into(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            annotations: BTreeMap::new(),
        }
    }

    fn config(workload: Workload) -> SidecarConfig {
        let text = "kind: Sidecar\nmetadata: {name: w}\n";
        let mut config = crate::config::load(text, "t.yaml").unwrap();
        config.workload = workload;
        config
    }

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::Fixed(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn node_id_and_ids_come_from_the_pod_environment() {
        let config = config(workload(&[("app", "reviews"), ("version", "v2")]));
        let vars = [
            ("INSTANCE_IP", "10.1.2.3"),
            ("POD_NAME", "reviews-v2-5d8f"),
            ("ISTIO_META_MESH_ID", "mesh1"),
            ("ISTIO_META_CLUSTER_ID", "Kubernetes"),
        ];
        let local = LocalInfo::new(&config, &env(&vars));
        assert_eq!(
            local.node_id,
            "sidecar~10.1.2.3~reviews-v2-5d8f.bookinfo~bookinfo.svc.cluster.local"
        );
        assert_eq!((local.mesh_id.as_str(), local.cluster_id.as_str()), ("mesh1", "Kubernetes"));
        assert_eq!(local.inbound_host, "reviews.bookinfo.svc.cluster.local");
        let bare = LocalInfo::new(&config, &env(&[]));
        assert_eq!(
            bare.node_id,
            "sidecar~127.0.0.1~reviews-v2.bookinfo~bookinfo.svc.cluster.local"
        );
        assert_eq!(
            (bare.mesh_id.as_str(), bare.cluster_id.as_str()),
            ("cluster.local", "Kubernetes")
        );
        // The environment wins over the config, as istio-proxy's own variables do in Istio.
        let mut named = config.clone();
        named.mesh = MeshIdentity { mesh_id: "blue".into(), cluster_id: "east".into() };
        let local = LocalInfo::new(&named, &env(&[]));
        assert_eq!((local.mesh_id.as_str(), local.cluster_id.as_str()), ("blue", "east"));
        let local = LocalInfo::new(&named, &env(&vars));
        assert_eq!((local.mesh_id.as_str(), local.cluster_id.as_str()), ("mesh1", "Kubernetes"));
    }

    #[test]
    fn istio_tags_follow_the_canonical_label_chains() {
        let local = LocalInfo::new(&config(workload(&[])), &env(&[]));
        let tags = istio_tags(&workload(&[("app", "reviews"), ("version", "v2")]), &local);
        let expected = [
            ("istio.canonical_revision", "v2"),
            ("istio.canonical_service", "reviews"),
            ("istio.cluster_id", "Kubernetes"),
            ("istio.mesh_id", "cluster.local"),
            ("istio.namespace", "bookinfo"),
        ];
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tags, expected);
        let labels =
            [(CANONICAL_NAME_LABEL, "ratings"), (CANONICAL_REVISION_LABEL, "r7"), ("app", "x")];
        let tags = istio_tags(&workload(&labels), &local);
        assert_eq!(tags[0].1, "r7");
        assert_eq!(tags[1].1, "ratings");
        let tags = istio_tags(&workload(&[]), &local);
        assert_eq!((tags[0].1.as_str(), tags[1].1.as_str()), ("latest", "reviews-v2"));
    }
}
