//! `run`: the whole benchmark in one command.
//!
//! 1. Starts a counting [`Sink`] in this process on `127.0.0.1:0`.
//! 2. Writes a collector config (otlp receiver, gRPC and HTTP on port 0 → `batch` or nothing →
//!    `otlp` exporter to the sink, `tls.insecure`, `compression` as asked, default sending queue,
//!    own metrics on port 0), starts the collector with it, and reads the ports it bound from
//!    its log (`listening receiver=otlp protocol="grpc" endpoint=...`) until it logs
//!    `everything is ready`.
//! 3. Runs the load against the collector's receiver: a warm-up, then the measured window.
//!    Around the window it reads the sink's counts, the load's counts and the CPU time of the
//!    collector process and of this one; during it, the collector's resident memory.
//! 4. Waits for what the collector accepted to reach the sink, reads the collector's peak RSS
//!    (`VmHWM`) and its own metrics, stops it with SIGTERM, and prints a report ending in a
//!    markdown table row.
//!
//! With `--baseline` there is no collector: the load drives the sink directly, which shows what
//! this machine and the load tool can do on their own.
//!
//! The sink and the load share this process and compete with the collector for the same
//! cores, so delivered spans per second depends on all three; spans per CPU-second of the
//! collector is the figure that measures the collector alone.
//!
//! - [`config`]: the collector config;
//! - [`collector`], [`collector_log`]: the collector process and what its log says;
//! - [`measure`]: the readings around and through the window;
//! - [`report`]: the printed report and its table row.

mod collector;
mod collector_log;
mod config;
mod measure;
mod report;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::ValueEnum;

use crate::Protocol;
use crate::load::{Load, LoadConfig, Shape};
use crate::proc_stats::Proc;
use crate::sink::{Counters, Sink};
use collector::Collector;
use config::{collector_config, write_config};
use measure::{RssTrace, Snapshot, drain, metric_sum, sample_rss, scrape};
use report::{CollectorFigures, Report};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The collector binary, e.g. target/release/meshtrace.
    #[arg(long, required_unless_present_any = ["baseline", "print_config"])]
    collector: Option<PathBuf>,
    /// No collector: the load drives the in-process sink directly (what the machine and the
    /// load tool can do on their own).
    #[arg(long, conflicts_with_all = ["collector", "config"])]
    baseline: bool,
    /// The protocol the load sends to the collector's otlp receiver (the exporter always
    /// sends OTLP/gRPC to the sink).
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    /// Spans per second offered (ignored with --max).
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Load before the measured window, in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The processors between the receiver and the exporter.
    #[arg(long, value_enum, default_value_t = Processors::Batch)]
    processors: Processors,
    /// Compression of the load's requests and of the exporter's.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Send as fast as possible with --concurrency requests in flight, to find the ceiling.
    #[arg(long)]
    max: bool,
    /// Use this collector config instead of the generated one; `${env:MESHTRACE_BENCH_SINK}`
    /// is the sink's address, and the receiver's ports are read from the collector's log.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the generated collector config and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Processors {
    /// The batch processor with its defaults (8192 spans or 200 ms).
    Batch,
    /// Receiver straight to exporter.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
}

/// Runs the `run` subcommand.
pub async fn command(args: RunArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{}", collector_config(args.processors, args.compression));
        return Ok(());
    }
    ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be a positive number of seconds"
    );
    ensure!(args.warmup.is_finite() && args.warmup >= 0.0, "--warmup must be a number of seconds");
    let gzip = args.compression == Compression::Gzip;
    let counters = Arc::new(Counters::default());
    // Without a collector the sink takes the load's own protocol.
    let sink_protocol = if args.baseline { args.protocol } else { Protocol::Grpc };
    let sink = Sink::start("127.0.0.1:0", sink_protocol, counters.clone()).await?;

    let mut collector = None;
    let target = match &args.collector {
        Some(binary) if !args.baseline => {
            let config_path = match &args.config {
                Some(path) => path.clone(),
                None => write_config(&collector_config(args.processors, args.compression))?,
            };
            let started = Collector::start(binary, &config_path, sink.address()).await;
            if args.config.is_none() {
                let _ = std::fs::remove_file(&config_path);
            }
            let started = started?;
            let target = started.receiver(args.protocol)?;
            collector = Some(started);
            target
        }
        _ => sink.address(),
    };

    let config = LoadConfig {
        target: target.to_string(),
        protocol: args.protocol,
        rate: if args.max { None } else { Some(args.rate) },
        gzip,
        shape: args.shape.clone(),
    };
    let warmup = Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.duration);
    let load = Load::start(&config, Instant::now() + warmup + window).await?;
    let payload = load.payloads().describe();
    eprintln!("payload: {payload}");
    let collector_proc = collector.as_ref().map(|collector| Proc::pid(collector.pid()));

    tokio::time::sleep_until((load.started() + warmup).into()).await;
    let before = Snapshot::take(&counters, &load, collector_proc.as_ref());
    let sampler =
        collector_proc.clone().map(|proc| tokio::spawn(sample_rss(proc, before.at + window)));
    tokio::time::sleep_until((before.at + window).into()).await;
    let after = Snapshot::take(&counters, &load, collector_proc.as_ref());
    // The exporter's queue while the load is still on: where memory goes when export lags.
    let queue_at_end = match collector.as_ref().and_then(|collector| collector.metrics) {
        Some(address) => scrape(address)
            .await
            .ok()
            .and_then(|text| metric_sum(&text, "otelcol_exporter_queue_size")),
        None => None,
    };
    let rss = match sampler {
        Some(sampler) => sampler.await.unwrap_or_default(),
        None => RssTrace::default(),
    };

    let total = load.finish().await;
    let drained = drain(&counters, total.ok_spans).await;
    let mut report = Report {
        label: label(&args),
        offered: if args.max { None } else { Some(args.rate) },
        window: after.at.duration_since(before.at),
        load: after.load.since(&before.load),
        delivered: after.sink.spans.saturating_sub(before.sink.spans),
        own_cpu: after.own_cpu.saturating_sub(before.own_cpu),
        collector: None,
        total,
        drained,
        payload,
    };
    if let (Some(collector), Some(proc)) = (collector.as_mut(), collector_proc.as_ref()) {
        let peak = proc.memory().map(|memory| memory.peak_kib).unwrap_or_default();
        let metrics = match collector.metrics {
            Some(address) => scrape(address).await.ok(),
            None => None,
        };
        let exit = collector.stop().await;
        report.collector = Some(CollectorFigures {
            cpu: after
                .collector_cpu
                .unwrap_or_default()
                .saturating_sub(before.collector_cpu.unwrap_or_default()),
            peak_kib: peak,
            rss,
            metrics,
            queue_at_end,
            log: collector.log_summary(),
            exit,
        });
    }
    drop(sink);
    println!("{}", report.render(&command_line()));
    Ok(())
}

/// The run's name in the report, e.g. `otlp/grpc → batch → otlp/grpc`.
fn label(args: &RunArgs) -> String {
    let mut label = if args.baseline {
        format!("baseline: load → sink over otlp/{} (no collector)", args.protocol.as_str())
    } else {
        let middle = match args.processors {
            Processors::Batch => " → batch",
            Processors::None => "",
        };
        format!("otlp/{}{middle} → otlp/grpc", args.protocol.as_str())
    };
    if args.compression == Compression::Gzip {
        label.push_str(", gzip");
    }
    if args.max {
        let _ = write!(label, ", max ({} in flight)", args.shape.concurrency);
    }
    label
}

/// This process's command line, as it was typed (arguments with spaces quoted).
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(program) = args.first_mut() {
        // Show the program as the user would invoke it, not its resolved path.
        if let Some(name) = Path::new(program.as_str()).file_name().and_then(|name| name.to_str()) {
            *program = name.to_string();
        }
    }
    args.iter()
        .map(|arg| if arg.contains(' ') { format!("'{arg}'") } else { arg.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}
