//! The `otlp` receiver's YAML, with the collector's defaults, and its validation.

use serde::{Deserialize, Deserializer};
use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;
use transport::tls::ServerTlsConfig;

/// `receivers.otlp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    #[serde(default)]
    pub protocols: ProtocolsConfig,
}

/// `protocols`: a protocol is enabled when its key is present, even with nothing after it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolsConfig {
    #[serde(default, deserialize_with = "present")]
    pub grpc: Option<GrpcConfig>,
    #[serde(default, deserialize_with = "present")]
    pub http: Option<HttpConfig>,
}

/// Called only when the key is present, so `grpc:` with an empty value becomes the defaults
/// rather than "disabled".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Option<T>, D::Error> {
    T::deserialize(de).map(Some)
}

/// `protocols.grpc`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub endpoint: String,
    pub transport: String,
    pub max_recv_msg_size_mib: u64,
    pub max_concurrent_streams: u32,
    pub tls: Option<ServerTlsConfig>,
    pub include_metadata: bool,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: "localhost:4317".into(),
            transport: "tcp".into(),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: 0,
            tls: None,
            include_metadata: false,
        }
    }
}

/// `protocols.http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub endpoint: String,
    pub traces_url_path: String,
    pub logs_url_path: String,
    pub metrics_url_path: String,
    pub cors: Option<CorsConfig>,
    pub tls: Option<ServerTlsConfig>,
    /// Limit on the request body, compressed or not (the collector's `max_request_body_size`).
    pub max_request_body_size: u64,
    pub include_metadata: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "localhost:4318".into(),
            traces_url_path: "/v1/traces".into(),
            logs_url_path: "/v1/logs".into(),
            metrics_url_path: "/v1/metrics".into(),
            cors: None,
            tls: None,
            max_request_body_size: 20 * 1024 * 1024,
            include_metadata: false,
        }
    }
}

/// `protocols.http.cors`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub max_age: u64,
}

impl OtlpReceiverConfig {
    /// Every problem with the config, each with its key path under `path`; when there is none,
    /// the gRPC TLS settings built while checking them, so certificates are read only once.
    pub fn validate(&self, path: &str) -> Result<Option<Arc<ServerConfig>>, config::ConfigErrors> {
        let mut errors = config::ConfigErrors::new();
        let mut grpc_tls = None;
        let mut fail =
            |key: String, message: String| errors.push(config::ConfigError::new(key, message));
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            fail(
                format!("{path}.protocols"),
                "must enable at least one protocol: grpc or http".into(),
            );
        }
        if let Some(grpc) = &self.protocols.grpc {
            let base = format!("{path}.protocols.grpc");
            if let Err(message) = config::parse_endpoint(&grpc.endpoint) {
                fail(format!("{base}.endpoint"), message);
            }
            if grpc.transport != "tcp" {
                fail(
                    format!("{base}.transport"),
                    format!("unsupported transport \"{}\": expected tcp", grpc.transport),
                );
            }
            if grpc.max_recv_msg_size_mib == 0 {
                fail(format!("{base}.max_recv_msg_size_mib"), "must be greater than zero".into());
            }
            if grpc.include_metadata {
                fail(
                    format!("{base}.include_metadata"),
                    "not supported: request metadata is not carried down the pipeline".into(),
                );
            }
            if let Some(tls) = &grpc.tls {
                match tls.build(&[b"h2"]) {
                    Ok(built) => grpc_tls = Some(built),
                    Err(message) => {
                        let (key, message) = tls_error(&base, message);
                        fail(key, message);
                    }
                }
            }
        }
        if let Some(http) = &self.protocols.http {
            let base = format!("{path}.protocols.http");
            if let Err(message) = config::parse_endpoint(&http.endpoint) {
                fail(format!("{base}.endpoint"), message);
            }
            for (key, value) in [
                ("traces_url_path", &http.traces_url_path),
                ("logs_url_path", &http.logs_url_path),
                ("metrics_url_path", &http.metrics_url_path),
            ] {
                if !value.starts_with('/') {
                    fail(
                        format!("{base}.{key}"),
                        format!("invalid path \"{value}\": must start with /"),
                    );
                }
            }
            if http.max_request_body_size == 0 {
                fail(format!("{base}.max_request_body_size"), "must be greater than zero".into());
            }
            if http.include_metadata {
                fail(
                    format!("{base}.include_metadata"),
                    "not supported: request metadata is not carried down the pipeline".into(),
                );
            }
            if http.tls.is_some() {
                fail(format!("{base}.tls"), "not supported yet for OTLP/HTTP; use protocols.grpc.tls, or terminate TLS in front of the collector".into());
            }
        }
        errors.into_result().map(|()| grpc_tls)
    }
}

/// Splits a TLS error (`cert_file: cannot read ...`) into the key path and the message.
fn tls_error(base: &str, message: String) -> (String, String) {
    match message.split_once(": ") {
        Some((key, rest)) => (format!("{base}.tls.{key}"), rest.to_string()),
        None => (format!("{base}.tls"), message),
    }
}
