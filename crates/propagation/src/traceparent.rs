//! The W3C `traceparent` header, Trace Context Level 1 and Level 2.
//!
//! ```text
//! traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//!              ^^ version  ^^ trace-id (32)       ^^ parent-id (16) ^^ trace-flags
//! ```
//!
//! Parsing follows the specification, including where Envoy does not:
//!
//! * every field is lowercase hex (`HEXDIGLC`); uppercase is invalid;
//! * version `00` must be exactly 55 characters; version `ff` is invalid;
//! * a higher version is parsed leniently: at least 55 characters, the three `00` fields in
//!   place, and after the flags either the end or a `-` followed by fields that are ignored;
//! * all-zero trace-id or parent-id is invalid;
//! * leading and trailing spaces and tabs (OWS) are ignored;
//! * more than one `traceparent` header is invalid ([`TraceparentError::Multiple`]);
//! * the reserved flag bits are cleared and the Level 2 random bit is kept, so a context always
//!   re-emits as version `00` with the flags it may propagate.
//!
//! An `Err` means "restart the trace" (and drop `tracestate`); its [`TraceparentError::reason`]
//! is a stable label for counting.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::context::{SpanContext, SpanId, TraceFlags, TraceId, decode_lower_hex, hex_digits};
use crate::ows;

/// The header name, lowercase as the specification asks senders to write it.
pub const HEADER: HeaderName = HeaderName::from_static("traceparent");

/// Length of a version `00` header: `2 + 1 + 32 + 1 + 16 + 1 + 2`.
pub const VERSION_00_LEN: usize = 55;

/// Why a `traceparent` was rejected. Every variant means the same thing to a receiver: ignore the
/// header, start a new trace and discard `tracestate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceparentError {
    /// More than one `traceparent` header field.
    Multiple,
    /// The version prefix is not two lowercase hex digits followed by `-`.
    InvalidVersion,
    /// Version `ff`, which the specification forbids.
    ForbiddenVersion,
    /// Version `00` not exactly 55 characters, or a higher version shorter than 55.
    InvalidLength,
    /// The trace-id is not 32 lowercase hex digits followed by `-`.
    InvalidTraceId,
    /// The trace-id is all zeros.
    ZeroTraceId,
    /// The parent-id is not 16 lowercase hex digits followed by `-`.
    InvalidParentId,
    /// The parent-id is all zeros.
    ZeroParentId,
    /// The flags are not 2 lowercase hex digits (followed, in a higher version, by the end or
    /// `-`).
    InvalidFlags,
}

impl TraceparentError {
    /// A stable snake_case label, for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Multiple => "multiple_headers",
            Self::InvalidVersion => "invalid_version",
            Self::ForbiddenVersion => "forbidden_version",
            Self::InvalidLength => "invalid_length",
            Self::InvalidTraceId => "invalid_trace_id",
            Self::ZeroTraceId => "zero_trace_id",
            Self::InvalidParentId => "invalid_parent_id",
            Self::ZeroParentId => "zero_parent_id",
            Self::InvalidFlags => "invalid_flags",
        }
    }
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Multiple => "more than one traceparent header",
            Self::InvalidVersion => "version is not two lowercase hex digits followed by '-'",
            Self::ForbiddenVersion => "version ff is forbidden",
            Self::InvalidLength => "wrong length for the version",
            Self::InvalidTraceId => "trace-id is not 32 lowercase hex digits followed by '-'",
            Self::ZeroTraceId => "trace-id is all zeros",
            Self::InvalidParentId => "parent-id is not 16 lowercase hex digits followed by '-'",
            Self::ZeroParentId => "parent-id is all zeros",
            Self::InvalidFlags => "trace-flags are not two lowercase hex digits",
        };
        write!(f, "invalid traceparent: {text}")
    }
}

impl std::error::Error for TraceparentError {}

/// Parses one `traceparent` value.
pub fn parse(value: &str) -> Result<SpanContext, TraceparentError> {
    parse_bytes(value.as_bytes())
}

/// Parses one `traceparent` value given as raw header bytes (any bytes are accepted as input;
/// anything not matching the grammar is an error).
pub fn parse_bytes(value: &[u8]) -> Result<SpanContext, TraceparentError> {
    let value = ows::trim(value);

    let version = match (value.get(..2), value.get(2)) {
        (Some(digits), Some(b'-')) => match decode_lower_hex::<1>(digits) {
            Some([version]) => version,
            None => return Err(TraceparentError::InvalidVersion),
        },
        _ => return Err(TraceparentError::InvalidVersion),
    };
    match version {
        0xff => return Err(TraceparentError::ForbiddenVersion),
        0x00 if value.len() != VERSION_00_LEN => return Err(TraceparentError::InvalidLength),
        _ if value.len() < VERSION_00_LEN => return Err(TraceparentError::InvalidLength),
        _ => {}
    }

    let trace_id = field(value, 3, 32).ok_or(TraceparentError::InvalidTraceId)?;
    let trace_id = decode_lower_hex::<16>(trace_id).ok_or(TraceparentError::InvalidTraceId)?;
    let parent_id = field(value, 36, 16).ok_or(TraceparentError::InvalidParentId)?;
    let parent_id = decode_lower_hex::<8>(parent_id).ok_or(TraceparentError::InvalidParentId)?;

    // The flags are the last field of version 00; a higher version may continue after a '-'.
    let flags = value.get(53..55).and_then(decode_lower_hex::<1>);
    let flags = match (flags, value.get(55)) {
        (Some([bits]), None | Some(b'-')) => TraceFlags::from_bits(bits),
        _ => return Err(TraceparentError::InvalidFlags),
    };

    let trace_id = TraceId::from_bytes(trace_id).ok_or(TraceparentError::ZeroTraceId)?;
    let span_id = SpanId::from_bytes(parent_id).ok_or(TraceparentError::ZeroParentId)?;
    Ok(SpanContext::new(trace_id, span_id, flags))
}

/// The `len` characters at `start`, which must be followed by a `-`.
fn field(value: &[u8], start: usize, len: usize) -> Option<&[u8]> {
    match value.get(start + len) {
        Some(b'-') => value.get(start..start + len),
        _ => None,
    }
}

/// Formats `context` as a version `00` header value (lowercase, flags with reserved bits clear).
pub fn format(context: &SpanContext) -> String {
    // Only ASCII hex digits and '-'.
    String::from_utf8_lossy(&encode(context)).into_owned()
}

/// [`format()`] as a header value, built on the stack (one allocation, the value's own).
pub fn to_header_value(context: &SpanContext) -> HeaderValue {
    // Only hex digits and '-': always a valid header value.
    HeaderValue::from_bytes(&encode(context)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The version `00` text of `context`.
fn encode(context: &SpanContext) -> [u8; VERSION_00_LEN] {
    let mut out = [0u8; VERSION_00_LEN];
    let trace_id: [u8; 32] = context.trace_id.to_hex();
    let span_id: [u8; 16] = context.span_id.to_hex();
    let flags: [u8; 2] = hex_digits(&[context.flags.bits()]);
    let parts: [&[u8]; 6] = [b"00-", &trace_id, b"-", &span_id, b"-", &flags];
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    out
}

/// Reads the `traceparent` header of a request: `Ok(None)` when absent, an error when present but
/// invalid or repeated.
pub fn extract(headers: &HeaderMap) -> Result<Option<SpanContext>, TraceparentError> {
    let mut values = headers.get_all(&HEADER).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(TraceparentError::Multiple);
    }
    parse_bytes(first.as_bytes()).map(Some)
}

/// Sets the `traceparent` header to `context`, replacing any present.
pub fn inject(context: &SpanContext, headers: &mut HeaderMap) {
    headers.insert(HEADER, to_header_value(context));
}

#[cfg(test)]
mod tests;
