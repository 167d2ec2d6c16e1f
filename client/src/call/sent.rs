//! A sent call: [`PendingCall`] (cancelable), [`ProgressiveCall`] (a stream of progressive
//! results) and [`ChunkedCall`] (arguments sent in chunks), tied to the connection task by
//! a [`CallLink`] that cancels the call when dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use wamp_proto::Uri;

use super::{CallResult, CancelMode};
use crate::connection::Command;
use crate::error::CallError;

/// A sent call's tie to the connection task: cancels the call when dropped while armed.
#[derive(Debug)]
pub(super) struct CallLink {
    pub(super) cmd: mpsc::Sender<Command>,
    pub(super) local: u64,
    pub(super) drop_mode: CancelMode,
    /// Until the final answer arrived.
    pub(super) armed: bool,
}

impl CallLink {
    fn cancel(&self, mode: CancelMode) {
        if self.armed {
            send_soon(
                &self.cmd,
                Command::Cancel {
                    local: self.local,
                    mode,
                    forget: false,
                },
            );
        }
    }
}

impl Drop for CallLink {
    fn drop(&mut self) {
        if self.armed {
            send_soon(
                &self.cmd,
                Command::Cancel {
                    local: self.local,
                    mode: self.drop_mode,
                    forget: true,
                },
            );
        }
    }
}

/// Queues a command without waiting: at once if the queue has room, else from a task.
fn send_soon(cmd: &mpsc::Sender<Command>, c: Command) {
    match cmd.try_send(c) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(c)) => {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let cmd = cmd.clone();
                rt.spawn(async move {
                    let _ = cmd.send(c).await;
                });
            }
        }
    }
}

/// A sent call: a future of its answer that can be canceled
/// ([`CallBuilder::send`](crate::CallBuilder::send)).
///
/// Dropped before the answer, it sends CANCEL with the builder's
/// [`cancel_mode`](crate::CallBuilder::cancel_mode).
#[derive(Debug)]
#[must_use = "dropping a pending call cancels it"]
pub struct PendingCall {
    pub(super) rx: oneshot::Receiver<Result<CallResult, CallError>>,
    pub(super) link: CallLink,
}

impl PendingCall {
    /// Sends CANCEL with `mode` (unless the answer already arrived); the call then ends with
    /// `wamp.error.canceled` (at once for `Skip` and `KillNoWait`), or with whatever the
    /// interrupted callee answers (`Kill`). Keep awaiting the call for that answer. Routers
    /// ignore repeated CANCELs, and treat a callee that does not support canceling as `Skip`.
    pub fn cancel(&self, mode: CancelMode) {
        self.link.cancel(mode);
    }
}

impl Future for PendingCall {
    type Output = Result<CallResult, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let r = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r.unwrap_or(Err(CallError::ConnectionClosed)),
        };
        self.link.armed = false;
        Poll::Ready(r)
    }
}

/// A call's progressive results as a `Stream`
/// ([`CallBuilder::progressive`](crate::CallBuilder::progressive)).
///
/// It yields each progressive result in order, then the final result (or the call's error)
/// and ends; [`ProgressiveCall::is_finished`] tells the final item apart. If the session
/// ends first, the last item is `Err(ConnectionClosed)`. Results are queued without bound
/// until read. Dropped before the end, it sends CANCEL with the builder's
/// [`cancel_mode`](crate::CallBuilder::cancel_mode).
pub struct ProgressiveCall<T = CallResult> {
    pub(super) rx: mpsc::UnboundedReceiver<(bool, Result<CallResult, CallError>)>,
    pub(super) link: CallLink,
    pub(super) finished: bool,
    pub(super) decode: fn(CallResult) -> Result<T, CallError>,
}

impl<T> fmt::Debug for ProgressiveCall<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressiveCall")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T> ProgressiveCall<T> {
    /// Whether the final result (or error) has been yielded: the last item was the final one.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Sends CANCEL with `mode` (see [`PendingCall::cancel`]); the stream then ends with the
    /// resulting error (or the callee's last answer, for `Kill`).
    pub fn cancel(&self, mode: CancelMode) {
        if !self.finished {
            self.link.cancel(mode);
        }
    }

    /// The same stream with every result deserialized into `U` by [`CallResult::decode`]
    /// (a result that does not decode is an `Err(InvalidPayload)` item; the stream goes on).
    pub fn decoded<U: DeserializeOwned>(self) -> ProgressiveCall<U> {
        let ProgressiveCall {
            rx, link, finished, ..
        } = self;
        ProgressiveCall {
            rx,
            link,
            finished,
            decode: |r| r.decode(),
        }
    }
}

impl<T> Stream for ProgressiveCall<T> {
    type Item = Result<T, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let (progress, r) = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(item)) => item,
            Poll::Ready(None) => (false, Err(CallError::ConnectionClosed)),
        };
        if !progress {
            self.finished = true;
            self.link.armed = false;
        }
        Poll::Ready(Some(r.and_then(self.decode)))
    }
}

/// A progressive call invocation under way
/// ([`CallBuilder::chunked`](crate::CallBuilder::chunked)): the first chunk is sent; send
/// more, then finish.
///
/// Dropped before [`ChunkedCall::finish`], it sends CANCEL with the builder's
/// [`cancel_mode`](crate::CallBuilder::cancel_mode).
#[derive(Debug)]
#[must_use = "dropping a chunked call cancels it"]
pub struct ChunkedCall {
    pub(super) procedure: Uri,
    pub(super) call: PendingCall,
}

impl ChunkedCall {
    /// Sends a further chunk (CALL with the same request ID and `progress`): its arguments
    /// are `chunk`'s (e.g. a [`Value`](crate::Value), `Vec<Value>`, or a [`CallResult`] with kwargs).
    ///
    /// Fails with the call's error if the call has already failed (e.g. the callee does not
    /// support progressive invocations), or `ConnectionClosed`. A chunk sent after the
    /// callee already answered is dropped by the router.
    pub async fn send(&mut self, chunk: impl Into<CallResult>) -> Result<(), CallError> {
        self.send_chunk(chunk.into(), false).await
    }

    /// Sends the last chunk (CALL without `progress`) and waits for the call's result.
    pub async fn finish(mut self, chunk: impl Into<CallResult>) -> Result<CallResult, CallError> {
        if let Err(e) = self.send_chunk(chunk.into(), true).await {
            self.call.link.armed = false;
            return Err(e);
        }
        self.call.await
    }

    /// Cancels the call (see [`PendingCall::cancel`]); [`ChunkedCall::finish`] then returns
    /// the outcome.
    pub fn cancel(&self, mode: CancelMode) {
        self.call.cancel(mode);
    }

    async fn send_chunk(&mut self, chunk: CallResult, last: bool) -> Result<(), CallError> {
        // An early answer (an error, typically) ends the call: report it rather than stream
        // into the void.
        match self.call.rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {}
            Ok(r) => {
                let e = r.as_ref().err().cloned();
                // Keep the answer for `finish`.
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(r);
                self.call.rx = rx;
                return match e {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            Err(oneshot::error::TryRecvError::Closed) => return Err(CallError::ConnectionClosed),
        }
        let cmd = Command::CallChunk {
            local: self.call.link.local,
            procedure: self.procedure.clone(),
            payload: chunk.into_payload(),
            last,
        };
        self.call
            .link
            .cmd
            .send(cmd)
            .await
            .map_err(|_| CallError::ConnectionClosed)
    }
}
