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
//! hands each new connection to whichever worker takes it first. Each new connection wakes every
//! worker once (one `accept` wins, the others find nothing); a mesh's keep-alive connections make
//! that rare. One `SO_REUSEPORT` socket per worker, as Envoy binds them, would avoid it, at the
//! price of letting any process of the same user bind the same port.

use std::io;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};

/// How long a stopping worker waits for its blocking tasks (a name resolution in flight): stopping
/// must not outlast the shutdown deadline because a DNS server hangs.
const BLOCKING_TASKS_GRACE: Duration = Duration::from_millis(100);

/// The running workers. Dropping this stops them without waiting.
#[derive(Debug)]
pub(crate) struct Workers {
    stop: watch::Sender<bool>,
    /// One per worker thread; closed when the thread has let go of its runtime and ends.
    exited: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts one worker thread per element of `setups`; each runs its `setup` on its own
    /// runtime (registering its listeners, spawning its accept loops) and keeps the runtime
    /// until [`Workers::stop`] or drop. Returns once every setup has succeeded; if a runtime,
    /// a thread or a setup fails (or panics), the workers already started are stopped and the
    /// first error is returned.
    pub(crate) async fn start<S>(setups: Vec<S>) -> io::Result<Workers>
    where
        S: FnOnce() -> io::Result<()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let mut workers = Workers { stop, exited: Vec::with_capacity(setups.len()) };
        let mut started = Vec::with_capacity(setups.len());
        for (worker, setup) in setups.into_iter().enumerate() {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let stopped = stopped.clone();
            let (alive, gone) = oneshot::channel::<()>();
            let (set_up, ready) = oneshot::channel();
            std::thread::Builder::new()
                .name(format!("sidecar-worker-{worker}"))
                .spawn(move || run(runtime, setup, set_up, stopped, alive))?;
            workers.exited.push(gone);
            started.push(ready);
        }
        for ready in started {
            match ready.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error),
                // The setup panicked: the thread ended without answering.
                Err(_) => return Err(io::Error::other("a proxy worker panicked while starting")),
            }
        }
        Ok(workers)
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

fn run<S: FnOnce() -> io::Result<()>>(
    runtime: Runtime,
    setup: S,
    set_up: oneshot::Sender<io::Result<()>>,
    mut stopped: watch::Receiver<bool>,
    alive: oneshot::Sender<()>,
) {
    runtime.block_on(async {
        let result = setup();
        let failed = result.is_err();
        let _ = set_up.send(result);
        if !failed {
            // `Err` means the `Workers` is gone: stop too.
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    });
    // This cancels what is left (idle pooled connections, exchanges still open after the drain
    // deadline) without waiting long for blocking tasks.
    runtime.shutdown_timeout(BLOCKING_TASKS_GRACE);
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
                    Ok(())
                }
            })
            .collect();
        let workers = Workers::start(setups).await.unwrap();
        assert_eq!(workers.count(), 3);
        for _ in 0..500 {
            if Arc::strong_count(&held) == 4 {
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

    #[tokio::test]
    async fn a_failed_or_panicking_setup_fails_the_start_and_stops_the_others() {
        let held = Arc::new(());
        let keep = |held: Arc<()>| {
            move || {
                tokio::spawn(async move {
                    let _held = held;
                    std::future::pending::<()>().await;
                });
                Ok(())
            }
        };
        type Setup = Box<dyn FnOnce() -> io::Result<()> + Send>;
        let failing: Vec<Setup> = vec![
            Box::new(keep(held.clone())),
            Box::new(|| Err(io::Error::other("cannot register the listener"))),
        ];
        let error = Workers::start(failing).await.unwrap_err();
        assert_eq!(error.to_string(), "cannot register the listener");
        let panicking: Vec<Setup> =
            vec![Box::new(keep(held.clone())), Box::new(|| panic!("setup bug"))];
        let error = Workers::start(panicking).await.unwrap_err();
        assert!(error.to_string().contains("panicked"), "{error}");
        for _ in 0..500 {
            if Arc::strong_count(&held) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(Arc::strong_count(&held), 1, "the workers that started were stopped");
    }
}
