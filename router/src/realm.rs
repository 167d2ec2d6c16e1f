//! A realm: its sessions, broker and dealer.

use dashmap::DashMap;
use wamp_proto::{Id, UriCheck};

use crate::broker::Broker;
use crate::config::RealmConfig;
use crate::dealer::Dealer;
use crate::peer::SessionHandle;

/// One realm's routing state.
#[derive(Debug)]
pub(crate) struct Realm {
    pub(crate) name: String,
    pub(crate) uri_check: UriCheck,
    pub(crate) anonymous: bool,
    pub(crate) sessions: DashMap<Id, SessionHandle>,
    pub(crate) broker: Broker,
    pub(crate) dealer: Dealer,
}

impl Realm {
    pub(crate) fn new(config: &RealmConfig) -> Realm {
        Realm {
            name: config.name.clone(),
            uri_check: config.uri_check,
            anonymous: config.anonymous,
            sessions: DashMap::new(),
            broker: Broker::new(&config.topics),
            dealer: Dealer::default(),
        }
    }
}
