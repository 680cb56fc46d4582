//! `load`: sends realistic sidecar spans over OTLP/gRPC or OTLP/HTTP.
//!
//! Requests are built from [`otlp::fixtures::sidecar_traces_seeded`] (Envoy sidecar spans with
//! twenty string tags, about 700 bytes each once encoded) and encoded once, before the clock
//! starts, into a few distinct buffers (for gRPC: whole length-prefixed frames, gzip already
//! applied when asked) that are then sent over and over. The load tool shares the machine with
//! the collector it measures, so sending costs it little more than writing bytes to a socket.
//!
//! `concurrency` workers each keep one request in flight. Paced, they take send slots from one
//! shared [`Pacer`], so the rate holds whatever the latency, as long as enough requests can be
//! in flight; with `--max` they send back to back. Nothing is retried: each request is counted
//! once as ok, refused (the server answered with an error status) or failed (no answer:
//! connection error or timeout).
//!
//! gRPC goes over raw HTTP/2 (hyper) rather than a tonic client so the pre-encoded frames go out
//! untouched; requests are spread over `connections` HTTP/2 connections. OTLP/HTTP uses one
//! HTTP/1.1 keep-alive connection per worker, as HTTP/1.1 cannot multiplex.
//!
//! - [`payloads`]: building and encoding the requests;
//! - [`pacing`]: the send slots of a paced load;
//! - [`stats`]: counting outcomes;
//! - [`client`], [`grpc`], [`http`]: sending one request over each protocol.

mod client;
mod grpc;
mod http;
mod pacing;
mod payloads;
mod stats;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use tokio::task::JoinHandle;

use crate::Protocol;
use client::Client;
pub(crate) use http::connect_h1;
pub use pacing::Pacer;
pub use payloads::Payloads;
/// The sink's tests compress with the same gzip the load uses.
#[cfg(test)]
pub(crate) use payloads::gzip;
pub use stats::{Outcome, Stats, Tally};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How many requests' worth of send slots a paced load may catch up at once after falling
/// behind (a stall in the server, a late timer).
const MAX_CATCH_UP_REQUESTS: u32 = 10;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Where to send: host:port (an `http://` prefix is ignored).
    #[arg(long)]
    target: String,
    /// The OTLP transport to send over.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    /// Spans per second to send (required unless --max).
    #[arg(long, required_unless_present = "max")]
    rate: Option<u64>,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Send as fast as possible with --concurrency requests in flight instead of pacing.
    #[arg(long)]
    max: bool,
    /// Compress request bodies with gzip.
    #[arg(long)]
    gzip: bool,
    #[command(flatten)]
    shape: Shape,
}

/// How requests are made up and sent; shared by `load` and `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct Shape {
    /// Spans in each request.
    #[arg(long, default_value_t = 100)]
    pub spans_per_request: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// HTTP/2 connections the gRPC requests are spread over (OTLP/HTTP uses one per request in
    /// flight).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
}

/// Runs the `load` subcommand.
pub async fn command(args: LoadArgs) -> anyhow::Result<()> {
    ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be a positive number of seconds"
    );
    let config = LoadConfig {
        target: args.target,
        protocol: args.protocol,
        rate: if args.max { None } else { args.rate },
        gzip: args.gzip,
        shape: args.shape,
    };
    let load =
        Load::start(&config, Instant::now() + Duration::from_secs_f64(args.duration)).await?;
    println!("payload: {}", load.payloads().describe());
    let started = load.started();
    let tally = load.finish().await;
    println!("{}", tally.summary(started.elapsed(), config.rate));
    if let Some(problem) = tally.first_problem {
        println!("first problem: {problem}");
    }
    Ok(())
}

/// What to send, where and how fast.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: String,
    pub protocol: Protocol,
    /// Spans per second; `None` sends as fast as possible.
    pub rate: Option<u64>,
    pub gzip: bool,
    pub shape: Shape,
}

// === the load ===

/// A running load; workers stop by themselves at the deadline given to [`Load::start`].
pub struct Load {
    stats: Arc<Stats>,
    payloads: Arc<Payloads>,
    workers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Load {
    /// Encodes the payloads, connects, and starts sending until `until`.
    pub async fn start(config: &LoadConfig, until: Instant) -> anyhow::Result<Load> {
        let shape = &config.shape;
        ensure!(shape.concurrency > 0, "--concurrency must be at least 1");
        let payloads =
            Arc::new(Payloads::build(shape.spans_per_request, config.protocol, config.gzip)?);
        let authority = authority(&config.target)?;
        let clients = match config.protocol {
            Protocol::Grpc => grpc::clients(&authority, shape, config.gzip).await?,
            Protocol::Http => http::clients(&authority, shape, config.gzip).await?,
        };
        let pacer = config.rate.map(|rate| {
            let requests_per_second = rate as f64 / payloads.spans_per_request() as f64;
            Arc::new(Mutex::new(Pacer::new(requests_per_second, MAX_CATCH_UP_REQUESTS)))
        });
        let stats = Arc::new(Stats::default());
        let started = Instant::now();
        let workers = clients
            .into_iter()
            .enumerate()
            .map(|(index, client)| {
                let worker = Worker {
                    index,
                    client,
                    payloads: payloads.clone(),
                    stats: stats.clone(),
                    pacer: pacer.clone(),
                    started,
                    until,
                };
                tokio::spawn(worker.run())
            })
            .collect();
        Ok(Load { stats, payloads, workers, started })
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn payloads(&self) -> &Payloads {
        &self.payloads
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.stats.tally()
    }

    /// Waits for the workers to stop (at the deadline, after their last answer).
    pub async fn finish(self) -> Tally {
        for worker in self.workers {
            let _ = worker.await;
        }
        self.stats.tally()
    }
}

/// `host:port` from `--target`.
fn authority(target: &str) -> anyhow::Result<String> {
    let bare = target.strip_prefix("http://").unwrap_or(target).trim_end_matches('/');
    if bare.is_empty() || !bare.contains(':') || bare.contains('/') {
        bail!("--target must be host:port, not \"{target}\"");
    }
    Ok(bare.to_string())
}

struct Worker {
    index: usize,
    client: Client,
    payloads: Arc<Payloads>,
    stats: Arc<Stats>,
    pacer: Option<Arc<Mutex<Pacer>>>,
    started: Instant,
    until: Instant,
}

impl Worker {
    async fn run(mut self) {
        let spans = self.payloads.spans_per_request();
        let mut next = self.index;
        loop {
            let send_at = match &self.pacer {
                Some(pacer) => {
                    let now = self.started.elapsed();
                    let slot = pacer.lock().unwrap_or_else(PoisonError::into_inner).reserve(now);
                    self.started + slot
                }
                None => Instant::now(),
            };
            if send_at >= self.until {
                break;
            }
            // A deadline already due would still wait for the timer's next tick (about 1 ms).
            if send_at > Instant::now() {
                tokio::time::sleep_until(send_at.into()).await;
            }
            let body = self.payloads.body(next);
            next += 1;
            let began = Instant::now();
            let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, self.client.send(body)).await
            {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Failed(format!("no answer within {REQUEST_TIMEOUT:?}")),
            };
            let failed = matches!(outcome, Outcome::Failed(_));
            self.stats.record(outcome, spans, began.elapsed());
            if failed {
                // Do not spin on a dead server; the slot is spent either way.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_host_and_port() {
        assert_eq!(authority("127.0.0.1:4317").unwrap(), "127.0.0.1:4317");
        assert_eq!(authority("http://localhost:4318/").unwrap(), "localhost:4318");
        assert!(authority("localhost").is_err());
        assert!(authority("http://h:1/v1/traces").is_err());
    }
}
