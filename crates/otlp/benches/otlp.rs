//! Benchmarks of the OTLP hot paths on realistic Envoy sidecar spans.
//!
//! `scan` is what every received protobuf request costs on the wire-form path, so it is measured
//! against the alternative it replaces, a full prost decode of the same bytes. Appending encoded
//! batches is what the batch processor does per request, and JSON decoding is the OTLP/HTTP JSON
//! receiver's cost. Run with `cargo bench -p otlp -- --quick` for a fast look.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use otlp::{Batch, ExportTraceServiceRequest, Signal, fixtures, json, wire};
use prost::Message;

const SPANS: usize = 100;

fn request_bytes() -> Vec<u8> {
    fixtures::sidecar_traces(SPANS, 4).encode_to_vec()
}

fn scan_vs_decode(c: &mut Criterion) {
    let bytes = request_bytes();
    let mut group = c.benchmark_group("traces_100_spans");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("wire_scan", |b| b.iter(|| wire::scan(Signal::Traces, black_box(&bytes))));
    group.bench_function("prost_decode", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(&bytes[..])))
    });
    group.finish();
}

fn append_encoded(c: &mut Criterion) {
    let batches: Vec<Batch> = (0..10)
        .filter_map(|seed| {
            let bytes = fixtures::sidecar_traces_seeded(SPANS, 4, seed).encode_to_vec();
            Batch::from_wire(Signal::Traces, bytes.into()).ok()
        })
        .collect();
    let mut group = c.benchmark_group("batch");
    // Appending encoded batches pushes chunks and never touches their bytes, so count spans.
    let spans: u64 = batches.iter().map(Batch::items).sum();
    group.throughput(Throughput::Elements(spans));
    group.bench_function("append_10_encoded_100_span_batches", |b| {
        b.iter_batched(
            || batches.clone(),
            |batches| {
                let mut batch = Batch::empty(Signal::Traces);
                for other in batches {
                    batch.append(other);
                }
                batch
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn json_decode(c: &mut Criterion) {
    let request = fixtures::sidecar_traces(SPANS, 4);
    let body = json::encode_message(&request);
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_100_spans", |b| {
        b.iter(|| json::decode(Signal::Traces, black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, scan_vs_decode, append_encoded, json_decode);
criterion_main!(benches);
