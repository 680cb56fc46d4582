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
//!
//! Each id is hashed once per operation, with the request path's keyed hash (foldhash, seeded
//! at random; [`crate::request_map`]): the hash picks the shard and is the shard's map key; the
//! entry keeps the id, so a lookup whose hash matches another id's finds nothing (a missed
//! stitch, never a wrong one; a caller cannot aim for one without the seed). A registration
//! holds the hash, not a copy of the id.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use propagation::{SpanContext, SpanId};

use crate::request_map::RequestHasher;

/// Shards: enough that concurrent requests rarely wait for one another.
const SHARDS: usize = 16;

/// One shard: in-flight inbound requests by the hash of their `x-request-id`.
type Shard = HashMap<u64, Entry, BuildHasherDefault<Prehashed>>;

struct Entry {
    request_id: Box<str>,
    context: SpanContext,
}

/// In-flight inbound requests by `x-request-id`.
pub(crate) struct Stitching {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RequestHasher,
}

/// An inbound request's entry; removes it when dropped.
pub(crate) struct Registration {
    stitching: Arc<Stitching>,
    hash: u64,
    span_id: SpanId,
}

// === impl Stitching ===

impl Stitching {
    /// A map of at most about `capacity` in-flight requests.
    pub(crate) fn new(capacity: usize) -> Arc<Stitching> {
        Arc::new(Stitching {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RequestHasher::default(),
        })
    }

    fn hash(&self, request_id: &str) -> u64 {
        self.hasher.hash_one(request_id)
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // The shard map uses the low bits for buckets and the top seven as tags; the shard is
        // picked by bits in between.
        let index = usize::try_from((hash >> 32) % SHARDS as u64).unwrap_or(0);
        // A panic elsewhere cannot leave a map half-updated: every operation is one call.
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an in-flight inbound request whose SERVER span is `context`; `None` when the
    /// map is full. A second request with the same id takes the entry over.
    pub(crate) fn register(
        self: &Arc<Self>,
        request_id: &str,
        context: SpanContext,
    ) -> Option<Registration> {
        let hash = self.hash(request_id);
        let mut shard = self.shard(hash);
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            return None;
        }
        shard.insert(hash, Entry { request_id: request_id.into(), context });
        Some(Registration { stitching: self.clone(), hash, span_id: context.span_id })
    }

    /// The SERVER span of the in-flight inbound request with this id.
    pub(crate) fn lookup(&self, request_id: &str) -> Option<SpanContext> {
        let hash = self.hash(request_id);
        let shard = self.shard(hash);
        let entry = shard.get(&hash)?;
        (*entry.request_id == *request_id).then_some(entry.context)
    }

    /// Entries in the map.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.shards[i].lock().map_or(0, |shard| shard.len())).sum()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut shard = self.stitching.shard(self.hash);
        // Only our own entry: a later request with the same id may have taken it over.
        if shard.get(&self.hash).is_some_and(|entry| entry.context.span_id == self.span_id) {
            shard.remove(&self.hash);
        }
    }
}

/// The hasher of a map whose keys are already keyed hashes: passes the key through.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else is folded in rather than ignored.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
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
    fn an_id_whose_hash_matches_another_finds_nothing() {
        let stitching = Stitching::new(100);
        let registration = stitching.register("id-1", context(1)).unwrap();
        assert_eq!(stitching.lookup("id-1"), Some(context(1)));
        // Forge a collision: the entry under the hash of `id-1` now names another id.
        let hash = stitching.hash("id-1");
        stitching.shard(hash).get_mut(&hash).unwrap().request_id = "another-id".into();
        assert_eq!(stitching.lookup("id-1"), None);
        drop(registration);
        assert_eq!(stitching.len(), 0, "the registration still removes its entry");
    }

    #[test]
    fn prehashed_keys_pass_through() {
        let build = BuildHasherDefault::<Prehashed>::default();
        assert_eq!(build.hash_one(0xdead_beef_u64), 0xdead_beef);
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
