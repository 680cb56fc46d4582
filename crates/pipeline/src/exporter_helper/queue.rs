//! The bounded sending queue: `consume` only enqueues (or refuses when full); a fixed number of
//! consumer tasks deliver in the background.
//!
//! Capacity is counted in the unit of the configured [`Sizer`] (batches by default, or items,
//! or encoded bytes), so the channel itself is unbounded and an atomic counter is the bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use otlp::Batch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::retry::{Delivery, Phase};
use super::settings::{QueueConfig, Sizer};
use crate::component::{BuildError, Lifecycle};
use crate::consumer::{ConsumeError, Consumer};

/// How long a sender refused by a full queue is asked to wait.
const FULL_QUEUE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A queued batch with its size in sizer units, so the same amount is given back on dequeue.
type Entry = (Batch, u64);
type Receiver = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Entry>>>;

/// The pipeline side of the queue.
pub(super) struct QueueInput {
    /// `None` once shutdown began: nothing new is accepted.
    sender: Mutex<Option<mpsc::UnboundedSender<Entry>>>,
    sizer: Sizer,
    capacity: u64,
    /// Sizer units queued now.
    used: Arc<AtomicU64>,
    delivery: Arc<Delivery>,
}

/// The lifecycle side: starts and drains the consumer tasks.
pub(super) struct SendingQueue {
    input: Arc<QueueInput>,
    receiver: Receiver,
    num_consumers: usize,
    workers: Vec<JoinHandle<()>>,
}

// === impl SendingQueue ===

impl SendingQueue {
    pub(super) fn new(
        delivery: Arc<Delivery>,
        config: &QueueConfig,
    ) -> (Arc<dyn Consumer>, SendingQueue) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let capacity = config.queue_size.max(1);
        delivery.metrics.queue_capacity.set(i64::try_from(capacity).unwrap_or(i64::MAX));
        let input = Arc::new(QueueInput {
            sender: Mutex::new(Some(sender)),
            sizer: config.sizer,
            capacity,
            used: Arc::new(AtomicU64::new(0)),
            delivery,
        });
        let queue = SendingQueue {
            input: input.clone(),
            receiver: Arc::new(tokio::sync::Mutex::new(receiver)),
            num_consumers: config.num_consumers.max(1),
            workers: Vec::new(),
        };
        (input, queue)
    }
}

async fn run_worker(receiver: Receiver, input: Arc<QueueInput>) {
    let delivery = &input.delivery;
    loop {
        // The lock is held only while waiting for the next batch, never while sending it.
        let next = receiver.lock().await.recv().await;
        let Some((batch, size)) = next else { return };
        let used = input.used.fetch_sub(size, Ordering::AcqRel).saturating_sub(size);
        delivery.metrics.queue_size.set(i64::try_from(used).unwrap_or(i64::MAX));
        if delivery.phase() == Phase::Aborted {
            delivery.give_up(&batch, "shutdown deadline reached with data still queued");
            continue;
        }
        delivery.deliver(batch).await;
    }
}

impl Lifecycle for SendingQueue {
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>> {
        Box::pin(async move {
            for _ in 0..self.num_consumers {
                let worker = run_worker(self.receiver.clone(), self.input.clone());
                self.workers.push(tokio::spawn(worker));
            }
            Ok(())
        })
    }

    fn shutdown(&mut self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // What is queued gets one attempt each, without retries (see `Phase::Draining`).
            self.input.delivery.enter(Phase::Draining);
            // Dropping the only sender lets the workers drain what is queued and then stop.
            if let Ok(mut sender) = self.input.sender.lock() {
                sender.take();
            }
            let workers = std::mem::take(&mut self.workers);
            let deadline = tokio::time::Instant::from_std(deadline);
            let all_done = futures_util::future::join_all(workers);
            tokio::pin!(all_done);
            if tokio::time::timeout_at(deadline, &mut all_done).await.is_err() {
                // Past the deadline: whatever still sits in the queue is counted as failed by
                // the workers as they see the abort.
                self.input.delivery.enter(Phase::Aborted);
                let _ = tokio::time::timeout(Duration::from_secs(1), all_done).await;
            }
        })
    }
}

// === impl QueueInput ===

impl Consumer for QueueInput {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let result = self.enqueue(batch);
        Box::pin(async move { result })
    }
}

impl QueueInput {
    /// Reserves room for `size` units; an empty queue takes even a batch larger than the whole
    /// capacity, which would otherwise be refused forever.
    fn reserve(&self, size: u64) -> Result<u64, ()> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used > 0 && used.saturating_add(size) > self.capacity {
                return Err(());
            }
            let wanted = used.saturating_add(size);
            match self.used.compare_exchange_weak(used, wanted, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(wanted),
                Err(actual) => used = actual,
            }
        }
    }

    fn enqueue(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.items();
        // Measured before taking the lock: `Sizer::Bytes` walks a decoded batch.
        let size = self.sizer.measure(&batch);
        let guard = match self.sender.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(sender) = guard.as_ref() else {
            return Err(ConsumeError::unavailable("the exporter is shutting down"));
        };
        let Ok(used) = self.reserve(size) else {
            self.delivery.metrics.enqueue_failed.inc_by(items);
            return Err(ConsumeError::exhausted("sending queue is full", FULL_QUEUE_RETRY_AFTER));
        };
        if sender.send((batch, size)).is_err() {
            self.used.fetch_sub(size, Ordering::AcqRel);
            return Err(ConsumeError::unavailable("the exporter is shutting down"));
        }
        self.delivery.metrics.queue_size.set(i64::try_from(used).unwrap_or(i64::MAX));
        Ok(())
    }
}
