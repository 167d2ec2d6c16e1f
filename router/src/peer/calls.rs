//! In-flight calls, stored on the two sessions involved rather than in a global table.
//!
//! The callee's session maps its invocation ids to [`PendingInvocation`]s; the caller's maps
//! its request ids to [`OutgoingCall`]s. **Whoever removes a `PendingInvocation` owns the
//! caller's final answer** (RESULT, ERROR, `canceled`, `timeout`): that removal, under the
//! callee's lock, is what makes every call end exactly once. The caller's map is an index for
//! CANCEL, progressive chunks and cleanup. The two locks are never held at the same time.

use std::collections::{HashMap, VecDeque};

use super::FastHash;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;
use wamp_proto::Id;

use super::SessionHandle;

/// A call waiting for its callee's answer, stored on the callee's session.
#[derive(Debug)]
pub(crate) struct PendingInvocation {
    /// The caller, to answer.
    pub(crate) caller: SessionHandle,
    /// The caller's CALL request id.
    pub(crate) caller_request: Id,
    /// The caller asked for progressive results: forward `progress` YIELDs (else drop them).
    pub(crate) receive_progress: bool,
    /// An INTERRUPT (kill) was sent; further CANCELs are ignored.
    pub(crate) interrupted: bool,
    /// The call's timeout and when it fires (each progressive result pushes it back).
    pub(crate) timeout: Option<(Duration, Instant)>,
    /// The timer task; aborted when this entry is dropped, so it never outlives the call.
    pub(crate) timer: Option<AbortHandle>,
    /// When the CALL arrived, for the one call in [`crate::counters::LATENCY_SAMPLE`]
    /// whose latency is measured.
    pub(crate) started: Option<std::time::Instant>,
}

impl Drop for PendingInvocation {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.abort();
        }
    }
}

/// A callee's unanswered invocations.
#[derive(Debug, Default)]
pub(crate) struct Invocations {
    /// Invocation id -> the caller waiting for it.
    pub(crate) pending: HashMap<u64, PendingInvocation, FastHash>,
    /// Set when the session leaves: no new invocation may be added after that.
    pub(crate) closed: bool,
}

/// A call a caller waits for, stored on the caller's session.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingCall {
    pub(crate) callee: SessionHandle,
    pub(crate) invocation: Id,
    pub(crate) registration: Id,
    /// A progressive invocation whose final chunk the caller has not sent yet.
    pub(crate) streaming: bool,
}

/// How many ended-but-still-streaming request ids a caller remembers.
const ENDED_STREAMS: usize = 128;

/// A caller's calls in flight.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    /// CALL request id -> where it went.
    pub(crate) active: HashMap<u64, OutgoingCall, FastHash>,
    /// Progressive invocations that ended (answered, canceled, refused) before the caller's
    /// final chunk: later chunks with these ids are discarded, not taken for new calls.
    ended_streams: VecDeque<u64>,
}

impl Calls {
    /// Removes a call, remembering it if the caller may still send chunks for it.
    pub(crate) fn remove(&mut self, request: Id) -> Option<OutgoingCall> {
        let c = self.active.remove(&request.get())?;
        if c.streaming {
            self.end_stream(request);
        }
        Some(c)
    }

    /// Remembers that chunks for `request` are to be discarded.
    pub(crate) fn end_stream(&mut self, request: Id) {
        if self.ended_streams.len() == ENDED_STREAMS {
            self.ended_streams.pop_front();
        }
        self.ended_streams.push_back(request.get());
    }

    /// Whether `request` is a stream that already ended; a final chunk forgets it.
    pub(crate) fn ended_stream(&mut self, request: Id, final_chunk: bool) -> bool {
        if self.ended_streams.is_empty() {
            return false;
        }
        let Some(i) = self.ended_streams.iter().position(|r| *r == request.get()) else {
            return false;
        };
        if final_chunk {
            self.ended_streams.remove(i);
        }
        true
    }
}
