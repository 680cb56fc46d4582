//! The consumer call chain: receiver → processors → exporters.
//!
//! Batches are owned and move down an async call chain. The result travels back up to the
//! receiver, which turns it into the OTLP reply, so backpressure needs no side channel: an
//! exporter whose queue is full refuses, and the sender is told to retry.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use otlp::Batch;

/// Something that accepts telemetry: a processor, an exporter, or a fan-out to several.
pub trait Consumer: Send + Sync {
    /// Takes ownership of `batch`. `Ok` means the data is now this consumer's responsibility;
    /// an error means it was not accepted (nothing of it is kept unless the error says so).
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>>;
}

/// Why a refused batch may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// A bounded buffer is full: OTLP RESOURCE_EXHAUSTED / HTTP 429.
    ResourceExhausted,
    /// The pipeline cannot take data now (shutting down, destination down): UNAVAILABLE / 503.
    Unavailable,
}

/// A consumer did not accept a batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsumeError {
    /// Sending the same data later may succeed.
    #[error("{message}")]
    Retryable { kind: RefusalKind, message: String, retry_after: Option<Duration> },
    /// The data can never be accepted (malformed for this consumer); `rejected` items were lost.
    #[error("{message}")]
    Permanent { message: String, rejected: u64 },
}

impl ConsumeError {
    /// A full buffer: retry after `retry_after`.
    pub fn exhausted(message: impl Into<String>, retry_after: Duration) -> ConsumeError {
        ConsumeError::Retryable {
            kind: RefusalKind::ResourceExhausted,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }

    /// The pipeline is not taking data now.
    pub fn unavailable(message: impl Into<String>) -> ConsumeError {
        ConsumeError::Retryable {
            kind: RefusalKind::Unavailable,
            message: message.into(),
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, ConsumeError::Retryable { .. })
    }
}

/// Hands each batch to every consumer, cloning only for all but the last.
///
/// The first retryable error wins over permanent ones in the result, because a sender that
/// retries can still get the data to the consumers that refused; the consumers that accepted
/// will see it again, as with the OpenTelemetry Collector's fan-out.
pub struct FanOut {
    consumers: Vec<Arc<dyn Consumer>>,
}

// === impl FanOut ===

impl FanOut {
    /// A consumer that feeds every one of `consumers`; a single consumer is returned as is.
    pub fn of(mut consumers: Vec<Arc<dyn Consumer>>) -> Arc<dyn Consumer> {
        if consumers.len() == 1
            && let Some(only) = consumers.pop()
        {
            return only;
        }
        Arc::new(FanOut { consumers })
    }
}

impl Consumer for FanOut {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let mut result = Ok(());
            let last = self.consumers.len().saturating_sub(1);
            let mut batch = Some(batch);
            for (index, consumer) in self.consumers.iter().enumerate() {
                let copy = if index == last { batch.take() } else { batch.clone() };
                let Some(copy) = copy else { break };
                if let Err(error) = consumer.consume(copy).await {
                    result = match (&result, &error) {
                        (Err(ConsumeError::Retryable { .. }), _) => result,
                        _ => Err(error),
                    };
                }
            }
            result
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what it receives; refuses with `refusal` when set.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub(crate) batches: Mutex<Vec<Batch>>,
        pub(crate) refusal: Mutex<Option<ConsumeError>>,
    }

    impl Recorder {
        pub(crate) fn items(&self) -> u64 {
            self.batches.lock().unwrap().iter().map(Batch::items).sum()
        }
    }

    impl Consumer for Recorder {
        fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
            Box::pin(async move {
                if let Some(error) = self.refusal.lock().unwrap().clone() {
                    return Err(error);
                }
                self.batches.lock().unwrap().push(batch);
                Ok(())
            })
        }
    }

    fn traces(spans: usize) -> Batch {
        Batch::from_traces(otlp::fixtures::sidecar_traces(spans, 1))
    }

    #[tokio::test]
    async fn fan_out_delivers_to_every_consumer() {
        let a = Arc::new(Recorder::default());
        let b = Arc::new(Recorder::default());
        let fan_out = FanOut::of(vec![a.clone(), b.clone()]);
        fan_out.consume(traces(3)).await.unwrap();
        assert_eq!(a.items(), 3);
        assert_eq!(b.items(), 3);
    }

    #[tokio::test]
    async fn fan_out_reports_a_retryable_refusal_over_a_permanent_one() {
        let a = Arc::new(Recorder::default());
        *a.refusal.lock().unwrap() =
            Some(ConsumeError::Permanent { message: "bad".into(), rejected: 1 });
        let b = Arc::new(Recorder::default());
        *b.refusal.lock().unwrap() = Some(ConsumeError::unavailable("down"));
        let c = Arc::new(Recorder::default());
        let fan_out = FanOut::of(vec![a, b, c.clone()]);
        let error = fan_out.consume(traces(2)).await.unwrap_err();
        assert!(error.is_retryable());
        assert_eq!(c.items(), 2, "a refusal upstream does not starve later consumers");
    }
}
