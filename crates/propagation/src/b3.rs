//! Zipkin B3 propagation (openzipkin/b3-propagation), single header and multiple headers.
//!
//! ```text
//! b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90
//!     {TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}      (last two optional)
//! b3: 0 | 1 | d                                               (sampling state only)
//!
//! X-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7   (32 or 16 lowercase hex)
//! X-B3-SpanId: e457b5a2e4d86bd1
//! X-B3-ParentSpanId: 05e3ac9a4f6e3b90               (absent on a root span)
//! X-B3-Sampled: 1 | 0 | true | false                (absent: defer)
//! X-B3-Flags: 1                                     (debug, implies sampled)
//! ```
//!
//! * 64-bit trace ids are left-padded with zeros to 128 bits; injection always writes 32 digits.
//! * Ids are lowercase hex, not all zeros. `true`/`false` are accepted in `X-B3-Sampled` (the
//!   README allows lenient readers to), only `0`/`1`/`d` in the single header.
//! * `X-B3-Flags` other than `1` are ignored; debug overrides `X-B3-Sampled`.
//! * With repeated multi headers the first value wins; the single header takes precedence over
//!   the multiple headers ([`extract`]).

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::context::{SpanContext, SpanId, TraceFlags, TraceId};
use crate::ows;

/// The single header.
pub const SINGLE_HEADER: HeaderName = HeaderName::from_static("b3");
/// `X-B3-TraceId`.
pub const TRACE_ID_HEADER: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `X-B3-SpanId`.
pub const SPAN_ID_HEADER: HeaderName = HeaderName::from_static("x-b3-spanid");
/// `X-B3-ParentSpanId`.
pub const PARENT_SPAN_ID_HEADER: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// `X-B3-Sampled`.
pub const SAMPLED_HEADER: HeaderName = HeaderName::from_static("x-b3-sampled");
/// `X-B3-Flags`.
pub const FLAGS_HEADER: HeaderName = HeaderName::from_static("x-b3-flags");
/// The multi-header format's headers, in this order; any of them carries a context.
pub const MULTI_HEADERS: [HeaderName; 5] =
    [TRACE_ID_HEADER, SPAN_ID_HEADER, PARENT_SPAN_ID_HEADER, SAMPLED_HEADER, FLAGS_HEADER];

/// The B3 sampling decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SamplingState {
    /// No decision: the receiver decides.
    #[default]
    Defer,
    /// Do not record.
    Deny,
    /// Record.
    Accept,
    /// Record, and mark the spans as debug (force trace).
    Debug,
}

impl SamplingState {
    /// Whether the trace is recorded (accept or debug).
    pub fn sampled(self) -> bool {
        matches!(self, Self::Accept | Self::Debug)
    }
}

/// A B3 trace context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct B3Context {
    /// The trace (64-bit ids left-padded).
    pub trace_id: TraceId,
    /// The span that sent the headers.
    pub span_id: SpanId,
    /// That span's parent, absent on a root span.
    pub parent_span_id: Option<SpanId>,
    /// The sampling decision.
    pub sampling: SamplingState,
}

impl B3Context {
    /// The context as a [`SpanContext`]: sampled for accept and debug. B3 has no random flag.
    pub fn span_context(&self) -> SpanContext {
        let flags = TraceFlags::NONE.with_sampled(self.sampling.sampled());
        SpanContext::new(self.trace_id, self.span_id, flags)
    }
}

/// What B3 headers carry: a full context, or only a sampling decision (`b3: 0`,
/// `X-B3-Sampled: 0` alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum B3 {
    /// Ids and a decision.
    Context(B3Context),
    /// Only a decision, never [`SamplingState::Defer`].
    SamplingOnly(SamplingState),
}

impl B3 {
    /// The sampling decision.
    pub fn sampling(&self) -> SamplingState {
        match self {
            Self::Context(context) => context.sampling,
            Self::SamplingOnly(state) => *state,
        }
    }
}

/// Why B3 headers were rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum B3Error {
    /// The single header has the wrong number of fields.
    InvalidFormat,
    /// The trace id is not 16 or 32 lowercase hex digits, or is zero.
    InvalidTraceId,
    /// The span id is not 16 lowercase hex digits, or is zero.
    InvalidSpanId,
    /// The parent span id is not 16 lowercase hex digits, or is zero.
    InvalidParentSpanId,
    /// The sampling state is not one the format defines.
    InvalidSampling,
    /// `X-B3-TraceId` without `X-B3-SpanId`.
    MissingSpanId,
    /// `X-B3-SpanId` without `X-B3-TraceId`.
    MissingTraceId,
}

impl B3Error {
    /// A stable snake_case label, for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidFormat => "invalid_format",
            Self::InvalidTraceId => "invalid_trace_id",
            Self::InvalidSpanId => "invalid_span_id",
            Self::InvalidParentSpanId => "invalid_parent_span_id",
            Self::InvalidSampling => "invalid_sampling",
            Self::MissingSpanId => "missing_span_id",
            Self::MissingTraceId => "missing_trace_id",
        }
    }
}

impl fmt::Display for B3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid b3: {}", self.reason().replace('_', " "))
    }
}

impl std::error::Error for B3Error {}

fn trace_id(text: &[u8]) -> Result<TraceId, B3Error> {
    let id = match text.len() {
        32 => TraceId::from_hex_bytes(text),
        16 => TraceId::from_hex64_bytes(text),
        _ => None,
    };
    id.ok_or(B3Error::InvalidTraceId)
}

fn span_id(text: &[u8], error: B3Error) -> Result<SpanId, B3Error> {
    SpanId::from_hex_bytes(text).ok_or(error)
}

/// Parses a `b3` single header value.
pub fn parse_single(value: &str) -> Result<B3, B3Error> {
    parse_single_bytes(value.as_bytes())
}

/// Parses a `b3` single header value given as raw bytes.
pub fn parse_single_bytes(value: &[u8]) -> Result<B3, B3Error> {
    let value = ows::trim(value);
    // At most four fields; a fifth piece means too many.
    let fields: Vec<&[u8]> = value.splitn(5, |&b| b == b'-').collect();
    let sampling = |field: &[u8]| match field {
        b"0" => Ok(SamplingState::Deny),
        b"1" => Ok(SamplingState::Accept),
        b"d" => Ok(SamplingState::Debug),
        _ => Err(B3Error::InvalidSampling),
    };
    match fields.as_slice() {
        [only] => match sampling(only) {
            Ok(state) => Ok(B3::SamplingOnly(state)),
            Err(_) => Err(B3Error::InvalidFormat),
        },
        [trace, span, rest @ ..] if rest.len() <= 2 => {
            let trace_id = trace_id(trace)?;
            let span_id = span_id(span, B3Error::InvalidSpanId)?;
            let sampling = match rest.first() {
                Some(field) => sampling(field)?,
                None => SamplingState::Defer,
            };
            let parent_span_id = match rest.get(1) {
                Some(field) => Some(self::span_id(field, B3Error::InvalidParentSpanId)?),
                None => None,
            };
            Ok(B3::Context(B3Context { trace_id, span_id, parent_span_id, sampling }))
        }
        _ => Err(B3Error::InvalidFormat),
    }
}

/// Formats a context as a `b3` single header value: always 32-digit trace id; the sampling field
/// when not deferred; the parent when present (a parent needs a sampling field, so a deferred
/// context with a parent drops the parent).
pub fn format_single(context: &B3Context) -> String {
    let mut out = format!("{}-{}", context.trace_id, context.span_id);
    let sampling = match context.sampling {
        SamplingState::Defer => return out,
        SamplingState::Deny => "0",
        SamplingState::Accept => "1",
        SamplingState::Debug => "d",
    };
    out.push('-');
    out.push_str(sampling);
    if let Some(parent) = context.parent_span_id {
        out.push('-');
        out.push_str(&parent.to_string());
    }
    out
}

/// Reads the `b3` single header (first value): `Ok(None)` when absent.
pub fn extract_single(headers: &HeaderMap) -> Result<Option<B3>, B3Error> {
    headers.get(&SINGLE_HEADER).map(|v| parse_single_bytes(v.as_bytes())).transpose()
}

/// Reads the `X-B3-*` headers (first value of each): `Ok(None)` when none carries anything.
pub fn extract_multi(headers: &HeaderMap) -> Result<Option<B3>, B3Error> {
    let get = |name: &HeaderName| headers.get(name).map(|v| ows::trim(v.as_bytes()));
    let debug = matches!(get(&FLAGS_HEADER), Some(b"1"));
    let sampling = match get(&SAMPLED_HEADER) {
        _ if debug => SamplingState::Debug,
        None => SamplingState::Defer,
        Some(b"1" | b"true") => SamplingState::Accept,
        Some(b"0" | b"false") => SamplingState::Deny,
        Some(_) => return Err(B3Error::InvalidSampling),
    };
    match (get(&TRACE_ID_HEADER), get(&SPAN_ID_HEADER)) {
        (None, None) if sampling == SamplingState::Defer => Ok(None),
        (None, None) => Ok(Some(B3::SamplingOnly(sampling))),
        (Some(_), None) => Err(B3Error::MissingSpanId),
        (None, Some(_)) => Err(B3Error::MissingTraceId),
        (Some(trace), Some(span)) => {
            let trace_id = trace_id(trace)?;
            let span_id = span_id(span, B3Error::InvalidSpanId)?;
            let parent_span_id = match get(&PARENT_SPAN_ID_HEADER) {
                Some(parent) => Some(self::span_id(parent, B3Error::InvalidParentSpanId)?),
                None => None,
            };
            Ok(Some(B3::Context(B3Context { trace_id, span_id, parent_span_id, sampling })))
        }
    }
}

/// Reads B3 in either encoding. The single header takes precedence; when it is invalid the
/// multiple headers are tried, and the single header's error is returned if they carry nothing
/// valid.
pub fn extract(headers: &HeaderMap) -> Result<Option<B3>, B3Error> {
    match extract_single(headers) {
        Ok(Some(b3)) => Ok(Some(b3)),
        Ok(None) => extract_multi(headers),
        Err(error) => match extract_multi(headers) {
            Ok(Some(b3)) => Ok(Some(b3)),
            Ok(None) | Err(_) => Err(error),
        },
    }
}

/// Sets the `b3` single header, replacing any present.
pub fn inject_single(context: &B3Context, headers: &mut HeaderMap) {
    if let Ok(value) = HeaderValue::try_from(format_single(context)) {
        headers.insert(SINGLE_HEADER, value);
    }
}

/// Sets the `X-B3-*` headers, removing stale ones: `X-B3-Flags: 1` for debug (and no
/// `X-B3-Sampled`), `X-B3-Sampled: 1`/`0` for accept/deny, neither for defer.
pub fn inject_multi(context: &B3Context, headers: &mut HeaderMap) {
    write_multi(context, true, headers);
}

/// [`inject_multi`]; stale `X-B3-*` headers are removed only when the map may hold some.
pub(crate) fn write_multi(context: &B3Context, stale: bool, headers: &mut HeaderMap) {
    // Hex digits are always a valid header value.
    let mut set = |name: HeaderName, digits: &[u8]| {
        if let Ok(value) = HeaderValue::from_bytes(digits) {
            headers.insert(name, value);
        }
    };
    set(TRACE_ID_HEADER, &context.trace_id.to_hex());
    set(SPAN_ID_HEADER, &context.span_id.to_hex());
    if let Some(parent) = context.parent_span_id {
        set(PARENT_SPAN_ID_HEADER, &parent.to_hex());
    }
    let one = || HeaderValue::from_static("1");
    match context.sampling {
        SamplingState::Debug => headers.insert(FLAGS_HEADER, one()),
        SamplingState::Accept => headers.insert(SAMPLED_HEADER, one()),
        SamplingState::Deny => headers.insert(SAMPLED_HEADER, HeaderValue::from_static("0")),
        SamplingState::Defer => None,
    };
    if !stale {
        return;
    }
    if context.parent_span_id.is_none() {
        headers.remove(PARENT_SPAN_ID_HEADER);
    }
    if context.sampling != SamplingState::Debug {
        headers.remove(FLAGS_HEADER);
    }
    if matches!(context.sampling, SamplingState::Debug | SamplingState::Defer) {
        headers.remove(SAMPLED_HEADER);
    }
}

#[cfg(test)]
mod tests;
