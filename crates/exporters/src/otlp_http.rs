//! The `otlphttp` exporter: OTLP over HTTP, protobuf or JSON.
//!
//! A pooled hyper client POSTs each batch to the signal's URL. Protobuf bodies are the batch's
//! wire bytes as they are (free for a batch received as one request); JSON needs the objects,
//! so a JSON exporter decodes. Over `https` the connection offers HTTP/2 and HTTP/1.1 by ALPN.

use std::sync::Arc;

use bytes::Bytes;
use config::{ConfigError, ConfigErrors, Value};
use futures_util::future::BoxFuture;
use http::Uri;
use otlp::{Batch, Signal};
use pipeline::exporter_helper::{HelperSettings, QueueConfig, RetryConfig, SendError, Sender};
use pipeline::telemetry::ExporterMetrics;
use pipeline::{BuildContext, BuildError, Built, Configured, Factory, Kind, Stability};
use prost::Message;
use serde::Deserialize;
use transport::tls::ClientTlsConfig;

use crate::common::{self, Compression, ExportResponse, Headers};
use crate::http_post::{ClientSettings, HttpPost, display_url, is_https, parse_url};

/// The `otlphttp` exporter's YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpConfig {
    /// Base URL; each signal is sent to it plus `/v1/traces`, `/v1/logs` or `/v1/metrics`.
    pub endpoint: Option<String>,
    /// Full URLs, used as they are, overriding `endpoint` for one signal.
    pub traces_endpoint: Option<String>,
    pub logs_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    pub tls: ClientTlsConfig,
    pub headers: Headers,
    /// `gzip` (default), `none` or empty.
    pub compression: Option<String>,
    /// `proto` (default) or `json`.
    pub encoding: Option<String>,
    /// Per attempt; 5s by default, zero for none.
    pub timeout: Option<config::Duration>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: QueueConfig,
}

/// Makes `otlphttp` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpHttpExporterFactory;

impl Factory for OtlpHttpExporterFactory {
    fn kind(&self) -> Kind {
        Kind::Exporter
    }

    fn type_name(&self) -> &'static str {
        "otlphttp"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[
            (Signal::Traces, Stability::Stable),
            (Signal::Logs, Stability::Stable),
            (Signal::Metrics, Stability::Stable),
        ]
    }

    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        let configured = common::configure(raw, path, OtlpHttpConfigured::new)?;
        Ok(Box::new(configured))
    }
}

/// `encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Proto,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// A validated `otlphttp` exporter.
pub struct OtlpHttpConfigured {
    /// The URL of each signal, in the order of [`signal_index`]; `None` where neither
    /// `endpoint` nor the signal's own key is set.
    urls: [Option<Uri>; 3],
    client: ClientSettings,
    encoding: Encoding,
    helper: HelperSettings,
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }
}

impl OtlpHttpConfigured {
    /// Checks every setting, collecting all errors.
    pub fn new(config: &OtlpHttpConfig, path: &str) -> Result<OtlpHttpConfigured, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let set = |value: &Option<String>| value.clone().filter(|text| !text.is_empty());
        let base = set(&config.endpoint);
        if let Some(base) = &base
            && let Err(message) = parse_url(base)
        {
            errors.push(ConfigError::new(format!("{path}.endpoint"), message));
        }
        let own = [
            ("traces_endpoint", set(&config.traces_endpoint), Signal::Traces),
            ("logs_endpoint", set(&config.logs_endpoint), Signal::Logs),
            ("metrics_endpoint", set(&config.metrics_endpoint), Signal::Metrics),
        ];
        if base.is_none() && own.iter().all(|(_, url, _)| url.is_none()) {
            errors.push(ConfigError::new(
                format!("{path}.endpoint"),
                "missing: set endpoint, or traces_endpoint, logs_endpoint or metrics_endpoint",
            ));
        }
        let mut urls: [Option<Uri>; 3] = [None, None, None];
        for (key, url, signal) in own {
            let url = match (url, &base) {
                (Some(url), _) => parse_url(&url).map_err(|message| {
                    errors.push(ConfigError::new(format!("{path}.{key}"), message));
                }),
                // The specification: strip one trailing slash, then append the signal's path.
                (None, Some(base)) => {
                    let base = base.strip_suffix('/').unwrap_or(base);
                    // An invalid base was reported above.
                    parse_url(&format!("{base}{}", signal.http_path())).map_err(|_| ())
                }
                (None, None) => Err(()),
            };
            urls[signal_index(signal)] = url.ok();
        }
        let client = ClientSettings::new(
            &config.tls,
            &config.headers,
            config.compression.as_deref(),
            Compression::Gzip,
            urls.iter().flatten().any(is_https),
            path,
            &mut errors,
        );
        let encoding = match config.encoding.as_deref() {
            None | Some("proto") => Encoding::Proto,
            Some("json") => Encoding::Json,
            Some(other) => {
                errors.push(ConfigError::new(
                    format!("{path}.encoding"),
                    format!("unsupported encoding \"{other}\": expected \"proto\" or \"json\""),
                ));
                Encoding::Proto
            }
        };
        let helper = common::helper_settings(
            path,
            config.timeout,
            &config.retry_on_failure,
            &config.sending_queue,
            &mut errors,
        );
        errors.into_result()?;
        let helper = helper.ok_or_else(|| ConfigError::new(path, "invalid settings"))?;
        Ok(OtlpHttpConfigured { urls, client, encoding, helper })
    }

    /// The URL `signal` is sent to, if one is configured.
    pub fn url(&self, signal: Signal) -> Option<&Uri> {
        self.urls[signal_index(signal)].as_ref()
    }
}

impl Configured for OtlpHttpConfigured {
    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        let signal = context.require_signal()?;
        let Some(url) = self.url(signal).cloned() else {
            let key = format!("{signal}_endpoint");
            return Err(BuildError::new(
                &context.id,
                format!("no endpoint for {signal}: set endpoint or {key}"),
            ));
        };
        let exporter = context.id.to_string();
        let destination = display_url(&url);
        let sender = Arc::new(OtlpHttpSender {
            exporter: exporter.clone(),
            signal,
            post: HttpPost::new(url, &self.client, self.encoding.content_type()),
            encoding: self.encoding,
            metrics: context.telemetry.exporter(&context.id, signal),
        });
        common::build_announced(&context, sender, &self.helper, exporter, destination)
    }
}

// === sending ===

/// One `otlphttp` exporter instance for one signal.
struct OtlpHttpSender {
    exporter: String,
    signal: Signal,
    /// The signal's URL, with every request's headers: content type, user agent, content
    /// encoding and the configured headers.
    post: HttpPost,
    encoding: Encoding,
    metrics: ExporterMetrics,
}

impl Sender for OtlpHttpSender {
    fn send<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let body = match self.encoding {
                Encoding::Proto => batch.to_bytes(),
                Encoding::Json => {
                    otlp::json::encode_ref(batch).map(Bytes::from).map_err(|error| {
                        SendError::permanent(format!("cannot encode the batch as JSON: {error}"))
                    })?
                }
            };
            let accepted = self.post.post(body).await?;
            self.read_success(&accepted.content_type, accepted.body);
            Ok(())
        })
    }
}

impl OtlpHttpSender {
    /// Reads a partial success from a 2xx body; an empty or unreadable body is a plain success.
    fn read_success(&self, content_type: &str, body: Bytes) {
        if body.is_empty() {
            return;
        }
        let json = content_type.starts_with("application/json")
            || (content_type.is_empty() && self.encoding == Encoding::Json);
        let response = if json {
            ExportResponse::from_json(self.signal, &body)
        } else {
            ExportResponse::decode(body).map_err(|error| error.to_string())
        };
        match response {
            Ok(response) => response.report(&self.exporter, &self.metrics),
            Err(error) => {
                tracing::debug!(exporter = %self.exporter, %error, "unreadable success response");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(yaml: &[(&str, &str)]) -> Result<OtlpHttpConfigured, ConfigErrors> {
        let mut config = OtlpHttpConfig::default();
        for (key, value) in yaml {
            let value = Some(value.to_string());
            match *key {
                "endpoint" => config.endpoint = value,
                "traces_endpoint" => config.traces_endpoint = value,
                "encoding" => config.encoding = value,
                _ => unreachable!(),
            }
        }
        OtlpHttpConfigured::new(&config, "exporters.otlphttp")
    }

    #[test]
    fn signal_urls_append_the_path_after_one_trailing_slash() {
        let c = configured(&[("endpoint", "http://collector:4318/")]).unwrap();
        assert_eq!(c.url(Signal::Traces).unwrap(), "http://collector:4318/v1/traces");
        let c = configured(&[("endpoint", "https://gateway/otlp")]).unwrap();
        assert_eq!(c.url(Signal::Metrics).unwrap(), "https://gateway/otlp/v1/metrics");
        let c = configured(&[
            ("endpoint", "http://collector:4318"),
            ("traces_endpoint", "http://other:9999/custom"),
        ])
        .unwrap();
        assert_eq!(c.url(Signal::Traces).unwrap(), "http://other:9999/custom");
        assert_eq!(c.url(Signal::Logs).unwrap(), "http://collector:4318/v1/logs");
        let c = configured(&[("traces_endpoint", "http://only:1/t")]).unwrap();
        assert!(c.url(Signal::Logs).is_none());
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let errors = configured(&[("endpoint", "collector:4318"), ("encoding", "xml")])
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            errors,
            "exporters.otlphttp.endpoint: invalid endpoint \"collector:4318\": expected an http:// or https:// URL with a host\n\
             exporters.otlphttp.encoding: unsupported encoding \"xml\": expected \"proto\" or \"json\""
        );
        assert_eq!(
            configured(&[]).err().unwrap().to_string(),
            "exporters.otlphttp.endpoint: missing: set endpoint, or traces_endpoint, logs_endpoint or metrics_endpoint"
        );
    }
}
