use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::*;
use crate::component::{ComponentId, Kind};
use crate::consumer::ConsumeError;
use crate::health::HealthReporter;
use crate::telemetry::Telemetry;

/// A destination that fails its first `failures` attempts with `error`, or blocks forever while
/// `stalled`.
struct Destination {
    failures: AtomicU32,
    error: SendError,
    stalled: Mutex<bool>,
    received: Mutex<Vec<u64>>,
    attempts: AtomicU32,
}

impl Destination {
    fn new(failures: u32, error: SendError) -> Arc<Destination> {
        Arc::new(Destination {
            failures: AtomicU32::new(failures),
            error,
            stalled: Mutex::new(false),
            received: Mutex::new(Vec::new()),
            attempts: AtomicU32::new(0),
        })
    }

    fn delivered(&self) -> u64 {
        self.received.lock().unwrap().iter().sum()
    }
}

impl Sender for Destination {
    fn send<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if *self.stalled.lock().unwrap() {
                std::future::pending::<()>().await;
            }
            let remaining = self.failures.load(Ordering::SeqCst);
            if remaining > 0 {
                self.failures.store(remaining - 1, Ordering::SeqCst);
                return Err(self.error.clone());
            }
            self.received.lock().unwrap().push(batch.items());
            Ok(())
        })
    }
}

fn context(telemetry: &Arc<Telemetry>) -> BuildContext {
    BuildContext {
        id: ComponentId::new("otlp"),
        kind: Kind::Exporter,
        signal: Some(Signal::Traces),
        next: None,
        outputs: Vec::new(),
        telemetry: telemetry.clone(),
        health: HealthReporter::new(),
    }
}

fn settings(queue_size: u64, max_elapsed: Duration) -> HelperSettings {
    let retry = RetryConfig {
        initial_interval: config::Duration(Duration::from_millis(100)),
        max_interval: config::Duration(Duration::from_secs(1)),
        max_elapsed_time: config::Duration(max_elapsed),
        ..RetryConfig::default()
    };
    let queue = QueueConfig { queue_size, num_consumers: 1, ..QueueConfig::default() };
    HelperSettings { timeout: Duration::from_secs(5), retry, queue }
}

fn spans(count: usize) -> Batch {
    Batch::from_traces(otlp::fixtures::sidecar_traces(count, 1))
}

fn metric(telemetry: &Telemetry, name: &str) -> u64 {
    let text = telemetry.encode();
    let line = text.lines().find(|line| line.starts_with(name)).unwrap_or("");
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn eventually(mut condition: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition never held");
}

#[tokio::test(start_paused = true)]
async fn queued_data_waits_for_a_down_destination_and_arrives_when_it_is_back() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(5, SendError::retryable("connection refused"));
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(10, Duration::from_secs(60)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    built.consumer.as_ref().unwrap().consume(spans(4)).await.unwrap();
    eventually(|| destination.delivered() == 4).await;
    assert_eq!(destination.attempts.load(Ordering::SeqCst), 6);
    assert_eq!(metric(&telemetry, "otelcol_exporter_sent_spans_total"), 4);
    assert_eq!(metric(&telemetry, "otelcol_exporter_send_failed_spans_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_with_a_retryable_error_and_counts_it() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(0, SendError::retryable("unused"));
    *destination.stalled.lock().unwrap() = true;
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(2, Duration::from_secs(60)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    let consumer = built.consumer.clone().unwrap();
    // One batch is taken by the stalled worker, two fill the queue.
    consumer.consume(spans(1)).await.unwrap();
    eventually(|| destination.attempts.load(Ordering::SeqCst) == 1).await;
    consumer.consume(spans(1)).await.unwrap();
    consumer.consume(spans(1)).await.unwrap();
    let refusal = consumer.consume(spans(3)).await.unwrap_err();
    assert!(matches!(
        refusal,
        ConsumeError::Retryable { kind: crate::RefusalKind::ResourceExhausted, .. }
    ));
    assert_eq!(metric(&telemetry, "otelcol_exporter_enqueue_failed_spans_total"), 3);
    assert_eq!(metric(&telemetry, "otelcol_exporter_queue_size"), 2);
    assert_eq!(metric(&telemetry, "otelcol_exporter_queue_capacity"), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_max_elapsed_time_and_the_loss_is_counted() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(u32::MAX, SendError::retryable("down"));
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(10, Duration::from_secs(3)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    built.consumer.as_ref().unwrap().consume(spans(5)).await.unwrap();
    eventually(|| metric(&telemetry, "otelcol_exporter_send_failed_spans_total") == 5).await;
    assert_eq!(destination.delivered(), 0);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(1, SendError::permanent("invalid argument"));
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(10, Duration::from_secs(60)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    built.consumer.as_ref().unwrap().consume(spans(2)).await.unwrap();
    eventually(|| metric(&telemetry, "otelcol_exporter_send_failed_spans_total") == 2).await;
    assert_eq!(destination.attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_server_retry_hint_is_honoured() {
    let telemetry = Arc::new(Telemetry::new());
    let hint = SendError::Retryable {
        message: "throttled".into(),
        retry_after: Some(Duration::from_secs(20)),
    };
    let destination = Destination::new(1, hint);
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(10, Duration::from_secs(60)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    let started = tokio::time::Instant::now();
    built.consumer.as_ref().unwrap().consume(spans(1)).await.unwrap();
    eventually(|| destination.delivered() == 1).await;
    assert!(started.elapsed() >= Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_what_is_queued_once_each_then_refuses_new_data() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(1, SendError::retryable("flaky"));
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(10, Duration::from_secs(60)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    let consumer = built.consumer.clone().unwrap();
    for _ in 0..3 {
        consumer.consume(spans(2)).await.unwrap();
    }
    built.lifecycle.shutdown(Instant::now() + Duration::from_secs(30)).await;
    // As the collector drains its queue with its retry sender already stopped: the batch whose
    // one attempt failed is counted as lost, not retried; the others arrive.
    assert_eq!(destination.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(destination.delivered(), 4);
    assert_eq!(metric(&telemetry, "otelcol_exporter_send_failed_spans_total"), 2);
    let refusal = consumer.consume(spans(1)).await.unwrap_err();
    assert!(matches!(
        refusal,
        ConsumeError::Retryable { kind: crate::RefusalKind::Unavailable, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_destination_that_is_down_does_not_hold_up_shutdown_until_the_deadline() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(u32::MAX, SendError::retryable("connection refused"));
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(10, Duration::from_secs(600)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    let consumer = built.consumer.clone().unwrap();
    for _ in 0..3 {
        consumer.consume(spans(2)).await.unwrap();
    }
    // The worker has failed its first batch and waits to retry it.
    eventually(|| destination.attempts.load(Ordering::SeqCst) >= 2).await;
    let attempts_before = destination.attempts.load(Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let deadline = Duration::from_secs(30);
    built.lifecycle.shutdown(Instant::now() + deadline).await;
    // Time is paused: had shutdown waited for the deadline, the clock would have jumped to it.
    assert!(started.elapsed() < deadline, "shutdown took {:?}", started.elapsed());
    // The waiting retry gave up at once; the two queued batches had one attempt each.
    assert_eq!(destination.attempts.load(Ordering::SeqCst), attempts_before + 2);
    assert_eq!(metric(&telemetry, "otelcol_exporter_send_failed_spans_total"), 6);
    assert_eq!(destination.delivered(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_a_caller_waiting_to_retry_learns_of_the_loss_at_shutdown() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(u32::MAX, SendError::retryable("connection refused"));
    let mut settings = settings(10, Duration::from_secs(600));
    settings.queue.enabled = false;
    let mut built = build(&context(&telemetry), destination.clone(), &settings).unwrap();
    let consumer = built.consumer.clone().unwrap();
    let waiting = tokio::spawn(async move { consumer.consume(spans(2)).await });
    eventually(|| destination.attempts.load(Ordering::SeqCst) >= 2).await;
    let attempts_before = destination.attempts.load(Ordering::SeqCst);
    built.lifecycle.shutdown(Instant::now() + Duration::from_secs(30)).await;
    let refusal = waiting.await.unwrap().unwrap_err();
    // It gave up from its backoff, without another attempt.
    assert_eq!(destination.attempts.load(Ordering::SeqCst), attempts_before);
    assert!(matches!(
        refusal,
        ConsumeError::Retryable { kind: crate::RefusalKind::Unavailable, .. }
    ));
    assert_eq!(metric(&telemetry, "otelcol_exporter_send_failed_spans_total"), 2);
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_the_caller_waits_and_learns_the_outcome() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(1, SendError::permanent("bad data"));
    let mut settings = settings(10, Duration::from_secs(60));
    settings.queue.enabled = false;
    let built = build(&context(&telemetry), destination.clone(), &settings).unwrap();
    let consumer = built.consumer.unwrap();
    let refusal = consumer.consume(spans(2)).await.unwrap_err();
    assert!(matches!(refusal, ConsumeError::Permanent { rejected: 2, .. }));
    consumer.consume(spans(3)).await.unwrap();
    assert_eq!(destination.delivered(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_bytes_sizer_bounds_the_queue_by_encoded_size() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(0, SendError::retryable("unused"));
    *destination.stalled.lock().unwrap() = true;
    let one = spans(10);
    let size = one.encoded_len() as u64;
    let mut settings = settings(size * 2 + size / 2, Duration::from_secs(60));
    settings.queue.sizer = Sizer::Bytes;
    let mut built = build(&context(&telemetry), destination.clone(), &settings).unwrap();
    built.lifecycle.start().await.unwrap();
    let consumer = built.consumer.clone().unwrap();
    // The stalled worker takes the first batch; two more fit in two and a half batches of bytes.
    consumer.consume(spans(10)).await.unwrap();
    eventually(|| destination.attempts.load(Ordering::SeqCst) == 1).await;
    consumer.consume(spans(10)).await.unwrap();
    consumer.consume(spans(10)).await.unwrap();
    let refusal = consumer.consume(spans(10)).await.unwrap_err();
    assert!(refusal.is_retryable());
    assert_eq!(metric(&telemetry, "otelcol_exporter_queue_size"), size * 2);
    assert_eq!(metric(&telemetry, "otelcol_exporter_enqueue_failed_spans_total"), 10);
}

#[tokio::test(start_paused = true)]
async fn an_empty_queue_takes_a_batch_larger_than_its_capacity() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Destination::new(0, SendError::retryable("unused"));
    let mut settings = settings(100, Duration::from_secs(60));
    settings.queue.sizer = Sizer::Items;
    let mut built = build(&context(&telemetry), destination.clone(), &settings).unwrap();
    built.lifecycle.start().await.unwrap();
    built.consumer.as_ref().unwrap().consume(spans(250)).await.unwrap();
    eventually(|| destination.delivered() == 250).await;
}

#[test]
fn sizer_is_read_from_yaml_and_unknown_sizers_are_rejected() {
    let value = config::parse_yaml("sizer: bytes\nqueue_size: 1024\n", "test").unwrap();
    let queue: QueueConfig = config::from_value(&value, "exporters.otlp.sending_queue").unwrap();
    assert_eq!(queue.sizer, Sizer::Bytes);
    assert_eq!(queue.queue_size, 1024);
    let value = config::parse_yaml("sizer: kilos\n", "test").unwrap();
    let errors =
        config::from_value::<QueueConfig>(&value, "exporters.otlp.sending_queue").unwrap_err();
    assert!(errors.to_string().starts_with("exporters.otlp.sending_queue.sizer:"), "{errors}");
}

/// Fails once without a hint (so time passes before the next check), then answers every
/// attempt with the largest retry delay a server can send.
struct AbsurdHint {
    attempts: AtomicU32,
}

impl Sender for AbsurdHint {
    fn send<'a>(&'a self, _batch: &'a Batch) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let retry_after =
                (self.attempts.fetch_add(1, Ordering::SeqCst) > 0).then_some(Duration::MAX);
            Err(SendError::Retryable { message: "come back much later".into(), retry_after })
        })
    }
}

#[tokio::test(start_paused = true)]
async fn an_absurd_server_retry_hint_gives_up_instead_of_overflowing() {
    let telemetry = Arc::new(Telemetry::new());
    let destination = Arc::new(AbsurdHint { attempts: AtomicU32::new(0) });
    let mut built =
        build(&context(&telemetry), destination.clone(), &settings(10, Duration::from_secs(60)))
            .unwrap();
    built.lifecycle.start().await.unwrap();
    built.consumer.as_ref().unwrap().consume(spans(3)).await.unwrap();
    eventually(|| metric(&telemetry, "otelcol_exporter_send_failed_spans_total") == 3).await;
    assert_eq!(destination.attempts.load(Ordering::SeqCst), 2);
}
