//! OTLP spans to Zipkin v2 spans, following the collector's translator
//! (`pkg/translator/zipkin/zipkinv2`) so that a backend sees the same spans from meshtrace as
//! from `otelcol`:
//!
//! - the local endpoint's service name is the resource's `service.name` (else `faas.name`,
//!   `k8s.deployment.name` or `process.executable.name`, named in `otlp.service.name.source`;
//!   else the exporter's `default_service_name`); `net.host.ip`/`net.host.port` fill it in,
//!   and `peer.service`, `net.peer.ip`/`net.peer.port` make the remote endpoint; those tags are
//!   then left out;
//! - every other resource attribute, the scope's name and version (`otel.library.name`,
//!   `otel.library.version`) and the span's attributes become tags, a span attribute winning
//!   over a resource one; `tracestate` is `w3c.tracestate`, an internal span is tagged
//!   `span.kind=internal` and has no kind;
//! - status: `error=true` only for an error status (an `error` attribute is otherwise removed,
//!   Zipkin treats any `error` tag as a failure); `otel.status_code` and
//!   `otel.status_description` unless the status is unset;
//! - events are annotations (`name`, or `name|{attributes}|dropped`), links are tags
//!   `otlp.link.N` (`trace|span|tracestate|{attributes}|dropped`).
//!
//! The attribute keys are those of the collector's translator (semantic conventions 1.6:
//! `net.peer.ip`, `net.host.ip`, …). JSON written inside tags (arrays, maps, event and link
//! attributes) escapes only what JSON requires; Go's encoder also escapes `<`, `>` and `&`.
//!
//! Times are whole microseconds, rounded to the nearest, as zipkin-go writes them: a duration
//! under one microsecond is one (Zipkin reads zero as "unknown"), a zero duration is left out,
//! and a span that ends before it starts is refused.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use otlp::ExportTraceServiceRequest;
use otlp::proto::common::v1::{InstrumentationScope, KeyValue};
use otlp::proto::resource::v1::Resource;
use otlp::proto::trace::v1::{Span, span, status};

use super::attribute_text::{as_text, object_json};

/// A Zipkin v2 span, borrowing what it can from the OTLP span it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZipkinSpan<'a> {
    /// The trace id; a 64-bit id has its high half zero.
    pub(crate) trace_id: u128,
    pub(crate) parent_id: Option<u64>,
    pub(crate) id: u64,
    pub(crate) kind: Option<ZipkinKind>,
    pub(crate) name: &'a str,
    /// Start, in microseconds since the epoch; absent when the span has no start.
    pub(crate) timestamp: Option<u64>,
    /// In microseconds; absent when the span has no end.
    pub(crate) duration: Option<u64>,
    pub(crate) local_endpoint: Option<Endpoint<'a>>,
    pub(crate) remote_endpoint: Option<Endpoint<'a>>,
    pub(crate) annotations: Vec<Annotation<'a>>,
    /// Sorted by key, each key once, as Zipkin's own encoders write them.
    pub(crate) tags: Tags<'a>,
}

/// Tags, sorted by key with each key once.
pub(crate) type Tags<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Zipkin's span kinds; OTLP's internal and unspecified kinds have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZipkinKind {
    Client,
    Server,
    Producer,
    Consumer,
}

impl ZipkinKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ZipkinKind::Client => "CLIENT",
            ZipkinKind::Server => "SERVER",
            ZipkinKind::Producer => "PRODUCER",
            ZipkinKind::Consumer => "CONSUMER",
        }
    }
}

/// A span's local or remote endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Endpoint<'a> {
    pub(crate) service_name: Cow<'a, str>,
    pub(crate) ipv4: Option<Ipv4Addr>,
    pub(crate) ipv6: Option<Ipv6Addr>,
    /// Zero when unknown.
    pub(crate) port: u16,
}

/// A timestamped event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Annotation<'a> {
    /// Microseconds since the epoch.
    pub(crate) timestamp: u64,
    pub(crate) value: Cow<'a, str>,
}

/// A span Zipkin cannot take: the whole batch is refused, as the collector refuses it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum InvalidSpan {
    #[error("span {name:?} has an invalid trace id (zero or not 16 bytes)")]
    TraceId { name: String },
    #[error("span {name:?} has an invalid span id (zero or not 8 bytes)")]
    SpanId { name: String },
    #[error("span {name:?} ends before it starts")]
    NegativeDuration { name: String },
}

/// Every span of `request`, in order.
pub(crate) fn zipkin_spans<'a>(
    request: &'a ExportTraceServiceRequest,
    default_service_name: &'a str,
) -> Result<Vec<ZipkinSpan<'a>>, InvalidSpan> {
    let mut out = Vec::with_capacity(otlp::batch::count_spans(request) as usize);
    for resource_spans in &request.resource_spans {
        let (service_name, resource_tags) =
            resource_tags(resource_spans.resource.as_ref(), default_service_name);
        for scope_spans in &resource_spans.scope_spans {
            let mut shared = resource_tags.clone();
            add_scope_tags(scope_spans.scope.as_ref(), &mut shared);
            for span in &scope_spans.spans {
                out.push(zipkin_span(span, &service_name, &shared)?);
            }
        }
    }
    Ok(out)
}

/// The service name and the tags every span of a resource carries (not yet sorted).
fn resource_tags<'a>(
    resource: Option<&'a Resource>,
    default_service_name: &'a str,
) -> (Cow<'a, str>, Tags<'a>) {
    let attributes = resource.map(|resource| resource.attributes.as_slice()).unwrap_or_default();
    let mut tags = Tags::with_capacity(attributes.len() + 2);
    add_attributes(attributes, &mut tags);
    let mut take = |key: &str| -> Option<Cow<'a, str>> {
        // The last value of a repeated key wins, as in a map.
        let found = tags.iter().rposition(|(name, _)| name == key)?;
        let value = tags[found].1.clone();
        tags.retain(|(name, _)| name != key);
        Some(value)
    };
    if let Some(name) = take("service.name") {
        return (name, tags);
    }
    for source in ["faas.name", "k8s.deployment.name", "process.executable.name"] {
        if let Some(name) = take(source) {
            tags.push((Cow::Borrowed("otlp.service.name.source"), Cow::Borrowed(source)));
            return (name, tags);
        }
    }
    (Cow::Borrowed(default_service_name), tags)
}

fn add_scope_tags<'a>(scope: Option<&'a InstrumentationScope>, tags: &mut Tags<'a>) {
    let Some(scope) = scope else { return };
    if !scope.name.is_empty() {
        tags.push((Cow::Borrowed("otel.library.name"), Cow::Borrowed(&scope.name)));
    }
    if !scope.version.is_empty() {
        tags.push((Cow::Borrowed("otel.library.version"), Cow::Borrowed(&scope.version)));
    }
}

fn add_attributes<'a>(attributes: &'a [KeyValue], tags: &mut Tags<'a>) {
    for attribute in attributes {
        tags.push((Cow::Borrowed(&attribute.key), as_text(attribute.value.as_ref())));
    }
}

/// Sorts `tags` by key and keeps, of a repeated key, the one added last.
fn settle(tags: &mut Tags<'_>) {
    // A stable sort keeps equal keys in the order they were added; the last one wins.
    tags.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept: usize = 0;
    for index in 0..tags.len() {
        if kept > 0 && tags[kept - 1].0 == tags[index].0 {
            tags.swap(kept - 1, index);
        } else {
            tags.swap(kept, index);
            kept += 1;
        }
    }
    tags.truncate(kept);
}

/// Takes `key` out of settled `tags`.
fn take<'a>(tags: &mut Tags<'a>, key: &str) -> Option<Cow<'a, str>> {
    let index = tags.binary_search_by(|(name, _)| name.as_ref().cmp(key)).ok()?;
    Some(tags.remove(index).1)
}

/// Sets `key` in settled `tags`.
fn set<'a>(tags: &mut Tags<'a>, key: impl Into<Cow<'a, str>>, value: Cow<'a, str>) {
    let key = key.into();
    match tags.binary_search_by(|(name, _)| name.as_ref().cmp(&key)) {
        Ok(index) => tags[index].1 = value,
        Err(index) => tags.insert(index, (key, value)),
    }
}

fn zipkin_span<'a>(
    span: &'a Span,
    service_name: &Cow<'a, str>,
    shared_tags: &Tags<'a>,
) -> Result<ZipkinSpan<'a>, InvalidSpan> {
    let trace_id = span_bytes::<16>(&span.trace_id)
        .map(u128::from_be_bytes)
        .filter(|id| *id != 0)
        .ok_or_else(|| InvalidSpan::TraceId { name: span.name.clone() })?;
    let id = span_bytes::<8>(&span.span_id)
        .map(u64::from_be_bytes)
        .filter(|id| *id != 0)
        .ok_or_else(|| InvalidSpan::SpanId { name: span.name.clone() })?;
    // An absent parent id makes a root span, as in the collector. A malformed one (not 8
    // bytes) does too: the collector's decoder would refuse the whole request first, and a
    // root span loses less.
    let parent_id =
        span_bytes::<8>(&span.parent_span_id).map(u64::from_be_bytes).filter(|id| *id != 0);

    let mut tags = Tags::with_capacity(shared_tags.len() + span.attributes.len() + 4);
    tags.extend(shared_tags.iter().cloned());
    add_attributes(&span.attributes, &mut tags);
    settle(&mut tags);
    if !span.trace_state.is_empty() {
        set(&mut tags, "w3c.tracestate", Cow::Borrowed(&span.trace_state));
    }
    let kind = match span::SpanKind::try_from(span.kind) {
        Ok(span::SpanKind::Client) => Some(ZipkinKind::Client),
        Ok(span::SpanKind::Server) => Some(ZipkinKind::Server),
        Ok(span::SpanKind::Producer) => Some(ZipkinKind::Producer),
        Ok(span::SpanKind::Consumer) => Some(ZipkinKind::Consumer),
        Ok(span::SpanKind::Internal) => {
            set(&mut tags, "span.kind", Cow::Borrowed("internal"));
            None
        }
        _ => None,
    };
    let local_endpoint = endpoint(&mut tags, service_name.clone(), "net.host.ip", "net.host.port");
    let peer_service = take(&mut tags, "peer.service").unwrap_or_default();
    let remote_endpoint = endpoint(&mut tags, peer_service, "net.peer.ip", "net.peer.port");
    add_status(span, &mut tags);
    for (index, link) in span.links.iter().enumerate() {
        let value = format!(
            "{}|{}|{}|{}|{}",
            hex_or_empty(&link.trace_id),
            hex_or_empty(&link.span_id),
            link.trace_state,
            object_json(&link.attributes),
            link.dropped_attributes_count
        );
        set(&mut tags, format!("otlp.link.{index}"), Cow::Owned(value));
    }
    let annotations = span
        .events
        .iter()
        .map(|event| Annotation {
            timestamp: rounded_micros(event.time_unix_nano),
            value: if event.attributes.is_empty() && event.dropped_attributes_count == 0 {
                Cow::Borrowed(event.name.as_str())
            } else {
                Cow::Owned(format!(
                    "{}|{}|{}",
                    event.name,
                    object_json(&event.attributes),
                    event.dropped_attributes_count
                ))
            },
        })
        .collect();
    Ok(ZipkinSpan {
        trace_id,
        parent_id,
        id,
        kind,
        name: &span.name,
        // The collector leaves out a start within the first second of the epoch.
        timestamp: (span.start_time_unix_nano >= 1_000_000_000)
            .then(|| rounded_micros(span.start_time_unix_nano)),
        duration: duration_micros(span)?,
        local_endpoint,
        remote_endpoint,
        annotations,
        tags,
    })
}

/// The endpoint named `service_name` at the address in the `ip_key` and `port_key` tags
/// (which are taken out); none when it has neither a name nor an address.
fn endpoint<'a>(
    tags: &mut Tags<'a>,
    service_name: Cow<'a, str>,
    ip_key: &str,
    port_key: &str,
) -> Option<Endpoint<'a>> {
    let ip = take(tags, ip_key).and_then(|text| text.parse::<IpAddr>().ok());
    let port = take(tags, port_key).and_then(|text| text.parse::<u16>().ok()).unwrap_or(0);
    if service_name.is_empty() && ip.is_none() {
        return None;
    }
    let mut endpoint = Endpoint { service_name, port, ..Endpoint::default() };
    match ip {
        Some(IpAddr::V4(v4)) => endpoint.ipv4 = Some(v4),
        Some(IpAddr::V6(v6)) => endpoint.ipv6 = Some(v6),
        None => {}
    }
    Some(endpoint)
}

fn add_status<'a>(span: &'a Span, tags: &mut Tags<'a>) {
    let status = span.status.as_ref();
    let code = status.map(|status| status.code).unwrap_or_default();
    let code_text = match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Error) => {
            set(tags, "error", Cow::Borrowed("true"));
            "STATUS_CODE_ERROR"
        }
        Ok(status::StatusCode::Ok) => {
            take(tags, "error");
            "STATUS_CODE_OK"
        }
        _ => {
            take(tags, "error");
            return;
        }
    };
    set(tags, "otel.status_code", Cow::Borrowed(code_text));
    if let Some(status) = status.filter(|status| !status.message.is_empty()) {
        set(tags, "otel.status_description", Cow::Borrowed(&status.message));
    }
}

/// `bytes` as an array of exactly `N` bytes.
fn span_bytes<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

fn hex_or_empty(bytes: &[u8]) -> String {
    if bytes.iter().all(|byte| *byte == 0) {
        String::new()
    } else {
        crate::debug::format::hex(bytes)
    }
}

/// Nanoseconds since the epoch to the nearest microsecond.
fn rounded_micros(nanos: u64) -> u64 {
    nanos.saturating_add(500) / 1_000
}

/// The span's length in microseconds, rounded: none without an end or for zero, at least one
/// for any other length.
fn duration_micros(span: &Span) -> Result<Option<u64>, InvalidSpan> {
    if span.end_time_unix_nano == 0 {
        return Ok(None);
    }
    let Some(nanos) = span.end_time_unix_nano.checked_sub(span.start_time_unix_nano) else {
        return Err(InvalidSpan::NegativeDuration { name: span.name.clone() });
    };
    Ok(match nanos {
        0 => None,
        1..1_000 => Some(1),
        _ => Some(rounded_micros(nanos)),
    })
}

#[cfg(test)]
mod tests;
