//! Spare write-queue buffers, per worker thread: a session's outbox queue and its
//! connection's write queue are given back when the connection parks (so an idle session
//! holds no queue) and taken again by the next push, here without a malloc/free pair per
//! short idle (an RPC round trip parks every connection it touches).

use std::cell::RefCell;
use std::collections::VecDeque;

use super::outbox::Out;

/// Buffers kept per thread.
const KEPT: usize = 64;
/// Largest buffer kept, in entries (bigger ones were a burst: freed).
const MAX_ENTRIES: usize = 16;

thread_local! {
    static SPARE: RefCell<Vec<VecDeque<Out>>> = const { RefCell::new(Vec::new()) };
}

/// An empty queue: a spare buffer of this thread, or none yet.
pub(crate) fn queue() -> VecDeque<Out> {
    SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Gives the buffer of `q` (empty) back to this thread's spares, or frees it.
pub(crate) fn give_back(q: VecDeque<Out>) {
    if !q.is_empty() || q.capacity() == 0 || q.capacity() > MAX_ENTRIES {
        return;
    }
    let _ = SPARE.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.len() < KEPT {
                s.push(q);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_and_bursts_are_freed() {
        let mut q = queue();
        assert_eq!(q.capacity(), 0, "no spare on a new thread");
        q.push_back(Out::payload(bytes::Bytes::from_static(b"x")));
        q.clear();
        let cap = q.capacity();
        give_back(q);
        assert_eq!(queue().capacity(), cap, "the spare is taken again");
        assert_eq!(queue().capacity(), 0, "and only once");

        give_back(VecDeque::with_capacity(MAX_ENTRIES * 4));
        assert_eq!(queue().capacity(), 0, "a burst's buffer is not kept");
        let mut full = VecDeque::with_capacity(4);
        full.push_back(Out::payload(bytes::Bytes::from_static(b"y")));
        give_back(full);
        assert_eq!(
            queue().capacity(),
            0,
            "a queue still holding frames is not kept"
        );
    }
}
