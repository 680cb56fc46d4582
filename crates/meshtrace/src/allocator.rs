//! glibc's allocator, set up for a sidecar: one arena for all threads, and no giving memory back
//! to the kernel for every batch of spans.
//!
//! **One arena.** By default glibc gives threads that allocate at the same time arenas of their
//! own (up to eight per core), and each arena keeps the memory its thread freed. A sidecar has
//! three threads that allocate: the main thread (span export, admin) and two workers. Its memory
//! goal is 10 MiB. Small allocations still go through glibc's per-thread caches without taking
//! the arena's lock. Measured (BENCHMARKS.md, "One malloc arena"): 15 s at 1,000 rps, two runs
//! each. RssAnon under load fell from 1.9 – 2.1 MiB to 1.6 – 1.7 MiB, and CPU time did not
//! change.
//!
//! **A trim threshold of 512 KiB.** With the default (128 KiB), the export of each batch of
//! spans freed enough at the top of the heap for glibc to shrink it with `brk`, and the next
//! batch grew it again: 20 `brk` calls and 160 page faults a second at 1,000 requests/s. glibc
//! makes that call holding the arena's lock, so a worker that needed the lock then waited in
//! `futex`: 270 `futex` calls in 5 s, against 45 with this threshold (and 54 with tracing off).
//! It also removed every page fault under load and lowered the added p99 (BENCHMARKS.md,
//! "Giving memory back"). Peak RSS does not grow, because memory kept is memory the sidecar
//! used at its peak anyway. Setting it also stops glibc from moving the mmap threshold, which
//! stays at 128 KiB: larger blocks, which the request path does not allocate, are mapped.
//!
//! This is the workspace's one `unsafe` block: `mallopt` is a C function. The calls are sound
//! at any time; they are made before the workers start, so that they never get their own
//! arenas.

/// glibc's `M_TRIM_THRESHOLD`: free memory at the top of the heap kept rather than returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: libc::c_int = 512 * 1024;

/// Limits glibc to one malloc arena and keeps up to [`TRIM_THRESHOLD_BYTES`] of free heap.
/// Elsewhere (musl, other systems) it does nothing.
pub fn tune_for_sidecar() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (parameter, value, name) in [
        (libc::M_ARENA_MAX, 1, "M_ARENA_MAX"),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES, "M_TRIM_THRESHOLD"),
    ] {
        // SAFETY: `mallopt` only sets an allocator parameter; it takes plain integers, touches
        // no Rust-owned memory, and glibc makes it safe to call while other threads allocate.
        #[allow(unsafe_code, reason = "the one measured exception, see the module docs")]
        let set = unsafe { libc::mallopt(parameter, value) };
        if set == 0 {
            tracing::debug!("mallopt({name}, {value}) was refused; glibc keeps its default");
        }
    }
}
