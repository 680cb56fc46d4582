//! Spans leave the request path through a bounded channel filled with `try_send`: when it is
//! full the span is dropped and counted, so tracing never slows or fails a request (as
//! linkerd2-proxy does). One task per exporter drains it into batches of at most
//! `batch_max_spans` spans or `batch_timeout` old, whichever comes first, each an
//! `ExportTraceServiceRequest` under the sidecar's resource, handed to the exporter (whose own
//! sending queue, timeout and retries apply). A batch the exporter refuses is dropped and
//! counted; the refusal is logged when it starts and when it ends, never per batch.

use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otlp::proto::common::v1::InstrumentationScope;
use otlp::proto::resource::v1::Resource;
use otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp::{Batch, ExportTraceServiceRequest};
use pipeline::{BuildError, Consumer};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::counters::{DropReason, TraceMetrics};
use super::exporter::BuiltExporter;

/// How spans are buffered and batched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchSettings {
    /// Spans the channel between the proxy and the export task holds.
    pub(crate) buffer: usize,
    /// Most spans in one export request.
    pub(crate) max_spans: usize,
    /// Longest a span waits for its batch to fill.
    pub(crate) timeout: Duration,
}

/// The request path's end of the channel. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SpanSink {
    sender: mpsc::Sender<Span>,
    buffer_full: Counter,
    shutdown: Counter,
}

impl SpanSink {
    /// Hands `span` to the export task, or drops and counts it: never waits.
    pub(crate) fn submit(&self, span: Span) {
        match self.sender.try_send(span) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.buffer_full.inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shutdown.inc();
            }
        }
    }
}

/// The export side of one exporter: the channel's receiver, the batching task, the exporter.
pub(crate) struct ExportQueue {
    name: String,
    receiver: Option<mpsc::Receiver<Span>>,
    output: Option<Output>,
    lifecycle: Box<dyn pipeline::Lifecycle>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    shutdown_drops: Counter,
}

/// Where the task sends batches.
struct Output {
    name: String,
    consumer: Arc<dyn Consumer>,
    resource: Resource,
    scope: InstrumentationScope,
    max_spans: usize,
    timeout: Duration,
    exported: Counter,
    refused: Counter,
    failing: bool,
}

/// A channel and its export queue for `exporter`, named `name` in logs.
pub(crate) fn export_queue(
    name: String,
    exporter: BuiltExporter,
    resource: Resource,
    settings: BatchSettings,
    metrics: &TraceMetrics,
) -> (SpanSink, ExportQueue) {
    let (sender, receiver) = mpsc::channel(settings.buffer.max(1));
    let sink = SpanSink {
        sender,
        buffer_full: metrics.dropped_handle(DropReason::BufferFull),
        shutdown: metrics.dropped_handle(DropReason::Shutdown),
    };
    let output = Output {
        name: name.clone(),
        consumer: exporter.consumer,
        resource,
        scope: InstrumentationScope {
            name: "meshtrace-sidecar".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        },
        max_spans: settings.max_spans.max(1),
        timeout: settings.timeout,
        exported: metrics.exported_handle(),
        refused: metrics.dropped_handle(DropReason::ExportRefused),
        failing: false,
    };
    let queue = ExportQueue {
        name,
        receiver: Some(receiver),
        output: Some(output),
        lifecycle: exporter.lifecycle,
        stop: None,
        task: None,
        shutdown_drops: metrics.dropped_handle(DropReason::Shutdown),
    };
    (sink, queue)
}

// === impl ExportQueue ===

impl ExportQueue {
    /// Starts the exporter, then the batching task. Call once, inside a Tokio runtime.
    pub(crate) async fn start(&mut self) -> Result<(), BuildError> {
        if self.receiver.is_none() {
            // Started already, or shut down.
            return Ok(());
        }
        self.lifecycle.start().await?;
        if let (Some(receiver), Some(output)) = (self.receiver.take(), self.output.take()) {
            let (stop, stopped) = oneshot::channel();
            self.stop = Some(stop);
            self.task = Some(tokio::spawn(run(receiver, stopped, output)));
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
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                tracing::warn!(exporter = %self.name, "tracing export: spans left unsent at the shutdown deadline");
            }
        }
        if let Some(mut receiver) = self.receiver.take() {
            // Never started: what was buffered is lost.
            receiver.close();
            let mut lost = 0;
            while receiver.try_recv().is_ok() {
                lost += 1;
            }
            self.shutdown_drops.inc_by(lost);
        }
        self.lifecycle.shutdown(deadline).await;
        tracing::info!(exporter = %self.name, "tracing export stopped");
    }
}

/// The batching task: until stopped (or every sender is gone), then a final drain.
async fn run(
    mut receiver: mpsc::Receiver<Span>,
    mut stop: oneshot::Receiver<()>,
    mut output: Output,
) {
    let mut batch: Vec<Span> = Vec::with_capacity(output.max_spans);
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let timer = async {
            match flush_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut stop => break,
            received = receiver.recv() => match received {
                Some(span) => {
                    if batch.is_empty() {
                        flush_at = Some(tokio::time::Instant::now() + output.timeout);
                    }
                    batch.push(span);
                    if batch.len() >= output.max_spans {
                        output.send(&mut batch).await;
                        flush_at = None;
                    }
                }
                None => break,
            },
            () = timer => {
                output.send(&mut batch).await;
                flush_at = None;
            }
        }
    }
    receiver.close();
    while let Some(span) = receiver.recv().await {
        batch.push(span);
        if batch.len() >= output.max_spans {
            output.send(&mut batch).await;
        }
    }
    output.send(&mut batch).await;
}

// === impl Output ===

impl Output {
    /// Sends the spans of `batch` (leaving it empty) as one export request.
    async fn send(&mut self, batch: &mut Vec<Span>) {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::replace(batch, Vec::with_capacity(self.max_spans));
        let count = spans.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        match self.consumer.consume(Batch::from_traces(request)).await {
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
}

#[cfg(test)]
mod tests;
