//! `wamp.registration.*` and `wamp.subscription.*`: list, lookup, match, get, and the
//! callees or subscribers of one.

use wamp_proto::options::dict;
use wamp_proto::{uris, Id, MatchPolicy, Uri, Value};

use super::{describe, Args};
use crate::dealer::Registration;
use crate::error::Refusal;
use crate::realm::Realm;

fn policy(a: &Args) -> Result<MatchPolicy, Refusal> {
    let options = match a.get(1, "options") {
        None | Some(Value::Null) => return Ok(MatchPolicy::Exact),
        Some(Value::Dict(d)) => d,
        Some(_) => {
            return Err(Refusal::new(
                uris::INVALID_ARGUMENT,
                "options must be a dict",
            ))
        }
    };
    match options.get("match") {
        None => Ok(MatchPolicy::Exact),
        Some(Value::Str(s)) => MatchPolicy::parse(s).ok_or_else(|| {
            Refusal::new(
                uris::INVALID_ARGUMENT,
                format!("unknown match policy `{s}`"),
            )
        }),
        Some(_) => Err(Refusal::new(
            uris::INVALID_ARGUMENT,
            "option `match` must be a string",
        )),
    }
}

/// `{"exact": [ids], "prefix": [ids], "wildcard": [ids]}`.
fn by_policy(items: impl Iterator<Item = (MatchPolicy, Id)>) -> Value {
    let mut lists = [Vec::new(), Vec::new(), Vec::new()];
    for (p, id) in items {
        let slot = match p {
            MatchPolicy::Exact => 0,
            MatchPolicy::Prefix => 1,
            MatchPolicy::Wildcard => 2,
        };
        lists[slot].push(Value::from(id.get()));
    }
    let [exact, prefix, wildcard] = lists;
    Value::Dict(dict([
        ("exact", Value::List(exact)),
        ("prefix", Value::List(prefix)),
        ("wildcard", Value::List(wildcard)),
    ]))
}

fn ids(v: Vec<Id>) -> Value {
    Value::List(v.into_iter().map(|i| i.get().into()).collect())
}

/// Whether one of `r`'s callees is this node's own session: in a cluster, each node tells
/// of the registrations of its own callees (the others' are proxies here).
fn has_own_callee(r: &Registration) -> bool {
    !r.own_callee_ids().is_empty()
}

/// `wamp.registration.<name>`, for this node's own callees (`match`: the registration a
/// call from here would go to, wherever its callees are).
pub(super) fn registration(realm: &Realm, name: &str, a: &Args) -> Result<Value, Refusal> {
    let dealer = &realm.dealer;
    let get = |a: &Args| {
        let id = a.id(0, "registration")?;
        dealer
            .registration(id)
            .filter(|r| has_own_callee(r))
            .ok_or_else(|| {
                Refusal::new(uris::NO_SUCH_REGISTRATION, format!("no registration {id}"))
            })
    };
    Ok(match name {
        "list" => by_policy(
            dealer
                .registrations()
                .iter()
                .filter(|r| has_own_callee(r))
                .map(|r| (r.policy, r.id)),
        ),
        "lookup" => {
            let uri = Uri::new(a.str(0, "procedure")?);
            dealer
                .lookup_exactly(&uri, policy(a)?)
                .filter(|r| has_own_callee(r))
                .map_or(Value::Null, |r| r.id.get().into())
        }
        "match" => {
            let uri = Uri::new(a.str(0, "procedure")?);
            dealer
                .lookup(&uri)
                .map_or(Value::Null, |r| r.id.get().into())
        }
        "get" => describe::registration(&*get(a)?),
        "list_callees" => ids(get(a)?.own_callee_ids()),
        "count_callees" => (get(a)?.own_callee_ids().len() as u64).into(),
        _ => {
            return Err(Refusal::new(
                uris::NO_SUCH_PROCEDURE,
                format!("no meta procedure wamp.registration.{name}"),
            ))
        }
    })
}

/// `wamp.subscription.<name>`, for this node's own subscribers.
pub(super) fn subscription(realm: &Realm, name: &str, a: &Args) -> Result<Value, Refusal> {
    let broker = &realm.broker;
    let get = |a: &Args| {
        let id = a.id(0, "subscription")?;
        broker.subscription(id).ok_or_else(|| {
            Refusal::new(uris::NO_SUCH_SUBSCRIPTION, format!("no subscription {id}"))
        })
    };
    Ok(match name {
        "list" => by_policy(broker.subscriptions().iter().map(|s| (s.policy, s.id))),
        "lookup" => {
            let uri = Uri::new(a.str(0, "topic")?);
            broker
                .lookup(&uri, policy(a)?)
                .map_or(Value::Null, |s| s.id.get().into())
        }
        "match" => {
            let found = broker.matching(&Uri::new(a.str(0, "topic")?));
            if found.is_empty() {
                Value::Null
            } else {
                ids(found)
            }
        }
        "get" => describe::subscription(&*get(a)?),
        "list_subscribers" => ids(get(a)?.subscriber_ids()),
        "count_subscribers" => (get(a)?.subscriber_ids().len() as u64).into(),
        _ => {
            return Err(Refusal::new(
                uris::NO_SUCH_PROCEDURE,
                format!("no meta procedure wamp.subscription.{name}"),
            ))
        }
    })
}
