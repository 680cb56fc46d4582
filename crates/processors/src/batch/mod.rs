//! The `batch` processor, configured as the OpenTelemetry Collector's.
//!
//! Telemetry is grouped into larger batches, sent when `send_batch_size` items are pending or
//! when `timeout` has passed since the last send, and cut to at most `send_batch_max_size` items.
//!
//! Unlike the collector, `consume` does not wait for the batch to be sent: it appends to a bounded
//! buffer and returns, and one flusher task per instance sends batches on. Two rules keep that
//! honest:
//! - nothing accepted is lost silently: a refused send is retried (with a capped backoff) rather
//!   than dropped, and whatever is still pending when the shutdown deadline passes is counted in
//!   `otelcol_processor_dropped_*` and logged;
//! - backpressure still reaches the sender: while the next component refuses, the buffer fills,
//!   and once it is full `consume` refuses with a retryable error, which the receiver turns into
//!   RESOURCE_EXHAUSTED / HTTP 429.
//!
//! The buffer holds at most [`buffer_limit`] items (plus one incoming batch when it is empty, so
//! a single request larger than the limit is not refused forever).

mod processor;
#[cfg(test)]
mod tests;

use std::time::Duration;

use config::{ConfigError, ConfigErrors, Value};
use otlp::Signal;
use pipeline::{BuildContext, BuildError, Built, Configured, Factory, Kind, Stability};
use serde::Deserialize;

pub use processor::{BatchLifecycle, BatchProcessor};

/// `processors.batch`, with the collector's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Send whatever is pending this long after the last send.
    pub timeout: config::Duration,
    /// Send once this many items are pending; 0 turns the size trigger off (only `timeout`).
    pub send_batch_size: u64,
    /// Split batches above this many items; 0 means no limit.
    pub send_batch_max_size: u64,
    /// Batching per request metadata value; not supported (metadata is not carried down the
    /// pipeline), rejected when non-empty.
    pub metadata_keys: Vec<String>,
    /// Only meaningful with `metadata_keys`, so it is accepted and ignored: configs that set it
    /// alongside an empty `metadata_keys` behave exactly as in the collector.
    pub metadata_cardinality_limit: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            timeout: config::Duration(Duration::from_millis(200)),
            send_batch_size: 8192,
            send_batch_max_size: 0,
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }
    }
}

/// The most items the pending buffer holds: ten full batches, and never less than 100 000.
///
/// Ten batches let the flusher fall a little behind a burst without refusing anything, while a
/// stalled exporter is felt upstream after a bounded amount of memory (100 000 typical sidecar
/// spans are about 70 MB of protobuf).
pub fn buffer_limit(send_batch_size: u64, send_batch_max_size: u64) -> u64 {
    send_batch_size.saturating_mul(10).max(send_batch_max_size.saturating_mul(10)).max(100_000)
}

/// Validated settings of one batch processor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) timeout: Duration,
    pub(crate) send_batch_size: u64,
    pub(crate) send_batch_max_size: u64,
    pub(crate) buffer_limit: u64,
}

impl BatchConfig {
    /// Every problem with the config, each with its key path under `path`.
    pub fn validate(&self, path: &str) -> ConfigErrors {
        let mut errors = ConfigErrors::new();
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            errors.push(ConfigError::new(
                format!("{path}.send_batch_max_size"),
                "must be greater than or equal to send_batch_size",
            ));
        }
        if !self.metadata_keys.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.metadata_keys"),
                format!(
                    "not supported: batching by request metadata ({}) needs metadata that is \
                     not carried down the pipeline; remove the key",
                    self.metadata_keys.join(", ")
                ),
            ));
        }
        errors
    }

    fn settings(&self) -> Settings {
        Settings {
            timeout: self.timeout.0,
            send_batch_size: self.send_batch_size,
            send_batch_max_size: self.send_batch_max_size,
            buffer_limit: buffer_limit(self.send_batch_size, self.send_batch_max_size),
        }
    }
}

/// Makes `batch` processors.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchProcessorFactory;

impl Factory for BatchProcessorFactory {
    fn kind(&self) -> Kind {
        Kind::Processor
    }

    fn type_name(&self) -> &'static str {
        "batch"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[
            (Signal::Traces, Stability::Beta),
            (Signal::Metrics, Stability::Beta),
            (Signal::Logs, Stability::Beta),
        ]
    }

    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        // A null (`batch:` with nothing after it) reads as all defaults.
        let config: BatchConfig = config::from_value(raw, path)?;
        config.validate(path).into_result()?;
        Ok(Box::new(ConfiguredBatch { settings: config.settings() }))
    }
}

/// A `batch` processor whose settings are valid.
pub struct ConfiguredBatch {
    settings: Settings,
}

impl Configured for ConfiguredBatch {
    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        let next = context.require_next()?;
        let signal = context.require_signal()?;
        let metrics = context.telemetry.batch_processor(&context.id, signal);
        let (consumer, lifecycle) =
            processor::new(context.id.clone(), self.settings, next, metrics);
        Ok(Built { consumer: Some(consumer), lifecycle: Box::new(lifecycle) })
    }
}
