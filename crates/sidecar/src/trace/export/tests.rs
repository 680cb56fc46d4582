use std::sync::Mutex;

use futures_util::future::BoxFuture;
use otlp::proto::trace::v1::Span;
use pipeline::component::NoLifecycle;
use pipeline::{ConsumeError, Consumer};

use otlp::ExportTraceServiceRequest;

use super::*;

/// Records batches; refuses them while `refuse` is set.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<ExportTraceServiceRequest>>,
    refuse: Mutex<bool>,
}

impl Recorder {
    fn sizes(&self) -> Vec<usize> {
        let batches = self.batches.lock().unwrap();
        batches.iter().map(|b| b.resource_spans[0].scope_spans[0].spans.len()).collect()
    }
}

impl Consumer for Recorder {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            if *self.refuse.lock().unwrap() {
                return Err(ConsumeError::exhausted("queue full", Duration::from_secs(1)));
            }
            self.batches.lock().unwrap().push(batch.into_traces().unwrap());
            Ok(())
        })
    }
}

fn queue(recorder: &Arc<Recorder>, buffer: usize) -> (SpanSink, ExportQueue, TraceMetrics) {
    let metrics = TraceMetrics::default();
    let exporter = BuiltExporter { consumer: recorder.clone(), lifecycle: Box::new(NoLifecycle) };
    let settings = BatchSettings { buffer, max_spans: 512, timeout: Duration::from_secs(1) };
    let resource = Resource {
        attributes: vec![otlp::proto::common::v1::KeyValue {
            key: "service.name".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (sink, queue) = export_queue("test".into(), exporter, resource, settings, &metrics);
    (sink, queue, metrics)
}

fn span(i: u64) -> Span {
    Span { span_id: i.to_be_bytes().to_vec(), name: format!("span {i}"), ..Default::default() }
}

/// Lets the export task run until it waits again.
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn batches_are_sent_at_512_spans_or_after_one_second() {
    let recorder = Arc::new(Recorder::default());
    let (sink, mut queue, metrics) = queue(&recorder, 4096);
    queue.start().await.unwrap();
    for i in 0..1100 {
        sink.submit(&span(i));
    }
    tokio::time::advance(Duration::from_millis(100)).await;
    settle().await;
    assert_eq!(recorder.sizes(), vec![512, 512], "full batches go at the next tick");
    tokio::time::advance(Duration::from_millis(899)).await;
    settle().await;
    assert_eq!(recorder.sizes().len(), 2, "the rest waits up to a second");
    tokio::time::advance(Duration::from_millis(2)).await;
    settle().await;
    assert_eq!(recorder.sizes(), vec![512, 512, 76]);
    assert_eq!(metrics.spans_exported(), 1100);
    let last = recorder.batches.lock().unwrap()[2].clone();
    let resource_spans = &last.resource_spans;
    assert_eq!(resource_spans.len(), 1);
    let resource = resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(resource.attributes[0].key, "service.name");
    let scope_spans = &resource_spans[0].scope_spans[0];
    assert_eq!(scope_spans.scope.as_ref().unwrap().name, "meshtrace-sidecar");
    let names: Vec<&str> = scope_spans.spans.iter().map(|span| span.name.as_str()).collect();
    let expected: Vec<String> = (1024..1100).map(|i| format!("span {i}")).collect();
    assert_eq!(names, expected, "the spans, in order, intact");
    queue.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_what_is_buffered_and_later_spans_are_counted() {
    let recorder = Arc::new(Recorder::default());
    let (sink, mut queue, metrics) = queue(&recorder, 4096);
    queue.start().await.unwrap();
    for i in 0..10 {
        sink.submit(&span(i));
    }
    queue.shutdown(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(recorder.sizes(), vec![10]);
    sink.submit(&span(99));
    assert_eq!(metrics.spans_dropped(DropReason::Shutdown), 1);
}

#[tokio::test]
async fn a_full_buffer_drops_and_counts_without_waiting() {
    let recorder = Arc::new(Recorder::default());
    // Not started: nothing drains the buffer, so a submit that waited for room would never
    // return.
    let (sink, mut queue, metrics) = queue(&recorder, 4);
    for i in 0..10 {
        sink.submit(&span(i));
    }
    assert_eq!(metrics.spans_dropped(DropReason::BufferFull), 6);
    queue.shutdown(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(metrics.spans_dropped(DropReason::Shutdown), 4, "buffered, never sent");
    assert!(recorder.sizes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn refused_batches_are_dropped_and_counted() {
    let recorder = Arc::new(Recorder::default());
    *recorder.refuse.lock().unwrap() = true;
    let (sink, mut queue, metrics) = queue(&recorder, 4096);
    queue.start().await.unwrap();
    for i in 0..600 {
        sink.submit(&span(i));
    }
    settle().await;
    assert_eq!(metrics.spans_dropped(DropReason::ExportRefused), 512);
    *recorder.refuse.lock().unwrap() = false;
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(recorder.sizes(), vec![88]);
    assert_eq!(metrics.spans_exported(), 88);
    queue.shutdown(Instant::now() + Duration::from_secs(1)).await;
}

/// Takes batches and never answers.
struct Stuck;

impl Consumer for Stuck {
    fn consume(&self, _batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn spans_stuck_at_the_deadline_are_counted_and_later_ones_refused() {
    let metrics = TraceMetrics::default();
    let exporter = BuiltExporter { consumer: Arc::new(Stuck), lifecycle: Box::new(NoLifecycle) };
    let settings = BatchSettings { buffer: 4096, max_spans: 512, timeout: Duration::from_secs(60) };
    let (sink, mut queue) =
        export_queue("test".into(), exporter, Resource::default(), settings, &metrics);
    queue.start().await.unwrap();
    for i in 0..600 {
        sink.submit(&span(i));
    }
    settle().await;
    queue.shutdown(Instant::now() + Duration::from_millis(100)).await;
    assert_eq!(
        metrics.spans_dropped(DropReason::Shutdown),
        600,
        "512 handed to the exporter and never answered, 88 still buffered"
    );
    sink.submit(&span(600));
    assert_eq!(metrics.spans_dropped(DropReason::Shutdown), 601);
    assert_eq!(metrics.spans_dropped(DropReason::BufferFull), 0);
}

#[test]
fn a_request_made_in_the_head_room_is_the_request_prost_writes() {
    use prost::Message;
    let recorder = Arc::new(Recorder::default());
    let (_sink, mut queue, _metrics) = queue(&recorder, 16);
    let Some(output) = queue.output.take() else { panic!("the queue has its output") };
    let spans = [span(1), Span { name: "x".repeat(300), ..span(2) }];
    let staged = |head_room: usize| {
        let mut encoded = EncodedSpans { bytes: vec![0xAA; head_room], head_room, count: 0 };
        for span in &spans {
            staging::SpanField::encode_field(span, &mut encoded.bytes);
            encoded.count += 1;
        }
        encoded
    };
    let room = header_room(&output.resource_field, &output.scope_field);
    let in_room = output.request(staged(room));
    // Without room the header goes first and the spans are copied after it.
    let copied = output.request(staged(0));
    assert_eq!(in_room, copied);
    let decoded = ExportTraceServiceRequest::decode(in_room.clone()).unwrap();
    assert_eq!(decoded.resource_spans[0].scope_spans[0].spans, spans);
    assert_eq!(decoded.encode_to_vec(), in_room.to_vec(), "byte for byte what prost writes");
}

#[test]
fn a_sent_requests_memory_goes_back_to_the_buffer() {
    let recorder = Arc::new(Recorder::default());
    let (_sink, mut queue, _metrics) = queue(&recorder, 16);
    let Some(output) = queue.output.take() else { panic!("the queue has its output") };
    let room = header_room(&output.resource_field, &output.scope_field);
    let mut encoded = EncodedSpans { bytes: vec![0; room], head_room: room, count: 0 };
    staging::SpanField::encode_field(&span(1), &mut encoded.bytes);
    encoded.count = 1;
    let memory = encoded.bytes.as_ptr();

    let request = output.request(encoded);
    let held = request.clone();
    drop(request);
    assert_eq!(queue.staging.spare(), None, "still referenced");
    drop(held);
    assert_eq!(queue.staging.spare(), Some(memory), "back once the last reference is gone");
}
