//! PubSub messages on an established session: PUBLISH, SUBSCRIBE, UNSUBSCRIBE.

use wamp_proto::message::{
    code, Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed,
};
use wamp_proto::options::bool_opt;
use wamp_proto::{uris, Id, MatchPolicy};

use super::handlers::{error, exact_match_only};
use super::Joined;

pub(super) fn publish(j: &mut Joined, m: Publish) {
    let me = &j.handle;
    let (ack, exclude_me) = match (
        bool_opt(&m.options, "acknowledge", false),
        bool_opt(&m.options, "exclude_me", true),
    ) {
        (Ok(a), Ok(e)) => (a, e),
        (a, e) => {
            // A malformed option: answer only if the publisher may be waiting for one.
            if a.unwrap_or(true) {
                let key = a.err().or(e.err()).unwrap_or("acknowledge");
                me.send(&error(
                    code::PUBLISH,
                    m.request,
                    uris::INVALID_ARGUMENT,
                    &format!("option `{key}` must be a boolean"),
                ));
            }
            return;
        }
    };
    if !m.topic.is_valid(j.realm.uri_check, MatchPolicy::Exact) || m.topic.is_reserved() {
        if ack {
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
    let exclude = exclude_me.then(|| me.id());
    j.realm
        .broker
        .publish(&m.topic, publication, m.payload, exclude);
    if ack {
        me.send(
            &Published {
                request: m.request,
                publication,
            }
            .into(),
        );
    }
}

pub(super) fn subscribe(j: &mut Joined, m: Subscribe) {
    let me = &j.handle;
    if let Err(why) = exact_match_only(&m.options, "subscription") {
        me.send(&error(
            code::SUBSCRIBE,
            m.request,
            uris::OPTION_NOT_ALLOWED,
            &why,
        ));
        return;
    }
    if !m.topic.is_valid(j.realm.uri_check, MatchPolicy::Exact) {
        me.send(&error(
            code::SUBSCRIBE,
            m.request,
            uris::INVALID_URI,
            &format!("invalid topic URI `{}`", m.topic),
        ));
        return;
    }
    let request = m.request;
    let id = j.realm.broker.subscribe(me, &m.topic, |subscription| {
        me.send(
            &Subscribed {
                request,
                subscription,
            }
            .into(),
        );
    });
    j.subscriptions.insert(id);
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
