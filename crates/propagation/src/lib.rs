//! Trace context propagation for the meshtrace sidecar: parse and write the headers that carry a
//! trace from one service to the next. Pure functions over [`http::HeaderMap`]: no I/O, no
//! clock, no randomness (callers pass random values in).
//!
//! Formats and the specifications they follow:
//!
//! | module | header(s) | specification |
//! |---|---|---|
//! | [`traceparent`] | `traceparent` | W3C Trace Context Level 1 and Level 2 (random flag) |
//! | [`tracestate`] | `tracestate` | W3C Trace Context (limits of Level 1, keys of Level 2) |
//! | [`baggage`] | `baggage` | W3C Baggage |
//! | [`b3`] | `b3`, `X-B3-*` | openzipkin/b3-propagation |
//! | [`request_id`] | `x-request-id` | Envoy's UUID request-id extension and trace decision |
//!
//! Where to start: [`extract`] reads every enabled format of a request into an [`Extracted`]
//! (its module, [`propagator`], documents the precedence between formats), and [`inject`] writes
//! an [`Outgoing`] context back. The types shared by all formats are in [`context`]:
//! [`TraceId`], [`SpanId`], [`TraceFlags`], [`SpanContext`].
//!
//! Where Envoy and the W3C specification disagree this crate follows the specification (the
//! project's mesh tracing spec, §5.5): an invalid `traceparent` restarts the trace, uppercase hex
//! and version `ff` are invalid, higher versions are parsed leniently, the Level 2 random flag is
//! kept, and `tracestate` keeps its limits.
//!
//! Every parser is total: any input gives a value or an error, never a panic. [`fuzz`] has one
//! entry point per parser for fuzzing; the property tests run them on random input.

pub mod b3;
pub mod baggage;
pub mod context;
pub mod fuzz;
pub mod propagator;
pub mod request_id;
pub mod traceparent;
pub mod tracestate;

mod header;
mod ows;

pub use context::{SpanContext, SpanId, TraceFlags, TraceId};
pub use propagator::{
    ExtractErrors, Extracted, Outgoing, Propagator, Propagators, UnknownPropagator, extract,
    inject, inject_over,
};
