//! Meta events: the router publishes them in the realm after the tables changed (never from
//! inside a table lock), and builds nothing when nobody is subscribed to the topic.

use wamp_proto::{Dict, Id, Payload, Uri, Value};

use super::describe;
use crate::broker::{Filter, Publication, Subscription};

use crate::peer::SessionHandle;
use crate::realm::Realm;

/// Publishes `args` to the meta topic `topic` if anyone listens (in a cluster, subscribers
/// on other nodes may: the event goes out).
fn emit(realm: &Realm, topic: &str, args: impl FnOnce() -> Vec<Value>) {
    let listened = realm.backplane().is_some() || realm.broker.has_subscribers(topic);
    if !realm.meta_api || !listened {
        return;
    }
    realm.publish(Publication {
        topic: Uri::new(topic),
        id: Id::random(),
        payload: Payload::args(args()),
        details: Dict::new(),
        exclude_publisher: None,
        filter: Filter::default(),
        retain: false,
    });
}

/// `wamp.session.on_join [details]`.
pub(crate) fn joined(realm: &Realm, s: &SessionHandle) {
    emit(realm, "wamp.session.on_join", || vec![describe::session(s)]);
}

/// `wamp.session.on_leave [session, authid, authrole]` (the spec's form).
pub(crate) fn left(realm: &Realm, s: &SessionHandle) {
    emit(realm, "wamp.session.on_leave", || {
        let sh = s.shared();
        vec![
            s.id().get().into(),
            (*sh.authid).into(),
            (*sh.authrole).into(),
        ]
    });
}

/// `on_create` (when `created`), then `on_subscribe`.
pub(crate) fn subscribed(realm: &Realm, session: Id, sub: &Subscription, created: bool) {
    if created {
        emit(realm, "wamp.subscription.on_create", || {
            vec![session.get().into(), describe::subscription(sub)]
        });
    }
    emit(realm, "wamp.subscription.on_subscribe", || {
        vec![session.get().into(), sub.id.get().into()]
    });
}

/// `on_unsubscribe`, then `on_delete` (when `deleted`).
pub(crate) fn unsubscribed(realm: &Realm, session: Id, sub: Id, deleted: bool) {
    emit(realm, "wamp.subscription.on_unsubscribe", || {
        vec![session.get().into(), sub.get().into()]
    });
    if deleted {
        emit(realm, "wamp.subscription.on_delete", || {
            vec![session.get().into(), sub.get().into()]
        });
    }
}

/// `on_create` (when `created`), then `on_register`.
pub(crate) fn registered(realm: &Realm, session: Id, reg: Id, created: bool) {
    if created {
        emit(realm, "wamp.registration.on_create", || {
            let details = realm
                .dealer
                .registration(reg)
                .map_or(Value::Null, |r| describe::registration(&r));
            vec![session.get().into(), details]
        });
    }
    emit(realm, "wamp.registration.on_register", || {
        vec![session.get().into(), reg.get().into()]
    });
}

/// `on_unregister`, then `on_delete` (when `deleted`).
pub(crate) fn unregistered(realm: &Realm, session: Id, reg: Id, deleted: bool) {
    emit(realm, "wamp.registration.on_unregister", || {
        vec![session.get().into(), reg.get().into()]
    });
    if deleted {
        emit(realm, "wamp.registration.on_delete", || {
            vec![session.get().into(), reg.get().into()]
        });
    }
}
