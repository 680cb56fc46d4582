//! Delivery of one batch: attempts under a timeout, exponential backoff with jitter between
//! retryable failures, a server's retry hint honoured, and giving up after `max_elapsed_time`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::Instant as TokioInstant;

use futures_util::future::BoxFuture;
use otlp::Batch;
use rand::Rng;
use tokio::sync::watch;

use super::settings::RetryConfig;
use super::{SendError, Sender};
use crate::component::{BuildError, Lifecycle};
use crate::consumer::{ConsumeError, Consumer};
use crate::health::HealthReporter;
use crate::telemetry::ExporterMetrics;

/// How a delivery ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Sent,
    /// Gave up; `retryable` tells whether the last failure could have succeeded later.
    Failed {
        retryable: bool,
    },
}

/// Sends batches for one exporter and keeps its counters.
pub(super) struct Delivery {
    exporter: String,
    sender: Arc<dyn Sender>,
    retry: RetryConfig,
    timeout: Duration,
    pub(super) metrics: ExporterMetrics,
    health: HealthReporter,
    /// Where shutdown has got to; retries and queued batches look at it.
    phase: watch::Sender<Phase>,
}

/// How far shutdown has got, as deliveries see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    Running,
    /// Shutdown began: what is queued is still sent, once each, but a failed attempt is not
    /// retried and a retry waiting for its backoff gives up at once. The collector stops its
    /// retry sender before draining its queue for the same reason: a destination that is down
    /// must not hold up shutdown until the deadline.
    Draining,
    /// The shutdown deadline passed: queued batches are given up without an attempt.
    Aborted,
}

// === impl Delivery ===

impl Delivery {
    pub(super) fn new(
        exporter: String,
        sender: Arc<dyn Sender>,
        retry: RetryConfig,
        timeout: Duration,
        metrics: ExporterMetrics,
        health: HealthReporter,
    ) -> Delivery {
        let (phase, _) = watch::channel(Phase::Running);
        Delivery { exporter, sender, retry, timeout, metrics, health, phase }
    }

    /// Moves shutdown on to `phase` (never back).
    pub(super) fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|current| {
            let later = phase > *current;
            if later {
                *current = phase;
            }
            later
        });
    }

    pub(super) fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Counts a batch that will never be delivered.
    pub(super) fn give_up(&self, batch: &Batch, reason: &str) {
        self.metrics.send_failed.inc_by(batch.items());
        self.health.exporter_failed();
        tracing::warn!(exporter = %self.exporter, items = batch.items(), reason, "dropping data that could not be exported");
    }

    /// Delivers `batch`, retrying as configured.
    pub(super) async fn deliver(&self, batch: Batch) -> Outcome {
        let started = TokioInstant::now();
        let mut phase = self.phase.subscribe();
        let mut attempt = 0u32;
        loop {
            let result = if self.timeout.is_zero() {
                // As in the collector, a zero timeout means none.
                self.sender.send(&batch).await
            } else {
                match tokio::time::timeout(self.timeout, self.sender.send(&batch)).await {
                    Ok(result) => result,
                    Err(_) => Err(SendError::retryable(format!(
                        "no answer within the timeout of {:?}",
                        self.timeout
                    ))),
                }
            };
            let (message, retry_after) = match result {
                Ok(()) => {
                    self.metrics.sent.inc_by(batch.items());
                    return Outcome::Sent;
                }
                Err(SendError::Permanent { message }) => {
                    self.give_up(&batch, &format!("permanent error: {message}"));
                    return Outcome::Failed { retryable: false };
                }
                Err(SendError::Retryable { message, retry_after }) => (message, retry_after),
            };
            if !self.retry.enabled || self.phase() != Phase::Running {
                self.give_up(&batch, &format!("retries disabled or shutting down: {message}"));
                return Outcome::Failed { retryable: true };
            }
            let delay = self.backoff(attempt, retry_after);
            let max_elapsed = self.retry.max_elapsed_time.0;
            // Saturating: `delay` may be a server's hint, and a hostile one must not overflow this.
            if !max_elapsed.is_zero() && started.elapsed().saturating_add(delay) > max_elapsed {
                self.give_up(&batch, &format!("max_elapsed_time reached: {message}"));
                return Outcome::Failed { retryable: true };
            }
            tracing::debug!(exporter = %self.exporter, error = %message, ?delay, "export failed, will retry");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = phase.wait_for(|phase| *phase != Phase::Running) => {
                    self.give_up(&batch, "shutting down while waiting to retry");
                    return Outcome::Failed { retryable: true };
                }
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// The wait before retry number `attempt + 1`: exponential, jittered, capped, and never
    /// shorter than what the server asked for.
    fn backoff(&self, attempt: u32, server_hint: Option<Duration>) -> Duration {
        let initial = self.retry.initial_interval.0.as_secs_f64();
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let base = (initial * self.retry.multiplier.powi(exponent))
            .min(self.retry.max_interval.0.as_secs_f64());
        let spread = base * self.retry.randomization_factor;
        let jittered = if spread > 0.0 {
            rand::rng().random_range(base - spread..=base + spread)
        } else {
            base
        };
        let delay = Duration::from_secs_f64(jittered.max(0.0));
        match server_hint {
            Some(hint) if hint > delay => hint,
            _ => delay,
        }
    }
}

/// The consumer used when the sending queue is disabled: the caller waits for delivery.
pub(super) struct Direct {
    delivery: Arc<Delivery>,
}

impl Direct {
    pub(super) fn new(delivery: Arc<Delivery>) -> Direct {
        Direct { delivery }
    }
}

impl Consumer for Direct {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let items = batch.items();
            match self.delivery.deliver(batch).await {
                Outcome::Sent => Ok(()),
                Outcome::Failed { retryable: true } => {
                    Err(ConsumeError::unavailable("the destination did not take the data"))
                }
                Outcome::Failed { retryable: false } => Err(ConsumeError::Permanent {
                    message: "the destination rejected the data".into(),
                    rejected: items,
                }),
            }
        })
    }
}

/// Without a queue there is nothing to drain: deliveries run inside the receivers' requests.
/// Shutdown only stops retrying, so a caller still waiting on a destination that is down learns
/// at once that its data was not taken.
pub(super) struct DirectLifecycle(pub(super) Arc<Delivery>);

impl Lifecycle for DirectLifecycle {
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>> {
        Box::pin(async { Ok(()) })
    }

    fn shutdown(&mut self, _deadline: Instant) -> BoxFuture<'_, ()> {
        self.0.enter(Phase::Draining);
        Box::pin(async {})
    }
}
