//! `http-load`: a constant-rate HTTP/1.1 load that records every request's latency.
//!
//! For the sidecar benchmark: `connections` workers each hold one keep-alive HTTP/1.1
//! connection (`TCP_NODELAY`) per target and take evenly spaced send slots from one shared
//! [`Pacer`], so the offered rate holds as long as `connections` requests in flight are enough.
//! After a warm-up (not recorded), every request whose slot falls inside the window is timed from
//! the moment it is written until its whole response has been read; the percentiles are exact
//! (nearest rank over the sorted latencies). How late each request went out against its slot
//! (tokio's timer has a 1 ms resolution) is reported apart, so a rate that did not hold shows.
//!
//! **Several targets take turns.** With more than one `--target`, time is cut into slices of
//! `--slice` seconds and the targets take them in turn (A B C A B C …), each for `--duration`
//! seconds in all. A machine whose speed drifts over minutes (a shared VM) then slows every
//! target alike, so the differences between targets are what the targets cost, not when each
//! happened to run. A request belongs to the target whose slice its slot fell in.
//!
//! `--watch NAME=PID` reads each process's CPU time (`/proc/PID/stat` utime and stime) at every
//! slice boundary and charges what it used to the target whose slice it was, and reads its RSS
//! and peak RSS (`VmHWM`) at the end. A request still in flight at a boundary has its response's
//! CPU charged to the next slice: one request in a thousand at 1,000 requests/s and 1 s slices.
//!
//! Besides the readable lines, for each target one `RESULT` line and one `WATCH` line per
//! process give the figures as `key=value` pairs for scripts.

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
    /// Where to connect: HOST:PORT, or LABEL=HOST:PORT. Repeat to interleave several targets
    /// (each then needs a LABEL).
    #[arg(long = "target", value_name = "[LABEL=]HOST:PORT", required = true)]
    targets: Vec<String>,
    /// The `Host` header to send (default: the target's address).
    #[arg(long)]
    host: Option<String>,
    /// The request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Requests per second offered.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Keep-alive connections per target, one request in flight on each.
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Seconds measured per target, after the warm-up.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds of load before the window opens (sent, not recorded); with several targets,
    /// rounded up to whole rounds of turns, so that every target is warmed up.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// With several targets, the seconds of each turn.
    #[arg(long, default_value_t = 1.0)]
    slice: f64,
    /// A process to measure over the window, as NAME=PID; repeat for several.
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<String>,
    /// The label of a single target given without one.
    #[arg(long, default_value = "run")]
    label: String,
}

/// One place the load goes.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    label: String,
    address: String,
}

/// Parses `--target` values: a label is optional only when there is one target.
fn parse_targets(specs: &[String], default_label: &str) -> anyhow::Result<Vec<Target>> {
    let targets = specs
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((label, address)) => {
                ensure!(!label.is_empty() && !address.is_empty(), "--target {spec}: empty part");
                Ok(Target { label: label.to_string(), address: address.to_string() })
            }
            None if specs.len() == 1 => {
                Ok(Target { label: default_label.to_string(), address: spec.clone() })
            }
            None => bail!("--target {spec}: several targets need LABEL=HOST:PORT each"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, target) in targets.iter().enumerate() {
        ensure!(
            !targets[..i].iter().any(|other| other.label == target.label),
            "--target: the label {} is used twice",
            target.label
        );
    }
    Ok(targets)
}

/// Which target each moment of a run belongs to: after the warm-up, `targets` take turns of
/// `slice`, `turns` each; the warm-up takes turns the same way, so every connection is warm.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Schedule {
    warmup: Duration,
    slice: Duration,
    targets: usize,
    turns: u32,
}

impl Schedule {
    /// One turn of `duration` for a single target; otherwise turns of about `slice` that add up
    /// to `duration` for each target, after a warm-up of whole rounds (every target's turn
    /// once): `warmup` rounded up, so that no target starts cold.
    fn new(targets: usize, duration: Duration, slice: Duration, warmup: Duration) -> Schedule {
        if targets <= 1 || slice >= duration {
            return Schedule { warmup, slice: duration, targets: targets.max(1), turns: 1 };
        }
        let turns = (duration.as_secs_f64() / slice.as_secs_f64()).round().max(1.0) as u32;
        let slice = duration / turns;
        let round = slice * targets as u32;
        let rounds = (warmup.as_secs_f64() / round.as_secs_f64()).ceil() as u32;
        Schedule { warmup: round * rounds, slice, targets, turns }
    }

    /// Each target's measured time.
    fn per_target(&self) -> Duration {
        self.slice * self.turns
    }

    /// From the start to the end of the window.
    fn end(&self) -> Duration {
        self.warmup + self.per_target() * self.targets as u32
    }

    /// The target whose turn it is `at` after the start.
    fn target_at(&self, at: Duration) -> usize {
        let into = at.checked_sub(self.warmup).unwrap_or(at);
        (into.as_nanos() / self.slice.as_nanos().max(1)) as usize % self.targets
    }

    /// The window's slice boundaries, from its start to its end, after the start.
    fn boundaries(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..=self.turns * self.targets as u32).map(|k| self.warmup + self.slice * k)
    }
}

/// What one worker saw inside the window, for one target.
#[derive(Debug, Default)]
struct Recorded {
    latencies: Vec<Duration>,
    lags: Vec<Duration>,
    failed: u64,
    /// Requests sent in the warm-up, answered or not.
    warmup: u64,
    first_problem: Option<String>,
}

impl Recorded {
    fn absorb(&mut self, other: Recorded) {
        self.latencies.extend(other.latencies);
        self.lags.extend(other.lags);
        self.failed += other.failed;
        self.warmup += other.warmup;
        self.first_problem = self.first_problem.take().or(other.first_problem);
    }
}

/// Runs the `http-load` subcommand.
pub async fn command(args: HttpLoadArgs) -> anyhow::Result<()> {
    ensure!(args.rate > 0.0 && args.connections > 0, "--rate and --connections must be positive");
    ensure!(args.duration > 0.0 && args.warmup >= 0.0, "--duration must be positive");
    ensure!(args.slice > 0.0, "--slice must be positive");
    let targets = parse_targets(&args.targets, &args.label)?;
    let watched = parse_watch(&args.watch)?;
    let schedule = Schedule::new(
        targets.len(),
        Duration::from_secs_f64(args.duration),
        Duration::from_secs_f64(args.slice),
        Duration::from_secs_f64(args.warmup),
    );

    let mut connections = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut senders = Vec::with_capacity(targets.len());
        for target in &targets {
            senders.push(Some(connect_h1(&target.address).await?));
        }
        connections.push(senders);
    }
    let addresses: Arc<[String]> = targets.iter().map(|target| target.address.clone()).collect();
    let pacer = Arc::new(Mutex::new(Pacer::new(args.rate, MAX_CATCH_UP_REQUESTS)));
    let start = Instant::now();
    let workers: Vec<_> = connections
        .into_iter()
        .map(|senders| {
            let worker = Worker {
                addresses: addresses.clone(),
                host: args.host.clone(),
                path: args.path.clone(),
                pacer: pacer.clone(),
                start,
                schedule,
            };
            tokio::spawn(worker.run(senders))
        })
        .collect();

    // Each watched process's CPU time is read at every turn's boundary; what it used since the
    // previous boundary is charged to that turn's target.
    let mut charged = vec![vec![CpuTime::default(); watched.len()]; targets.len()];
    let mut previous: Option<(Duration, Vec<CpuTime>)> = None;
    let mut own_at_start = Duration::ZERO;
    for boundary in schedule.boundaries() {
        tokio::time::sleep_until((start + boundary).into()).await;
        let reading = cpu_times(&watched);
        match &previous {
            Some((turn_start, before)) => {
                let totals = &mut charged[schedule.target_at(*turn_start)];
                for (total, (now, before)) in totals.iter_mut().zip(reading.iter().zip(before)) {
                    *total += now.since(before);
                }
            }
            None => own_at_start = Proc::current().cpu_time().unwrap_or_default(),
        }
        previous = Some((boundary, reading));
    }
    let own = Proc::current().cpu_time().unwrap_or_default().saturating_sub(own_at_start);

    let mut recorded: Vec<Recorded> = targets.iter().map(|_| Recorded::default()).collect();
    for worker in workers {
        let seen = worker.await.context("a load worker panicked")?;
        for (all, seen) in recorded.iter_mut().zip(seen) {
            all.absorb(seen);
        }
    }
    let window = schedule.per_target();
    let seconds = window.as_secs_f64();
    for ((target, recorded), charged) in targets.iter().zip(&recorded).zip(&charged) {
        report(&args, target, recorded, window);
        let krps = recorded.latencies.len() as f64 / seconds / 1000.0;
        for ((name, proc_), used) in watched.iter().zip(charged) {
            let cpu = used.total().as_secs_f64();
            let system = used.system.as_secs_f64();
            let memory = proc_.memory().unwrap_or_default();
            println!(
                "{name}: {cpu:.2} CPU-s over {seconds:.0} s = {:.4} vCPU = {:.4} vCPU per 1,000 \
                 rps ({:.2} CPU-s per 1,000 requests, {:.0} % in the kernel); RSS {:.1} MiB, \
                 peak (VmHWM) {:.1} MiB",
                cpu / seconds,
                cpu / seconds / krps.max(1e-9),
                cpu / (krps * seconds).max(1e-9),
                100.0 * system / cpu.max(1e-9),
                proc_stats::mib(memory.rss_kib),
                proc_stats::mib(memory.peak_kib),
            );
            println!(
                "WATCH label={} name={name} cpu_s={cpu:.3} system_s={system:.3} \
                 seconds={seconds:.3} rps={:.1} rss_kib={} hwm_kib={}",
                target.label,
                krps * 1000.0,
                memory.rss_kib,
                memory.peak_kib
            );
        }
        if let Some(problem) = &recorded.first_problem {
            eprintln!("{}: first problem: {problem}", target.label);
        }
    }
    let whole = (schedule.end() - schedule.warmup).as_secs_f64();
    let own = own.as_secs_f64();
    println!(
        "load tool itself: {own:.2} CPU-s over the {whole:.0} s window ({:.3} vCPU)",
        own / whole
    );
    Ok(())
}

struct Worker {
    addresses: Arc<[String]>,
    host: Option<String>,
    path: String,
    pacer: Arc<Mutex<Pacer>>,
    start: Instant,
    schedule: Schedule,
}

type Sender = http1::SendRequest<Empty<Bytes>>;

impl Worker {
    /// Sends on `senders[i]` in target `i`'s turns until the window ends.
    async fn run(self, mut senders: Vec<Option<Sender>>) -> Vec<Recorded> {
        let mut recorded: Vec<Recorded> = senders.iter().map(|_| Recorded::default()).collect();
        loop {
            let slot = {
                let mut pacer = self.pacer.lock().unwrap_or_else(PoisonError::into_inner);
                pacer.reserve(self.start.elapsed())
            };
            if slot >= self.schedule.end() {
                return recorded;
            }
            let target = self.schedule.target_at(slot);
            let due = self.start + slot;
            tokio::time::sleep_until(due.into()).await;
            let sent = Instant::now();
            let outcome = self.send(&mut senders[target], &self.addresses[target]).await;
            let took = sent.elapsed();
            let recorded = &mut recorded[target];
            if slot < self.schedule.warmup {
                recorded.warmup += 1;
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

    /// One GET to `address`; reconnects first when the connection is gone, and drops it on any
    /// error.
    async fn send(&self, sender: &mut Option<Sender>, address: &str) -> anyhow::Result<()> {
        let ready = match sender.as_mut() {
            Some(open) if !open.is_closed() => open.ready().await.is_ok(),
            _ => false,
        };
        if !ready {
            *sender = None;
            *sender = Some(connect_h1(address).await?);
        }
        let Some(open) = sender.as_mut() else { bail!("not connected") };
        let request = http::Request::get(self.path.as_str())
            .header(http::header::HOST, self.host.as_deref().unwrap_or(address))
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

fn report(args: &HttpLoadArgs, target: &Target, recorded: &Recorded, window: Duration) {
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
        "{} ({}): {ok} ok, {} failed in {:.0} s ({rps:.1} rps of {} offered, {} connections)",
        target.label,
        target.address,
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
        "RESULT label={} ok={ok} failed={} warmup={} rps={rps:.1} p50_us={:.1} p90_us={:.1} \
         p99_us={:.1} p999_us={:.1} max_us={:.1} mean_us={:.1} lag_p99_us={:.1}",
        target.label,
        recorded.failed,
        recorded.warmup,
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
    fn a_single_target_takes_the_whole_window_in_one_turn() {
        let schedule = Schedule::new(1, secs(30), secs(1), secs(3));
        assert_eq!(schedule.per_target(), secs(30));
        assert_eq!(schedule.end(), secs(33));
        assert_eq!(schedule.boundaries().collect::<Vec<_>>(), vec![secs(3), secs(33)]);
        assert_eq!(schedule.target_at(secs(20)), 0);
    }

    #[test]
    fn several_targets_take_turns_that_add_up_to_the_duration_each() {
        // A 2 s warm-up is rounded up to a whole round of turns, 3 s for 3 targets.
        let schedule = Schedule::new(3, secs(4), secs(1), secs(2));
        assert_eq!(schedule.per_target(), secs(4));
        assert_eq!(schedule.end(), secs(3 + 12));
        let boundaries: Vec<_> = schedule.boundaries().collect();
        assert_eq!(boundaries.len(), 13, "12 turns between 13 boundaries");
        assert_eq!((boundaries[0], boundaries[12]), (secs(3), secs(15)));
        // After the warm-up: A B C A B C …, a turn starting at each boundary.
        let turns: Vec<_> = boundaries[..12].iter().map(|at| schedule.target_at(*at)).collect();
        assert_eq!(turns, vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
        assert_eq!(schedule.target_at(secs(4) - Duration::from_nanos(1)), 0);
        // The warm-up takes turns too, so every target's connections are warm.
        let warm: Vec<_> = [0, 1, 2].map(|s| schedule.target_at(secs(s))).to_vec();
        assert_eq!(warm, vec![0, 1, 2]);
        // Four targets and 3 s asked: 4 s, a turn each.
        assert_eq!(Schedule::new(4, secs(20), secs(1), secs(3)).warmup, secs(4));
        assert_eq!(Schedule::new(4, secs(20), secs(1), Duration::ZERO).warmup, Duration::ZERO);
    }

    #[test]
    fn turns_are_shortened_to_divide_the_duration() {
        let schedule = Schedule::new(2, secs(10), secs(3), Duration::ZERO);
        // Three turns of 3.333333333 s: the duration to the nanosecond.
        assert_eq!(schedule.slice, Duration::from_nanos(3_333_333_333));
        assert!(secs(10) - schedule.per_target() < Duration::from_nanos(3));
        assert_eq!(schedule.boundaries().count(), 7);
    }

    #[test]
    fn targets_need_labels_only_when_there_are_several() {
        let one = parse_targets(&["127.0.0.1:80".to_string()], "direct").unwrap();
        assert_eq!(one, vec![Target { label: "direct".into(), address: "127.0.0.1:80".into() }]);
        let two = ["a=127.0.0.1:80".to_string(), "b=127.0.0.1:81".to_string()];
        let two = parse_targets(&two, "run").unwrap();
        assert_eq!((two[0].label.as_str(), two[1].address.as_str()), ("a", "127.0.0.1:81"));
        let unlabelled = ["a=127.0.0.1:80".to_string(), "127.0.0.1:81".to_string()];
        assert!(parse_targets(&unlabelled, "run").unwrap_err().to_string().contains("LABEL="));
        let twice = ["a=127.0.0.1:80".to_string(), "a=127.0.0.1:81".to_string()];
        assert!(parse_targets(&twice, "run").unwrap_err().to_string().contains("twice"));
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn watch_specs_need_a_name_and_a_pid() {
        assert!(parse_watch(&["sidecar".to_string()]).is_err());
        assert!(parse_watch(&["sidecar=x".to_string()]).is_err());
        let own = format!("self={}", std::process::id());
        assert_eq!(parse_watch(&[own]).map(|w| w.len()).ok(), Some(1));
    }
}
