//! Measuring: what is read at the edges of the window, the collector's memory through it, the
//! drain afterwards and the collector's own metrics.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::load::{Load, Tally};
use crate::proc_stats::{self, Proc};
use crate::sink::{Counters, Counts};

/// How long to wait, after the load stops, for spans still in the collector to reach the sink.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the collector's resident memory is sampled during the window.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// Everything read at one edge of the measured window.
pub(super) struct Snapshot {
    pub(super) at: Instant,
    pub(super) sink: Counts,
    pub(super) load: Tally,
    pub(super) collector_cpu: Option<Duration>,
    pub(super) own_cpu: Duration,
}

impl Snapshot {
    pub(super) fn take(counters: &Counters, load: &Load, collector: Option<&Proc>) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            sink: counters.counts(),
            load: load.tally(),
            collector_cpu: collector.and_then(|proc| proc.cpu_time().ok()),
            own_cpu: Proc::current().cpu_time().unwrap_or_default(),
        }
    }
}

/// The collector's resident memory (KiB) sampled evenly over the window, to show growth.
#[derive(Debug, Default, Clone)]
pub struct RssTrace {
    samples: Vec<u64>,
}

impl RssTrace {
    pub fn max_kib(&self) -> u64 {
        self.samples.iter().copied().max().unwrap_or_default()
    }

    /// The sample `fraction` of the way through the window.
    pub fn at(&self, fraction: f64) -> u64 {
        let last = self.samples.len().saturating_sub(1);
        let index = ((last as f64 * fraction.clamp(0.0, 1.0)).round() as usize).min(last);
        self.samples.get(index).copied().unwrap_or_default()
    }

    /// `a → b → c → d → e MiB` at 0, 25, 50, 75 and 100 % of the window.
    pub fn describe(&self) -> String {
        [0.0, 0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|fraction| format!("{:.1}", proc_stats::mib(self.at(*fraction))))
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

pub(super) async fn sample_rss(proc: Proc, until: Instant) -> RssTrace {
    let mut trace = RssTrace::default();
    loop {
        if let Ok(memory) = proc.memory() {
            trace.samples.push(memory.rss_kib);
        }
        if Instant::now() >= until {
            return trace;
        }
        tokio::time::sleep_until(until.min(Instant::now() + RSS_SAMPLE_INTERVAL).into()).await;
    }
}

/// Waits until the sink has `expected` spans or stops receiving; returns what it has then.
pub(super) async fn drain(counters: &Counters, expected: u64) -> Counts {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut last = counters.counts();
    let mut quiet_since = Instant::now();
    while last.spans < expected
        && Instant::now() < deadline
        && quiet_since.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counters.counts();
        if now.spans != last.spans {
            quiet_since = Instant::now();
        }
        last = now;
    }
    last
}

/// `GET /metrics` of the collector.
pub(super) async fn scrape(address: SocketAddr) -> anyhow::Result<String> {
    let mut sender = crate::load::connect_h1(&address.to_string()).await?;
    let request = http::Request::get("/metrics")
        .header(http::header::HOST, address.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The sum over every series of the metric `name` (a counter's `_total` suffix optional).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let metric = series.split('{').next().unwrap_or_default();
        let metric = metric.strip_suffix("_total").unwrap_or(metric);
        if metric == name {
            *sum.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_cover_every_series() {
        let text = "# TYPE otelcol_exporter_sent_spans counter\n\
                    otelcol_exporter_sent_spans_total{exporter=\"otlp\"} 7\n\
                    otelcol_exporter_sent_spans_total{exporter=\"otlp/2\"} 5\n\
                    otelcol_exporter_sent_spans_created 1.7e9\n\
                    # EOF\n";
        assert_eq!(metric_sum(text, "otelcol_exporter_sent_spans"), Some(12.0));
        assert_eq!(metric_sum(text, "otelcol_receiver_refused_spans"), None);
    }

    #[test]
    fn rss_traces_are_read_at_fractions_of_the_window() {
        let trace =
            RssTrace { samples: vec![1024, 2048, 3072, 4096, 5120, 4096, 3072, 2048, 1024] };
        assert_eq!(trace.max_kib(), 5120);
        assert_eq!((trace.at(0.0), trace.at(0.5), trace.at(1.0)), (1024, 5120, 1024));
        assert_eq!(trace.describe(), "1.0 → 3.0 → 5.0 → 3.0 → 1.0");
        assert_eq!(RssTrace::default().describe(), "0.0 → 0.0 → 0.0 → 0.0 → 0.0");
    }
}
