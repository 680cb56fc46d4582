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

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use otlp::Signal;
use prost::Message;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::Protocol;

/// How many distinct request buffers are encoded up front and sent in turn.
const DISTINCT_REQUESTS: u64 = 8;

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

// === payloads ===

/// The request bodies, encoded once.
pub struct Payloads {
    bodies: Vec<Bytes>,
    /// Spans in each body.
    spans: u64,
    /// Uncompressed protobuf bytes over all bodies.
    message_bytes: usize,
    /// Bytes actually sent over all bodies (compressed, framed).
    wire_bytes: usize,
    protocol: Protocol,
    gzip: bool,
}

impl Payloads {
    /// Encodes [`DISTINCT_REQUESTS`] requests of `spans` sidecar spans over one to three pods,
    /// as gRPC frames or OTLP/HTTP bodies.
    pub fn build(spans: usize, protocol: Protocol, gzip: bool) -> anyhow::Result<Payloads> {
        ensure!(spans > 0, "--spans-per-request must be at least 1");
        let mut bodies = Vec::new();
        let (mut message_bytes, mut wire_bytes) = (0, 0);
        for seed in 1..=DISTINCT_REQUESTS {
            let pods = 1 + (seed % 3) as usize;
            let message = otlp::fixtures::sidecar_traces_seeded(spans, pods, seed).encode_to_vec();
            let scan =
                otlp::wire::scan(Signal::Traces, &message).context("fixture does not scan")?;
            ensure!(scan.items == spans as u64, "fixture holds {} spans, not {spans}", scan.items);
            message_bytes += message.len();
            let body = if gzip { gzip_bytes(&message)? } else { message };
            let body = match protocol {
                Protocol::Grpc => grpc_frame(gzip, &body)?,
                Protocol::Http => Bytes::from(body),
            };
            wire_bytes += body.len();
            bodies.push(body);
        }
        Ok(Payloads { bodies, spans: spans as u64, message_bytes, wire_bytes, protocol, gzip })
    }

    /// Body number `index`, cycling.
    fn body(&self, index: usize) -> Bytes {
        self.bodies.get(index % self.bodies.len().max(1)).cloned().unwrap_or_default()
    }

    pub fn spans_per_request(&self) -> u64 {
        self.spans
    }

    /// Uncompressed protobuf bytes per span.
    pub fn bytes_per_span(&self) -> f64 {
        self.message_bytes as f64 / (self.bodies.len() as f64 * self.spans as f64).max(1.0)
    }

    pub fn describe(&self) -> String {
        let count = self.bodies.len().max(1);
        format!(
            "{count} distinct requests of {} spans over OTLP/{}, {} protobuf bytes each ({:.0} per span), {} bytes on the wire{}",
            self.spans,
            self.protocol.as_str(),
            self.message_bytes / count,
            self.bytes_per_span(),
            self.wire_bytes / count,
            if self.gzip { " (gzip)" } else { "" }
        )
    }
}

/// gzip at the default level.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

fn gzip_bytes(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    gzip(data).context("gzip failed")
}

/// A gRPC length-prefixed message: compressed flag, 32-bit big-endian length, message.
fn grpc_frame(compressed: bool, message: &[u8]) -> anyhow::Result<Bytes> {
    let length = u32::try_from(message.len()).context("message too large for a gRPC frame")?;
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(u8::from(compressed));
    frame.put_u32(length);
    frame.put_slice(message);
    Ok(frame.freeze())
}

// === pacing ===

/// Hands out evenly spaced send slots: a token bucket in its virtual-scheduling form (GCRA).
///
/// Times are offsets from the start of the load, so the arithmetic needs no clock and can be
/// tested as is. Each slot is one `interval` after the previous one; a caller that comes late
/// gets a slot in the past (send at once), but never more than `tolerance` in the past, which
/// bounds how many requests a load that fell behind sends back to back.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    tolerance: Duration,
    next: Duration,
}

impl Pacer {
    /// `requests_per_second` slots a second; up to `catch_up` of them may be sent at once after
    /// falling behind.
    pub fn new(requests_per_second: f64, catch_up: u32) -> Pacer {
        let interval = Duration::from_secs_f64(1.0 / requests_per_second.max(1e-9));
        Pacer { interval, tolerance: interval * catch_up, next: Duration::ZERO }
    }

    /// Reserves the next slot for a caller at `now` and returns when it may send.
    pub fn reserve(&mut self, now: Duration) -> Duration {
        let slot = self.next.max(now.saturating_sub(self.tolerance));
        self.next = slot + self.interval;
        slot
    }
}

// === counting ===

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
    fn record(&self, outcome: Outcome, spans: u64, took: Duration) {
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
        let mut clients = Vec::with_capacity(shape.concurrency);
        match config.protocol {
            Protocol::Grpc => {
                let uri: http::Uri = format!("http://{authority}{}", Signal::Traces.grpc_path())
                    .parse()
                    .context("invalid --target")?;
                let mut slots = Vec::new();
                for _ in 0..shape.connections.clamp(1, shape.concurrency) {
                    let sender = connect_h2(&authority).await?;
                    slots.push(Arc::new(H2Slot {
                        authority: authority.clone(),
                        sender: tokio::sync::Mutex::new(Some(sender)),
                    }));
                }
                for worker in 0..shape.concurrency {
                    let slot = slots.get(worker % slots.len()).cloned().context("no connection")?;
                    clients.push(Client::Grpc { slot, uri: uri.clone(), gzip: config.gzip });
                }
            }
            Protocol::Http => {
                for _ in 0..shape.concurrency {
                    let sender = connect_h1(&authority).await?;
                    clients.push(Client::Http {
                        authority: authority.clone(),
                        sender: Some(sender),
                        gzip: config.gzip,
                    });
                }
            }
        }
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

// === clients ===

enum Client {
    Grpc { slot: Arc<H2Slot>, uri: http::Uri, gzip: bool },
    Http { authority: String, sender: Option<http1::SendRequest<Full<Bytes>>>, gzip: bool },
}

/// One HTTP/2 connection shared by several workers, reconnected when it closes.
struct H2Slot {
    authority: String,
    sender: tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
}

impl H2Slot {
    async fn sender(&self) -> Result<http2::SendRequest<Full<Bytes>>, String> {
        let mut guard = self.sender.lock().await;
        if let Some(sender) = guard.as_ref().filter(|sender| !sender.is_closed()) {
            return Ok(sender.clone());
        }
        *guard = None;
        let sender = connect_h2(&self.authority).await.map_err(|error| format!("{error:#}"))?;
        *guard = Some(sender.clone());
        Ok(sender)
    }
}

async fn tcp(authority: &str) -> anyhow::Result<TokioIo<TcpStream>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    Ok(TokioIo::new(stream))
}

async fn connect_h2(authority: &str) -> anyhow::Result<http2::SendRequest<Full<Bytes>>> {
    let io = tcp(authority).await?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(io)
        .await
        .with_context(|| format!("HTTP/2 handshake with {authority} failed"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

pub(crate) async fn connect_h1(authority: &str) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let io = tcp(authority).await?;
    let (sender, connection) = http1::handshake(io)
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {authority} failed"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl Client {
    async fn send(&mut self, body: Bytes) -> Outcome {
        match self {
            Client::Grpc { slot, uri, gzip } => {
                let mut sender = match slot.sender().await {
                    Ok(sender) => sender,
                    Err(error) => return Outcome::Failed(error),
                };
                let mut request = Request::post(uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/grpc")
                    .header(http::header::TE, "trailers")
                    .header(http::header::USER_AGENT, "meshtrace-loadgen");
                if *gzip {
                    request = request.header("grpc-encoding", "gzip");
                }
                let request = match request.body(Full::new(body)) {
                    Ok(request) => request,
                    Err(error) => return Outcome::Failed(error.to_string()),
                };
                if let Err(error) = sender.ready().await {
                    return Outcome::Failed(error.to_string());
                }
                match sender.send_request(request).await {
                    Ok(response) => grpc_outcome(response).await,
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
            Client::Http { authority, sender, gzip } => {
                let ready = match sender.as_mut() {
                    Some(sender) if !sender.is_closed() => sender.ready().await.is_ok(),
                    _ => false,
                };
                if !ready {
                    *sender = None;
                    match connect_h1(authority).await {
                        Ok(connected) => *sender = Some(connected),
                        Err(error) => return Outcome::Failed(format!("{error:#}")),
                    }
                }
                let Some(sender) = sender.as_mut() else {
                    return Outcome::Failed("not connected".into());
                };
                let mut request = Request::post(Signal::Traces.http_path())
                    .header(http::header::HOST, authority.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .header(http::header::USER_AGENT, "meshtrace-loadgen");
                if *gzip {
                    request = request.header(http::header::CONTENT_ENCODING, "gzip");
                }
                let request = match request.body(Full::new(body)) {
                    Ok(request) => request,
                    Err(error) => return Outcome::Failed(error.to_string()),
                };
                match sender.send_request(request).await {
                    Ok(response) => http_outcome(response).await,
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
        }
    }
}

async fn grpc_outcome(response: Response<Incoming>) -> Outcome {
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(error) => return Outcome::Failed(format!("reading the response: {error}")),
    };
    // A trailers-only answer (how errors usually come) carries the status in the headers.
    let trailers = collected.trailers();
    let field = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.and_then(|trailers| trailers.get(name)))
            .and_then(|value| value.to_str().ok())
    };
    classify_grpc(parts.status, field("grpc-status"), field("grpc-message"))
}

/// The outcome of a gRPC answer from its HTTP status and its `grpc-status`/`grpc-message`.
pub fn classify_grpc(
    status: http::StatusCode,
    grpc_status: Option<&str>,
    message: Option<&str>,
) -> Outcome {
    match grpc_status {
        Some("0") if status == http::StatusCode::OK => Outcome::Ok,
        Some(code) => Outcome::Refused(format!("grpc-status {code}: {}", message.unwrap_or(""))),
        None if status != http::StatusCode::OK => Outcome::Refused(format!("HTTP {status}")),
        None => Outcome::Failed("answer without grpc-status".into()),
    }
}

async fn http_outcome(response: Response<Incoming>) -> Outcome {
    let status = response.status();
    match response.into_body().collect().await {
        Err(error) => Outcome::Failed(format!("reading the response: {error}")),
        Ok(_) if status.is_success() => Outcome::Ok,
        Ok(body) => {
            let text = body.to_bytes();
            let text = String::from_utf8_lossy(&text[..text.len().min(200)]).trim().to_string();
            Outcome::Refused(format!("HTTP {status}: {text}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_slots_evenly() {
        let mut pacer = Pacer::new(1000.0, 10);
        let slots: Vec<_> = (0..5).map(|_| pacer.reserve(Duration::ZERO)).collect();
        let ms = Duration::from_millis;
        assert_eq!(slots, [ms(0), ms(1), ms(2), ms(3), ms(4)]);
    }

    #[test]
    fn pacer_hands_out_rate_times_seconds_slots() {
        // Four workers, each taking a slot, "sending" (3.3 ms) and coming back for the next:
        // over one simulated second exactly 1000 slots fall inside it.
        let mut pacer = Pacer::new(1000.0, 10);
        let mut ready = [Duration::ZERO; 4];
        let mut inside = 0;
        while let Some((worker, now)) = ready.iter().copied().enumerate().min_by_key(|(_, t)| *t) {
            let slot = pacer.reserve(now);
            if slot >= Duration::from_secs(1) {
                break;
            }
            inside += 1;
            ready[worker] = slot.max(now) + Duration::from_micros(3300);
        }
        assert_eq!(inside, 1000);
    }

    #[test]
    fn pacer_catches_up_a_bounded_number_of_slots() {
        let mut pacer = Pacer::new(100.0, 3);
        assert_eq!(pacer.reserve(Duration::ZERO), Duration::ZERO);
        // A stall of one second: only three slots' worth may be sent back to back.
        let now = Duration::from_secs(1);
        let late: Vec<_> = (0..5).map(|_| pacer.reserve(now)).collect();
        let ms = Duration::from_millis;
        assert_eq!(late, [ms(970), ms(980), ms(990), ms(1000), ms(1010)]);
    }

    #[test]
    fn payloads_are_framed_and_scan_back() {
        let payloads = Payloads::build(100, Protocol::Grpc, false).unwrap();
        assert_eq!(payloads.bodies.len(), DISTINCT_REQUESTS as usize);
        let frame = payloads.body(3);
        assert_eq!(frame[0], 0);
        let length = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(length + 5, frame.len());
        assert_eq!(otlp::wire::scan(Signal::Traces, &frame[5..]).unwrap().items, 100);
        assert!(
            (600.0..=850.0).contains(&payloads.bytes_per_span()),
            "{}",
            payloads.bytes_per_span()
        );

        let http = Payloads::build(10, Protocol::Http, true).unwrap();
        let body = http.body(0);
        let mut message = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut message)
            .unwrap();
        assert_eq!(otlp::wire::scan(Signal::Traces, &message).unwrap().items, 10);
        assert_ne!(http.body(0), http.body(1), "distinct requests");
    }

    #[test]
    fn grpc_answers_are_classified() {
        let ok = http::StatusCode::OK;
        assert_eq!(classify_grpc(ok, Some("0"), None), Outcome::Ok);
        assert!(
            matches!(classify_grpc(ok, Some("8"), Some("full")), Outcome::Refused(m) if m.contains("8: full"))
        );
        assert!(matches!(
            classify_grpc(http::StatusCode::BAD_GATEWAY, None, None),
            Outcome::Refused(_)
        ));
        assert!(matches!(classify_grpc(ok, None, None), Outcome::Failed(_)));
    }

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

    #[test]
    fn targets_are_host_and_port() {
        assert_eq!(authority("127.0.0.1:4317").unwrap(), "127.0.0.1:4317");
        assert_eq!(authority("http://localhost:4318/").unwrap(), "localhost:4318");
        assert!(authority("localhost").is_err());
        assert!(authority("http://h:1/v1/traces").is_err());
    }
}
