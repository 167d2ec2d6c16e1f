//! A look at one node's routing table from outside: what the tests' parity harness waits
//! for (in a cluster a registration reaches, and leaves, other nodes' tables milliseconds
//! after REGISTERED or UNREGISTERED). Not an API (`__testing`).

use std::sync::Arc;

use wamp_proto::{Id, MatchPolicy, Uri};

use crate::shared::RouterShared;

/// A handle on one running router's routing table ([`crate::Server::route_probe`]).
#[derive(Debug, Clone)]
pub struct RouteProbe(pub(crate) Arc<RouterShared>);

impl RouteProbe {
    /// Whether a call from this node can reach session `callee` (this node's own, or a
    /// callee of another node) through the registration of `(procedure, policy)` in
    /// `realm` (`policy`: `exact`, `prefix` or `wildcard`).
    pub fn routes_to(&self, realm: &str, procedure: &str, policy: &str, callee: u64) -> bool {
        let (Some(realm), Some(policy), Some(callee)) = (
            self.0.realm(realm),
            MatchPolicy::parse(policy),
            Id::new(callee),
        ) else {
            return false;
        };
        realm
            .dealer
            .lookup_exactly(&Uri::new(procedure), policy)
            .is_some_and(|r| r.callee_ids().contains(&callee))
    }
}
