//! REGISTER and UNREGISTER on an established session. CALLs and their answers go to the
//! dealer's call lifecycle (`dealer::call`, `dealer::answer`).

use wamp_proto::message::code;
use wamp_proto::message::{Register, Registered, Unregister, Unregistered};
use wamp_proto::options::{bool_opt, str_opt};
use wamp_proto::{uris, Dict, MatchPolicy};

use super::core::Joined;
use crate::dealer::{InvokePolicy, RegisterError, RegisterOptions, MAX_WILDCARD_COMPONENTS};
use crate::error::Refusal;

fn register_options(o: &Dict) -> Result<RegisterOptions, String> {
    let bad_type = |k: &str| format!("option `{k}` has the wrong type");
    let policy = match str_opt(o, "match").map_err(bad_type)? {
        None => MatchPolicy::Exact,
        Some(s) => MatchPolicy::parse(s).ok_or_else(|| format!("unknown match policy `{s}`"))?,
    };
    let invoke = match str_opt(o, "invoke").map_err(bad_type)? {
        None => InvokePolicy::Single,
        Some(s) => InvokePolicy::parse(s).ok_or_else(|| format!("unknown invoke policy `{s}`"))?,
    };
    Ok(RegisterOptions {
        policy,
        invoke,
        disclose_caller: bool_opt(o, "disclose_caller", false).map_err(bad_type)?,
        force: bool_opt(o, "force_reregister", false).map_err(bad_type)?,
    })
}

pub(super) fn register(j: &mut Joined, m: Register) -> Result<(), Refusal> {
    let me = &j.handle;
    let o =
        register_options(&m.options).map_err(|why| Refusal::new(uris::INVALID_ARGUMENT, why))?;
    let too_deep = o.policy == MatchPolicy::Wildcard
        && m.procedure.as_str().split('.').count() > MAX_WILDCARD_COMPONENTS;
    if too_deep || !m.procedure.is_valid(j.realm.uri_check, o.policy) || m.procedure.is_reserved() {
        return Err(Refusal::new(
            uris::INVALID_URI,
            format!("invalid procedure URI `{}`", m.procedure),
        ));
    }
    let max = j.realm.limits.max_registrations_per_session;
    if j.registrations.len() >= max {
        me.metrics().limit_hit("max_registrations_per_session");
        tracing::warn!(session = %me.id(), realm = %j.realm.name, authid = %me.shared().authid, max, "registrations limit reached");
        return Err(Refusal::new(
            crate::dealer::call::LIMIT_EXCEEDED,
            format!("at most {max} registrations per session (max_registrations_per_session)"),
        ));
    }
    // In a cluster, a node's first callee of (procedure, match) claims the invoke policy
    // cluster-wide first; the local dealer answers the rest, as on a single node.
    let since = j.realm.backplane().map(|b| b.shares_given_back());
    let claim = j.realm.backplane().filter(|_| !o.force).and_then(|b| {
        let own = j
            .realm
            .dealer
            .lookup_exactly(&m.procedure, o.policy)
            .is_some_and(|r| r.has_own_callees());
        (!own).then(|| b.claim(&m.procedure, o.policy, o.invoke))
    });
    if let Some(wait) = claim {
        j.defer(Box::pin(async move {
            let claimed = wait.await;
            let done: super::deferred::Completion = Box::new(move |j| {
                let (request, procedure) = (m.request, m.procedure.clone());
                let answer = match claimed {
                    Ok(()) => registered(j, m, o, since).inspect_err(|_| {
                        // Refused here after all: the claim goes back (unless held).
                        if let Some(b) = j.realm.backplane() {
                            b.release_claim(&procedure, o.policy);
                        }
                    }),
                    Err(why) => Err(Refusal::new(uris::PROCEDURE_ALREADY_EXISTS, why)),
                };
                if let Err(r) = answer {
                    j.handle.send(&r.to_error(code::REGISTER, request));
                }
            });
            done
        }));
        return Ok(());
    }
    if let Some(wait) = j
        .realm
        .backplane()
        .filter(|_| o.force)
        .and_then(|b| b.force_evict(&m.procedure, o.policy, me.id(), o.invoke))
    {
        // `force_reregister` in a cluster: REGISTERED once the other nodes evicted theirs.
        j.defer(Box::pin(async move {
            wait.await;
            let done: super::deferred::Completion = Box::new(move |j| {
                let request = m.request;
                if let Err(r) = registered(j, m, o, since) {
                    j.handle.send(&r.to_error(code::REGISTER, request));
                }
            });
            done
        }));
        return Ok(());
    }
    registered(j, m, o, since)
}

/// Adds the callee and answers REGISTERED (or refuses). `since`: in a cluster, how many
/// claim shares this node had given back when the REGISTER was checked.
fn registered(
    j: &mut Joined,
    m: Register,
    o: RegisterOptions,
    since: Option<u64>,
) -> Result<(), Refusal> {
    let me = &j.handle;
    let request = m.request;
    let registered = j.realm.register(me, &m.procedure, o, |registration| {
        me.send(
            &Registered {
                request,
                registration,
            }
            .into(),
        );
    });
    let why = match registered {
        Ok(r) => {
            j.registrations.insert(r.id);
            if let (Some(since), Some(b)) = (since, j.realm.backplane()) {
                b.callee_arrived(&m.procedure, o.policy, o.invoke, since);
            }
            crate::meta::events::registered(&j.realm, me.id(), r.id, r.created);
            for (callee, registration) in r.evicted {
                crate::dealer::revoke(&callee, registration);
            }
            return Ok(());
        }
        Err(RegisterError::AlreadyExists) => {
            format!("procedure `{}` is already registered", m.procedure)
        }
        // Issue 4 asks for `procedure_already_exists` here; autobahn and Crossbar answer
        // `wamp.error.procedure_exists_with_different_invocation_policy`.
        Err(RegisterError::DifferentPolicy(p)) => format!(
            "procedure `{}` is already registered with invoke policy `{}`",
            m.procedure,
            p.as_str()
        ),
    };
    Err(Refusal::new(uris::PROCEDURE_ALREADY_EXISTS, why))
}

pub(super) fn unregister(j: &mut Joined, m: Unregister) -> Result<(), Refusal> {
    let id = j.handle.id();
    let Ok(deleted) = j.realm.unregister(id, m.registration) else {
        return Err(Refusal::new(
            uris::NO_SUCH_REGISTRATION,
            format!("no registration {} for this session", m.registration),
        ));
    };
    j.registrations.remove(&m.registration);
    let answer = Unregistered {
        request: m.request.get(),
        details: None,
    };
    // In a cluster, UNREGISTERED once the registry has it (the callee's record gone, this
    // node's share of the claim given back): a REGISTER elsewhere after it is not refused.
    match j.realm.backplane().and_then(|b| b.registry_applied()) {
        Some(applied) => j.defer(Box::pin(async move {
            applied.await;
            let done: super::deferred::Completion = Box::new(move |j| {
                j.handle.send(&answer.into());
            });
            done
        })),
        None => {
            j.handle.send(&answer.into());
        }
    }
    crate::meta::events::unregistered(&j.realm, id, m.registration, deleted);
    Ok(())
}
