use http::{HeaderMap, HeaderValue};
use propagation::request_id::{self, TraceReason};
use propagation::{Propagators, extract};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::config::{SamplingPercentage, default_never_trace_paths};

fn settings(force: Vec<HeaderMatch>, always: Vec<PathMatch>) -> TracingSettings {
    TracingSettings {
        service_name: "productpage.default".into(),
        inbound: DirectionSettings::off(),
        outbound: DirectionSettings::off(),
        force_trace_headers: force,
        never_trace_paths: default_never_trace_paths(),
        always_trace_paths: always,
        linkerd: None,
        stitching: true,
        propagators: Propagators::seed_composite(),
    }
}

fn direction(percent: f64) -> DirectionSampling {
    let mut settings = DirectionSettings::off();
    settings.sampling = SamplingPercentage::from_percent(percent).unwrap();
    DirectionSampling::new(&settings)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// A fresh (not traced) request id whose bucket is `bucket` (0–9999).
fn id_in_bucket(bucket: u32) -> String {
    format!("{bucket:08x}-0000-4000-8000-000000000000")
}

struct Case {
    rules: SamplingRules,
    direction: DirectionSampling,
    rng: StdRng,
}

impl Case {
    fn new(percent: f64) -> Case {
        Case {
            rules: SamplingRules::new(&settings(Vec::new(), Vec::new())),
            direction: direction(percent),
            rng: StdRng::seed_from_u64(7),
        }
    }

    fn decide(&mut self, path: &str, request_id: &str, pairs: &[(&str, &str)]) -> Decision {
        let headers = headers(pairs);
        let all = Propagators::seed_composite().with(propagation::Propagator::B3Single);
        let extracted = extract(&headers, all);
        let input = SamplingInput {
            path,
            headers: &headers,
            received: Received::scan(&headers),
            request_id,
            parent_sampled: parent_decision(&extracted),
            b3_debug: extracted.b3_debug,
        };
        self.rules.decide(&self.direction, &input, &mut self.rng)
    }
}

const SAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

#[test]
fn ten_percent_of_random_request_ids_are_sampled() {
    let mut case = Case::new(10.0);
    let mut rng = StdRng::seed_from_u64(42);
    let total = 100_000;
    let mut sampled = 0;
    for _ in 0..total {
        let id = request_id::generate(rng.random());
        let decision = case.decide("/productpage", &id, &[]);
        if decision.sampled {
            sampled += 1;
            // The decision travels in the id, as Envoy packs it.
            let forwarded = decision.rewritten_request_id.unwrap();
            assert_eq!(request_id::trace_reason(&forwarded), TraceReason::Sampling);
        } else {
            assert_eq!(decision.rewritten_request_id, None);
        }
    }
    let percent = f64::from(sampled) * 100.0 / f64::from(total);
    assert!((9.5..=10.5).contains(&percent), "{percent}% sampled");
}

#[test]
fn the_decision_follows_the_request_id_bucket_in_hundredths() {
    let mut case = Case::new(12.34);
    assert!(case.decide("/", &id_in_bucket(1233), &[]).sampled);
    assert!(!case.decide("/", &id_in_bucket(1234), &[]).sampled);
    // The first 8 hex digits modulo 10 000: 0x00002710 = 10 000 is bucket 0.
    assert!(case.decide("/", "00002710-0000-4000-8000-000000000000", &[]).sampled);
}

#[test]
fn a_reason_packed_by_an_earlier_hop_is_respected() {
    let mut case = Case::new(0.0);
    let decision = case.decide("/", "ffffffff-0000-9000-8000-000000000000", &[]);
    assert!(decision.sampled);
    assert_eq!(decision.reason, Reason::RequestId(TraceReason::Sampling));
    assert_eq!(decision.rewritten_request_id, None, "the id already says so");
}

#[test]
fn force_trace_headers_always_trace_and_pack_the_reason() {
    let mut case = Case::new(0.0);
    let id = id_in_bucket(9999);
    let forced = case.decide("/", &id, &[("x-envoy-force-trace", "true")]);
    assert!(forced.sampled);
    assert_eq!(forced.reason, Reason::Forced);
    let forwarded = forced.rewritten_request_id.unwrap();
    assert_eq!(request_id::trace_reason(&forwarded), TraceReason::ServiceForced);

    let client = case.decide("/", &id, &[("x-client-trace-id", "abc")]);
    assert!(client.sampled);
    let forwarded = client.rewritten_request_id.unwrap();
    assert_eq!(request_id::trace_reason(&forwarded), TraceReason::ClientForced);

    let debug = case.decide("/", &id, &[("x-b3-flags", "1")]);
    assert!(debug.sampled, "B3 debug forces");
}

#[test]
fn forced_beats_an_unsampled_parent() {
    let mut case = Case::new(0.0);
    let decision = case.decide(
        "/",
        &id_in_bucket(5000),
        &[("traceparent", UNSAMPLED_PARENT), ("x-envoy-force-trace", "1")],
    );
    assert!(decision.sampled);
}

#[test]
fn configured_force_headers_match_by_name_or_exact_value() {
    let force = vec![
        HeaderMatch { name: "x-debug-trace".into(), value: Some("true".into()) },
        HeaderMatch { name: "x-canary".into(), value: None },
    ];
    let mut case = Case::new(0.0);
    case.rules = SamplingRules::new(&settings(force, Vec::new()));
    let id = id_in_bucket(9999);
    assert!(case.decide("/", &id, &[("x-debug-trace", "true")]).sampled);
    assert!(!case.decide("/", &id, &[("x-debug-trace", "false")]).sampled);
    assert!(case.decide("/", &id, &[("x-canary", "anything")]).sampled);
    let forced = case.decide("/", &id, &[("x-canary", "")]);
    let forwarded = forced.rewritten_request_id.unwrap();
    assert_eq!(request_id::trace_reason(&forwarded), TraceReason::ServiceForced);
}

#[test]
fn the_parent_sampled_flag_is_respected_both_ways() {
    let mut case = Case::new(0.0);
    let yes = case.decide("/", &id_in_bucket(9999), &[("traceparent", SAMPLED_PARENT)]);
    assert_eq!((yes.sampled, yes.reason), (true, Reason::Parent));

    let mut case = Case::new(100.0);
    let no = case.decide("/", &id_in_bucket(0), &[("traceparent", UNSAMPLED_PARENT)]);
    assert_eq!((no.sampled, no.reason), (false, Reason::Parent));

    let b3 = case.decide(
        "/",
        &id_in_bucket(0),
        &[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "0"),
        ],
    );
    assert!(!b3.sampled, "X-B3-Sampled: 0 is a decision");
    let deny = case.decide("/", &id_in_bucket(0), &[("b3", "0")]);
    assert!(!deny.sampled, "b3: 0 stops tracing");
}

#[test]
fn a_b3_context_that_defers_is_decided_here() {
    let ids =
        [("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"), ("x-b3-spanid", "e457b5a2e4d86bd1")];
    let mut case = Case::new(50.0);
    assert!(case.decide("/", &id_in_bucket(10), &ids).sampled);
    assert!(!case.decide("/", &id_in_bucket(9000), &ids).sampled);
}

#[test]
fn an_invalid_traceparent_is_no_decision() {
    let mut case = Case::new(100.0);
    let decision = case.decide("/", &id_in_bucket(1), &[("traceparent", "00-xyz-01")]);
    assert_eq!(decision.reason, Reason::RequestId(TraceReason::Sampling));
    assert!(decision.sampled);
}

#[test]
fn health_checks_are_never_traced() {
    let mut case = Case::new(100.0);
    for path in ["/healthz", "/livez", "/readyz", "/app-health/productpage/readyz"] {
        let decision = case.decide(
            path,
            &id_in_bucket(0),
            &[("traceparent", SAMPLED_PARENT), ("x-envoy-force-trace", "1")],
        );
        assert!(!decision.sampled, "{path}");
        assert_eq!(decision.reason, Reason::NeverTracePath);
        assert_eq!(decision.rewritten_request_id, None, "{path}: id untouched");
    }
    assert!(case.decide("/healthz/deep", &id_in_bucket(0), &[]).sampled, "exact match only");
}

#[test]
fn always_trace_paths_trace_at_zero_percent() {
    let always = vec![PathMatch::Prefix("/checkout".into())];
    let mut case = Case::new(0.0);
    case.rules = SamplingRules::new(&settings(Vec::new(), always));
    let decision =
        case.decide("/checkout/cart", &id_in_bucket(9999), &[("traceparent", UNSAMPLED_PARENT)]);
    assert_eq!((decision.sampled, decision.reason), (true, Reason::AlwaysTracePath));
    let forwarded = decision.rewritten_request_id.unwrap();
    assert_eq!(request_id::trace_reason(&forwarded), TraceReason::ServiceForced);
    assert!(!case.decide("/cart", &id_in_bucket(9999), &[]).sampled);
}

#[test]
fn without_request_id_sampling_a_random_draw_decides() {
    let mut settings = DirectionSettings::off();
    settings.use_request_id_for_trace_sampling = false;
    settings.sampling = SamplingPercentage::HUNDRED;
    let mut case = Case::new(0.0);
    case.direction = DirectionSampling::new(&settings);
    let decision = case.decide("/", &id_in_bucket(9999), &[]);
    assert_eq!((decision.sampled, decision.reason), (true, Reason::Random));
    settings.sampling = SamplingPercentage::ZERO;
    case.direction = DirectionSampling::new(&settings);
    assert!(!case.decide("/", &id_in_bucket(0), &[]).sampled);
}
