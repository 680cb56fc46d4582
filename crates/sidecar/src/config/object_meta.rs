//! [`ObjectMeta`]: the `metadata:` block every Kubernetes-style document carries.

use std::collections::BTreeMap;

use ::config::Value;
use serde::Deserialize;

/// A document's `metadata`: name, namespace, labels and annotations.
///
/// The fields `kubectl get -o yaml` adds (`uid`, `resourceVersion`, `managedFields`, …) are
/// accepted and ignored, so a resource copied from a cluster loads as it is; any other key is an
/// error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `metadata.namespace`; when absent, see each document kind for what applies.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    uid: Option<Value>,
    #[serde(default)]
    resource_version: Option<Value>,
    #[serde(default)]
    generation: Option<Value>,
    #[serde(default)]
    creation_timestamp: Option<Value>,
    #[serde(default)]
    deletion_timestamp: Option<Value>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<Value>,
    #[serde(default)]
    generate_name: Option<Value>,
    #[serde(default)]
    managed_fields: Option<Value>,
    #[serde(default)]
    owner_references: Option<Value>,
    #[serde(default)]
    finalizers: Option<Value>,
    #[serde(default)]
    self_link: Option<Value>,
}
