//! What every network exporter shares: a per-attempt timeout, retries with exponential backoff,
//! and a bounded in-memory sending queue drained by a fixed number of consumers.
//!
//! An exporter implements [`Sender`] (one attempt at delivering one batch) and hands it to
//! [`build`] with its [`HelperSettings`]; it gets back the pipeline consumer and lifecycle. The
//! queue is the only place a pipeline holds data in flight: when it is full, `consume` refuses
//! with a retryable error, which travels back to the receiver and on to the sender, so a slow
//! destination pushes back instead of growing memory.

mod queue;
mod retry;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use otlp::{Batch, Signal};

use crate::component::{BuildContext, Built};

pub use settings::{HelperSettings, QueueConfig, RetryConfig, Sizer, TimeoutConfig};

/// One attempt at delivering a batch to the destination.
pub trait Sender: Send + Sync + 'static {
    /// Sends `batch` once. The helper applies the timeout and decides about retries.
    fn send<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SendError>>;
}

/// A failed attempt.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The destination may take the data later; `retry_after` is its own hint, if it gave one.
    #[error("{message}")]
    Retryable { message: String, retry_after: Option<Duration> },
    /// The destination will never take this data.
    #[error("{message}")]
    Permanent { message: String },
}

impl SendError {
    pub fn retryable(message: impl Into<String>) -> SendError {
        SendError::Retryable { message: message.into(), retry_after: None }
    }

    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError::Permanent { message: message.into() }
    }
}

/// Wraps `sender` with the timeout, retry and queue of `settings` for the exporter described by
/// `context`.
pub fn build(
    context: &BuildContext,
    sender: Arc<dyn Sender>,
    settings: &HelperSettings,
) -> Result<Built, crate::BuildError> {
    let signal: Signal = context.require_signal()?;
    let delivery = Arc::new(retry::Delivery::new(
        context.id.to_string(),
        sender,
        settings.retry.clone(),
        settings.timeout,
        context.telemetry.exporter(&context.id, signal),
        context.health.clone(),
    ));
    if settings.queue.enabled {
        let (consumer, lifecycle) = queue::SendingQueue::new(delivery, &settings.queue);
        Ok(Built { consumer: Some(consumer), lifecycle: Box::new(lifecycle) })
    } else {
        let consumer = Arc::new(retry::Direct::new(delivery.clone()));
        Ok(Built {
            consumer: Some(consumer),
            lifecycle: Box::new(retry::DirectLifecycle(delivery)),
        })
    }
}

#[cfg(test)]
mod tests;
