//! The meta API: the router's own procedures in each realm (sessions, registrations,
//! subscriptions, testaments, event history) and its meta events ([`events`]). Names and
//! payloads follow `../shared/design/WAMP.md` section 5, with Crossbar's shapes where the
//! spec is silent.

pub(crate) mod describe;
pub(crate) mod events;
mod gather;
mod history;
mod sessions;
mod tables;

use std::sync::Arc;

use wamp_proto::message::{Call, Result as CallResult};
use wamp_proto::{uris, Dict, Id, Payload, Value};

use crate::error::Refusal;
use crate::peer::SessionHandle;
use crate::realm::Realm;

#[cfg(feature = "cluster-nats")]
pub(crate) use gather::answer as answer_query;
pub(crate) use gather::{Part, Query};
#[cfg(feature = "cluster-nats")]
pub(crate) use sessions::publish_portable;
pub(crate) use sessions::{publish_testaments, PortableTestament, Testaments};

/// The meta procedures, each answered by the router itself.
const PROCEDURES: &[&str] = &[
    "wamp.session.count",
    "wamp.session.list",
    "wamp.session.get",
    "wamp.session.kill",
    "wamp.session.kill_by_authid",
    "wamp.session.kill_by_authrole",
    "wamp.session.add_testament",
    "wamp.session.flush_testaments",
    "wamp.registration.list",
    "wamp.registration.lookup",
    "wamp.registration.match",
    "wamp.registration.get",
    "wamp.registration.list_callees",
    "wamp.registration.count_callees",
    "wamp.subscription.list",
    "wamp.subscription.lookup",
    "wamp.subscription.match",
    "wamp.subscription.get",
    "wamp.subscription.list_subscribers",
    "wamp.subscription.count_subscribers",
    "wamp.subscription.get_events",
];

/// Whether the router itself implements `procedure`.
pub(crate) fn is_meta_procedure(procedure: &str) -> bool {
    (procedure.starts_with("wamp.") && PROCEDURES.contains(&procedure))
        || procedure == CLUSTER_NODES
}

/// The router's own procedure (not the spec's): the cluster nodes alive, as this node sees
/// them, sorted (`[node_id, ...]`); a single node has none.
pub(crate) const CLUSTER_NODES: &str = "wamp_router.cluster.nodes";

/// The session calling a meta procedure.
pub(crate) struct Caller<'a> {
    pub(crate) handle: &'a SessionHandle,
    pub(crate) realm: &'a Arc<Realm>,
    pub(crate) testaments: &'a mut Option<Box<Testaments>>,
}

/// A meta procedure's arguments, decoded.
pub(crate) struct Args {
    pub(crate) args: Vec<Value>,
    pub(crate) kwargs: Dict,
}

fn bad(text: impl Into<String>) -> Refusal {
    Refusal::new(uris::INVALID_ARGUMENT, text)
}

impl Args {
    /// Argument `i` (or keyword `name`), if given.
    pub(crate) fn get(&self, i: usize, name: &str) -> Option<&Value> {
        self.args.get(i).or_else(|| self.kwargs.get(name))
    }

    /// A required id.
    pub(crate) fn id(&self, i: usize, name: &str) -> Result<Id, Refusal> {
        self.get(i, name)
            .and_then(Value::as_u64)
            .and_then(Id::new)
            .ok_or_else(|| bad(format!("argument {i} (`{name}`) must be an id (1 to 2^53)")))
    }

    /// A required string.
    pub(crate) fn str(&self, i: usize, name: &str) -> Result<&str, Refusal> {
        self.get(i, name)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("argument {i} (`{name}`) must be a string")))
    }

    /// An optional string keyword argument.
    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<&str>, Refusal> {
        match self.kwargs.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(bad(format!("`{name}` must be a string"))),
        }
    }

    /// At most `n` positional arguments.
    pub(crate) fn at_most(&self, n: usize) -> Result<(), Refusal> {
        if self.args.len() > n {
            return Err(bad(format!(
                "at most {n} positional arguments, got {}",
                self.args.len()
            )));
        }
        Ok(())
    }
}

/// The RESULT (one argument) or ERROR answering CALL `request`.
pub(super) fn reply(request: Id, answer: Result<Value, Refusal>) -> wamp_proto::Message {
    match answer {
        Ok(v) => CallResult {
            request,
            details: Dict::new(),
            payload: Payload::args(vec![v]),
        }
        .into(),
        Err(r) => r.to_error(wamp_proto::message::code::CALL, request),
    }
}

/// Answers a CALL to a meta procedure (`is_meta_procedure`); `Some`: the answer (a RESULT
/// or ERROR) goes out once the wait is over: in a cluster, once the other nodes answered
/// their part of a list, get or kill, or kept a testament.
pub(crate) fn call(
    c: Caller<'_>,
    mut m: Call,
) -> Result<Option<crate::backplane::Wait<wamp_proto::Message>>, Refusal> {
    let procedure = m.procedure.as_str();
    if !c.realm.meta_api && procedure != history::GET_EVENTS {
        return Err(Refusal::new(
            uris::NO_SUCH_PROCEDURE,
            format!("the meta API is disabled on realm `{}`", c.realm.name),
        ));
    }
    m.payload
        .materialize()
        .map_err(|e| Refusal::new(uris::INVALID_ARGUMENT, e.to_string()))?;
    let args = Args {
        args: m.payload.args.take().unwrap_or_default(),
        kwargs: m.payload.kwargs.take().unwrap_or_default(),
    };
    if let Some(b) = c.realm.backplane() {
        if gather::is_gathered(procedure) {
            let (realm, caller) = (c.realm, c.handle.id());
            return gather::across_nodes(b.as_ref(), realm, caller, procedure, args, m.request)
                .map(Some);
        }
    }
    let handle = c.handle;
    let mut stored = None;
    let answer = if let Some(name) = procedure.strip_prefix("wamp.session.") {
        sessions::call(c, name, &args, &mut stored)?
    } else if let Some(name) = procedure.strip_prefix("wamp.registration.") {
        tables::registration(c.realm, name, &args)?
    } else if procedure == CLUSTER_NODES {
        let Some(b) = c.realm.backplane() else {
            return Err(Refusal::new(
                uris::NO_SUCH_PROCEDURE,
                "this router is not part of a cluster",
            ));
        };
        Value::List(b.nodes().into_iter().map(Value::Str).collect())
    } else if procedure == history::GET_EVENTS {
        match history::get_events(c.handle, c.realm, args, m.request)? {
            history::Answer::Now(v) => v,
            history::Answer::Later(wait) => return Ok(Some(wait)),
        }
    } else if let Some(name) = procedure.strip_prefix("wamp.subscription.") {
        tables::subscription(c.realm, name, &args)?
    } else {
        return Err(Refusal::new(
            uris::NO_SUCH_PROCEDURE,
            "no such meta procedure",
        ));
    };
    let result = reply(m.request, Ok(answer));
    if let Some(wait) = stored {
        return Ok(Some(Box::pin(async move {
            wait.await;
            result
        })));
    }
    handle.send(&result);
    Ok(None)
}
