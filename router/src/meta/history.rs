//! `wamp.subscription.get_events`: recent events of a subscription from the broker's history.

use wamp_proto::options::dict;
use wamp_proto::{uris, Id, Value};

use super::Args;
use crate::broker::rfc3339;
use crate::error::Refusal;
use crate::peer::SessionHandle;
use crate::realm::Realm;

/// History is not configured for the subscription's topics ([AB]/[CB] URI).
const HISTORY_UNAVAILABLE: &str = "wamp.error.history_unavailable";

/// `wamp.subscription.get_events(subscription, limit=?, reverse=?)`: the kept events of the
/// subscription's topics, oldest first (newest first with `reverse`), the newest `limit`.
/// Returns them as one list in `Arguments[0]`, as Crossbar does.
pub(super) fn get_events(me: &SessionHandle, realm: &Realm, a: &Args) -> Result<Value, Refusal> {
    let bad = |t: &str| Refusal::new(uris::INVALID_ARGUMENT, t);
    let sub_id = a
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
    let broker = &realm.broker;
    let sub = broker.subscription(sub_id).ok_or_else(|| {
        Refusal::new(
            uris::NO_SUCH_SUBSCRIPTION,
            format!("no subscription {sub_id}"),
        )
    })?;
    // Exact subscriptions: is history kept for that topic? Patterns: for any topic at all.
    let available = if sub.policy == wamp_proto::MatchPolicy::Exact {
        broker.topics().keeps_history(sub.uri.as_str())
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
        .events_matching(sub.policy, sub.uri.as_str())
        .into_iter()
        .filter(|e| e.filter.allows_identity(None, &me.authid, &me.authrole))
        .collect();
    if let Some(limit) = limit {
        let skip = events.len().saturating_sub(limit);
        events.drain(..skip);
    }
    if reverse {
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
                ("subscription", sub.id.get().into()),
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
