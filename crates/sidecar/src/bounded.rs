//! A read-mostly map, keyed by text or bytes, whose entries come out of a shared budget, so label
//! values taken from requests (hosts, clusters, peers) cannot grow a map without bound.

use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::request_map::RequestMap;

/// How many more entries the maps sharing it may remember.
pub(crate) struct Budget(AtomicUsize);

impl Budget {
    /// A budget of `entries`.
    pub(crate) fn new(entries: usize) -> Self {
        Budget(AtomicUsize::new(entries))
    }

    fn spent(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }

    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }
}

/// A map whose entries come out of a shared [`Budget`], keyed by `str` or, for values that need
/// not be text (a header's bytes, so they are not checked as text on every request), `[u8]`.
pub(crate) struct Bounded<V, K: ?Sized = str> {
    map: RwLock<RequestMap<Box<K>, V>>,
    budget: Arc<Budget>,
}

impl<V: Clone, K: ?Sized + Hash + Eq> Bounded<V, K>
where
    for<'a> Box<K>: From<&'a K>,
{
    pub(crate) fn new(budget: &Arc<Budget>) -> Self {
        Bounded { map: RwLock::new(RequestMap::default()), budget: budget.clone() }
    }

    /// The value for `key`, made and remembered on first use; `None` once the budget is spent.
    /// `make` runs under the write lock, once per key.
    pub(crate) fn get_or_insert_with(&self, key: &K, make: impl FnOnce() -> V) -> Option<V> {
        self.get_or_try_insert_with(key, || Some(make()))
    }

    /// Like [`Bounded::get_or_insert_with`], but `make` may have no value for `key`: then
    /// nothing is remembered and no budget is spent, so keys without a value (a header that
    /// does not decode) cannot use up the map. `make` runs again on the key's next use.
    pub(crate) fn get_or_try_insert_with(
        &self,
        key: &K,
        make: impl FnOnce() -> Option<V>,
    ) -> Option<V> {
        if let Some(value) = self.map.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return Some(value.clone());
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = map.get(key) {
            return Some(value.clone());
        }
        if self.budget.spent() {
            return None;
        }
        let value = make()?;
        if !self.budget.take() {
            return None;
        }
        map.insert(Box::from(key), value.clone());
        Some(value)
    }
}
