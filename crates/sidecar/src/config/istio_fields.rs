//! Istio fields the sidecar accepts and ignores.
//!
//! `IstioOperator`, `MeshConfig` and `ProxyConfig` are large: most of their fields configure
//! installation, istiod or Envoy features that have nothing to do with tracing. A real
//! `IstioOperator` often sets some of them (`profile`, `accessLogFile`, `meshId`, …), so
//! rejecting them would refuse valid Istio resources; accepting *any* key would hide typos in the
//! fields we do read. So the fields named here (from `istio/api` `mesh/v1alpha1` and
//! `operator/v1alpha1`) are removed before the typed read, and every other unknown key is still
//! an error listing the keys the sidecar reads.
//!
//! Istio reads these documents with protobuf's JSON parser, which accepts each field under its
//! camelCase JSON name and its snake_case proto name; both spellings are recognised here.

use ::config::{Map, Value};

/// `IstioOperator.spec` fields other than `meshConfig`.
pub(crate) const ISTIO_OPERATOR_SPEC: &[&str] = &[
    "profile",
    "installPackagePath",
    "hub",
    "tag",
    "resourceSuffix",
    "namespace",
    "revision",
    "compatibilityVersion",
    "defaultRevision",
    "components",
    "addonComponents",
    "values",
    "unvalidatedValues",
];

/// `MeshConfig` fields that do not affect tracing (current and deprecated ones).
pub(crate) const MESH_CONFIG: &[&str] = &[
    "proxyListenPort",
    "proxyInboundListenPort",
    "proxyHttpPort",
    "connectTimeout",
    "protocolDetectionTimeout",
    "tcpKeepalive",
    "ingressClass",
    "ingressService",
    "ingressControllerMode",
    "ingressSelector",
    "accessLogFile",
    "accessLogFormat",
    "accessLogEncoding",
    "enableEnvoyAccessLogService",
    "disableEnvoyListenerLog",
    "outboundTrafficPolicy",
    "inboundTrafficPolicy",
    "configSources",
    "enableAutoMtls",
    "trustDomainAliases",
    "caCertificates",
    "defaultServiceExportTo",
    "defaultVirtualServiceExportTo",
    "defaultDestinationRuleExportTo",
    "localityLbSetting",
    "dnsRefreshRate",
    "h2UpgradePolicy",
    "inboundClusterStatName",
    "outboundClusterStatName",
    "certificates",
    "thriftConfig",
    "serviceSettings",
    "serviceScopeConfigs",
    "enablePrometheusMerge",
    "verifyCertificateAtClient",
    "ca",
    "discoverySelectors",
    "pathNormalization",
    "defaultHttpRetryPolicy",
    "meshMTLS",
    "tlsDefaults",
    "mixerCheckServer",
    "mixerReportServer",
    "mixerAddress",
    "disablePolicyChecks",
    "disableMixerHttpReports",
    "policyCheckFailOpen",
    "sidecarToTelemetrySessionAffinity",
    "authPolicy",
    "rdsRefreshDelay",
    "enableClientSidePolicyCheck",
    "sdsUdsPath",
    "sdsRefreshDelay",
    "enableSdsTokenMount",
    "sdsUseK8sSaJwt",
    "disableReportBatch",
    "reportBatchMaxEntries",
    "reportBatchMaxTime",
];

/// `ProxyConfig` (`meshConfig.defaultConfig`) fields that do not affect tracing.
pub(crate) const PROXY_CONFIG: &[&str] = &[
    "configPath",
    "binaryPath",
    "drainDuration",
    "parentShutdownDuration",
    "discoveryAddress",
    "discoveryRefreshDelay",
    "statsdUdpAddress",
    "envoyMetricsServiceAddress",
    "proxyAdminPort",
    "availabilityZone",
    "controlPlaneAuthPolicy",
    "customConfigFile",
    "statNameLength",
    "concurrency",
    "proxyBootstrapTemplatePath",
    "interceptionMode",
    "sds",
    "envoyAccessLogService",
    "envoyMetricsService",
    "runtimeValues",
    "statusPort",
    "extraStatTags",
    "gatewayTopology",
    "terminationDrainDuration",
    "meshId",
    "readinessProbe",
    "proxyStatsMatcher",
    "holdApplicationUntilProxyStarts",
    "caCertificatesPem",
    "image",
    "privateKeyProvider",
    "proxyHeaders",
    "fileFlushInterval",
    "fileFlushMinSize",
];

/// The camelCase form of a snake_case proto field name (`max_tag_length` → `maxTagLength`).
pub(crate) fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `key` (in either spelling) is one of `fields`.
pub(crate) fn is_one_of(key: &str, fields: &[&str]) -> bool {
    let camel = camel_case(key);
    fields.contains(&camel.as_str())
}

/// Removes the keys of `map` that are among `ignored`.
fn strip(map: &mut Map, ignored: &[&str]) {
    let doomed: Vec<String> =
        map.keys().filter(|key| is_one_of(key, ignored)).map(str::to_owned).collect();
    for key in doomed {
        map.remove(&key);
    }
}

/// The map under `key` (either spelling) in `map`, mutably.
fn child<'a>(map: &'a mut Map, key: &str) -> Option<&'a mut Map> {
    let found = map.keys().find(|k| camel_case(k) == key).map(str::to_owned)?;
    map.get_mut(&found).and_then(Value::as_map_mut)
}

/// Strips the ignored fields of a `MeshConfig` map and of its `defaultConfig`.
pub(crate) fn strip_mesh_config(mesh: &mut Value) {
    let Some(map) = mesh.as_map_mut() else {
        return;
    };
    strip(map, MESH_CONFIG);
    if let Some(proxy) = child(map, "defaultConfig") {
        strip(proxy, PROXY_CONFIG);
    }
}

/// Strips the ignored fields of an `IstioOperator` document (`spec`, `spec.meshConfig`,
/// `spec.meshConfig.defaultConfig`).
pub(crate) fn strip_istio_operator(document: &mut Value) {
    let Some(spec) = document.get_mut("spec").and_then(Value::as_map_mut) else {
        return;
    };
    strip(spec, ISTIO_OPERATOR_SPEC);
    let Some(key) = spec.keys().find(|k| camel_case(k) == "meshConfig").map(str::to_owned) else {
        return;
    };
    if let Some(mesh) = spec.get_mut(&key) {
        strip_mesh_config(mesh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_of_proto_names() {
        assert_eq!(camel_case("resource_detectors"), "resourceDetectors");
        assert_eq!(camel_case("accessLogFile"), "accessLogFile");
        assert!(is_one_of("access_log_file", MESH_CONFIG));
        assert!(!is_one_of("enableTracing", MESH_CONFIG));
    }
}
