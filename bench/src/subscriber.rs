//! The subscriber side of the `pubsub` and `fanout` scenarios: each subscriber reads its
//! events in batches, checks every publisher's sequence (duplicates, reordering) and samples
//! the end-to-end latency.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::bail;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use wamp_proto::message::Subscribe;
use wamp_proto::{Dict, Message, Uri};

use crate::conn::Conn;
use crate::stats::{now_ns, record_ns, Latency};

/// Latency shards: subscribers flush buffered samples into one of these.
pub(crate) const SHARDS: usize = 16;
/// Samples a subscriber buffers before taking a shard's lock.
pub(crate) const LOCAL_SAMPLES: usize = 256;
/// State shared by the publishers, the subscribers and the main task.
pub(crate) struct Shared {
    pub(crate) subscribers: u64,
    /// Publications sent, over all publishers.
    pub(crate) published: AtomicU64,
    /// Events received, over all subscribers.
    pub(crate) delivered: AtomicU64,
    /// Delivered count at which a waiting publisher wants to be woken.
    pub(crate) wake_at: AtomicU64,
    pub(crate) notify: Notify,
    /// Set when a subscriber is lost: publishers stop.
    pub(crate) failed: AtomicBool,
    pub(crate) lat: Vec<Mutex<Latency>>,
    pub(crate) t_rec: Instant,
    pub(crate) t_end: Instant,
}

/// Subscribes `c` to `topic` and waits for SUBSCRIBED.
pub(crate) async fn subscribe(c: &mut Conn, topic: &Uri) -> anyhow::Result<()> {
    c.acknowledged(|request| {
        Subscribe {
            request,
            options: Dict::new(),
            topic: topic.clone(),
        }
        .into()
    })
    .await
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub(crate) struct SubOut {
    pub(crate) received: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) malformed: u64,
    pub(crate) error: Option<String>,
}

/// Sequence bookkeeping for one publisher, at one subscriber.
#[derive(Debug, Default)]
struct SeqTrack {
    next: u64,
    /// Sequence numbers skipped so far that may still arrive (bounded).
    missing: HashSet<u64>,
}

const MAX_MISSING: usize = 100_000;

impl SeqTrack {
    /// Sequences start at 1. Returns (duplicate, reordered).
    fn see(&mut self, seq: u64) -> (bool, bool) {
        if self.next == 0 {
            self.next = 1;
        }
        if seq == self.next {
            self.next += 1;
            (false, false)
        } else if seq > self.next {
            for s in self.next..seq {
                if self.missing.len() >= MAX_MISSING {
                    break;
                }
                self.missing.insert(s);
            }
            self.next = seq + 1;
            (false, false)
        } else if self.missing.remove(&seq) {
            (false, true)
        } else {
            (true, false)
        }
    }
}

/// One subscriber: reads events until `stop`, or until its connection fails (then the
/// publishers stop too).
pub(crate) async fn run_subscriber(
    mut c: Conn,
    index: usize,
    publishers: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> SubOut {
    let mut out = SubOut::default();
    let mut seqs: Vec<SeqTrack> = (0..publishers).map(|_| SeqTrack::default()).collect();
    let mut samples: Vec<u64> = Vec::with_capacity(LOCAL_SAMPLES);
    let shard = &shared.lat[index % SHARDS];
    let flush_samples = |samples: &mut Vec<u64>| {
        if samples.is_empty() {
            return;
        }
        let mut h = shard.lock().unwrap_or_else(|e| e.into_inner());
        for &ns in samples.iter() {
            record_ns(&mut h, ns);
        }
        samples.clear();
    };
    let result: anyhow::Result<()> = async {
        loop {
            let first = tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                    continue;
                }
                m = c.recv() => m?,
            };
            let mut next = first;
            let mut n = 0u64;
            // One clock read per batch of already-received events (up to 256): reading it
            // per event cost the load generator ~6 % of its CPU in fan-out runs.
            let clock = Clock::now(&shared);
            loop {
                let Some(m) = next else {
                    bail!("router closed the subscriber's connection");
                };
                n += 1;
                on_event(m, &mut seqs, &mut out, &mut samples, clock);
                if samples.len() >= LOCAL_SAMPLES {
                    flush_samples(&mut samples);
                }
                if n >= 256 {
                    break;
                }
                next = match c.try_recv() {
                    Some(m) => m?,
                    None => break,
                };
            }
            let total = shared.delivered.fetch_add(n, Ordering::Relaxed) + n;
            if total >= shared.wake_at.load(Ordering::Relaxed) {
                shared.notify.notify_waiters();
            }
            // Answer pings, if a router sends them.
            c.flush().await?;
        }
    }
    .await;
    flush_samples(&mut samples);
    match result {
        Ok(()) => c.close().await,
        Err(e) => {
            out.error = Some(format!("{e:#}"));
            shared.failed.store(true, Ordering::Relaxed);
            shared.notify.notify_waiters();
        }
    }
    out
}

/// When a batch of events was received, and whether that is inside the measured window.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now_ns: u64,
    measuring: bool,
}

impl Clock {
    fn now(shared: &Shared) -> Clock {
        let now = Instant::now();
        Clock {
            now_ns: now_ns(),
            measuring: now >= shared.t_rec && now < shared.t_end,
        }
    }
}

fn on_event(
    m: Message,
    seqs: &mut [SeqTrack],
    out: &mut SubOut,
    samples: &mut Vec<u64>,
    clock: Clock,
) {
    let Message::Event(e) = m else {
        out.malformed += 1;
        if out.error.is_none() {
            out.error = Some(format!("subscriber received {}", m.name()));
        }
        return;
    };
    // [publisher, seq, timestamp, filler string]
    type Args = (u64, u64, u64, serde::de::IgnoredAny);
    let Some((p, seq, ts, _)) = crate::conn::args::<Args>(&e.payload) else {
        out.malformed += 1;
        return;
    };
    let Some(track) = usize::try_from(p).ok().and_then(|p| seqs.get_mut(p)) else {
        out.malformed += 1;
        return;
    };
    out.received += 1;
    let (dup, reordered) = track.see(seq);
    out.duplicated += u64::from(dup);
    out.reordered += u64::from(reordered);
    if clock.measuring {
        samples.push(clock.now_ns.saturating_sub(ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_tracking() {
        let mut t = SeqTrack::default();
        assert_eq!(t.see(1), (false, false));
        assert_eq!(t.see(2), (false, false));
        assert_eq!(t.see(2), (true, false));
        assert_eq!(t.see(5), (false, false));
        assert_eq!(t.see(3), (false, true));
        assert_eq!(t.see(3), (true, false));
        assert_eq!(t.missing.len(), 1);
    }
}
