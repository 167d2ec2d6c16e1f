//! The outbound side of a session: encoded frames and the bounded queue its connection drains.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;
use wamp_proto::{EncodeError, Encoded, Message, Serializer};

/// Encodes a message into a frame payload for `ser` (the framing knows the frame type).
pub(crate) fn encode_frame(ser: Serializer, msg: &Message) -> Result<Bytes, EncodeError> {
    Ok(match ser.encode(msg)? {
        Encoded::Text(s) => Bytes::from(s.into_bytes()),
        Encoded::Binary(b) => Bytes::from(b),
    })
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds `capacity` frames: the peer does not keep up.
    Full,
    /// The connection is closing or was killed.
    Closed,
}

/// A session's outgoing frame payloads (all of the session's one data opcode), bounded.
///
/// Allocates nothing while empty. Senders never wait: a full queue is refused. The
/// connection takes the whole queue at once and leaves its waker here whenever it waits:
/// [`Outbox::kill`] always wakes it, a new frame only when it was parked with nothing to write.
#[derive(Debug)]
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    /// Mirrors `Inner::killed` for a lock-free check on every poll.
    killed: AtomicBool,
    /// The session was ended by someone else (a GOODBYE is queued): the connection waits for
    /// the reply, then closes.
    ending: AtomicBool,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Bytes>,
    /// Frames the connection took and has not written yet; they count against the bound.
    taken: usize,
    waker: Option<Waker>,
    /// The connection has nothing to write: the next frame must wake it.
    parked: bool,
    /// Why the session was killed (first reason wins).
    killed: Option<&'static str>,
    /// No more frames are accepted.
    closed: bool,
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            inner: Mutex::default(),
            killed: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            capacity: capacity.max(1),
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
            taken: g.taken,
            waker: g.waker.take(),
            parked: std::mem::take(&mut g.parked),
            killed: None,
            closed: false,
        };
        drop(g);
        Outbox {
            inner: Mutex::new(inner),
            killed: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            capacity: old.capacity,
        }
    }

    /// Queues a frame payload without waiting.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), Refused> {
        let mut g = self.lock();
        if g.closed || g.killed.is_some() {
            return Err(Refused::Closed);
        }
        if g.queue.len() + g.taken >= self.capacity {
            return Err(Refused::Full);
        }
        g.queue.push_back(frame);
        let waker = if std::mem::take(&mut g.parked) {
            g.waker.clone()
        } else {
            None
        };
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Marks the session for dropping and wakes its connection; true for the first reason.
    pub(crate) fn kill(&self, reason: &'static str) -> bool {
        let mut g = self.lock();
        if g.killed.is_some() {
            return false;
        }
        g.killed = Some(reason);
        self.killed.store(true, Ordering::Release);
        let waker = g.waker.clone();
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
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
        self.lock().closed = true;
    }

    /// Connection side: reports `written` taken frames as gone and moves everything queued
    /// into the empty `into` (the two buffers swap, so steady traffic allocates nothing).
    pub(crate) fn take(&self, into: &mut VecDeque<Bytes>, written: usize) {
        debug_assert!(into.is_empty());
        let mut g = self.lock();
        g.taken = g.taken.saturating_sub(written) + g.queue.len();
        std::mem::swap(&mut g.queue, into);
    }

    /// Connection side, with nothing left to write: parks `waker` (woken by the next frame)
    /// and frees the queue's buffer. False if frames arrived meanwhile or the session was
    /// killed: then the connection must go on instead of waiting.
    pub(crate) fn park(&self, waker: &Waker, written: usize) -> bool {
        let mut g = self.lock();
        g.taken = g.taken.saturating_sub(written);
        if !g.queue.is_empty() || g.killed.is_some() {
            return false;
        }
        if g.queue.capacity() > 0 {
            g.queue = VecDeque::new();
        }
        g.set_waker(waker);
        g.parked = true;
        true
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

impl Inner {
    fn set_waker(&mut self, waker: &Waker) {
        match &self.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.waker = Some(waker.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn bounded_including_frames_being_written() {
        let q = Outbox::new(2);
        assert_eq!(q.push(Bytes::from_static(b"a")), Ok(()));
        let mut local = VecDeque::new();
        q.take(&mut local, 0);
        assert_eq!(local.len(), 1);
        assert_eq!(q.push(Bytes::from_static(b"b")), Ok(()));
        assert_eq!(q.push(Bytes::from_static(b"c")), Err(Refused::Full));
        local.clear();
        let mut next = VecDeque::new();
        q.take(&mut next, 1);
        assert_eq!(next.len(), 1);
        assert_eq!(q.push(Bytes::from_static(b"c")), Ok(()));
        q.close();
        assert_eq!(q.push(Bytes::from_static(b"d")), Err(Refused::Closed));
    }

    #[test]
    fn a_successor_keeps_what_is_queued_and_the_predecessor_takes_nothing_more() {
        let q = Outbox::new(4);
        q.push(Bytes::from_static(b"goodbye")).unwrap();
        let next = Outbox::succeed(&q);
        assert_eq!(q.push(Bytes::from_static(b"late")), Err(Refused::Closed));
        next.push(Bytes::from_static(b"welcome")).unwrap();
        let mut local = VecDeque::new();
        next.take(&mut local, 0);
        assert_eq!(local, [&b"goodbye"[..], &b"welcome"[..]]);
    }

    #[test]
    fn parked_waker_is_woken_once_by_a_push_and_by_kill() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let q = Outbox::new(8);
        assert!(q.park(&waker, 0));
        q.push(Bytes::from_static(b"a")).unwrap();
        q.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!q.park(&waker, 0), "frames are waiting");
        let mut local = VecDeque::new();
        q.take(&mut local, 0);
        assert!(q.watch(&waker));
        q.push(Bytes::from_static(b"c")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "not parked: no wake");
        let mut local = VecDeque::new();
        q.take(&mut local, 2);
        assert!(q.park(&waker, 1));
        assert!(q.kill("test"));
        assert!(!q.kill("again"));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(q.kill_reason(), Some("test"));
        assert!(!q.park(&waker, 0), "killed");
        assert!(!q.watch(&waker), "killed");
        assert_eq!(q.push(Bytes::from_static(b"d")), Err(Refused::Closed));
    }
}
