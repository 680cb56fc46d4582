//! The hash maps the request path looks up on every request: upstream pools, Istio metric
//! series and routes, span names, in-flight requests for stitching.
//!
//! std's `HashMap` hashes with SipHash-1-3; these lookups cost about 2,200 user-space
//! instructions per traced request with it (BENCHMARKS.md, "Sidecar"). foldhash, hashbrown's
//! default hasher, is keyed too: seeded at random per process and per map, so a caller who
//! chooses keys (an authority, a request id) still cannot aim for collisions. It hashes short
//! keys in a fraction of SipHash's time.

/// A map with the request path's hasher.
pub(crate) type RequestMap<K, V> = std::collections::HashMap<K, V, RequestHasher>;

/// The request path's hasher: keyed, seeded at random.
pub(crate) type RequestHasher = foldhash::fast::RandomState;
