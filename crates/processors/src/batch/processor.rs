//! A running batch processor: `consume` fills a bounded buffer, one flusher task forms batches
//! from it and sends them on, retrying while the next component refuses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use otlp::Batch;
use pipeline::telemetry::BatchMetrics;
use pipeline::{BuildError, ComponentId, ConsumeError, Consumer, Lifecycle};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Settings;

/// First wait after the next component refused a batch; doubled per refusal up to
/// [`MAX_BACKOFF`]. The refusal's own `retry_after` is meant for remote senders: an exporter
/// queue usually frees a slot much sooner, and polling it is cheap.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a sender refused by a full buffer is asked to wait.
const FULL_BUFFER_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What `consume` and the flusher share, under one short lock never held across an await.
struct State {
    /// Accepted batches, oldest first, not merged yet: merging happens in the flusher, outside
    /// the lock, because appending a decoded batch encodes it.
    queue: VecDeque<Batch>,
    queued_items: u64,
    /// Items the flusher took and has not delivered or dropped yet; they count against the
    /// buffer limit, so the limit bounds everything accepted and not yet passed on.
    in_flight_items: u64,
    /// Shutdown began: nothing more is accepted.
    closed: bool,
}

struct Shared {
    id: ComponentId,
    settings: Settings,
    next: Arc<dyn Consumer>,
    metrics: BatchMetrics,
    state: Mutex<State>,
    /// Wakes the flusher: size trigger reached, `timeout` zero, or shutdown.
    wake: Notify,
}

/// Why a batch is sent, for the collector's trigger counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Size,
    Timeout,
}

/// What the flusher does next.
enum Step {
    Send(Trigger),
    /// The timer ran out with nothing pending: start a new period, as the collector's timer does.
    Restart,
    Wait,
    Done,
}

/// The pipeline side: where batches enter.
pub struct BatchProcessor {
    shared: Arc<Shared>,
}

/// The lifecycle side: starts the flusher and drains the buffer at shutdown.
pub struct BatchLifecycle {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    stopped: bool,
}

/// Creates the two halves of one processor instance.
pub(crate) fn new(
    id: ComponentId,
    settings: Settings,
    next: Arc<dyn Consumer>,
    metrics: BatchMetrics,
) -> (Arc<BatchProcessor>, BatchLifecycle) {
    let shared = Arc::new(Shared {
        id,
        settings,
        next,
        metrics,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            queued_items: 0,
            in_flight_items: 0,
            closed: false,
        }),
        wake: Notify::new(),
    });
    let processor = Arc::new(BatchProcessor { shared: shared.clone() });
    (processor, BatchLifecycle { shared, flusher: None, stopped: false })
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under the lock is a few plain assignments that cannot panic halfway, so
        // the state behind a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn size_reached(&self, state: &State) -> bool {
        self.settings.send_batch_size > 0 && state.queued_items >= self.settings.send_batch_size
    }

    /// Accepts `batch` into the buffer, or refuses it without keeping anything.
    fn push(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.items();
        let wake = {
            let mut state = self.lock();
            if state.closed {
                return Err(ConsumeError::unavailable("the batch processor is shutting down"));
            }
            if batch.is_empty() {
                return Ok(());
            }
            let held = state.queued_items + state.in_flight_items;
            if held > 0 && held.saturating_add(items) > self.settings.buffer_limit {
                return Err(ConsumeError::exhausted(
                    "batch processor buffer is full",
                    FULL_BUFFER_RETRY_AFTER,
                ));
            }
            state.queue.push_back(batch);
            state.queued_items += items;
            self.settings.timeout.is_zero() || self.size_reached(&state)
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn step(&self, period_start: Instant) -> Step {
        let state = self.lock();
        let timeout = self.settings.timeout;
        let expired = !timeout.is_zero() && Instant::now() >= period_start + timeout;
        if state.queue.is_empty() {
            return if state.closed {
                Step::Done
            } else if expired {
                Step::Restart
            } else {
                Step::Wait
            };
        }
        if self.size_reached(&state) {
            Step::Send(Trigger::Size)
        } else if state.closed || timeout.is_zero() || expired {
            Step::Send(Trigger::Timeout)
        } else {
            Step::Wait
        }
    }

    /// Takes whole accepted batches off the front until `send_batch_size` items are taken (or
    /// all of them), and merges them outside the lock; `None` when nothing is pending.
    fn take(&self) -> Option<Batch> {
        let mut taken = Vec::new();
        {
            let mut state = self.lock();
            let mut items = 0u64;
            while let Some(batch) = state.queue.pop_front() {
                items += batch.items();
                taken.push(batch);
                if self.settings.send_batch_size > 0 && items >= self.settings.send_batch_size {
                    break;
                }
            }
            state.queued_items -= items;
            state.in_flight_items += items;
        }
        let mut pieces = taken.into_iter();
        let mut merged = pieces.next()?;
        for piece in pieces {
            merged.append(piece);
        }
        Some(merged)
    }

    /// Items taken by the flusher are now delivered or dropped.
    fn release(&self, items: u64) {
        let mut state = self.lock();
        state.in_flight_items = state.in_flight_items.saturating_sub(items);
    }

    /// Puts the tail of a split batch back in front of the buffer.
    fn requeue(&self, batch: Batch) {
        let mut state = self.lock();
        let items = batch.items();
        state.in_flight_items = state.in_flight_items.saturating_sub(items);
        state.queued_items += items;
        state.queue.push_front(batch);
    }

    /// Sends one formed batch, split to `send_batch_max_size`, pieces in order.
    async fn send(&self, batch: Batch, trigger: Trigger) {
        let max = self.settings.send_batch_max_size;
        let items = batch.items();
        let mut pieces = if max > 0 && items > max {
            match batch.split(max) {
                Ok(pieces) => pieces,
                Err(error) => {
                    // Only possible for wire data that passed the receiver's checks yet does
                    // not decode; the exporter could not send it either.
                    self.metrics.dropped.inc_by(items);
                    self.release(items);
                    tracing::warn!(
                        processor = %self.id, items, %error,
                        "dropping a batch that cannot be split"
                    );
                    return;
                }
            }
        } else {
            vec![batch]
        };
        // As in the collector, a size-triggered send leaves a tail smaller than
        // `send_batch_size` pending, to be filled by what comes next (or sent by the timer), so
        // batches come out full rather than as a full one plus a scrap.
        if trigger == Trigger::Size
            && pieces.len() > 1
            && pieces.last().is_some_and(|tail| tail.items() < self.settings.send_batch_size)
            && let Some(tail) = pieces.pop()
        {
            self.requeue(tail);
        }
        for piece in pieces {
            self.deliver(wire_form(piece)).await;
        }
    }

    /// Hands `batch` to the next component, retrying retryable refusals until it is taken.
    async fn deliver(&self, batch: Batch) {
        let items = batch.items();
        let mut backoff = INITIAL_BACKOFF;
        loop {
            match self.next.consume(batch.clone()).await {
                Ok(()) => {
                    self.metrics.send_size.observe(items as f64);
                    break;
                }
                Err(ConsumeError::Permanent { message, .. }) => {
                    self.metrics.dropped.inc_by(items);
                    tracing::warn!(
                        processor = %self.id, items, error = %message,
                        "dropping a batch the next component rejected"
                    );
                    break;
                }
                Err(error) => {
                    tracing::debug!(
                        processor = %self.id, items, %error, ?backoff,
                        "next component refused a batch, will retry"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.release(items);
    }

    /// Empties the buffer after the flusher stopped; returns how many items were left.
    fn discard(&self) -> u64 {
        let mut state = self.lock();
        let left = state.queued_items + state.in_flight_items;
        state.queue.clear();
        state.queued_items = 0;
        state.in_flight_items = 0;
        left
    }
}

/// Every attempt hands the next component its own copy of the batch (`consume` takes ownership
/// and gives nothing back on refusal). Copying wire bytes is a reference count, copying decoded
/// objects is a deep copy, so a decoded batch is encoded once here; an exporter would encode it
/// anyway.
fn wire_form(batch: Batch) -> Batch {
    if batch.is_encoded() {
        return batch;
    }
    let mut encoded = Batch::empty(batch.signal());
    encoded.append(batch);
    encoded
}

/// The flusher: one per instance, until shutdown has drained the buffer.
async fn run(shared: Arc<Shared>) {
    let timeout = shared.settings.timeout;
    let mut period_start = Instant::now();
    loop {
        match shared.step(period_start) {
            Step::Send(trigger) => {
                // `step` only says send while the queue holds something, and only the flusher
                // takes from it.
                if let Some(batch) = shared.take() {
                    match trigger {
                        Trigger::Size => shared.metrics.size_trigger.inc(),
                        Trigger::Timeout => shared.metrics.timeout_trigger.inc(),
                    };
                    shared.send(batch, trigger).await;
                }
                period_start = Instant::now();
            }
            Step::Restart => period_start = Instant::now(),
            Step::Wait if timeout.is_zero() => shared.wake.notified().await,
            Step::Wait => {
                tokio::select! {
                    () = shared.wake.notified() => {}
                    () = tokio::time::sleep_until(period_start + timeout) => {}
                }
            }
            Step::Done => return,
        }
    }
}

// === impl BatchProcessor ===

impl Consumer for BatchProcessor {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let result = self.shared.push(batch);
        Box::pin(std::future::ready(result))
    }
}

// === impl BatchLifecycle ===

impl Lifecycle for BatchLifecycle {
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>> {
        Box::pin(async move {
            if self.flusher.is_none() && !self.stopped {
                self.flusher = Some(tokio::spawn(run(self.shared.clone())));
                tracing::info!(processor = %self.shared.id, "batch processor started");
            }
            Ok(())
        })
    }

    fn shutdown(&mut self, deadline: std::time::Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.stopped {
                return;
            }
            self.stopped = true;
            self.shared.lock().closed = true;
            self.shared.wake.notify_one();
            // Drain even if `start` never ran, so accepted data still gets its chance.
            let mut flusher =
                self.flusher.take().unwrap_or_else(|| tokio::spawn(run(self.shared.clone())));
            if tokio::time::timeout_at(Instant::from_std(deadline), &mut flusher).await.is_err() {
                // Cancelling drops the batch being sent; it is still counted in flight below.
                flusher.abort();
                let _ = flusher.await;
            }
            let left = self.shared.discard();
            if left > 0 {
                self.shared.metrics.dropped.inc_by(left);
                tracing::warn!(
                    processor = %self.shared.id, items = left,
                    "shutdown deadline reached: dropping data not yet sent"
                );
            }
            tracing::info!(processor = %self.shared.id, "batch processor stopped");
        })
    }
}
