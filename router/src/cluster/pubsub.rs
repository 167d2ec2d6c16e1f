//! A realm's link to the other nodes ([`Backplane`]): events out and in, and this node's
//! NATS interest in the realm's topics. The RPC half is in `proxy.rs` and `registry.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{debug, warn};
use wamp_proto::message::Event;
use wamp_proto::{Id, MatchPolicy, Message, Uri};

use super::envelope::{self, CalleeRecord, EventHeader};
use super::names;
use super::proxy::Proxies;
use super::registry::{self, KvOp};
use super::retained;
use super::Core;
use crate::backplane::{Backplane, Wait};
use crate::broker::Publication;
use crate::config::PubSubMode;
use crate::dealer::{InvokePolicy, Registration};
use crate::peer::{lock, SessionHandle};
use crate::realm::Realm;

/// How long a first SUBSCRIBED waits for NATS to confirm the interest at most.
const INTEREST_WAIT: Duration = Duration::from_secs(2);

/// The (URI, match policy) pairs of the local subscriptions one NATS subscription serves.
type Owners = Arc<Mutex<Vec<(MatchPolicy, Uri)>>>;

/// One NATS subscription for a subject.
#[derive(Debug)]
struct Interest {
    owners: Owners,
    /// Becomes true once NATS has the subscription.
    ready: watch::Receiver<bool>,
    /// Bumped by every change, so that a lingering removal sees a newer one.
    generation: u64,
    task: AbortHandle,
}

impl Drop for Interest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A realm's link to the cluster.
#[derive(Debug)]
pub(crate) struct RealmLink {
    pub(crate) core: Arc<Core>,
    pub(crate) realm: Weak<Realm>,
    pub(crate) name: String,
    /// The realm's name as one NATS token and KV key part.
    pub(crate) token: String,
    /// `<prefix>.e.<token>`.
    root: String,
    mode: PubSubMode,
    interest: Mutex<HashMap<String, Interest>>,
    /// Remote callees here, and local callees' remote callers.
    pub(crate) proxies: Proxies,
    /// The newest retained event's stamp per topic (`retained.rs`).
    pub(crate) held: retained::Held,
    /// The subjects of the topics with history (`interest` mode): held from the start, so
    /// that this node's history has the events published anywhere.
    history_subjects: HashSet<String>,
    /// Told whenever a remote callee leaves this node's dealer (`force.rs` waits on it).
    pub(crate) callees_changed: watch::Sender<()>,
}

impl RealmLink {
    pub(crate) fn new(core: Arc<Core>, realm: &Arc<Realm>, mode: PubSubMode) -> Arc<RealmLink> {
        let token = names::realm_token(&realm.name);
        let root = names::event_root(&core.prefix, &token);
        let history_subjects: HashSet<String> = match mode {
            PubSubMode::Broadcast => HashSet::new(),
            PubSubMode::Interest => realm
                .broker
                .topics()
                .history_patterns()
                .into_iter()
                .map(|(policy, uri)| names::interest_subject(&root, &uri, policy))
                .collect(),
        };
        let link = Arc::new(RealmLink {
            root,
            core,
            realm: Arc::downgrade(realm),
            name: realm.name.clone(),
            token,
            mode,
            interest: Mutex::default(),
            proxies: Proxies::default(),
            held: retained::Held::default(),
            history_subjects,
            callees_changed: watch::Sender::new(()),
        });
        for subject in &link.history_subjects {
            link.ensure(subject);
        }
        if mode == PubSubMode::Broadcast {
            let l = link.clone();
            super::spawn(&link.core, async move {
                let subject = format!("{}.>", l.root);
                match l.core.client.subscribe(subject).await {
                    Ok(sub) => {
                        let l2 = l.clone();
                        super::each_message(sub, move |m| l2.deliver_all(&m.payload)).await;
                    }
                    Err(e) => {
                        warn!(realm = %l.name, cause = %e, "cluster: cannot subscribe to the realm's events")
                    }
                }
            });
        }
        link
    }

    /// Starts (or finds) the NATS subscription for `subject`.
    fn ensure(self: &Arc<Self>, subject: &str) -> watch::Receiver<bool> {
        let mut map = lock(&self.interest);
        if let Some(i) = map.get(subject) {
            return i.ready.clone();
        }
        let (tx, rx) = watch::channel(false);
        let owners: Owners = Arc::default();
        let link = self.clone();
        let (owned, subj) = (owners.clone(), subject.to_owned());
        let task = tokio::spawn(async move {
            let core = &link.core;
            let sub = match core.client.subscribe(subj.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(subject = %subj, cause = %e, "cluster: cannot subscribe");
                    let _ = tx.send(true);
                    return;
                }
            };
            if core.connected() {
                // A round trip through the server on this connection: its answer (no
                // responders) comes after it processed the SUB. (`Client::flush` only writes
                // the socket.)
                let probe = core
                    .client
                    .request(format!("{}.sync", core.prefix), bytes::Bytes::new());
                let _ = tokio::time::timeout(INTEREST_WAIT, probe).await;
            }
            let _ = tx.send(true);
            debug!(subject = %subj, "cluster: interest registered");
            // Nobody may come after all (the subscriber left while waiting).
            link.linger(&subj, 0);
            let l = link.clone();
            super::each_message(sub, move |m| l.deliver_owned(&subj, &owned, &m.payload)).await;
        });
        map.insert(
            subject.to_owned(),
            Interest {
                owners,
                ready: rx.clone(),
                generation: 0,
                task: task.abort_handle(),
            },
        );
        rx
    }

    /// Drops `subject`'s NATS subscription after the linger, unless it is in use by then.
    fn linger(self: &Arc<Self>, subject: &str, generation: u64) {
        let link = self.clone();
        let subject = subject.to_owned();
        super::spawn(&self.core.clone(), async move {
            tokio::time::sleep(link.core.linger).await;
            let mut map = lock(&link.interest);
            let unused = map
                .get(&subject)
                .is_some_and(|i| i.generation == generation && lock(&i.owners).is_empty())
                && !link.history_subjects.contains(&subject);
            if unused {
                map.remove(&subject);
                debug!(subject, "cluster: interest dropped");
            }
        });
    }

    /// An event for the local subscriptions `owners` serves (on NATS subject `subject`);
    /// recorded in the history if its topic has history and its rule's subject is this one
    /// (so once, however many of this node's subjects match it).
    fn deliver_owned(&self, subject: &str, owners: &Owners, payload: &bytes::Bytes) {
        let Some((h, ev)) = self.read_event(payload) else {
            return;
        };
        let Some(realm) = self.realm.upgrade() else {
            return;
        };
        if !self.history_subjects.is_empty() {
            let rule = realm.broker.topics().history_rule(&h.topic);
            if rule.is_some_and(|(p, u)| names::interest_subject(&self.root, u, p) == subject) {
                let sent = std::time::UNIX_EPOCH + Duration::from_millis(h.sent_ms);
                realm.broker.record_remote(&h.topic, &ev, &h.filter, sent);
            }
        }
        let owned = lock(owners).clone();
        realm.broker.deliver_remote(&h.topic, ev, &h.filter, &owned);
    }

    /// `broadcast` mode: an event for every local subscription it matches (and the
    /// retention and history rules, as for a local publication).
    fn deliver_all(&self, payload: &bytes::Bytes) {
        let Some((h, ev)) = self.read_event(payload) else {
            return;
        };
        let Some(realm) = self.realm.upgrade() else {
            return;
        };
        realm.broker.publish(Publication {
            topic: Uri::from(h.topic),
            id: ev.publication,
            payload: ev.payload,
            details: ev.details,
            exclude_publisher: None,
            filter: h.filter,
            retain: h.retain,
        });
    }

    fn read_event(&self, payload: &bytes::Bytes) -> Option<(EventHeader, Event)> {
        match envelope::decode_with::<EventHeader>(payload) {
            Ok((h, Message::Event(ev))) if h.origin != self.core.node => {
                if envelope::is_stale(h.sent_ms, self.core.node_timeout_ms()) {
                    debug!(realm = %self.name, topic = %h.topic, "cluster: an event older than the node timeout is dropped");
                    return None;
                }
                Some((h, ev))
            }
            Ok(_) => None,
            Err(e) => {
                warn!(realm = %self.name, cause = %e, "cluster: unreadable event from another node");
                None
            }
        }
    }

    /// A remote callee's record: it becomes (or stays) a callee in the local dealer.
    pub(crate) fn remote_callee_added(&self, rec: &CalleeRecord) {
        if let Some(realm) = self.realm.upgrade() {
            self.proxies.add_callee(self, &realm, rec);
        }
    }

    /// A remote callee's record was deleted.
    pub(crate) fn remote_callee_removed(&self, node: &str, session: u64, reg: u64) {
        if let Some(realm) = self.realm.upgrade() {
            self.proxies.remove_callee(&realm, node, session, reg);
            self.callees_changed.send_replace(());
        }
    }

    /// `node` is lost: its callees leave, calls to them fail, its calls here are dropped.
    pub(crate) fn node_lost(&self, node: &str) {
        if let Some(realm) = self.realm.upgrade() {
            self.proxies.node_lost(&realm, node);
            self.callees_changed.send_replace(());
        }
    }

    /// The id every node gives the registration of `(uri, policy)` (first attempt).
    pub(crate) fn registration_id(&self, uri: &Uri, policy: MatchPolicy) -> u64 {
        crate::stable_ids::stable_id(&self.name, b"r", policy, uri.as_str(), 0).get()
    }

    pub(crate) fn claim_key(&self, uri: &Uri, policy: MatchPolicy) -> String {
        registry::claim_key(&self.token, self.registration_id(uri, policy))
    }
}

impl Backplane for Arc<RealmLink> {
    fn publish(&self, p: &Publication) {
        if p.retain
            && self
                .realm
                .upgrade()
                .is_some_and(|r| r.broker.topics().retention_allowed(p.topic.as_str()))
        {
            retained::offer(self, p);
        }
        let Some(subject) = names::topic_subject(&self.root, p.topic.as_str()) else {
            debug!(topic = %p.topic, "cluster: topic too long for NATS; delivered on this node only");
            return;
        };
        let header = EventHeader {
            origin: self.core.node.clone(),
            topic: p.topic.as_str().to_owned(),
            filter: p.filter.clone(),
            retain: p.retain,
            sent_ms: envelope::now_ms(),
        };
        let event = Message::Event(Event {
            subscription: p.id,
            publication: p.id,
            details: p.details.clone(),
            payload: p.payload.clone(),
        });
        match envelope::encode_message(&header, &event) {
            Some(bytes) => {
                self.core.send(subject, bytes);
            }
            None => warn!(topic = %p.topic, "cluster: cannot encode an event for the other nodes"),
        }
    }

    fn interest_pending(&self, uri: &Uri, policy: MatchPolicy) -> Option<Wait<()>> {
        if self.mode == PubSubMode::Broadcast {
            return None;
        }
        let subject = names::interest_subject(&self.root, uri.as_str(), policy);
        let mut ready = self.ensure(&subject);
        if *ready.borrow() {
            return None;
        }
        Some(Box::pin(async move {
            let _ = tokio::time::timeout(INTEREST_WAIT, ready.wait_for(|r| *r)).await;
        }))
    }

    fn retained_stored(&self) -> Option<Wait<()>> {
        retained::written(&self.core)
    }

    fn retained_caught_up(&self) -> Option<Wait<()>> {
        Some(retained::caught_up(&self.core))
    }

    fn interest_changed(&self, uri: &Uri, policy: MatchPolicy, added: bool) {
        if self.mode == PubSubMode::Broadcast {
            return;
        }
        let subject = names::interest_subject(&self.root, uri.as_str(), policy);
        if added {
            self.ensure(&subject);
        }
        let mut map = lock(&self.interest);
        let Some(i) = map.get_mut(&subject) else {
            return;
        };
        i.generation += 1;
        let mut owners = lock(&i.owners);
        if added {
            owners.push((policy, uri.clone()));
            return;
        }
        owners.retain(|(p, u)| !(*p == policy && u == uri));
        if owners.is_empty() {
            let generation = i.generation;
            drop(owners);
            drop(map);
            self.linger(&subject, generation);
        }
    }

    fn claim(
        &self,
        uri: &Uri,
        policy: MatchPolicy,
        invoke: InvokePolicy,
    ) -> Wait<Result<(), String>> {
        self.claim_registration(uri, policy, invoke)
    }

    fn force_evict(
        &self,
        uri: &Uri,
        policy: MatchPolicy,
        callee: Id,
        invoke: InvokePolicy,
    ) -> Option<Wait<()>> {
        self.evict_remote(uri, policy, callee, invoke)
    }

    fn shares_given_back(&self) -> u64 {
        self.core.shares.given_back()
    }

    fn callee_arrived(&self, uri: &Uri, policy: MatchPolicy, invoke: InvokePolicy, since: u64) {
        self.rejoin_if_given_back(uri, policy, invoke, since);
    }

    fn release_claim(&self, uri: &Uri, policy: MatchPolicy) {
        self.release_unless_held(uri, policy);
    }

    fn registry_applied(&self) -> Option<Wait<()>> {
        self.kv_applied()
    }

    fn callee_added(&self, callee: &SessionHandle, reg: &Registration, disclose_caller: bool) {
        if Proxies::is_proxy(callee) {
            return;
        }
        let sh = callee.shared();
        let rec = CalleeRecord {
            realm: self.name.clone(),
            uri: reg.uri.as_str().to_owned(),
            policy: reg.policy.as_str().to_owned(),
            invoke: reg.invoke.as_str().to_owned(),
            disclose_caller,
            node: self.core.node.clone(),
            incarnation: self.core.incarnation(),
            session: callee.id().get(),
            authid: sh.authid.to_string(),
            authrole: sh.authrole.to_string(),
            features: sh.features.bits(),
            registration: reg.id.get(),
        };
        let key = registry::callee_key(
            &self.token,
            &self.core.node,
            callee.id().get(),
            reg.id.get(),
        );
        let _ = self
            .core
            .kv_ops
            .send(KvOp::Put(key, envelope::encode(&rec), None));
    }

    fn callee_removed(&self, callee: Id, reg: Id, uri: &Uri, policy: MatchPolicy) {
        let key = registry::callee_key(&self.token, &self.core.node, callee.get(), reg.get());
        // The claim first: once the record's deletion is seen, the claim is free.
        self.release_unless_held(uri, policy);
        let _ = self.core.kv_ops.send(KvOp::Delete(key));
    }

    fn testaments(
        &self,
        session: Id,
        testaments: Vec<crate::meta::PortableTestament>,
    ) -> Option<Wait<()>> {
        let key = registry::testament_key(&self.token, &self.core.node, session.get());
        if testaments.is_empty() {
            let _ = self.core.kv_ops.send(KvOp::Delete(key));
            return None;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op = KvOp::Put(key, envelope::encode(&testaments), Some(tx));
        self.core.kv_ops.send(op).ok()?;
        // Bounded: with the registry unreachable the RESULT still goes out.
        Some(Box::pin(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), rx).await;
        }))
    }

    fn nodes(&self) -> Vec<String> {
        self.core.nodes.alive(&self.core.node)
    }

    fn gather(&self, query: crate::meta::Query) -> Wait<Vec<crate::meta::Part>> {
        super::control::gather(&self.core, &self.name, query)
    }
}
