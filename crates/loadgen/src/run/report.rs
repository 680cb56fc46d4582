//! The report `run` prints: the figures in words, then one markdown table row.

use std::fmt::Write as _;
use std::time::Duration;

use super::measure::{RssTrace, metric_sum};
use crate::load::Tally;
use crate::proc_stats;
use crate::sink::Counts;

pub(super) struct CollectorFigures {
    pub(super) cpu: Duration,
    pub(super) peak_kib: u64,
    pub(super) rss: RssTrace,
    pub(super) metrics: Option<String>,
    /// Batches in the exporter's sending queue at the end of the window.
    pub(super) queue_at_end: Option<f64>,
    pub(super) log: String,
    pub(super) exit: String,
}

pub(super) struct Report {
    pub(super) label: String,
    pub(super) offered: Option<u64>,
    pub(super) window: Duration,
    /// The load within the window.
    pub(super) load: Tally,
    /// Spans the sink received within the window.
    pub(super) delivered: u64,
    pub(super) own_cpu: Duration,
    pub(super) collector: Option<CollectorFigures>,
    /// The load over the whole run, warm-up included.
    pub(super) total: Tally,
    /// The sink's counts after draining.
    pub(super) drained: Counts,
    pub(super) payload: String,
}

impl Report {
    pub(super) fn render(&self, command: &str) -> String {
        let seconds = self.window.as_secs_f64().max(1e-9);
        let delivered_rate = self.delivered as f64 / seconds;
        let offered = self.offered.map_or_else(|| "max".to_string(), thousands);
        let mut out = String::new();
        let _ = writeln!(out, "== {} ==", self.label);
        let _ = writeln!(out, "payload:   {}", self.payload);
        let _ = writeln!(
            out,
            "window:    {seconds:.2} s measured after the warm-up; offered {offered} spans/s"
        );
        let _ = writeln!(
            out,
            "load:      sent {} spans, accepted {} ({:.0}/s), refused {}, failed {}; mean latency {:.2} ms",
            thousands(self.load.spans),
            thousands(self.load.ok_spans),
            self.load.ok_spans as f64 / seconds,
            thousands(self.load.refused_spans),
            thousands(self.load.failed_spans),
            self.load.mean_latency().as_secs_f64() * 1e3,
        );
        let _ = writeln!(
            out,
            "sink:      delivered {} spans in the window: {} spans/s",
            thousands(self.delivered),
            thousands(delivered_rate as u64)
        );
        let own_cores = self.own_cpu.as_secs_f64() / seconds;
        let mut row_collector_cores = "—".to_string();
        let mut row_per_cpu = "—".to_string();
        let mut row_peak = "—".to_string();
        let mut lost = 0;
        if let Some(collector) = &self.collector {
            let cpu = collector.cpu.as_secs_f64();
            let per_cpu = if cpu > 0.0 { self.delivered as f64 / cpu } else { f64::INFINITY };
            let _ = writeln!(
                out,
                "collector: CPU {cpu:.2} s in the window ({:.2} cores) → {} spans per CPU-second (clock tick 1/{} s)",
                cpu / seconds,
                thousands(per_cpu as u64),
                proc_stats::clock_ticks(),
            );
            let _ = writeln!(
                out,
                "           RSS: peak (VmHWM, whole life) {:.1} MiB; in the window {} MiB (0/25/50/75/100 %), max {:.1} MiB",
                proc_stats::mib(collector.peak_kib),
                collector.rss.describe(),
                proc_stats::mib(collector.rss.max_kib()),
            );
            lost = self.total.ok_spans.saturating_sub(self.drained.spans);
            let _ = writeln!(
                out,
                "after:     the collector accepted {} spans over the whole run; the sink received {} ({} missing)",
                thousands(self.total.ok_spans),
                thousands(self.drained.spans),
                thousands(lost),
            );
            if let Some(metrics) = &collector.metrics {
                let get = |name| {
                    metric_sum(metrics, name)
                        .map_or_else(|| "n/a".to_string(), |v| thousands(v as u64))
                };
                let _ = writeln!(
                    out,
                    "metrics:   receiver accepted {} refused {}; exporter sent {} send_failed {} enqueue_failed {}",
                    get("otelcol_receiver_accepted_spans"),
                    get("otelcol_receiver_refused_spans"),
                    get("otelcol_exporter_sent_spans"),
                    get("otelcol_exporter_send_failed_spans"),
                    get("otelcol_exporter_enqueue_failed_spans"),
                );
                let _ = writeln!(
                    out,
                    "           batches sent on size {}, on timeout {}; exporter queue at the end of the window: {} batches",
                    get("otelcol_processor_batch_batch_size_trigger_send"),
                    get("otelcol_processor_batch_timeout_trigger_send"),
                    collector
                        .queue_at_end
                        .map_or_else(|| "n/a".to_string(), |queue| thousands(queue as u64)),
                );
            }
            let _ = writeln!(out, "log:       {}", collector.log);
            let _ = writeln!(out, "shutdown:  {}", collector.exit);
            row_collector_cores = format!("{:.2}", cpu / seconds);
            row_per_cpu = thousands(per_cpu as u64);
            row_peak = format!("{:.1}", proc_stats::mib(collector.peak_kib));
        }
        let _ = writeln!(
            out,
            "loadgen:   load + sink process CPU {:.2} s ({own_cores:.2} cores)",
            self.own_cpu.as_secs_f64()
        );
        if let Some(problem) = &self.total.first_problem {
            let _ = writeln!(out, "first problem: {problem}");
        }
        let _ = writeln!(out, "command:   {command}");
        let _ = writeln!(out);
        let _ = writeln!(out, "{TABLE_HEADER}");
        let _ = write!(
            out,
            "| {} | {offered} | {} | {row_collector_cores} | {row_per_cpu} | {row_peak} | {own_cores:.2} | {} | {} | {} |",
            self.label,
            thousands(delivered_rate as u64),
            thousands(self.load.refused_spans),
            thousands(self.load.failed_spans),
            thousands(lost),
        );
        out
    }
}

const TABLE_HEADER: &str = "| run | offered spans/s | delivered spans/s | collector CPU (cores) | spans per collector CPU-s | collector peak RSS (MiB) | loadgen CPU (cores) | refused spans | failed spans | lost spans |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
