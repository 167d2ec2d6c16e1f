//! The dealer: registrations, CALL -> INVOCATION routing and in-flight call tracking.
//!
//! In-flight calls live on the sessions, not in a global table: the callee's session maps
//! its invocation ids to callers, the caller's session maps its request ids to callees. A
//! YIELD touches only those two maps, and either side leaving finds its calls at once.

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use wamp_proto::{Id, Uri};

use crate::session::handle::SessionHandle;

/// One registration (Basic Profile: a single callee).
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) id: Id,
    pub(crate) callee: SessionHandle,
}

/// Why a REGISTER failed.
#[derive(Debug)]
pub(crate) struct AlreadyRegistered;

/// Why an UNREGISTER failed.
#[derive(Debug)]
pub(crate) struct NoSuchRegistration;

/// The dealer of one realm.
#[derive(Debug, Default)]
pub(crate) struct Dealer {
    by_procedure: DashMap<Uri, Arc<Registration>>,
    by_id: DashMap<Id, Uri>,
}

impl Dealer {
    /// Registers `callee` for `procedure`.
    ///
    /// `reply` runs while the procedure's entry is locked, so the REGISTERED it queues
    /// reaches the callee before any INVOCATION of that registration.
    pub(crate) fn register(
        &self,
        callee: &SessionHandle,
        procedure: &Uri,
        reply: impl FnOnce(Id),
    ) -> Result<Id, AlreadyRegistered> {
        match self.by_procedure.entry(procedure.clone()) {
            Entry::Occupied(_) => Err(AlreadyRegistered),
            Entry::Vacant(e) => {
                let id = loop {
                    let id = Id::random();
                    if let dashmap::Entry::Vacant(v) = self.by_id.entry(id) {
                        v.insert(procedure.clone());
                        break id;
                    }
                };
                // Still under the entry lock: nobody can route to it before REGISTERED.
                reply(id);
                e.insert(Arc::new(Registration {
                    id,
                    callee: callee.clone(),
                }));
                Ok(id)
            }
        }
    }

    /// Removes registration `id` if `callee` owns it.
    pub(crate) fn unregister(&self, callee: Id, id: Id) -> Result<(), NoSuchRegistration> {
        let procedure = self
            .by_id
            .get(&id)
            .map(|p| p.clone())
            .ok_or(NoSuchRegistration)?;
        self.by_procedure
            .remove_if(&procedure, |_, r| r.id == id && r.callee.id() == callee)
            .ok_or(NoSuchRegistration)?;
        self.by_id.remove(&id);
        Ok(())
    }

    /// The registration that handles a call to `procedure`.
    pub(crate) fn lookup(&self, procedure: &Uri) -> Option<Arc<Registration>> {
        self.by_procedure.get(procedure).map(|r| r.clone())
    }
}

/// The dealer features announced in WELCOME: only those that really work.
pub(crate) fn features() -> wamp_proto::Dict {
    wamp_proto::Dict::new()
}
