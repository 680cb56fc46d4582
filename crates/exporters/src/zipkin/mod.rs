//! The `zipkin` exporter: traces to a Zipkin v2 collector (`POST /api/v2/spans`), as JSON or
//! protobuf, with the keys and defaults of the collector's own: `endpoint` (required, the full
//! URL), `format` (`json` by default, or `proto`), `default_service_name` (`<missing service
//! name>`), and the HTTP client's `headers`, `timeout` (5 s), `compression` (none by default),
//! `tls`, `retry_on_failure` and `sending_queue`.
//!
//! Zipkin has no partial success: a 2xx answer means every span arrived. How spans are
//! translated is in [`translate`]; a batch with a span Zipkin cannot take (a zero trace or span
//! id) is refused whole, and counted, as the collector does.

mod attribute_text;
mod encode;
mod translate;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use config::{ConfigError, ConfigErrors, Value};
use futures_util::future::BoxFuture;
use http::Uri;
use otlp::{Batch, Signal};
use pipeline::exporter_helper::{HelperSettings, QueueConfig, RetryConfig, SendError, Sender};
use pipeline::{BuildContext, BuildError, Built, Configured, Factory, Kind, Stability};
use serde::Deserialize;
use transport::tls::ClientTlsConfig;

use crate::common::{self, Compression, Headers};
use crate::http_post::{ClientSettings, HttpPost, display_url, is_https, parse_url};
use encode::Format;

/// The local service name of spans whose resource names none, unless configured.
const DEFAULT_SERVICE_NAME: &str = "<missing service name>";

/// Batches with more spans are translated on the blocking pool: at about 2.3 µs a span
/// (BENCHMARKS.md), 256 spans hold the runtime about half a millisecond, the most a task
/// should.
const OFF_REACTOR_SPANS: u64 = 256;

/// The `zipkin` exporter's YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZipkinConfig {
    /// The full URL spans are POSTed to, e.g. `http://zipkin:9411/api/v2/spans`.
    pub endpoint: Option<String>,
    /// `json` (default) or `proto`.
    pub format: Option<String>,
    /// The local service name of spans whose resource names none (`service.name`, or
    /// failing that `faas.name`, `k8s.deployment.name` or `process.executable.name`).
    pub default_service_name: Option<String>,
    pub tls: ClientTlsConfig,
    pub headers: Headers,
    /// `none` (default) or `gzip`.
    pub compression: Option<String>,
    /// Per attempt; 5s by default, zero for none.
    pub timeout: Option<config::Duration>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: QueueConfig,
}

/// Makes `zipkin` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZipkinExporterFactory;

impl Factory for ZipkinExporterFactory {
    fn kind(&self) -> Kind {
        Kind::Exporter
    }

    fn type_name(&self) -> &'static str {
        "zipkin"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[(Signal::Traces, Stability::Beta)]
    }

    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        let configured = common::configure(raw, path, ZipkinConfigured::new)?;
        Ok(Box::new(configured))
    }
}

/// A validated `zipkin` exporter.
pub struct ZipkinConfigured {
    url: Uri,
    client: ClientSettings,
    format: Format,
    default_service_name: String,
    helper: HelperSettings,
}

impl ZipkinConfigured {
    /// Checks every setting, collecting all errors.
    pub fn new(config: &ZipkinConfig, path: &str) -> Result<ZipkinConfigured, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let url = match config.endpoint.as_deref().filter(|text| !text.is_empty()) {
            Some(text) => parse_url(text)
                .map_err(|message| {
                    errors.push(ConfigError::new(format!("{path}.endpoint"), message));
                })
                .ok(),
            None => {
                errors.push(ConfigError::new(
                    format!("{path}.endpoint"),
                    "missing: set the Zipkin collector's URL, e.g. http://zipkin:9411/api/v2/spans",
                ));
                None
            }
        };
        let format = match config.format.as_deref() {
            None | Some("json") => Format::Json,
            Some("proto") => Format::Proto,
            Some(other) => {
                errors.push(ConfigError::new(
                    format!("{path}.format"),
                    format!("unsupported format \"{other}\": expected \"json\" or \"proto\""),
                ));
                Format::Json
            }
        };
        // Unlike the OTLP exporters, the collector's Zipkin exporter does not compress unless
        // told to.
        let client = ClientSettings::new(
            &config.tls,
            &config.headers,
            config.compression.as_deref(),
            Compression::None,
            url.as_ref().is_some_and(is_https),
            path,
            &mut errors,
        );
        let helper = common::helper_settings(
            path,
            config.timeout,
            &config.retry_on_failure,
            &config.sending_queue,
            &mut errors,
        );
        errors.into_result()?;
        let (Some(url), Some(helper)) = (url, helper) else {
            return Err(ConfigError::new(path, "invalid settings").into());
        };
        Ok(ZipkinConfigured {
            url,
            client,
            format,
            default_service_name: config
                .default_service_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
            helper,
        })
    }
}

impl Configured for ZipkinConfigured {
    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        let signal = context.require_signal()?;
        if signal != Signal::Traces {
            return Err(BuildError::new(
                &context.id,
                format!("the zipkin exporter takes traces only, not {signal}"),
            ));
        }
        let exporter = context.id.to_string();
        let destination = display_url(&self.url);
        let sender = Arc::new(ZipkinSender {
            post: HttpPost::new(self.url.clone(), &self.client, self.format.content_type()),
            format: self.format,
            default_service_name: Arc::from(self.default_service_name.as_str()),
        });
        common::build_announced(&context, sender, &self.helper, exporter, destination)
    }
}

// === sending ===

/// One `zipkin` exporter instance.
struct ZipkinSender {
    post: HttpPost,
    format: Format,
    default_service_name: Arc<str>,
}

impl Sender for ZipkinSender {
    fn send<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            // Translated again on each attempt: a retry is rare, and keeping the body would
            // hold its memory for the whole back-off.
            let body = if batch.items() > OFF_REACTOR_SPANS {
                // An encoded batch (the usual case) clones by reference count.
                let batch = batch.clone();
                let (format, default_service_name) =
                    (self.format, self.default_service_name.clone());
                tokio::task::spawn_blocking(move || body(&batch, format, &default_service_name))
                    .await
                    .map_err(|error| {
                        SendError::permanent(format!("the translation task failed: {error}"))
                    })??
            } else {
                body(batch, self.format, &self.default_service_name)?
            };
            self.post.post(body).await.map(|_| ())
        })
    }
}

/// The batch translated and encoded. A decoded batch is read where it is; one still in wire form
/// is cloned (its list of byte chunks, not the data) to be decoded, so a retry has it again.
fn body(batch: &Batch, format: Format, default_service_name: &str) -> Result<Bytes, SendError> {
    let request =
        match batch.as_traces() {
            Some(request) => Cow::Borrowed(request),
            None => Cow::Owned(batch.clone().into_traces().map_err(|error| {
                SendError::permanent(format!("cannot decode the batch: {error}"))
            })?),
        };
    let spans = translate::zipkin_spans(&request, default_service_name).map_err(|error| {
        SendError::permanent(format!("cannot translate the batch to Zipkin: {error}"))
    })?;
    Ok(Bytes::from(format.encode(&spans)))
}

/// The translation and its encodings, for benchmarks: `request` as a Zipkin JSON body.
pub fn encode_json(
    request: &otlp::ExportTraceServiceRequest,
    default_service_name: &str,
) -> Result<Vec<u8>, String> {
    translate::zipkin_spans(request, default_service_name)
        .map(|spans| Format::Json.encode(&spans))
        .map_err(|error| error.to_string())
}
