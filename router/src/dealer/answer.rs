//! How calls end: YIELD and ERROR from the callee, CANCEL from the caller, the timeout timer,
//! and either side leaving. See [`crate::peer::calls`] for who owns the final answer.

use tokio::task::AbortHandle;
use tokio::time::Instant;
use wamp_proto::message::{code, Cancel, Error, Interrupt, Result as CallResult, Yield};
use wamp_proto::options::{bool_opt, dict, str_opt};
use wamp_proto::{uris, Dict, Id, Message};

use crate::error::{error, Refusal};
use crate::peer::{lock, NotSent, PendingInvocation, SessionHandle};

/// CANCEL modes (ADV-02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answer the caller now; the callee is not told.
    Skip,
    /// INTERRUPT the callee and forward whatever it answers.
    Kill,
    /// Answer the caller now and INTERRUPT the callee.
    KillNoWait,
}

fn interrupt(invocation: Id, mode: &str, reason: &str) -> Message {
    Interrupt {
        request: invocation,
        options: dict([("mode", mode.into()), ("reason", reason.into())]),
    }
    .into()
}

/// Takes the pending invocation `request` of callee `me`; `Err` is a protocol violation.
fn take_invocation(
    me: &SessionHandle,
    request: Id,
    what: &str,
) -> Result<Option<PendingInvocation>, Refusal> {
    let taken = lock(&me.shared().invocations)
        .pending
        .remove(&request.get());
    match taken {
        Some(p) => {
            lock(&p.caller.shared().calls).remove(p.caller_request);
            Ok(Some(p))
        }
        // Issued earlier but already answered, canceled, timed out, or its caller left.
        None if request.get() <= me.shared().next_invocation.last() => Ok(None),
        None => Err(Refusal::violation(format!(
            "{what} for invocation {request}, which was never issued"
        ))),
    }
}

/// Handles a YIELD from callee `me`: one entry point for a call's replies (with [`on_error`]).
/// `Err` is a protocol violation.
pub(crate) fn on_yield(me: &SessionHandle, m: Yield) -> Result<(), Refusal> {
    let progress = bool_opt(&m.options, "progress", false)
        .map_err(|_| Refusal::violation("YIELD option `progress` must be a boolean"))?;
    if progress {
        return progressive_yield(me, m);
    }
    if let Some(p) = take_invocation(me, m.request, "YIELD")? {
        record_latency(me, &p);
        let sent = p.caller.try_send(
            &CallResult {
                request: p.caller_request,
                details: Dict::new(),
                payload: m.payload,
            }
            .into(),
        );
        // The caller waits for an answer: say why the result cannot reach it (TRN-12).
        if let Err(NotSent::TooLarge { len, max }) = sent {
            p.caller.send(&error(
                code::CALL,
                p.caller_request,
                uris::PAYLOAD_SIZE_EXCEEDED,
                &format!(
                    "the result ({len} bytes) is longer than this session accepts ({max} bytes)"
                ),
            ));
        }
    }
    Ok(())
}

/// Counts a sampled call's latency (callee `me` answered it).
fn record_latency(me: &SessionHandle, p: &PendingInvocation) {
    if let Some(started) = p.started {
        me.metrics().call_latency(started.elapsed());
    }
}

/// A progressive result: forwarded only if the caller asked; the call stays open.
fn progressive_yield(me: &SessionHandle, m: Yield) -> Result<(), Refusal> {
    let mut inv = lock(&me.shared().invocations);
    let Some(p) = inv.pending.get_mut(&m.request.get()) else {
        return if m.request.get() <= me.shared().next_invocation.last() {
            Ok(())
        } else {
            Err(Refusal::violation(format!(
                "YIELD for invocation {}, which was never issued",
                m.request
            )))
        };
    };
    // The timeout bounds the gap between results (ADV-01).
    if let Some((d, deadline)) = &mut p.timeout {
        *deadline = Instant::now().checked_add(*d).unwrap_or(*deadline);
    }
    if p.receive_progress {
        // Under the callee's lock, so it cannot overtake the call's final answer.
        p.caller.send(
            &CallResult {
                request: p.caller_request,
                details: dict([("progress", true.into())]),
                payload: m.payload,
            }
            .into(),
        );
    }
    Ok(())
}

/// Handles an ERROR from a client; `Err` is a protocol violation.
pub(crate) fn on_error(me: &SessionHandle, m: Error) -> Result<(), Refusal> {
    if m.request_type != code::INVOCATION {
        return Err(Refusal::violation(format!(
            "ERROR for request type {} (a client may only answer INVOCATION)",
            m.request_type
        )));
    }
    if let Some(p) = take_invocation(me, m.request, "ERROR")? {
        record_latency(me, &p);
        p.caller.send(
            &Error {
                request_type: code::CALL,
                request: p.caller_request,
                details: m.details,
                error: m.error,
                payload: m.payload,
            }
            .into(),
        );
    }
    Ok(())
}

/// Handles a CANCEL; unknown or finished calls and repeated CANCELs are ignored. `Err` (an
/// unknown mode) is a protocol violation, as in autobahn.
pub(crate) fn cancel(me: &SessionHandle, m: Cancel) -> Result<(), Refusal> {
    let mode = match str_opt(&m.options, "mode") {
        // Δ: autobahn sends `{}`, and Crossbar then behaves like killnowait.
        Ok(None | Some("killnowait")) => Mode::KillNoWait,
        Ok(Some("kill")) => Mode::Kill,
        Ok(Some("skip")) => Mode::Skip,
        Ok(Some(other)) => {
            return Err(Refusal::violation(format!("unknown CANCEL mode `{other}`")))
        }
        Err(_) => return Err(Refusal::violation("CANCEL option `mode` must be a string")),
    };
    let Some(c) = lock(&me.shared().calls)
        .active
        .get(&m.request.get())
        .cloned()
    else {
        return Ok(());
    };
    // A callee that cannot be interrupted is simply not told (ADV-02).
    let mode = if c.callee.shared().features.callee_cancels() {
        mode
    } else {
        Mode::Skip
    };
    let taken = {
        let mut inv = lock(&c.callee.shared().invocations);
        match inv.pending.get_mut(&c.invocation.get()) {
            None => None,
            Some(p) if p.interrupted => None,
            Some(p) if mode == Mode::Kill => {
                p.interrupted = true;
                c.callee
                    .send(&interrupt(c.invocation, "kill", uris::CANCELED));
                None
            }
            Some(_) => inv.pending.remove(&c.invocation.get()),
        }
    };
    if let Some(p) = taken {
        lock(&me.shared().calls).remove(m.request);
        me.send(&error(
            code::CALL,
            m.request,
            uris::CANCELED,
            "the call was canceled",
        ));
        if mode == Mode::KillNoWait {
            c.callee
                .send(&interrupt(c.invocation, "killnowait", uris::CANCELED));
        }
        drop(p);
    }
    Ok(())
}

/// Starts the timer of a call with a timeout; it ends the call with ERROR `timeout` unless the
/// call ends first (dropping the [`PendingInvocation`] aborts it).
pub(super) fn spawn_timer(callee: SessionHandle, invocation: Id, deadline: Instant) -> AbortHandle {
    tokio::spawn(async move {
        let mut at = deadline;
        let mut p = loop {
            tokio::time::sleep_until(at).await;
            let mut inv = lock(&callee.shared().invocations);
            let Some(p) = inv.pending.get_mut(&invocation.get()) else {
                return;
            };
            let timeout = p.timeout;
            match timeout {
                // Pushed back by a progressive result: sleep again.
                Some((_, d)) if d > at => at = d,
                _ => match inv.pending.remove(&invocation.get()) {
                    Some(p) => break p,
                    None => return,
                },
            }
        };
        // This task is ending anyway: do not let the drop abort it.
        p.timer = None;
        lock(&p.caller.shared().calls).remove(p.caller_request);
        p.caller.send(&error(
            code::CALL,
            p.caller_request,
            uris::TIMEOUT,
            "the call timed out",
        ));
        if callee.shared().features.callee_cancels() {
            callee.send(&interrupt(invocation, "killnowait", uris::TIMEOUT));
        }
    })
    .abort_handle()
}

/// A leaving callee: every caller still waiting gets ERROR `canceled` at once (a progressive
/// stream ends with it).
pub(crate) fn fail_pending_invocations(me: &SessionHandle) {
    let pending = {
        let mut inv = lock(&me.shared().invocations);
        inv.closed = true;
        std::mem::take(&mut inv.pending)
    };
    for p in pending.into_values() {
        lock(&p.caller.shared().calls).remove(p.caller_request);
        p.caller.send(&error(
            code::CALL,
            p.caller_request,
            uris::CANCELED,
            "the callee left before answering",
        ));
    }
}

/// A leaving caller: its calls are forgotten (late answers are ignored) and callees that
/// support canceling get INTERRUPT killnowait.
pub(crate) fn forget_pending_calls(me: &SessionHandle) {
    let calls = std::mem::take(&mut lock(&me.shared().calls).active);
    for c in calls.into_values() {
        let taken = lock(&c.callee.shared().invocations)
            .pending
            .remove(&c.invocation.get());
        if taken.is_some() && c.callee.shared().features.callee_cancels() {
            c.callee
                .send(&interrupt(c.invocation, "killnowait", uris::CANCELED));
        }
    }
}
