use proptest::prelude::*;

use super::*;

/// A deterministic stream of 128-bit values (splitmix64), standing in for a random source.
fn random_values(seed: u64) -> impl Iterator<Item = u128> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    std::iter::from_fn(move || Some((u128::from(next()) << 64) | u128::from(next())))
}

fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12]
        && id.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.as_bytes()[14] == b'4'
        && matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn generate_sets_version_and_variant() {
    assert_eq!(generate(0), "00000000-0000-4000-8000-000000000000");
    assert_eq!(generate(u128::MAX), "ffffffff-ffff-4fff-bfff-ffffffffffff");
    assert_eq!(
        generate(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        "01234567-89ab-4def-8123-456789abcdef"
    );
    for random in random_values(1).take(1000) {
        let id = generate(random);
        assert!(is_uuid_v4(&id), "{id}");
        assert_eq!(trace_reason(&id), TraceReason::NotTraceable);
    }
}

#[test]
fn trace_reason_encoding() {
    let id = generate(42);
    for (reason, digit) in [
        (TraceReason::NotTraceable, '4'),
        (TraceReason::Sampling, '9'),
        (TraceReason::ServiceForced, 'a'),
        (TraceReason::ClientForced, 'b'),
    ] {
        let packed = with_trace_reason(&id, reason).expect("36 ASCII bytes");
        assert_eq!(packed.chars().nth(14), Some(digit));
        assert_eq!(trace_reason(&packed), reason);
        // Only index 14 changes.
        let differing = packed.bytes().zip(id.bytes()).filter(|(a, b)| a != b).count();
        assert!(differing <= 1);
    }
    // Envoy compares lowercase digits only, and only on 36-character ids.
    assert_eq!(trace_reason("00000000-0000-A000-8000-000000000000"), TraceReason::NotTraceable);
    assert_eq!(trace_reason("00000000-0000-9000-8000-00000000000"), TraceReason::NotTraceable);
    assert_eq!(trace_reason("00000000-0000-9000-8000-0000000000000"), TraceReason::NotTraceable);
    // Like Envoy, only the length and index 14 matter, not the UUID syntax.
    assert_eq!(trace_reason("not-a-uuid-at-all-but-36-chars-9...."), TraceReason::ServiceForced);
    assert_eq!(trace_reason("xxxxxxxxxxxxxx9xxxxxxxxxxxxxxxxxxxxx"), TraceReason::Sampling);
    assert_eq!(with_trace_reason("short", TraceReason::Sampling), None);
    assert_eq!(
        with_trace_reason("é0000000-0000-4000-8000-00000000000", TraceReason::Sampling),
        None
    );
}

#[test]
fn integer_reads_the_first_eight_hex_digits() {
    assert_eq!(integer("0000000a-0000-4000-8000-000000000000"), Some(10));
    assert_eq!(integer("ABCDEF01-whatever"), Some(0xabcd_ef01));
    assert_eq!(integer("ffffffff"), Some(0xffff_ffff));
    assert_eq!(integer("1234567"), None);
    assert_eq!(integer("+1234567-0000"), None);
    assert_eq!(integer("0x123456"), None);
    assert_eq!(integer("1234567é"), None);
    assert_eq!(integer(""), None);
}

#[test]
fn percentages_in_hundredths() {
    assert_eq!(percent_to_buckets(10.0), 1000);
    assert_eq!(percent_to_buckets(1.0), 100);
    assert_eq!(percent_to_buckets(0.01), 1);
    assert_eq!(percent_to_buckets(100.0), BUCKETS);
    assert_eq!(percent_to_buckets(250.0), BUCKETS);
    assert_eq!(percent_to_buckets(0.0), 0);
    assert_eq!(percent_to_buckets(-5.0), 0);
    assert_eq!(percent_to_buckets(f64::NAN), 0);
    assert_eq!(percent_to_buckets(f64::INFINITY), BUCKETS);
}

#[test]
fn sampling_compares_the_bucket_with_the_percentage() {
    // 0x3e7 = 999, 0x3e8 = 1000: the boundary of 10 %.
    let below = "000003e7-0000-4000-8000-000000000000";
    let at = "000003e8-0000-4000-8000-000000000000";
    assert!(sampled_by_request_id(below, 10.0));
    assert!(!sampled_by_request_id(at, 10.0));
    // The bucket is taken modulo 10 000: 0x2710 = 10 000 is bucket 0.
    assert!(sampled_by_request_id("00002710-0000-4000-8000-000000000000", 0.01));
    assert!(!sampled_by_request_id("00002711-0000-4000-8000-000000000000", 0.01));
    assert!(sampled_by_request_id(at, 100.0));
    assert!(!sampled_by_request_id("00000000-0000-4000-8000-000000000000", 0.0));
    assert!(!sampled_by_request_id("corrupt!", 100.0));
    assert!(!sampled_by_request_id("", 100.0));
}

#[test]
fn ten_percent_of_100_000_generated_ids_are_sampled() {
    let total = 100_000;
    let sampled =
        random_values(7).take(total).filter(|&r| sampled_by_request_id(&generate(r), 10.0)).count();
    let fraction = sampled as f64 / total as f64;
    assert!((0.095..=0.105).contains(&fraction), "sampled fraction {fraction}");
}

#[test]
fn decision_table() {
    use TraceReason::{ClientForced, NotTraceable, Sampling, ServiceForced};
    let bucket_500 = "000001f4-0000-4000-8000-000000000000"; // bucket 500 = 5 %
    let sampled_500 = "000001f4-0000-9000-8000-000000000000";
    let client = TraceRequest { client_trace: true, force_trace: false };
    let force = TraceRequest { client_trace: false, force_trace: true };
    let none = TraceRequest::default();
    let at = |random: f64, overall: f64| SamplingConfig {
        random_percentage: random,
        overall_percentage: overall,
        use_request_id_for_trace_sampling: true,
    };
    let cases: &[(Option<&str>, SamplingConfig, TraceRequest, TraceReason, bool)] = &[
        // (id, config, request, reason, id rewritten)
        (Some(bucket_500), at(10.0, 100.0), none, Sampling, true),
        (Some(bucket_500), at(5.0, 100.0), none, NotTraceable, false),
        (Some(bucket_500), at(5.01, 100.0), none, Sampling, true),
        (Some(bucket_500), at(0.0, 100.0), client, ClientForced, true),
        (Some(bucket_500), at(0.0, 100.0), force, ServiceForced, true),
        (
            Some(bucket_500),
            at(0.0, 100.0),
            TraceRequest { client_trace: true, force_trace: true },
            ClientForced,
            true,
        ),
        // A reason packed upstream is respected, whatever the local percentage.
        (Some(sampled_500), at(0.0, 100.0), none, Sampling, false),
        // ...unless the overall percentage vetoes it.
        (Some(sampled_500), at(100.0, 5.0), none, NotTraceable, true),
        (Some(bucket_500), at(0.0, 1.0), force, NotTraceable, false),
        // Missing or corrupt ids.
        (None, at(100.0, 100.0), force, NotTraceable, false),
        (Some("zzzzzzzz-0000-9000-8000-000000000000"), at(100.0, 100.0), none, Sampling, false),
        (Some("zzzz"), at(100.0, 100.0), none, NotTraceable, false),
        // Ids that are not 36 bytes still sample by their first 8 digits but cannot be rewritten.
        (Some("000001f4"), at(10.0, 100.0), none, Sampling, false),
    ];
    for (id, config, request, reason, rewritten) in cases {
        let decision = decide(*id, config, *request);
        assert_eq!(decision.reason, *reason, "{id:?} {config:?} {request:?}");
        assert_eq!(decision.rewritten_request_id.is_some(), *rewritten, "{id:?} {config:?}");
        if let (Some(new_id), Some(id)) = (&decision.rewritten_request_id, id) {
            assert_eq!(trace_reason(new_id), *reason);
            assert_eq!(integer(new_id), integer(id), "the bucket does not change");
        }
    }
    let off =
        SamplingConfig { use_request_id_for_trace_sampling: false, ..SamplingConfig::default() };
    assert_eq!(decide(None, &off, none).reason, Sampling);
    assert_eq!(SamplingConfig::default().random_percentage, 100.0);
}

proptest! {
    #[test]
    fn generated_ids_are_uuids_and_carry_every_reason(random in any::<u128>()) {
        let id = generate(random);
        prop_assert!(is_uuid_v4(&id));
        prop_assert!(integer(&id).is_some());
        for reason in [TraceReason::Sampling, TraceReason::ServiceForced, TraceReason::ClientForced] {
            let packed = with_trace_reason(&id, reason).expect("uuid");
            prop_assert_eq!(trace_reason(&packed), reason);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>(), percentage in any::<f64>()) {
        let _ = sampled_by_request_id(&text, percentage);
        crate::fuzz::request_id(text.as_bytes());
    }
}
