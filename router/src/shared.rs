//! State shared by every connection of one router: realms, the live session ids, options,
//! and the shutdown signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wamp_proto::Id;

use crate::auth::internal::InternalCaller;
use crate::auth::penalty::Penalties;
use crate::config::RouterOptions;
use crate::counters::Metrics;
use crate::peer::OutboundBudget;
use crate::realm::Realm;

/// Hashed-ticket checks (argon2id: tens of ms of CPU each) running at once.
const AUTH_CHECKS: usize = 4;

/// State shared by every connection of a router.
#[derive(Debug)]
pub(crate) struct RouterShared {
    /// The realms by name (a configuration reload adds and removes some).
    realms: RwLock<HashMap<String, Arc<Realm>>>,
    /// Every live session id, router-wide, to keep ids unique.
    pub(crate) session_ids: DashMap<Id, ()>,
    pub(crate) options: RouterOptions,
    /// What sessions' outbound queues may hold, each and together.
    pub(crate) outbound: Arc<OutboundBudget>,
    /// What the router counts (the same as `outbound.metrics`).
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: CancellationToken,
    /// Set just before `shutdown` is cancelled: what connections look at on every poll (a
    /// plain load; the token's own check takes a lock every connection shares).
    stopping: AtomicBool,
    pub(crate) tracker: TaskTracker,
    /// Authentication failures per peer address.
    pub(crate) penalties: Penalties,
    /// Slow credential checks (hashed tickets) running at once, router-wide.
    pub(crate) auth_checks: Arc<Semaphore>,
    /// The router's own caller (asks dynamic authenticators).
    pub(crate) internal: Arc<InternalCaller>,
    /// The other nodes, with `[cluster]`.
    #[cfg(feature = "cluster-nats")]
    pub(crate) cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

impl RouterShared {
    /// Shared state over these realms, with nothing running yet.
    /// Must run inside the tokio runtime (it starts the internal caller's task).
    pub(crate) fn new(realms: HashMap<String, Arc<Realm>>, options: RouterOptions) -> RouterShared {
        let shutdown = CancellationToken::new();
        let session_ids = DashMap::new();
        let internal_id = Id::random();
        session_ids.insert(internal_id, ());
        let metrics = Arc::new(Metrics::default());
        let outbound = Arc::new(OutboundBudget::new(&options.outbound, metrics.clone()));
        RouterShared {
            realms: RwLock::new(realms),
            session_ids,
            options,
            internal: InternalCaller::start(internal_id, outbound.clone(), shutdown.clone()),
            outbound,
            metrics,
            shutdown,
            stopping: AtomicBool::new(false),
            tracker: TaskTracker::new(),
            penalties: Penalties::default(),
            auth_checks: Arc::new(Semaphore::new(AUTH_CHECKS)),
            #[cfg(feature = "cluster-nats")]
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Starts the shutdown: every connection sees it at its next poll (and is woken).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.shutdown.cancel();
    }

    /// Whether [`RouterShared::stop`] was called: one atomic load.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The realm called `name`, if there is one.
    pub(crate) fn realm(&self, name: &str) -> Option<Arc<Realm>> {
        self.read_realms().get(name).cloned()
    }

    /// Whether `realm` is still one of the router's (a reload may have removed it).
    pub(crate) fn has_realm(&self, realm: &Arc<Realm>) -> bool {
        self.read_realms()
            .get(&realm.name)
            .is_some_and(|r| Arc::ptr_eq(r, realm))
    }

    /// Every realm, at this moment.
    pub(crate) fn realms(&self) -> Vec<Arc<Realm>> {
        self.read_realms().values().cloned().collect()
    }

    /// Changes the realm table: `f` adds and removes realms.
    pub(crate) fn change_realms<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, Arc<Realm>>) -> T,
    ) -> T {
        f(&mut self.realms.write().unwrap_or_else(|e| e.into_inner()))
    }

    fn read_realms(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Realm>>> {
        self.realms.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh, unique, random session id.
    pub(crate) fn new_session_id(&self) -> Id {
        loop {
            let id = Id::random();
            if let dashmap::Entry::Vacant(v) = self.session_ids.entry(id) {
                v.insert(());
                return id;
            }
        }
    }
}
