//! Which of the headers the proxy and its observers consult a message arrived with, found in
//! one pass over its names.
//!
//! A `HeaderMap` lookup hashes the name whether or not the header is there, and most of the
//! names the request path asks about are usually absent: hop-by-hop headers, the trace formats
//! a request did not use, Envoy's force-trace and decorator headers, Istio's peer metadata. At
//! about 250 instructions a lookup, those misses cost a traced request more than the scan that
//! rules them out (BENCHMARKS.md, "Sidecar").
//!
//! The set is exact for the message as scanned, and the proxy's hop-by-hop rules take out what
//! they remove (including the headers a `Connection` header names). A header the proxy or an
//! observer writes afterwards (the propagation headers, `x-request-id`, `x-forwarded-proto`,
//! `Host`, Istio's peer metadata) is not in it, so a reader of such a header looks it up
//! instead of asking the set.

use http::HeaderMap;
use http::header::HeaderName;
use propagation::{Propagator, Propagators};

/// A header the request path consults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    // Hop-by-hop (RFC 9110 §7.6.1) and `Expect`.
    Connection,
    KeepAlive,
    ProxyConnection,
    TransferEncoding,
    Upgrade,
    ProxyAuthorization,
    Expect,
    Te,
    // Trace context.
    Traceparent,
    Tracestate,
    B3,
    B3TraceId,
    B3SpanId,
    B3ParentSpanId,
    B3Sampled,
    B3Flags,
    Baggage,
    // Envoy's.
    RequestId,
    ClientTraceId,
    /// `x-envoy-force-trace`: an internal request asks to be traced.
    ForceTrace,
    DecoratorOperation,
    OriginalPath,
    DownstreamCluster,
    // Istio's metadata exchange.
    PeerMetadata,
    PeerMetadataId,
    // gRPC and the other tags' sources.
    ContentType,
    GrpcTimeout,
    GrpcStatus,
    GrpcMessage,
    UserAgent,
}

impl Known {
    /// Every known header, with its name: the tests' check that `of` and the readers agree.
    #[cfg(test)]
    pub const ALL: [(Known, &'static str); 30] = [
        (Known::Connection, "connection"),
        (Known::KeepAlive, "keep-alive"),
        (Known::ProxyConnection, "proxy-connection"),
        (Known::TransferEncoding, "transfer-encoding"),
        (Known::Upgrade, "upgrade"),
        (Known::ProxyAuthorization, "proxy-authorization"),
        (Known::Expect, "expect"),
        (Known::Te, "te"),
        (Known::Traceparent, "traceparent"),
        (Known::Tracestate, "tracestate"),
        (Known::B3, "b3"),
        (Known::B3TraceId, "x-b3-traceid"),
        (Known::B3SpanId, "x-b3-spanid"),
        (Known::B3ParentSpanId, "x-b3-parentspanid"),
        (Known::B3Sampled, "x-b3-sampled"),
        (Known::B3Flags, "x-b3-flags"),
        (Known::Baggage, "baggage"),
        (Known::RequestId, "x-request-id"),
        (Known::ClientTraceId, "x-client-trace-id"),
        (Known::ForceTrace, "x-envoy-force-trace"),
        (Known::DecoratorOperation, "x-envoy-decorator-operation"),
        (Known::OriginalPath, "x-envoy-original-path"),
        (Known::DownstreamCluster, "x-envoy-downstream-service-cluster"),
        (Known::PeerMetadata, "x-envoy-peer-metadata"),
        (Known::PeerMetadataId, "x-envoy-peer-metadata-id"),
        (Known::ContentType, "content-type"),
        (Known::GrpcTimeout, "grpc-timeout"),
        (Known::GrpcStatus, "grpc-status"),
        (Known::GrpcMessage, "grpc-message"),
        (Known::UserAgent, "user-agent"),
    ];

    /// The known header named `name` (lowercase, as `HeaderName` keeps it).
    ///
    /// Dispatched on the length first, so a name is compared with at most a few candidates;
    /// a chain of string comparisons would cost each unknown name about thirty.
    fn of(name: &str) -> Option<Known> {
        use Known::*;
        let known = match name.len() {
            2 => match name {
                "te" => Te,
                "b3" => B3,
                _ => return None,
            },
            6 if name == "expect" => Expect,
            7 => match name {
                "upgrade" => Upgrade,
                "baggage" => Baggage,
                _ => return None,
            },
            10 => match name {
                "connection" => Connection,
                "keep-alive" => KeepAlive,
                "user-agent" => UserAgent,
                "tracestate" => Tracestate,
                "x-b3-flags" => B3Flags,
                _ => return None,
            },
            11 => match name {
                "traceparent" => Traceparent,
                "x-b3-spanid" => B3SpanId,
                "grpc-status" => GrpcStatus,
                _ => return None,
            },
            12 => match name {
                "content-type" => ContentType,
                "x-request-id" => RequestId,
                "x-b3-traceid" => B3TraceId,
                "x-b3-sampled" => B3Sampled,
                "grpc-timeout" => GrpcTimeout,
                "grpc-message" => GrpcMessage,
                _ => return None,
            },
            16 if name == "proxy-connection" => ProxyConnection,
            17 => match name {
                "transfer-encoding" => TransferEncoding,
                "x-b3-parentspanid" => B3ParentSpanId,
                "x-client-trace-id" => ClientTraceId,
                _ => return None,
            },
            19 => match name {
                "proxy-authorization" => ProxyAuthorization,
                "x-envoy-force-trace" => ForceTrace,
                _ => return None,
            },
            21 => match name {
                "x-envoy-peer-metadata" => PeerMetadata,
                "x-envoy-original-path" => OriginalPath,
                _ => return None,
            },
            24 if name == "x-envoy-peer-metadata-id" => PeerMetadataId,
            27 if name == "x-envoy-decorator-operation" => DecoratorOperation,
            34 if name == "x-envoy-downstream-service-cluster" => DownstreamCluster,
            _ => return None,
        };
        Some(known)
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The known headers a message holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received(u32);

impl Received {
    /// The known headers of `headers`.
    pub fn scan(headers: &HeaderMap) -> Received {
        Received(headers.keys().fold(0, |bits, name| bits | Received::bit_of(name)))
    }

    fn bit_of(name: &HeaderName) -> u32 {
        Known::of(name.as_str()).map_or(0, Known::bit)
    }

    /// The set without `name`, which has been removed from the message.
    pub(crate) fn forget(&mut self, name: &HeaderName) {
        self.0 &= !Received::bit_of(name);
    }

    /// The set with `name`, which the proxy has added to the message.
    pub(crate) fn remember(&mut self, name: &HeaderName) {
        self.0 |= Received::bit_of(name);
    }

    /// Whether the message holds `header`.
    pub fn has(self, header: Known) -> bool {
        self.0 & header.bit() != 0
    }

    /// Whether it holds any of `headers`.
    pub fn has_any(self, headers: &[Known]) -> bool {
        headers.iter().any(|header| self.has(*header))
    }

    /// The trace formats whose context headers it holds, as [`Propagators::carried`] finds
    /// them: `traceparent`, `b3`, any `X-B3-*`, `baggage`.
    pub fn formats(self) -> Propagators {
        self.formats_with(Known::Traceparent.bit())
    }

    /// The trace formats any of whose headers it holds: as [`formats`](Self::formats), and
    /// W3C trace context for a `tracestate` without a `traceparent` too. Writing a format
    /// removes its stale headers only where the message may hold them.
    pub fn may_hold(self) -> Propagators {
        self.formats_with(Known::Traceparent.bit() | Known::Tracestate.bit())
    }

    /// The formats, W3C trace context counted for any of the `trace_context` headers.
    fn formats_with(self, trace_context: u32) -> Propagators {
        const B3_MULTI: u32 = Known::B3TraceId.bit()
            | Known::B3SpanId.bit()
            | Known::B3ParentSpanId.bit()
            | Known::B3Sampled.bit()
            | Known::B3Flags.bit();
        let mut formats = Propagators::NONE;
        for (headers, format) in [
            (trace_context, Propagator::TraceContext),
            (Known::B3.bit(), Propagator::B3Single),
            (B3_MULTI, Propagator::B3Multi),
            (Known::Baggage.bit(), Propagator::Baggage),
        ] {
            if self.0 & headers != 0 {
                formats = formats.with(format);
            }
        }
        formats
    }
}

#[cfg(test)]
mod tests;
