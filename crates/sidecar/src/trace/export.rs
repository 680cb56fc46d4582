//! Spans leave the request path through a bounded buffer ([`staging`]): when it is full the span
//! is dropped and counted, so tracing never slows or fails a request (as linkerd2-proxy does).
//! The buffer cuts batches of at most `batch_max_spans` spans or `batch_timeout` old, whichever
//! comes first; one task per exporter, which comes for them on a timer while spans flow, sends
//! each as an `ExportTraceServiceRequest` under the sidecar's resource to the exporter (whose
//! own sending queue, timeout and retries apply). A batch the exporter refuses is dropped and
//! counted; the refusal is logged when it starts and when it ends, never per batch.

mod staging;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use otlp::proto::common::v1::InstrumentationScope;
use otlp::proto::resource::v1::Resource;
use otlp::{Batch, Signal};
use pipeline::{BuildError, Consumer};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) use self::staging::SpanField;
use self::staging::{EncodedSpans, Next, Refused, Staging};
use super::counters::{DropReason, TraceMetrics};
use super::exporter::BuiltExporter;
use super::protobuf::{field, length_delimited_len, put_length_delimited};

/// How spans are buffered and batched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchSettings {
    /// Spans the buffer between the proxy and the export task holds.
    pub(crate) buffer: usize,
    /// Most spans in one export request.
    pub(crate) max_spans: usize,
    /// Longest a span waits for its batch to fill.
    pub(crate) timeout: Duration,
}

/// The request path's end of the buffer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SpanSink {
    staging: Arc<Staging>,
    buffer_full: Counter,
    shutdown: Counter,
}

impl SpanSink {
    /// Hands `span` to the export task, or drops and counts it: never waits.
    pub(crate) fn submit(&self, span: &impl SpanField) {
        match self.staging.push(span) {
            Ok(()) => {}
            Err(Refused::Full) => {
                self.buffer_full.inc();
            }
            Err(Refused::Closed) => {
                self.shutdown.inc();
            }
        }
    }
}

/// The export side of one exporter: the buffer, the batching task, the exporter.
pub(crate) struct ExportQueue {
    name: String,
    staging: Arc<Staging>,
    output: Option<Output>,
    lifecycle: Box<dyn pipeline::Lifecycle>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    shutdown_drops: Counter,
    /// Spans handed to the exporter and not yet answered: lost if the task is aborted.
    in_flight: Arc<AtomicU64>,
}

/// Where the task sends batches.
struct Output {
    name: String,
    consumer: Arc<dyn Consumer>,
    /// `ResourceSpans.resource` and `ScopeSpans.scope`, encoded once.
    resource_field: Vec<u8>,
    scope_field: Vec<u8>,
    exported: Counter,
    refused: Counter,
    failing: bool,
    in_flight: Arc<AtomicU64>,
    /// Where sent batches' buffers go back to.
    staging: Weak<Staging>,
}

/// A buffer and its export queue for `exporter`, named `name` in logs.
pub(crate) fn export_queue(
    name: String,
    exporter: BuiltExporter,
    resource: Resource,
    settings: BatchSettings,
    metrics: &TraceMetrics,
) -> (SpanSink, ExportQueue) {
    let resource_field = first_field(&resource);
    let scope_field = first_field(&InstrumentationScope {
        name: "meshtrace-sidecar".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    });
    let head_room = header_room(&resource_field, &scope_field);
    let staging =
        Arc::new(Staging::new(settings.buffer, settings.max_spans, settings.timeout, head_room));
    let in_flight = Arc::new(AtomicU64::new(0));
    let sink = SpanSink {
        staging: staging.clone(),
        buffer_full: metrics.dropped_handle(DropReason::BufferFull),
        shutdown: metrics.dropped_handle(DropReason::Shutdown),
    };
    let output = Output {
        name: name.clone(),
        consumer: exporter.consumer,
        resource_field,
        scope_field,
        exported: metrics.exported_handle(),
        refused: metrics.dropped_handle(DropReason::ExportRefused),
        failing: false,
        in_flight: in_flight.clone(),
        staging: Arc::downgrade(&staging),
    };
    let queue = ExportQueue {
        name,
        staging,
        output: Some(output),
        lifecycle: exporter.lifecycle,
        stop: None,
        task: None,
        shutdown_drops: metrics.dropped_handle(DropReason::Shutdown),
        in_flight,
    };
    (sink, queue)
}

// === impl ExportQueue ===

impl ExportQueue {
    /// Starts the exporter, then the batching task. Call once, inside a Tokio runtime.
    pub(crate) async fn start(&mut self) -> Result<(), BuildError> {
        if self.output.is_none() {
            // Started already, or shut down.
            return Ok(());
        }
        self.lifecycle.start().await?;
        if let Some(output) = self.output.take() {
            let (stop, stopped) = oneshot::channel();
            self.stop = Some(stop);
            self.task = Some(tokio::spawn(run(self.staging.clone(), stopped, output)));
            tracing::info!(exporter = %self.name, "tracing export started");
        }
        Ok(())
    }

    /// Stops taking spans, sends what is buffered, then drains the exporter, all by
    /// `deadline`.
    pub(crate) async fn shutdown(&mut self, deadline: Instant) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            let deadline = tokio::time::Instant::from_std(deadline);
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(exporter = %self.name, %error, "tracing export task failed");
                }
                Err(_) => {
                    task.abort();
                    tracing::warn!(exporter = %self.name, "tracing export: spans left unsent at the shutdown deadline");
                }
            }
        }
        self.output = None;
        // Whatever the task did not send (it was never started, ran out of time or failed) is
        // lost: counted, and later spans are refused as `shutdown` too.
        let lost: usize = self.staging.close().iter().map(|batch| batch.count).sum();
        let unanswered = self.in_flight.swap(0, Ordering::Relaxed);
        self.shutdown_drops.inc_by(lost as u64 + unanswered);
        self.lifecycle.shutdown(deadline).await;
        tracing::info!(exporter = %self.name, "tracing export stopped");
    }
}

/// The batching task: sends batches as the buffer cuts them until stopped, then everything
/// left. While spans flow it comes back every tick; after a tick that found the buffer empty it
/// parks until a span wakes it.
async fn run(staging: Arc<Staging>, mut stop: oneshot::Receiver<()>, mut output: Output) {
    // Whether the last tick found the buffer empty: the next empty one parks.
    let mut idle = false;
    loop {
        let now = tokio::time::Instant::now();
        let due = match staging.next(now) {
            Next::Send(batch) => {
                idle = false;
                output.send(batch).await;
                continue;
            }
            Next::WaitUntil(at) => {
                idle = false;
                Some(at)
            }
            Next::Wait if !idle => {
                idle = true;
                Some(now + staging.tick())
            }
            Next::Wait => {
                if !staging.park() {
                    continue;
                }
                None
            }
        };
        let timer = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut stop => break,
            () = staging.changed() => {}
            () = timer => {}
        }
    }
    for batch in staging.close() {
        output.send(batch).await;
    }
}

// === impl Output ===

impl Output {
    /// Sends `spans` as one export request.
    async fn send(&mut self, spans: EncodedSpans) {
        if spans.is_empty() {
            return;
        }
        let count = spans.count as u64;
        let batch = Batch::from_trusted_wire(Signal::Traces, self.request(spans), count);
        self.in_flight.store(count, Ordering::Relaxed);
        let result = self.consumer.consume(batch).await;
        self.in_flight.store(0, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.exported.inc_by(count);
                if self.failing {
                    self.failing = false;
                    tracing::info!(exporter = %self.name, "tracing export accepted spans again");
                }
            }
            Err(error) => {
                self.refused.inc_by(count);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(exporter = %self.name, %error, "tracing export refused spans; dropping and counting them");
                }
            }
        }
    }

    /// The `ExportTraceServiceRequest` encoding of one `ResourceSpans` (the sidecar's resource)
    /// holding one `ScopeSpans` (its scope) around `spans`: the header is written into the
    /// batch's head room, so the spans (about 80 KB a batch) are not copied.
    fn request(&self, spans: EncodedSpans) -> Bytes {
        let scope_spans = self.scope_field.len() + spans.spans().len();
        let resource_spans = self.resource_field.len()
            + length_delimited_len(field::RESOURCE_SPANS_SCOPE_SPANS, scope_spans);
        let mut header = Vec::with_capacity(header_room(&self.resource_field, &self.scope_field));
        put_length_delimited(field::EXPORT_RESOURCE_SPANS, resource_spans, &mut header);
        header.extend_from_slice(&self.resource_field);
        put_length_delimited(field::RESOURCE_SPANS_SCOPE_SPANS, scope_spans, &mut header);
        header.extend_from_slice(&self.scope_field);
        let EncodedSpans { mut bytes, head_room, .. } = spans;
        match head_room.checked_sub(header.len()) {
            Some(start) => {
                bytes[start..head_room].copy_from_slice(&header);
                let buffer = BatchBuffer { bytes, home: self.staging.clone() };
                Bytes::from_owner(buffer).slice(start..)
            }
            // A batch staged without room for the header: the spans are copied after it.
            None => {
                header.extend_from_slice(&bytes[head_room..]);
                Bytes::from(header)
            }
        }
    }
}

/// A batch's memory while its export request is in use; back to the staging buffer when the
/// request's last reference is dropped (sent, or refused), wherever that is.
struct BatchBuffer {
    bytes: Vec<u8>,
    home: Weak<Staging>,
}

impl AsRef<[u8]> for BatchBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for BatchBuffer {
    fn drop(&mut self) {
        if let Some(staging) = self.home.upgrade() {
            staging.recycle(std::mem::take(&mut self.bytes));
        }
    }
}

/// The most an export request's header can take: the two fields and, for each of the two
/// messages around the spans, a one-byte key and a length of up to ten bytes.
fn header_room(resource_field: &[u8], scope_field: &[u8]) -> usize {
    resource_field.len() + scope_field.len() + 2 * (1 + 10)
}

/// A message as field 1 of its parent (`ResourceSpans.resource`, `ScopeSpans.scope`).
fn first_field(message: &impl prost::Message) -> Vec<u8> {
    let mut field = Vec::new();
    prost::encoding::message::encode(1, message, &mut field);
    field
}

#[cfg(test)]
mod tests;
