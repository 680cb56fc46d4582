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

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use crate::Protocol;
use crate::load::{Load, LoadConfig, Shape, Tally};
use crate::proc_stats::{self, Proc};
use crate::sink::{Counters, Counts, Sink};

/// The environment variable holding the sink's address in the collector config.
const SINK_VARIABLE: &str = "MESHTRACE_BENCH_SINK";

/// How long the collector may take to log `everything is ready`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait, after the load stops, for spans still in the collector to reach the sink.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the collector may take to exit after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the collector's resident memory is sampled during the window.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

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
        let exit = collector.stop();
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

// === the collector config ===

/// The collector config `run` uses, with the sink's address left to `${env:MESHTRACE_BENCH_SINK}`.
pub fn collector_config(processors: Processors, compression: Compression) -> String {
    let compression = match compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
    };
    let (processors_section, pipeline_processors) = match processors {
        Processors::Batch => ("processors:\n  batch:\n", "      processors: [batch]\n"),
        Processors::None => ("", ""),
    };
    format!(
        "# The collector config `meshtrace-loadgen run` generates. The sink's address comes from
# {SINK_VARIABLE}, which `run` sets; every port the collector listens on is 0, and `run`
# reads the ports it bound from its log.
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
{processors_section}exporters:
  otlp:
    endpoint: ${{env:{SINK_VARIABLE}}}
    tls:
      insecure: true
    compression: {compression}
service:
  telemetry:
    logs:
      level: info
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
{pipeline_processors}      exporters: [otlp]
"
    )
}

fn write_config(text: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("meshtrace-bench-{}.yaml", std::process::id()));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

// === the collector process ===

/// What the collector's log told about its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A receiver bound an address: `listening receiver=otlp protocol="grpc" endpoint=...`.
    Listening { protocol: String, address: SocketAddr },
    /// The collector's own metrics endpoint: `metrics listening endpoint=...`.
    Metrics(SocketAddr),
    /// `everything is ready`.
    Ready,
}

/// Reads one line of the collector's console (or JSON) log.
pub fn parse_log_line(line: &str) -> Option<LogEvent> {
    let line = strip_ansi(line);
    if line.contains("everything is ready") {
        return Some(LogEvent::Ready);
    }
    if !line.contains("listening") {
        return None;
    }
    let address = field(&line, "endpoint")?.parse().ok()?;
    if field(&line, "receiver").is_some() {
        let protocol = field(&line, "protocol")?.to_ascii_lowercase();
        return Some(LogEvent::Listening { protocol, address });
    }
    line.contains("metrics listening").then_some(LogEvent::Metrics(address))
}

/// The value of `key=value` or `key="value"` (console) or `"key":"value"` (JSON) in `line`.
fn field(line: &str, key: &str) -> Option<String> {
    let console = format!("{key}=");
    let json = format!("\"{key}\":");
    let mut search = 0;
    while let Some(found) = line.get(search..)?.find(&console) {
        let start = search + found;
        let boundary = line[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '{' || c == ',');
        if boundary {
            return Some(value_at(&line[start + console.len()..]));
        }
        search = start + console.len();
    }
    let start = line.find(&json)? + json.len();
    Some(value_at(line[start..].trim_start()))
}

/// A value at the start of `rest`: quoted up to the closing quote, or bare up to a space or
/// a JSON delimiter.
fn value_at(rest: &str) -> String {
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().unwrap_or_default().to_string()
    } else {
        rest.split(|c: char| c.is_whitespace() || c == ',' || c == '}')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Removes terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The collector's last log lines and its warnings and errors.
#[derive(Debug, Default)]
struct LogTail {
    last: VecDeque<String>,
    warnings: u64,
    errors: u64,
    first_problems: Vec<String>,
}

const LOG_TAIL_LINES: usize = 30;

impl LogTail {
    fn push(&mut self, line: &str) {
        let plain = strip_ansi(line);
        let level = plain.split_whitespace().nth(1).unwrap_or("");
        let is_warning = level == "WARN" || plain.contains("\"level\":\"WARN\"");
        let is_error = level == "ERROR" || plain.contains("\"level\":\"ERROR\"");
        if is_warning {
            self.warnings += 1;
        }
        if is_error {
            self.errors += 1;
        }
        if (is_warning || is_error) && self.first_problems.len() < 3 {
            self.first_problems.push(plain.clone());
        }
        if self.last.len() == LOG_TAIL_LINES {
            self.last.pop_front();
        }
        self.last.push_back(plain);
    }
}

/// A running collector process; killed if dropped before [`Collector::stop`].
struct Collector {
    child: Child,
    log: Arc<Mutex<LogTail>>,
    receivers: Vec<(String, SocketAddr)>,
    metrics: Option<SocketAddr>,
    stopped: bool,
}

impl Collector {
    /// Starts `binary collector --config CONFIG` and waits until it is ready.
    async fn start(binary: &Path, config: &Path, sink: SocketAddr) -> anyhow::Result<Collector> {
        let mut child = Command::new(binary)
            .arg("collector")
            .arg("--config")
            .arg(config)
            .env(SINK_VARIABLE, sink.to_string())
            // The log lines announcing the ports are at info level.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let log = Arc::new(Mutex::new(LogTail::default()));
        let (events, mut received) = mpsc::unbounded_channel();
        let tail = log.clone();
        std::thread::Builder::new()
            .name("collector-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(event) = parse_log_line(&line) {
                        let _ = events.send(event);
                    }
                    tail.lock().unwrap_or_else(PoisonError::into_inner).push(&line);
                }
            })
            .context("cannot start the log reader")?;
        let mut collector =
            Collector { child, log, receivers: Vec::new(), metrics: None, stopped: false };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline.into(), received.recv()).await;
            match event {
                Ok(Some(LogEvent::Ready)) => break,
                Ok(Some(LogEvent::Listening { protocol, address })) => {
                    collector.receivers.push((protocol, address))
                }
                Ok(Some(LogEvent::Metrics(address))) => collector.metrics = Some(address),
                Ok(None) => {
                    // The log closed: the collector exited. Give the reader a moment to finish.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let status = collector.child.try_wait().ok().flatten();
                    bail!(
                        "the collector exited before it was ready ({status:?}):\n{}",
                        collector.tail()
                    );
                }
                Err(_) => bail!(
                    "the collector was not ready within {STARTUP_TIMEOUT:?}:\n{}",
                    collector.tail()
                ),
            }
        }
        eprintln!(
            "collector ready: pid {}, receivers {:?}, metrics {:?}",
            collector.pid(),
            collector.receivers,
            collector.metrics
        );
        Ok(collector)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address the otlp receiver bound for `protocol`.
    fn receiver(&self, protocol: Protocol) -> anyhow::Result<SocketAddr> {
        self.receivers
            .iter()
            .find(|(name, _)| name == protocol.as_str())
            .map(|(_, address)| *address)
            .with_context(|| {
                format!(
                    "the collector logged no {} receiver address:\n{}",
                    protocol.as_str(),
                    self.tail()
                )
            })
    }

    fn tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.last.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }

    fn log_summary(&self) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut summary = format!("{} warnings, {} errors", log.warnings, log.errors);
        for line in &log.first_problems {
            let _ = write!(summary, "\n    {line}");
        }
        summary
    }

    /// SIGTERM, then SIGKILL after [`SHUTDOWN_TIMEOUT`]; says how it ended.
    fn stop(&mut self) -> String {
        self.stopped = true;
        let began = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            while began.elapsed() < SHUTDOWN_TIMEOUT {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return format!(
                        "exited after SIGTERM in {:.2} s ({status})",
                        began.elapsed().as_secs_f64()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("did not exit after SIGTERM within {SHUTDOWN_TIMEOUT:?}: killed")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// === measuring ===

/// Everything read at one edge of the measured window.
struct Snapshot {
    at: Instant,
    sink: Counts,
    load: Tally,
    collector_cpu: Option<Duration>,
    own_cpu: Duration,
}

impl Snapshot {
    fn take(counters: &Counters, load: &Load, collector: Option<&Proc>) -> Snapshot {
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

async fn sample_rss(proc: Proc, until: Instant) -> RssTrace {
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
async fn drain(counters: &Counters, expected: u64) -> Counts {
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
async fn scrape(address: SocketAddr) -> anyhow::Result<String> {
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

// === the report ===

struct CollectorFigures {
    cpu: Duration,
    peak_kib: u64,
    rss: RssTrace,
    metrics: Option<String>,
    /// Batches in the exporter's sending queue at the end of the window.
    queue_at_end: Option<f64>,
    log: String,
    exit: String,
}

struct Report {
    label: String,
    offered: Option<u64>,
    window: Duration,
    /// The load within the window.
    load: Tally,
    /// Spans the sink received within the window.
    delivered: u64,
    own_cpu: Duration,
    collector: Option<CollectorFigures>,
    /// The load over the whole run, warm-up included.
    total: Tally,
    /// The sink's counts after draining.
    drained: Counts,
    payload: String,
}

impl Report {
    fn render(&self, command: &str) -> String {
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
    fn listening_lines_give_the_receiver_ports() {
        let line = "2025-01-02T03:04:05.678901Z  INFO listening receiver=otlp protocol=\"grpc\" endpoint=127.0.0.1:41234";
        assert_eq!(
            parse_log_line(line),
            Some(LogEvent::Listening {
                protocol: "grpc".into(),
                address: "127.0.0.1:41234".parse().unwrap()
            })
        );
        let coloured = "\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[3mreceiver\u{1b}[0m\u{1b}[2m=\u{1b}[0motlp/in \u{1b}[3mprotocol\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"http\" \u{1b}[3mendpoint\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:4318 listening";
        assert_eq!(
            parse_log_line(coloured),
            Some(LogEvent::Listening {
                protocol: "http".into(),
                address: "127.0.0.1:4318".parse().unwrap()
            })
        );
        let json = r#"{"timestamp":"...","level":"INFO","fields":{"message":"listening","receiver":"otlp","protocol":"grpc","endpoint":"127.0.0.1:9"}}"#;
        assert_eq!(
            parse_log_line(json),
            Some(LogEvent::Listening {
                protocol: "grpc".into(),
                address: "127.0.0.1:9".parse().unwrap()
            })
        );
    }

    #[test]
    fn other_lines_are_recognised_or_ignored() {
        let metrics = "2025-01-02T03:04:05Z  INFO metrics listening endpoint=127.0.0.1:8888";
        assert_eq!(
            parse_log_line(metrics),
            Some(LogEvent::Metrics("127.0.0.1:8888".parse().unwrap()))
        );
        assert_eq!(
            parse_log_line("2025 INFO everything is ready components=3"),
            Some(LogEvent::Ready)
        );
        assert_eq!(parse_log_line("2025 INFO health check listening extension=health_check"), None);
        assert_eq!(
            parse_log_line("2025 INFO listening receiver=otlp protocol=grpc endpoint=nowhere"),
            None
        );
        // `myendpoint=` is not `endpoint=`.
        assert_eq!(field("a myendpoint=1 endpoint=2", "endpoint").as_deref(), Some("2"));
    }

    #[test]
    fn log_tail_counts_warnings_and_errors() {
        let mut tail = LogTail::default();
        tail.push("2025-01-02T03:04:05Z  WARN dropping data that could not be exported");
        tail.push("2025-01-02T03:04:05Z ERROR grpc server failed");
        tail.push("2025-01-02T03:04:05Z  INFO listening ... WARN in the text");
        assert_eq!((tail.warnings, tail.errors, tail.first_problems.len()), (1, 1, 2));
        for n in 0..100 {
            tail.push(&format!("line {n}"));
        }
        assert_eq!(tail.last.len(), LOG_TAIL_LINES);
    }

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
    fn the_bench_folder_holds_the_generated_configs() {
        assert_eq!(
            collector_config(Processors::Batch, Compression::None),
            include_str!("../../../bench/otlp-batch-otlp.yaml")
        );
        assert_eq!(
            collector_config(Processors::None, Compression::None),
            include_str!("../../../bench/otlp-otlp.yaml")
        );
        assert!(
            collector_config(Processors::Batch, Compression::Gzip).contains("compression: gzip")
        );
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

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
