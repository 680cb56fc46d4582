//! The text the debug exporter prints, laid out as the collector's debug exporter lays it out,
//! so that people reading it (and scripts grepping it) find what they know.
//!
//! - basic: one summary line with counts;
//! - normal: a line per resource and scope, then one line per span, log record or data point;
//! - detailed: everything, field by field.
//!
//! Times print as Go prints them (`2023-11-14 22:13:20.5 +0000 UTC`), values as the collector
//! does (`Str(GET)`, `Int(200)`), ids as lowercase hex.
//!
//! - [`hierarchy`]: the resource → scope → item walk the three signals share, once for each
//!   verbosity;
//! - [`lines`]: the line builders (headers, `key=value` lists, padded fields);
//! - [`traces`], [`logs`], [`metrics`]: how one span, log record or metric prints;
//! - [`values`]: attribute values, ids and timestamps.

mod hierarchy;
mod lines;
mod logs;
mod metrics;
mod traces;
mod values;

#[cfg(test)]
mod fixtures;

use otlp::{Batch, DecodeError, Signal};

pub use logs::{logs_detailed, logs_normal, logs_summary};
pub use metrics::{metrics_detailed, metrics_normal, metrics_summary};
pub use traces::{traces_detailed, traces_normal, traces_summary};
pub use values::{as_string, hex, timestamp, typed};

/// How much the debug exporter prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Basic,
    Normal,
    Detailed,
}

impl Verbosity {
    /// Reads a `verbosity` value; the collector compares case-insensitively.
    pub fn parse(text: &str) -> Option<Verbosity> {
        match text.to_ascii_lowercase().as_str() {
            "basic" => Some(Verbosity::Basic),
            "normal" => Some(Verbosity::Normal),
            "detailed" => Some(Verbosity::Detailed),
            _ => None,
        }
    }
}

/// The printout of one batch: the summary line, and at `normal` and `detailed` the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printout {
    pub summary: String,
    pub body: Option<String>,
}

/// Decodes `batch` and formats it at `verbosity`.
pub fn render(batch: Batch, verbosity: Verbosity) -> Result<Printout, DecodeError> {
    Ok(match batch.signal() {
        Signal::Traces => {
            let request = batch.into_traces()?;
            printout(&request, verbosity, traces_summary, traces_normal, traces_detailed)
        }
        Signal::Logs => {
            let request = batch.into_logs()?;
            printout(&request, verbosity, logs_summary, logs_normal, logs_detailed)
        }
        Signal::Metrics => {
            let request = batch.into_metrics()?;
            printout(&request, verbosity, metrics_summary, metrics_normal, metrics_detailed)
        }
    })
}

/// The summary of `request`, and its body as `verbosity` asks.
fn printout<R>(
    request: &R,
    verbosity: Verbosity,
    summary: fn(&R) -> String,
    normal: fn(&R) -> String,
    detailed: fn(&R) -> String,
) -> Printout {
    let body = match verbosity {
        Verbosity::Basic => None,
        Verbosity::Normal => Some(normal(request)),
        Verbosity::Detailed => Some(detailed(request)),
    };
    Printout { summary: summary(request), body }
}

#[cfg(test)]
mod tests {
    use super::fixtures::traces;
    use super::*;

    #[test]
    fn render_decodes_wire_batches() {
        use prost::Message;
        let wire = traces().encode_to_vec();
        let batch = Batch::from_wire(Signal::Traces, wire.into()).unwrap();
        let printout = render(batch, Verbosity::Basic).unwrap();
        assert_eq!(printout.summary, "TracesExporter {\"resource spans\": 1, \"spans\": 1}");
        assert_eq!(printout.body, None);
        let printout = render(Batch::from_traces(traces()), Verbosity::Normal).unwrap();
        assert!(printout.body.unwrap().contains("GET /cart 0102030405060708090a0b0c0d0e0f10"));
    }
}
