//! The OTLP span of one exchange: kind SERVER (inbound) or CLIENT (outbound), named as Istio
//! names the default routes, with this proxy's ids, its times and its status.
//!
//! Names (mesh-tracing-spec §1.2): Istio decorates its default inbound and outbound routes with
//! `<service FQDN>:<port>/*`, which becomes the span name. The host and port come from the
//! cluster name (`outbound|9080||reviews.default.svc.cluster.local`); an inbound cluster
//! without a host (`inbound|9080||`) uses this workload's service host; a cluster of another
//! form (a passthrough) uses the request's authority. A caller's
//! `x-envoy-decorator-operation` renames an inbound span, as in Envoy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otlp::proto::trace::v1::SpanFlags;
use otlp::proto::trace::v1::span::SpanKind;
use otlp::proto::trace::v1::status::StatusCode;
#[cfg(test)]
use otlp::proto::trace::v1::{Span, Status};
use prost::encoding::{WireType, fixed32, fixed64, int32};

use super::context::ProxySpan;
use super::export::SpanField;
use super::protobuf::{
    bytes_len, field, length_delimited_len, put_bytes, put_length_delimited, put_string, string_len,
};
use super::tags::{ConstantTags, Kind, SpanStatus, TagSink, Text};

/// What names a span.
pub(crate) struct Naming<'a> {
    pub(crate) kind: Kind,
    /// Envoy's cluster name for the destination.
    pub(crate) upstream_cluster: &'a str,
    /// The request's `:authority` / `Host`.
    pub(crate) authority: Option<&'a str>,
    /// This workload's service host, for inbound clusters without one.
    pub(crate) inbound_host: &'a str,
    /// The Service's port for inbound spans, when the config names the Service
    /// (`spec.inbound.service`); else the cluster's port names them.
    pub(crate) inbound_port: Option<u16>,
    /// The port to use when nothing else gives one (the listener's).
    pub(crate) fallback_port: u16,
}

/// The span name: `<fqdn>:<port>/*`.
pub(crate) fn operation_name(naming: &Naming<'_>) -> String {
    let inbound = (naming.inbound_host, naming.inbound_port);
    if let Some(name) = cluster_operation_name(naming.kind, naming.upstream_cluster, inbound) {
        return name;
    }
    match (naming.kind, naming.authority.filter(|a| !a.is_empty())) {
        (Kind::Server, _) => {
            let port = naming.inbound_port.unwrap_or(naming.fallback_port);
            format!("{}:{port}/*", naming.inbound_host)
        }
        (Kind::Client, Some(authority)) if has_port(authority) => format!("{authority}/*"),
        (Kind::Client, Some(authority)) => format!("{authority}:80/*"),
        (Kind::Client, None) => format!("{}/*", naming.upstream_cluster),
    }
}

/// The span name given by an Istio cluster name alone (`None` when the authority or the
/// listener's port decide it), so it can be worked out once per known cluster. `inbound` is
/// the workload's service host and, when configured, the Service's port, which names an
/// inbound span instead of the cluster's (target) port, as Istio's inbound route decorator
/// does.
pub(crate) fn cluster_operation_name(
    kind: Kind,
    cluster: &str,
    (inbound_host, inbound_port): (&str, Option<u16>),
) -> Option<String> {
    let mut parts = cluster.split('|');
    let fields = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next());
    if let (Some("inbound" | "outbound"), Some(port), Some(_), Some(host), None) = fields
        && let Ok(port) = port.parse::<u16>()
    {
        if !host.is_empty() {
            return Some(format!("{host}:{port}/*"));
        }
        if kind == Kind::Server {
            let port = inbound_port.unwrap_or(port);
            return Some(format!("{inbound_host}:{port}/*"));
        }
    }
    None
}

/// Whether `host[:port]` (or `[v6]:port`) ends in a port.
fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.starts_with('[') || host.ends_with(']'))
        }
        None => false,
    }
}

/// A finished exchange, ready to become a span.
pub(crate) struct Finished<'a> {
    pub(crate) kind: Kind,
    pub(crate) name: &'a str,
    pub(crate) span: &'a ProxySpan,
    /// Whether the parent came over the wire (false for a stitched parent: the SERVER span of
    /// this same proxy).
    pub(crate) remote_parent: bool,
    pub(crate) start: SystemTime,
    pub(crate) duration: Duration,
    /// The attributes, already written as `Span.attributes` fields ([`AttributeFields`]).
    pub(crate) attributes: &'a [u8],
    pub(crate) status: SpanStatus,
}

/// A [`TagSink`] that writes each tag as it comes, as one `Span.attributes` field (a
/// `KeyValue` with a string `AnyValue`) at the end of the buffer: a span's dozens of tags are
/// neither collected in a list nor copied into strings of their own first.
pub(crate) struct AttributeFields<'b>(pub(crate) &'b mut Vec<u8>);

impl<'a> TagSink<'a> for AttributeFields<'_> {
    fn tag(&mut self, key: &'a str, value: Text<'a>) {
        self.made(key, &[&value]);
    }

    fn made(&mut self, key: &'a str, parts: &[&str]) {
        let out = &mut *self.0;
        let length: usize = parts.iter().map(|part| part.len()).sum();
        if let Some(field) = ShortField::new(key, parts, length) {
            out.extend_from_slice(field.bytes());
            return;
        }
        put_length_delimited(field::ATTRIBUTES, key_value_len(key, length), out);
        put_string(field::KEY_VALUE_KEY, key, out);
        put_length_delimited(field::KEY_VALUE_VALUE, any_string_len(length), out);
        // A oneof member, written even when empty.
        put_length_delimited(field::ANY_VALUE_STRING, length, out);
        for part in parts {
            out.extend_from_slice(part.as_bytes());
        }
    }

    fn constant(&mut self, tags: &'a ConstantTags) {
        self.0.extend_from_slice(tags.fields());
    }
}

/// An attribute field whose lengths all fit in one byte, as nearly all of a span's do,
/// assembled on the stack and appended in one go. In the size-optimised sidecar build every
/// append and every key-and-length pair is a call: writing each tag piece by piece took about
/// 380 instructions.
struct ShortField {
    bytes: [u8; ShortField::MAX],
    len: usize,
}

impl ShortField {
    /// The longest field written this way; longer ones (a long URL) go piece by piece.
    const MAX: usize = 128;

    fn new(key: &str, parts: &[&str], length: usize) -> Option<ShortField> {
        let key_field = if key.is_empty() { 0 } else { 2 + key.len() };
        // `KeyValue { key, value: AnyValue { string_value } }`, each length one byte.
        let key_value = key_field + 2 + 2 + length;
        if key_value >= 128 || 2 + key_value > ShortField::MAX {
            return None;
        }
        let mut field = ShortField { bytes: [0; ShortField::MAX], len: 0 };
        field.push(&[short_key(field::ATTRIBUTES), key_value as u8]);
        if !key.is_empty() {
            field.push(&[short_key(field::KEY_VALUE_KEY), key.len() as u8]);
            field.push(key.as_bytes());
        }
        field.push(&[short_key(field::KEY_VALUE_VALUE), (2 + length) as u8]);
        field.push(&[short_key(field::ANY_VALUE_STRING), length as u8]);
        for part in parts {
            field.push(part.as_bytes());
        }
        Some(field)
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        self.bytes[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The one-byte key of a length-delimited field numbered under 16.
const fn short_key(tag: u32) -> u8 {
    ((tag << 3) | WireType::LengthDelimited as u32) as u8
}

/// The parts of a span that are not tags, worked out once for both passes of [`encode_field`].
struct Header {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_span_id: Option<[u8; 8]>,
    trace_state: String,
    flags: u32,
    kind: i32,
    start: u64,
    end: u64,
    status: i32,
}

impl Header {
    fn new(finished: &Finished<'_>) -> Header {
        let start = unix_nanos(finished.start);
        let nanos = u64::try_from(finished.duration.as_nanos()).unwrap_or(u64::MAX);
        let context = &finished.span.context;
        let mut flags = u32::from(context.flags.bits()) | SpanFlags::ContextHasIsRemoteMask as u32;
        if finished.span.parent.is_some() && finished.remote_parent {
            flags |= SpanFlags::ContextIsRemoteMask as u32;
        }
        let kind = match finished.kind {
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
        };
        let status = match finished.status {
            SpanStatus::Unset => StatusCode::Unset,
            SpanStatus::Error => StatusCode::Error,
        };
        let tracestate = &finished.span.tracestate;
        Header {
            trace_id: context.trace_id.to_bytes(),
            span_id: context.span_id.to_bytes(),
            parent_span_id: finished.span.parent.map(|id| id.to_bytes()),
            trace_state: if tracestate.is_empty() { String::new() } else { tracestate.to_string() },
            flags,
            kind: kind as i32,
            start,
            end: start.saturating_add(nanos),
            status: status as i32,
        }
    }
}

/// Writes the OTLP span of `finished` at the end of `out` as one `ScopeSpans.spans` field (key,
/// length, `Span` message): the bytes prost writes for the same span, without building the
/// `Span` and its dozens of small strings (one allocation per tag key and value) first.
pub(crate) fn encode_field(finished: &Finished<'_>, out: &mut Vec<u8>) {
    let header = Header::new(finished);
    // proto3 leaves out scalar fields at their default value.
    let nonzero = |value: u64, length: usize| if value == 0 { 0 } else { length };
    let status_len = nonzero(
        u64::from(header.status.unsigned_abs()),
        int32::encoded_len(field::STATUS_CODE, &header.status),
    );
    let span_len = bytes_len(field::TRACE_ID, &header.trace_id)
        + bytes_len(field::SPAN_ID, &header.span_id)
        + string_len(field::TRACE_STATE, &header.trace_state)
        + header.parent_span_id.map_or(0, |id| bytes_len(field::PARENT_SPAN_ID, &id))
        + nonzero(u64::from(header.flags), fixed32::encoded_len(field::FLAGS, &header.flags))
        + string_len(field::NAME, finished.name)
        + nonzero(
            u64::from(header.kind.unsigned_abs()),
            int32::encoded_len(field::KIND, &header.kind),
        )
        + nonzero(header.start, fixed64::encoded_len(field::START_TIME, &header.start))
        + nonzero(header.end, fixed64::encoded_len(field::END_TIME, &header.end))
        + finished.attributes.len()
        + length_delimited_len(field::STATUS, status_len);
    out.reserve(length_delimited_len(field::SCOPE_SPANS_SPANS, span_len));
    put_length_delimited(field::SCOPE_SPANS_SPANS, span_len, out);
    // In prost's order, by field number.
    put_bytes(field::TRACE_ID, &header.trace_id, out);
    put_bytes(field::SPAN_ID, &header.span_id, out);
    put_string(field::TRACE_STATE, &header.trace_state, out);
    if let Some(parent) = &header.parent_span_id {
        put_bytes(field::PARENT_SPAN_ID, parent, out);
    }
    put_string(field::NAME, finished.name, out);
    if header.kind != 0 {
        int32::encode(field::KIND, &header.kind, out);
    }
    if header.start != 0 {
        fixed64::encode(field::START_TIME, &header.start, out);
    }
    if header.end != 0 {
        fixed64::encode(field::END_TIME, &header.end, out);
    }
    out.extend_from_slice(finished.attributes);
    put_length_delimited(field::STATUS, status_len, out);
    if header.status != 0 {
        int32::encode(field::STATUS_CODE, &header.status, out);
    }
    if header.flags != 0 {
        fixed32::encode(field::FLAGS, &header.flags, out);
    }
}

/// A `KeyValue { key, value: AnyValue { string_value } }` message's length, for a value of
/// `value_len` bytes.
fn key_value_len(key: &str, value_len: usize) -> usize {
    string_len(field::KEY_VALUE_KEY, key)
        + length_delimited_len(field::KEY_VALUE_VALUE, any_string_len(value_len))
}

/// `AnyValue { string_value }`: a oneof member, written even when empty.
fn any_string_len(value_len: usize) -> usize {
    length_delimited_len(field::ANY_VALUE_STRING, value_len)
}

impl SpanField for Finished<'_> {
    fn encode_field(&self, out: &mut Vec<u8>) {
        encode_field(self, out);
    }
}

/// The OTLP span as prost's struct: the reference [`encode_field`] is checked against. The
/// attribute fields are read back as the `Span` message they are part of.
#[cfg(test)]
#[allow(clippy::expect_used, reason = "the fields come from the test itself")]
pub(crate) fn build(finished: Finished<'_>) -> Span {
    use prost::Message;
    let header = Header::new(&finished);
    let attributes = Span::decode(finished.attributes).expect("attribute fields").attributes;
    Span {
        trace_id: header.trace_id.to_vec(),
        span_id: header.span_id.to_vec(),
        trace_state: header.trace_state,
        parent_span_id: header.parent_span_id.map(|id| id.to_vec()).unwrap_or_default(),
        flags: header.flags,
        name: finished.name.to_owned(),
        kind: header.kind,
        start_time_unix_nano: header.start,
        end_time_unix_nano: header.end,
        attributes,
        status: Some(Status { code: header.status, message: String::new() }),
        ..Default::default()
    }
}

/// Nanoseconds since the Unix epoch (0 for a clock before it).
fn unix_nanos(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
    use propagation::tracestate::TraceState;
    use propagation::{SpanContext, SpanId, TraceFlags, TraceId};
    use prost::Message;

    use super::*;

    /// `pairs` as `Span.attributes` fields, written by [`AttributeFields`].
    fn fields(pairs: &[(Text<'_>, Text<'_>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut sink = AttributeFields(&mut out);
        for (key, value) in pairs {
            sink.tag(key, value.clone());
        }
        out
    }

    /// `pairs` as prost writes them in a `Span` of nothing else.
    fn prost_fields(pairs: &[(Text<'_>, Text<'_>)]) -> Vec<u8> {
        let attributes = pairs
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.to_string(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value.to_string())),
                }),
                ..Default::default()
            })
            .collect();
        Span { attributes, ..Default::default() }.encode_to_vec()
    }

    #[test]
    fn attribute_fields_are_the_bytes_prost_writes_whole_or_in_parts() {
        let long = "x".repeat(300);
        let cases: Vec<Vec<(Text<'_>, Text<'_>)>> = vec![
            Vec::new(),
            vec![(Cow::Borrowed("component"), Cow::Borrowed("proxy"))],
            vec![
                (Cow::Borrowed("user_agent"), Cow::Borrowed("")),
                (Cow::Borrowed(""), Cow::Borrowed("keyless")),
                (Cow::Owned("k".repeat(130)), Cow::Borrowed(long.as_str())),
            ],
            (0..200)
                .map(|i| (Cow::Owned(format!("tag.{i}")), Cow::Borrowed(long.as_str())))
                .collect(),
        ];
        for pairs in cases {
            assert_eq!(fields(&pairs), prost_fields(&pairs), "{} tags", pairs.len());
        }
        // Around the longest field assembled on the stack, and a value's length byte.
        for length in 100..=140 {
            let value = "v".repeat(length);
            for key in ["", "k", "http.url"] {
                let pairs = [(Cow::Borrowed(key), Cow::Borrowed(value.as_str()))];
                assert_eq!(fields(&pairs), prost_fields(&pairs), "key {key:?}, {length} bytes");
            }
        }
        let mut joined = Vec::new();
        AttributeFields(&mut joined).made("peer.address", &["10", ".", "1", ":", "80", ""]);
        let whole = [(Cow::Borrowed("peer.address"), Cow::Borrowed("10.1:80"))];
        assert_eq!(joined, prost_fields(&whole));
    }

    fn name(kind: Kind, cluster: &str, authority: Option<&str>) -> String {
        let naming = Naming {
            kind,
            upstream_cluster: cluster,
            authority,
            inbound_host: "productpage.default.svc.cluster.local",
            inbound_port: None,
            fallback_port: 9080,
        };
        operation_name(&naming)
    }

    #[test]
    fn names_are_istios_default_route_decorators() {
        let reviews = "outbound|9080||reviews.default.svc.cluster.local";
        assert_eq!(
            name(Kind::Client, reviews, Some("reviews:9080")),
            "reviews.default.svc.cluster.local:9080/*"
        );
        let subset = "outbound|9080|v2|reviews.default.svc.cluster.local";
        assert_eq!(name(Kind::Client, subset, None), "reviews.default.svc.cluster.local:9080/*");
        assert_eq!(
            name(Kind::Server, "inbound|9080||", None),
            "productpage.default.svc.cluster.local:9080/*"
        );
        let old = "inbound|9080||productpage.default.svc.cluster.local";
        assert_eq!(name(Kind::Server, old, None), "productpage.default.svc.cluster.local:9080/*");
        assert_eq!(
            name(Kind::Client, "PassthroughCluster", Some("example.com")),
            "example.com:80/*"
        );
        assert_eq!(name(Kind::Client, "PassthroughCluster", Some("[::1]:8080")), "[::1]:8080/*");
        assert_eq!(
            name(Kind::Server, "", Some("whatever:1")),
            "productpage.default.svc.cluster.local:9080/*"
        );
    }

    #[test]
    fn spans_carry_ids_kind_times_status_and_string_attributes() {
        let trace = TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).unwrap();
        let span = ProxySpan {
            context: SpanContext::new(
                trace,
                SpanId::from_u64(0xab).unwrap(),
                TraceFlags::new(true, true),
            ),
            parent: Some(SpanId::from_u64(0xcd).unwrap()),
            tracestate: TraceState::parse("congo=t61").unwrap(),
            b3_debug: false,
        };
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let attributes = fields(&[(Cow::Borrowed("component"), "proxy".into())]);
        let otlp = build(Finished {
            kind: Kind::Client,
            name: "reviews:9080/*",
            span: &span,
            remote_parent: true,
            start,
            duration: Duration::from_millis(3),
            attributes: &attributes,
            status: SpanStatus::Error,
        });
        assert_eq!(otlp.trace_id, trace.to_bytes().to_vec());
        assert_eq!(otlp.span_id, 0xabu64.to_be_bytes().to_vec());
        assert_eq!(otlp.parent_span_id, 0xcdu64.to_be_bytes().to_vec());
        assert_eq!(otlp.trace_state, "congo=t61");
        assert_eq!(otlp.flags, 0x303, "sampled + random, remote parent known and remote");
        assert_eq!(otlp.kind, SpanKind::Client as i32);
        assert_eq!(otlp.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(otlp.end_time_unix_nano - otlp.start_time_unix_nano, 3_000_000);
        assert_eq!(otlp.status.unwrap().code, StatusCode::Error as i32);
        assert_eq!(otlp.attributes[0].key, "component");
    }

    #[test]
    fn encode_field_writes_the_bytes_prost_writes() {
        let trace = TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).unwrap();
        let context = |span_id| {
            SpanContext::new(trace, SpanId::from_u64(span_id).unwrap(), TraceFlags::new(true, true))
        };
        let child = ProxySpan {
            context: context(0xab),
            parent: Some(SpanId::from_u64(0xcd).unwrap()),
            tracestate: TraceState::parse("congo=t61,rojo=00f067aa0ba902b7").unwrap(),
            b3_debug: false,
        };
        let root = ProxySpan {
            context: SpanContext::new(
                trace,
                SpanId::from_u64(1).unwrap(),
                TraceFlags::new(false, false),
            ),
            parent: None,
            tracestate: TraceState::default(),
            b3_debug: false,
        };
        let long = "x".repeat(300);
        let many: Vec<(Text<'_>, Text<'_>)> = (0..200)
            .map(|i| (Cow::Owned(format!("tag.{i}")), Cow::Borrowed(long.as_str())))
            .collect();
        // span, kind, name, start, remote parent, tags, status
        type Case<'a> =
            (&'a ProxySpan, Kind, &'a str, SystemTime, bool, Vec<(Text<'a>, Text<'a>)>, SpanStatus);
        let cases: Vec<Case<'_>> = vec![
            (
                &child,
                Kind::Client,
                "reviews:9080/*",
                UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                true,
                vec![
                    (Cow::Borrowed("component"), Cow::Borrowed("proxy")),
                    (Cow::Borrowed("user_agent"), Cow::Borrowed("")),
                    (Cow::Borrowed(""), Cow::Borrowed("keyless")),
                ],
                SpanStatus::Error,
            ),
            (&child, Kind::Server, "", UNIX_EPOCH, false, Vec::new(), SpanStatus::Unset),
            (&root, Kind::Server, &long, SystemTime::now(), true, many, SpanStatus::Unset),
        ];
        for (span, kind, name, start, remote_parent, pairs, status) in cases {
            let attributes = fields(&pairs);
            let finished = || Finished {
                kind,
                name,
                span,
                remote_parent,
                start,
                duration: Duration::from_micros(1_234),
                attributes: &attributes,
                status,
            };
            let mut direct = Vec::new();
            encode_field(&finished(), &mut direct);
            let mut reference = Vec::new();
            build(finished()).encode_field(&mut reference);
            assert_eq!(direct, reference, "span {name:.20} with {} tags", pairs.len());
        }
    }
}
