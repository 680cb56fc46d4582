//! What both transports do with a request body: validate it, hand it to the pipeline, count the
//! outcome. The transports only translate the result into their own status codes.

use std::sync::Arc;

use bytes::Bytes;
use otlp::{Batch, Signal};
use pipeline::telemetry::ReceiverMetrics;
use pipeline::{ConsumeError, Consumer};

/// Bodies at least this large are scanned on the blocking pool: a 4 MiB request takes
/// milliseconds to validate, far past what may block the reactor.
const SCAN_OFF_REACTOR_BYTES: usize = 256 * 1024;

/// Why a request was not accepted.
#[derive(Debug)]
pub(crate) enum IngestError {
    /// The body is not valid OTLP: never retry.
    Invalid(String),
    /// The pipeline refused it; the error says whether to retry.
    Refused(ConsumeError),
}

/// The entry into the pipelines for one signal on one transport.
#[derive(Clone)]
pub(crate) struct Ingest {
    signal: Signal,
    consumer: Arc<dyn Consumer>,
    metrics: ReceiverMetrics,
}

impl Ingest {
    pub(crate) fn new(
        signal: Signal,
        consumer: Arc<dyn Consumer>,
        metrics: ReceiverMetrics,
    ) -> Ingest {
        Ingest { signal, consumer, metrics }
    }

    pub(crate) fn signal(&self) -> Signal {
        self.signal
    }

    /// Takes a protobuf body without decoding it.
    pub(crate) async fn protobuf(&self, body: Bytes) -> Result<(), IngestError> {
        let read = |signal, body: Bytes| Batch::from_wire(signal, body).map_err(|e| e.to_string());
        self.read(body, "validation", read).await
    }

    /// Takes an OTLP/JSON body: JSON decoding costs far more per byte than the protobuf scan.
    pub(crate) async fn json(&self, body: Bytes) -> Result<(), IngestError> {
        let read =
            |signal, body: Bytes| otlp::json::decode(signal, &body).map_err(|e| e.to_string());
        self.read(body, "decoding", read).await
    }

    /// Reads `body` into a batch with `read`, on the blocking pool when it is large (the `task`
    /// names the step in an error), and takes the batch.
    async fn read(
        &self,
        body: Bytes,
        task: &'static str,
        read: fn(Signal, Bytes) -> Result<Batch, String>,
    ) -> Result<(), IngestError> {
        let signal = self.signal;
        let decoded = if body.len() >= SCAN_OFF_REACTOR_BYTES {
            tokio::task::spawn_blocking(move || read(signal, body))
                .await
                .map_err(|error| IngestError::Invalid(format!("{task} task failed: {error}")))?
        } else {
            read(signal, body)
        };
        self.batch(decoded.map_err(IngestError::Invalid)?).await
    }

    /// Takes a batch already decoded.
    async fn batch(&self, batch: Batch) -> Result<(), IngestError> {
        let items = batch.items();
        if batch.is_empty() {
            // An empty request is valid OTLP and is answered with success; nothing to forward.
            return Ok(());
        }
        match self.consumer.consume(batch).await {
            Ok(()) => {
                self.metrics.accepted.inc_by(items);
                Ok(())
            }
            Err(error) => {
                self.metrics.refused.inc_by(items);
                Err(IngestError::Refused(error))
            }
        }
    }
}
