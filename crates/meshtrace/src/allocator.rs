//! glibc's allocator, set up for a sidecar: one arena for all threads.
//!
//! By default glibc gives threads that allocate at the same time arenas of their own (up to
//! eight per core), and each arena keeps the memory its thread freed. A sidecar has three
//! threads that allocate: the main thread (span export, admin) and two workers. Its memory
//! goal is 10 MiB. Small allocations still go through glibc's per-thread caches without
//! taking the arena's lock.
//!
//! Measured (BENCHMARKS.md, "One malloc arena"): 15 s at 1,000 rps, two runs each. RssAnon
//! under load fell from 1.9 – 2.1 MiB to 1.6 – 1.7 MiB, and CPU time did not change.
//!
//! This is the workspace's one `unsafe` block: `mallopt` is a C function. The call is sound
//! at any time; it is made before the workers start, so that they never get their own arenas.

/// Limits glibc to one malloc arena. Elsewhere (musl, other systems) it does nothing.
pub fn single_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets an allocator parameter; it takes plain integers, touches
        // no Rust-owned memory, and glibc makes it safe to call while other threads allocate.
        #[allow(unsafe_code, reason = "the one measured exception, see the module docs")]
        let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        if set == 0 {
            tracing::debug!("mallopt(M_ARENA_MAX, 1) was refused; glibc keeps its default arenas");
        }
    }
}
