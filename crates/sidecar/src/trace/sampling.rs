//! The sampling decision for one request, in this order:
//!
//! 1. **never-trace paths** (health checks by default): not sampled, and the `x-request-id` is
//!    left as it came (Envoy never traces a health check, `shouldTraceRequest`);
//! 2. **always-trace paths**: sampled;
//! 3. **force**: `x-envoy-force-trace`, `x-client-trace-id` (gated by `client_sampling`), the
//!    Sidecar's `forceTraceHeaders`, and B3 debug (`X-B3-Flags: 1`, `b3: …-d`): sampled;
//! 4. **the parent's sampled flag**, when the request carries a decision (`traceparent`, B3
//!    with `1`/`0`, or a bare `b3: 0`); a B3 context that defers decides like a new trace;
//! 5. **the request id**: Envoy's `mutateTracingRequestHeader` ([`request_id::decide`]), which
//!    respects a reason an earlier hop packed into the id and otherwise samples
//!    `randomSamplingPercentage` of the id space, so every hop of a request agrees.
//!
//! Steps 2 to 5 always run Envoy's request-id decision, so the forwarded `x-request-id` carries
//! the trace reason as Envoy would pack it: always-trace paths and force headers pack
//! `ServiceForced` (`a`), `x-client-trace-id` packs `ClientForced` (`b`). The parent's flag wins
//! over the id (Envoy ≤ 1.38, Istio ≤ 1.30: "respect the previous span's sampled flag").

use http::HeaderMap;
use http::header::HeaderName;
use propagation::b3::SamplingState;
use propagation::request_id::{self, SamplingConfig, TraceReason, TraceRequest};
use propagation::{Extracted, Propagator};
use rand::Rng;

use crate::config::{DirectionSettings, HeaderMatch, PathMatch, TracingSettings};
use crate::received::{Known, Received};

/// `x-client-trace-id`: an external client's trace id; forces tracing like `x-envoy-force-trace`.
pub(crate) const CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");

/// Why a request is (not) sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A never-trace path.
    NeverTracePath,
    /// An always-trace path.
    AlwaysTracePath,
    /// A force header or B3 debug.
    Forced,
    /// The parent's sampled flag.
    Parent,
    /// The decision packed in (or sampled from) the request id.
    RequestId(TraceReason),
    /// A random draw (`useRequestIdForTraceSampling: false`).
    Random,
}

/// The outcome for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Whether this proxy records and exports a span.
    pub(crate) sampled: bool,
    /// Why.
    pub(crate) reason: Reason,
    /// The request id to forward instead of the received one, when the trace reason changed.
    pub(crate) rewritten_request_id: Option<String>,
}

/// The rules shared by both directions (Sidecar `spec.tracing`).
#[derive(Clone, Debug)]
pub(crate) struct SamplingRules {
    never_trace_paths: Vec<PathMatch>,
    always_trace_paths: Vec<PathMatch>,
    /// `force_trace_headers` as header names, with the value to match (any when `None`). A
    /// rule whose name is not a valid header name can never match, and is left out.
    force_trace_headers: Vec<(HeaderName, Option<String>)>,
}

/// One direction's sampling settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectionSampling {
    request_id: SamplingConfig,
    /// `client_sampling` in hundredths of a percent.
    client_sampling: u16,
    /// `random_sampling` in hundredths of a percent, for random draws.
    random_sampling: u16,
}

/// What the decision reads from a request.
pub(crate) struct SamplingInput<'a> {
    /// The request path, without the query.
    pub(crate) path: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// The known headers the request arrived with.
    pub(crate) received: Received,
    /// The request id (received or generated).
    pub(crate) request_id: &'a str,
    /// The caller's decision, if it sent one ([`parent_decision`]; for a stitched request, the
    /// inbound span's).
    pub(crate) parent_sampled: Option<bool>,
    /// B3 debug: the caller forces tracing.
    pub(crate) b3_debug: bool,
}

// === impl SamplingRules ===

impl SamplingRules {
    /// The Sidecar document's rules.
    pub(crate) fn new(settings: &TracingSettings) -> SamplingRules {
        SamplingRules {
            never_trace_paths: settings.never_trace_paths.clone(),
            always_trace_paths: settings.always_trace_paths.clone(),
            force_trace_headers: settings
                .force_trace_headers
                .iter()
                .filter_map(|HeaderMatch { name, value }| {
                    Some((HeaderName::from_bytes(name.as_bytes()).ok()?, value.clone()))
                })
                .collect(),
        }
    }

    /// Decides for one request; `rng` draws `client_sampling` and, without request-id
    /// sampling, the random sampling.
    pub(crate) fn decide(
        &self,
        direction: &DirectionSampling,
        input: &SamplingInput<'_>,
        rng: &mut impl Rng,
    ) -> Decision {
        if self.never_trace_paths.iter().any(|rule| rule.matches(input.path)) {
            return Decision {
                sampled: false,
                reason: Reason::NeverTracePath,
                rewritten_request_id: None,
            };
        }
        let always = self.always_trace_paths.iter().any(|rule| rule.matches(input.path));
        let client_trace =
            input.received.has(Known::ClientTraceId) && draw(rng, direction.client_sampling);
        let forced_by_header = input.received.has(Known::ForceTrace)
            || self
                .force_trace_headers
                .iter()
                .any(|(name, value)| matches_header(name, value.as_deref(), input.headers));
        let request = TraceRequest { client_trace, force_trace: always || forced_by_header };
        let envoy = request_id::decide(Some(input.request_id), &direction.request_id, request);
        let rewritten_request_id = envoy.rewritten_request_id;
        let (sampled, reason) = if always {
            (true, Reason::AlwaysTracePath)
        } else if client_trace || forced_by_header || input.b3_debug {
            (true, Reason::Forced)
        } else if let Some(sampled) = input.parent_sampled {
            (sampled, Reason::Parent)
        } else if direction.request_id.use_request_id_for_trace_sampling {
            (envoy.reason.is_traced(), Reason::RequestId(envoy.reason))
        } else {
            (draw(rng, direction.random_sampling), Reason::Random)
        };
        Decision { sampled, reason, rewritten_request_id }
    }
}

/// Whether `headers` has `name` (with `value`, when given).
fn matches_header(name: &HeaderName, value: Option<&str>, headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(name).iter();
    match value {
        None => values.next().is_some(),
        Some(expected) => values.any(|value| value.as_bytes() == expected.as_bytes()),
    }
}

/// The decision the caller made, if it made one: the sampled flag of its context, or a bare B3
/// decision (`b3: 0`); `None` for no context, or a B3 context that defers.
pub(crate) fn parent_decision(extracted: &Extracted) -> Option<bool> {
    match (extracted.source, extracted.b3_sampling) {
        // A B3 context without a decision: the receiver decides.
        (Some(Propagator::B3Single | Propagator::B3Multi), Some(SamplingState::Defer)) => None,
        (Some(_), _) => extracted.context.map(|context| context.sampled()),
        // `b3: 0` (or `1`) without ids: a decision without a context.
        (None, Some(state)) if state != SamplingState::Defer => Some(state.sampled()),
        (None, _) => None,
    }
}

/// True with probability `hundredths / 10 000`.
fn draw(rng: &mut impl Rng, hundredths: u16) -> bool {
    hundredths >= 10_000 || rng.random_range(0..10_000u16) < hundredths
}

// === impl DirectionSampling ===

impl DirectionSampling {
    /// A direction's Telemetry / Envoy sampling settings.
    pub(crate) fn new(settings: &DirectionSettings) -> DirectionSampling {
        DirectionSampling {
            request_id: SamplingConfig {
                random_percentage: settings.sampling.percent(),
                overall_percentage: settings.overall_sampling.percent(),
                use_request_id_for_trace_sampling: settings.use_request_id_for_trace_sampling,
            },
            client_sampling: settings.client_sampling.hundredths(),
            random_sampling: settings.sampling.hundredths(),
        }
    }
}

#[cfg(test)]
mod tests;
