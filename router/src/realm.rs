//! A realm: its sessions, broker and dealer, its users and roles.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use dashmap::DashMap;
use wamp_proto::{Id, MatchPolicy, Uri, UriCheck};

use crate::auth::roles::Roles;
use crate::auth::Users;
use crate::backplane::Backplane;
use crate::broker::{Broker, Delivered, Publication, Subscription};
use crate::config::RealmConfig;
use crate::dealer::{Dealer, NoSuchRegistration, RegisterError, RegisterOptions, Registered};
use crate::peer::SessionHandle;

/// One realm's routing state.
#[derive(Debug)]
pub(crate) struct Realm {
    pub(crate) name: String,
    pub(crate) uri_check: UriCheck,
    /// Who may join, and how (replaced by a configuration reload).
    users: RwLock<Arc<Users>>,
    /// What each role may do (replaced by a configuration reload).
    roles: RwLock<Arc<Roles>>,
    /// The epoch of the roles in force, bumped by each replacement: a session whose role is
    /// of another epoch re-reads it, so the routing path pays one plain load per action, not
    /// a lock.
    roles_epoch: AtomicU32,
    /// Sessions, subscriptions and registrations allowed (`[realm.limits]`).
    pub(crate) limits: crate::config::LimitsConfig,
    /// The meta API (procedures and events) is on.
    pub(crate) meta_api: bool,
    pub(crate) sessions: DashMap<Id, SessionHandle>,
    pub(crate) broker: Broker,
    pub(crate) dealer: Dealer,
    /// The other nodes, in a cluster (set once, at start): PUBLISH, SUBSCRIBE and REGISTER
    /// tell them what they need; without it the realm is a single node's.
    backplane: OnceLock<Arc<dyn Backplane>>,
}

impl Realm {
    /// A realm; `clustered`: its ids are derived alike on every node.
    pub(crate) fn new(config: &RealmConfig, clustered: bool) -> Realm {
        let stable_ids = clustered.then(|| config.name.clone());
        Realm {
            backplane: OnceLock::new(),
            name: config.name.clone(),
            uri_check: config.uri_check,
            meta_api: config.meta_api,
            users: RwLock::new(Arc::new(Users::new(config))),
            roles: RwLock::new(Arc::new(Roles::new(config, 0))),
            roles_epoch: AtomicU32::new(0),
            sessions: DashMap::new(),
            broker: Broker::new(&config.topics, config.pause_publishers, stable_ids.clone()),
            dealer: Dealer::new(
                crate::dealer::CallLimits {
                    per_caller: config.limits.max_calls_per_caller,
                    per_callee: config.limits.max_invocations_per_callee,
                },
                stable_ids,
            ),
            limits: config.limits,
        }
    }

    /// The current users.
    pub(crate) fn users(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current roles.
    pub(crate) fn roles(&self) -> Arc<Roles> {
        self.roles.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes whenever the roles are replaced.
    pub(crate) fn roles_epoch(&self) -> u32 {
        self.roles_epoch.load(Ordering::Acquire)
    }

    /// Puts `config`'s users and roles in force (a reload): the next authentication uses
    /// the new users, every session's next action the new permissions of its role.
    pub(crate) fn replace_auth(&self, config: &RealmConfig) {
        // Built outside the locks: WAMP-CRA keys take PBKDF2 rounds.
        let users = Arc::new(Users::new(config));
        // Roles first: a new user's new role exists by the time the user can log in.
        {
            let mut current = self.roles.write().unwrap_or_else(|e| e.into_inner());
            let epoch = self.roles_epoch.load(Ordering::Relaxed).wrapping_add(1);
            *current = Arc::new(Roles::new(config, epoch));
            // Published after the roles: a session that sees the new epoch finds them.
            self.roles_epoch.store(epoch, Ordering::Release);
        }
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = users;
    }

    /// Links the realm to the other nodes of its cluster (once).
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn set_backplane(&self, b: Arc<dyn Backplane>) {
        let _ = self.backplane.set(b);
    }

    /// The link to the other nodes, in a cluster.
    pub(crate) fn backplane(&self) -> Option<&Arc<dyn Backplane>> {
        self.backplane.get()
    }

    /// Fans a publication out to the local subscribers, then to the other nodes'.
    pub(crate) fn publish(&self, p: Publication) -> Delivered {
        match self.backplane.get() {
            None => self.broker.publish(p),
            Some(b) => {
                b.publish(&p);
                self.broker.publish(p)
            }
        }
    }

    /// [`Broker::subscribe`]; the first subscriber of a subscription tells the backplane.
    pub(crate) fn subscribe(
        &self,
        session: &SessionHandle,
        uri: &Uri,
        policy: MatchPolicy,
        reply: impl FnOnce(Id),
    ) -> (Arc<Subscription>, bool) {
        let (sub, created) = self.broker.subscribe(session, uri, policy, reply);
        if let (true, Some(b)) = (created, self.backplane.get()) {
            b.interest_changed(uri, policy, true);
        }
        (sub, created)
    }

    /// [`Broker::unsubscribe`]; the last subscriber of a subscription tells the backplane.
    pub(crate) fn unsubscribe(
        &self,
        session: Id,
        id: Id,
    ) -> Result<bool, crate::broker::NoSuchSubscription> {
        let Some(b) = self.backplane.get() else {
            return self.broker.unsubscribe(session, id);
        };
        let sub = self.broker.subscription(id);
        let deleted = self.broker.unsubscribe(session, id)?;
        if let (true, Some(sub)) = (deleted, sub) {
            b.interest_changed(&sub.uri, sub.policy, false);
        }
        Ok(deleted)
    }

    /// [`Dealer::register`]; the other nodes learn of the new callee.
    pub(crate) fn register(
        &self,
        callee: &SessionHandle,
        procedure: &Uri,
        o: RegisterOptions,
        reply: impl FnOnce(Id),
    ) -> Result<Registered, RegisterError> {
        let r = self.dealer.register(callee, procedure, o, reply)?;
        if let Some(b) = self.backplane.get() {
            for (evicted, id) in &r.evicted {
                b.callee_removed(evicted.id(), *id, procedure, o.policy);
            }
            if let Some(reg) = self.dealer.registration(r.id) {
                b.callee_added(callee, &reg, o.disclose_caller);
            }
        }
        Ok(r)
    }

    /// [`Dealer::unregister`]; the other nodes learn the callee left.
    pub(crate) fn unregister(&self, callee: Id, id: Id) -> Result<bool, NoSuchRegistration> {
        let Some(b) = self.backplane.get() else {
            return self.dealer.unregister(callee, id);
        };
        let reg = self.dealer.registration(id);
        let deleted = self.dealer.unregister(callee, id)?;
        if let Some(reg) = reg {
            b.callee_removed(callee, id, &reg.uri, reg.policy);
        }
        Ok(deleted)
    }
}
