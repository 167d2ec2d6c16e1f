//! CALL: a new call (lookup, callee choice, INVOCATION with its details, optional timer), or a
//! chunk of a progressive invocation (same request id, same callee, same INVOCATION id).

use std::time::Duration;

use tokio::time::Instant;
use wamp_proto::message::{Call, Invocation};
use wamp_proto::options::bool_opt;
use wamp_proto::{uris, Dict, Id, MatchPolicy, UriCheck, Value};

use super::answer::spawn_timer;
use super::{Callee, Dealer, Registration};
use crate::error::Refusal;
use crate::peer::{lock, NotSent, OutgoingCall, PeerFeatures, PendingInvocation, SessionHandle};

/// The refusal URI of every limit (`[realm.limits]`, `router.max_sessions`).
pub(crate) const LIMIT_EXCEEDED: &str = "wamp.error.limit_exceeded";

/// The CALL options the dealer acts on; a bad type is answered with `invalid_argument`.
struct CallOptions {
    receive_progress: bool,
    disclose_me: bool,
    /// `timeout` in **milliseconds** (the spec's unit; Crossbar and autobahn use seconds).
    timeout_ms: u64,
}

fn call_options(o: &Dict) -> Result<CallOptions, String> {
    let bad = |k: &str| format!("option `{k}` has the wrong type");
    let timeout_ms = match o.get("timeout") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or("option `timeout` must be a non-negative integer (milliseconds)")?,
    };
    Ok(CallOptions {
        receive_progress: bool_opt(o, "receive_progress", false).map_err(bad)?,
        disclose_me: bool_opt(o, "disclose_me", false).map_err(bad)?,
        timeout_ms,
    })
}

/// Routes a CALL from `me`: the one entry point of a call's dispatch (a cluster backplane
/// hooks here). `disclose`: the caller's role discloses it to callees even if it did not
/// ask. `Err` is the caller's answer: an ERROR, or a protocol violation.
pub(crate) fn call(
    me: &SessionHandle,
    dealer: &Dealer,
    uri_check: UriCheck,
    m: Call,
    disclose: bool,
) -> Result<(), Refusal> {
    let progress = bool_opt(&m.options, "progress", false)
        .map_err(|_| Refusal::violation("CALL option `progress` must be a boolean"))?;
    let stream = {
        let mut calls = lock(&me.shared().calls);
        let found = match calls.active.get(&m.request.get()) {
            Some(c) if c.streaming => Some(c.clone()),
            Some(_) => {
                return Err(Refusal::violation(format!(
                    "CALL {} reuses the request id of a call in flight",
                    m.request
                )))
            }
            None => None,
        };
        // A chunk of a stream that already ended (answered, canceled, refused): dropped.
        if found.is_none() && calls.ended_stream(m.request, !progress) {
            return Ok(());
        }
        if found.is_none() && calls.active.len() >= dealer.limits.per_caller {
            let max = dealer.limits.per_caller;
            me.metrics().limit_hit("max_calls_per_caller");
            tracing::warn!(session = %me.id(), max, "calls in flight limit reached");
            return Err(Refusal::new(
                LIMIT_EXCEEDED,
                format!("at most {max} calls in flight per session (max_calls_per_caller)"),
            ));
        }
        found
    };
    if let Some(c) = stream {
        next_chunk(me, m, &c, progress);
        return Ok(());
    }
    if progress
        && !me
            .shared()
            .features
            .has(PeerFeatures::CALLER_PROGRESSIVE_CALL_INVOCATIONS)
    {
        return Err(Refusal::violation(
            "CALL with `progress` from a caller that did not announce progressive_call_invocations",
        ));
    }
    new_call(me, dealer, uri_check, m, progress, disclose)
}

/// Refuses a new CALL; a refused stream's later chunks are then dropped.
fn refuse(
    me: &SessionHandle,
    request: Id,
    progress: bool,
    uri: &'static str,
    text: impl Into<String>,
) -> Result<(), Refusal> {
    if progress {
        lock(&me.shared().calls).end_stream(request);
    }
    Err(Refusal::new(uri, text))
}

fn new_call(
    me: &SessionHandle,
    dealer: &Dealer,
    uri_check: UriCheck,
    m: Call,
    progress: bool,
    disclose: bool,
) -> Result<(), Refusal> {
    let mut o = match call_options(&m.options) {
        Ok(o) => o,
        Err(why) => return refuse(me, m.request, progress, uris::INVALID_ARGUMENT, why),
    };
    o.disclose_me |= disclose;
    let found = dealer.lookup(&m.procedure);
    // An exact registration's URI was validated when it was registered: only a miss or a
    // pattern match needs the (per-component) check, which showed up in profiles.
    let exact_hit = found
        .as_ref()
        .is_some_and(|r| r.policy == MatchPolicy::Exact);
    if !exact_hit && !m.procedure.is_valid(uri_check, MatchPolicy::Exact) {
        let why = format!("invalid procedure URI `{}`", m.procedure);
        return refuse(me, m.request, progress, uris::INVALID_URI, why);
    }
    let Some((reg, callee)) = found.and_then(|r| r.pick().map(|c| (r, c))) else {
        let why = format!("no callee registered for `{}`", m.procedure);
        return refuse(me, m.request, progress, uris::NO_SUCH_PROCEDURE, why);
    };
    let cf = callee.session.shared().features;
    if progress && !cf.callee_progressive_invocations() {
        let why = "the callee does not support progressive call invocations";
        return refuse(me, m.request, progress, uris::FEATURE_NOT_SUPPORTED, why);
    }
    let details = invocation_details(me, &m, &o, &reg, &callee, progress);
    let issue = Issue {
        procedure: m.procedure.as_str(),
        registration: reg.id,
        request: m.request,
        receive_progress: o.receive_progress,
        timeout_ms: o.timeout_ms,
        streaming: progress,
    };
    match issue.send(me, dealer, &callee.session, details, m.payload) {
        Ok(()) => Ok(()),
        Err(Issued::Refused(uri, why)) => refuse(me, m.request, progress, uri, why),
        Err(Issued::Failed(r)) => Err(r),
    }
}

/// A call for another node's caller (a cluster's caller proxy `me`): the INVOCATION that
/// node's dealer built, with its details, issued to `callee` for `registration`; or a
/// further chunk of a progressive invocation. Its timeout is the calling node's.
#[cfg(feature = "cluster-nats")]
pub(crate) fn forwarded(
    me: &SessionHandle,
    dealer: &Dealer,
    callee: &SessionHandle,
    registration: Id,
    request: Id,
    details: Dict,
    payload: wamp_proto::Payload,
) -> Result<(), Refusal> {
    let progress = bool_opt(&details, "progress", false).unwrap_or(false);
    let stream = lock(&me.shared().calls)
        .active
        .get(&request.get())
        .filter(|c| c.streaming)
        .cloned();
    if let Some(c) = stream {
        let m = Call {
            request,
            options: Dict::new(),
            procedure: wamp_proto::Uri::new(""),
            payload,
        };
        next_chunk(me, m, &c, progress);
        return Ok(());
    }
    let registered = dealer
        .registration(registration)
        .is_some_and(|r| r.callee_ids().contains(&callee.id()));
    if !registered {
        return Err(Refusal::new(
            uris::NO_SUCH_PROCEDURE,
            "the callee is no longer registered for this procedure",
        ));
    }
    let issue = Issue {
        procedure: "the procedure",
        registration,
        request,
        receive_progress: bool_opt(&details, "receive_progress", false).unwrap_or(false),
        timeout_ms: 0,
        streaming: progress,
    };
    issue
        .send(me, dealer, callee, details, payload)
        .map_err(|e| match e {
            Issued::Refused(uri, why) => Refusal::new(uri, why),
            Issued::Failed(r) => r,
        })
}

/// An INVOCATION about to be issued, and what the call's records need.
struct Issue<'a> {
    /// How refusals name the procedure.
    procedure: &'a str,
    registration: Id,
    request: Id,
    receive_progress: bool,
    timeout_ms: u64,
    streaming: bool,
}

/// Why an INVOCATION was not issued.
enum Issued {
    /// Refused before anything was recorded.
    Refused(&'static str, String),
    /// The callee could not take it: the caller's answer.
    Failed(Refusal),
}

impl Issue<'_> {
    /// Records the call on both sessions (and its timer), then sends the INVOCATION.
    fn send(
        self,
        me: &SessionHandle,
        dealer: &Dealer,
        target: &SessionHandle,
        details: Dict,
        payload: wamp_proto::Payload,
    ) -> Result<(), Issued> {
        let invocation = {
            let mut inv = lock(&target.shared().invocations);
            if inv.closed {
                drop(inv);
                return Err(Issued::Refused(
                    uris::NO_SUCH_PROCEDURE,
                    format!("the callee of `{}` has just left", self.procedure),
                ));
            }
            if inv.pending.len() >= dealer.limits.per_callee {
                drop(inv);
                let max = dealer.limits.per_callee;
                me.metrics().limit_hit("max_invocations_per_callee");
                tracing::warn!(callee = %target.id(), max, "invocations in flight limit reached");
                return Err(Issued::Refused(
                    LIMIT_EXCEEDED,
                    format!(
                        "the callee of `{}` has {max} calls unanswered (max_invocations_per_callee)",
                        self.procedure
                    ),
                ));
            }
            let id = target.shared().next_invocation.next();
            let mut pending = PendingInvocation {
                caller: me.clone(),
                caller_request: self.request,
                receive_progress: self.receive_progress,
                interrupted: false,
                timeout: None,
                timer: None,
                started: crate::counters::sampled(self.request.get()).then(std::time::Instant::now),
            };
            let d = Duration::from_millis(self.timeout_ms);
            // The clock is read only for a call with a timeout; one too large for the clock is
            // no timeout.
            let deadline = (self.timeout_ms > 0).then(|| Instant::now().checked_add(d));
            if let Some(deadline) = deadline.flatten() {
                pending.timeout = Some((d, deadline));
                // Spawned under the lock: the timer cannot look for the entry before it exists.
                pending.timer = Some(spawn_timer(target.clone(), id, deadline));
            }
            inv.pending.insert(id.get(), pending);
            id
        };
        lock(&me.shared().calls).active.insert(
            self.request.get(),
            OutgoingCall {
                callee: target.clone(),
                invocation,
                registration: self.registration,
                streaming: self.streaming,
            },
        );
        let sent = target.try_send(
            &Invocation {
                request: invocation,
                registration: self.registration,
                details,
                payload,
            }
            .into(),
        );
        if let Err(why) = sent {
            // The callee is gone or too slow: answer now rather than leave the caller waiting.
            let taken = lock(&target.shared().invocations)
                .pending
                .remove(&invocation.get());
            if taken.is_some() {
                lock(&me.shared().calls).remove(self.request);
                return Err(Issued::Failed(match why {
                    NotSent::TooLarge { len, max } => Refusal::new(
                        uris::PAYLOAD_SIZE_EXCEEDED,
                        format!(
                            "the call ({len} bytes) is longer than its callee accepts ({max} bytes)"
                        ),
                    ),
                    _ => Refusal::new(uris::CANCELED, "the callee could not be reached"),
                }));
            }
        }
        Ok(())
    }
}

/// INVOCATION.Details for the first (or only) INVOCATION of a call.
fn invocation_details(
    me: &SessionHandle,
    m: &Call,
    o: &CallOptions,
    reg: &Registration,
    callee: &Callee,
    progress: bool,
) -> Dict {
    let mut d = Dict::new();
    if reg.policy != MatchPolicy::Exact {
        d.insert("procedure".into(), m.procedure.as_str().into());
    }
    if o.disclose_me || callee.disclose_caller {
        let sh = me.shared();
        d.insert("caller".into(), me.id().get().into());
        d.insert("caller_authid".into(), (*sh.authid).into());
        d.insert("caller_authrole".into(), (*sh.authrole).into());
    }
    // Passed on even to a callee that announced no progressive_call_results: the spec allows
    // it, a callee without the feature ignores it, and some (wampy.js) check only the flag.
    if o.receive_progress {
        d.insert("receive_progress".into(), true.into());
    }
    if o.timeout_ms > 0 {
        d.insert("timeout".into(), o.timeout_ms.into());
    }
    if progress {
        d.insert("progress".into(), true.into());
    }
    d
}

/// Routes a further chunk of a progressive invocation to the same callee and INVOCATION.
fn next_chunk(me: &SessionHandle, m: Call, c: &OutgoingCall, progress: bool) {
    let delivered = {
        let inv = lock(&c.callee.shared().invocations);
        // Under the callee's lock: a chunk cannot overtake the end of the call.
        inv.pending.contains_key(&c.invocation.get()) && {
            let details = if progress {
                [("progress".to_owned(), Value::Bool(true))].into()
            } else {
                Dict::new()
            };
            c.callee.send(
                &Invocation {
                    request: c.invocation,
                    registration: c.registration,
                    details,
                    payload: m.payload,
                }
                .into(),
            )
        }
    };
    if delivered && !progress {
        if let Some(call) = lock(&me.shared().calls).active.get_mut(&m.request.get()) {
            call.streaming = false;
        }
    }
}
