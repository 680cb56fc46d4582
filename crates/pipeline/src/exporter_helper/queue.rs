//! The bounded sending queue: `consume` only enqueues (or refuses when full); a fixed number of
//! consumer tasks deliver in the background.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use otlp::Batch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::retry::Delivery;
use super::settings::QueueConfig;
use crate::component::{BuildError, Lifecycle};
use crate::consumer::{ConsumeError, Consumer};

/// How long a sender refused by a full queue is asked to wait.
const FULL_QUEUE_RETRY_AFTER: Duration = Duration::from_secs(1);

type Receiver = Arc<tokio::sync::Mutex<mpsc::Receiver<Batch>>>;

/// The pipeline side of the queue.
pub(super) struct QueueInput {
    /// `None` once shutdown began: nothing new is accepted.
    sender: Mutex<Option<mpsc::Sender<Batch>>>,
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
        let (sender, receiver) = mpsc::channel(config.queue_size.max(1));
        delivery.metrics.queue_capacity.set(i64::try_from(config.queue_size).unwrap_or(i64::MAX));
        let input = Arc::new(QueueInput { sender: Mutex::new(Some(sender)), delivery });
        let queue = SendingQueue {
            input: input.clone(),
            receiver: Arc::new(tokio::sync::Mutex::new(receiver)),
            num_consumers: config.num_consumers.max(1),
            workers: Vec::new(),
        };
        (input, queue)
    }
}

async fn run_worker(receiver: Receiver, delivery: Arc<Delivery>) {
    loop {
        // The lock is held only while waiting for the next batch, never while sending it.
        let next = receiver.lock().await.recv().await;
        let Some(batch) = next else { return };
        delivery.metrics.queue_size.dec();
        if delivery.aborted() {
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
                let worker = run_worker(self.receiver.clone(), self.input.delivery.clone());
                self.workers.push(tokio::spawn(worker));
            }
            Ok(())
        })
    }

    fn shutdown(&mut self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Dropping the only sender lets the workers drain what is queued and then stop.
            if let Ok(mut sender) = self.input.sender.lock() {
                sender.take();
            }
            let workers = std::mem::take(&mut self.workers);
            let deadline = tokio::time::Instant::from_std(deadline);
            let all_done = futures_util::future::join_all(workers);
            tokio::pin!(all_done);
            if tokio::time::timeout_at(deadline, &mut all_done).await.is_err() {
                // Past the deadline: whatever waits for a retry or sits in the queue is counted
                // as failed by the workers as they see the abort.
                self.input.delivery.abort();
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
    fn enqueue(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.items();
        let guard = match self.sender.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(sender) = guard.as_ref() else {
            return Err(ConsumeError::unavailable("the exporter is shutting down"));
        };
        match sender.try_send(batch) {
            Ok(()) => {
                self.delivery.metrics.queue_size.inc();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.delivery.metrics.enqueue_failed.inc_by(items);
                Err(ConsumeError::exhausted("sending queue is full", FULL_QUEUE_RETRY_AFTER))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(ConsumeError::unavailable("the exporter is shutting down"))
            }
        }
    }
}
