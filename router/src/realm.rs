//! A realm: its sessions, broker and dealer, its users and roles.

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
    /// Who may join, and how.
    pub(crate) users: Users,
    /// What each role may do.
    pub(crate) roles: Roles,
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
            users: Users::new(config),
            roles: Roles::new(config),
            sessions: DashMap::new(),
            broker: Broker::new(&config.topics, config.pause_publishers),
            dealer: Dealer::new(crate::dealer::CallLimits {
                per_caller: config.limits.max_calls_per_caller,
                per_callee: config.limits.max_invocations_per_callee,
            }),
            limits: config.limits,
        }
    }
}
