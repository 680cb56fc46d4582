//! The proxy's worker threads, as Envoy runs its workers: each thread has its own single-threaded
//! Tokio runtime, accepts on every proxy listener, and serves the connections it accepted from
//! start to end, with its own upstream connection pools.
//!
//! Why not one work-stealing runtime: at a steady request rate its idle workers are woken to
//! look for work whenever a task becomes ready, and a connection's tasks (the downstream
//! connection, the pooled upstream connection) can land on different threads. Measured on the
//! sidecar benchmark, those futex wake-ups were about two per request, as many as the proxy's
//! reads. A worker here touches no other thread on a request's way through; the only shared
//! state is the observers' (counters, the span buffer), behind atomics and short locks.
//!
//! Every worker accepts on the same listening sockets (clones of one descriptor), so the kernel
//! hands each new connection to whichever worker takes it first.

use std::io;

use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};

/// The running workers. Dropping this stops them without waiting.
#[derive(Debug)]
pub(crate) struct Workers {
    stop: watch::Sender<bool>,
    /// One per worker thread; closed when the thread has dropped its runtime and ends.
    exited: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts one worker thread per element of `setups`. The runtimes are all built first, so
    /// a failure is reported before anything runs; then each worker runs its `setup` on its
    /// runtime (spawning its accept loops) and keeps the runtime until [`Workers::stop`] or
    /// drop.
    pub(crate) fn start<S>(setups: Vec<S>) -> io::Result<Workers>
    where
        S: FnOnce() + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let mut runtimes = Vec::with_capacity(setups.len());
        for _ in &setups {
            runtimes.push(tokio::runtime::Builder::new_current_thread().enable_all().build()?);
        }
        let mut exited = Vec::with_capacity(runtimes.len());
        for (worker, (runtime, setup)) in runtimes.into_iter().zip(setups).enumerate() {
            let stopped = stopped.clone();
            let (alive, gone) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("sidecar-worker-{worker}"))
                .spawn(move || run(runtime, setup, stopped, alive))?;
            exited.push(gone);
        }
        Ok(Workers { stop, exited })
    }

    /// How many workers run.
    pub(crate) fn count(&self) -> usize {
        self.exited.len()
    }

    /// Stops every worker (whatever its tasks are doing: they are dropped, closing their
    /// connections) and waits until each thread has let go of its runtime.
    pub(crate) async fn stop(mut self) {
        self.stop.send_replace(true);
        for exited in std::mem::take(&mut self.exited) {
            // The sender is dropped, never used: `Err` is the signal.
            let _ = exited.await;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn run<S: FnOnce()>(
    runtime: Runtime,
    setup: S,
    mut stopped: watch::Receiver<bool>,
    alive: oneshot::Sender<()>,
) {
    runtime.block_on(async {
        setup();
        // `Err` means the `Workers` is gone: stop too.
        let _ = stopped.wait_for(|stop| *stop).await;
    });
    // Dropping the runtime cancels what is left: idle pooled connections, and exchanges still
    // open after the drain deadline.
    drop(runtime);
    drop(alive);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn each_worker_runs_on_its_own_thread_until_stopped() {
        let names = Arc::new(Mutex::new(HashSet::new()));
        // Each worker's task holds a clone until its runtime is dropped.
        let held = Arc::new(());
        let setups: Vec<_> = (0..3)
            .map(|_| {
                let names = names.clone();
                let held = held.clone();
                move || {
                    let name = std::thread::current().name().map(str::to_owned);
                    names.lock().unwrap().insert(name);
                    tokio::spawn(async move {
                        let _held = held;
                        std::future::pending::<()>().await;
                    });
                }
            })
            .collect();
        let workers = Workers::start(setups).unwrap();
        assert_eq!(workers.count(), 3);
        for _ in 0..500 {
            if names.lock().unwrap().len() == 3 && Arc::strong_count(&held) == 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let expected: HashSet<_> =
            (0..3).map(|worker| Some(format!("sidecar-worker-{worker}"))).collect();
        assert_eq!(*names.lock().unwrap(), expected);
        assert_eq!(Arc::strong_count(&held), 4, "every worker's task is alive");
        workers.stop().await;
        assert_eq!(Arc::strong_count(&held), 1, "stopping dropped every worker's tasks");
    }
}
