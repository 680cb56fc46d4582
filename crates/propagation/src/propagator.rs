//! Several formats at once: which ones a listener reads and writes ([`Propagators`]), reading a
//! request ([`extract`]) and writing an outgoing one ([`inject`]).
//!
//! # Extraction precedence
//!
//! 1. `traceparent` (and then `tracestate`), when [`Propagator::TraceContext`] is enabled.
//! 2. The `b3` single header, when [`Propagator::B3Single`] is enabled.
//! 3. The `X-B3-*` headers, when [`Propagator::B3Multi`] is enabled.
//!
//! The first valid context wins and the later formats are not read. W3C first matches Linkerd
//! ("if both w3c and b3 headers are present, Linkerd will propagate only the w3c headers") and
//! Envoy's OpenTelemetry tracer (W3C only); single before multi is the B3 rule. An invalid
//! `traceparent` is reported in [`ExtractErrors`] and the B3 headers are tried next, as Linkerd
//! does; when nothing valid is left the caller restarts the trace, as the W3C specification says
//! (Envoy instead records nothing and forwards the invalid header). `tracestate` is only read
//! when the context came from a valid `traceparent`. Baggage is read independently of the
//! context.
//!
//! # Injection
//!
//! Every enabled format is written; headers of the enabled formats are replaced, stale ones
//! removed (an empty `tracestate` or baggage removes the header); other headers are untouched.

use std::fmt;

use http::HeaderMap;

use crate::b3::{self, B3, B3Context, B3Error, SamplingState};
use crate::baggage::{self, Baggage};
use crate::context::{SpanContext, SpanId};
use crate::traceparent::{self, TraceparentError};
use crate::tracestate::{TraceState, TraceStateError};

/// One propagation format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Propagator {
    /// W3C `traceparent` + `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// B3 single header `b3`.
    B3Single,
    /// B3 multiple headers `X-B3-*`.
    B3Multi,
}

impl Propagator {
    /// Every format, in extraction order (baggage last).
    pub const ALL: [Self; 4] = [Self::TraceContext, Self::B3Single, Self::B3Multi, Self::Baggage];

    /// The name `OTEL_PROPAGATORS` uses: `tracecontext`, `baggage`, `b3`, `b3multi`.
    pub fn name(self) -> &'static str {
        match self {
            Self::TraceContext => "tracecontext",
            Self::Baggage => "baggage",
            Self::B3Single => "b3",
            Self::B3Multi => "b3multi",
        }
    }

    /// The format with this `OTEL_PROPAGATORS` name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    const fn bit(self) -> u8 {
        match self {
            Self::TraceContext => 1,
            Self::Baggage => 2,
            Self::B3Single => 4,
            Self::B3Multi => 8,
        }
    }
}

/// A set of formats.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Propagators(u8);

/// An unknown name in a propagator list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPropagator(pub String);

impl fmt::Display for UnknownPropagator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown propagator {:?}: expected tracecontext, baggage, b3, b3multi or none",
            self.0
        )
    }
}

impl std::error::Error for UnknownPropagator {}

impl Propagators {
    /// No format.
    pub const NONE: Self = Self(0);

    /// Every format.
    pub const EVERY: Self = Self(
        Propagator::TraceContext.bit()
            | Propagator::Baggage.bit()
            | Propagator::B3Single.bit()
            | Propagator::B3Multi.bit(),
    );

    /// The OpenTelemetry SDK default: `tracecontext,baggage`.
    pub fn otel_default() -> Self {
        Self::NONE.with(Propagator::TraceContext).with(Propagator::Baggage)
    }

    /// The composite propagator of the seed application: W3C trace context, W3C baggage and B3
    /// multiple headers (`tracecontext,baggage,b3multi`).
    pub fn seed_composite() -> Self {
        Self::otel_default().with(Propagator::B3Multi)
    }

    /// This set plus `propagator`.
    #[must_use]
    pub fn with(self, propagator: Propagator) -> Self {
        Self(self.0 | propagator.bit())
    }

    /// Whether `propagator` is in the set.
    pub fn contains(self, propagator: Propagator) -> bool {
        self.0 & propagator.bit() != 0
    }

    /// The formats in both sets.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The formats in either set.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The formats whose headers `headers` holds: `traceparent`, `b3`, any `X-B3-*`, `baggage`.
    /// Found in one pass over the names, because a lookup of an absent header still hashes its
    /// name, and most requests carry one format or none.
    pub fn carried(headers: &HeaderMap) -> Self {
        headers.keys().fold(Self::NONE, |set, name| {
            if *name == traceparent::HEADER {
                set.with(Propagator::TraceContext)
            } else if *name == b3::SINGLE_HEADER {
                set.with(Propagator::B3Single)
            } else if b3::MULTI_HEADERS.contains(name) {
                set.with(Propagator::B3Multi)
            } else if *name == baggage::HEADER {
                set.with(Propagator::Baggage)
            } else {
                set
            }
        })
    }

    /// The formats in the set, in extraction order.
    pub fn iter(self) -> impl Iterator<Item = Propagator> {
        Propagator::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// Parses an `OTEL_PROPAGATORS`-style list (`tracecontext,baggage,b3multi`; `none` for no
    /// format; spaces around names ignored).
    pub fn parse_list(list: &str) -> Result<Self, UnknownPropagator> {
        let mut set = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "none" {
                continue;
            }
            let propagator =
                Propagator::from_name(name).ok_or_else(|| UnknownPropagator(name.to_owned()))?;
            set = set.with(propagator);
        }
        Ok(set)
    }
}

impl FromIterator<Propagator> for Propagators {
    fn from_iter<I: IntoIterator<Item = Propagator>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Debug for Propagators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Propagator::name)).finish()
    }
}

/// Everything read from a request, for one listener's formats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The caller's span, if a valid one was found.
    pub context: Option<SpanContext>,
    /// The format it came from.
    pub source: Option<Propagator>,
    /// B3 only: the caller span's parent.
    pub parent_span_id: Option<SpanId>,
    /// B3 only: the explicit decision, also when the headers carry nothing else (`b3: 0`).
    pub b3_sampling: Option<SamplingState>,
    /// B3 debug (`X-B3-Flags: 1`, `b3: …-d`): force tracing.
    pub b3_debug: bool,
    /// The `tracestate` (empty unless the context came from a valid `traceparent`).
    pub tracestate: TraceState,
    /// The baggage kept.
    pub baggage: Baggage,
    /// What was rejected, for counting.
    pub errors: ExtractErrors,
}

/// The rejections during an [`extract`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractErrors {
    /// A `traceparent` was present but invalid (or repeated).
    pub traceparent: Option<TraceparentError>,
    /// The `tracestate` was discarded.
    pub tracestate: Option<TraceStateError>,
    /// B3 headers were present but invalid.
    pub b3: Option<B3Error>,
    /// Baggage members dropped.
    pub baggage: baggage::Dropped,
}

/// One B3 encoding's reader.
type B3Reader = fn(&HeaderMap) -> Result<Option<B3>, B3Error>;

/// Reads the enabled formats from `headers` (precedence in the module docs). Leaving out a
/// format the headers do not carry ([`Propagators::carried`]) changes nothing but the cost.
pub fn extract(headers: &HeaderMap, propagators: Propagators) -> Extracted {
    let mut out = Extracted::default();
    if propagators.contains(Propagator::TraceContext) {
        match traceparent::extract(headers) {
            Ok(Some(context)) => {
                out.context = Some(context);
                out.source = Some(Propagator::TraceContext);
                match TraceState::extract(headers) {
                    Ok(state) => out.tracestate = state,
                    Err(error) => out.errors.tracestate = Some(error),
                }
            }
            Ok(None) => {}
            Err(error) => out.errors.traceparent = Some(error),
        }
    }
    if out.context.is_none() {
        let formats: [(Propagator, B3Reader); 2] =
            [(Propagator::B3Single, b3::extract_single), (Propagator::B3Multi, b3::extract_multi)];
        for (propagator, read) in formats {
            if !propagators.contains(propagator) {
                continue;
            }
            match read(headers) {
                Ok(Some(found)) => {
                    out.b3_sampling = Some(found.sampling());
                    out.b3_debug = found.sampling() == SamplingState::Debug;
                    if let B3::Context(b3) = found {
                        out.context = Some(b3.span_context());
                        out.source = Some(propagator);
                        out.parent_span_id = b3.parent_span_id;
                    }
                    break;
                }
                Ok(None) => {}
                Err(error) => {
                    out.errors.b3.get_or_insert(error);
                }
            }
        }
    }
    if propagators.contains(Propagator::Baggage) {
        let parsed = Baggage::extract(headers);
        out.baggage = parsed.baggage;
        out.errors.baggage = parsed.dropped;
    }
    out
}

static EMPTY_TRACESTATE: TraceState = TraceState::EMPTY;
static EMPTY_BAGGAGE: Baggage = Baggage::EMPTY;

/// What to write on an outgoing request.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    /// The span the receiver should see as its parent.
    pub context: SpanContext,
    /// B3 only: that span's parent.
    pub parent_span_id: Option<SpanId>,
    /// B3 only: send the debug decision (it implies sampled).
    pub debug: bool,
    /// The `tracestate` to send with `traceparent`.
    pub tracestate: &'a TraceState,
    /// The baggage to send.
    pub baggage: &'a Baggage,
}

impl<'a> Outgoing<'a> {
    /// `context` with no parent, no debug, empty `tracestate` and baggage.
    pub fn new(context: SpanContext) -> Self {
        Self {
            context,
            parent_span_id: None,
            debug: false,
            tracestate: &EMPTY_TRACESTATE,
            baggage: &EMPTY_BAGGAGE,
        }
    }

    /// Sets the `tracestate`.
    #[must_use]
    pub fn with_tracestate(self, tracestate: &'a TraceState) -> Self {
        Self { tracestate, ..self }
    }

    /// Sets the baggage.
    #[must_use]
    pub fn with_baggage(self, baggage: &'a Baggage) -> Self {
        Self { baggage, ..self }
    }

    /// Sets the B3 parent span id.
    #[must_use]
    pub fn with_parent_span_id(self, parent_span_id: Option<SpanId>) -> Self {
        Self { parent_span_id, ..self }
    }

    /// Sets the B3 debug decision.
    #[must_use]
    pub fn with_debug(self, debug: bool) -> Self {
        Self { debug, ..self }
    }

    fn b3(&self) -> B3Context {
        let sampling = match (self.debug, self.context.sampled()) {
            (true, _) => SamplingState::Debug,
            (false, true) => SamplingState::Accept,
            (false, false) => SamplingState::Deny,
        };
        B3Context {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            parent_span_id: self.parent_span_id,
            sampling,
        }
    }
}

/// Writes every enabled format into `headers`.
pub fn inject(outgoing: &Outgoing<'_>, propagators: Propagators, headers: &mut HeaderMap) {
    inject_over(outgoing, propagators, Propagators::EVERY, headers);
}

/// [`inject`] into headers known to hold no header of the formats outside `may_hold`: the
/// stale headers of those formats are not looked for. A proxy that has scanned the request's
/// names already knows that, and removing an absent header still hashes its name.
pub fn inject_over(
    outgoing: &Outgoing<'_>,
    propagators: Propagators,
    may_hold: Propagators,
    headers: &mut HeaderMap,
) {
    for propagator in propagators.iter() {
        let stale = may_hold.contains(propagator);
        match propagator {
            Propagator::TraceContext => {
                traceparent::inject(&outgoing.context, headers);
                if stale || !outgoing.tracestate.is_empty() {
                    outgoing.tracestate.inject(headers);
                }
            }
            Propagator::Baggage => {
                if stale || !outgoing.baggage.is_empty() {
                    outgoing.baggage.inject(headers);
                }
            }
            Propagator::B3Single => b3::inject_single(&outgoing.b3(), headers),
            Propagator::B3Multi => b3::write_multi(&outgoing.b3(), stale, headers),
        }
    }
}

#[cfg(test)]
mod tests;
