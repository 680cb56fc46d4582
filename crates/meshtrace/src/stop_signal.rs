//! SIGINT and SIGTERM, listened for from the start.
//!
//! The handlers are installed when [`StopSignal::listen`] is called, before anything starts, so
//! a signal that arrives while listeners are being bound or exporters started is not lost: it
//! is answered with the same orderly shutdown as one that arrives later. (A background job
//! started by a non-interactive shell inherits SIGINT as ignored; until a handler is
//! installed, such a signal would be dropped.)

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Both signals, registered.
pub struct StopSignal {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignal {
    /// Installs the handlers; call inside the runtime, before starting anything.
    pub fn listen() -> std::io::Result<StopSignal> {
        Ok(StopSignal {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves once either signal has arrived (also one that arrived before this call).
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        tracing::info!("signal received");
    }
}
