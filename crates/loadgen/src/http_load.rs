//! `http-load`: a constant-rate HTTP/1.1 load that records every request's latency.
//!
//! For the sidecar benchmark: `connections` workers each hold one keep-alive HTTP/1.1
//! connection (`TCP_NODELAY`) and take evenly spaced send slots from one shared [`Pacer`], so
//! the offered rate holds as long as `connections` requests in flight are enough. After a warm-up
//! (not recorded), every request whose slot falls inside the window is timed from the moment it
//! is written until its whole response has been read; the percentiles are exact (nearest rank
//! over the sorted latencies). How late each request went out against its slot (tokio's timer
//! has a 1 ms resolution) is reported apart, so a rate that did not hold shows.
//!
//! `--watch NAME=PID` reads each process's CPU time (`/proc/PID/stat` utime and stime) at the
//! start and end of the window, and its RSS and peak RSS (`VmHWM`) at the end.
//!
//! Besides the readable lines, one `RESULT` line and one `WATCH` line per process give the
//! figures as `key=value` pairs for scripts.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;

use crate::load::{Pacer, connect_h1};
use crate::proc_stats::{self, CpuTime, Proc};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How many slots a worker that fell behind may send back to back.
const MAX_CATCH_UP_REQUESTS: u32 = 10;

#[derive(clap::Args)]
pub struct HttpLoadArgs {
    /// Where to connect: host:port.
    #[arg(long)]
    target: String,
    /// The `Host` header to send (default: the target).
    #[arg(long)]
    host: Option<String>,
    /// The request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Requests per second offered.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds of load before the window opens (sent, not recorded).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// A process to measure over the window, as NAME=PID; repeat for several.
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<String>,
    /// A name for this run in the report lines.
    #[arg(long, default_value = "run")]
    label: String,
}

/// What one worker saw inside the window.
#[derive(Debug, Default)]
struct Recorded {
    latencies: Vec<Duration>,
    lags: Vec<Duration>,
    failed: u64,
    first_problem: Option<String>,
}

/// Runs the `http-load` subcommand.
pub async fn command(args: HttpLoadArgs) -> anyhow::Result<()> {
    ensure!(args.rate > 0.0 && args.connections > 0, "--rate and --connections must be positive");
    ensure!(args.duration > 0.0 && args.warmup >= 0.0, "--duration must be positive");
    let watched = parse_watch(&args.watch)?;
    let host = args.host.clone().unwrap_or_else(|| args.target.clone());
    let warmup = Duration::from_secs_f64(args.warmup);
    let end = warmup + Duration::from_secs_f64(args.duration);

    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        senders.push(connect_h1(&args.target).await?);
    }
    let pacer = Arc::new(Mutex::new(Pacer::new(args.rate, MAX_CATCH_UP_REQUESTS)));
    let start = Instant::now();
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let worker = Worker {
                target: args.target.clone(),
                host: host.clone(),
                path: args.path.clone(),
                pacer: pacer.clone(),
                start,
                warmup,
                end,
            };
            tokio::spawn(worker.run(Some(sender)))
        })
        .collect();

    tokio::time::sleep_until((start + warmup).into()).await;
    let cpu_before = cpu_times(&watched);
    let own_before = Proc::current().cpu_time().unwrap_or_default();
    tokio::time::sleep_until((start + end).into()).await;
    let cpu_after = cpu_times(&watched);
    let own_after = Proc::current().cpu_time().unwrap_or_default();

    let mut all = Recorded::default();
    for worker in workers {
        let recorded = worker.await.context("a load worker panicked")?;
        all.latencies.extend(recorded.latencies);
        all.lags.extend(recorded.lags);
        all.failed += recorded.failed;
        all.first_problem = all.first_problem.or(recorded.first_problem);
    }
    report(&args, &all, end - warmup);
    let seconds = (end - warmup).as_secs_f64();
    let own = own_after.saturating_sub(own_before).as_secs_f64();
    println!("load tool itself: {own:.2} CPU-s over the window ({:.3} vCPU)", own / seconds);
    let krps = all.latencies.len() as f64 / seconds / 1000.0;
    for ((name, proc_), (before, after)) in watched.iter().zip(cpu_before.iter().zip(&cpu_after)) {
        let used = after.since(before);
        let cpu = used.total().as_secs_f64();
        let system = used.system.as_secs_f64();
        let memory = proc_.memory().unwrap_or_default();
        println!(
            "{name}: {cpu:.2} CPU-s over {seconds:.0} s = {:.4} vCPU = {:.4} vCPU per 1,000 rps \
             ({:.2} CPU-s per 1,000 requests, {:.0} % in the kernel); RSS {:.1} MiB, peak \
             (VmHWM) {:.1} MiB",
            cpu / seconds,
            cpu / seconds / krps.max(1e-9),
            cpu / (krps * seconds).max(1e-9),
            100.0 * system / cpu.max(1e-9),
            proc_stats::mib(memory.rss_kib),
            proc_stats::mib(memory.peak_kib),
        );
        println!(
            "WATCH label={} name={name} cpu_s={cpu:.3} system_s={system:.3} seconds={seconds:.3} \
             rps={:.1} rss_kib={} hwm_kib={}",
            args.label,
            krps * 1000.0,
            memory.rss_kib,
            memory.peak_kib
        );
    }
    if let Some(problem) = &all.first_problem {
        eprintln!("first problem: {problem}");
    }
    Ok(())
}

struct Worker {
    target: String,
    host: String,
    path: String,
    pacer: Arc<Mutex<Pacer>>,
    start: Instant,
    warmup: Duration,
    end: Duration,
}

type Sender = http1::SendRequest<Empty<Bytes>>;

impl Worker {
    async fn run(self, mut sender: Option<Sender>) -> Recorded {
        let mut recorded = Recorded::default();
        loop {
            let slot = {
                let mut pacer = self.pacer.lock().unwrap_or_else(PoisonError::into_inner);
                pacer.reserve(self.start.elapsed())
            };
            if slot >= self.end {
                return recorded;
            }
            let due = self.start + slot;
            tokio::time::sleep_until(due.into()).await;
            let sent = Instant::now();
            let outcome = self.send(&mut sender).await;
            let took = sent.elapsed();
            if slot < self.warmup {
                continue;
            }
            match outcome {
                Ok(()) => {
                    recorded.latencies.push(took);
                    recorded.lags.push(sent.saturating_duration_since(due));
                }
                Err(error) => {
                    recorded.failed += 1;
                    recorded.first_problem.get_or_insert_with(|| format!("{error:#}"));
                }
            }
        }
    }

    /// One GET; reconnects first when the connection is gone, and drops it on any error.
    async fn send(&self, sender: &mut Option<Sender>) -> anyhow::Result<()> {
        let ready = match sender.as_mut() {
            Some(open) if !open.is_closed() => open.ready().await.is_ok(),
            _ => false,
        };
        if !ready {
            *sender = None;
            *sender = Some(connect_h1(&self.target).await?);
        }
        let Some(open) = sender.as_mut() else { bail!("not connected") };
        let request = http::Request::get(self.path.as_str())
            .header(http::header::HOST, self.host.as_str())
            .header(http::header::USER_AGENT, "meshtrace-loadgen")
            .body(Empty::new())?;
        let exchange = async {
            let response = open.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        };
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(anyhow::anyhow!("HTTP {status}")),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(anyhow::anyhow!("no response within {REQUEST_TIMEOUT:?}")),
        };
        if result.is_err() {
            *sender = None;
        }
        result
    }
}

fn parse_watch(specs: &[String]) -> anyhow::Result<Vec<(String, Proc)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, pid) = spec.split_once('=').context("--watch takes NAME=PID")?;
            let pid: u32 = pid.parse().with_context(|| format!("not a pid: {pid}"))?;
            let proc_ = Proc::pid(pid);
            proc_.cpu_time().with_context(|| format!("cannot read process {pid}"))?;
            Ok((name.to_string(), proc_))
        })
        .collect()
}

fn cpu_times(watched: &[(String, Proc)]) -> Vec<CpuTime> {
    watched.iter().map(|(_, proc_)| proc_.cpu_times().unwrap_or_default()).collect()
}

/// The value at quantile `q` (0–1] of `sorted`, by nearest rank.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(args: &HttpLoadArgs, recorded: &Recorded, window: Duration) {
    let mut latencies = recorded.latencies.clone();
    latencies.sort_unstable();
    let mut lags = recorded.lags.clone();
    lags.sort_unstable();
    let ok = latencies.len();
    let rps = ok as f64 / window.as_secs_f64();
    let mean = latencies.iter().sum::<Duration>().checked_div(ok.max(1) as u32).unwrap_or_default();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p = |q| us(percentile(&latencies, q));
    println!(
        "{}: {ok} ok, {} failed in {:.0} s ({rps:.1} rps of {} offered, {} connections)",
        args.label,
        recorded.failed,
        window.as_secs_f64(),
        args.rate,
        args.connections
    );
    println!(
        "latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  mean {:.0}",
        p(0.50),
        p(0.90),
        p(0.99),
        p(0.999),
        p(1.0),
        us(mean)
    );
    println!(
        "send lag behind schedule µs: p50 {:.0}  p99 {:.0}  max {:.0}",
        us(percentile(&lags, 0.5)),
        us(percentile(&lags, 0.99)),
        us(percentile(&lags, 1.0))
    );
    println!(
        "RESULT label={} ok={ok} failed={} rps={rps:.1} p50_us={:.1} p90_us={:.1} p99_us={:.1} \
         p999_us={:.1} max_us={:.1} mean_us={:.1} lag_p99_us={:.1}",
        args.label,
        recorded.failed,
        p(0.50),
        p(0.90),
        p(0.99),
        p(0.999),
        p(1.0),
        us(mean),
        us(percentile(&lags, 0.99)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<_> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_micros(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_micros(99));
        assert_eq!(percentile(&sorted, 1.0), Duration::from_micros(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn watch_specs_need_a_name_and_a_pid() {
        assert!(parse_watch(&["sidecar".to_string()]).is_err());
        assert!(parse_watch(&["sidecar=x".to_string()]).is_err());
        let own = format!("self={}", std::process::id());
        assert_eq!(parse_watch(&[own]).map(|w| w.len()).ok(), Some(1));
    }
}
