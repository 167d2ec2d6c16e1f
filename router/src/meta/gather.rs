//! The meta API across a cluster (scatter-gather): the lists, gets and kills each node
//! answers for its own sessions, subscriptions and callees, merged by the asking node.
//!
//! The asking node computes its own part first, with the code a single node answers with;
//! an argument it refuses is refused at once. Otherwise it asks every other live node
//! (`Backplane::gather`, with a bound) and merges what came back: ids are unions, counts
//! are sums, a get or kill by id takes the first node that has it, and "no such ..." is the
//! answer only when no node has it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Value};

use super::{sessions, tables, Args};
use crate::backplane::{Backplane, Wait};
use crate::error::Refusal;
use crate::realm::Realm;

/// A meta call another node answers its own part of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Query {
    pub(crate) procedure: String,
    pub(crate) args: Vec<Value>,
    pub(crate) kwargs: Dict,
}

/// One node's part of the answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Part {
    /// What the procedure answers for this node's own sessions.
    Answer(Value),
    /// Nothing here (no such session, subscription or registration; no such realm).
    Nothing,
}

/// How the parts of one procedure's answer combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// The first node's answer that is not null (a get, kill or lookup by id or URI).
    First,
    /// The union of the lists of ids (null when every node said null).
    Union,
    /// The sum of the counts.
    Sum,
    /// `{exact, prefix, wildcard}`: the union of each list.
    ByPolicy,
}

/// How `procedure`'s answer merges; `None`: it is not asked of the other nodes
/// (`wamp.registration.match` answers from the routing table, which knows every node's
/// callees; testaments are the caller's own).
fn merge_of(procedure: &str) -> Option<Merge> {
    Some(match procedure {
        "wamp.session.get"
        | "wamp.session.kill"
        | "wamp.subscription.get"
        | "wamp.subscription.lookup"
        | "wamp.registration.get"
        | "wamp.registration.lookup" => Merge::First,
        "wamp.session.list"
        | "wamp.session.kill_by_authid"
        | "wamp.subscription.match"
        | "wamp.subscription.list_subscribers"
        | "wamp.registration.list_callees" => Merge::Union,
        "wamp.session.count"
        | "wamp.session.kill_by_authrole"
        | "wamp.subscription.count_subscribers"
        | "wamp.registration.count_callees" => Merge::Sum,
        "wamp.subscription.list" | "wamp.registration.list" => Merge::ByPolicy,
        _ => return None,
    })
}

/// Whether `procedure` is answered by every node in a cluster.
pub(super) fn is_gathered(procedure: &str) -> bool {
    merge_of(procedure).is_some()
}

/// This node's own part of `procedure` (`except`: the calling session, which a kill by
/// authid or authrole spares).
fn own_part(
    realm: &Realm,
    procedure: &str,
    a: &Args,
    except: Option<Id>,
) -> Result<Value, Refusal> {
    if let Some(name) = procedure.strip_prefix("wamp.session.") {
        sessions::own(realm, name, a, except)
    } else if let Some(name) = procedure.strip_prefix("wamp.registration.") {
        tables::registration(realm, name, a)
    } else if let Some(name) = procedure.strip_prefix("wamp.subscription.") {
        tables::subscription(realm, name, a)
    } else {
        Err(Refusal::new(
            uris::NO_SUCH_PROCEDURE,
            "no such meta procedure",
        ))
    }
}

/// Answers another node's query for this node's part (a procedure not gathered, or any
/// refusal, is [`Part::Nothing`]: the asking node has refused bad arguments itself); for
/// [`super::history::GET_EVENTS`], the subscription's description (`wamp.subscription.get`).
#[cfg(feature = "cluster-nats")]
pub(crate) fn answer(realm: &Realm, q: Query) -> Part {
    let a = Args {
        args: q.args,
        kwargs: q.kwargs,
    };
    // `get_events` (allowed without the meta API) asks what a subscription is.
    let found = if q.procedure == super::history::GET_EVENTS {
        tables::subscription(realm, "get", &a)
    } else if realm.meta_api && is_gathered(&q.procedure) {
        own_part(realm, &q.procedure, &a, None)
    } else {
        return Part::Nothing;
    };
    found.map_or(Part::Nothing, Part::Answer)
}

/// Whether a refusal of this node's part only says this node has nothing for it.
fn not_here(r: &Refusal) -> bool {
    matches!(
        r.uri,
        "wamp.error.no_such_session" | uris::NO_SUCH_SUBSCRIPTION | uris::NO_SUCH_REGISTRATION
    )
}

/// Answers CALL `request` to `procedure` (one [`is_gathered`]) for the whole cluster: the
/// wait yields the RESULT or ERROR.
pub(super) fn across_nodes(
    b: &dyn Backplane,
    realm: &Realm,
    caller: Id,
    procedure: &str,
    a: Args,
    request: Id,
) -> Result<Wait<Message>, Refusal> {
    let own = own_part(realm, procedure, &a, Some(caller));
    if let Err(r) = &own {
        if !not_here(r) {
            return Err(r.clone());
        }
    }
    let merge = merge_of(procedure).unwrap_or(Merge::First);
    let others = b.gather(Query {
        procedure: procedure.to_owned(),
        args: a.args,
        kwargs: a.kwargs,
    });
    Ok(Box::pin(async move {
        let parts = others.await;
        let answer = combine(merge, own, parts);
        super::reply(request, answer)
    }))
}

/// Merges this node's part with the others' (`own`'s refusal stands when nobody has any).
fn combine(merge: Merge, own: Result<Value, Refusal>, others: Vec<Part>) -> Result<Value, Refusal> {
    let (own, refused) = match own {
        Ok(v) => (Some(v), None),
        Err(r) => (None, Some(r)),
    };
    let values: Vec<Value> = own
        .into_iter()
        .chain(others.into_iter().filter_map(|p| match p {
            Part::Answer(v) => Some(v),
            Part::Nothing => None,
        }))
        .collect();
    if values.is_empty() {
        if let Some(r) = refused {
            return Err(r);
        }
    }
    Ok(match merge {
        Merge::First => values
            .into_iter()
            .find(|v| !matches!(v, Value::Null))
            .unwrap_or(Value::Null),
        Merge::Union => {
            let lists: Vec<Vec<Value>> = values.into_iter().filter_map(into_list).collect();
            if lists.is_empty() {
                Value::Null
            } else {
                Value::List(union(lists))
            }
        }
        Merge::Sum => values
            .iter()
            .filter_map(Value::as_u64)
            .fold(0u64, u64::saturating_add)
            .into(),
        Merge::ByPolicy => {
            let mut dicts: Vec<Dict> = values
                .into_iter()
                .filter_map(|v| match v {
                    Value::Dict(d) => Some(d),
                    _ => None,
                })
                .collect();
            let mut each = |key: &str| {
                let lists = dicts
                    .iter_mut()
                    .filter_map(|d| d.remove(key).and_then(into_list))
                    .collect();
                Value::List(union(lists))
            };
            Value::Dict(dict([
                ("exact", each("exact")),
                ("prefix", each("prefix")),
                ("wildcard", each("wildcard")),
            ]))
        }
    })
}

fn into_list(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::List(l) => Some(l),
        _ => None,
    }
}

/// The ids of `lists`, each once, in the order first seen (anything but an id is dropped).
fn union(lists: Vec<Vec<Value>>) -> Vec<Value> {
    let mut seen = HashSet::new();
    lists
        .into_iter()
        .flatten()
        .filter(|v| v.as_u64().is_some_and(|id| seen.insert(id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Value {
        Value::List(v.iter().map(|&i| i.into()).collect())
    }

    fn gone() -> Refusal {
        Refusal::new("wamp.error.no_such_session", "no session")
    }

    #[test]
    fn lists_are_unions_counts_sums_and_gets_the_first_found() {
        let parts = vec![
            Part::Answer(ids(&[2, 3])),
            Part::Nothing,
            Part::Answer(ids(&[3, 4])),
        ];
        let merged = combine(Merge::Union, Ok(ids(&[1, 2])), parts).expect("merged");
        assert_eq!(merged, ids(&[1, 2, 3, 4]));
        let sum = combine(Merge::Sum, Ok(2u64.into()), vec![Part::Answer(3u64.into())]);
        assert_eq!(sum.expect("summed"), Value::from(5u64));
        let first = combine(
            Merge::First,
            Err(gone()),
            vec![Part::Nothing, Part::Answer("s".into())],
        );
        assert_eq!(first.expect("found elsewhere"), Value::from("s"));
        let lookup = combine(
            Merge::First,
            Ok(Value::Null),
            vec![Part::Answer(7u64.into())],
        );
        assert_eq!(lookup.expect("looked up"), Value::from(7u64));
    }

    #[test]
    fn not_found_anywhere_is_the_own_refusal_and_match_stays_null() {
        let r = combine(
            Merge::First,
            Err(gone()),
            vec![Part::Nothing, Part::Nothing],
        );
        assert_eq!(r.map_err(|r| r.uri), Err("wamp.error.no_such_session"));
        let m = combine(
            Merge::Union,
            Ok(Value::Null),
            vec![Part::Answer(Value::Null)],
        );
        assert_eq!(m.expect("merged"), Value::Null);
    }

    #[test]
    fn by_policy_lists_merge_per_policy_and_odd_shapes_are_dropped() {
        let d = |e: &[u64], w: &[u64]| {
            Value::Dict(dict([
                ("exact", ids(e)),
                ("prefix", ids(&[])),
                ("wildcard", ids(w)),
            ]))
        };
        let odd = vec![
            Part::Answer(d(&[1, 5], &[])),
            Part::Answer("junk".into()),
            Part::Answer(Value::List(vec!["x".into(), 6u64.into()])),
        ];
        let merged = combine(Merge::ByPolicy, Ok(d(&[1], &[9])), odd).expect("merged");
        assert_eq!(merged, d(&[1, 5], &[9]));
        let sum = combine(Merge::Sum, Ok(1u64.into()), vec![Part::Answer("x".into())]);
        assert_eq!(sum.expect("summed"), Value::from(1u64));
    }
}
