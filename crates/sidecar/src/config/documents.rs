//! The config file: YAML documents separated by `---`, each dispatched by `kind` (and
//! `apiVersion`) to the module that reads it.
//!
//! | document | read by |
//! |---|---|
//! | `kind: Sidecar` (no apiVersion, or `meshtrace.io/v1alpha1`) | `sidecar_resource.rs` |
//! | `kind: IstioOperator` (`install.istio.io/v1alpha1`) | `mesh_config.rs` |
//! | `meshConfig:` alone, or a MeshConfig itself (`enableTracing:`, `extensionProviders:`, …) | `mesh_config.rs` |
//! | `kind: Telemetry` (`telemetry.istio.io/v1`, `v1alpha1`) | `telemetry.rs` |
//! | `kind: Deployment` (`apps/v1`) | `linkerd.rs` |
//! | `kind: EnvoyFilter` | `envoy_filter.rs` (always an error naming the native rule) |
//! | `tracing:` alone (an Envoy connection manager tracing block) | `envoy_tracing.rs` |
//! | `static_resources:` (an Envoy bootstrap) | `envoy_bootstrap.rs` |
//!
//! Documents are numbered from 1, skipping empty ones, and every error path starts with the
//! document's label, e.g. `document 2 (Telemetry otel-demo).spec.tracing[0]…`. A YAML syntax
//! error names the file, line and column in the whole file.

use ::config::{ConfigError, ConfigErrors, Value};

use super::envoy_bootstrap::{self, EnvoyBootstrap};
use super::envoy_filter;
use super::envoy_tracing::{self, EnvoyTracing};
use super::istio_fields::{MESH_CONFIG, is_one_of};
use super::linkerd::{self, DEPLOYMENT_API_VERSION, DeploymentResource};
use super::mesh_config::{self, ISTIO_OPERATOR_API_VERSION, MeshConfigSource};
use super::sidecar_resource::{self, SIDECAR_API_VERSION, SidecarResource};
use super::telemetry::{self, TELEMETRY_API_VERSIONS, TelemetryResource};

/// One parsed and validated document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Document {
    Sidecar(Box<SidecarResource>),
    Mesh(Box<MeshConfigSource>),
    Telemetry(TelemetryResource),
    Deployment(Box<DeploymentResource>),
    EnvoyTracing(EnvoyTracing),
    EnvoyBootstrap(EnvoyBootstrap),
}

/// The documents of one config file, each parsed and checked on its own; see
/// [`Documents::settings`] for the merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Documents {
    pub(crate) documents: Vec<Document>,
    labels: Vec<String>,
}

impl Documents {
    /// The documents' labels in file order, e.g. `document 1 (Sidecar productpage-v1)`.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
}

/// What the dispatcher decided a document is.
enum Kind {
    Sidecar,
    IstioOperator,
    BareMeshConfig,
    MeshConfig,
    Telemetry,
    Deployment,
    EnvoyFilter,
    EnvoyTracing,
    EnvoyBootstrap,
}

/// The kinds the error for an unknown kind lists.
const SUPPORTED: &str = "the sidecar reads Sidecar, IstioOperator, Telemetry, Deployment and EnvoyFilter \
                         documents, and kind-less meshConfig:, tracing: and static_resources: documents";

/// Parses every document of `text`; `source` names the file in syntax errors. All problems of
/// all documents are reported together.
pub fn parse_documents(text: &str, source: &str) -> Result<Documents, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let mut documents = Vec::new();
    let mut labels = Vec::new();
    let mut number = 0;
    for chunk in split(text) {
        if chunk.trim_start_matches('\n').lines().all(|line| {
            let line = line.trim();
            line.is_empty() || line.starts_with('#')
        }) {
            continue;
        }
        number += 1;
        let value = match ::config::parse_yaml(&chunk, source) {
            Ok(value) => value,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let label = label(number, &value);
        match parse_one(&value, &label) {
            Ok(document) => documents.push(document),
            Err(more) => errors.extend(more),
        }
        labels.push(label);
    }
    errors.into_result()?;
    Ok(Documents { documents, labels })
}

/// Splits a multi-document file at `---` (and `...`) lines. Each piece is padded with the
/// newlines before it, so the YAML parser reports line numbers of the whole file.
fn split(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let marker = ["---", "..."].iter().find(|m| {
            line.strip_prefix(**m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        });
        match marker {
            Some(marker) => {
                pieces.push(std::mem::take(&mut current));
                current = "\n".repeat(index);
                // Content after `--- ` belongs to the next document; keep its columns.
                current.push_str(&" ".repeat(marker.len()));
                current.push_str(&line[marker.len()..]);
                current.push('\n');
            }
            None => {
                current.push_str(line);
                current.push('\n');
            }
        }
    }
    pieces.push(current);
    pieces
}

/// `document 3 (Telemetry mesh-tracing)`, `document 1 (Envoy tracing)`, `document 2`.
fn label(number: usize, value: &Value) -> String {
    let kind = match value.get("kind").and_then(Value::as_str) {
        Some(kind) => Some(kind.to_owned()),
        None if value.get("kind").is_some() => None,
        None => match classify(value) {
            Ok(Kind::BareMeshConfig) => Some("meshConfig".to_owned()),
            Ok(Kind::MeshConfig) => Some("MeshConfig".to_owned()),
            Ok(Kind::EnvoyTracing) => Some("Envoy tracing".to_owned()),
            Ok(Kind::EnvoyBootstrap) => Some("Envoy bootstrap".to_owned()),
            _ => None,
        },
    };
    let name =
        value.get_path(&["metadata", "name"]).and_then(Value::as_str).filter(|n| !n.is_empty());
    match (kind, name) {
        (Some(kind), Some(name)) => format!("document {number} ({kind} {name})"),
        (Some(kind), None) => format!("document {number} ({kind})"),
        (None, _) => format!("document {number}"),
    }
}

fn parse_one(value: &Value, label: &str) -> Result<Document, ConfigErrors> {
    let kind = classify(value)
        .map_err(|(path, message)| ConfigError::new(format!("{label}{path}"), message))?;
    Ok(match kind {
        Kind::Sidecar => Document::Sidecar(Box::new(sidecar_resource::parse(value, label)?)),
        Kind::IstioOperator => {
            Document::Mesh(Box::new(mesh_config::parse_istio_operator(value, label)?))
        }
        Kind::BareMeshConfig => {
            Document::Mesh(Box::new(mesh_config::parse_bare_mesh_config(value, label)?))
        }
        Kind::MeshConfig => Document::Mesh(Box::new(mesh_config::parse_mesh_config(value, label)?)),
        Kind::Telemetry => Document::Telemetry(telemetry::parse(value, label)?),
        Kind::Deployment => {
            Document::Deployment(Box::new(linkerd::parse_deployment(value, label)?))
        }
        Kind::EnvoyFilter => return Err(envoy_filter::errors(value, label)),
        Kind::EnvoyTracing => Document::EnvoyTracing(envoy_tracing::parse_document(value, label)?),
        Kind::EnvoyBootstrap => Document::EnvoyBootstrap(envoy_bootstrap::parse(value, label)?),
    })
}

/// Decides what a document is; errors are `(path below the label, message)`.
fn classify(value: &Value) -> Result<Kind, (String, String)> {
    let Some(map) = value.as_map() else {
        return Err((String::new(), format!("expected a map, found a {}", value.kind())));
    };
    let api_version = match map.get("apiVersion") {
        None => None,
        Some(Value::String(text)) => Some(text.as_str()),
        Some(other) => {
            return Err((
                ".apiVersion".into(),
                format!("invalid type: {}, expected a string", other.kind()),
            ));
        }
    };
    let kind = match map.get("kind") {
        None => return classify_kindless(value, api_version),
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err((
                ".kind".into(),
                format!("invalid type: {}, expected a string", other.kind()),
            ));
        }
    };
    let versions = |accepted: &[&str], kind: Kind| match api_version {
        None => Ok(kind),
        Some(version) if accepted.contains(&version) => Ok(kind),
        Some(version) => Err((
            ".apiVersion".to_owned(),
            format!(
                "unsupported apiVersion {version:?} for kind {}: expected {}",
                kind_name(&kind),
                accepted.join(" or ")
            ),
        )),
    };
    match kind {
        "Sidecar" if api_version.is_some_and(|v| v.starts_with("networking.istio.io/")) => Err((
            ".apiVersion".into(),
            "Istio's networking Sidecar resource (egress scoping) is not supported; the meshtrace Sidecar \
             document has no apiVersion, or meshtrace.io/v1alpha1"
                .into(),
        )),
        "Sidecar" => versions(&[SIDECAR_API_VERSION], Kind::Sidecar),
        "IstioOperator" => versions(&[ISTIO_OPERATOR_API_VERSION], Kind::IstioOperator),
        "Telemetry" => versions(TELEMETRY_API_VERSIONS, Kind::Telemetry),
        "Deployment" => versions(&[DEPLOYMENT_API_VERSION], Kind::Deployment),
        "EnvoyFilter" => Ok(Kind::EnvoyFilter),
        "ConfigMap" => Err((
            ".kind".into(),
            format!("unsupported kind \"ConfigMap\" (a collector config belongs to `meshtrace collector`): {SUPPORTED}"),
        )),
        other => Err((".kind".into(), format!("unsupported kind {other:?}: {SUPPORTED}"))),
    }
}

fn classify_kindless(value: &Value, api_version: Option<&str>) -> Result<Kind, (String, String)> {
    if api_version.is_some() {
        return Err((".kind".into(), "missing required key".into()));
    }
    let keys: Vec<&str> = value.as_map().map(|map| map.keys().collect()).unwrap_or_default();
    let mesh_fields = [
        "enableTracing",
        "rootNamespace",
        "defaultConfig",
        "extensionProviders",
        "defaultProviders",
    ];
    if keys.contains(&"static_resources") {
        Ok(Kind::EnvoyBootstrap)
    } else if keys.contains(&"meshConfig") {
        Ok(Kind::BareMeshConfig)
    } else if keys.contains(&"tracing") {
        Ok(Kind::EnvoyTracing)
    } else if keys.iter().any(|key| is_one_of(key, &mesh_fields) || is_one_of(key, MESH_CONFIG)) {
        Ok(Kind::MeshConfig)
    } else {
        Err((
            String::new(),
            format!("cannot tell what this document is: it has no kind; {SUPPORTED}"),
        ))
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Sidecar => "Sidecar",
        Kind::IstioOperator => "IstioOperator",
        Kind::Telemetry => "Telemetry",
        Kind::Deployment => "Deployment",
        Kind::EnvoyFilter => "EnvoyFilter",
        Kind::BareMeshConfig | Kind::MeshConfig => "MeshConfig",
        Kind::EnvoyTracing | Kind::EnvoyBootstrap => "Envoy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_markers_and_keeps_line_numbers() {
        let pieces = split("a: 1\n---\nb: 2\n--- # c\nc: 3\n...\n");
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0], "a: 1\n");
        assert_eq!(pieces[1], "\n   \nb: 2\n");
        assert_eq!(pieces[2], "\n\n\n    # c\nc: 3\n");
        assert_eq!(pieces[3], "\n\n\n\n\n   \n");
    }

    #[test]
    fn dashes_inside_a_line_do_not_split() {
        assert_eq!(split("a: ---\n----\n").len(), 1);
    }
}
