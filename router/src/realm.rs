//! A realm: its sessions, broker and dealer, its users and roles.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use wamp_proto::{Id, UriCheck};

use crate::auth::roles::Roles;
use crate::auth::Users;
use crate::broker::Broker;
use crate::config::RealmConfig;
use crate::dealer::Dealer;
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
}

impl Realm {
    pub(crate) fn new(config: &RealmConfig) -> Realm {
        Realm {
            name: config.name.clone(),
            uri_check: config.uri_check,
            meta_api: config.meta_api,
            users: RwLock::new(Arc::new(Users::new(config))),
            roles: RwLock::new(Arc::new(Roles::new(config, 0))),
            roles_epoch: AtomicU32::new(0),
            sessions: DashMap::new(),
            broker: Broker::new(&config.topics, config.pause_publishers),
            dealer: Dealer::new(crate::dealer::CallLimits {
                per_caller: config.limits.max_calls_per_caller,
                per_callee: config.limits.max_invocations_per_callee,
            }),
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
}
