//! Observations completed after the response has left, not before.
//!
//! An exchange ends when hyper polls the last frame of the response body: before hyper writes
//! that frame and flushes the connection. Completing the observation right there (building and
//! encoding the span, recording the Istio metrics: about 11,000 instructions, a sixth of the
//! sidecar's work per traced request) would hold every response back by that much.
//!
//! So each worker keeps a queue on its thread. An exchange that ends on a worker leaves its
//! observation and completion in the queue, and one task per worker, [`run`], completes them once
//! the connection's task has yielded, that is after the flush. No thread is crossed (the queue
//! and the task belong to the worker's single-threaded runtime) and nothing is allocated per
//! exchange beyond the queue's growth. Off a worker (the admin listener, unit tests), exchanges
//! complete on the spot.
//!
//! What observers record is unchanged: the completion (durations, byte counts, flags, trailers)
//! is taken when the exchange ends; only the call waits.

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Duration;

use http::HeaderMap;

use super::exchange::shielded;
use crate::observe::{Completion, Observation};

thread_local! {
    /// The queue of the worker running on this thread, while its [`run`] task lives.
    static QUEUE: RefCell<Option<Queue>> = const { RefCell::new(None) };
}

struct Queue {
    ended: Vec<Ended>,
    /// The [`run`] task, when it waits for work.
    waker: Option<Waker>,
}

/// An exchange that ended, with what its observation is to be told.
struct Ended {
    observation: Box<dyn Observation>,
    request_body_bytes: u64,
    response_body_bytes: u64,
    trailers: Option<HeaderMap>,
    response_flags: &'static str,
    duration: Duration,
}

impl Ended {
    fn new(observation: Box<dyn Observation>, completion: &Completion<'_>) -> Ended {
        Ended {
            observation,
            request_body_bytes: completion.request_body_bytes,
            response_body_bytes: completion.response_body_bytes,
            trailers: completion.trailers.cloned(),
            response_flags: completion.response_flags,
            duration: completion.duration,
        }
    }

    fn complete(self) {
        let Ended {
            observation,
            request_body_bytes,
            response_body_bytes,
            trailers,
            response_flags,
            duration,
        } = self;
        let completion = Completion {
            request_body_bytes,
            response_body_bytes,
            trailers: trailers.as_ref(),
            response_flags,
            duration,
        };
        complete_now(observation, &completion);
    }
}

fn complete_now(observation: Box<dyn Observation>, completion: &Completion<'_>) {
    shielded("complete", || observation.complete(completion));
}

/// Completes `observation` with `completion`: once the current task has yielded when this
/// thread is a worker's (its [`run`] task is alive), at once otherwise.
pub(crate) fn complete(observation: Box<dyn Observation>, completion: &Completion<'_>) {
    let mut observation = Some(observation);
    // `Err`: the thread is exiting and its queue is gone.
    let waker = QUEUE
        .try_with(|queue| {
            let mut queue = queue.borrow_mut();
            let queue = queue.as_mut()?;
            queue.ended.push(Ended::new(observation.take()?, completion));
            queue.waker.take()
        })
        .ok()
        .flatten();
    if let Some(waker) = waker {
        // The task belongs to this thread's runtime: this only puts it in the run queue.
        waker.wake();
    }
    if let Some(observation) = observation {
        complete_now(observation, completion);
    }
}

/// A worker's completing task: holds its thread's queue and completes what ends there, until
/// dropped with the worker's runtime, when it completes what is left. A second one on the same
/// thread returns at once.
pub(crate) async fn run() {
    let Some(_registered) = Registered::new() else {
        return;
    };
    let mut batch = Vec::new();
    poll_fn(|cx| {
        loop {
            let taken = QUEUE.with(|queue| {
                let mut queue = queue.borrow_mut();
                let Some(queue) = queue.as_mut() else {
                    return false;
                };
                if queue.ended.is_empty() {
                    if !queue.waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                        queue.waker = Some(cx.waker().clone());
                    }
                    return false;
                }
                // Swapped, not taken: both vectors keep their capacity.
                std::mem::swap(&mut queue.ended, &mut batch);
                true
            });
            if !taken {
                return Poll::<()>::Pending;
            }
            // Outside the borrow: an observation may end another exchange when dropped.
            for ended in batch.drain(..) {
                ended.complete();
            }
        }
    })
    .await;
}

/// This thread's queue, while the guard lives.
struct Registered;

impl Registered {
    /// `None` when the thread has a queue already.
    fn new() -> Option<Registered> {
        QUEUE.with(|queue| {
            let mut queue = queue.borrow_mut();
            if queue.is_some() {
                return None;
            }
            *queue = Some(Queue { ended: Vec::new(), waker: None });
            Some(Registered)
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let left = QUEUE.try_with(|queue| queue.borrow_mut().take()).ok().flatten();
        for ended in left.map(|queue| queue.ended).unwrap_or_default() {
            ended.complete();
        }
    }
}

#[cfg(test)]
mod tests;
