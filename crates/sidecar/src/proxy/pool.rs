//! Upstream connection pools: one per listener and protocol in each worker, keyed by the
//! forwarded request's authority, over hyper's connection-level client.
//!
//! The pool keeps every connection it opened (busy or idle) in a list per authority, and
//! sends each request on the most recently used connection that can take it at once:
//!
//! - **HTTP/1.1**: a connection takes a request when hyper's dispatcher asks for one
//!   ([`is_ready`](http1::SendRequest::is_ready)), that is, once the previous response has
//!   been read to its end. A connection still streaming a response body is skipped, not
//!   waited for, and a new one is opened when none is free. The request is handed to the
//!   dispatcher while the list is locked, so no other request can take the same connection.
//! - **HTTP/2** (gRPC): one connection per authority carries every request as a stream.
//!   Requests that find none wait for the one connection being opened, as Envoy queues new
//!   streams on a connecting client, instead of each opening its own; when that open fails
//!   to connect, they fail with it (Envoy's `UF` for every pending request).
//!
//! Why not hyper-util's pooled client: per request it hashed its key twice, boxed and moved
//! large futures, and spawned a task to wait for each HTTP/1 connection to become idle
//! again; that was about a tenth of a proxied request's user-space instructions (see
//! BENCHMARKS.md). Here a connection is never "returned": readiness is read when a request
//! looks for one.
//!
//! A request handed back by a pooled connection that closed before writing it (the upstream
//! timed out its keep-alive as we sent) is sent again on another connection, as hyper-util
//! retried it. Connections idle for longer than the idle timeout are closed by a sweep that
//! runs every half timeout, so an idle connection lives at most 1.5 timeouts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::connect::{ConnectError, Connector};
use super::exchange::RequestBody;
use crate::request_map::RequestMap;

/// A request's hold on an [`Opener`]. Dropping it (also when the request is abandoned) drops
/// the pool's entry once no request holds it: a failure is only kept for those that waited.
struct OpenerTicket<'a> {
    pool: &'a Pool,
    authority: &'a Key,
    opener: Arc<Opener>,
}

impl Drop for OpenerTicket<'_> {
    fn drop(&mut self) {
        let mut openers = self.pool.openers.lock().unwrap_or_else(PoisonError::into_inner);
        // Held by the map and by this ticket alone.
        if openers.get(self.authority).is_some_and(|kept| Arc::strong_count(kept) == 2) {
            openers.remove(self.authority);
        }
    }
}

/// The protocol a pool speaks upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (the client spoke HTTP/2, as gRPC does).
    Http2,
}

/// A response and the upstream address that sent it.
pub(crate) struct Sent {
    pub(crate) response: Response<Incoming>,
    pub(crate) upstream: SocketAddr,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be opened (Envoy's `UF`).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A connection was open, but the protocol handshake or the exchange on it failed before
    /// a response head (Envoy's `UC`).
    #[error("upstream {upstream}: {error}")]
    Exchange {
        upstream: SocketAddr,
        #[source]
        error: hyper::Error,
    },
}

impl SendError {
    /// The upstream address, when a connection was made.
    pub(crate) fn upstream(&self) -> Option<SocketAddr> {
        match self {
            SendError::Connect(_) => None,
            SendError::Exchange { upstream, .. } => Some(*upstream),
        }
    }
}

/// One listener's upstream connections in one worker, for one protocol.
pub(crate) struct Pool {
    protocol: Protocol,
    connector: Arc<Connector>,
    idle_timeout: Duration,
    connections: Mutex<RequestMap<Key, Vec<Connection>>>,
    /// HTTP/2: the authorities a connection is being opened to, while requests wait for it.
    openers: Mutex<RequestMap<Key, Arc<Opener>>>,
}

/// Takes turns opening an HTTP/2 connection to one authority; holds how the last open that
/// failed to connect failed, for the requests that waited for it.
#[derive(Default)]
struct Opener {
    turn: tokio::sync::Mutex<Option<ConnectFailure>>,
}

/// A failed connect, kept to fail the requests that waited for it the same way.
struct ConnectFailure {
    at: Instant,
    error: ConnectError,
}

struct Connection {
    sender: Sender,
    upstream: SocketAddr,
    last_used: Instant,
}

enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    /// Whether a request sent now starts at once: an idle HTTP/1 connection, any open HTTP/2
    /// connection.
    fn is_free(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_ready(),
            Sender::Http2(sender) => !sender.is_closed(),
        }
    }

    /// Hands `request` to the connection's dispatcher now; the future waits for the answer and
    /// does not borrow the sender (`use<>`), so the pool's lock is not held while waiting.
    fn send(
        &mut self,
        request: Request<RequestBody>,
    ) -> Pending<impl Future<Output = Answer> + use<>, impl Future<Output = Answer> + use<>> {
        match self {
            Sender::Http1(sender) => Pending::Http1(sender.try_send_request(request)),
            Sender::Http2(sender) => Pending::Http2(sender.try_send_request(request)),
        }
    }
}

type Answer = Result<Response<Incoming>, TrySendError<Request<RequestBody>>>;

/// A request handed to a connection, waiting for its response head.
enum Pending<A, B> {
    Http1(A),
    Http2(B),
}

impl<A: Future<Output = Answer>, B: Future<Output = Answer>> Pending<A, B> {
    async fn answer(self) -> Answer {
        match self {
            Pending::Http1(answer) => answer.await,
            Pending::Http2(answer) => answer.await,
        }
    }
}

impl Pool {
    /// A pool, and the task that closes its idle connections (it ends with the pool). Must be
    /// called on the runtime that will serve the pool's connections.
    pub(crate) fn new(
        protocol: Protocol,
        connector: Arc<Connector>,
        idle_timeout: Duration,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            protocol,
            connector,
            idle_timeout,
            connections: Mutex::new(RequestMap::default()),
            openers: Mutex::new(RequestMap::default()),
        });
        tokio::spawn(sweep(Arc::downgrade(&pool), (idle_timeout / 2).max(SWEEP_FLOOR)));
        pool
    }

    /// Sends `request` to `authority` (the pool key) and waits for the response head. An
    /// HTTP/1 request goes in origin form; an HTTP/2 request's URI must be absolute (its
    /// `:scheme` and `:authority`).
    pub(crate) async fn send(
        &self,
        authority: Authority,
        mut request: Request<RequestBody>,
    ) -> Result<Sent, SendError> {
        if self.protocol == Protocol::Http1 {
            to_origin_form(&mut request, &authority);
        }
        let authority = Key(authority);
        // Pooled connections first; one closed under the request hands it back.
        loop {
            let (pending, upstream) = match self.send_pooled(&authority, request) {
                Ok(sent) => sent,
                Err(unsent) => {
                    request = unsent;
                    break;
                }
            };
            match pending.answer().await {
                Ok(response) => return Ok(Sent { response, upstream }),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => {
                        tracing::debug!(error = %failed.error(), %upstream, "pooled connection closed; sending again");
                        request = unsent;
                    }
                    None => {
                        return Err(SendError::Exchange { upstream, error: failed.into_error() });
                    }
                },
            }
        }
        // Opening a connection is the rare path, and its futures are the large ones: boxed,
        // they are not part of every request's future (held per connection by hyper).
        if self.protocol == Protocol::Http2 {
            return Box::pin(self.send_on_shared_open(authority, request)).await;
        }
        Box::pin(self.send_on_opened(authority, request)).await
    }

    /// HTTP/1 without an idle connection: opens one for this request.
    async fn send_on_opened(
        &self,
        authority: Key,
        request: Request<RequestBody>,
    ) -> Result<Sent, SendError> {
        let (sender, upstream) = self.open(&authority).await?;
        let pending = self.send_on_new(authority, sender, upstream, request);
        answered(pending, upstream).await
    }

    /// HTTP/2 without a connection: one request at a time per authority opens one; those that
    /// waited send on it, or fail as it failed to connect.
    async fn send_on_shared_open(
        &self,
        authority: Key,
        request: Request<RequestBody>,
    ) -> Result<Sent, SendError> {
        let ticket = self.opener(&authority);
        let asked = Instant::now();
        let mut last_failure = ticket.opener.turn.lock().await;
        let request = match self.send_pooled(&authority, request) {
            // Opened while this request waited.
            Ok((pending, upstream)) => {
                drop(last_failure);
                drop(ticket);
                return answered(pending, upstream).await;
            }
            Err(request) => request,
        };
        if let Some(failure) = last_failure.as_ref().filter(|failure| failure.at >= asked) {
            return Err(SendError::Connect(failure.error.clone()));
        }
        match self.open(&authority).await {
            Ok((sender, upstream)) => {
                *last_failure = None;
                // Pooled before the turn passes, so the next in line finds it.
                let pending = self.send_on_new(authority.clone(), sender, upstream, request);
                drop(last_failure);
                drop(ticket);
                answered(pending, upstream).await
            }
            Err(error) => {
                if let SendError::Connect(connect) = &error {
                    *last_failure =
                        Some(ConnectFailure { at: Instant::now(), error: connect.clone() });
                }
                Err(error)
            }
        }
    }

    /// Sends the first request on a connection just opened, and pools the connection.
    fn send_on_new(
        &self,
        authority: Key,
        mut sender: Sender,
        upstream: SocketAddr,
        request: Request<RequestBody>,
    ) -> Pending<impl Future<Output = Answer> + use<>, impl Future<Output = Answer> + use<>> {
        let pending = sender.send(request);
        self.lock().entry(authority).or_default().push(Connection {
            sender,
            upstream,
            last_used: Instant::now(),
        });
        pending
    }

    /// The opener of `authority`'s HTTP/2 connections, held until the ticket is dropped.
    fn opener<'a>(&'a self, authority: &'a Key) -> OpenerTicket<'a> {
        let mut openers = self.openers.lock().unwrap_or_else(PoisonError::into_inner);
        let opener = openers.entry(authority.clone()).or_default().clone();
        OpenerTicket { pool: self, authority, opener }
    }

    /// Sends on the most recently used free connection to `authority`; hands `request` back
    /// when none is free, after dropping the closed ones.
    #[allow(clippy::result_large_err, reason = "the request is handed back, not an error")]
    fn send_pooled(
        &self,
        authority: &Key,
        request: Request<RequestBody>,
    ) -> Result<
        (
            Pending<impl Future<Output = Answer> + use<>, impl Future<Output = Answer> + use<>>,
            SocketAddr,
        ),
        Request<RequestBody>,
    > {
        let mut connections = self.lock();
        let Some(list) = connections.get_mut(authority) else {
            return Err(request);
        };
        // A closed connection is never free; closed ones are dropped only when a new one is
        // about to join the list.
        let Some(connection) = list.iter_mut().rev().find(|connection| connection.sender.is_free())
        else {
            list.retain(|connection| !connection.sender.is_closed());
            if list.is_empty() {
                connections.remove(authority);
            }
            return Err(request);
        };
        connection.last_used = Instant::now();
        Ok((connection.sender.send(request), connection.upstream))
    }

    /// Opens a connection and starts serving it on this runtime.
    async fn open(&self, authority: &Key) -> Result<(Sender, SocketAddr), SendError> {
        let stream = self.connector.connect(&authority.0).await?;
        let upstream = stream.peer_addr().map_err(|error| ConnectError::new(1, error))?;
        let io = TokioIo::new(stream);
        let exchange_error = |error| SendError::Exchange { upstream, error };
        let sender = match self.protocol {
            Protocol::Http1 => {
                let (sender, connection) = http1::handshake(io).await.map_err(exchange_error)?;
                tokio::spawn(async move {
                    // Upgrades (`101`) take the connection over from hyper (see `upgrade`).
                    if let Err(error) = connection.with_upgrades().await {
                        tracing::debug!(%error, %upstream, "upstream HTTP/1 connection ended");
                    }
                });
                Sender::Http1(sender)
            }
            Protocol::Http2 => {
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(exchange_error)?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, %upstream, "upstream HTTP/2 connection ended");
                    }
                });
                Sender::Http2(sender)
            }
        };
        Ok((sender, upstream))
    }

    /// Closes connections idle for the idle timeout, and forgets closed ones.
    fn evict_idle(&self, now: Instant) {
        let mut connections = self.lock();
        connections.retain(|_, list| {
            list.retain_mut(|connection| {
                if connection.sender.is_closed() {
                    return false;
                }
                // A busy HTTP/1 connection (a response still streaming) counts as used now, so
                // its idle time starts at most a sweep after it became free.
                if !connection.sender.is_free() {
                    connection.last_used = now;
                }
                now.saturating_duration_since(connection.last_used) < self.idle_timeout
            });
            !list.is_empty()
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RequestMap<Key, Vec<Connection>>> {
        // The lock is never held across an await or user code that could panic mid-update.
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits for the response head of a request handed to a connection just now.
async fn answered<A, B>(pending: Pending<A, B>, upstream: SocketAddr) -> Result<Sent, SendError>
where
    A: Future<Output = Answer>,
    B: Future<Output = Answer>,
{
    match pending.answer().await {
        Ok(response) => Ok(Sent { response, upstream }),
        Err(failed) => Err(SendError::Exchange { upstream, error: failed.into_error() }),
    }
}

/// A pool key: the authority, compared without regard to case as [`Authority`] is.
///
/// `Authority`'s own `Hash` feeds the hasher one byte at a time, which costs SipHash a full
/// round per byte (about 1,700 instructions for a typical FQDN); this feeds it whole chunks.
/// Its `eq` compares byte by byte without case (about 900 instructions for the same FQDN in
/// the size-optimised build); keys are nearly always spelt alike, so they are compared as
/// bytes first.
#[derive(Clone, Eq)]
struct Key(Authority);

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.0.as_str() == other.0.as_str() || self.0 == other.0
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let text = self.0.as_str().as_bytes();
        state.write_usize(text.len());
        let mut chunk = [0u8; 64];
        for part in text.chunks(chunk.len()) {
            let lower = &mut chunk[..part.len()];
            lower.copy_from_slice(part);
            lower.make_ascii_lowercase();
            state.write(lower);
        }
    }
}

/// The shortest interval between two sweeps of idle connections.
const SWEEP_FLOOR: Duration = Duration::from_millis(50);

async fn sweep(pool: Weak<Pool>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.evict_idle(Instant::now());
    }
}

/// HTTP/1 upstreams get origin form (`/path?query`) and a `Host` header; the request
/// keeps its own `Host` when it has one (RFC 9112 §3.2).
fn to_origin_form(request: &mut Request<RequestBody>, authority: &Authority) {
    let path =
        request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    if !request.headers().contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(host_header(authority))
    {
        request.headers_mut().insert(header::HOST, host);
    }
}

/// `Host` for an authority: without the port when it is HTTP's default.
fn host_header(authority: &Authority) -> &str {
    match authority.port_u16() {
        Some(80) => {
            authority.as_str().rsplit_once(':').map_or(authority.as_str(), |(host, _)| host)
        }
        _ => authority.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_in_equality_and_hash() {
        use std::hash::BuildHasher;
        let key = |text: &str| Key(text.parse().unwrap_or_else(|e| panic!("{e}")));
        let hasher = std::collections::hash_map::RandomState::new();
        let long = format!("{}.svc.cluster.local:9080", "Reviews".repeat(20));
        for (a, b) in [("Reviews:9080", "reviews:9080"), (long.as_str(), &long.to_lowercase())] {
            assert!(key(a) == key(b));
            assert_eq!(hasher.hash_one(key(a)), hasher.hash_one(key(b)));
        }
        assert!(key("reviews:9080") == key("reviews:9080"));
        assert!(key("reviews:9080") != key("reviews:9081"));
        assert!(key("reviews:9080") != key("Reviews.default:9080"));
    }

    #[test]
    fn host_header_drops_only_the_default_port() {
        let host =
            |text: &str| host_header(&text.parse().unwrap_or_else(|e| panic!("{e}"))).to_owned();
        assert_eq!(host("reviews:9080"), "reviews:9080");
        assert_eq!(host("reviews:80"), "reviews");
        assert_eq!(host("reviews"), "reviews");
        assert_eq!(host("[::1]:80"), "[::1]");
        assert_eq!(host("[::1]:8080"), "[::1]:8080");
    }
}
