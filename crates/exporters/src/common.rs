//! What the two OTLP exporters share: validation of `headers`, `compression`, `tls` and
//! `timeout`, the decoding of an export response's partial success, and start/stop logging.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::{ConfigError, ConfigErrors, Value};
use futures_util::future::BoxFuture;
use otlp::Signal;
use pipeline::component::{BuildError, Lifecycle};
use pipeline::exporter_helper::{self, HelperSettings, QueueConfig, RetryConfig, Sender};
use pipeline::telemetry::ExporterMetrics;
use pipeline::{BuildContext, Built};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use transport::tls::ClientTlsConfig;

use crate::connect::TlsSettings;

/// The user agent both exporters send unless the config's headers set one.
pub(crate) const USER_AGENT: &str = concat!("meshtrace/", env!("CARGO_PKG_VERSION"));

/// `headers`: sent with every request. Values usually hold tokens, so `Debug` shows only the
/// names.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|name| (name, "<redacted>"))).finish()
    }
}

/// `compression`, as far as meshtrace implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    None,
}

/// Reads `compression`: absent means the exporter's `default` (gzip for both OTLP exporters,
/// none for Zipkin, as in the collector); `none` and the empty string mean uncompressed.
pub(crate) fn compression(
    value: Option<&str>,
    default: Compression,
    path: &str,
    errors: &mut ConfigErrors,
) -> Compression {
    match value {
        None => default,
        Some("gzip") => Compression::Gzip,
        Some("none" | "") => Compression::None,
        Some(other) => {
            errors.push(ConfigError::new(
                format!("{path}.compression"),
                format!("unsupported compression \"{other}\": expected \"gzip\" or \"none\""),
            ));
            Compression::Gzip
        }
    }
}

/// Checks every header name and value, returning the valid ones. Errors name the header but
/// never show its value: headers usually carry credentials, and config errors end up in logs.
pub(crate) fn headers(
    headers: &Headers,
    path: &str,
    errors: &mut ConfigErrors,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut valid = Vec::with_capacity(headers.0.len());
    for (name, value) in &headers.0 {
        let key = format!("{path}.headers.{name}");
        let Ok(header_name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            errors.push(ConfigError::new(
                key,
                format!(
                    "invalid header name \"{name}\": expected letters, digits and !#$%&'*+-.^_`|~"
                ),
            ));
            continue;
        };
        let Ok(mut header_value) = http::HeaderValue::from_str(value) else {
            errors.push(ConfigError::new(
                key,
                "invalid header value (not shown): expected visible ASCII characters, spaces and tabs",
            ));
            continue;
        };
        // Keeps the value out of any Debug output of the request.
        header_value.set_sensitive(true);
        valid.push((header_name, header_value));
    }
    valid
}

/// Validates `timeout`, `retry_on_failure` and `sending_queue` into the exporter helper's
/// settings, collecting any errors.
pub(crate) fn helper_settings(
    path: &str,
    timeout: Option<config::Duration>,
    retry: &RetryConfig,
    queue: &QueueConfig,
    errors: &mut ConfigErrors,
) -> Option<HelperSettings> {
    collect(HelperSettings::new(path, timeout, retry.clone(), queue.clone()), errors)
}

/// Wraps `sender` in the exporter helper and logs the instance's start and stop.
pub(crate) fn build_announced(
    context: &BuildContext,
    sender: Arc<dyn Sender>,
    helper: &HelperSettings,
    exporter: String,
    destination: String,
) -> Result<Built, BuildError> {
    let built = exporter_helper::build(context, sender, helper)?;
    Ok(Built {
        consumer: built.consumer,
        lifecycle: Box::new(Announced::new(built.lifecycle, exporter, destination)),
    })
}

/// The deadline a destination is told about (`grpc-timeout`), if there is one: a zero timeout
/// means none, as in the collector (the exporter helper skips it too).
pub(crate) fn announced_timeout(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// Builds the rustls client config of a `tls` block, offering `alpn`. The transport crate names
/// the faulty key relative to the block ("ca_file: cannot read ..."); errors here get the full
/// path.
pub(crate) fn tls(
    tls: &ClientTlsConfig,
    alpn: &[&[u8]],
    path: &str,
    errors: &mut ConfigErrors,
) -> Option<TlsSettings> {
    let mut push = |message: String| {
        let (key, message) = match message.split_once(": ") {
            Some((key, rest)) if !key.contains(' ') => (format!("{path}.tls.{key}"), rest),
            _ => (format!("{path}.tls"), message.as_str()),
        };
        errors.push(ConfigError::new(key, message.to_string()));
    };
    let server_name = tls.server_name().map_err(&mut push);
    match tls.build(alpn) {
        Ok(config) => Some(TlsSettings { config, server_name: server_name.ok()? }),
        Err(message) => {
            push(message);
            None
        }
    }
}

/// Reads `raw` into `T` and validates it with `check`, reporting both kinds of error at once.
///
/// `config::from_value` yields nothing when any key is wrong (unknown, or of the wrong type),
/// which would hide every validation error until the first batch was fixed. So on failure the
/// top-level keys it named are left out, the rest is read again and validated, and the
/// validation errors that do not concern a left-out key are reported too.
pub(crate) fn configure<T: DeserializeOwned, C>(
    raw: &Value,
    path: &str,
    check: impl Fn(&T, &str) -> Result<C, ConfigErrors>,
) -> Result<C, ConfigErrors> {
    let mut errors = match config::from_value::<T>(raw, path) {
        Ok(config) => return check(&config, path),
        Err(errors) => errors,
    };
    let prefix = format!("{path}.");
    let mut left_out: Vec<String> = errors
        .iter()
        .filter_map(|error| error.path.strip_prefix(&prefix))
        .map(|rest| rest.split(['.', '[']).next().unwrap_or(rest).to_string())
        .collect();
    left_out.sort_unstable();
    left_out.dedup();
    let mut rest = raw.clone();
    let Some(map) = rest.as_map_mut().filter(|_| !left_out.is_empty()) else {
        return Err(errors);
    };
    for key in &left_out {
        map.remove(key);
    }
    if let Ok(config) = config::from_value::<T>(&rest, path)
        && let Err(more) = check(&config, path)
    {
        let about_left_out = |error: &ConfigError| {
            left_out.iter().any(|key| {
                let key_path = format!("{prefix}{key}");
                error.path == key_path || error.path.starts_with(&format!("{key_path}."))
            })
        };
        errors.extend(more.into_iter().filter(|error| !about_left_out(error)));
    }
    Err(errors)
}

/// Merges the errors of one validation step into the list being collected.
pub(crate) fn collect<T>(result: Result<T, ConfigErrors>, errors: &mut ConfigErrors) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(more) => {
            errors.extend(more);
            None
        }
    }
}

// === export responses ===

/// The part of an `Export*ServiceResponse` an exporter reads.
///
/// The trace, logs and metrics responses have one layout: field 1 is a partial-success message
/// whose field 1 is the rejected count (`rejected_spans`, `rejected_log_records`,
/// `rejected_data_points`) and field 2 the error message. One message type decodes all three.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

/// `Export*PartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

impl ExportResponse {
    /// Reads the OTLP/JSON form of a response; the rejected count's key depends on the signal
    /// and, as a 64-bit integer, may be written as a string or a number.
    pub(crate) fn from_json(signal: Signal, body: &[u8]) -> Result<ExportResponse, String> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|error| format!("invalid JSON: {error}"))?;
        let Some(partial) = value.get("partialSuccess").or_else(|| value.get("partial_success"))
        else {
            return Ok(ExportResponse::default());
        };
        let (camel, snake) = match signal {
            Signal::Traces => ("rejectedSpans", "rejected_spans"),
            Signal::Logs => ("rejectedLogRecords", "rejected_log_records"),
            Signal::Metrics => ("rejectedDataPoints", "rejected_data_points"),
        };
        let rejected = match partial.get(camel).or_else(|| partial.get(snake)) {
            None | Some(serde_json::Value::Null) => 0,
            Some(serde_json::Value::Number(number)) => number.as_i64().unwrap_or(0),
            Some(serde_json::Value::String(text)) => {
                text.parse().map_err(|_| format!("invalid {camel} \"{text}\""))?
            }
            Some(other) => return Err(format!("invalid {camel}: {other}")),
        };
        let error_message = partial
            .get("errorMessage")
            .or_else(|| partial.get("error_message"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(ExportResponse { partial_success: Some(PartialSuccess { rejected, error_message }) })
    }

    /// Logs a partial success and counts the rejected items as failed sends: the helper counts
    /// the whole batch as sent, and the collector's own metrics are the only place an operator
    /// would notice the loss.
    pub(crate) fn report(&self, exporter: &str, metrics: &ExporterMetrics) {
        let Some(partial) = &self.partial_success else { return };
        if partial.rejected == 0 && partial.error_message.is_empty() {
            return;
        }
        let rejected = u64::try_from(partial.rejected).unwrap_or(0);
        metrics.send_failed.inc_by(rejected);
        tracing::warn!(
            exporter,
            rejected,
            message = %partial.error_message,
            "the destination accepted the data only in part"
        );
    }
}

// === lifecycle ===

/// Logs when an exporter starts and stops, around the helper's own lifecycle.
struct Announced {
    inner: Box<dyn Lifecycle>,
    exporter: String,
    destination: String,
    stopped: bool,
}

impl Announced {
    pub(crate) fn new(
        inner: Box<dyn Lifecycle>,
        exporter: String,
        destination: String,
    ) -> Announced {
        Announced { inner, exporter, destination, stopped: false }
    }
}

impl Lifecycle for Announced {
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>> {
        Box::pin(async move {
            self.inner.start().await?;
            tracing::info!(exporter = %self.exporter, destination = %self.destination, "exporter started");
            Ok(())
        })
    }

    fn shutdown(&mut self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.shutdown(deadline).await;
            if !std::mem::replace(&mut self.stopped, true) {
                tracing::info!(exporter = %self.exporter, "exporter stopped");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_defaults_to_gzip_and_refuses_what_is_not_implemented() {
        let mut errors = ConfigErrors::new();
        assert_eq!(compression(None, Compression::Gzip, "p", &mut errors), Compression::Gzip);
        assert_eq!(compression(Some(""), Compression::Gzip, "p", &mut errors), Compression::None);
        assert_eq!(
            compression(Some("none"), Compression::Gzip, "p", &mut errors),
            Compression::None
        );
        assert!(errors.is_empty());
        compression(Some("zstd"), Compression::Gzip, "exporters.otlp", &mut errors);
        assert_eq!(
            errors.to_string(),
            "exporters.otlp.compression: unsupported compression \"zstd\": expected \"gzip\" or \"none\""
        );
    }

    #[test]
    fn header_errors_name_the_key_but_not_the_value() {
        let mut errors = ConfigErrors::new();
        let map = Headers(BTreeMap::from([
            ("authorization".to_string(), "Bearer secret\n".to_string()),
            ("bad name".to_string(), "x".to_string()),
            ("x-ok".to_string(), "fine".to_string()),
        ]));
        assert!(!format!("{map:?}").contains("secret"));
        let valid = headers(&map, "exporters.otlp", &mut errors);
        assert_eq!(valid.len(), 1);
        let text = errors.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.contains("exporters.otlp.headers.authorization: invalid header value (not shown)")
        );
        assert!(text.contains("exporters.otlp.headers.bad name: invalid header name \"bad name\""));
    }

    #[test]
    fn json_partial_success_reads_strings_and_numbers() {
        let body = br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"bad ids"}}"#;
        let response = ExportResponse::from_json(Signal::Traces, body).unwrap();
        let partial = response.partial_success.unwrap();
        assert_eq!(partial.rejected, 3);
        assert_eq!(partial.error_message, "bad ids");
        let body = br#"{"partialSuccess":{"rejectedLogRecords":2}}"#;
        let partial = ExportResponse::from_json(Signal::Logs, body).unwrap().partial_success;
        assert_eq!(partial.unwrap().rejected, 2);
        assert_eq!(
            ExportResponse::from_json(Signal::Metrics, b"{}").unwrap(),
            ExportResponse::default()
        );
    }

    #[test]
    fn zero_timeout_means_none() {
        let zero = config::Duration(Duration::ZERO);
        assert_eq!(announced_timeout(zero.0), None);
        assert_eq!(announced_timeout(Duration::from_secs(5)), Some(Duration::from_secs(5)));
    }
}
