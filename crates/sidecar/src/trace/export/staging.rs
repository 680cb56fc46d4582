//! Where finished spans wait for their batch, between the proxy's worker threads and the export
//! task.
//!
//! The request path appends to the batch being filled under a short lock, and the export task
//! comes for full batches on its own timer, every [`Staging::tick`], while spans flow. So at a
//! steady rate no request wakes the task. Waking it is a system call on the worker (an eventfd
//! write or a futex) and puts a thread that sends a 50 KB export request on the cores in the
//! middle of a request; at two wake-ups per batch that cost sidecar B's tail more than making
//! the spans (BENCHMARKS.md, "What makes the sidecar's tail"). Envoy's tracers avoid it the same
//! way: each worker flushes its spans on a timer. A request wakes the task only when it has
//! parked (a tick found nothing to do) or when the buffer reaches half its capacity, so that a
//! burst is sent before the buffer overflows. The lock is held while the span is encoded into
//! the batch (a microsecond or two); the proxy's workers rarely meet on it.
//!
//! Spans are kept encoded, as the `spans` fields of an OTLP `ScopeSpans`: a span is freed on the
//! thread that made it, a buffered span takes its wire size (a few hundred bytes) instead of
//! dozens of small allocations, and a batch is sent as it is, without another encoding.
//!
//! The buffer is bounded in spans (full batches waiting plus the batch being filled): a span
//! that does not fit is refused at once, and the caller drops and counts it.
//!
//! A sent batch's memory comes back ([`Staging::recycle`]) and the next batch is filled in it.
//! Freed instead, the 80 KB at the top of the heap made glibc shrink the heap with `brk` after
//! each export and grow it again for the next batch, holding the one arena's lock that the
//! workers' allocations wait on, and the regrown pages were faulted in again on the request
//! path (BENCHMARKS.md, "Reusing batch buffers").

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a span was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The buffer holds its capacity already.
    Full,
    /// The export side has stopped.
    Closed,
}

/// A span that writes itself as one `ScopeSpans.spans` field: key, length, `Span` message.
pub(crate) trait SpanField {
    fn encode_field(&self, out: &mut Vec<u8>);
}

/// Tests stage prost spans; the proxy stages [`Finished`](crate::trace::span::Finished) ones.
#[cfg(test)]
mod prost_spans {
    use otlp::proto::trace::v1::Span;
    use prost::Message;

    use super::SpanField;
    use crate::trace::protobuf::{field, put_length_delimited};

    impl SpanField for Span {
        fn encode_field(&self, out: &mut Vec<u8>) {
            put_length_delimited(field::SCOPE_SPANS_SPANS, self.encoded_len(), out);
            self.encode_raw(out);
        }
    }
}

/// Encoded spans: each a whole `ScopeSpans.spans` field (key, length, `Span` message), after
/// `head_room` bytes left free for the export request's header, so that the request can be
/// made around the spans where they are instead of copying them.
#[derive(Debug, Default)]
pub(super) struct EncodedSpans {
    pub(super) bytes: Vec<u8>,
    pub(super) head_room: usize,
    pub(super) count: usize,
}

impl EncodedSpans {
    fn push(&mut self, span: &impl SpanField) {
        span.encode_field(&mut self.bytes);
        self.count += 1;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The spans' fields, without the head room.
    pub(super) fn spans(&self) -> &[u8] {
        &self.bytes[self.head_room..]
    }
}

/// What the export task should do next.
#[derive(Debug)]
pub(super) enum Next {
    /// Send this batch.
    Send(EncodedSpans),
    /// Come back at this instant: the next tick, or the oldest span's batch timeout if sooner.
    WaitUntil(Instant),
    /// Nothing is buffered: come back at the next tick, or [`Staging::park`].
    Wait,
}

/// How often the export task looks for full batches while spans flow, at most.
const TICK: Duration = Duration::from_millis(100);

pub(super) struct Staging {
    state: Mutex<State>,
    /// Bytes left free at the start of every batch (see [`EncodedSpans`]).
    head_room: usize,
    wake: Notify,
    capacity: usize,
    max_spans: usize,
    timeout: Duration,
    tick: Duration,
}

struct State {
    /// The batch being filled, and when its first span arrived.
    filling: EncodedSpans,
    since: Option<Instant>,
    /// Batches that reached `max_spans`, oldest first.
    full: VecDeque<EncodedSpans>,
    /// The size of the last batch cut, to allocate the next one at once.
    last_batch_bytes: usize,
    /// A sent batch's buffer, emptied, for the next batch.
    spare: Vec<u8>,
    /// Spans in `filling` and `full`.
    spans: usize,
    /// The export task waits for a wake-up, without a timer.
    parked: bool,
    closed: bool,
}

impl Staging {
    /// A buffer of at most `capacity` spans, cut into batches of `max_spans` or `timeout` old,
    /// each starting with `head_room` free bytes.
    pub(super) fn new(
        capacity: usize,
        max_spans: usize,
        timeout: Duration,
        head_room: usize,
    ) -> Staging {
        Staging {
            head_room,
            state: Mutex::new(State {
                filling: EncodedSpans::default(),
                since: None,
                full: VecDeque::new(),
                last_batch_bytes: 0,
                spare: Vec::new(),
                spans: 0,
                parked: false,
                closed: false,
            }),
            wake: Notify::new(),
            capacity: capacity.max(1),
            // A batch larger than the buffer would never fill.
            max_spans: max_spans.clamp(1, capacity.max(1)),
            timeout,
            tick: TICK.min(timeout),
        }
    }

    /// How often the export task comes for batches while spans flow.
    pub(super) fn tick(&self) -> Duration {
        self.tick
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves a consistent state (every change is a single
        // push or take), so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `span` to the batch being filled; never waits beyond the lock (held while the span
    /// is encoded, a microsecond or two). Wakes the export task only if it has parked, or if
    /// the buffer has just reached half its capacity.
    pub(super) fn push(&self, span: &impl SpanField) -> Result<(), Refused> {
        let wake = {
            let mut state = self.state();
            if state.closed {
                return Err(Refused::Closed);
            }
            if state.spans >= self.capacity {
                return Err(Refused::Full);
            }
            if state.filling.count == 0 {
                if state.filling.bytes.capacity() == 0 {
                    state.filling.bytes = std::mem::take(&mut state.spare);
                }
                let expected = state.last_batch_bytes.max(self.head_room);
                state.filling.bytes.reserve_exact(expected);
                state.filling.bytes.resize(self.head_room, 0);
                state.filling.head_room = self.head_room;
            }
            state.filling.push(span);
            state.spans += 1;
            if state.since.is_none() {
                state.since = Some(Instant::now());
            }
            if state.filling.count >= self.max_spans {
                let batch = state.cut();
                state.full.push_back(batch);
            }
            let half_full = state.spans == self.capacity.div_ceil(2);
            std::mem::take(&mut state.parked) || half_full
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Called by the export task when [`Staging::next`] said [`Next::Wait`] twice in a row:
    /// it will wait for a span without a timer. False if a span came in meanwhile.
    pub(super) fn park(&self) -> bool {
        let mut state = self.state();
        state.parked = state.spans == 0 && !state.closed;
        state.parked
    }

    /// The next full batch, else the batch being filled once its timeout has passed.
    pub(super) fn next(&self, now: Instant) -> Next {
        let mut state = self.state();
        if let Some(batch) = state.full.pop_front() {
            state.spans -= batch.count;
            return Next::Send(batch);
        }
        match state.since {
            Some(since) if now >= since + self.timeout => {
                let batch = state.cut();
                state.spans -= batch.count;
                Next::Send(batch)
            }
            Some(since) => Next::WaitUntil((since + self.timeout).min(now + self.tick)),
            None => Next::Wait,
        }
    }

    /// Takes back a sent batch's buffer, to fill the next batch in. Keeps one: a second is
    /// freed, as is any after [`Staging::close`].
    pub(super) fn recycle(&self, mut bytes: Vec<u8>) {
        let mut state = self.state();
        if state.closed || state.spare.capacity() != 0 {
            return;
        }
        bytes.clear();
        state.spare = bytes;
    }

    /// Where the spare buffer's memory is, if there is one.
    #[cfg(test)]
    pub(super) fn spare(&self) -> Option<*const u8> {
        let state = self.state();
        (state.spare.capacity() != 0).then(|| state.spare.as_ptr())
    }

    /// Resolves when a span arrived after [`Staging::park`], or the buffer reached half its
    /// capacity, since the last call (or before the first).
    pub(super) async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Refuses every later span and hands back everything buffered, in batches.
    pub(super) fn close(&self) -> Vec<EncodedSpans> {
        let mut state = self.state();
        state.closed = true;
        state.spare = Vec::new();
        let mut batches: Vec<EncodedSpans> = state.full.drain(..).collect();
        let filling = state.cut();
        if !filling.is_empty() {
            batches.push(filling);
        }
        state.spans = 0;
        batches
    }
}

impl State {
    /// Takes the batch being filled (its spans still count in `spans`).
    fn cut(&mut self) -> EncodedSpans {
        self.since = None;
        let batch = std::mem::take(&mut self.filling);
        if !batch.is_empty() {
            self.last_batch_bytes = batch.bytes.len();
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use otlp::proto::trace::v1::{ScopeSpans, Span};
    use prost::Message;

    use super::*;

    fn span(i: u64) -> Span {
        Span { span_id: i.to_be_bytes().to_vec(), ..Default::default() }
    }

    fn sent(next: Next) -> usize {
        match next {
            Next::Send(batch) => batch.count,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_full_batches_then_the_rest_after_the_timeout() {
        let staging = Staging::new(100, 4, Duration::from_secs(1), 0);
        for i in 0..10 {
            staging.push(&span(i)).unwrap();
        }
        let now = Instant::now();
        assert_eq!(sent(staging.next(now)), 4);
        assert_eq!(sent(staging.next(now)), 4);
        match staging.next(now) {
            Next::WaitUntil(at) => assert_eq!(at, now + TICK, "the next tick comes first"),
            other => panic!("expected to wait, got {other:?}"),
        }
        match staging.next(now + Duration::from_millis(950)) {
            Next::WaitUntil(at) => assert_eq!(at, now + Duration::from_secs(1), "then the timeout"),
            other => panic!("expected to wait, got {other:?}"),
        }
        assert_eq!(sent(staging.next(now + Duration::from_secs(1))), 2);
        assert!(matches!(staging.next(now), Next::Wait));
    }

    #[tokio::test]
    async fn a_buffer_smaller_than_a_batch_cuts_batches_at_its_size() {
        let staging = Staging::new(3, 512, Duration::from_secs(1), 0);
        for i in 0..3 {
            staging.push(&span(i)).unwrap();
        }
        assert_eq!(sent(staging.next(Instant::now())), 3, "a full buffer is a full batch");
        staging.push(&span(3)).unwrap();
    }

    #[tokio::test]
    async fn refuses_beyond_capacity_and_after_close() {
        let staging = Staging::new(3, 2, Duration::from_secs(1), 0);
        for i in 0..3 {
            staging.push(&span(i)).unwrap();
        }
        assert_eq!(staging.push(&span(3)), Err(Refused::Full));
        assert_eq!(sent(staging.next(Instant::now())), 2);
        staging.push(&span(4)).unwrap();
        let left: Vec<usize> = staging.close().iter().map(|batch| batch.count).collect();
        assert_eq!(left, vec![2]);
        assert_eq!(staging.push(&span(5)), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn the_next_batch_is_filled_in_a_sent_batchs_buffer() {
        let staging = Staging::new(100, 2, Duration::from_secs(1), 16);
        staging.push(&span(0)).unwrap();
        staging.push(&span(1)).unwrap();
        let Next::Send(sent) = staging.next(Instant::now()) else { panic!("a full batch") };
        let memory = sent.bytes.as_ptr();
        staging.recycle(sent.bytes);
        assert_eq!(staging.spare(), Some(memory));

        staging.push(&span(2)).unwrap();
        staging.push(&span(3)).unwrap();
        assert_eq!(staging.spare(), None, "taken by the next batch");
        let Next::Send(next) = staging.next(Instant::now()) else { panic!("a full batch") };
        assert_eq!(next.bytes.as_ptr(), memory, "filled in the same memory");
        assert_eq!(next.bytes[..16], [0; 16], "head room, cleared");
        let decoded = ScopeSpans::decode(next.spans()).unwrap();
        assert_eq!(decoded.spans, [span(2), span(3)], "only the new batch's spans");

        staging.recycle(vec![0; 64]);
        staging.recycle(vec![0; 64]);
        assert!(staging.spare().is_some(), "one spare is kept");
        staging.close();
        assert_eq!(staging.spare(), None, "freed at close");
        staging.recycle(vec![0; 64]);
        assert_eq!(staging.spare(), None, "and not taken after it");
    }

    #[test]
    fn encoded_spans_are_scope_spans_fields() {
        let mut encoded = EncodedSpans::default();
        let spans = [span(1), Span { name: "x".repeat(300), ..span(2) }];
        for span in &spans {
            encoded.push(span);
        }
        let decoded = ScopeSpans::decode(encoded.spans()).unwrap();
        assert_eq!(decoded.spans, spans);
        assert_eq!(encoded.count, 2);
    }

    /// Whether `changed` resolves before (paused) time moves on.
    async fn woken(staging: &Staging) -> bool {
        tokio::time::timeout(Duration::from_secs(60), staging.changed()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_the_task_only_when_it_parked_or_the_buffer_is_half_full() {
        let staging = Staging::new(8, 2, Duration::from_secs(1), 0);
        staging.push(&span(0)).unwrap();
        staging.push(&span(1)).unwrap();
        assert!(!woken(&staging).await, "a full batch waits for the task's tick");
        assert_eq!(sent(staging.next(Instant::now())), 2);

        assert!(staging.park(), "nothing buffered: the task may park");
        staging.push(&span(2)).unwrap();
        assert!(woken(&staging).await, "the first span wakes a parked task");
        assert!(!staging.park(), "a span is buffered: no parking");
        staging.push(&span(3)).unwrap();
        staging.push(&span(4)).unwrap();
        assert!(!woken(&staging).await, "more spans, fewer than half the buffer: no wake-up");
        staging.push(&span(5)).unwrap();
        assert!(woken(&staging).await, "four spans of eight: half full");
        staging.push(&span(6)).unwrap();
        assert!(!woken(&staging).await, "only reaching half full wakes it");
    }
}
