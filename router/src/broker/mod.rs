//! The broker: subscriptions (exact, prefix, wildcard) and PUBLISH fan-out.
//!
//! Subscriptions are shared per (URI, match policy): one id for all subscribers. A publish
//! takes a snapshot of each matching subscription's subscriber list (an
//! `Arc<[SessionHandle]>`, rebuilt only after a change) and fans out with no lock held,
//! encoding each EVENT at most once per serializer. Exact subscriptions are one `DashMap`
//! lookup; pattern subscriptions are found through an index (prefix map + wildcard trie,
//! `patterns.rs`) changed in place under a write lock; a publish copies the matches out under
//! the read lock and delivers with no lock held. `publish` is the one entry point of a
//! PUBLISH's fan-out (where a cluster backplane would hook).

pub(crate) mod batch;
mod filter;
mod patterns;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tracing::warn;
use wamp_proto::message::{code, Event};
use wamp_proto::uri::matches;
use wamp_proto::{Dict, Id, MatchPolicy, Message, Payload, Serializer, Uri, Value};

pub(crate) use filter::Filter;
pub(crate) use store::{rfc3339, StoredEvent, TopicPolicies};

use crate::config::TopicPolicyConfig;
use crate::peer::encode_frame;
use crate::peer::{lock, FastHash, Queued, SessionHandle};

/// One subscription: a URI, how it matches, and its subscribers.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) id: Id,
    pub(crate) uri: Uri,
    pub(crate) policy: MatchPolicy,
    /// When the first subscriber created it (meta API).
    pub(crate) created: SystemTime,
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

    fn add(&self, session: &SessionHandle) {
        let mut m = lock(&self.members);
        if m.by_session.insert(session.id(), session.clone()).is_none() {
            m.snapshot = None;
        }
    }

    fn is_empty(&self) -> bool {
        lock(&self.members).by_session.is_empty()
    }

    /// The subscribers' session ids (meta API).
    pub(crate) fn subscriber_ids(&self) -> Vec<Id> {
        lock(&self.members).by_session.keys().copied().collect()
    }
}

/// Why an UNSUBSCRIBE failed.
#[derive(Debug)]
pub(crate) struct NoSuchSubscription;

/// A publication on its way to subscribers.
#[derive(Debug)]
pub(crate) struct Publication {
    pub(crate) topic: Uri,
    pub(crate) id: Id,
    pub(crate) payload: Payload,
    /// EVENT.Details shared by every subscriber (publisher disclosure).
    pub(crate) details: Dict,
    /// The publisher's session, when it must not receive its own event.
    pub(crate) exclude_publisher: Option<Id>,
    pub(crate) filter: Filter,
    /// Keep it as the topic's retained event.
    pub(crate) retain: bool,
}

/// Pattern subscriptions: an index changed in place under its write lock, and a flag
/// publishers read without a lock.
#[derive(Debug, Default)]
struct Patterns {
    index: RwLock<patterns::PatternIndex>,
    /// Set under the write lock before a SUBSCRIBED goes out; cleared once the index empties.
    any: std::sync::atomic::AtomicBool,
}

/// The broker of one realm.
#[derive(Debug)]
pub(crate) struct Broker {
    exact: DashMap<Uri, Arc<Subscription>, FastHash>,
    patterns: Patterns,
    by_id: DashMap<Id, Arc<Subscription>>,
    retained: DashMap<Uri, Arc<StoredEvent>>,
    topics: TopicPolicies,
    seq: AtomicU64,
    /// Report a subscriber over its soft bound to the publisher (realm `pause_publishers`).
    pause_publishers: bool,
    /// In a cluster: the realm's name, from which every node derives the same subscription
    /// id for the same (URI, match policy).
    stable_ids: Option<String>,
}

/// What a PUBLISH reached.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// Under `pause_publishers`: a subscriber now over its soft bound, whose draining the
    /// publisher must wait for.
    pub(crate) over_bound: Option<SessionHandle>,
}

impl Broker {
    pub(crate) fn new(
        topics: &[TopicPolicyConfig],
        pause_publishers: bool,
        stable_ids: Option<String>,
    ) -> Broker {
        Broker {
            pause_publishers,
            stable_ids,
            exact: DashMap::default(),
            patterns: Patterns::default(),
            by_id: DashMap::new(),
            retained: DashMap::new(),
            topics: TopicPolicies::new(topics),
            seq: AtomicU64::new(0),
        }
    }

    fn new_subscription(&self, uri: &Uri, policy: MatchPolicy) -> Arc<Subscription> {
        let mut attempt = 0;
        loop {
            let id = match &self.stable_ids {
                Some(realm) if attempt < 4 => {
                    crate::stable_ids::stable_id(realm, b"s", policy, uri.as_str(), attempt)
                }
                _ => Id::random(),
            };
            attempt += 1;
            if let dashmap::Entry::Vacant(v) = self.by_id.entry(id) {
                let sub = Arc::new(Subscription {
                    id,
                    uri: uri.clone(),
                    policy,
                    created: SystemTime::now(),
                    members: Mutex::default(),
                });
                v.insert(sub.clone());
                return sub;
            }
        }
    }

    /// Adds `session` to the subscription for `(uri, policy)` (created if needed); returns
    /// it, and whether it was created. Subscribing twice returns the same subscription
    /// without a second membership.
    ///
    /// `reply` runs while the subscription's table entry is locked, so the SUBSCRIBED it
    /// queues reaches the subscriber before any EVENT of that subscription.
    pub(crate) fn subscribe(
        &self,
        session: &SessionHandle,
        uri: &Uri,
        policy: MatchPolicy,
        reply: impl FnOnce(Id),
    ) -> (Arc<Subscription>, bool) {
        let add = |sub: &Arc<Subscription>| {
            sub.add(session);
            reply(sub.id);
            sub.clone()
        };
        if policy == MatchPolicy::Exact {
            return match self.exact.entry(uri.clone()) {
                Entry::Occupied(e) => (add(e.get()), false),
                Entry::Vacant(e) => {
                    let sub = add(&self.new_subscription(uri, policy));
                    e.insert(sub.clone());
                    (sub, true)
                }
            };
        }
        let mut idx = self
            .patterns
            .index
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(sub) = idx.get(policy, uri.as_str()) {
            return (add(sub), false);
        }
        // Before the reply: a publish it prompts must not skip the index.
        self.patterns.any.store(true, Ordering::Release);
        let sub = add(&self.new_subscription(uri, policy));
        idx.insert(sub.clone());
        (sub, true)
    }

    /// Removes `session` from subscription `id`; deletes the subscription once empty
    /// (`Ok(true)`).
    pub(crate) fn unsubscribe(&self, session: Id, id: Id) -> Result<bool, NoSuchSubscription> {
        let sub = self
            .by_id
            .get(&id)
            .map(|s| s.clone())
            .ok_or(NoSuchSubscription)?;
        {
            let mut m = lock(&sub.members);
            if m.by_session.remove(&session).is_none() {
                return Err(NoSuchSubscription);
            }
            m.snapshot = None;
        }
        // The emptiness check runs under the table lock, so a concurrent subscribe either
        // lands before it (and keeps the subscription) or creates a new one.
        let removed = if sub.policy == MatchPolicy::Exact {
            self.exact
                .remove_if(&sub.uri, |_, s| s.id == id && s.is_empty())
                .is_some()
        } else {
            let mut idx = self
                .patterns
                .index
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let empty = idx
                .get(sub.policy, sub.uri.as_str())
                .is_some_and(|s| s.id == id && s.is_empty());
            if empty {
                idx.remove(sub.policy, sub.uri.as_str());
                self.patterns.any.store(!idx.is_empty(), Ordering::Release);
            }
            empty
        };
        if removed {
            self.by_id.remove(&id);
        }
        Ok(removed)
    }

    /// Every subscription (meta API).
    /// (subscriptions, exact-match topics): for [`crate::TableSizes`].
    pub(crate) fn table_sizes(&self) -> (usize, usize) {
        (self.by_id.len(), self.exact.len())
    }

    pub(crate) fn subscriptions(&self) -> Vec<Arc<Subscription>> {
        self.by_id.iter().map(|e| e.value().clone()).collect()
    }

    /// The subscription for exactly `(uri, policy)` (meta API `lookup`).
    pub(crate) fn lookup(&self, uri: &Uri, policy: MatchPolicy) -> Option<Arc<Subscription>> {
        if policy == MatchPolicy::Exact {
            return self.exact.get(uri).map(|s| s.clone());
        }
        let idx = self
            .patterns
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner());
        idx.get(policy, uri.as_str()).cloned()
    }

    /// The subscriptions a publication to `topic` would reach (meta API `match`).
    pub(crate) fn matching(&self, topic: &Uri) -> Vec<Id> {
        let mut ids: Vec<Id> = self.exact.get(topic).map(|s| s.id).into_iter().collect();
        let idx = self
            .patterns
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner());
        idx.for_each_match(topic.as_str(), |s| ids.push(s.id));
        ids
    }

    /// Whether a publication to `topic` would reach any subscription (meta events are
    /// built only then): one lookup, plus the pattern index only when patterns exist.
    pub(crate) fn has_subscribers(&self, topic: &str) -> bool {
        if self.exact.contains_key(topic) {
            return true;
        }
        if !self.patterns.any.load(Ordering::Acquire) {
            return false;
        }
        let idx = self
            .patterns
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut any = false;
        idx.for_each_match(topic, |_| any = true);
        any
    }

    /// The subscription with this id.
    pub(crate) fn subscription(&self, id: Id) -> Option<Arc<Subscription>> {
        self.by_id.get(&id).map(|s| s.clone())
    }

    /// Delivers a publication to every matching subscription; stores it for retention and
    /// history as configured.
    pub(crate) fn publish(&self, p: Publication) -> Delivered {
        let Publication {
            topic,
            id,
            payload,
            details,
            exclude_publisher,
            filter,
            retain,
        } = p;
        let keep_history = self.topics.keeps_history(topic.as_str()) && !filter.has_session_lists();
        let retain = retain && self.topics.retention_allowed(topic.as_str());
        let stored = (keep_history || retain).then(|| StoredEvent {
            topic: topic.clone(),
            publication: id,
            details: details.clone(),
            // Its own bytes: a slice of the publisher's read buffer would keep all of it.
            payload: payload.detached(),
            filter: filter.clone(),
            timestamp: SystemTime::now(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        });
        // The payload moves through one EVENT after another: no copy per subscription.
        let mut msg = Message::Event(Event {
            subscription: id,
            publication: id,
            details,
            payload,
        });
        let mut delivered = Delivered::default();
        let to = Targets {
            filter: &filter,
            exclude: exclude_publisher,
            pause: self.pause_publishers,
        };
        let exact = self.exact.get(&topic).map(|s| s.clone());
        // Collected under the read lock, delivered after it: no lock across a fan-out.
        let mut matched = patterns::Matches::default();
        if self.patterns.any.load(Ordering::Acquire) {
            self.patterns
                .index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .collect_matches(topic.as_str(), &mut matched);
        }
        // Pattern subscribers learn the topic (after the exact subscribers got theirs).
        let with_topic = |msg: &mut Message| {
            if let Message::Event(ev) = msg {
                ev.details
                    .insert("topic".into(), Value::Str(topic.as_str().to_owned()));
            }
        };
        // One subscription and no lists: the batch of the read being handled takes it.
        let only = match (&exact, matched.is_empty()) {
            (Some(sub), true) => Some(sub),
            (None, false) => matched.only(),
            _ => None,
        };
        let batched = match only.filter(|_| filter.is_empty()) {
            Some(sub) => {
                if exact.is_none() {
                    with_topic(&mut msg);
                }
                if let Message::Event(ev) = &mut msg {
                    ev.subscription = sub.id;
                }
                match batch::offer(sub, &msg, to.exclude, to.pause) {
                    batch::Offer::Taken(over) => {
                        delivered.over_bound = over;
                        true
                    }
                    batch::Offer::Declined => false,
                }
            }
            // Whatever is batched goes first, in order.
            None => {
                delivered.over_bound = batch::flush();
                false
            }
        };
        if !batched {
            if let Some(sub) = &exact {
                deliver(sub, &mut msg, &to, &mut delivered);
            }
            if !matched.is_empty() {
                with_topic(&mut msg);
                for sub in matched.iter() {
                    deliver(sub, &mut msg, &to, &mut delivered);
                }
            }
        }
        if let Some(stored) = stored {
            if keep_history {
                self.topics.record(&stored);
            }
            if retain {
                self.retained.insert(topic, Arc::new(stored));
            }
        }
        delivered
    }

    /// Another node's publication for this node's subscriptions `owned` (those a NATS
    /// subscription serves): each that matches `topic` gets it, as from a local publisher.
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn deliver_remote(
        &self,
        topic: &str,
        ev: Event,
        filter: &Filter,
        owned: &[(MatchPolicy, Uri)],
    ) {
        let to = Targets {
            filter,
            exclude: None,
            pause: false,
        };
        let mut delivered = Delivered::default();
        let mut msg = Message::Event(ev);
        for (policy, uri) in owned {
            if !matches(*policy, uri.as_str(), topic) {
                continue;
            }
            let Some(sub) = self.lookup(uri, *policy) else {
                continue;
            };
            if let (MatchPolicy::Prefix | MatchPolicy::Wildcard, Message::Event(e)) =
                (*policy, &mut msg)
            {
                e.details
                    .insert("topic".into(), Value::Str(topic.to_owned()));
            }
            deliver(&sub, &mut msg, &to, &mut delivered);
        }
    }

    /// Another node's retained event (newer than the one held: `cluster/retained.rs`
    /// decides) becomes its topic's.
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn keep_retained(&self, ev: StoredEvent) {
        // Its own bytes, not a slice of the NATS client's read buffer.
        let ev = StoredEvent {
            payload: ev.payload.detached(),
            ..ev
        };
        self.retained.insert(ev.topic.clone(), Arc::new(ev));
    }

    /// Another node's publication, recorded in this node's history as a local one is
    /// (events with session lists are not kept).
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn record_remote(&self, topic: &str, ev: &Event, filter: &Filter, sent: SystemTime) {
        if filter.has_session_lists() {
            return;
        }
        self.topics.record(&StoredEvent {
            topic: Uri::from(topic.to_owned()),
            publication: ev.publication,
            details: ev.details.clone(),
            payload: ev.payload.detached(),
            filter: filter.clone(),
            timestamp: sent,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        });
    }

    /// Sends `session` the retained events it would have been eligible for, for a new
    /// subscription with `get_retained`.
    pub(crate) fn send_retained(&self, session: &SessionHandle, sub: &Subscription) {
        let events: Vec<Arc<StoredEvent>> = if sub.policy == MatchPolicy::Exact {
            self.retained
                .get(&sub.uri)
                .map(|e| e.clone())
                .into_iter()
                .collect()
        } else {
            self.retained
                .iter()
                .filter(|e| matches(sub.policy, sub.uri.as_str(), e.key().as_str()))
                .map(|e| e.value().clone())
                .collect()
        };
        for ev in events {
            if !ev.filter.allows(session) {
                continue;
            }
            let mut details = ev.details.clone();
            details.insert("retained".into(), Value::Bool(true));
            if sub.policy != MatchPolicy::Exact {
                details.insert("topic".into(), Value::Str(ev.topic.as_str().to_owned()));
            }
            session.send(&Message::Event(Event {
                subscription: sub.id,
                publication: ev.publication,
                details,
                payload: ev.payload.clone(),
            }));
        }
    }

    /// The history rules of the realm.
    pub(crate) fn topics(&self) -> &TopicPolicies {
        &self.topics
    }
}

/// Who a publication goes to, besides the subscribers of its topic.
struct Targets<'a> {
    filter: &'a Filter,
    exclude: Option<Id>,
    /// Report the first subscriber over its soft bound.
    pause: bool,
}

/// Fans the EVENT in `msg` out to the subscribers of `sub`, counting them in `delivered`.
fn deliver(sub: &Subscription, msg: &mut Message, to: &Targets<'_>, delivered: &mut Delivered) {
    if let Message::Event(ev) = msg {
        ev.subscription = sub.id;
    }
    let members = sub.snapshot();
    let mut encoded: [Option<Bytes>; Serializer::COUNT] = Default::default();
    // Counted once per fan-out, not per subscriber.
    let (mut events, mut bytes) = (0, 0);
    for s in members.iter() {
        if Some(s.id()) == to.exclude || !to.filter.allows(s) {
            continue;
        }
        let slot = &mut encoded[s.serializer().index()];
        let frame = match slot {
            Some(f) => f.clone(),
            None => match encode_frame(s.serializer(), msg) {
                Ok(f) => slot.insert(f).clone(),
                Err(e) => {
                    warn!(topic = %sub.uri, cause = %e, "cannot encode EVENT; not delivered to this serializer");
                    continue;
                }
            },
        };
        let len = frame.len();
        match s.send_frame(frame) {
            Queued::No => continue,
            Queued::Yes => {}
            Queued::OverBound => {
                if to.pause && delivered.over_bound.is_none() {
                    delivered.over_bound = Some(s.clone());
                }
            }
        }
        events += 1;
        bytes += len;
    }
    if let Some(s) = members.first() {
        s.metrics().sent_many(code::EVENT, events, bytes);
    }
}

/// The broker features announced in WELCOME: only those that really work.
pub(crate) fn features() -> Dict {
    [
        "publisher_exclusion",
        "publisher_identification",
        "subscriber_blackwhite_listing",
        "pattern_based_subscription",
        "event_retention",
        "event_history",
    ]
    .into_iter()
    .map(|f| (f.to_owned(), Value::Bool(true)))
    .collect()
}
