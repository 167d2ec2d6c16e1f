//! What the router counts for its metrics, and how cheaply (a leaf module: the routing
//! path and the sessions bump these; `metrics` exports them).
//!
//! The routing path only bumps per-thread counters ([`shards`]): messages and bytes in and
//! out by WAMP message type, and the latency of one call in [`LATENCY_SAMPLE`]. Rare events
//! (slow-consumer closes, refusals, authentication failures) are plain atomics. Gauges
//! (sessions, queued bytes) are read from the tables when scraped.

pub(crate) mod shards;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use shards::{bump, Shard, CODES, LATENCY_BOUNDS_US, SHARDS};

pub(crate) use shards::sum;

/// One call in this many (by the caller's request id) has its latency measured (a power
/// of two).
pub(crate) const LATENCY_SAMPLE: u64 = 16;

/// Why a session was closed as a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlowClose {
    /// Over its soft bound, it wrote nothing for the stall timeout.
    Stalled,
    /// Its backlog reached a hard cap.
    Cap,
    /// All queues together reached the router's cap; its backlog was among the largest.
    RouterCap,
}

impl SlowClose {
    /// Every reason, in counter order.
    pub(crate) const ALL: [SlowClose; 3] =
        [SlowClose::Stalled, SlowClose::Cap, SlowClose::RouterCap];

    /// The reason's label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            SlowClose::Stalled => "stalled",
            SlowClose::Cap => "backlog_cap",
            SlowClose::RouterCap => "router_cap",
        }
    }
}

/// A router's counters.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) shards: Box<[Shard]>,
    pub(crate) slow_closes: [AtomicU64; 3],
    pub(crate) auth_failures: AtomicU64,
    /// Requests refused with an ERROR or ABORT, by URI.
    pub(crate) refusals: Mutex<HashMap<&'static str, u64>>,
    /// Limits hit, by configuration key (`max_calls_per_caller`, `max_connections`, ...).
    pub(crate) limits: Mutex<HashMap<&'static str, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            slow_closes: Default::default(),
            auth_failures: AtomicU64::new(0),
            refusals: Mutex::default(),
            limits: Mutex::default(),
        }
    }
}

impl Metrics {
    fn shard(&self) -> &Shard {
        &self.shards[shards::index()]
    }

    /// A message of type `code` and `len` bytes arrived.
    pub(crate) fn received(&self, code: u64, len: usize) {
        let s = self.shard();
        bump(&s.received[code_slot(code)], 1);
        bump(&s.bytes_received, len as u64);
    }

    /// `n` messages of type `code`, `len` bytes in all, were queued for peers.
    pub(crate) fn sent_many(&self, code: u64, n: usize, len: usize) {
        if n > 0 {
            let s = self.shard();
            bump(&s.sent[code_slot(code)], n as u64);
            bump(&s.bytes_sent, len as u64);
        }
    }

    /// A message of type `code` and `len` bytes was queued for a peer.
    pub(crate) fn sent_frame(&self, code: u64, len: usize) {
        self.sent_many(code, 1, len);
    }

    /// A sampled call took `elapsed` from CALL to its final answer.
    pub(crate) fn call_latency(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        let s = self.shard();
        bump(&s.latency[bucket], 1);
        bump(&s.latency_sum_us, us);
    }

    /// A session was closed as a slow consumer.
    pub(crate) fn slow_close(&self, why: SlowClose) {
        self.slow_closes[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// An authentication failed.
    pub(crate) fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was refused with `uri` (ERROR or ABORT).
    pub(crate) fn refused(&self, uri: &'static str) {
        count(&self.refusals, uri);
    }

    /// The limit configured as `key` was hit (the request or connection was refused).
    pub(crate) fn limit_hit(&self, key: &'static str) {
        count(&self.limits, key);
    }
}

fn count(map: &Mutex<HashMap<&'static str, u64>>, key: &'static str) {
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry(key).or_default() += 1;
}

/// Whether the call with this caller request id is one whose latency is measured.
pub(crate) fn sampled(request: u64) -> bool {
    // A power of two: the low bits.
    request & (LATENCY_SAMPLE - 1) == 0
}

fn code_slot(code: u64) -> usize {
    usize::try_from(code)
        .ok()
        .filter(|c| *c < CODES)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_over_threads() {
        let m = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        m.received(48, 10);
                    }
                    m.call_latency(Duration::from_micros(120));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(shards::sum(&m.shards, |s| &s.received[48]), 4000);
        assert_eq!(shards::sum(&m.shards, |s| &s.bytes_received), 40_000);
        assert_eq!(
            shards::sum(&m.shards, |s| &s.latency[2]),
            4,
            "in the 250 µs bucket"
        );
    }
}
