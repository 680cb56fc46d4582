//! Collector-shaped config structs for the golden tests, and the code
//! that builds each component from its subtree the way a collector would.

#![allow(dead_code, reason = "the config structs' fields are only read through Debug")]

use std::collections::BTreeMap;
use std::fmt::Debug;

use config::{
    ConfigError, ConfigErrors, Duration, ListenAddress, Value, from_value, some_if_present,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    pub protocols: Protocols,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocols {
    #[serde(deserialize_with = "some_if_present")]
    pub grpc: Option<GrpcServerConfig>,
    #[serde(deserialize_with = "some_if_present")]
    pub http: Option<HttpServerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcServerConfig {
    pub endpoint: ListenAddress,
    transport: Transport,
    max_recv_msg_size_mib: u64,
    read_buffer_size: Option<u64>,
    tls: Option<TlsServerConfig>,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        GrpcServerConfig {
            endpoint: ListenAddress::new("0.0.0.0", 4317),
            transport: Transport::Tcp,
            max_recv_msg_size_mib: 4,
            read_buffer_size: None,
            tls: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Transport {
    #[default]
    Tcp,
    Unix,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TlsServerConfig {
    cert_file: String,
    key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    pub endpoint: ListenAddress,
    include_metadata: bool,
    cors: Option<CorsConfig>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            endpoint: ListenAddress::new("0.0.0.0", 4318),
            include_metadata: false,
            cors: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CorsConfig {
    allowed_origins: Vec<String>,
    max_age: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct BatchConfig {
    timeout: Duration,
    send_batch_size: u32,
    send_batch_max_size: u32,
    metadata_keys: Vec<String>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            timeout: Duration(std::time::Duration::from_millis(200)),
            send_batch_size: 8192,
            send_batch_max_size: 0,
            metadata_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OtlpExporterConfig {
    endpoint: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    tls: ClientTlsConfig,
    #[serde(default)]
    compression: Compression,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ClientTlsConfig {
    insecure: bool,
    ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LoggingExporterConfig {
    loglevel: LogLevel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct HealthCheckConfig {
    endpoint: Option<ListenAddress>,
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServiceConfig {
    extensions: Vec<String>,
    pipelines: BTreeMap<String, PipelineConfig>,
    telemetry: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PipelineConfig {
    receivers: Vec<String>,
    processors: Vec<String>,
    exporters: Vec<String>,
}

/// Deserializes one component and renders it on one line.
fn typed<T: DeserializeOwned + Debug>(
    value: &Value,
    path: &str,
    out: &mut Vec<String>,
) -> ConfigErrors {
    match from_value::<T>(value, path) {
        Ok(typed) => {
            out.push(format!("{path}: {typed:?}"));
            ConfigErrors::new()
        }
        Err(errors) => errors,
    }
}

/// Builds every component the tests know, collecting all errors as a
/// collector does before refusing to start.
pub fn typed_collector(root: &Value) -> (Vec<String>, ConfigErrors) {
    let mut out = Vec::new();
    let mut errors = ConfigErrors::new();
    let sections = ["receivers", "processors", "exporters", "extensions"];
    for section in sections {
        let Some(components) = root.get(section).and_then(Value::as_map) else {
            continue;
        };
        for (id, value) in components.iter() {
            let path = format!("{section}.{id}");
            let kind = id.split('/').next().unwrap_or(id);
            errors.extend(match (section, kind) {
                ("receivers", "otlp") => typed::<OtlpReceiverConfig>(value, &path, &mut out),
                ("processors", "batch") => typed::<BatchConfig>(value, &path, &mut out),
                ("exporters", "otlp") => typed::<OtlpExporterConfig>(value, &path, &mut out),
                ("exporters", "logging") => typed::<LoggingExporterConfig>(value, &path, &mut out),
                ("extensions", "health_check") => {
                    typed::<HealthCheckConfig>(value, &path, &mut out)
                }
                _ => ConfigError::new(path, format!("unknown component type {kind:?}")).into(),
            });
        }
    }
    if let Some(service) = root.get("service") {
        errors.extend(typed::<ServiceConfig>(service, "service", &mut out));
    }
    (out, errors)
}
