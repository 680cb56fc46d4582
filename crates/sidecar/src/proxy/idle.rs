//! Envoy's stream idle timeout (`stream_idle_timeout`, 5 minutes by default): a stream with no
//! activity in either direction for that long is ended, so that a client that stops sending
//! its body, or an upstream that stops answering, cannot hold a stream and its upstream
//! connection forever. Before the response head is sent the client gets `408` (`SI`); after,
//! the stream is reset.
//!
//! Three places wait on the network, and each watches the limit: the request body and the
//! response body ([`IdleTimer`]), and the wait for the upstream's response head
//! ([`wait_for_head`]). All three count activity on the whole stream ([`Activity`]: a frame of
//! either body), so a slow but steady upload, or a stream that is quiet one way while the
//! other way talks, is not cut.
//!
//! A body's timer is armed only when the body has to wait, so a request whose body is
//! already buffered costs none. Tunnels (`Upgrade`, `CONNECT`) are streams too: bytes either
//! way through the tunnel (its client side, a `CountingIo` that is `watching`) are their
//! activity, and an [`IdleTimer`] ends them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The error a body ends with when it was idle too long.
#[derive(Debug, thiserror::Error)]
#[error("stream idle timeout")]
pub(crate) struct StreamIdle;

/// A body's idle timer: expires when nothing moved on the stream, in either direction, for
/// the limit.
pub(crate) struct IdleTimer {
    limit: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    /// `None` never expires.
    pub(crate) fn new(limit: Option<Duration>) -> IdleTimer {
        IdleTimer { limit, sleep: None }
    }

    /// Called when the body has to wait: (re)arms the timer for the limit after the stream's
    /// last `activity` and polls it. Ready when the limit has passed.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>, activity: &Activity) -> Poll<()> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        loop {
            let deadline = activity.last() + limit;
            let sleep = match &mut self.sleep {
                Some(sleep) => {
                    // Activity only moves the deadline later, so a timer set for an earlier one
                    // is left to fire (and checked below) instead of being re-armed per frame.
                    if sleep.is_elapsed() && sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    sleep
                }
                None => self.sleep.insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The other direction may have moved while this timer ran: wait from there.
            if Instant::now() >= activity.last() + limit {
                return Poll::Ready(());
            }
        }
    }

    /// Resolves once nothing moved on the stream for the limit (never without one).
    pub(crate) async fn expired(&mut self, activity: &Activity) {
        std::future::poll_fn(|cx| self.poll_expired(cx, activity)).await;
    }
}

/// When a stream last moved, in either direction: shared by the request body, the response
/// body and the forwarder waiting for the response head.
#[derive(Debug)]
pub(crate) struct Activity {
    /// When the stream began (tokio's clock, so that tests can pause time).
    start: Instant,
    /// Milliseconds from `start` to the last activity; 0 before any.
    since_start: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity { start: Instant::now(), since_start: AtomicU64::new(0) }
    }

    pub(crate) fn touch(&self) {
        let since = Instant::now().saturating_duration_since(self.start);
        let millis = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        self.since_start.fetch_max(millis, Ordering::Relaxed);
    }

    /// The last activity, or the stream's start.
    pub(crate) fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.since_start.load(Ordering::Relaxed))
    }
}

/// How waiting for the response head ended.
pub(crate) enum HeadWait<T> {
    Answered(T),
    /// The route's upstream timeout passed (`504`, `UT`).
    UpstreamTimeout,
    /// Nothing moved for the stream idle limit (`408`, `SI`).
    Idle,
}

/// Waits for `answer`, within the upstream timeout and the stream idle limit; the request
/// body's frames (`activity`) count as activity. Every request waits here, so the deadline is
/// a `timeout_at` on the stack rather than an [`IdleTimer`], whose timer is boxed.
///
/// `answer` is pinned by the caller: an `async fn` that pinned a future it was given would
/// hold it twice (the argument and the pinned local), and this one holds the upstream
/// exchange, the largest part of a request's future.
pub(crate) async fn wait_for_head<T>(
    mut answer: Pin<&mut impl Future<Output = T>>,
    upstream_timeout: Option<Duration>,
    idle_limit: Option<Duration>,
    activity: &Activity,
) -> HeadWait<T> {
    let started = Instant::now();
    let upstream_deadline = upstream_timeout.map(|limit| started + limit);
    loop {
        let idle_deadline = idle_limit.map(|limit| activity.last() + limit);
        let deadline = match (upstream_deadline, idle_deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(deadline), None) | (None, Some(deadline)) => deadline,
            (None, None) => return HeadWait::Answered(answer.await),
        };
        if let Ok(answered) = tokio::time::timeout_at(deadline, &mut answer).await {
            return HeadWait::Answered(answered);
        }
        let now = Instant::now();
        if upstream_deadline.is_some_and(|deadline| now >= deadline) {
            return HeadWait::UpstreamTimeout;
        }
        let idle_until = idle_limit.map(|limit| activity.last() + limit);
        if idle_until.is_some_and(|deadline| now >= deadline) {
            return HeadWait::Idle;
        }
        // The request body moved since the deadline was set: wait again from its last frame.
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_head_wait_ends_at_the_first_limit_and_activity_extends_the_idle_one() {
        let activity = Activity::new();
        let never = std::pin::pin!(std::future::pending::<()>());
        let waited = wait_for_head(never, None, Some(Duration::from_secs(300)), &activity).await;
        assert!(matches!(waited, HeadWait::Idle));

        let activity = Activity::new();
        let started = Instant::now();
        let never = std::pin::pin!(std::future::pending::<()>());
        let limits = (Some(Duration::from_secs(15)), Some(Duration::from_secs(300)));
        let waited = wait_for_head(never, limits.0, limits.1, &activity).await;
        assert!(matches!(waited, HeadWait::UpstreamTimeout));
        assert_eq!(started.elapsed(), Duration::from_secs(15));

        // A body that moves every 200 s keeps a 300 s idle limit from firing.
        let activity = Activity::new();
        let started = Instant::now();
        let uploading = std::pin::pin!(async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(200)).await;
                activity.touch();
            }
            "answered"
        });
        let waited = wait_for_head(uploading, None, Some(Duration::from_secs(300)), &activity);
        assert!(matches!(waited.await, HeadWait::Answered("answered")));
        assert_eq!(started.elapsed(), Duration::from_secs(600));

        let answered = wait_for_head(std::pin::pin!(async { 7 }), None, None, &activity).await;
        assert!(matches!(answered, HeadWait::Answered(7)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_timer_counts_activity_on_the_whole_stream() {
        let mut cx = Context::from_waker(Waker::noop());
        let activity = Activity::new();
        let mut timer = IdleTimer::new(Some(Duration::from_secs(10)));
        assert!(timer.poll_expired(&mut cx, &activity).is_pending());
        tokio::time::advance(Duration::from_secs(6)).await;
        // The other direction moves; this body is not polled again before its timer ends.
        activity.touch();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(timer.poll_expired(&mut cx, &activity).is_pending(), "activity at 6 s counts");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(timer.poll_expired(&mut cx, &activity).is_ready());

        let mut unlimited = IdleTimer::new(None);
        assert!(unlimited.poll_expired(&mut cx, &activity).is_pending());
        assert!(unlimited.sleep.is_none());
    }
}
