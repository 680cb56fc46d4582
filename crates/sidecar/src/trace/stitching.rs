//! Stitching what apps break: many apps forward `x-request-id` but not `traceparent`, so their
//! outbound calls would start new traces. While an inbound request is in flight, its
//! `x-request-id` (as forwarded to the app) maps to its SERVER span; an outbound request with no
//! trace context but with that id continues the inbound trace as a child of the SERVER span.
//!
//! The map is sharded behind plain mutexes, held only for one map operation (never across an
//! `.await`), and bounded: when a shard is full, new inbound requests are not registered (their
//! outbound calls are then counted as unstitchable). An entry is removed when its inbound
//! exchange ends: [`Registration`] removes it on drop, so an exchange the proxy abandons
//! without calling `complete` cannot leak one.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use propagation::{SpanContext, SpanId};

/// Shards: enough that concurrent requests rarely wait for one another.
const SHARDS: usize = 16;

/// In-flight inbound requests by `x-request-id`.
pub(crate) struct Stitching {
    shards: Vec<Mutex<HashMap<String, SpanContext>>>,
    per_shard: usize,
    hasher: RandomState,
}

/// An inbound request's entry; removes it when dropped.
pub(crate) struct Registration {
    stitching: Arc<Stitching>,
    request_id: String,
    span_id: SpanId,
}

// === impl Stitching ===

impl Stitching {
    /// A map of at most about `capacity` in-flight requests.
    pub(crate) fn new(capacity: usize) -> Arc<Stitching> {
        Arc::new(Stitching {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        })
    }

    fn shard(&self, request_id: &str) -> MutexGuard<'_, HashMap<String, SpanContext>> {
        let index = usize::try_from(self.hasher.hash_one(request_id) % SHARDS as u64).unwrap_or(0);
        let shard = &self.shards[index % self.shards.len()];
        // A panic elsewhere cannot leave a map half-updated: every operation is one call.
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an in-flight inbound request whose SERVER span is `context`; `None` when the
    /// map is full. A second request with the same id takes the entry over.
    pub(crate) fn register(
        self: &Arc<Self>,
        request_id: &str,
        context: SpanContext,
    ) -> Option<Registration> {
        let mut shard = self.shard(request_id);
        if shard.len() >= self.per_shard && !shard.contains_key(request_id) {
            return None;
        }
        shard.insert(request_id.to_owned(), context);
        Some(Registration {
            stitching: self.clone(),
            request_id: request_id.to_owned(),
            span_id: context.span_id,
        })
    }

    /// The SERVER span of the in-flight inbound request with this id.
    pub(crate) fn lookup(&self, request_id: &str) -> Option<SpanContext> {
        self.shard(request_id).get(request_id).copied()
    }

    /// Entries in the map.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.shards[i].lock().map_or(0, |shard| shard.len())).sum()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut shard = self.stitching.shard(&self.request_id);
        // Only our own entry: a later request with the same id may have taken it over.
        if shard.get(&self.request_id).is_some_and(|context| context.span_id == self.span_id) {
            shard.remove(&self.request_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use propagation::{TraceFlags, TraceId};

    use super::*;

    fn context(span: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from_u128(7).unwrap(),
            SpanId::from_u64(span).unwrap(),
            TraceFlags::new(true, true),
        )
    }

    #[test]
    fn entries_live_as_long_as_their_registration() {
        let stitching = Stitching::new(100);
        let registration = stitching.register("id-1", context(1)).unwrap();
        assert_eq!(stitching.lookup("id-1"), Some(context(1)));
        assert_eq!(stitching.lookup("id-2"), None);
        drop(registration);
        assert_eq!(stitching.lookup("id-1"), None);
        assert_eq!(stitching.len(), 0);
    }

    #[test]
    fn a_later_request_with_the_same_id_keeps_its_entry() {
        let stitching = Stitching::new(100);
        let first = stitching.register("dup", context(1)).unwrap();
        let second = stitching.register("dup", context(2)).unwrap();
        drop(first);
        assert_eq!(stitching.lookup("dup"), Some(context(2)));
        drop(second);
        assert_eq!(stitching.lookup("dup"), None);
    }

    #[test]
    fn the_map_is_bounded() {
        let stitching = Stitching::new(32);
        let kept: Vec<Registration> = (0..1000)
            .filter_map(|i| stitching.register(&format!("id-{i}"), context(i + 1)))
            .collect();
        assert!(kept.len() <= 32 && kept.len() >= 2, "{}", kept.len());
        assert_eq!(stitching.len(), kept.len());
        drop(kept);
        assert_eq!(stitching.len(), 0);
    }
}
