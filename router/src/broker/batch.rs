//! Fan-out batched per publisher read (nats-server's "flush the touched clients" idiom).
//!
//! While a connection handles what one read brought ([`Reading`]), consecutive
//! publications that reach exactly one subscription, with no black/white lists, are not
//! pushed subscriber by subscriber: each is encoded once per serializer and appended, framed
//! for each wire its subscribers use, to one buffer. A flush then gives every subscriber the
//! whole batch as one queue entry: one lock, one refcount, one wake and one contiguous write
//! per subscriber per batch instead of per event.
//!
//! Order is kept: a publication for another subscription (or with another exclusion), one
//! the batch cannot take, and every non-PUBLISH message the publisher sends flush first;
//! the end of the read flushes the rest. The batch lives in a thread-local: a read is
//! handled without yielding, so nothing else runs on the thread meanwhile, and sessions hold
//! no batch state (idle memory is unchanged). The subscriber list is looked up once per
//! batch: a SUBSCRIBE that lands meanwhile gets the next batch, as it would have missed a
//! publication fanned out a moment earlier.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use bytes::Bytes;
use tracing::warn;
use wamp_proto::message::code;
use wamp_proto::{Id, Message, Serializer};

use super::Subscription;
use crate::peer::{Queued, SessionHandle, Wire};

/// A batch is flushed once one of its buffers holds this much. It also bounds what a killed
/// session still writes: the entry it began is finished.
const FLUSH_AT: usize = 48 * 1024;
/// Buffers kept between batches give back capacity beyond this.
const KEEP_CAPACITY: usize = 128 * 1024;
const BUFFERS: usize = Serializer::COUNT * Wire::COUNT;

// Constant-initialized, and two flags read without borrowing the batch: a read or a message
// that publishes nothing pays a few instructions.
thread_local! {
    static BATCH: RefCell<Batch> = const { RefCell::new(Batch::new()) };
    /// A read is being handled on this thread: publications may be batched.
    static OPEN: Cell<bool> = const { Cell::new(false) };
    /// The batch holds a subscription (flushing has something to do).
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// A publisher's read being handled: publications may be batched until it ends.
#[derive(Debug)]
pub(crate) struct Reading(());

impl Reading {
    /// Opens batching for the read about to be handled on this thread.
    pub(crate) fn begin() -> Reading {
        OPEN.set(true);
        Reading(())
    }

    /// Flushes what is batched and closes batching; returns a subscriber now over its
    /// soft bound, if the realm pauses publishers for it.
    pub(crate) fn finish(self) -> Option<SessionHandle> {
        let over = flush();
        std::mem::forget(self);
        OPEN.set(false);
        over
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        flush();
        OPEN.set(false);
    }
}

/// Flushes what is batched (nothing to do when nothing is); see [`Reading::finish`].
pub(crate) fn flush() -> Option<SessionHandle> {
    if !HELD.get() {
        return None;
    }
    HELD.set(false);
    BATCH.with_borrow_mut(|b| {
        let over = b.hand_out();
        b.current = None;
        over
    })
}

/// What [`offer`] did with a publication.
pub(super) enum Offer {
    /// Batched; a flush it caused may have left a subscriber over its soft bound.
    Taken(Option<SessionHandle>),
    /// No read is open on this thread (so nothing is batched): deliver it now.
    Declined,
}

/// Offers the EVENT in `msg`, for `sub` (its only matching subscription, no lists), to the
/// batch of the read being handled.
pub(super) fn offer(
    sub: &Arc<Subscription>,
    msg: &Message,
    exclude: Option<Id>,
    pause: bool,
) -> Offer {
    if !OPEN.get() {
        return Offer::Declined;
    }
    HELD.set(true);
    BATCH.with_borrow_mut(|b| {
        let mut over = None;
        let same = b
            .current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.sub, sub) && c.exclude == exclude);
        if !same {
            over = b.hand_out();
            b.current = Some(Current::new(sub, exclude, pause));
        }
        if b.append(msg) {
            over = over.or(b.hand_out());
        }
        Offer::Taken(over)
    })
}

#[derive(Debug)]
struct Batch {
    current: Option<Current>,
    /// Per (serializer, wire): the frames batched so far.
    buffers: [Buffer; BUFFERS],
    /// One EVENT encoded, before it is framed into the buffers.
    scratch: Vec<u8>,
}

/// The subscription being batched, and who gets it.
#[derive(Debug)]
struct Current {
    sub: Arc<Subscription>,
    members: Arc<[SessionHandle]>,
    exclude: Option<Id>,
    pause: bool,
    /// The buffers the members need: bit `index(serializer, wire)`.
    needed: u16,
    /// EVENTs batched since the last flush.
    events: u32,
}

impl Current {
    fn new(sub: &Arc<Subscription>, exclude: Option<Id>, pause: bool) -> Current {
        let members = sub.snapshot();
        let needed = members
            .iter()
            .filter(|s| Some(s.id()) != exclude)
            .fold(0u16, |m, s| m | 1 << index(s.serializer(), s.wire()));
        Current {
            sub: sub.clone(),
            members,
            exclude,
            pause,
            needed,
            events: 0,
        }
    }
}

#[derive(Debug)]
struct Buffer {
    bytes: Vec<u8>,
    /// Where each frame's payload lies in `bytes`: offset and length.
    payloads: Vec<(usize, usize)>,
    /// The longest payload batched (a peer that accepts less gets the frames one by one).
    longest: usize,
    /// The payloads' bytes (the metrics count messages, not their framing).
    payload_bytes: usize,
}

impl Batch {
    const fn new() -> Batch {
        Batch {
            current: None,
            buffers: [const { Buffer::new() }; BUFFERS],
            scratch: Vec::new(),
        }
    }
}

impl Buffer {
    const fn new() -> Buffer {
        Buffer {
            bytes: Vec::new(),
            payloads: Vec::new(),
            longest: 0,
            payload_bytes: 0,
        }
    }
}

fn index(ser: Serializer, wire: Wire) -> usize {
    ser.index() * Wire::COUNT + wire.index()
}

impl Batch {
    /// Appends the EVENT for every buffer the current members need; true when the batch
    /// should be flushed now.
    fn append(&mut self, msg: &Message) -> bool {
        let Some(c) = &mut self.current else {
            return false;
        };
        let mut full = false;
        for ser in Serializer::ALL {
            let wires = Wire::ALL
                .into_iter()
                .filter(|w| c.needed & (1 << index(ser, *w)) != 0);
            let mut wires = wires.peekable();
            if wires.peek().is_none() {
                continue;
            }
            self.scratch.clear();
            if let Err(e) = ser.encode_into(msg, &mut self.scratch) {
                warn!(topic = %c.sub.uri, cause = %e, "cannot encode EVENT; not delivered to this serializer");
                continue;
            }
            let len = self.scratch.len();
            for wire in wires {
                let b = &mut self.buffers[index(ser, wire)];
                let (head, n) = wire.message_header(ser, len);
                b.bytes.extend_from_slice(&head[..n]);
                b.payloads.push((b.bytes.len(), len));
                b.bytes.extend_from_slice(&self.scratch);
                b.longest = b.longest.max(len);
                b.payload_bytes += len;
                full |= b.bytes.len() >= FLUSH_AT;
            }
        }
        c.events += 1;
        full
    }

    /// Hands what is batched to every member; the current subscription stays for the next
    /// publications. Returns a member over its soft bound (realm `pause_publishers`).
    fn hand_out(&mut self) -> Option<SessionHandle> {
        let c = self.current.as_mut()?;
        if c.events == 0 {
            return None;
        }
        let frames = std::mem::take(&mut c.events);
        let mut blobs: [Option<Bytes>; BUFFERS] = Default::default();
        for (blob, b) in blobs.iter_mut().zip(&mut self.buffers) {
            if !b.bytes.is_empty() {
                // Copied out, so the buffer (and its capacity) stays for the next batch.
                *blob = Some(Bytes::copy_from_slice(&b.bytes));
                b.bytes.clear();
                if b.bytes.capacity() > KEEP_CAPACITY {
                    b.bytes = Vec::new();
                }
            }
        }
        let (mut over, mut events, mut bytes) = (None, 0, 0);
        for s in c.members.iter() {
            if Some(s.id()) == c.exclude {
                continue;
            }
            let i = index(s.serializer(), s.wire());
            let Some(blob) = &blobs[i] else {
                continue; // not encodable for this serializer (logged)
            };
            let b = &self.buffers[i];
            let queued = if s.wire() != Wire::Unframed && b.longest <= s.max_frame() {
                s.send_framed(blob.clone(), frames)
            } else {
                one_by_one(s, blob, &b.payloads)
            };
            match queued {
                Queued::No => continue,
                Queued::Yes => {}
                Queued::OverBound => {
                    if c.pause && over.is_none() {
                        over = Some(s.clone());
                    }
                }
            }
            events += frames as usize;
            bytes += b.payload_bytes;
        }
        for b in &mut self.buffers {
            b.payloads.clear();
            b.longest = 0;
            b.payload_bytes = 0;
        }
        if let Some(s) = c.members.first() {
            s.metrics().sent_many(code::EVENT, events, bytes);
        }
        over
    }
}

/// The batch's frames as separate payloads (for a peer that accepts shorter frames, or one
/// that is not framed): the framing, or the size check, applies to each.
fn one_by_one(s: &SessionHandle, blob: &Bytes, payloads: &[(usize, usize)]) -> Queued {
    let mut queued = Queued::No;
    for &(at, len) in payloads {
        match s.send_frame(blob.slice(at..at + len)) {
            Queued::No => {}
            Queued::Yes if queued == Queued::No => queued = Queued::Yes,
            Queued::Yes => {}
            Queued::OverBound => queued = Queued::OverBound,
        }
    }
    queued
}
