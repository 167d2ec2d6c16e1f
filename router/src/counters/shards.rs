//! Counters the routing path bumps without sharing a cache line: one shard per worker
//! thread (threads take shard indexes in turn), summed when the metrics are read.
//!
//! A bump is a plain load and store (no locked instruction): two threads that happen to
//! share a shard (more threads than shards) may lose a count, never corrupt one, and a
//! counter never goes down.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shards per router.
pub(crate) const SHARDS: usize = 16;
/// WAMP message codes 0..=70 (YIELD is 70); 0 counts what has no known code.
pub(crate) const CODES: usize = 71;
/// Upper bounds of the call latency buckets, in microseconds (the last bucket is +Inf).
pub(crate) const LATENCY_BOUNDS_US: [u64; 13] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// One thread's counters (aligned so two shards never share a cache line).
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) received: [AtomicU64; CODES],
    pub(crate) sent: [AtomicU64; CODES],
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    /// Sampled call latencies: one count per bucket (+Inf last), and their sum.
    pub(crate) latency: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    pub(crate) latency_sum_us: AtomicU64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            received: std::array::from_fn(|_| AtomicU64::new(0)),
            sent: std::array::from_fn(|_| AtomicU64::new(0)),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_us: AtomicU64::new(0),
        }
    }
}

/// Adds `n` to a counter of this thread's shard.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The sum of one counter over all shards.
pub(crate) fn sum(shards: &[Shard], counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
    shards
        .iter()
        .map(|s| counter(s).load(Ordering::Relaxed))
        .fold(0u64, u64::wrapping_add)
}

/// This thread's shard index.
pub(crate) fn index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        i.get()
    })
}
