//! Requests whose answer waits for the cluster (a first subscription's NATS interest, a
//! registration's claim, a testament kept by the registry, an UNREGISTER or GOODBYE until
//! the registry has it): queued on the session in arrival order and finished by its own
//! task once their wait is over.

use std::task::{Context, Poll};

use super::core::Joined;

/// What a deferred request does once its wait is over.
pub(crate) type Completion = Box<dyn FnOnce(&mut Joined) + Send>;

/// A request waiting for the cluster: the future yields the rest of its handling.
pub(crate) type Deferred = crate::backplane::Wait<Completion>;

impl Joined {
    /// Finishes handling a request once `wait` is over (the session's own task runs it).
    pub(crate) fn defer(&mut self, wait: Deferred) {
        self.deferred
            .get_or_insert_with(Box::default)
            .push_back(wait);
    }
}

/// Runs the completions whose wait is over, front first; stops at the first still waiting.
pub(super) fn poll(j: &mut Joined, cx: &mut Context<'_>) {
    loop {
        let Some(queue) = j.deferred.as_mut() else {
            return;
        };
        let Some(front) = queue.front_mut() else {
            j.deferred = None;
            return;
        };
        let Poll::Ready(done) = front.as_mut().poll(cx) else {
            return;
        };
        queue.pop_front();
        done(j);
    }
}
