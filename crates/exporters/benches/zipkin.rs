//! The `zipkin` exporter's hot path: translating a batch of Envoy sidecar spans to Zipkin v2 and
//! encoding it as JSON, against the baseline of the same batch encoded as OTLP/JSON (what
//! `otlphttp` with `encoding: json` does to it). Both start from decoded objects. Run with
//! `cargo bench -p exporters -- --quick` for a fast look.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otlp::{fixtures, json};

const SPANS: usize = 128;

fn zipkin_vs_otlp_json(c: &mut Criterion) {
    let request = fixtures::sidecar_traces(SPANS, 4);
    let mut group = c.benchmark_group("traces_128_spans_to_json");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("zipkin_translate_and_encode", |b| {
        b.iter(|| exporters::zipkin::encode_json(black_box(&request), "unknown"))
    });
    group.bench_function("otlp_json_encode", |b| {
        b.iter(|| json::encode_message(black_box(&request)))
    });
    group.finish();
}

criterion_group!(benches, zipkin_vs_otlp_json);
criterion_main!(benches);
