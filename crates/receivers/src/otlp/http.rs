//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with protobuf or JSON bodies,
//! optionally gzip-compressed, answered as the OTLP specification says (including the
//! `google.rpc.Status` error body in the request's own encoding), with CORS for browsers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use pipeline::{ConsumeError, RefusalKind};
use prost::Message;
use transport::status::{RpcStatus, code};

use super::config::{CorsConfig, HttpConfig};
use super::cors;
use super::ingest::{Ingest, IngestError};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The request encodings OTLP/HTTP defines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }

    fn from_headers(headers: &HeaderMap) -> Option<Encoding> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media_type = value.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case(PROTOBUF) {
            Some(Encoding::Protobuf)
        } else if media_type.eq_ignore_ascii_case(JSON) {
            Some(Encoding::Json)
        } else {
            None
        }
    }
}

/// The routes of one OTLP/HTTP endpoint.
pub(crate) struct HttpReceiver {
    routes: Vec<(String, Ingest)>,
    all_paths: Vec<String>,
    max_body: usize,
    cors: Option<CorsConfig>,
}

impl HttpReceiver {
    pub(crate) fn new(config: &HttpConfig, ingests: Vec<Ingest>) -> HttpReceiver {
        let path_of = |signal| match signal {
            otlp::Signal::Traces => config.traces_url_path.clone(),
            otlp::Signal::Logs => config.logs_url_path.clone(),
            otlp::Signal::Metrics => config.metrics_url_path.clone(),
        };
        let routes = ingests.into_iter().map(|ingest| (path_of(ingest.signal()), ingest)).collect();
        let all_paths = otlp::Signal::ALL.into_iter().map(path_of).collect();
        HttpReceiver {
            routes,
            all_paths,
            max_body: usize::try_from(config.max_request_body_size).unwrap_or(usize::MAX),
            cors: config.cors.clone(),
        }
    }

    /// Answers one request.
    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        if let Some(cors) = self.preflight_cors(&request) {
            // The preflight answer carries exactly the permissions it decided on: adding the
            // actual-request headers here would grant the origin what the preflight refused.
            return cors::preflight(cors, request.headers());
        }
        let origin = request.headers().get(header::ORIGIN).cloned();
        let mut response = self.route(request).await;
        if let (Some(cors), Some(origin)) = (&self.cors, origin) {
            cors::allow_origin(cors, &origin, response.headers_mut());
        }
        response
    }

    /// The CORS settings when `request` is a preflight for one of the OTLP paths.
    fn preflight_cors(&self, request: &Request<Incoming>) -> Option<&CorsConfig> {
        let cors = self.cors.as_ref()?;
        let path = request.uri().path();
        (request.method() == Method::OPTIONS && self.all_paths.iter().any(|p| p == path))
            .then_some(cors)
    }

    async fn route(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let Some((_, ingest)) = self.routes.iter().find(|(p, _)| p == path) else {
            if self.all_paths.iter().any(|p| p == path) {
                return plain(
                    StatusCode::NOT_FOUND,
                    "this receiver has no pipeline for this signal",
                );
            }
            return plain(StatusCode::NOT_FOUND, "404 page not found");
        };
        if request.method() != Method::POST {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{} method not allowed, supported: [POST]", request.method()),
            );
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let Some(encoding) = Encoding::from_headers(request.headers()) else {
            let given = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("{given} is not supported, supported: [{JSON}, {PROTOBUF}]"),
            );
        };
        match self.read_body(request).await {
            Err((status, message)) => {
                error_response(encoding, status, code_for(status), &message, None)
            }
            Ok(body) => {
                let result = match encoding {
                    Encoding::Protobuf => ingest.protobuf(body).await,
                    Encoding::Json => ingest.json(body).await,
                };
                match result {
                    Ok(()) => success(encoding),
                    Err(error) => refusal(encoding, error),
                }
            }
        }
    }

    /// Reads the body within the size limit and inflates it if it is gzip, also within the limit.
    async fn read_body(&self, request: Request<Incoming>) -> Result<Bytes, (StatusCode, String)> {
        let too_large = || {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds the limit of {} bytes", self.max_body),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            return Err(too_large());
        }
        let content_encoding = request
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("invalid").trim().to_ascii_lowercase());
        let gzip = match content_encoding.as_deref() {
            None | Some("") | Some("identity") => false,
            Some("gzip") | Some("x-gzip") => true,
            Some(other) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unsupported Content-Encoding \"{other}\": supported are gzip and identity"
                    ),
                ));
            }
        };
        let body = match Limited::new(request.into_body(), self.max_body).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Err(too_large());
            }
            Err(error) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("failed to read the request body: {error}"),
                ));
            }
        };
        if !gzip {
            return Ok(body);
        }
        match transport::gzip::decompress_off_reactor(body, self.max_body).await {
            Ok(inflated) => Ok(Bytes::from(inflated)),
            Err(transport::gzip::InflateError::TooLarge { .. }) => Err(too_large()),
            Err(error) => Err((StatusCode::BAD_REQUEST, error.to_string())),
        }
    }
}

fn code_for(status: StatusCode) -> i32 {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => code::RESOURCE_EXHAUSTED,
        StatusCode::TOO_MANY_REQUESTS => code::RESOURCE_EXHAUSTED,
        StatusCode::SERVICE_UNAVAILABLE => code::UNAVAILABLE,
        _ => code::INVALID_ARGUMENT,
    }
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    pipeline::http_server::respond(
        status.as_u16(),
        "text/plain; charset=utf-8",
        message.to_string(),
    )
}

/// The empty `Export*ServiceResponse` in the request's encoding.
fn success(encoding: Encoding) -> Response<Full<Bytes>> {
    let body = match encoding {
        Encoding::Protobuf => Bytes::new(),
        Encoding::Json => Bytes::from_static(b"{}"),
    };
    pipeline::http_server::respond(200, encoding.content_type(), body)
}

fn refusal(encoding: Encoding, error: IngestError) -> Response<Full<Bytes>> {
    match error {
        IngestError::Invalid(message)
        | IngestError::Refused(ConsumeError::Permanent { message, .. }) => error_response(
            encoding,
            StatusCode::BAD_REQUEST,
            code::INVALID_ARGUMENT,
            &message,
            None,
        ),
        IngestError::Refused(ConsumeError::Retryable { kind, message, retry_after }) => {
            let (status, code) = match kind {
                RefusalKind::ResourceExhausted => {
                    (StatusCode::TOO_MANY_REQUESTS, code::RESOURCE_EXHAUSTED)
                }
                RefusalKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE),
            };
            error_response(encoding, status, code, &message, retry_after)
        }
    }
}

/// An error answer: a `google.rpc.Status` body in the request's encoding, and `Retry-After`
/// (whole seconds, at least one) when the sender should come back.
fn error_response(
    encoding: Encoding,
    status: StatusCode,
    code: i32,
    message: &str,
    retry_after: Option<Duration>,
) -> Response<Full<Bytes>> {
    let rpc_status = RpcStatus::new(code, message, retry_after);
    let body = match encoding {
        Encoding::Protobuf => Bytes::from(rpc_status.encode_to_vec()),
        Encoding::Json => {
            let json = serde_json::json!({ "code": code, "message": message });
            Bytes::from(json.to_string())
        }
    };
    let mut response =
        pipeline::http_server::respond(status.as_u16(), encoding.content_type(), body);
    if let Some(delay) = retry_after {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}
