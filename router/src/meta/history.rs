//! `wamp.subscription.get_events`: recent events of a subscription from the broker's history.
//!
//! In a cluster every node keeps the history of the configured topics (docs/cluster.md), so
//! the events come from the asking node's history; a subscription that has no subscriber on
//! this node is first looked up on the others (what its topic and match policy are).

use std::sync::Arc;

use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, MatchPolicy, Message, Uri, Value};

use super::{gather, Args};
use crate::backplane::Wait;
use crate::broker::rfc3339;
use crate::error::Refusal;
use crate::peer::SessionHandle;
use crate::realm::Realm;

/// History is not configured for the subscription's topics ([AB]/[CB] URI).
const HISTORY_UNAVAILABLE: &str = "wamp.error.history_unavailable";

/// The procedure, also the name of the query that asks another node about a subscription.
pub(super) const GET_EVENTS: &str = "wamp.subscription.get_events";

/// What `get_events` answers: now, or once the other nodes said what the subscription is.
pub(super) enum Answer {
    Now(Value),
    Later(Wait<Message>),
}

/// What a call asks for.
struct Ask {
    subscription: Id,
    limit: Option<usize>,
    reverse: bool,
}

fn ask(a: &Args) -> Result<Ask, Refusal> {
    let bad = |t: &str| Refusal::new(uris::INVALID_ARGUMENT, t);
    let subscription = a
        .args
        .first()
        .and_then(Value::as_u64)
        .and_then(Id::new)
        .ok_or_else(|| bad("expected a subscription id as the first argument"))?;
    let kwargs = &a.kwargs;
    let limit = match kwargs.get("limit").or_else(|| a.args.get(1)) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad("`limit` must be a non-negative integer"))? as usize,
        ),
    };
    let reverse = match kwargs.get("reverse") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad("`reverse` must be a boolean"))?,
    };
    Ok(Ask {
        subscription,
        limit,
        reverse,
    })
}

fn no_such_subscription(id: Id) -> Refusal {
    Refusal::new(uris::NO_SUCH_SUBSCRIPTION, format!("no subscription {id}"))
}

/// `wamp.subscription.get_events(subscription, limit=?, reverse=?)`: the kept events of the
/// subscription's topics, oldest first (newest first with `reverse`), the newest `limit`.
/// Returns them as one list in `Arguments[0]`, as Crossbar does. `request`: the CALL's, for
/// an answer that waits for the other nodes.
pub(super) fn get_events(
    me: &SessionHandle,
    realm: &Arc<Realm>,
    a: Args,
    request: Id,
) -> Result<Answer, Refusal> {
    let ask = ask(&a)?;
    if let Some(sub) = realm.broker.subscription(ask.subscription) {
        return events(me, realm, &ask, sub.policy, &sub.uri).map(Answer::Now);
    }
    let Some(b) = realm.backplane() else {
        return Err(no_such_subscription(ask.subscription));
    };
    let others = b.gather(gather::Query {
        procedure: GET_EVENTS.to_owned(),
        args: vec![ask.subscription.get().into()],
        kwargs: Dict::new(),
    });
    let (me, realm) = (me.clone(), realm.clone());
    Ok(Answer::Later(Box::pin(async move {
        let found = others.await.into_iter().find_map(|p| match p {
            gather::Part::Answer(Value::Dict(d)) => described(&d),
            _ => None,
        });
        let answer = match found {
            Some((policy, uri)) => events(&me, &realm, &ask, policy, &uri),
            None => Err(no_such_subscription(ask.subscription)),
        };
        super::reply(request, answer)
    })))
}

/// The match policy and URI of a subscription as another node described it.
fn described(d: &Dict) -> Option<(MatchPolicy, Uri)> {
    let policy = MatchPolicy::parse(d.get("match").and_then(Value::as_str)?)?;
    let uri = d.get("uri").and_then(Value::as_str)?;
    Some((policy, Uri::new(uri)))
}

/// The events of this node's history that subscription `ask` (`policy`, `uri`) matches.
fn events(
    me: &SessionHandle,
    realm: &Realm,
    ask: &Ask,
    policy: MatchPolicy,
    uri: &Uri,
) -> Result<Value, Refusal> {
    let broker = &realm.broker;
    // Exact subscriptions: is history kept for that topic? Patterns: for any topic at all.
    let available = if policy == MatchPolicy::Exact {
        broker.topics().keeps_history(uri.as_str())
    } else {
        broker.topics().has_history()
    };
    if !available {
        return Err(Refusal::new(
            HISTORY_UNAVAILABLE,
            "no event history is configured for this subscription's topics",
        ));
    }
    let me = me.shared();
    let mut events: Vec<_> = broker
        .topics()
        .events_matching(policy, uri.as_str())
        .into_iter()
        .filter(|e| e.filter.allows_identity(None, &me.authid, &me.authrole))
        .collect();
    if let Some(limit) = ask.limit {
        let skip = events.len().saturating_sub(limit);
        events.drain(..skip);
    }
    if ask.reverse {
        events.reverse();
    }
    let list = events
        .into_iter()
        .map(|mut e| {
            // Stored payloads stay encoded as published; this reply is built from values.
            if let Err(err) = e.payload.materialize() {
                tracing::warn!(publication = %e.publication, cause = %err, "stored event payload cannot be decoded; sent without it");
            }
            let mut d = dict([
                ("timestamp", rfc3339(e.timestamp).into()),
                ("subscription", ask.subscription.get().into()),
                ("publication", e.publication.get().into()),
                ("topic", e.topic.as_str().into()),
                ("details", Value::Dict(e.details)),
            ]);
            if let Some(a) = e.payload.args {
                d.insert("args".into(), Value::List(a));
            }
            if let Some(k) = e.payload.kwargs {
                d.insert("kwargs".into(), Value::Dict(k));
            }
            Value::Dict(d)
        })
        .collect();
    Ok(Value::List(list))
}
