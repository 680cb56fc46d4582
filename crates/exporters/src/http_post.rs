//! What the HTTP exporters (`otlphttp`, `zipkin`) share: checking an endpoint URL, and POSTing
//! one body to it over a pooled hyper client (gzipped when configured), the answer's status turned into the exporter
//! helper's retryable or permanent error as the collector's `confighttp` exporters do (429,
//! 502, 503 and 504 retried, honouring `Retry-After`; any other failure permanent).

use std::time::Duration;

use bytes::Bytes;
use config::ConfigErrors;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pipeline::exporter_helper::SendError;
use prost::Message;
use transport::status::{RpcStatus, http_status_is_retryable, parse_retry_after};
use transport::tls::ClientTlsConfig;

use crate::common::{self, Compression, Headers};
use crate::connect::{Connector, TlsSettings};

/// How much of a response is read: enough for any partial success or error status. The
/// collector reads at most 64 KiB too.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How much of a plain-text error body is quoted in an error message.
const MAX_QUOTED_ERROR: usize = 256;

/// How long an idle pooled connection is kept, as Go's default transport does.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Checks an endpoint URL: http or https, with a host.
pub(crate) fn parse_url(text: &str) -> Result<Uri, String> {
    let invalid =
        || format!("invalid endpoint \"{text}\": expected an http:// or https:// URL with a host");
    let url: Uri = text.parse().map_err(|_| invalid())?;
    let scheme_ok = matches!(url.scheme_str(), Some("http" | "https"));
    let host_ok = url.host().is_some_and(|host| !host.is_empty());
    if scheme_ok && host_ok { Ok(url) } else { Err(invalid()) }
}

/// Whether `url` is dialled over TLS.
pub(crate) fn is_https(url: &Uri) -> bool {
    url.scheme_str() == Some("https")
}

/// A URL without any user info, for logs.
pub(crate) fn display_url(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or_default();
    let port = url.port_u16().map(|port| format!(":{port}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", url.path())
}

/// A 2xx answer.
pub(crate) struct Accepted {
    /// Its `Content-Type`, lowercased; empty when absent.
    pub(crate) content_type: String,
    /// Its body, up to 64 KiB (a longer or failed body reads as empty).
    pub(crate) body: Bytes,
}

/// What an HTTP exporter's `tls`, `headers` and `compression` keys become.
pub(crate) struct ClientSettings {
    tls: Option<TlsSettings>,
    headers: HeaderMap,
    compression: Compression,
}

impl ClientSettings {
    /// Validates the keys, collecting errors; `tls` is read only when some URL is `https`.
    /// `compression` is the configured value; without one, `default_compression`.
    pub(crate) fn new(
        tls: &ClientTlsConfig,
        headers: &Headers,
        compression: Option<&str>,
        default_compression: Compression,
        https: bool,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> ClientSettings {
        let tls = if https { common::tls(tls, &[b"h2", b"http/1.1"], path, errors) } else { None };
        let compression = common::compression(compression, default_compression, path, errors);
        let headers = common::headers(headers, path, errors).into_iter().collect();
        ClientSettings { tls, headers, compression }
    }
}

/// POSTs bodies to one URL with fixed headers.
pub(crate) struct HttpPost {
    url: Uri,
    client: Client<Connector, Full<Bytes>>,
    /// Every request's headers, built once.
    headers: HeaderMap,
    compression: Compression,
}

impl HttpPost {
    /// A poster for `url`, dialling TLS when the URL is `https`. Requests carry
    /// `content_type`, meshtrace's user agent, `Content-Encoding: gzip` when compressing, and
    /// then the configured headers, which win, as in the collector.
    pub(crate) fn new(url: Uri, settings: &ClientSettings, content_type: &'static str) -> HttpPost {
        let ClientSettings { tls, headers: configured, compression } = settings;
        let compression = *compression;
        let connector = Connector::new(if is_https(&url) { tls.clone() } else { None });
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(USER_AGENT, HeaderValue::from_static(common::USER_AGENT));
        if compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in configured {
            headers.insert(name.clone(), value.clone());
        }
        HttpPost { url, client, headers, compression }
    }

    /// Sends `body` (compressed first when configured); a non-2xx answer or a failed exchange
    /// is the error the exporter helper retries or gives up on.
    pub(crate) async fn post(&self, body: Bytes) -> Result<Accepted, SendError> {
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
        // A body that fails or runs past the limit is read as empty: the status alone decides.
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(Accepted { content_type, body });
        }
        let message =
            format!("the destination answered {status}{}", error_detail(&content_type, &body));
        if http_status_is_retryable(status.as_u16()) {
            Err(SendError::Retryable { message, retry_after })
        } else {
            Err(SendError::Permanent { message })
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

    #[test]
    fn endpoints_need_a_scheme_and_a_host() {
        assert!(parse_url("http://collector:9411/api/v2/spans").is_ok());
        assert_eq!(
            parse_url("collector:9411").unwrap_err(),
            "invalid endpoint \"collector:9411\": expected an http:// or https:// URL with a host"
        );
        assert!(parse_url("ftp://collector").is_err());
    }
}
