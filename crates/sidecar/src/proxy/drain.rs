//! Shutdown in two steps, as Envoy drains: first stop accepting and let open exchanges finish,
//! then, at the deadline, close whatever is still open.
//!
//! Every task that serves traffic (accept loops, connections, upgrade tunnels) holds a
//! [`Drain`]: it watches the phase, and its clone of a channel sender tells [`Shutdown`] that
//! it is still alive. When the last one is dropped the sidecar has drained. Dropping the
//! [`Shutdown`] without running it closes everything at once.

use std::time::Instant;

use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// Stop accepting; finish open exchanges; close idle connections.
    Draining,
    /// Close everything now.
    Closed,
}

/// Held by each task serving traffic.
#[derive(Debug, Clone)]
pub(crate) struct Drain {
    phase: watch::Receiver<Phase>,
    _alive: mpsc::Sender<()>,
}

/// Held by the running sidecar.
#[derive(Debug)]
pub(crate) struct Shutdown {
    phase: watch::Sender<Phase>,
    drained: mpsc::Receiver<()>,
}

pub(crate) fn channel() -> (Shutdown, Drain) {
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let (alive_tx, alive_rx) = mpsc::channel(1);
    (Shutdown { phase: phase_tx, drained: alive_rx }, Drain { phase: phase_rx, _alive: alive_tx })
}

impl Drain {
    /// Resolves once the phase is `at_least` (or the sidecar is gone).
    pub(crate) async fn reached(&mut self, at_least: Phase) {
        let _ = self.phase.wait_for(|phase| *phase >= at_least).await;
    }
}

impl Shutdown {
    /// Drains until `deadline`, then closes what is left; true when everything finished in time.
    pub(crate) async fn run(mut self, deadline: Instant) -> bool {
        self.phase.send_replace(Phase::Draining);
        let drained = tokio::time::timeout_at(deadline.into(), self.drained.recv()).await.is_ok();
        if !drained {
            self.phase.send_replace(Phase::Closed);
            let _ = self.drained.recv().await;
        }
        drained
    }
}
