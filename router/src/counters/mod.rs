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

use wamp_proto::Serializer;

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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            slow_closes: Default::default(),
            auth_failures: AtomicU64::new(0),
            refusals: Mutex::default(),
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

    /// A frame was queued for a peer speaking `serializer`.
    pub(crate) fn sent(&self, serializer: Serializer, frame: &[u8]) {
        self.sent_frame(message_code(serializer, frame), frame.len());
    }

    /// A message of type `code` and `len` bytes was queued for a peer.
    pub(crate) fn sent_frame(&self, code: u64, len: usize) {
        let s = self.shard();
        bump(&s.sent[code_slot(code)], 1);
        bump(&s.bytes_sent, len as u64);
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
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry(uri).or_default() += 1;
    }
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

/// The WAMP message code at the start of an encoded message (0 if it cannot be told):
/// the first element of the message's array, read from its first bytes.
pub(crate) fn message_code(serializer: Serializer, frame: &[u8]) -> u64 {
    match serializer {
        Serializer::Json => {
            let mut digits = frame.iter().skip(1).skip_while(|b| b.is_ascii_whitespace());
            let mut code = 0u64;
            let mut any = false;
            for b in digits.by_ref().take(3) {
                if !b.is_ascii_digit() {
                    break;
                }
                any = true;
                code = code * 10 + u64::from(b - b'0');
            }
            if frame.first() == Some(&b'[') && any {
                code
            } else {
                0
            }
        }
        Serializer::MsgPack => {
            let at = match frame.first() {
                Some(0x90..=0x9f) => 1,
                Some(0xdc) => 3,
                Some(0xdd) => 5,
                _ => return 0,
            };
            match frame.get(at) {
                Some(c @ 0..=0x7f) => u64::from(*c),
                Some(0xcc) => frame.get(at + 1).map_or(0, |c| u64::from(*c)),
                _ => 0,
            }
        }
        Serializer::Cbor => {
            let at = match frame.first() {
                Some(0x80..=0x97) | Some(0x9f) => 1,
                Some(0x98) => 2,
                Some(0x99) => 3,
                Some(0x9a) => 5,
                _ => return 0,
            };
            match frame.get(at) {
                Some(c @ 0..=0x17) => u64::from(*c),
                Some(0x18) => frame.get(at + 1).map_or(0, |c| u64::from(*c)),
                _ => 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::message::{Event, Publish};
    use wamp_proto::{Dict, Id, Message, Payload, Uri};

    #[test]
    fn the_code_is_read_from_the_first_bytes_for_every_serializer() {
        let id = Id::new(7).unwrap();
        let event: Message = Event {
            subscription: id,
            publication: id,
            details: Dict::new(),
            payload: Payload::args(vec![1u64.into()]),
        }
        .into();
        let publish: Message = Publish {
            request: id,
            options: Dict::new(),
            topic: Uri::new("a.b"),
            payload: Payload::default(),
        }
        .into();
        for ser in [Serializer::Json, Serializer::MsgPack, Serializer::Cbor] {
            for msg in [&event, &publish] {
                let frame = crate::peer::encode_frame(ser, msg).unwrap();
                assert_eq!(
                    message_code(ser, &frame),
                    msg.code(),
                    "{ser:?} {}",
                    msg.name()
                );
            }
            assert_eq!(message_code(ser, b""), 0);
            assert_eq!(message_code(ser, b"\xff\xff"), 0);
        }
        assert_eq!(message_code(Serializer::Json, b"[ 70, 1]"), 70);
    }

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
