use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use otlp::{Batch, Signal, fixtures};
use pipeline::health::HealthReporter;
use pipeline::telemetry::{BatchMetrics, Telemetry};
use pipeline::{
    BuildContext, ComponentId, ConsumeError, Consumer, Factory, Kind, Lifecycle, RefusalKind,
};
use prost::Message;

use super::processor::{self, BatchLifecycle, BatchProcessor};
use super::*;

/// Records what it receives; refuses every attempt with `refusal` while set, never answers
/// while `stuck`.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Batch>>,
    refusal: Mutex<Option<ConsumeError>>,
    stuck: AtomicBool,
    attempts: AtomicU64,
}

impl Recorder {
    fn refuse(&self, error: Option<ConsumeError>) {
        *self.refusal.lock().unwrap() = error;
    }

    fn sizes(&self) -> Vec<u64> {
        self.batches.lock().unwrap().iter().map(Batch::items).collect()
    }

    fn items(&self) -> u64 {
        self.sizes().iter().sum()
    }

    /// Span ids of everything received, in order.
    fn span_ids(&self) -> Vec<Vec<u8>> {
        let batches = self.batches.lock().unwrap().clone();
        batches.into_iter().flat_map(span_ids).collect()
    }
}

impl Consumer for Recorder {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.stuck.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if let Some(error) = self.refusal.lock().unwrap().clone() {
                return Err(error);
            }
            self.batches.lock().unwrap().push(batch);
            Ok(())
        })
    }
}

fn span_ids(batch: Batch) -> Vec<Vec<u8>> {
    let request = batch.into_traces().unwrap();
    request
        .resource_spans
        .into_iter()
        .flat_map(|r| {
            r.scope_spans.into_iter().flat_map(|s| s.spans.into_iter().map(|s| s.span_id))
        })
        .collect()
}

/// A decoded batch of `spans` spans whose ids depend on `seed`.
fn traces(spans: usize, seed: u64) -> Batch {
    Batch::from_traces(fixtures::sidecar_traces_seeded(spans, 2, seed))
}

/// The same as [`traces`], in wire form.
fn encoded(spans: usize, seed: u64) -> Batch {
    let bytes = fixtures::sidecar_traces_seeded(spans, 2, seed).encode_to_vec();
    Batch::from_wire(Signal::Traces, bytes.into()).unwrap()
}

fn settings(timeout: Duration, send_batch_size: u64, send_batch_max_size: u64) -> Settings {
    Settings {
        timeout,
        send_batch_size,
        send_batch_max_size,
        buffer_limit: buffer_limit(send_batch_size, send_batch_max_size),
    }
}

/// A shutdown deadline `after` from now on tokio's (possibly paused) clock.
fn deadline(after: Duration) -> std::time::Instant {
    (tokio::time::Instant::now() + after).into_std()
}

/// Lets every task run as far as it can, moving the paused clock by a millisecond.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

struct Harness {
    next: Arc<Recorder>,
    input: Arc<BatchProcessor>,
    lifecycle: BatchLifecycle,
    telemetry: Arc<Telemetry>,
    metrics: BatchMetrics,
}

impl Harness {
    async fn start(settings: Settings) -> Harness {
        let next = Arc::new(Recorder::default());
        let telemetry = Arc::new(Telemetry::new());
        let id = ComponentId::new("batch");
        let metrics = telemetry.batch_processor(&id, Signal::Traces);
        let (input, mut lifecycle) = processor::new(id, settings, next.clone(), metrics.clone());
        lifecycle.start().await.unwrap();
        Harness { next, input, lifecycle, telemetry, metrics }
    }

    async fn push(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.input.consume(batch).await
    }
}

#[tokio::test(start_paused = true)]
async fn the_size_trigger_sends_send_batch_size_batches() {
    let h = Harness::start(settings(Duration::from_secs(10), 10, 0)).await;
    for seed in 0..6 {
        h.push(encoded(5, seed)).await.unwrap();
    }
    h.push(encoded(2, 6)).await.unwrap();
    settle().await;
    assert_eq!(h.next.sizes(), [10, 10, 10]);
    assert_eq!(h.metrics.size_trigger.get(), 3);
    assert_eq!(h.metrics.timeout_trigger.get(), 0);
    let text = h.telemetry.encode();
    assert!(
        text.contains("otelcol_processor_batch_batch_send_size_count{processor=\"batch\"} 3"),
        "{text}"
    );

    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.next.sizes(), [10, 10, 10, 2], "the remainder waits for the timer");
    assert_eq!(h.metrics.timeout_trigger.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn with_max_size_equal_to_size_batches_come_out_exactly_full() {
    // Requests of 4 do not add up to 10: the collector sends 10 and keeps the 2 left over
    // pending, and so do we.
    let h = Harness::start(settings(Duration::from_secs(10), 10, 10)).await;
    for seed in 0..10 {
        h.push(traces(4, seed)).await.unwrap();
    }
    settle().await;
    assert_eq!(h.next.sizes(), [10, 10, 10, 10]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.next.items(), 40);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_sends_a_partial_batch() {
    let h = Harness::start(settings(Duration::from_millis(200), 100, 0)).await;
    h.push(traces(3, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(h.next.sizes().is_empty(), "nothing is sent before the timeout");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.next.sizes(), [3]);
    assert_eq!(h.metrics.timeout_trigger.get(), 1);
    assert_eq!(h.metrics.size_trigger.get(), 0);

    // The timer keeps running: later data waits at most one more period.
    h.push(traces(2, 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(h.next.sizes(), [3, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_sends_at_once() {
    let h = Harness::start(settings(Duration::ZERO, 100, 0)).await;
    h.push(traces(3, 1)).await.unwrap();
    settle().await;
    assert_eq!(h.next.sizes(), [3]);
}

#[tokio::test(start_paused = true)]
async fn batches_above_the_max_size_are_split_in_order() {
    let h = Harness::start(settings(Duration::from_millis(200), 20, 8)).await;
    let inputs = [encoded(7, 1), traces(13, 2), encoded(25, 3)];
    let expected: Vec<Vec<u8>> = inputs.iter().cloned().flat_map(span_ids).collect();
    for input in inputs {
        h.push(input).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sizes = h.next.sizes();
    assert!(sizes.iter().all(|size| *size <= 8 && *size > 0), "{sizes:?}");
    assert_eq!(h.next.items(), 45);
    assert_eq!(h.next.span_ids(), expected, "every span exactly once, in order");
}

#[tokio::test(start_paused = true)]
async fn encoded_inputs_stay_encoded() {
    let h = Harness::start(settings(Duration::from_millis(200), 10, 0)).await;
    for seed in 0..5 {
        h.push(encoded(4, seed)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let batches = h.next.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().map(Batch::items).collect::<Vec<_>>(), [12, 8]);
    assert!(batches.iter().all(Batch::is_encoded));
}

#[tokio::test(start_paused = true)]
async fn a_refusing_exporter_fills_the_buffer_then_everything_is_delivered_once() {
    let mut settings = settings(Duration::from_millis(50), 10, 0);
    settings.buffer_limit = 30;
    let h = Harness::start(settings).await;
    h.next.refuse(Some(ConsumeError::exhausted("queue is full", Duration::from_secs(1))));

    let mut accepted = Vec::new();
    let mut refused = None;
    for seed in 0..10 {
        let batch = encoded(10, seed);
        let ids = span_ids(batch.clone());
        match h.push(batch).await {
            Ok(()) => accepted.extend(ids),
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let Some(ConsumeError::Retryable { kind, .. }) = refused else {
        panic!("a full buffer refuses retryably, got {refused:?}");
    };
    assert_eq!(kind, RefusalKind::ResourceExhausted);
    assert_eq!(accepted.len(), 30, "the buffer holds its limit");
    assert!(h.next.attempts.load(Ordering::SeqCst) > 1, "the flusher keeps retrying");
    assert!(h.next.sizes().is_empty());

    h.next.refuse(None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.next.span_ids(), accepted, "everything accepted, exactly once, in order");
    assert_eq!(h.metrics.dropped.get(), 0);
    h.push(encoded(10, 99)).await.expect("room again once the exporter recovered");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_refusal_drops_and_counts_the_batch() {
    let h = Harness::start(settings(Duration::from_millis(50), 10, 0)).await;
    h.next.refuse(Some(ConsumeError::Permanent { message: "malformed".into(), rejected: 10 }));
    h.push(traces(10, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.metrics.dropped.get(), 10);
    assert_eq!(h.next.attempts.load(Ordering::SeqCst), 1, "a permanent error is not retried");
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_pending_data_and_then_refuses() {
    let mut h = Harness::start(settings(Duration::from_secs(60), 100, 0)).await;
    h.push(traces(7, 1)).await.unwrap();
    h.push(encoded(5, 2)).await.unwrap();
    // The exporter refuses for a while during shutdown: the flush retries until it is taken.
    h.next.refuse(Some(ConsumeError::unavailable("busy")));
    let next = h.next.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        next.refuse(None);
    });
    h.lifecycle.shutdown(deadline(Duration::from_secs(5))).await;
    assert_eq!(h.next.items(), 12);
    assert_eq!(h.metrics.dropped.get(), 0);

    let error = h.push(traces(1, 3)).await.unwrap_err();
    assert!(
        matches!(error, ConsumeError::Retryable { kind: RefusalKind::Unavailable, .. }),
        "{error:?}"
    );
    h.lifecycle.shutdown(deadline(Duration::from_secs(5))).await;
    assert_eq!(h.next.items(), 12, "a second shutdown does nothing");
}

#[tokio::test(start_paused = true)]
async fn shutdown_counts_what_a_stuck_exporter_never_took_as_dropped() {
    let mut h = Harness::start(settings(Duration::from_millis(50), 10, 0)).await;
    h.next.stuck.store(true, Ordering::SeqCst);
    h.push(traces(10, 1)).await.unwrap();
    settle().await;
    h.push(traces(5, 2)).await.unwrap();
    let started = tokio::time::Instant::now();
    h.lifecycle.shutdown(deadline(Duration::from_secs(2))).await;
    assert!(started.elapsed() >= Duration::from_secs(2), "the flush is given until the deadline");
    assert_eq!(h.metrics.dropped.get(), 15, "the batch in flight and the pending one");
    assert!(h.next.sizes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_counts_what_an_always_refusing_exporter_never_took_as_dropped() {
    let mut h = Harness::start(settings(Duration::from_millis(50), 10, 0)).await;
    h.next.refuse(Some(ConsumeError::unavailable("down")));
    for seed in 0..3 {
        h.push(traces(10, seed)).await.unwrap();
    }
    h.lifecycle.shutdown(deadline(Duration::from_secs(3))).await;
    assert_eq!(h.metrics.dropped.get(), 30);
    h.lifecycle.shutdown(deadline(Duration::from_secs(3))).await;
    assert_eq!(h.metrics.dropped.get(), 30, "leftovers are counted once");
}

// === config ===

fn yaml(text: &str) -> config::Value {
    config::parse_yaml(text, "test.yaml").unwrap()
}

fn configure(text: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
    BatchProcessorFactory.configure(&yaml(text), "processors.batch")
}

fn messages(text: &str) -> Vec<String> {
    match configure(text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn defaults_and_collector_settings_are_accepted() {
    assert!(BatchProcessorFactory.configure(&config::Value::Null, "processors.batch").is_ok());
    let config = BatchConfig::default();
    assert_eq!(config.timeout.0, Duration::from_millis(200));
    assert_eq!(config.send_batch_size, 8192);
    assert_eq!(config.send_batch_max_size, 0);
    assert!(
        configure(
            "timeout: 1s\nsend_batch_size: 1024\nsend_batch_max_size: 2048\n\
             metadata_cardinality_limit: 1000\n"
        )
        .is_ok()
    );
    assert!(configure("send_batch_size: 0\n").is_ok());
    assert!(configure("send_batch_size: 100\nsend_batch_max_size: 100\n").is_ok());
}

#[test]
fn a_max_size_below_the_size_is_an_error() {
    assert_eq!(
        messages("send_batch_size: 100\nsend_batch_max_size: 50\n"),
        ["processors.batch.send_batch_max_size: must be greater than or equal to send_batch_size"]
    );
}

#[test]
fn metadata_keys_are_rejected_and_every_error_is_reported() {
    let found =
        messages("send_batch_size: 100\nsend_batch_max_size: 50\nmetadata_keys: [tenant]\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[1].starts_with("processors.batch.metadata_keys: not supported"), "{found:?}");
}

#[test]
fn unknown_keys_are_errors() {
    let found = messages("send_batch_sise: 100\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("send_batch_sise"), "{found:?}");
}

#[test]
fn the_limit_is_ten_batches_and_at_least_100k() {
    assert_eq!(buffer_limit(8192, 0), 100_000);
    assert_eq!(buffer_limit(20_000, 0), 200_000);
    assert_eq!(buffer_limit(100, 30_000), 300_000);
    assert_eq!(buffer_limit(u64::MAX, 0), u64::MAX);
}

#[tokio::test(start_paused = true)]
async fn the_factory_builds_a_working_processor() {
    let configured = configure("timeout: 1s\nsend_batch_size: 4\n").unwrap();
    let next = Arc::new(Recorder::default());
    let telemetry = Arc::new(Telemetry::new());
    let built = configured
        .build(BuildContext {
            id: ComponentId::new("batch"),
            kind: Kind::Processor,
            signal: Some(Signal::Logs),
            next: Some(next.clone()),
            outputs: Vec::new(),
            telemetry: telemetry.clone(),
            health: HealthReporter::new(),
        })
        .unwrap();
    let consumer = built.consumer.unwrap();
    let mut lifecycle = built.lifecycle;
    lifecycle.start().await.unwrap();
    for _ in 0..3 {
        consumer.consume(Batch::from_logs(fixtures::sidecar_logs(2, 1))).await.unwrap();
    }
    settle().await;
    assert_eq!(next.sizes(), [4]);
    lifecycle.shutdown(deadline(Duration::from_secs(1))).await;
    assert_eq!(next.sizes(), [4, 2]);
    assert!(telemetry.encode().contains("otelcol_processor_batch_batch_size_trigger_send_total"));
}
