//! The broker: subscriptions and PUBLISH fan-out.
//!
//! Subscriptions are shared per topic (one id for all subscribers). A publish takes a
//! snapshot of the subscriber list (an `Arc<[SessionHandle]>`, rebuilt only after a change)
//! and fans out with no lock held, encoding the EVENT at most once per serializer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::warn;
use wamp_proto::message::Event;
use wamp_proto::{Dict, Id, Payload, Uri};

use crate::session::handle::{lock, SessionHandle};
use crate::session::outbound::encode_frame;

/// One subscription: a topic and its subscribers.
#[derive(Debug)]
struct Subscription {
    id: Id,
    topic: Uri,
    members: Mutex<Members>,
}

#[derive(Debug, Default)]
struct Members {
    by_session: HashMap<Id, SessionHandle>,
    /// The list publishers fan out to; `None` after a change until the next publish.
    snapshot: Option<Arc<[SessionHandle]>>,
}

impl Subscription {
    fn snapshot(&self) -> Arc<[SessionHandle]> {
        let mut m = lock(&self.members);
        if let Some(s) = &m.snapshot {
            return s.clone();
        }
        let s: Arc<[SessionHandle]> = m.by_session.values().cloned().collect();
        m.snapshot = Some(s.clone());
        s
    }
}

/// Why an UNSUBSCRIBE failed.
#[derive(Debug)]
pub(crate) struct NoSuchSubscription;

/// The broker of one realm.
#[derive(Debug, Default)]
pub(crate) struct Broker {
    by_topic: DashMap<Uri, Arc<Subscription>>,
    by_id: DashMap<Id, Uri>,
}

impl Broker {
    /// Adds `session` to the subscription of `topic` (created if needed); returns its id.
    /// Subscribing twice returns the same id without a second membership.
    ///
    /// `reply` runs while the membership is locked, so the SUBSCRIBED it queues reaches the
    /// subscriber before any EVENT of that subscription.
    pub(crate) fn subscribe(
        &self,
        session: &SessionHandle,
        topic: &Uri,
        reply: impl FnOnce(Id),
    ) -> Id {
        // Membership is added while the topic's entry is locked, so a concurrent
        // unsubscribe cannot delete the subscription between lookup and insert.
        let add = |sub: &Subscription| {
            let mut m = lock(&sub.members);
            if m.by_session.insert(session.id(), session.clone()).is_none() {
                m.snapshot = None;
            }
            reply(sub.id);
            sub.id
        };
        match self.by_topic.entry(topic.clone()) {
            Entry::Occupied(e) => add(e.get()),
            Entry::Vacant(e) => {
                let id = loop {
                    let id = Id::random();
                    if let dashmap::Entry::Vacant(v) = self.by_id.entry(id) {
                        v.insert(topic.clone());
                        break id;
                    }
                };
                let sub = Arc::new(Subscription {
                    id,
                    topic: topic.clone(),
                    members: Mutex::default(),
                });
                add(&sub);
                e.insert(sub);
                id
            }
        }
    }

    /// Removes `session` from subscription `id`.
    pub(crate) fn unsubscribe(&self, session: Id, id: Id) -> Result<(), NoSuchSubscription> {
        let topic = self
            .by_id
            .get(&id)
            .map(|t| t.clone())
            .ok_or(NoSuchSubscription)?;
        let Some(sub) = self.by_topic.get(&topic).map(|s| s.clone()) else {
            return Err(NoSuchSubscription);
        };
        {
            let mut m = lock(&sub.members);
            if m.by_session.remove(&session).is_none() {
                return Err(NoSuchSubscription);
            }
            m.snapshot = None;
        }
        // Delete the subscription once empty; the check runs under the topic's entry lock,
        // so a concurrent subscribe either lands before (and keeps it) or creates a new one.
        let removed = self.by_topic.remove_if(&topic, |_, s| {
            s.id == id && lock(&s.members).by_session.is_empty()
        });
        if removed.is_some() {
            self.by_id.remove(&id);
        }
        Ok(())
    }

    /// Delivers a publication to every subscriber of `topic` except `exclude`; returns how
    /// many sessions it was queued for.
    pub(crate) fn publish(
        &self,
        topic: &Uri,
        publication: Id,
        payload: Payload,
        exclude: Option<Id>,
    ) -> usize {
        let Some(sub) = self.by_topic.get(topic).map(|s| s.clone()) else {
            return 0;
        };
        let members = sub.snapshot();
        let event = Event {
            subscription: sub.id,
            publication,
            details: Dict::new(),
            payload,
        }
        .into();
        let mut encoded: [Option<WsMessage>; 2] = [None, None];
        let mut delivered = 0;
        for s in members.iter() {
            if Some(s.id()) == exclude {
                continue;
            }
            let slot = &mut encoded[s.serializer().index()];
            let frame = match slot {
                Some(f) => f.clone(),
                None => match encode_frame(s.serializer(), &event) {
                    Ok(f) => slot.insert(f).clone(),
                    Err(e) => {
                        warn!(topic = %sub.topic, cause = %e, "cannot encode EVENT; not delivered to this serializer");
                        continue;
                    }
                },
            };
            if s.send_frame(frame) {
                delivered += 1;
            }
        }
        delivered
    }
}

/// The broker features announced in WELCOME: only those that really work.
pub(crate) fn features() -> wamp_proto::Dict {
    wamp_proto::Dict::new()
}
