//! The `otlp` exporter: OTLP over gRPC.
//!
//! Batches usually arrive still in protobuf wire form, and an `Export*ServiceRequest` is exactly
//! what the gRPC call carries: no decode, no re-encode. Uncompressed, the batch's bytes are sent
//! as they are ([`message_body`]); with gzip, tonic's client compresses them. Only the small
//! response is decoded, to read a partial success.

mod message_body;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes};
use config::{ConfigError, ConfigErrors, Value};
use futures_util::future::BoxFuture;
use http::uri::PathAndQuery;
use otlp::{Batch, Signal};
use pipeline::exporter_helper::{HelperSettings, QueueConfig, RetryConfig, SendError, Sender};
use pipeline::telemetry::ExporterMetrics;
use pipeline::{BuildContext, BuildError, Built, Configured, Factory, Kind, Stability};
use prost::Message;
use serde::Deserialize;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use transport::status::{RpcStatus, code, grpc_code_is_retryable};
use transport::tls::ClientTlsConfig;

use self::message_body::MessageBody;
use crate::common::{self, Compression, ExportResponse, Headers};
use crate::connect::{Connector, TlsSettings};

/// The largest request or response message: well above what a sane batch encodes to, below
/// what would let one bad batch take a large share of memory. Receivers commonly accept 4 MiB
/// by default; users with bigger batches raise that limit, not this one.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// The `otlp` exporter's YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpGrpcConfig {
    /// `host:port`; `http://host:port` for plain text, `https://host:port` for TLS. Without a
    /// scheme TLS is used unless `tls.insecure` is true.
    pub endpoint: Option<String>,
    pub tls: ClientTlsConfig,
    pub headers: Headers,
    /// `gzip` (default), `none` or empty.
    pub compression: Option<String>,
    /// Per attempt; 5s by default, zero for none.
    pub timeout: Option<config::Duration>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: QueueConfig,
}

/// Makes `otlp` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpExporterFactory;

impl Factory for OtlpExporterFactory {
    fn kind(&self) -> Kind {
        Kind::Exporter
    }

    fn type_name(&self) -> &'static str {
        "otlp"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[
            (Signal::Traces, Stability::Stable),
            (Signal::Logs, Stability::Stable),
            (Signal::Metrics, Stability::Stable),
        ]
    }

    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        let configured = common::configure(raw, path, OtlpGrpcConfigured::new)?;
        Ok(Box::new(configured))
    }
}

/// A validated `otlp` exporter.
pub struct OtlpGrpcConfigured {
    /// The channel's endpoint: an `http://` URI whatever the transport (see [`Connector`]),
    /// with the real origin, user agent and limits set.
    endpoint: Endpoint,
    /// Shown in the start-up log line.
    destination: String,
    tls: Option<TlsSettings>,
    metadata: MetadataMap,
    compression: Compression,
    helper: HelperSettings,
}

/// Where to dial, read from `endpoint`.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port`, with IPv6 hosts in brackets.
    authority: String,
    tls: bool,
}

impl OtlpGrpcConfigured {
    /// Checks every setting, collecting all errors.
    pub fn new(config: &OtlpGrpcConfig, path: &str) -> Result<OtlpGrpcConfigured, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let endpoint_text = config.endpoint.as_deref().unwrap_or_default();
        let target = match parse_endpoint(endpoint_text, config.tls.insecure) {
            Ok(target) => Some(target),
            Err(message) => {
                errors.push(ConfigError::new(format!("{path}.endpoint"), message));
                None
            }
        };
        let tls = match &target {
            Some(target) if target.tls => common::tls(&config.tls, &[b"h2"], path, &mut errors),
            _ => None,
        };
        let compression = common::compression(
            config.compression.as_deref(),
            Compression::Gzip,
            path,
            &mut errors,
        );
        let headers = common::headers(&config.headers, path, &mut errors);
        let helper = common::helper_settings(
            path,
            config.timeout,
            &config.retry_on_failure,
            &config.sending_queue,
            &mut errors,
        );
        let (metadata, user_agent) = metadata(headers);
        let endpoint = target.as_ref().and_then(|target| {
            match channel_endpoint(target, user_agent.as_deref()) {
                Ok(endpoint) => Some(endpoint),
                Err(message) => {
                    errors.push(ConfigError::new(format!("{path}.endpoint"), message));
                    None
                }
            }
        });
        errors.into_result()?;
        // Every `None` above pushed an error, so this does not return.
        let (Some(target), Some(endpoint), Some(helper)) = (target, endpoint, helper) else {
            return Err(ConfigError::new(path, "invalid settings").into());
        };
        Ok(OtlpGrpcConfigured {
            endpoint,
            destination: format!(
                "{} ({})",
                target.authority,
                if target.tls { "tls" } else { "plaintext" }
            ),
            tls,
            metadata,
            compression,
            helper,
        })
    }
}

impl Configured for OtlpGrpcConfigured {
    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        let signal = context.require_signal()?;
        let exporter = context.id.to_string();
        let timeout = common::announced_timeout(self.helper.timeout);
        let sender = Arc::new(OtlpGrpcSender {
            exporter: exporter.clone(),
            signal,
            endpoint: self.endpoint.clone(),
            connector: Connector::new(self.tls.clone()),
            channel: OnceLock::new(),
            metadata: self.metadata.clone(),
            compression: self.compression,
            timeout,
            uncompressed_headers: uncompressed_headers(&self.metadata, timeout),
            metrics: context.telemetry.exporter(&context.id, signal),
        });
        let destination = format!("{} {}", self.destination, signal);
        common::build_announced(&context, sender, &self.helper, exporter, destination)
    }
}

/// Reads `endpoint` the way the collector's gRPC client does.
fn parse_endpoint(text: &str, insecure: bool) -> Result<Target, String> {
    let invalid = |why: &str| format!("invalid endpoint \"{text}\": {why}");
    let (rest, tls) = if let Some(rest) = text.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = text.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = text.strip_prefix("dns:///") {
        // gRPC's target syntax, common in collector configs; the name is resolved per
        // connection either way.
        (rest, !insecure)
    } else if let Some((scheme, _)) = text.split_once("://") {
        return Err(invalid(&format!("unsupported scheme \"{scheme}\": expected http or https")));
    } else {
        (text, !insecure)
    };
    let expected = "expected host:port";
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, port) = bracketed.split_once("]:").ok_or_else(|| invalid(expected))?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| invalid(expected))?;
        (format!("[{ip}]"), port)
    } else {
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| invalid(expected))?;
        let host_ok = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !host_ok {
            return Err(invalid(expected));
        }
        (host.to_string(), port)
    };
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Target { authority: format!("{host}:{port}"), tls }),
        _ => Err(invalid(expected)),
    }
}

/// Splits the validated headers into gRPC metadata and the user agent, which tonic takes
/// separately (it drops a `user-agent` given as metadata).
fn metadata(headers: Vec<(http::HeaderName, http::HeaderValue)>) -> (MetadataMap, Option<String>) {
    let mut metadata = MetadataMap::new();
    let mut user_agent = None;
    for (name, value) in headers {
        if name == http::header::USER_AGENT {
            user_agent = value.to_str().ok().map(str::to_string);
        } else if name.as_str().ends_with("-bin") {
            // Binary metadata travels base64-encoded; tonic encodes it.
            if let Ok(key) = BinaryMetadataKey::from_bytes(name.as_str().as_bytes()) {
                metadata.insert_bin(
                    key,
                    tonic::metadata::BinaryMetadataValue::from_bytes(value.as_bytes()),
                );
            }
        } else if let (Ok(key), Ok(value)) = (
            AsciiMetadataKey::from_bytes(name.as_str().as_bytes()),
            AsciiMetadataValue::try_from(value.as_bytes()),
        ) {
            metadata.insert(key, value);
        }
    }
    (metadata, user_agent)
}

fn channel_endpoint(target: &Target, user_agent: Option<&str>) -> Result<Endpoint, String> {
    let invalid = |error: &dyn std::fmt::Display| {
        format!("invalid endpoint \"{}\": {error}", target.authority)
    };
    let endpoint = Endpoint::from_shared(format!("http://{}", target.authority))
        .map_err(|error| invalid(&error))?;
    let scheme = if target.tls { "https" } else { "http" };
    let origin: http::Uri = format!("{scheme}://{}", target.authority)
        .parse()
        .map_err(|error: http::uri::InvalidUri| invalid(&error))?;
    endpoint
        .origin(origin)
        // Window sizes that follow the measured bandwidth-delay product, as gRPC-Go (the
        // collector's client) does; the fixed 64 KiB default would throttle large batches on
        // long links.
        .http2_adaptive_window(true)
        .user_agent(user_agent.unwrap_or(common::USER_AGENT))
        .map_err(|error| invalid(&error))
}

// === sending ===

/// One `otlp` exporter instance for one signal.
struct OtlpGrpcSender {
    exporter: String,
    signal: Signal,
    endpoint: Endpoint,
    connector: Connector,
    /// Made on first use: a tonic channel spawns its worker task on creation, which needs the
    /// runtime, and it connects lazily, so an unreachable destination does not fail start-up.
    channel: OnceLock<Channel>,
    metadata: MetadataMap,
    compression: Compression,
    /// Sent as `grpc-timeout` so the destination can give up too.
    timeout: Option<Duration>,
    /// Every uncompressed call's headers, the same for each call: made once.
    uncompressed_headers: http::HeaderMap,
    metrics: ExporterMetrics,
}

impl Sender for OtlpGrpcSender {
    fn send<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            // Encodes a decoded batch once, and takes the size from what will be sent.
            let outgoing = Outgoing::of(batch);
            let size = outgoing.encoded_len();
            if size > MAX_MESSAGE_SIZE {
                // tonic would refuse it as OUT_OF_RANGE, which OTLP retries: fail it once, with
                // the remedy.
                return Err(SendError::permanent(format!(
                    "the batch encodes to {size} bytes, over the gRPC message limit of {MAX_MESSAGE_SIZE}; limit batch sizes with the batch processor's send_batch_max_size"
                )));
            }
            let channel = self
                .channel
                .get_or_init(|| self.endpoint.connect_with_connector_lazy(self.connector.clone()))
                .clone();
            let result = match self.compression {
                Compression::None => self.call_uncompressed(channel, &outgoing).await,
                Compression::Gzip => self.call_compressed(channel, outgoing).await,
            };
            match result {
                Ok(response) => {
                    response.report(&self.exporter, &self.metrics);
                    Ok(())
                }
                Err(Failure::NotReady(message)) => Err(SendError::retryable(message)),
                Err(Failure::Status(status)) => Err(send_error(&status)),
            }
        })
    }
}

/// Why a call failed: before it was made, or with a status.
enum Failure {
    NotReady(String),
    Status(tonic::Status),
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        Failure::Status(status)
    }
}

fn not_ready(error: impl std::fmt::Display) -> Failure {
    Failure::NotReady(format!("connection not ready: {error}"))
}

impl OtlpGrpcSender {
    /// A gzip call, through tonic's client, which compresses the message into its own buffer.
    async fn call_compressed(
        &self,
        channel: Channel,
        outgoing: Outgoing,
    ) -> Result<ExportResponse, Failure> {
        let mut grpc = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
            .max_decoding_message_size(MAX_MESSAGE_SIZE);
        grpc.ready().await.map_err(not_ready)?;
        let mut request = tonic::Request::from_parts(
            self.metadata.clone(),
            tonic::Extensions::default(),
            outgoing,
        );
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        let path = PathAndQuery::from_static(self.signal.grpc_path());
        let response = grpc.unary(request, path, ExportCodec).await?;
        Ok(response.into_inner())
    }

    /// An uncompressed call, made on the channel directly so that the batch's bytes are sent
    /// as they are ([`message_body`]). The request and the reading of the response follow
    /// tonic's unary client: the same headers, and the same statuses for what goes wrong.
    async fn call_uncompressed(
        &self,
        mut channel: Channel,
        outgoing: &Outgoing,
    ) -> Result<ExportResponse, Failure> {
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut channel, cx))
            .await
            .map_err(not_ready)?;
        let body = match outgoing {
            Outgoing::Encoded(batch) => MessageBody::new(batch.wire_chunks().unwrap_or_default()),
            Outgoing::Bytes(bytes) => MessageBody::new(std::slice::from_ref(bytes)),
        };
        let mut request = http::Request::new(tonic::body::Body::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from(PathAndQuery::from_static(self.signal.grpc_path()));
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = self.uncompressed_headers.clone();
        let response = tower_service::Service::call(&mut channel, request)
            .await
            .map_err(|error| tonic::Status::from_error(Box::new(error)))?;
        let (parts, body) = response.into_parts();
        // A status in the headers is a trailers-only response: there is no message.
        if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
            if status.code() != tonic::Code::Ok {
                return Err(status.into());
            }
            return Err(tonic::Status::internal("Missing response message.").into());
        }
        let encoding = response_encoding(&parts.headers)?;
        let mut messages = tonic::codec::Streaming::new_response(
            ExportCodec,
            body,
            parts.status,
            encoding,
            Some(MAX_MESSAGE_SIZE),
        );
        let response = messages
            .message()
            .await?
            .ok_or_else(|| tonic::Status::internal("Missing response message."))?;
        // The status comes in the trailers: an error there fails the call.
        messages.trailers().await?;
        Ok(response)
    }
}

/// An uncompressed call's headers: the metadata (with `grpc-timeout`), less the names gRPC
/// reserves, as tonic sends them.
fn uncompressed_headers(metadata: &MetadataMap, timeout: Option<Duration>) -> http::HeaderMap {
    let mut request =
        tonic::Request::from_parts(metadata.clone(), tonic::Extensions::default(), ());
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    let mut headers = request.into_parts().0.into_headers();
    for reserved in ["grpc-message", "grpc-message-type", "grpc-status"] {
        headers.remove(reserved);
    }
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    headers.insert(GRPC_ACCEPT_ENCODING, http::HeaderValue::from_static("gzip"));
    headers
}

/// `grpc-accept-encoding`: the response may come gzip-compressed, as with tonic's client.
const GRPC_ACCEPT_ENCODING: http::HeaderName =
    http::HeaderName::from_static("grpc-accept-encoding");

/// The response's `grpc-encoding`, which must be one the call accepts.
fn response_encoding(
    headers: &http::HeaderMap,
) -> Result<Option<CompressionEncoding>, tonic::Status> {
    match headers.get("grpc-encoding").map(http::HeaderValue::as_bytes) {
        None | Some(b"identity") => Ok(None),
        Some(b"gzip") => Ok(Some(CompressionEncoding::Gzip)),
        Some(other) => Err(tonic::Status::unimplemented(format!(
            "the response is compressed with {:?}, which was not offered",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// Maps a failed call to the helper's retry decision, as OTLP specifies for gRPC.
fn send_error(status: &tonic::Status) -> SendError {
    let code = status.code() as i32;
    let retry_after =
        RpcStatus::decode(status.details()).ok().and_then(|details| details.retry_after());
    // A status made on this side from an I/O or HTTP/2 failure carries its cause; the
    // destination's own statuses never do. Such failures are worth retrying whatever code
    // tonic gave them.
    let local_failure =
        status.code() == tonic::Code::Unknown && std::error::Error::source(status).is_some();
    let retryable = match code {
        // The specification retries RESOURCE_EXHAUSTED only when the server says, with a retry
        // delay, that it can recover; without one the data would be resent forever.
        code::RESOURCE_EXHAUSTED => retry_after.is_some(),
        other => grpc_code_is_retryable(other) || local_failure,
    };
    let message = format!("the destination answered {:?}: {}", status.code(), status.message());
    if retryable {
        SendError::Retryable { message, retry_after }
    } else {
        SendError::Permanent { message }
    }
}

/// What the request codec writes.
///
/// The helper lends the sender `&Batch` while tonic needs an owned message. A batch in wire
/// form is cloned, which copies only the list of its byte chunks (each a reference-count bump),
/// never the data. A decoded batch would deep-copy on clone, so it is encoded here instead,
/// which is the one encode it needs anyway.
enum Outgoing {
    Encoded(Batch),
    Bytes(Bytes),
}

impl Outgoing {
    fn of(batch: &Batch) -> Outgoing {
        if batch.is_encoded() {
            Outgoing::Encoded(batch.clone())
        } else {
            Outgoing::Bytes(batch.to_bytes())
        }
    }

    /// The size of the encoded message: the sum of a wire-form batch's chunks, or the length of
    /// the bytes a decoded batch was encoded to.
    fn encoded_len(&self) -> usize {
        match self {
            Outgoing::Encoded(batch) => batch.encoded_len(),
            Outgoing::Bytes(bytes) => bytes.len(),
        }
    }
}

/// Requests are batches written as they are; responses decode to their partial success.
#[derive(Debug, Clone, Copy)]
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = Outgoing;
    type Decode = ExportResponse;
    type Encoder = ExportCodec;
    type Decoder = ExportCodec;

    fn encoder(&mut self) -> ExportCodec {
        ExportCodec
    }

    fn decoder(&mut self) -> ExportCodec {
        ExportCodec
    }
}

impl Encoder for ExportCodec {
    type Item = Outgoing;
    type Error = tonic::Status;

    fn encode(&mut self, item: Outgoing, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        match item {
            Outgoing::Encoded(batch) => {
                // One reservation instead of growing chunk by chunk.
                dst.reserve(batch.encoded_len());
                batch.encode_to(dst);
            }
            Outgoing::Bytes(bytes) => dst.put_slice(&bytes),
        }
        Ok(())
    }
}

impl Decoder for ExportCodec {
    type Item = ExportResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<ExportResponse>, tonic::Status> {
        ExportResponse::decode(src)
            .map(Some)
            .map_err(|error| tonic::Status::internal(format!("invalid export response: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str, insecure: bool) -> Result<Target, String> {
        parse_endpoint(text, insecure)
    }

    #[test]
    fn endpoints_follow_the_collector_rules() {
        let tls = |authority: &str| Ok(Target { authority: authority.into(), tls: true });
        let plain = |authority: &str| Ok(Target { authority: authority.into(), tls: false });
        assert_eq!(target("collector:4317", false), tls("collector:4317"));
        assert_eq!(target("collector:4317", true), plain("collector:4317"));
        assert_eq!(target("http://collector:4317", false), plain("collector:4317"));
        assert_eq!(target("https://collector:4317", true), tls("collector:4317"));
        assert_eq!(target("dns:///collector:4317", true), plain("collector:4317"));
        assert_eq!(target("[::1]:4317", true), plain("[::1]:4317"));
        assert_eq!(target("", false), Err("invalid endpoint \"\": expected host:port".into()));
        assert_eq!(
            target("collector", false),
            Err("invalid endpoint \"collector\": expected host:port".into())
        );
        assert!(target("collector:0", false).is_err());
        assert!(target("collector:99999", false).is_err());
        assert!(target("http://collector:4317/v1", false).is_err());
        assert_eq!(
            target("grpc://collector:4317", false),
            Err("invalid endpoint \"grpc://collector:4317\": unsupported scheme \"grpc\": expected http or https".into())
        );
    }

    #[test]
    fn retry_decisions_follow_the_specification() {
        let unavailable = tonic::Status::unavailable("down");
        assert!(matches!(send_error(&unavailable), SendError::Retryable { retry_after: None, .. }));
        let invalid = tonic::Status::invalid_argument("bad");
        assert!(matches!(send_error(&invalid), SendError::Permanent { .. }));
        let exhausted = tonic::Status::resource_exhausted("full");
        assert!(matches!(send_error(&exhausted), SendError::Permanent { .. }));
        let details =
            RpcStatus::new(code::RESOURCE_EXHAUSTED, "full", Some(Duration::from_secs(2)));
        let throttled = tonic::Status::with_details(
            tonic::Code::ResourceExhausted,
            "full",
            details.encode_to_vec().into(),
        );
        assert!(matches!(
            send_error(&throttled),
            SendError::Retryable { retry_after: Some(delay), .. } if delay == Duration::from_secs(2)
        ));
    }

    #[test]
    fn the_encoder_writes_the_batch_bytes_unchanged() {
        let request = otlp::fixtures::sidecar_traces(5, 2);
        let wire = Bytes::from(request.encode_to_vec());
        for batch in
            [Batch::from_wire(Signal::Traces, wire.clone()).unwrap(), Batch::from_traces(request)]
        {
            let mut out = bytes::BytesMut::new();
            match Outgoing::of(&batch) {
                Outgoing::Encoded(batch) => batch.encode_to(&mut out),
                Outgoing::Bytes(bytes) => out.put_slice(&bytes),
            }
            assert_eq!(out.freeze(), wire);
        }
    }
}
