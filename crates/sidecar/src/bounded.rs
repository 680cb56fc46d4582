//! A string-keyed, read-mostly map whose entries come out of a shared budget, so label values
//! taken from requests (hosts, clusters, peers) cannot grow a map without bound.

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

    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }
}

/// A string-keyed map whose entries come out of a shared [`Budget`].
pub(crate) struct Bounded<V> {
    map: RwLock<RequestMap<Box<str>, V>>,
    budget: Arc<Budget>,
}

impl<V: Clone> Bounded<V> {
    pub(crate) fn new(budget: &Arc<Budget>) -> Self {
        Bounded { map: RwLock::new(RequestMap::default()), budget: budget.clone() }
    }

    /// The value for `key`, made and remembered on first use; `None` once the budget is spent.
    /// `make` runs under the write lock, once per key.
    pub(crate) fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> V) -> Option<V> {
        if let Some(value) = self.map.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return Some(value.clone());
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = map.get(key) {
            return Some(value.clone());
        }
        if !self.budget.take() {
            return None;
        }
        let value = make();
        map.insert(Box::from(key), value.clone());
        Some(value)
    }
}
