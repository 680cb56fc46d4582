//! Pipeline health as the `health_check` extension reports it.
//!
//! Exporters report each failed send; the extension asks whether more than a threshold of them
//! happened within an interval (the collector's `check_collector_pipeline`). The service sets the
//! overall status: starting, ready, shutting down.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so tests can pause time.
use tokio::time::Instant;

/// Remember at most this many failures: enough for any sane threshold, bounded memory.
const MAX_REMEMBERED_FAILURES: usize = 10_000;

/// The collector's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Starting = 0,
    Ready = 1,
    ShuttingDown = 2,
}

#[derive(Default)]
struct Shared {
    status: AtomicU8,
    failures: Mutex<VecDeque<Instant>>,
    started_at: Mutex<Option<std::time::SystemTime>>,
}

/// A cheap handle to the collector's health, shared by the service, exporters and extensions.
#[derive(Clone, Default)]
pub struct HealthReporter {
    shared: Arc<Shared>,
}

impl HealthReporter {
    pub fn new() -> HealthReporter {
        HealthReporter::default()
    }

    pub fn set_status(&self, status: Status) {
        if status == Status::Ready
            && let Ok(mut started) = self.shared.started_at.lock()
        {
            *started = Some(std::time::SystemTime::now());
        }
        self.shared.status.store(status as u8, Ordering::Release);
    }

    pub fn status(&self) -> Status {
        match self.shared.status.load(Ordering::Acquire) {
            1 => Status::Ready,
            2 => Status::ShuttingDown,
            _ => Status::Starting,
        }
    }

    /// When the collector became ready.
    pub fn ready_since(&self) -> Option<std::time::SystemTime> {
        self.shared.started_at.lock().ok().and_then(|started| *started)
    }

    /// An exporter gave up on a send (after its retries, or on a permanent error).
    pub fn exporter_failed(&self) {
        if let Ok(mut failures) = self.shared.failures.lock() {
            if failures.len() == MAX_REMEMBERED_FAILURES {
                failures.pop_front();
            }
            failures.push_back(Instant::now());
        }
    }

    /// Exporter failures within the last `interval`.
    pub fn recent_failures(&self, interval: Duration) -> usize {
        let Ok(mut failures) = self.shared.failures.lock() else { return 0 };
        let now = Instant::now();
        while failures.front().is_some_and(|at| now.duration_since(*at) > interval) {
            failures.pop_front();
        }
        failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_within_the_interval_only() {
        let health = HealthReporter::new();
        assert_eq!(health.status(), Status::Starting);
        health.exporter_failed();
        health.exporter_failed();
        assert_eq!(health.recent_failures(Duration::from_secs(60)), 2);
        assert_eq!(health.recent_failures(Duration::ZERO), 0);
        health.set_status(Status::Ready);
        assert_eq!(health.status(), Status::Ready);
        assert!(health.ready_since().is_some());
    }
}
