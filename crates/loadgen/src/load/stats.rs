//! Counting: how each request ended, and the tallies read from those counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Outcome counters shared by the workers.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    spans: AtomicU64,
    ok_requests: AtomicU64,
    ok_spans: AtomicU64,
    refused_requests: AtomicU64,
    refused_spans: AtomicU64,
    failed_requests: AtomicU64,
    failed_spans: AtomicU64,
    answered_nanos: AtomicU64,
    first_problem: Mutex<Option<String>>,
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The server answered with an error status.
    Refused(String),
    /// No answer: connection error, protocol error or timeout.
    Failed(String),
}

impl Stats {
    pub(super) fn record(&self, outcome: Outcome, spans: u64, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.spans.fetch_add(spans, Ordering::Relaxed);
        let problem = match outcome {
            Outcome::Ok => {
                self.ok_requests.fetch_add(1, Ordering::Relaxed);
                self.ok_spans.fetch_add(spans, Ordering::Relaxed);
                None
            }
            Outcome::Refused(why) => {
                self.refused_requests.fetch_add(1, Ordering::Relaxed);
                self.refused_spans.fetch_add(spans, Ordering::Relaxed);
                Some(format!("refused: {why}"))
            }
            Outcome::Failed(why) => {
                self.failed_requests.fetch_add(1, Ordering::Relaxed);
                self.failed_spans.fetch_add(spans, Ordering::Relaxed);
                Some(format!("failed: {why}"))
            }
        };
        if problem.is_none() {
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            self.answered_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
        if let Some(problem) = problem {
            let mut first = self.first_problem.lock().unwrap_or_else(PoisonError::into_inner);
            first.get_or_insert(problem);
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        Tally {
            requests: self.requests.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
            ok_requests: self.ok_requests.load(Ordering::Relaxed),
            ok_spans: self.ok_spans.load(Ordering::Relaxed),
            refused_requests: self.refused_requests.load(Ordering::Relaxed),
            refused_spans: self.refused_spans.load(Ordering::Relaxed),
            failed_requests: self.failed_requests.load(Ordering::Relaxed),
            failed_spans: self.failed_spans.load(Ordering::Relaxed),
            ok_nanos: self.answered_nanos.load(Ordering::Relaxed),
            first_problem: self
                .first_problem
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// A reading of [`Stats`], or the difference of two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    pub spans: u64,
    pub ok_requests: u64,
    pub ok_spans: u64,
    pub refused_requests: u64,
    pub refused_spans: u64,
    pub failed_requests: u64,
    pub failed_spans: u64,
    /// Total time of the successful requests, for the mean latency.
    pub ok_nanos: u64,
    pub first_problem: Option<String>,
}

impl Tally {
    /// What happened between `earlier` and this reading.
    pub fn since(&self, earlier: &Tally) -> Tally {
        Tally {
            requests: self.requests.saturating_sub(earlier.requests),
            spans: self.spans.saturating_sub(earlier.spans),
            ok_requests: self.ok_requests.saturating_sub(earlier.ok_requests),
            ok_spans: self.ok_spans.saturating_sub(earlier.ok_spans),
            refused_requests: self.refused_requests.saturating_sub(earlier.refused_requests),
            refused_spans: self.refused_spans.saturating_sub(earlier.refused_spans),
            failed_requests: self.failed_requests.saturating_sub(earlier.failed_requests),
            failed_spans: self.failed_spans.saturating_sub(earlier.failed_spans),
            ok_nanos: self.ok_nanos.saturating_sub(earlier.ok_nanos),
            first_problem: self.first_problem.clone(),
        }
    }

    /// Mean time of a successful request.
    pub fn mean_latency(&self) -> Duration {
        Duration::from_nanos(self.ok_nanos / self.ok_requests.max(1))
    }

    /// The one-line report of a load that ran for `elapsed`.
    pub fn summary(&self, elapsed: Duration, offered: Option<u64>) -> String {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let offered = offered.map_or_else(|| "max".to_string(), |rate| rate.to_string());
        format!(
            "sent {} spans in {} requests over {seconds:.2} s: {} ok, {} refused ({} requests), {} failed ({} requests); \
             achieved {:.0} spans/s accepted (offered {offered}), mean latency {:.2} ms",
            self.spans,
            self.requests,
            self.ok_spans,
            self.refused_spans,
            self.refused_requests,
            self.failed_spans,
            self.failed_requests,
            self.ok_spans as f64 / seconds,
            self.mean_latency().as_secs_f64() * 1e3,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_subtract_and_summarise() {
        let stats = Stats::default();
        stats.record(Outcome::Ok, 100, Duration::from_millis(2));
        let before = stats.tally();
        stats.record(Outcome::Ok, 100, Duration::from_millis(4));
        stats.record(Outcome::Refused("grpc-status 8".into()), 100, Duration::from_millis(1));
        let window = stats.tally().since(&before);
        assert_eq!((window.requests, window.ok_spans, window.refused_spans), (2, 100, 100));
        assert_eq!(window.mean_latency(), Duration::from_millis(4));
        assert_eq!(window.first_problem.as_deref(), Some("refused: grpc-status 8"));
        let line = window.summary(Duration::from_secs(1), Some(200));
        assert!(line.contains("achieved 100 spans/s accepted (offered 200)"), "{line}");
    }
}
