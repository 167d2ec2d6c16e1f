//! PubSub messages on an established session: PUBLISH, SUBSCRIBE, UNSUBSCRIBE.

use wamp_proto::message::{Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed};
use wamp_proto::options::{bool_opt, dict, str_opt};
use wamp_proto::{uris, Dict, Id, MatchPolicy};

use super::core::Joined;
use crate::broker::{Filter, Publication};
use crate::dealer::call::LIMIT_EXCEEDED;
use crate::error::Refusal;
use tracing::warn;

/// The PUBLISH options the broker acts on.
struct PublishOptions {
    acknowledge: bool,
    exclude_me: bool,
    disclose_me: bool,
    retain: bool,
    filter: Filter,
}

fn publish_options(o: &Dict) -> Result<PublishOptions, &'static str> {
    Ok(PublishOptions {
        acknowledge: bool_opt(o, "acknowledge", false)?,
        exclude_me: bool_opt(o, "exclude_me", true)?,
        disclose_me: bool_opt(o, "disclose_me", false)?,
        retain: bool_opt(o, "retain", false)?,
        filter: Filter::from_options(o)?,
    })
}

/// Handles a PUBLISH; a refusal is answered only when the publisher asked for an
/// acknowledgement.
/// `disclose`: the role's rule discloses the publisher even if it did not ask.
pub(super) fn publish(j: &mut Joined, m: Publish, disclose: bool) -> Result<(), Refusal> {
    let o = match publish_options(&m.options) {
        Ok(o) => o,
        Err(key) => {
            // A malformed option: answer only if the publisher may be waiting for one.
            if bool_opt(&m.options, "acknowledge", true).unwrap_or(true) {
                return Err(Refusal::new(
                    uris::INVALID_ARGUMENT,
                    format!("option `{key}` has the wrong type"),
                ));
            }
            return Ok(());
        }
    };
    if !m.topic.is_valid(j.realm.uri_check, MatchPolicy::Exact) || m.topic.is_reserved() {
        if o.acknowledge {
            return Err(Refusal::new(
                uris::INVALID_URI,
                format!("invalid topic URI `{}`", m.topic),
            ));
        }
        return Ok(());
    }
    let publication = Id::random();
    let details = if o.disclose_me || disclose {
        let sh = j.handle.shared();
        dict([
            ("publisher", j.handle.id().get().into()),
            ("publisher_authid", (*sh.authid).into()),
            ("publisher_authrole", (*sh.authrole).into()),
        ])
    } else {
        Dict::new()
    };
    let published = Published {
        request: m.request,
        publication,
    };
    // In a cluster, an acknowledged retained event's PUBLISHED waits until the other nodes
    // can replay it (docs/cluster.md D9).
    let stored_first = o.acknowledge && o.retain && j.realm.backplane().is_some();
    // PUBLISHED first (as Crossbar does): the publisher learns the id before any echo of it,
    // and after the echoes of what it published before.
    if o.acknowledge && !stored_first {
        j.flush_fanout();
        j.handle.send(&published.clone().into());
    }
    let delivered = j.realm.publish(Publication {
        topic: m.topic,
        id: publication,
        payload: m.payload,
        details,
        exclude_publisher: o.exclude_me.then(|| j.handle.id()),
        filter: o.filter,
        retain: o.retain,
    });
    if let Some(s) = delivered.over_bound {
        j.paused_by.get_or_insert(s);
    }
    if stored_first {
        published_once_stored(j, published);
    }
    Ok(())
}

/// Sends PUBLISHED of a retained event once the other nodes can replay it (out of line:
/// PUBLISH's common path stays small).
#[cold]
#[inline(never)]
fn published_once_stored(j: &mut Joined, published: Published) {
    let wait = j.realm.backplane().and_then(|b| b.retained_stored());
    let done: super::deferred::Completion = Box::new(move |j| {
        j.flush_fanout();
        j.handle.send(&published.into());
    });
    match wait {
        Some(wait) => j.defer(Box::pin(async move {
            wait.await;
            done
        })),
        None => done(j),
    }
}

pub(super) fn subscribe(j: &mut Joined, m: Subscribe) -> Result<(), Refusal> {
    let me = &j.handle;
    let policy = match str_opt(&m.options, "match") {
        Ok(None) => MatchPolicy::Exact,
        Ok(Some(s)) => MatchPolicy::parse(s).ok_or_else(|| {
            Refusal::new(
                uris::INVALID_ARGUMENT,
                format!("unknown match policy `{s}`"),
            )
        })?,
        Err(_) => {
            return Err(Refusal::new(
                uris::INVALID_ARGUMENT,
                "option `match` must be a string",
            ))
        }
    };
    let get_retained = bool_opt(&m.options, "get_retained", false).map_err(|_| {
        Refusal::new(
            uris::INVALID_ARGUMENT,
            "option `get_retained` must be a boolean",
        )
    })?;
    if !m.topic.is_valid(j.realm.uri_check, policy) {
        return Err(Refusal::new(
            uris::INVALID_URI,
            format!("invalid {} topic URI `{}`", policy.as_str(), m.topic),
        ));
    }
    let max = j.realm.limits.max_subscriptions_per_session;
    if j.subscriptions.len() >= max {
        me.metrics().limit_hit("max_subscriptions_per_session");
        warn!(session = %me.id(), realm = %j.realm.name, authid = %me.shared().authid, max, "subscriptions limit reached");
        return Err(Refusal::new(
            LIMIT_EXCEEDED,
            format!("at most {max} subscriptions per session (max_subscriptions_per_session)"),
        ));
    }
    if let Some(b) = j.realm.backplane() {
        // The first subscriber here: SUBSCRIBED once the other nodes route events to us;
        // with `get_retained`, once this node has the retained events stored so far.
        let interest = b.interest_pending(&m.topic, policy);
        let retained = get_retained.then(|| b.retained_caught_up()).flatten();
        if interest.is_some() || retained.is_some() {
            let done: super::deferred::Completion =
                Box::new(move |j| subscribed(j, m, policy, get_retained));
            j.defer(Box::pin(async move {
                futures_util::future::join(
                    async move {
                        if let Some(w) = interest {
                            w.await
                        }
                    },
                    async move {
                        if let Some(w) = retained {
                            w.await
                        }
                    },
                )
                .await;
                done
            }));
            return Ok(());
        }
    }
    subscribed(j, m, policy, get_retained);
    Ok(())
}

/// Adds the subscription and answers SUBSCRIBED (then the retained events asked for).
fn subscribed(j: &mut Joined, m: Subscribe, policy: MatchPolicy, get_retained: bool) {
    let me = &j.handle;
    let request = m.request;
    let (sub, created) = j.realm.subscribe(me, &m.topic, policy, |subscription| {
        me.send(
            &Subscribed {
                request,
                subscription,
            }
            .into(),
        );
    });
    if get_retained {
        j.realm.broker.send_retained(me, &sub);
    }
    j.subscriptions.insert(sub.id);
    crate::meta::events::subscribed(&j.realm, me.id(), &sub, created);
}

pub(super) fn unsubscribe(j: &mut Joined, m: Unsubscribe) -> Result<(), Refusal> {
    let me = &j.handle;
    match j.realm.unsubscribe(me.id(), m.subscription) {
        Ok(deleted) => {
            j.subscriptions.remove(&m.subscription);
            me.send(
                &Unsubscribed {
                    request: m.request.get(),
                    details: None,
                }
                .into(),
            );
            crate::meta::events::unsubscribed(&j.realm, me.id(), m.subscription, deleted);
            Ok(())
        }
        Err(_) => Err(Refusal::new(
            uris::NO_SUCH_SUBSCRIPTION,
            format!("no subscription {} for this session", m.subscription),
        )),
    }
}
