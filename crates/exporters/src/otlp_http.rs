//! The `otlphttp` exporter: OTLP over HTTP, protobuf or JSON.
//!
//! A pooled hyper client POSTs each batch to the signal's URL. Protobuf bodies are the batch's
//! wire bytes as they are (free for a batch received as one request); JSON needs the objects,
//! so a JSON exporter decodes. Over `https` the connection offers HTTP/2 and HTTP/1.1 by ALPN.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use config::{ConfigError, ConfigErrors, Value};
use futures_util::future::BoxFuture;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use otlp::{Batch, Signal};
use pipeline::exporter_helper::{HelperSettings, QueueConfig, RetryConfig, SendError, Sender};
use pipeline::telemetry::ExporterMetrics;
use pipeline::{BuildContext, BuildError, Built, Configured, Factory, Kind, Stability};
use prost::Message;
use serde::Deserialize;
use transport::status::{RpcStatus, http_status_is_retryable, parse_retry_after};
use transport::tls::ClientTlsConfig;

use crate::common::{self, Compression, ExportResponse, Headers};
use crate::connect::{Connector, TlsSettings};

/// How much of a response is read: enough for any partial success or error status. The
/// collector reads at most 64 KiB too.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How much of a plain-text error body is quoted in an error message.
const MAX_QUOTED_ERROR: usize = 256;

/// How long an idle pooled connection is kept, as Go's default transport does.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

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
    tls: Option<TlsSettings>,
    headers: HeaderMap,
    compression: Compression,
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
        let tls = if urls.iter().flatten().any(|url| url.scheme_str() == Some("https")) {
            common::tls(&config.tls, &[b"h2", b"http/1.1"], path, &mut errors)
        } else {
            None
        };
        let compression = common::compression(config.compression.as_deref(), path, &mut errors);
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
        let headers: HeaderMap =
            common::headers(&config.headers, path, &mut errors).into_iter().collect();
        let helper = common::helper_settings(
            path,
            config.timeout,
            &config.retry_on_failure,
            &config.sending_queue,
            &mut errors,
        );
        errors.into_result()?;
        let helper = helper.ok_or_else(|| ConfigError::new(path, "invalid settings"))?;
        Ok(OtlpHttpConfigured { urls, tls, headers, compression, encoding, helper })
    }

    /// The URL `signal` is sent to, if one is configured.
    pub fn url(&self, signal: Signal) -> Option<&Uri> {
        self.urls[signal_index(signal)].as_ref()
    }
}

/// Checks an endpoint URL: http or https, with a host.
fn parse_url(text: &str) -> Result<Uri, String> {
    let invalid =
        || format!("invalid endpoint \"{text}\": expected an http:// or https:// URL with a host");
    let url: Uri = text.parse().map_err(|_| invalid())?;
    let scheme_ok = matches!(url.scheme_str(), Some("http" | "https"));
    let host_ok = url.host().is_some_and(|host| !host.is_empty());
    if scheme_ok && host_ok { Ok(url) } else { Err(invalid()) }
}

/// A URL without any user info, for logs.
fn display_url(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or_default();
    let port = url.port_u16().map(|port| format!(":{port}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", url.path())
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
        let connector =
            Connector::new(if url.scheme_str() == Some("https") { self.tls.clone() } else { None });
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        let destination = display_url(&url);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.encoding.content_type()));
        headers.insert(USER_AGENT, HeaderValue::from_static(common::USER_AGENT));
        if self.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        // The configured headers come last and win, as in the collector.
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        let sender = Arc::new(OtlpHttpSender {
            exporter: exporter.clone(),
            signal,
            url,
            client,
            headers,
            compression: self.compression,
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
    url: Uri,
    client: Client<Connector, Full<Bytes>>,
    /// Every request's headers, built once: content type, user agent, content encoding and the
    /// configured headers.
    headers: HeaderMap,
    compression: Compression,
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
            let body = match self.compression {
                Compression::Gzip => Bytes::from(transport::gzip::compress_off_reactor(body).await),
                Compression::None => body,
            };
            let mut request = http::Request::new(Full::new(body));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = self.url.clone();
            *request.headers_mut() = self.headers.clone();
            let response = self.client.request(request).await.map_err(|error| {
                SendError::retryable(format!("request failed: {}", error_chain(&error)))
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_retry_after);
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            // A body that fails or runs past the limit is read as empty: the status alone
            // decides.
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                self.read_success(&content_type, body);
                return Ok(());
            }
            let message =
                format!("the destination answered {status}{}", error_detail(&content_type, &body));
            if http_status_is_retryable(status.as_u16()) {
                Err(SendError::Retryable { message, retry_after })
            } else {
                Err(SendError::Permanent { message })
            }
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

/// The destination's explanation of a failure: the message of a `google.rpc.Status` body, or
/// the start of a plain-text one.
fn error_detail(content_type: &str, body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let message = if content_type.starts_with("application/x-protobuf")
        || content_type.starts_with("application/protobuf")
    {
        RpcStatus::decode(body).ok().map(|status| status.message)
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| value.get("message").and_then(|m| m.as_str()).map(str::to_string))
    } else if content_type.starts_with("text/") {
        let text = String::from_utf8_lossy(body);
        Some(text.trim().chars().take(MAX_QUOTED_ERROR).collect())
    } else {
        None
    };
    match message {
        Some(message) if !message.is_empty() => format!(": {message}"),
        _ => String::new(),
    }
}

/// An error with its causes: hyper-util's own message ("client error (Connect)") says little
/// without them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

    #[test]
    fn error_details_come_from_the_status_body() {
        let status = RpcStatus::new(3, "span id too short", None);
        let detail = error_detail("application/x-protobuf", &status.encode_to_vec());
        assert_eq!(detail, ": span id too short");
        assert_eq!(error_detail("application/json", br#"{"code":3,"message":"nope"}"#), ": nope");
        assert_eq!(error_detail("text/plain; charset=utf-8", b"  bad gateway \n"), ": bad gateway");
        assert_eq!(error_detail("application/octet-stream", b"\x00\x01"), "");
    }

    #[test]
    fn logged_urls_leave_out_user_info() {
        let url: Uri = "https://user:secret@gateway:443/v1/traces".parse().unwrap();
        assert_eq!(display_url(&url), "https://gateway:443/v1/traces");
    }
}
