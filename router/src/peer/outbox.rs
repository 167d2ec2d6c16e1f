//! The outbound side of a session: encoded frames and the bounded queue its connection drains.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;
use wamp_proto::{EncodeError, Encoded, Message, Serializer};

use super::budget::{Backlog, OutboundBudget};

/// Encodes a message into a frame payload for `ser` (the framing knows the frame type).
pub(crate) fn encode_frame(ser: Serializer, msg: &Message) -> Result<Bytes, EncodeError> {
    Ok(match ser.encode(msg)? {
        Encoded::Text(s) => Bytes::from(s.into_bytes()),
        Encoded::Binary(b) => Bytes::from(b),
    })
}

/// One entry of a session's queue: a frame payload, or frames already framed for the
/// session's wire (a fan-out batch), written as they are.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    pub(crate) bytes: Bytes,
    /// 0: `bytes` is one message's payload, to be framed by the connection; n > 0: `bytes`
    /// holds n complete frames.
    pub(crate) framed: u32,
}

impl Out {
    /// One message's payload.
    pub(crate) fn payload(bytes: Bytes) -> Out {
        Out { bytes, framed: 0 }
    }

    /// Messages this entry carries.
    fn messages(&self) -> u32 {
        self.framed.max(1)
    }
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The backlog is at a hard cap: the peer does not keep up.
    OverCap,
    /// The connection is closing or was killed.
    Closed,
}

/// A session's outgoing frame payloads (all of the session's one data opcode), bounded in
/// messages and bytes by the router's [`OutboundBudget`].
///
/// Allocates nothing while empty. Senders never wait: past a hard cap a frame is refused.
/// The connection takes the whole queue at once (frames taken count against the bounds
/// until the next take, which means they were written) and leaves its waker here whenever
/// it waits: [`Outbox::kill`] always wakes it, a new frame only when it was parked with
/// nothing to write.
#[derive(Debug)]
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    /// Mirrors `Inner::killed` for a lock-free check on every poll.
    killed: AtomicBool,
    /// The session was ended by someone else (a GOODBYE is queued): the connection waits for
    /// the reply, then closes.
    ending: AtomicBool,
    budget: Arc<OutboundBudget>,
}

/// Wakers of paused publishers: boxed, so the many outboxes that never have any pay 8
/// bytes for them, not a `Vec`'s 24.
#[allow(clippy::box_collection)]
type Waiting = Box<Vec<Waker>>;

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Out>,
    /// Messages and bytes in `queue`.
    queued: Backlog,
    /// Frames (and their bytes) the connection took and has not written yet.
    taken: Backlog,
    waker: Option<Waker>,
    /// The connection has nothing to write: the next frame must wake it.
    parked: bool,
    /// Why the session was killed (first reason wins).
    killed: Option<&'static str>,
    /// Publishers paused until the backlog is under the soft bound.
    publishers: Option<Waiting>,
    /// No more frames are accepted.
    closed: bool,
}

impl Inner {
    /// Queued plus taken: never more than the hard cap (checked at every push), which fits
    /// in a `u32`.
    fn backlog(&self) -> Backlog {
        Backlog {
            messages: self.taken.messages.wrapping_add(self.queued.messages),
            bytes: self.taken.bytes.wrapping_add(self.queued.bytes),
        }
    }

    fn set_waker(&mut self, waker: &Waker) {
        match &self.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.waker = Some(waker.clone()),
        }
    }
}

impl Outbox {
    pub(crate) fn new(budget: Arc<OutboundBudget>) -> Outbox {
        Outbox {
            inner: Mutex::default(),
            killed: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outbox of a connection's next session (after GOODBYE, on the same transport):
    /// `old` accepts nothing more, and what it still holds goes first in the new one.
    pub(crate) fn succeed(old: &Outbox) -> Outbox {
        let mut g = old.lock();
        g.closed = true;
        let inner = Inner {
            queue: std::mem::take(&mut g.queue),
            queued: std::mem::take(&mut g.queued),
            taken: std::mem::take(&mut g.taken),
            waker: g.waker.take(),
            parked: std::mem::take(&mut g.parked),
            killed: None,
            closed: false,
            publishers: g.publishers.take(),
        };
        drop(g);
        Outbox {
            inner: Mutex::new(inner),
            killed: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            budget: old.budget.clone(),
        }
    }

    /// Queues a frame payload without waiting; `Ok(true)` when the backlog is now over the
    /// soft bound.
    pub(crate) fn push(&self, frame: Bytes) -> Result<bool, Refused> {
        self.push_out(Out::payload(frame))
    }

    /// Queues an entry (see [`Out`]) without waiting; `Ok(true)` when the backlog is now
    /// over the soft bound.
    pub(crate) fn push_out(&self, out: Out) -> Result<bool, Refused> {
        let mut g = self.lock();
        if g.closed || g.killed.is_some() {
            return Err(Refused::Closed);
        }
        let before = g.backlog();
        let len = out.bytes.len();
        let n = out.messages();
        let b = &*self.budget;
        // The common case, under the soft bound after this entry, takes two comparisons.
        let under = (before.messages as u64 + u64::from(n)) <= u64::from(b.soft_messages)
            && before.bytes as usize + len <= b.soft_bytes as usize;
        if !under && b.over_cap(before, n, len) {
            return Err(Refused::OverCap);
        }
        // Under the cap, so the sums fit in a u32 (caps are u32).
        let len = len as u32;
        g.queued.bytes += len;
        g.queued.messages += n;
        if g.queue.capacity() == 0 {
            g.queue = super::spare::queue();
        }
        g.queue.push_back(out);
        b.moved(before.bytes, before.bytes + len);
        // A parked connection has nothing to write; one waiting for its socket is woken
        // when its backlog crosses the soft bound, to start watching its progress.
        let crossed = !under && !b.over_soft(before);
        let waker = if std::mem::take(&mut g.parked) || crossed {
            g.waker.clone()
        } else {
            None
        };
        let over = !under;
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(over)
    }

    /// A publisher paused for this session (realm `pause_publishers`): true while the
    /// backlog is over the soft bound, leaving `waker` to be woken once it drains below it
    /// or the session is closed; false when the publisher may go on.
    pub(crate) fn hold_publisher(&self, waker: &Waker) -> bool {
        let mut g = self.lock();
        if g.killed.is_some() || g.closed || !self.budget.over_soft(g.backlog()) {
            return false;
        }
        let waiting = g.publishers.get_or_insert_with(Box::default);
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
        true
    }

    /// The bounds (and counters) this outbox shares with every other of its router.
    pub(crate) fn budget(&self) -> &OutboundBudget {
        &self.budget
    }

    /// What is queued or being written.
    pub(crate) fn backlog(&self) -> Backlog {
        self.lock().backlog()
    }

    /// Whether the backlog is over the soft bound: the connection must keep draining it.
    pub(crate) fn over_soft_bound(&self) -> bool {
        self.budget.over_soft(self.lock().backlog())
    }

    /// Marks the session for dropping and wakes its connection; true for the first reason.
    pub(crate) fn kill(&self, reason: &'static str) -> bool {
        let mut g = self.lock();
        if g.killed.is_some() {
            return false;
        }
        g.killed = Some(reason);
        self.killed.store(true, Ordering::Release);
        // Nothing queued will be written any more: it no longer counts (the frame being
        // written, if any, is the connection's until it closes).
        self.budget.moved(g.backlog().bytes, 0);
        g.queue = VecDeque::new();
        g.queued = Backlog::default();
        g.taken = Backlog::default();
        let waker = g.waker.clone();
        let publishers = g.publishers.take();
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
        wake_all(publishers);
        true
    }

    /// Asks the connection to end the session after its queued GOODBYE (wakes it).
    pub(crate) fn end(&self) {
        self.ending.store(true, Ordering::Release);
        let waker = self.lock().waker.clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Connection side: whether [`Outbox::end`] was called since the last look.
    pub(crate) fn take_ending(&self) -> bool {
        self.ending.load(Ordering::Acquire) && self.ending.swap(false, Ordering::AcqRel)
    }

    /// Whether [`Outbox::kill`] was called.
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Why the session was killed, if it was.
    pub(crate) fn kill_reason(&self) -> Option<&'static str> {
        self.lock().killed
    }

    /// Accepts no more frames (what is queued can still be taken).
    pub(crate) fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        let publishers = g.publishers.take();
        drop(g);
        wake_all(publishers);
    }

    /// Connection side, everything taken before written: moves everything queued into the
    /// empty `into` (the two buffers swap, so steady traffic allocates nothing).
    pub(crate) fn take(&self, into: &mut VecDeque<Out>) {
        debug_assert!(into.is_empty());
        let mut g = self.lock();
        let before = g.backlog().bytes;
        g.taken = std::mem::take(&mut g.queued);
        std::mem::swap(&mut g.queue, into);
        self.budget.moved(before, g.taken.bytes);
        let publishers = self.drained(&mut g);
        drop(g);
        wake_all(publishers);
    }

    /// The paused publishers to wake, if the backlog is now under the soft bound.
    fn drained(&self, g: &mut Inner) -> Option<Waiting> {
        if g.publishers.is_some() && !self.budget.over_soft(g.backlog()) {
            g.publishers.take()
        } else {
            None
        }
    }

    /// Connection side, everything taken written and nothing left to write: parks `waker`
    /// (woken by the next frame) and gives the queue's buffer back (`spare`). False if frames
    /// arrived meanwhile or the session was killed: then the connection must go on instead of
    /// waiting.
    pub(crate) fn park(&self, waker: &Waker) -> bool {
        let mut g = self.lock();
        let before = g.backlog().bytes;
        g.taken = Backlog::default();
        self.budget.moved(before, g.queued.bytes);
        let publishers = self.drained(&mut g);
        let parked = g.queue.is_empty() && g.killed.is_none();
        if parked {
            if g.queue.capacity() > 0 {
                super::spare::give_back(std::mem::take(&mut g.queue));
            }
            g.set_waker(waker);
            g.parked = true;
        }
        drop(g);
        wake_all(publishers);
        parked
    }

    /// Connection side, waiting for the socket with frames still to write: leaves `waker`
    /// for [`Outbox::kill`] only. False if the session was killed already.
    pub(crate) fn watch(&self, waker: &Waker) -> bool {
        let mut g = self.lock();
        if g.killed.is_some() {
            return false;
        }
        g.set_waker(waker);
        g.parked = false;
        true
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let g = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        self.budget.moved(g.backlog().bytes, 0);
        wake_all(g.publishers.take());
    }
}

fn wake_all(wakers: Option<Waiting>) {
    for w in wakers.into_iter().flat_map(|w| w.into_iter()) {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutboundConfig;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn outbox(max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox::new(Arc::new(OutboundBudget::new(
            &OutboundConfig {
                soft_messages: max_messages,
                soft_bytes: max_bytes / 2,
                max_messages,
                max_bytes,
                total_max_bytes: 1 << 40,
                ..OutboundConfig::default()
            },
            Arc::default(),
        )))
    }

    #[test]
    fn bounded_in_messages_including_frames_being_written() {
        let q = outbox(2, 1000);
        assert!(q.push(Bytes::from_static(b"a")).is_ok());
        let mut local = VecDeque::new();
        q.take(&mut local);
        assert_eq!(local.len(), 1);
        assert!(q.push(Bytes::from_static(b"b")).is_ok());
        assert_eq!(q.push(Bytes::from_static(b"c")), Err(Refused::OverCap));
        local.clear();
        let mut next = VecDeque::new();
        q.take(&mut next);
        assert_eq!(next.len(), 1);
        assert!(q.push(Bytes::from_static(b"c")).is_ok());
        q.close();
        assert_eq!(q.push(Bytes::from_static(b"d")), Err(Refused::Closed));
    }

    #[test]
    fn bounded_in_bytes_and_the_router_total_follows() {
        let q = outbox(1000, 300 << 10);
        let frame = Bytes::from(vec![0u8; 100 << 10]);
        for _ in 0..3 {
            assert!(q.push(frame.clone()).is_ok());
        }
        assert_eq!(q.push(Bytes::from_static(b"x")), Err(Refused::OverCap));
        assert_eq!(
            q.backlog(),
            Backlog {
                messages: 3,
                bytes: 300 << 10
            }
        );
        assert!(q.over_soft_bound());
        assert_eq!(q.budget.total_bytes(), 256 << 10, "whole 64 KiB units");
        let mut local = VecDeque::new();
        q.take(&mut local);
        assert_eq!(q.backlog().bytes, 300 << 10, "taken frames still count");
        local.clear();
        let waker = Waker::noop();
        assert!(q.park(waker));
        assert_eq!(q.backlog(), Backlog::default());
        assert_eq!(q.budget.total_bytes(), 0);
        q.push(frame).unwrap();
        let budget = q.budget.clone();
        drop(q);
        assert_eq!(
            budget.total_bytes(),
            0,
            "a dropped outbox gives its bytes back"
        );
    }

    #[test]
    fn a_successor_keeps_what_is_queued_and_the_predecessor_takes_nothing_more() {
        let q = outbox(4, 1000);
        q.push(Bytes::from_static(b"goodbye")).unwrap();
        let next = Outbox::succeed(&q);
        assert_eq!(q.push(Bytes::from_static(b"late")), Err(Refused::Closed));
        assert_eq!(q.backlog(), Backlog::default());
        next.push(Bytes::from_static(b"welcome")).unwrap();
        let mut local = VecDeque::new();
        next.take(&mut local);
        let taken: Vec<_> = local.iter().map(|o| o.bytes.clone()).collect();
        assert_eq!(taken, [&b"goodbye"[..], &b"welcome"[..]]);
    }

    #[test]
    fn a_framed_batch_counts_every_message_it_carries() {
        let q = outbox(5, 1000);
        let batch = |n| Out {
            bytes: Bytes::from(vec![0u8; 10]),
            framed: n,
        };
        assert_eq!(q.push_out(batch(3)), Ok(false));
        assert_eq!(
            q.backlog(),
            Backlog {
                messages: 3,
                bytes: 10
            }
        );
        assert_eq!(q.push_out(batch(3)), Err(Refused::OverCap), "3 + 3 > 5");
        assert_eq!(q.push_out(batch(2)), Ok(false), "3 + 2 = 5 fits");
        let mut local = VecDeque::new();
        q.take(&mut local);
        assert_eq!(local.len(), 2);
        assert_eq!(
            q.backlog(),
            Backlog {
                messages: 5,
                bytes: 20
            },
            "taken still counts"
        );
        local.clear();
        assert!(q.park(Waker::noop()));
        assert_eq!(q.backlog(), Backlog::default());
    }

    #[test]
    fn crossing_the_soft_bound_wakes_the_connection_and_holds_publishers_until_it_drains() {
        let connection = Arc::new(Count(AtomicUsize::new(0)));
        let publisher = Arc::new(Count(AtomicUsize::new(0)));
        let (conn_waker, pub_waker) = (
            Waker::from(connection.clone()),
            Waker::from(publisher.clone()),
        );
        let q = outbox(100, 1000);
        assert!(!q.hold_publisher(&pub_waker), "under the bound: go on");
        let mut writing = VecDeque::new();
        q.take(&mut writing);
        assert!(q.watch(&conn_waker), "the socket is full");
        assert_eq!(q.push(Bytes::from(vec![0u8; 400])), Ok(false));
        assert_eq!(connection.0.load(Ordering::SeqCst), 0);
        assert_eq!(
            q.push(Bytes::from(vec![0u8; 200])),
            Ok(true),
            "over 500 bytes"
        );
        assert_eq!(
            connection.0.load(Ordering::SeqCst),
            1,
            "woken to watch for a stall"
        );
        assert_eq!(q.push(Bytes::from(vec![0u8; 10])), Ok(true));
        assert_eq!(connection.0.load(Ordering::SeqCst), 1, "once per crossing");
        assert!(q.hold_publisher(&pub_waker));
        assert!(q.hold_publisher(&pub_waker), "registered once");
        q.take(&mut writing);
        assert_eq!(publisher.0.load(Ordering::SeqCst), 0, "still being written");
        writing.clear();
        assert!(q.park(&conn_waker));
        assert_eq!(
            publisher.0.load(Ordering::SeqCst),
            1,
            "drained: the publisher goes on"
        );
        assert!(!q.hold_publisher(&pub_waker));
        q.push(Bytes::from(vec![0u8; 600])).unwrap();
        assert!(q.hold_publisher(&pub_waker));
        q.kill("stalled");
        assert_eq!(
            publisher.0.load(Ordering::SeqCst),
            2,
            "a closed subscriber frees it too"
        );
        assert!(!q.hold_publisher(&pub_waker));
    }

    #[test]
    fn parked_waker_is_woken_once_by_a_push_and_by_kill() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let q = outbox(8, 1000);
        assert!(q.park(&waker));
        q.push(Bytes::from_static(b"a")).unwrap();
        q.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!q.park(&waker), "frames are waiting");
        let mut local = VecDeque::new();
        q.take(&mut local);
        assert!(q.watch(&waker));
        q.push(Bytes::from_static(b"c")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "not parked: no wake");
        let mut local = VecDeque::new();
        q.take(&mut local);
        assert!(q.park(&waker));
        assert!(q.kill("test"));
        assert!(!q.kill("again"));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(q.kill_reason(), Some("test"));
        assert!(!q.park(&waker), "killed");
        assert!(!q.watch(&waker), "killed");
        assert_eq!(q.push(Bytes::from_static(b"d")), Err(Refused::Closed));
    }
}
