//! The span's attributes and status, as Envoy's OpenTelemetry tracer writes them for an Istio
//! sidecar (mesh-tracing-spec §1.3, §1.4, §1.7, §2.4). Every tag is a string attribute.
//!
//! * Envoy's tags: `node_id`, `zone`, `guid:x-request-id`, `guid:x-client-trace-id`,
//!   `http.url` (`<scheme>://<host><path>`, path cut at `max_path_tag_length`), `http.method`,
//!   `http.protocol`, `downstream_cluster`, `user_agent`, `request_size`, `response_size`,
//!   `peer.address` (the downstream peer, `ip:port` as the newest Envoy writes it),
//!   `upstream_address`, `upstream_cluster`, `upstream_cluster.name`, `http.status_code` (`0`
//!   without a response), `response_flags`, `component=proxy`, `error=true` (no response, a
//!   5xx, or a gRPC server-error status), and for gRPC `grpc.path`, `grpc.authority`,
//!   `grpc.content_type`, `grpc.timeout`, `grpc.status_code`, `grpc.message`;
//! * `istio.*` when `enableIstioTags`, custom tags (literal, environment, request header; an
//!   empty value sets no tag), and `meshtrace.stitched=true` on a stitched span.
//!
//! Status: a 5xx is an error on any span, a 4xx only on a CLIENT span; a gRPC status is an error
//! on a CLIENT span unless OK, on a SERVER span only for Unknown, DeadlineExceeded,
//! Unimplemented, Internal, Unavailable and DataLoss. The `error` tag alone sets no status.
//!
//! [`RequestInfo::read`] and [`ResponseInfo::read`] keep what the span needs when the heads pass
//! by; [`span_tags`] is a pure function of them, the direction's [`DirectionTags`] and the
//! [`Completion`].

use std::borrow::Cow;
use std::net::SocketAddr;

use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Uri, Version};
use propagation::request_id;

use super::local::{LocalInfo, istio_tags};
use super::sampling::CLIENT_TRACE_ID;
use super::span::AttributeFields;
use crate::config::{DirectionSettings, Exporter, TagValue, Workload};
use crate::environment::Environment;
use crate::grpc::{GRPC_MESSAGE, GRPC_STATUS, is_grpc};
use crate::observe::{Completion, RequestView, ResponseView};
use crate::proxy::headers::X_FORWARDED_PROTO;
use crate::received::Known;

pub(crate) const ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
pub(crate) const DOWNSTREAM_CLUSTER: HeaderName =
    HeaderName::from_static("x-envoy-downstream-service-cluster");

/// An attribute name or value, borrowed from the request's recorded facts and the direction's
/// fixed tags wherever it can be: a span's tags are encoded once and dropped, so copying them
/// would only feed the allocator.
pub(crate) type Text<'a> = Cow<'a, str>;

/// The span kind of a direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Inbound.
    Server,
    /// Outbound.
    Client,
}

/// The span status Envoy's OpenTelemetry tracer sets (it never sets OK nor a message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpanStatus {
    Unset,
    Error,
}

/// A direction's tags fixed at start-up, and how to read the per-request ones.
#[derive(Clone, Debug)]
pub(crate) struct DirectionTags {
    /// `node_id` and `zone`, the first tags of every span.
    leading: ConstantTags,
    /// `istio.*`, literal and environment tags, resolved: the last but the request-header ones.
    fixed: ConstantTags,
    /// Request-header tags: (tag, header, default); no header when the name is not a valid
    /// header name (only the default applies).
    headers: Vec<(String, Option<HeaderName>, Option<String>)>,
    max_path_tag_length: usize,
    /// Whether a fixed tag or a request-header tag may replace one written before it; when
    /// not, tags are appended without looking for one to replace (most workloads).
    replaces: bool,
    /// Spans bound for Zipkin: their status is Error exactly when they carry `error=true`, so
    /// that the Zipkin translation (which derives the `error` tag from the status) shows the
    /// tag Envoy's Zipkin tracer sets, and no other.
    status_follows_error_tag: bool,
}

/// What a span needs from the request head, kept as the head has it: header values and the URI
/// are reference-counted slices of the request as it arrived, so keeping them copies no text.
/// The tags are made from them when the span is, after the response has left.
#[derive(Clone, Debug)]
pub(crate) struct RequestInfo {
    /// Standard methods are clones without allocation.
    method: Method,
    uri: Uri,
    version: Version,
    /// The request headers a tag is made of.
    headers: TagHeaders,
    /// The request-header custom tags' values, one per [`DirectionTags::headers`] entry
    /// (empty when the direction has none).
    custom: Vec<Option<HeaderValue>>,
    peer: SocketAddr,
    upstream_cluster: String,
    /// The context came from an in-flight inbound request (stitching).
    stitched: bool,
}

/// The request headers the standard tags read; `None` when absent.
#[derive(Clone, Debug, Default)]
struct TagHeaders {
    host: Option<HeaderValue>,
    forwarded_proto: Option<HeaderValue>,
    original_path: Option<HeaderValue>,
    content_type: Option<HeaderValue>,
    grpc_timeout: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    downstream_cluster: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    client_trace_id: Option<HeaderValue>,
}

/// What a span needs from the response head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResponseInfo {
    pub(crate) status: u16,
    pub(crate) upstream: Option<SocketAddr>,
    /// `grpc-status` / `grpc-message` of a trailers-only response.
    pub(crate) grpc_status: Option<String>,
    pub(crate) grpc_message: Option<String>,
}

/// The attributes and status of one span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpanTags<'a> {
    pub(crate) attributes: Vec<(Text<'a>, Text<'a>)>,
    pub(crate) status: SpanStatus,
}

// === impl DirectionTags ===

impl DirectionTags {
    /// The tags of a direction; environment tags are read now, once.
    pub(crate) fn new(
        settings: &DirectionSettings,
        workload: &Workload,
        local: &LocalInfo,
        env: &Environment,
    ) -> DirectionTags {
        let mut fixed =
            if settings.enable_istio_tags { istio_tags(workload, local) } else { Vec::new() };
        let mut headers = Vec::new();
        for tag in &settings.custom_tags {
            let value = match &tag.value {
                TagValue::Literal(value) => Some(value.clone()),
                TagValue::Environment { name, default_value } => {
                    env.var(name).or_else(|| default_value.clone())
                }
                TagValue::RequestHeader { name, default_value } => {
                    let header = HeaderName::from_bytes(name.as_bytes()).ok();
                    headers.push((tag.name.clone(), header, default_value.clone()));
                    continue;
                }
            };
            fixed.retain(|(name, _)| *name != tag.name);
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                fixed.push((tag.name.clone(), value));
            }
        }
        // Custom names in the order they are written: a name replaces a tag when it is a
        // standard one or came before.
        let names: Vec<&str> = fixed
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(headers.iter().map(|(name, _, _)| name.as_str()))
            .collect();
        let replaces = names
            .iter()
            .enumerate()
            .any(|(i, name)| STANDARD_KEYS.contains(name) || names[..i].contains(name));
        DirectionTags {
            replaces,
            status_follows_error_tag: matches!(settings.exporter, Some(Exporter::Zipkin(_))),
            leading: ConstantTags::new(
                std::iter::once(("node_id".to_owned(), local.node_id.clone()))
                    .chain(local.zone.clone().map(|zone| ("zone".to_owned(), zone)))
                    .collect(),
            ),
            fixed: ConstantTags::new(fixed),
            headers,
            max_path_tag_length: usize::try_from(settings.max_path_tag_length)
                .unwrap_or(usize::MAX),
        }
    }
}

// === impl RequestInfo ===

impl RequestInfo {
    /// Keeps what the span needs from the request head as it is forwarded (after propagation
    /// headers are written, as Envoy's custom tags read it at the end of the stream).
    pub(crate) fn read(
        tags: &DirectionTags,
        view: &RequestView<'_>,
        stitched: bool,
    ) -> RequestInfo {
        let head = &*view.head;
        let header = |name: &HeaderName| head.headers.get(name).cloned();
        // Only the headers the request arrived with are looked up, and those the proxy writes.
        let received = |known: Known, name: &HeaderName| {
            if view.received.has(known) { header(name) } else { None }
        };
        RequestInfo {
            method: head.method.clone(),
            uri: head.uri.clone(),
            version: head.version,
            headers: TagHeaders {
                host: header(&HOST),
                forwarded_proto: header(&X_FORWARDED_PROTO),
                original_path: received(Known::OriginalPath, &ORIGINAL_PATH),
                content_type: received(Known::ContentType, &CONTENT_TYPE),
                grpc_timeout: received(Known::GrpcTimeout, &GRPC_TIMEOUT),
                user_agent: received(Known::UserAgent, &USER_AGENT),
                downstream_cluster: received(Known::DownstreamCluster, &DOWNSTREAM_CLUSTER),
                request_id: header(&request_id::HEADER),
                client_trace_id: received(Known::ClientTraceId, &CLIENT_TRACE_ID),
            },
            custom: tags
                .headers
                .iter()
                .map(|(_, name, _)| name.as_ref().and_then(header))
                .collect(),
            peer: view.peer,
            upstream_cluster: view.upstream_cluster.to_owned(),
            stitched,
        }
    }

    /// The scheme, host and path of Envoy's `http.url` (`<scheme>://<host><path>`), the path
    /// not yet cut.
    fn url_parts(&self) -> [Text<'_>; 3] {
        let headers = &self.headers;
        let host = self.authority();
        let scheme = text(headers.forwarded_proto.as_ref())
            .or_else(|| self.uri.scheme_str().map(Cow::Borrowed))
            .unwrap_or(Cow::Borrowed("http"));
        let path = text(headers.original_path.as_ref())
            .or_else(|| self.uri.path_and_query().map(|p| Cow::Borrowed(p.as_str())))
            .unwrap_or(Cow::Borrowed("/"));
        [scheme, host, path]
    }

    /// `:authority`, else `Host`.
    fn authority(&self) -> Text<'_> {
        match self.uri.authority() {
            Some(authority) => Cow::Borrowed(authority.as_str()),
            None => text(self.headers.host.as_ref()).unwrap_or_default(),
        }
    }

    /// The gRPC request's `content-type`, when it is one.
    fn grpc_content_type(&self) -> Option<&HeaderValue> {
        self.headers.content_type.as_ref().filter(|value| is_grpc(value))
    }
}

/// A header value as tag text (invalid UTF-8 replaced), borrowed when it is valid. Checked with
/// `str::from_utf8` first: header values are nearly always ASCII, which it checks a word at a
/// time, where `from_utf8_lossy`'s chunk iterator took about 200 instructions per value.
fn text(value: Option<&HeaderValue>) -> Option<Text<'_>> {
    value.map(|value| match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value.as_bytes()),
    })
}

/// Writes a number tag. `itoa` rather than `to_string`: a span has three numbers, and `fmt`
/// costs several times as many instructions.
fn decimal<'a>(sink: &mut impl TagSink<'a>, key: &'a str, number: u64) {
    sink.made(key, &[itoa::Buffer::new().format(number)]);
}

/// Writes an address tag, `ip:port` as `SocketAddr`'s `Display` writes it. An IPv4 address is
/// written in parts without `fmt`, which took about 1,700 instructions per address (two per
/// span); IPv6 goes through it.
fn address<'a>(sink: &mut impl TagSink<'a>, key: &'a str, address: SocketAddr) {
    let SocketAddr::V4(v4) = address else {
        sink.made(key, &[&address.to_string()]);
        return;
    };
    let [a, b, c, d] = v4.ip().octets();
    let [mut a_text, mut b_text, mut c_text, mut d_text, mut port_text] = [itoa::Buffer::new(); 5];
    sink.made(
        key,
        &[
            a_text.format(a),
            ".",
            b_text.format(b),
            ".",
            c_text.format(c),
            ".",
            d_text.format(d),
            ":",
            port_text.format(v4.port()),
        ],
    );
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Envoy's `http.protocol` values.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "-",
    }
}

// === impl ResponseInfo ===

impl ResponseInfo {
    /// Reads the response head.
    pub(crate) fn read(view: &ResponseView<'_>) -> ResponseInfo {
        let (grpc_status, grpc_message) = match view.received.has_any(&GRPC_RESPONSE) {
            true => grpc_response(view.headers),
            false => (None, None),
        };
        ResponseInfo {
            status: view.status.as_u16(),
            upstream: view.upstream,
            grpc_status: grpc_status.map(Cow::into_owned),
            grpc_message: grpc_message.map(Cow::into_owned),
        }
    }
}

/// The headers [`grpc_response`] reads.
const GRPC_RESPONSE: [Known; 2] = [Known::GrpcStatus, Known::GrpcMessage];

/// `grpc-status` and `grpc-message` of a header block.
fn grpc_response(headers: &HeaderMap) -> (Option<Text<'_>>, Option<Text<'_>>) {
    (text(headers.get(GRPC_STATUS)), text(headers.get(GRPC_MESSAGE)))
}

/// gRPC statuses that are the server's fault: `error=true` on any span (Envoy
/// `addGrpcResponseTags`).
const GRPC_SERVER_ERRORS: [u32; 7] = [2, 4, 8, 12, 13, 14, 15];
/// gRPC statuses that make a SERVER span's status ERROR (ResourceExhausted is not one).
const GRPC_SERVER_STATUS_ERRORS: [u32; 6] = [2, 4, 12, 13, 14, 15];

/// Every tag [`span_tags`] writes before the fixed and request-header ones, which may replace
/// them.
const STANDARD_KEYS: [&str; 26] = [
    "node_id",
    "zone",
    "guid:x-request-id",
    "guid:x-client-trace-id",
    "http.url",
    "http.method",
    "http.protocol",
    "downstream_cluster",
    "user_agent",
    "request_size",
    "response_size",
    "peer.address",
    "upstream_address",
    "upstream_cluster",
    "upstream_cluster.name",
    "http.status_code",
    "response_flags",
    "component",
    "grpc.path",
    "grpc.authority",
    "grpc.content_type",
    "grpc.timeout",
    "grpc.status_code",
    "grpc.message",
    "error",
    "meshtrace.stitched",
];

/// Where [`write_tags`] puts a span's tags, in order.
pub(crate) trait TagSink<'a> {
    /// A tag whose value lives in the request's record or the direction's tags.
    fn tag(&mut self, key: &'a str, value: Text<'a>);
    /// A tag whose value is made for the span (a number, an address, the URL), in parts that
    /// are joined.
    fn made(&mut self, key: &'a str, parts: &[&str]);
    /// Tags that are the same on every span of a direction.
    fn constant(&mut self, tags: &'a ConstantTags);
}

/// Tags that are the same on every span of a direction, also written ahead as attribute
/// fields: a span copies them in one go instead of encoding each (`node_id` and the five
/// `istio.*` tags were a quarter of the encoding).
#[derive(Clone, Debug)]
pub(crate) struct ConstantTags {
    list: Vec<(String, String)>,
    fields: Vec<u8>,
}

impl ConstantTags {
    fn new(list: Vec<(String, String)>) -> ConstantTags {
        let mut fields = Vec::new();
        let mut sink = AttributeFields(&mut fields);
        for (key, value) in &list {
            sink.tag(key, Cow::Borrowed(value));
        }
        ConstantTags { list, fields }
    }

    /// The tags as `Span.attributes` fields.
    pub(crate) fn fields(&self) -> &[u8] {
        &self.fields
    }
}

/// The tags as a list: for a direction whose custom tags may replace others
/// ([`DirectionTags::replaces`]), which a sink writing them as they come cannot do, and for
/// tests.
struct TagList<'a> {
    attributes: Vec<(Text<'a>, Text<'a>)>,
    replaces: bool,
}

impl<'a> TagSink<'a> for TagList<'a> {
    fn tag(&mut self, key: &'a str, value: Text<'a>) {
        // The standard tags are distinct, so only a custom tag ever finds one to replace.
        if self.replaces {
            self.attributes.retain(|(existing, _)| existing != key);
        }
        self.attributes.push((Cow::Borrowed(key), value));
    }

    fn made(&mut self, key: &'a str, parts: &[&str]) {
        self.tag(key, Cow::Owned(parts.concat()));
    }

    fn constant(&mut self, tags: &'a ConstantTags) {
        for (key, value) in &tags.list {
            self.tag(key, Cow::Borrowed(value));
        }
    }
}

impl DirectionTags {
    /// Whether a custom tag may replace a tag written before it: the tags must then be
    /// gathered in a list ([`span_tags`]) before they are encoded.
    pub(crate) fn replaces(&self) -> bool {
        self.replaces
    }
}

/// The attributes and status of a span, as a list.
pub(crate) fn span_tags<'a>(
    tags: &'a DirectionTags,
    kind: Kind,
    request: &'a RequestInfo,
    response: Option<&'a ResponseInfo>,
    completion: &'a Completion<'_>,
) -> SpanTags<'a> {
    let mut list = TagList { attributes: Vec::with_capacity(32), replaces: tags.replaces };
    let status = write_tags(tags, kind, request, response, completion, &mut list);
    SpanTags { attributes: list.attributes, status }
}

/// Writes a span's attributes into `sink`, in Envoy's order then the custom tags; returns the
/// span's status. A custom tag replaces a tag of the same name only in a sink that can
/// ([`TagList`]).
pub(crate) fn write_tags<'a>(
    tags: &'a DirectionTags,
    kind: Kind,
    request: &'a RequestInfo,
    response: Option<&'a ResponseInfo>,
    completion: &'a Completion<'_>,
    sink: &mut impl TagSink<'a>,
) -> SpanStatus {
    let borrowed = |value: &'a str| -> Text<'a> { Cow::Borrowed(value) };
    let headers = &request.headers;
    sink.constant(&tags.leading);
    if let Some(id) = text(headers.request_id.as_ref()).filter(|id| !id.is_empty()) {
        sink.tag("guid:x-request-id", id);
    }
    if let Some(client) = text(headers.client_trace_id.as_ref()) {
        sink.tag("guid:x-client-trace-id", client);
    }
    let [scheme, host, path] = request.url_parts();
    sink.made("http.url", &[&scheme, "://", &host, truncate(&path, tags.max_path_tag_length)]);
    sink.tag("http.method", borrowed(request.method.as_str()));
    sink.tag("http.protocol", borrowed(protocol(request.version)));
    let downstream_cluster = text(headers.downstream_cluster.as_ref()).unwrap_or(borrowed("-"));
    sink.tag("downstream_cluster", downstream_cluster);
    sink.tag("user_agent", text(headers.user_agent.as_ref()).unwrap_or(borrowed("-")));
    decimal(sink, "request_size", completion.request_body_bytes);
    decimal(sink, "response_size", completion.response_body_bytes);
    address(sink, "peer.address", request.peer);
    if let Some(upstream) = response.and_then(|r| r.upstream) {
        address(sink, "upstream_address", upstream);
    }
    sink.tag("upstream_cluster", borrowed(&request.upstream_cluster));
    sink.tag("upstream_cluster.name", borrowed(&request.upstream_cluster));
    let status_code = response.map(|r| r.status);
    decimal(sink, "http.status_code", u64::from(status_code.unwrap_or(0)));
    sink.tag("response_flags", borrowed(completion.response_flags));
    sink.tag("component", borrowed("proxy"));
    let mut error = status_code.is_none_or(|code| code >= 500);
    let mut grpc_code = None;
    if let Some(content_type) = request.grpc_content_type() {
        sink.tag("grpc.path", borrowed(request.uri.path()));
        sink.tag("grpc.authority", request.authority());
        sink.tag("grpc.content_type", text(Some(content_type)).unwrap_or_default());
        if let Some(timeout) = text(headers.grpc_timeout.as_ref()) {
            sink.tag("grpc.timeout", timeout);
        }
        let (status, message) = match completion.trailers.filter(|t| !t.is_empty()) {
            Some(trailers) => grpc_response(trailers),
            None => response.map_or((None, None), |r| {
                (r.grpc_status.as_deref().map(borrowed), r.grpc_message.as_deref().map(borrowed))
            }),
        };
        grpc_code = status.as_deref().and_then(|s| s.trim().parse::<u32>().ok());
        error |= grpc_code.is_some_and(|code| GRPC_SERVER_ERRORS.contains(&code));
        if let Some(status) = status {
            sink.tag("grpc.status_code", status);
        }
        if let Some(message) = message {
            sink.tag("grpc.message", message);
        }
    }
    if error {
        sink.tag("error", borrowed("true"));
    }
    if request.stitched {
        sink.tag("meshtrace.stitched", borrowed("true"));
    }
    sink.constant(&tags.fixed);
    // A request-header tag takes the header as forwarded, else its default; empty sets none.
    for ((key, _, default), value) in tags.headers.iter().zip(&request.custom) {
        let value = text(value.as_ref()).or_else(|| default.as_deref().map(Cow::Borrowed));
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            sink.tag(key, value);
        }
    }
    if tags.status_follows_error_tag {
        if error { SpanStatus::Error } else { SpanStatus::Unset }
    } else {
        status(kind, status_code, grpc_code)
    }
}

/// Envoy's OpenTelemetry span status rules.
fn status(kind: Kind, http: Option<u16>, grpc: Option<u32>) -> SpanStatus {
    let http_error = match http {
        Some(code) if code >= 500 => true,
        Some(400..=499) => kind == Kind::Client,
        _ => false,
    };
    let grpc_error = match (kind, grpc) {
        (Kind::Client, Some(code)) => code != 0,
        (Kind::Server, Some(code)) => GRPC_SERVER_STATUS_ERRORS.contains(&code),
        (_, None) => false,
    };
    if http_error || grpc_error { SpanStatus::Error } else { SpanStatus::Unset }
}

#[cfg(test)]
mod tests;
