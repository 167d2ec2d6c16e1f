//! PubSub messages on an established session: PUBLISH, SUBSCRIBE, UNSUBSCRIBE.

use wamp_proto::message::{
    code, Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed,
};
use wamp_proto::options::{bool_opt, dict, str_opt};
use wamp_proto::{uris, Dict, Id, MatchPolicy};

use super::handlers::error;
use super::Joined;
use crate::broker::{Filter, Publication};

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

pub(super) fn publish(j: &mut Joined, m: Publish) {
    let me = &j.handle;
    let o = match publish_options(&m.options) {
        Ok(o) => o,
        Err(key) => {
            // A malformed option: answer only if the publisher may be waiting for one.
            if bool_opt(&m.options, "acknowledge", true).unwrap_or(true) {
                me.send(&error(
                    code::PUBLISH,
                    m.request,
                    uris::INVALID_ARGUMENT,
                    &format!("option `{key}` has the wrong type"),
                ));
            }
            return;
        }
    };
    if !m.topic.is_valid(j.realm.uri_check, MatchPolicy::Exact) || m.topic.is_reserved() {
        if o.acknowledge {
            me.send(&error(
                code::PUBLISH,
                m.request,
                uris::INVALID_URI,
                &format!("invalid topic URI `{}`", m.topic),
            ));
        }
        return;
    }
    let publication = Id::random();
    let details = if o.disclose_me {
        let sh = me.shared();
        dict([
            ("publisher", me.id().get().into()),
            ("publisher_authid", (*sh.authid).into()),
            ("publisher_authrole", (*sh.authrole).into()),
        ])
    } else {
        Dict::new()
    };
    // PUBLISHED first (as Crossbar does): the publisher learns the id before any echo of it.
    if o.acknowledge {
        me.send(
            &Published {
                request: m.request,
                publication,
            }
            .into(),
        );
    }
    j.realm.broker.publish(Publication {
        topic: m.topic,
        id: publication,
        payload: m.payload,
        details,
        exclude_publisher: o.exclude_me.then(|| me.id()),
        filter: o.filter,
        retain: o.retain,
    });
}

pub(super) fn subscribe(j: &mut Joined, m: Subscribe) {
    let me = &j.handle;
    let policy = match str_opt(&m.options, "match") {
        Ok(None) => MatchPolicy::Exact,
        Ok(Some(s)) => match MatchPolicy::parse(s) {
            Some(p) => p,
            None => {
                me.send(&error(
                    code::SUBSCRIBE,
                    m.request,
                    uris::INVALID_ARGUMENT,
                    &format!("unknown match policy `{s}`"),
                ));
                return;
            }
        },
        Err(_) => {
            me.send(&error(
                code::SUBSCRIBE,
                m.request,
                uris::INVALID_ARGUMENT,
                "option `match` must be a string",
            ));
            return;
        }
    };
    let Ok(get_retained) = bool_opt(&m.options, "get_retained", false) else {
        me.send(&error(
            code::SUBSCRIBE,
            m.request,
            uris::INVALID_ARGUMENT,
            "option `get_retained` must be a boolean",
        ));
        return;
    };
    if !m.topic.is_valid(j.realm.uri_check, policy) {
        me.send(&error(
            code::SUBSCRIBE,
            m.request,
            uris::INVALID_URI,
            &format!("invalid {} topic URI `{}`", policy.as_str(), m.topic),
        ));
        return;
    }
    let request = m.request;
    let sub = j
        .realm
        .broker
        .subscribe(me, &m.topic, policy, |subscription| {
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
}

pub(super) fn unsubscribe(j: &mut Joined, m: Unsubscribe) {
    let me = &j.handle;
    match j.realm.broker.unsubscribe(me.id(), m.subscription) {
        Ok(()) => {
            j.subscriptions.remove(&m.subscription);
            me.send(
                &Unsubscribed {
                    request: m.request.get(),
                    details: None,
                }
                .into(),
            );
        }
        Err(_) => {
            me.send(&error(
                code::UNSUBSCRIBE,
                m.request,
                uris::NO_SUCH_SUBSCRIPTION,
                &format!("no subscription {} for this session", m.subscription),
            ));
        }
    };
}
