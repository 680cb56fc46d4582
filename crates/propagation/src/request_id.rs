//! Envoy's `x-request-id`: a UUIDv4 that also carries the trace decision, so that every hop of a
//! request makes the same one (Envoy `source/extensions/request_id/uuid`, the default request-id
//! extension, and `ConnectionManagerUtility::mutateTracingRequestHeader`).
//!
//! * The character at index 14 — the UUID version digit, `xxxxxxxx-xxxx-Mxxx-…` — holds the
//!   [`TraceReason`]: `4` not traced (a fresh UUIDv4), `9` sampled, `a` forced by the service
//!   (`x-envoy-force-trace`), `b` forced by the client (`x-client-trace-id`). Only ids of exactly
//!   36 bytes carry it.
//! * The sampling bucket is the first 8 hex digits read as a number, modulo 10 000; a request is
//!   sampled at `p` percent when the bucket is below `round(p × 100)` (0.01 % steps).
//!
//! Randomness comes from the caller ([`generate`] takes 128 random bits), so the crate stays pure.

use http::HeaderName;

use crate::context::push_hex;

/// The header name.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Length of a UUID in text form.
pub const UUID_LEN: usize = 36;
/// Where Envoy packs the trace reason.
pub const TRACE_REASON_INDEX: usize = 14;
/// The sampling bucket count: percentages have 0.01 % steps.
pub const BUCKETS: u64 = 10_000;

/// Why a request is traced, as Envoy encodes it in `x-request-id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceReason {
    /// Not traced (`4`, also any unknown digit or an id that is not 36 bytes long).
    NotTraceable,
    /// Sampled by the random sampling percentage (`9`).
    Sampling,
    /// Forced by `x-envoy-force-trace` (`a`).
    ServiceForced,
    /// Forced by `x-client-trace-id` (`b`).
    ClientForced,
}

impl TraceReason {
    /// Whether the request is traced.
    pub fn is_traced(self) -> bool {
        self != Self::NotTraceable
    }

    /// The character Envoy writes at index 14.
    pub fn as_char(self) -> char {
        match self {
            Self::NotTraceable => '4',
            Self::Sampling => '9',
            Self::ServiceForced => 'a',
            Self::ClientForced => 'b',
        }
    }
}

/// A lowercase UUIDv4 string from 128 random bits (version and variant bits overwritten), trace
/// reason [`TraceReason::NotTraceable`].
pub fn generate(random: u128) -> String {
    let mut bytes = random.to_be_bytes();
    if let Some(version) = bytes.get_mut(6) {
        *version = (*version & 0x0f) | 0x40;
    }
    if let Some(variant) = bytes.get_mut(8) {
        *variant = (*variant & 0x3f) | 0x80;
    }
    let mut out = String::with_capacity(UUID_LEN);
    for (index, chunk) in [&bytes[..4], &bytes[4..6], &bytes[6..8], &bytes[8..10], &bytes[10..]]
        .into_iter()
        .enumerate()
    {
        if index > 0 {
            out.push('-');
        }
        push_hex(&mut out, chunk);
    }
    out
}

/// The trace reason packed in `request_id`; [`TraceReason::NotTraceable`] unless it is 36 bytes
/// long with `9`, `a` or `b` at index 14.
pub fn trace_reason(request_id: &str) -> TraceReason {
    if request_id.len() != UUID_LEN {
        return TraceReason::NotTraceable;
    }
    match request_id.as_bytes().get(TRACE_REASON_INDEX) {
        Some(b'9') => TraceReason::Sampling,
        Some(b'a') => TraceReason::ServiceForced,
        Some(b'b') => TraceReason::ClientForced,
        _ => TraceReason::NotTraceable,
    }
}

/// `request_id` with `reason` packed at index 14, or `None` when the id cannot carry it (not 36
/// bytes of ASCII).
pub fn with_trace_reason(request_id: &str, reason: TraceReason) -> Option<String> {
    if request_id.len() != UUID_LEN || !request_id.is_ascii() {
        return None;
    }
    let mut bytes = request_id.as_bytes().to_vec();
    *bytes.get_mut(TRACE_REASON_INDEX)? = reason.as_char() as u8;
    String::from_utf8(bytes).ok()
}

/// The number Envoy derives from a request id: its first 8 characters as hex (either case).
/// `None` for a shorter id or non-hex characters, which Envoy treats as corrupt. (Envoy reads them
/// with `strtoull`, which would also take a sign, leading spaces or `0x` within those 8
/// characters; no generated id has them, and this crate treats them as corrupt.)
pub fn integer(request_id: &str) -> Option<u64> {
    let digits = request_id.as_bytes().get(..8)?;
    let mut value: u64 = 0;
    for &digit in digits {
        value = (value << 4) | u64::from(char::from(digit).to_digit(16)?);
    }
    Some(value)
}

/// A percentage as a numerator out of [`BUCKETS`], rounded as Envoy does; clamped to 0–10 000
/// (NaN counts as 0).
pub fn percent_to_buckets(percentage: f64) -> u64 {
    let buckets = (percentage * BUCKETS as f64 / 100.0).round();
    if buckets.is_nan() || buckets <= 0.0 {
        0
    } else if buckets >= BUCKETS as f64 {
        BUCKETS
    } else {
        buckets as u64
    }
}

/// Envoy's random-sampling decision for a request id at `percentage` (0–100, 0.01 steps): the
/// bucket (`integer(id) % 10000`) is below the percentage in buckets. A missing or corrupt id is
/// not sampled. The decision is stable per id, so every hop agrees.
pub fn sampled_by_request_id(request_id: &str, percentage: f64) -> bool {
    match integer(request_id) {
        Some(value) => value % BUCKETS < percent_to_buckets(percentage),
        None => false,
    }
}

/// The sampling settings of one listener (Envoy HCM `tracing`, Istio Telemetry).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingConfig {
    /// `random_sampling`, percent. Istio: `randomSamplingPercentage` (default 1).
    pub random_percentage: f64,
    /// `overall_sampling`, percent; Istio always sets 100.
    pub overall_percentage: f64,
    /// `use_request_id_for_trace_sampling` (default true); false means every request is
    /// [`TraceReason::Sampling`] and the tracer decides.
    pub use_request_id_for_trace_sampling: bool,
}

impl Default for SamplingConfig {
    /// Envoy's defaults: 100 % random, 100 % overall, request id used.
    fn default() -> Self {
        Self {
            random_percentage: 100.0,
            overall_percentage: 100.0,
            use_request_id_for_trace_sampling: true,
        }
    }
}

/// What a request asks for, beyond its id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceRequest {
    /// `x-client-trace-id` is present and the client-sampling draw (a plain random percentage,
    /// `client_sampling`, default 100 %) said yes.
    pub client_trace: bool,
    /// `x-envoy-force-trace` is present (internal requests only).
    pub force_trace: bool,
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Why the request is (not) traced.
    pub reason: TraceReason,
    /// The id with the new reason packed, when it changed and the id can carry it: forward this
    /// instead of the received id.
    pub rewritten_request_id: Option<String>,
}

/// Envoy's trace decision for a request (`mutateTracingRequestHeader`): a reason already packed
/// in the id is respected; otherwise client trace, force trace, then random sampling on the id's
/// bucket; finally `overall_percentage` can veto any traced reason. A missing or corrupt id keeps
/// whatever reason it carries (`NotTraceable` for a missing one).
pub fn decide(
    request_id: Option<&str>,
    config: &SamplingConfig,
    request: TraceRequest,
) -> Decision {
    if !config.use_request_id_for_trace_sampling {
        return Decision { reason: TraceReason::Sampling, rewritten_request_id: None };
    }
    let Some((id, value)) = request_id.and_then(|id| Some((id, integer(id)?))) else {
        let reason = request_id.map_or(TraceReason::NotTraceable, trace_reason);
        return Decision { reason, rewritten_request_id: None };
    };
    let bucket = value % BUCKETS;
    let received = trace_reason(id);
    let mut reason = received;
    if reason == TraceReason::NotTraceable {
        if request.client_trace {
            reason = TraceReason::ClientForced;
        } else if request.force_trace {
            reason = TraceReason::ServiceForced;
        } else if bucket < percent_to_buckets(config.random_percentage) {
            reason = TraceReason::Sampling;
        }
    }
    if reason.is_traced() && bucket >= percent_to_buckets(config.overall_percentage) {
        reason = TraceReason::NotTraceable;
    }
    let rewritten_request_id =
        if reason == received { None } else { with_trace_reason(id, reason) };
    Decision { reason, rewritten_request_id }
}

#[cfg(test)]
mod tests;
