//! Zipkin v2 spans on the wire: the JSON of `POST /api/v2/spans` (`application/json`), or
//! `zipkin.proto3`'s `ListOfSpans` (`application/x-protobuf`). Both leave out what is unset, as
//! Zipkin's own encoders do; a 64-bit trace id (high half zero) is written as 16 hex digits or
//! 8 bytes.

use std::fmt::Write;

use prost::Message;

use super::attribute_text::write_string;
use super::translate::{Endpoint, Tags, ZipkinKind, ZipkinSpan};

/// `format`: how the spans are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Proto,
}

impl Format {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Proto => "application/x-protobuf",
        }
    }

    pub(crate) fn encode(self, spans: &[ZipkinSpan<'_>]) -> Vec<u8> {
        match self {
            Format::Json => json(spans).into_bytes(),
            Format::Proto => proto(spans),
        }
    }
}

// === JSON ===

/// The spans as a JSON array.
pub(crate) fn json(spans: &[ZipkinSpan<'_>]) -> String {
    // Roughly what an Envoy-like span with a dozen tags takes.
    let mut out = String::with_capacity(spans.len() * 768 + 2);
    out.push('[');
    for (index, span) in spans.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_span(&mut out, span);
    }
    out.push(']');
    out
}

fn write_span(out: &mut String, span: &ZipkinSpan<'_>) {
    let _ = write!(out, "{{\"traceId\":\"{}\"", trace_id_hex(span.trace_id));
    if let Some(parent) = span.parent_id {
        let _ = write!(out, ",\"parentId\":\"{parent:016x}\"");
    }
    let _ = write!(out, ",\"id\":\"{:016x}\"", span.id);
    if let Some(kind) = span.kind {
        let _ = write!(out, ",\"kind\":\"{}\"", kind.as_str());
    }
    if !span.name.is_empty() {
        out.push_str(",\"name\":");
        write_string(out, span.name);
    }
    if let Some(timestamp) = span.timestamp {
        let _ = write!(out, ",\"timestamp\":{timestamp}");
    }
    if let Some(duration) = span.duration {
        let _ = write!(out, ",\"duration\":{duration}");
    }
    if let Some(endpoint) = &span.local_endpoint {
        out.push_str(",\"localEndpoint\":");
        write_endpoint(out, endpoint);
    }
    if let Some(endpoint) = &span.remote_endpoint {
        out.push_str(",\"remoteEndpoint\":");
        write_endpoint(out, endpoint);
    }
    if !span.annotations.is_empty() {
        out.push_str(",\"annotations\":[");
        for (index, annotation) in span.annotations.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"timestamp\":{},\"value\":", annotation.timestamp);
            write_string(out, &annotation.value);
            out.push('}');
        }
        out.push(']');
    }
    if !span.tags.is_empty() {
        out.push_str(",\"tags\":");
        write_tags(out, &span.tags);
    }
    out.push('}');
}

fn write_endpoint(out: &mut String, endpoint: &Endpoint<'_>) {
    out.push('{');
    let mut first = true;
    let mut separator = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
    };
    if !endpoint.service_name.is_empty() {
        separator(out);
        out.push_str("\"serviceName\":");
        write_string(out, &endpoint.service_name);
    }
    if let Some(ip) = endpoint.ipv4 {
        separator(out);
        let _ = write!(out, "\"ipv4\":\"{ip}\"");
    }
    if let Some(ip) = endpoint.ipv6 {
        separator(out);
        let _ = write!(out, "\"ipv6\":\"{ip}\"");
    }
    if endpoint.port != 0 {
        separator(out);
        let _ = write!(out, "\"port\":{}", endpoint.port);
    }
    out.push('}');
}

fn write_tags(out: &mut String, tags: &Tags<'_>) {
    out.push('{');
    for (index, (key, value)) in tags.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_string(out, value);
    }
    out.push('}');
}

/// 16 hex digits for a 64-bit id, 32 for a 128-bit one.
fn trace_id_hex(trace_id: u128) -> String {
    if trace_id >> 64 == 0 { format!("{trace_id:016x}") } else { format!("{trace_id:032x}") }
}

// === protobuf ===

/// `zipkin.proto3.ListOfSpans`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub(crate) spans: Vec<ProtoSpan>,
}

/// `zipkin.proto3.Span`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) parent_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) id: Vec<u8>,
    /// `Span.Kind`: 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
    #[prost(int32, tag = "4")]
    pub(crate) kind: i32,
    #[prost(string, tag = "5")]
    pub(crate) name: String,
    #[prost(fixed64, tag = "6")]
    pub(crate) timestamp: u64,
    #[prost(uint64, tag = "7")]
    pub(crate) duration: u64,
    #[prost(message, optional, tag = "8")]
    pub(crate) local_endpoint: Option<ProtoEndpoint>,
    #[prost(message, optional, tag = "9")]
    pub(crate) remote_endpoint: Option<ProtoEndpoint>,
    #[prost(message, repeated, tag = "10")]
    pub(crate) annotations: Vec<ProtoAnnotation>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub(crate) tags: std::collections::BTreeMap<String, String>,
    #[prost(bool, tag = "12")]
    pub(crate) debug: bool,
    #[prost(bool, tag = "13")]
    pub(crate) shared: bool,
}

/// `zipkin.proto3.Endpoint`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ProtoEndpoint {
    #[prost(string, tag = "1")]
    pub(crate) service_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) ipv4: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub(crate) port: i32,
}

/// `zipkin.proto3.Annotation`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ProtoAnnotation {
    #[prost(fixed64, tag = "1")]
    pub(crate) timestamp: u64,
    #[prost(string, tag = "2")]
    pub(crate) value: String,
}

/// The spans as an encoded `ListOfSpans`.
pub(crate) fn proto(spans: &[ZipkinSpan<'_>]) -> Vec<u8> {
    ListOfSpans { spans: spans.iter().map(proto_span).collect() }.encode_to_vec()
}

fn proto_span(span: &ZipkinSpan<'_>) -> ProtoSpan {
    let trace_id = if span.trace_id >> 64 == 0 {
        (span.trace_id as u64).to_be_bytes().to_vec()
    } else {
        span.trace_id.to_be_bytes().to_vec()
    };
    ProtoSpan {
        trace_id,
        parent_id: span.parent_id.map(|id| id.to_be_bytes().to_vec()).unwrap_or_default(),
        id: span.id.to_be_bytes().to_vec(),
        kind: span.kind.map_or(0, |kind| match kind {
            ZipkinKind::Client => 1,
            ZipkinKind::Server => 2,
            ZipkinKind::Producer => 3,
            ZipkinKind::Consumer => 4,
        }),
        name: span.name.to_owned(),
        timestamp: span.timestamp.unwrap_or(0),
        duration: span.duration.unwrap_or(0),
        local_endpoint: span.local_endpoint.as_ref().map(proto_endpoint),
        remote_endpoint: span.remote_endpoint.as_ref().map(proto_endpoint),
        annotations: span
            .annotations
            .iter()
            .map(|annotation| ProtoAnnotation {
                timestamp: annotation.timestamp,
                value: annotation.value.clone().into_owned(),
            })
            .collect(),
        tags: span
            .tags
            .iter()
            .map(|(key, value)| (key.clone().into_owned(), value.clone().into_owned()))
            .collect(),
        debug: false,
        shared: false,
    }
}

fn proto_endpoint(endpoint: &Endpoint<'_>) -> ProtoEndpoint {
    ProtoEndpoint {
        service_name: endpoint.service_name.clone().into_owned(),
        ipv4: endpoint.ipv4.map(|ip| ip.octets().to_vec()).unwrap_or_default(),
        ipv6: endpoint.ipv6.map(|ip| ip.octets().to_vec()).unwrap_or_default(),
        port: i32::from(endpoint.port),
    }
}
