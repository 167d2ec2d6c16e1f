//! RPC messages on an established session: REGISTER, UNREGISTER, CALL, YIELD, ERROR, and the
//! cleanup of in-flight calls when a caller or callee leaves.

use wamp_proto::message::{
    code, Call, Error, Invocation, Register, Registered, Result as CallResult, Unregister,
    Unregistered, Yield,
};
use wamp_proto::options::str_opt;
use wamp_proto::{uris, Dict, Id, MatchPolicy};

use super::handle::{lock, PendingInvocation, SessionHandle};
use super::handlers::{error, exact_match_only};
use super::Joined;

pub(super) fn register(j: &mut Joined, m: Register) {
    let me = &j.handle;
    if let Err(why) = exact_match_only(&m.options, "registration") {
        me.send(&error(
            code::REGISTER,
            m.request,
            uris::OPTION_NOT_ALLOWED,
            &why,
        ));
        return;
    }
    match str_opt(&m.options, "invoke") {
        Ok(None | Some("single")) => {}
        _ => {
            me.send(&error(
                code::REGISTER,
                m.request,
                uris::OPTION_NOT_ALLOWED,
                "shared registrations (invoke other than `single`) are not supported yet",
            ));
            return;
        }
    }
    if !m.procedure.is_valid(j.realm.uri_check, MatchPolicy::Exact) || m.procedure.is_reserved() {
        me.send(&error(
            code::REGISTER,
            m.request,
            uris::INVALID_URI,
            &format!("invalid procedure URI `{}`", m.procedure),
        ));
        return;
    }
    let request = m.request;
    let registered = j.realm.dealer.register(me, &m.procedure, |registration| {
        me.send(
            &Registered {
                request,
                registration,
            }
            .into(),
        );
    });
    match registered {
        Ok(id) => {
            j.registrations.insert(id);
        }
        Err(_) => {
            me.send(&error(
                code::REGISTER,
                m.request,
                uris::PROCEDURE_ALREADY_EXISTS,
                &format!("procedure `{}` is already registered", m.procedure),
            ));
        }
    }
}

pub(super) fn unregister(j: &mut Joined, m: Unregister) {
    let me = &j.handle;
    match j.realm.dealer.unregister(me.id(), m.registration) {
        Ok(()) => {
            j.registrations.remove(&m.registration);
            me.send(
                &Unregistered {
                    request: m.request.get(),
                    details: None,
                }
                .into(),
            );
        }
        Err(_) => {
            me.send(&error(
                code::UNREGISTER,
                m.request,
                uris::NO_SUCH_REGISTRATION,
                &format!("no registration {} for this session", m.registration),
            ));
        }
    }
}

pub(super) fn call(j: &mut Joined, m: Call) {
    let me = &j.handle;
    if !m.procedure.is_valid(j.realm.uri_check, MatchPolicy::Exact) {
        me.send(&error(
            code::CALL,
            m.request,
            uris::INVALID_URI,
            &format!("invalid procedure URI `{}`", m.procedure),
        ));
        return;
    }
    let Some(reg) = j.realm.dealer.lookup(&m.procedure) else {
        me.send(&error(
            code::CALL,
            m.request,
            uris::NO_SUCH_PROCEDURE,
            &format!("no callee registered for `{}`", m.procedure),
        ));
        return;
    };
    let callee = &reg.callee;
    let invocation = {
        let mut inv = lock(&callee.shared().invocations);
        if inv.closed {
            drop(inv);
            me.send(&error(
                code::CALL,
                m.request,
                uris::NO_SUCH_PROCEDURE,
                &format!("the callee of `{}` has just left", m.procedure),
            ));
            return;
        }
        let id = callee.shared().next_invocation.next();
        inv.pending.insert(
            id.get(),
            PendingInvocation {
                caller: me.clone(),
                caller_request: m.request,
            },
        );
        id
    };
    lock(&me.shared().calls).insert(m.request.get(), (callee.clone(), invocation));
    let sent = callee.send(
        &Invocation {
            request: invocation,
            registration: reg.id,
            details: Dict::new(),
            payload: m.payload,
        }
        .into(),
    );
    if !sent {
        // The callee is gone or too slow: answer now rather than leave the caller waiting.
        if lock(&callee.shared().invocations)
            .pending
            .remove(&invocation.get())
            .is_some()
        {
            lock(&me.shared().calls).remove(&m.request.get());
            me.send(&error(
                code::CALL,
                m.request,
                uris::CANCELED,
                "the callee could not be reached",
            ));
        }
    }
}

/// Takes the pending invocation `request` of callee `me`; `Err` is a protocol violation.
fn take_invocation(
    me: &SessionHandle,
    request: Id,
    what: &str,
) -> Result<Option<PendingInvocation>, String> {
    let taken = lock(&me.shared().invocations)
        .pending
        .remove(&request.get());
    match taken {
        Some(p) => {
            lock(&p.caller.shared().calls).remove(&p.caller_request.get());
            Ok(Some(p))
        }
        // Issued earlier but already answered, or its caller left: ignore it.
        None if request.get() <= me.shared().next_invocation.last() => Ok(None),
        None => Err(format!(
            "{what} for invocation {request}, which was never issued"
        )),
    }
}

pub(super) fn on_yield(j: &mut Joined, m: Yield) -> Result<(), String> {
    if let Some(p) = take_invocation(&j.handle, m.request, "YIELD")? {
        p.caller.send(
            &CallResult {
                request: p.caller_request,
                details: Dict::new(),
                payload: m.payload,
            }
            .into(),
        );
    }
    Ok(())
}

pub(super) fn on_error(j: &mut Joined, m: Error) -> Result<(), String> {
    if m.request_type != code::INVOCATION {
        return Err(format!(
            "ERROR for request type {} (a client may only answer INVOCATION)",
            m.request_type
        ));
    }
    if let Some(p) = take_invocation(&j.handle, m.request, "ERROR")? {
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

/// A leaving callee: every caller still waiting gets ERROR `canceled` at once.
pub(super) fn fail_pending_invocations(me: &SessionHandle) {
    let pending = {
        let mut inv = lock(&me.shared().invocations);
        inv.closed = true;
        std::mem::take(&mut inv.pending)
    };
    for p in pending.into_values() {
        lock(&p.caller.shared().calls).remove(&p.caller_request.get());
        p.caller.send(&error(
            code::CALL,
            p.caller_request,
            uris::CANCELED,
            "the callee left before answering",
        ));
    }
}

/// A leaving caller: forget its calls, so late answers from callees are ignored.
pub(super) fn forget_pending_calls(me: &SessionHandle) {
    let calls = std::mem::take(&mut *lock(&me.shared().calls));
    for (callee, invocation) in calls.into_values() {
        lock(&callee.shared().invocations)
            .pending
            .remove(&invocation.get());
    }
}
