//! An Envoy bootstrap (`static_resources:` at the top, as the first seed's
//! `envoy-tracing-config.yaml`): the sidecar takes its HTTP connection manager's `tracing` block
//! and the address of the cluster that block exports to.
//!
//! A bootstrap describes a whole Envoy (listeners, routes, clusters, admin, …) and the Sidecar
//! document replaces all of that, so, like a Deployment's pod spec, everything outside the
//! tracing block and the exporter's cluster is accepted without being read. The tracing block
//! itself is read strictly (`envoy_tracing.rs`).

use ::config::{ConfigError, ConfigErrors, Value};

use super::envoy_tracing::{EnvoyTracing, parse_block};
use super::settings::Endpoint;

/// The connection manager's filter name and type URL suffix.
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// A bootstrap as the sidecar reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvoyBootstrap {
    pub(crate) tracing: Option<EnvoyTracing>,
    /// `static_resources.clusters`: name and first endpoint address.
    pub(crate) clusters: Vec<(String, Endpoint)>,
}

/// Parses a bootstrap document; at most one connection manager may carry a `tracing` block.
pub(crate) fn parse(value: &Value, label: &str) -> Result<EnvoyBootstrap, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let resources = value.get("static_resources");
    let mut blocks = Vec::new();
    let listeners =
        resources.and_then(|r| r.get("listeners")).and_then(Value::as_seq).unwrap_or(&[]);
    for (l, listener) in listeners.iter().enumerate() {
        let chains = listener.get("filter_chains").and_then(Value::as_seq).unwrap_or(&[]);
        for (c, chain) in chains.iter().enumerate() {
            let filters = chain.get("filters").and_then(Value::as_seq).unwrap_or(&[]);
            for (f, filter) in filters.iter().enumerate() {
                if !is_connection_manager(filter) {
                    continue;
                }
                if let Some(tracing) = filter.get_path(&["typed_config", "tracing"]) {
                    let path = format!(
                        "{label}.static_resources.listeners[{l}].filter_chains[{c}].filters[{f}].typed_config.tracing"
                    );
                    blocks.push((path, tracing));
                }
            }
        }
    }
    if blocks.len() > 1 {
        errors.push(ConfigError::new(
            &blocks[1].0,
            format!(
                "a second tracing block (the first is at {}): the sidecar takes one tracing block per bootstrap",
                blocks[0].0
            ),
        ));
    }
    let tracing = match blocks.first() {
        Some((path, block)) => match parse_block(block, path) {
            Ok(tracing) => Some(tracing),
            Err(more) => {
                errors.extend(more);
                None
            }
        },
        None => None,
    };
    let clusters = clusters(resources, label, &mut errors);
    errors.into_result()?;
    Ok(EnvoyBootstrap { tracing, clusters })
}

fn is_connection_manager(filter: &Value) -> bool {
    let named = filter.get("name").and_then(Value::as_str) == Some(HCM_NAME);
    let typed = filter
        .get_path(&["typed_config", "@type"])
        .and_then(Value::as_str)
        .is_some_and(|url| url.ends_with(HCM_TYPE));
    named || typed
}

/// Each static cluster's name and its first endpoint's `socket_address`.
fn clusters(
    resources: Option<&Value>,
    label: &str,
    errors: &mut ConfigErrors,
) -> Vec<(String, Endpoint)> {
    let mut out = Vec::new();
    let clusters = resources.and_then(|r| r.get("clusters")).and_then(Value::as_seq).unwrap_or(&[]);
    for (i, cluster) in clusters.iter().enumerate() {
        let Some(name) = cluster.get("name").and_then(Value::as_str) else {
            continue;
        };
        let first = cluster
            .get_path(&["load_assignment", "endpoints"])
            .and_then(Value::as_seq)
            .and_then(|endpoints| endpoints.first())
            .and_then(|locality| locality.get("lb_endpoints"))
            .and_then(Value::as_seq)
            .and_then(|endpoints| endpoints.first())
            .and_then(|endpoint| endpoint.get_path(&["endpoint", "address", "socket_address"]));
        let Some(socket) = first else {
            continue;
        };
        let path = format!(
            "{label}.static_resources.clusters[{i}].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address"
        );
        let host = socket.get("address").and_then(Value::as_str);
        let port =
            socket.get("port_value").and_then(Value::as_i64).and_then(|p| u16::try_from(p).ok());
        match (host, port) {
            (Some(host), Some(port)) if !host.is_empty() => {
                out.push((name.to_owned(), Endpoint::new(host, port)))
            }
            _ => errors.push(ConfigError::new(
                path,
                "expected address (a host) and port_value (0 to 65535)",
            )),
        }
    }
    out
}
