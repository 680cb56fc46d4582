//! One request/response exchange as the observers see it, and the bodies that carry it.
//!
//! This layer exists so that every exchange is completed exactly once, whatever happens: the
//! [`Exchange`] guard travels with the request while it is forwarded and then inside the
//! response body, so [`Observation::complete`] runs when the response body ends, fails, or is
//! dropped because the client went away (Envoy's `DC`), and also when hyper drops the whole
//! request future before any response (the client hung up while the upstream was thinking).
//!
//! The bodies stream frame by frame (nothing is buffered), count body bytes for the
//! [`Completion`], and hand the response trailers (gRPC's `grpc-status`) to the observers.
//! Observer calls are shielded: a panicking observer is logged once and the request goes on,
//! because tracing must never fail a request. Completions wait until the response has left
//! ([`completions`]).

use std::fmt;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::completions;
use super::idle::{Activity, IdleTimer, StreamIdle};
use crate::head_size;
use crate::observe::{Completion, Observation, ResponseView};
use crate::received::Received;

/// What the bodies fail with: hyper's errors, or [`StreamIdle`].
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Envoy's response flags, rendered in Envoy's order (`UF,URX`), `-` when none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResponseFlags(u16);

impl ResponseFlags {
    /// `UT`: upstream request timeout.
    pub(crate) const UPSTREAM_TIMEOUT: ResponseFlags = ResponseFlags(1);
    /// `UF`: upstream connection failure.
    pub(crate) const UPSTREAM_CONNECTION_FAILURE: ResponseFlags = ResponseFlags(1 << 1);
    /// `UC`: upstream connection termination.
    pub(crate) const UPSTREAM_CONNECTION_TERMINATION: ResponseFlags = ResponseFlags(1 << 2);
    /// `NR`: no route.
    pub(crate) const NO_ROUTE: ResponseFlags = ResponseFlags(1 << 3);
    /// `DC`: downstream connection termination.
    pub(crate) const DOWNSTREAM_TERMINATION: ResponseFlags = ResponseFlags(1 << 4);
    /// `URX`: upstream retry limit exceeded.
    pub(crate) const RETRY_LIMIT_EXCEEDED: ResponseFlags = ResponseFlags(1 << 5);
    /// `SI`: stream idle timeout.
    pub(crate) const STREAM_IDLE_TIMEOUT: ResponseFlags = ResponseFlags(1 << 6);

    /// Short names in the order Envoy's `ResponseFlagUtils::toShortString` prints them.
    const NAMES: [(ResponseFlags, &'static str); 7] = [
        (ResponseFlags::UPSTREAM_TIMEOUT, "UT"),
        (ResponseFlags::UPSTREAM_CONNECTION_FAILURE, "UF"),
        (ResponseFlags::UPSTREAM_CONNECTION_TERMINATION, "UC"),
        (ResponseFlags::NO_ROUTE, "NR"),
        (ResponseFlags::DOWNSTREAM_TERMINATION, "DC"),
        (ResponseFlags::RETRY_LIMIT_EXCEEDED, "URX"),
        (ResponseFlags::STREAM_IDLE_TIMEOUT, "SI"),
    ];

    pub(crate) fn with(self, other: ResponseFlags) -> ResponseFlags {
        ResponseFlags(self.0 | other.0)
    }

    fn contains(self, other: ResponseFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The [`Display`](fmt::Display) text, from a table of every combination rendered once.
    pub(crate) fn as_str(self) -> &'static str {
        const ALL: usize = 1 << ResponseFlags::NAMES.len();
        static RENDERED: LazyLock<[&'static str; ALL]> = LazyLock::new(|| {
            std::array::from_fn(|bits| {
                let text = ResponseFlags(bits as u16).to_string();
                &*Box::leak(text.into_boxed_str())
            })
        });
        RENDERED[usize::from(self.0) % ALL]
    }
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, name) in ResponseFlags::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Runs an observer call; a panic is logged (once at warn level) and swallowed.
pub(crate) fn shielded<R>(call: &'static str, f: impl FnOnce() -> R) -> Option<R> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => Some(result),
        Err(_) => {
            if WARNED.swap(true, Ordering::Relaxed) {
                tracing::debug!(call, "observer panicked; the request goes on");
            } else {
                tracing::warn!(call, "observer panicked; the request goes on (logged once)");
            }
            None
        }
    }
}

/// Stands in for an observation whose observer panicked.
pub(crate) struct Unobserved;

impl Observation for Unobserved {
    fn response(&mut self, _response: &mut ResponseView<'_>) {}
    fn complete(self: Box<Self>, _completion: &Completion<'_>) {}
}

/// Request body bytes sent upstream, whether the downstream body failed (a client that hung
/// up mid-request) or went idle, and when it last moved.
#[derive(Debug)]
pub(crate) struct BodyCounter {
    bytes: AtomicU64,
    failed: AtomicBool,
    idle: AtomicBool,
    activity: Activity,
}

impl BodyCounter {
    /// A counter for a stream beginning now.
    pub(crate) fn new() -> BodyCounter {
        BodyCounter {
            bytes: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            activity: Activity::new(),
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether the client stopped sending its body for the stream idle limit.
    pub(crate) fn idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    pub(crate) fn activity(&self) -> &Activity {
        &self.activity
    }

    pub(crate) fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

// === impl Exchange ===

/// One exchange in flight; completes its observation exactly once (with `DC` if dropped
/// before anyone completed it).
pub(crate) struct Exchange {
    observation: Option<Box<dyn Observation>>,
    started: Instant,
    request_body: Arc<BodyCounter>,
    flags: ResponseFlags,
    /// The response head's size as sent, once the observers have changed it.
    response_head_bytes: u64,
}

impl Exchange {
    pub(crate) fn new(
        observation: Box<dyn Observation>,
        started: Instant,
        request_body: Arc<BodyCounter>,
    ) -> Exchange {
        Exchange {
            observation: Some(observation),
            started,
            request_body,
            flags: ResponseFlags(0),
            response_head_bytes: 0,
        }
    }

    /// Adds response flags reported at completion.
    pub(crate) fn flag(&mut self, flags: ResponseFlags) {
        self.flags = self.flags.with(flags);
    }

    /// The response head about to be sent downstream; the observers may change `headers`.
    pub(crate) fn response(
        &mut self,
        status: StatusCode,
        version: Version,
        headers: &mut HeaderMap,
        received: Received,
        upstream: Option<SocketAddr>,
    ) {
        if let Some(observation) = self.observation.as_mut() {
            let mut view = ResponseView { status, version, headers, upstream, received };
            shielded("response", || observation.response(&mut view));
            self.response_head_bytes = head_size::response_head_len(status, headers);
        }
    }

    /// Completes the observation (only the first call counts).
    pub(crate) fn complete(
        &mut self,
        request_body_bytes: u64,
        response_body_bytes: u64,
        trailers: Option<&HeaderMap>,
    ) {
        let Some(observation) = self.observation.take() else {
            return;
        };
        let completion = Completion {
            request_body_bytes,
            response_body_bytes,
            response_head_bytes: self.response_head_bytes,
            trailers,
            response_flags: self.flags.as_str(),
            duration: self.started.elapsed(),
        };
        completions::complete(observation, &completion);
    }

    /// Completes with the request body count kept by the [`RequestBody`].
    fn finish(&mut self, response_body_bytes: u64, trailers: Option<&HeaderMap>) {
        let request_bytes = self.request_body.bytes();
        self.complete(request_bytes, response_body_bytes, trailers);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.observation.is_some() {
            self.flag(ResponseFlags::DOWNSTREAM_TERMINATION);
            self.finish(0, None);
        }
    }
}

// === impl RequestBody ===

/// The downstream request body on its way upstream, counted.
pub(crate) struct RequestBody {
    inner: Incoming,
    counter: Arc<BodyCounter>,
    idle: IdleTimer,
}

impl RequestBody {
    /// `idle_limit`: the stream idle timeout.
    pub(crate) fn new(
        inner: Incoming,
        counter: Arc<BodyCounter>,
        idle_limit: Option<std::time::Duration>,
    ) -> RequestBody {
        RequestBody { inner, counter, idle: IdleTimer::new(idle_limit) }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counter.add(data.len() as u64);
                }
                this.counter.activity.touch();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.counter.failed.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.poll_expired(cx, &this.counter.activity) {
                Poll::Ready(()) => {
                    this.counter.idle.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(StreamIdle.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl ResponseBody ===

/// A response body sent downstream: the upstream's, streamed, or one the sidecar made.
pub(crate) struct ResponseBody {
    source: Source,
    progress: Progress,
}

enum Source {
    Upstream {
        body: Incoming,
        /// The request side of the stream: its activity, and whether it went idle.
        request: Arc<BodyCounter>,
        idle: IdleTimer,
    },
    Local(Option<Bytes>),
}

/// The exchange a body completes, and the bytes it sent so far.
struct Progress {
    exchange: Option<Exchange>,
    sent: u64,
}

impl Progress {
    fn finish(&mut self, trailers: Option<&HeaderMap>) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.finish(self.sent, trailers);
        }
    }

    /// Ends the exchange with `flags`; the body then fails, which resets the stream.
    fn fail(&mut self, flags: ResponseFlags) {
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.flag(flags);
        }
        self.finish(None);
    }
}

impl ResponseBody {
    /// The upstream's body; completes `exchange` when it ends, or ends it with `SI` when the
    /// upstream sends nothing for `idle_limit`.
    pub(crate) fn upstream(
        body: Incoming,
        exchange: Exchange,
        idle_limit: Option<std::time::Duration>,
    ) -> ResponseBody {
        let request = exchange.request_body.clone();
        ResponseBody {
            source: Source::Upstream { body, request, idle: IdleTimer::new(idle_limit) },
            progress: Progress { exchange: Some(exchange), sent: 0 },
        }
    }

    /// A body made by the sidecar (error replies, admin pages); completes `exchange`, if any,
    /// once written.
    pub(crate) fn local(body: impl Into<Bytes>, exchange: Option<Exchange>) -> ResponseBody {
        let body = body.into();
        let body = if body.is_empty() { None } else { Some(body) };
        ResponseBody { source: Source::Local(body), progress: Progress { exchange, sent: 0 } }
    }

    /// No body at all (a `101 Switching Protocols`: the tunnel completes the exchange).
    pub(crate) fn empty() -> ResponseBody {
        ResponseBody::local(Bytes::new(), None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let ResponseBody { source, progress } = &mut *self;
        match source {
            Source::Local(body) => match body.take() {
                Some(data) => {
                    progress.sent += data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                None => {
                    progress.finish(None);
                    Poll::Ready(None)
                }
            },
            Source::Upstream { body, request, idle } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                let ended = body.is_end_stream();
                match polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            progress.sent += data.len() as u64;
                        }
                        if let Some(trailers) = frame.trailers_ref() {
                            progress.finish(Some(trailers));
                        } else if ended {
                            progress.finish(None);
                        }
                        request.activity.touch();
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(Some(Err(error))) => {
                        // The client's idle request body resets the upstream stream too.
                        let flag = if request.idle() {
                            ResponseFlags::STREAM_IDLE_TIMEOUT
                        } else {
                            ResponseFlags::UPSTREAM_CONNECTION_TERMINATION
                        };
                        tracing::debug!(%error, "upstream response body failed");
                        progress.fail(flag);
                        Poll::Ready(Some(Err(error.into())))
                    }
                    Poll::Ready(None) => {
                        progress.finish(None);
                        Poll::Ready(None)
                    }
                    Poll::Pending => match idle.poll_expired(cx, &request.activity) {
                        Poll::Ready(()) => {
                            tracing::debug!("upstream response body idle; stream reset");
                            progress.fail(ResponseFlags::STREAM_IDLE_TIMEOUT);
                            Poll::Ready(Some(Err(StreamIdle.into())))
                        }
                        Poll::Pending => Poll::Pending,
                    },
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Upstream { body, .. } => body.is_end_stream(),
            Source::Local(body) => body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Upstream { body, .. } => body.size_hint(),
            Source::Local(body) => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper stops polling a body that says it has ended; anything else dropped before its
        // end means the client went away.
        let ended = self.is_end_stream();
        if !ended && let Some(exchange) = self.progress.exchange.as_mut() {
            exchange.flag(ResponseFlags::DOWNSTREAM_TERMINATION);
        }
        self.progress.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_in_envoy_order() {
        assert_eq!(ResponseFlags::default().to_string(), "-");
        let retried =
            ResponseFlags::RETRY_LIMIT_EXCEEDED.with(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
        assert_eq!(retried.to_string(), "UF,URX");
        assert_eq!(ResponseFlags::UPSTREAM_TIMEOUT.to_string(), "UT");
        let dc = ResponseFlags::UPSTREAM_CONNECTION_TERMINATION
            .with(ResponseFlags::DOWNSTREAM_TERMINATION);
        assert_eq!(dc.to_string(), "UC,DC");
    }

    #[test]
    fn as_str_is_the_display_text() {
        for bits in 0..128 {
            let flags = ResponseFlags(bits);
            assert_eq!(flags.as_str(), flags.to_string());
        }
    }

    #[test]
    fn shielded_swallows_panics() {
        assert_eq!(shielded("test", || 1), Some(1));
        assert_eq!(shielded("test", || -> i32 { panic!("observer bug") }), None);
    }
}
