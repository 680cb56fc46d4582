use http::HeaderValue;
use http::header;
use propagation::{b3, baggage, request_id, traceparent, tracestate};

use super::*;
use crate::grpc::{GRPC_MESSAGE, GRPC_STATUS};
use crate::metrics::peer_metadata::{PEER_METADATA, PEER_METADATA_ID};
use crate::trace::context::DECORATOR_OPERATION;
use crate::trace::sampling::CLIENT_TRACE_ID;
use crate::trace::tags::{DOWNSTREAM_CLUSTER, GRPC_TIMEOUT, ORIGINAL_PATH};

fn map(names: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for name in names {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_static("v"));
    }
    map
}

/// The names the proxy looks up, as the code that looks them up spells them.
fn looked_up() -> Vec<(Known, HeaderName)> {
    vec![
        (Known::Connection, header::CONNECTION),
        (Known::KeepAlive, HeaderName::from_static("keep-alive")),
        (Known::ProxyConnection, HeaderName::from_static("proxy-connection")),
        (Known::TransferEncoding, header::TRANSFER_ENCODING),
        (Known::Upgrade, header::UPGRADE),
        (Known::ProxyAuthorization, header::PROXY_AUTHORIZATION),
        (Known::Expect, header::EXPECT),
        (Known::Te, header::TE),
        (Known::Traceparent, traceparent::HEADER),
        (Known::Tracestate, tracestate::HEADER),
        (Known::B3, b3::SINGLE_HEADER),
        (Known::B3TraceId, b3::TRACE_ID_HEADER),
        (Known::B3SpanId, b3::SPAN_ID_HEADER),
        (Known::B3ParentSpanId, b3::PARENT_SPAN_ID_HEADER),
        (Known::B3Sampled, b3::SAMPLED_HEADER),
        (Known::B3Flags, b3::FLAGS_HEADER),
        (Known::Baggage, baggage::HEADER),
        (Known::RequestId, request_id::HEADER),
        (Known::ClientTraceId, CLIENT_TRACE_ID),
        (Known::ForceTrace, HeaderName::from_static("x-envoy-force-trace")),
        (Known::DecoratorOperation, DECORATOR_OPERATION),
        (Known::OriginalPath, ORIGINAL_PATH),
        (Known::DownstreamCluster, DOWNSTREAM_CLUSTER),
        (Known::PeerMetadata, PEER_METADATA),
        (Known::PeerMetadataId, PEER_METADATA_ID),
        (Known::ContentType, header::CONTENT_TYPE),
        (Known::GrpcTimeout, GRPC_TIMEOUT),
        (Known::GrpcStatus, GRPC_STATUS),
        (Known::GrpcMessage, GRPC_MESSAGE),
        (Known::UserAgent, header::USER_AGENT),
    ]
}

#[test]
fn every_known_header_is_found_by_the_name_its_readers_use() {
    let looked_up = looked_up();
    assert_eq!(looked_up.len(), Known::ALL.len());
    for ((known, name), (listed, text)) in looked_up.iter().zip(Known::ALL) {
        assert_eq!(*known, listed, "same order as Known::ALL");
        assert_eq!(name.as_str(), text);
        assert_eq!(Known::of(text), Some(listed), "{text}");
        let alone = Received::scan(&map(&[text]));
        for (other, _) in Known::ALL {
            assert_eq!(alone.has(other), other == listed, "{text} scanned, {other:?} asked");
        }
    }
}

#[test]
fn each_known_header_has_its_own_bit() {
    let mut all = 0u32;
    for (known, _) in Known::ALL {
        assert_eq!(all & known.bit(), 0, "{known:?}");
        all |= known.bit();
    }
}

#[test]
fn other_names_are_not_known_whatever_their_length() {
    // Same lengths as known names, and names that begin like them.
    for name in [
        "t3",
        "b4",
        "accept",
        "upgradex",
        "baggagE",
        "keep-alivf",
        "traceparenT",
        "x-b3-spanie",
        "x-request-ie",
        "x-b3-sampler",
        "proxy-connectio",
        "x-client-trace-ie",
        "x-envoy-peer-metadata-ie",
        "x-forwarded-for",
        "x-envoy-peer-metadatax",
        "",
    ] {
        assert_eq!(Known::of(name), None, "{name}");
    }
    let scanned = Received::scan(&map(&["accept", "x-forwarded-for", "cookie", "x-b3-other"]));
    assert_eq!(scanned, Received::default());
}

#[test]
fn a_scan_finds_names_written_in_any_case_and_repeated() {
    let scanned = Received::scan(&map(&["X-Request-ID", "Connection", "connection", "TE"]));
    assert!(scanned.has(Known::RequestId));
    assert!(scanned.has(Known::Connection));
    assert!(scanned.has(Known::Te));
    assert!(!scanned.has(Known::Upgrade));
    assert!(scanned.has_any(&[Known::Upgrade, Known::Te]));
    assert!(!scanned.has_any(&[Known::Upgrade, Known::Expect]));
}

#[test]
fn the_formats_are_those_propagation_finds_and_a_lone_tracestate_may_hold_w3c() {
    let names = [
        "traceparent",
        "tracestate",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
        "baggage",
        "x-request-id",
    ];
    // Every subset of the names.
    for subset in 0..(1u32 << names.len()) {
        let chosen: Vec<&str> =
            (0..names.len()).filter(|i| subset & (1 << i) != 0).map(|i| names[i]).collect();
        let headers = map(&chosen);
        let scanned = Received::scan(&headers);
        assert_eq!(scanned.formats(), Propagators::carried(&headers), "{chosen:?}");
        let lone_tracestate = chosen.contains(&"tracestate") && !chosen.contains(&"traceparent");
        let expected = match lone_tracestate {
            true => Propagators::carried(&headers).with(Propagator::TraceContext),
            false => Propagators::carried(&headers),
        };
        assert_eq!(scanned.may_hold(), expected, "{chosen:?}");
    }
}
