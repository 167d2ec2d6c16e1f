//! A client's GOODBYE in a cluster: its registrations end first, and the GOODBYE reply
//! waits until the registry applied what that changed (this node's share of their claims
//! given back), so that a REGISTER of them on another node after the reply is not refused
//! with `procedure_already_exists` for the claim still held (D3 otherwise).

use super::core::Joined;
use super::deferred::{Completion, Deferred};
use crate::meta;

/// Ends every registration of the session (the other nodes learn of it; meta events).
pub(super) fn unregister_all(j: &Joined) {
    let id = j.handle.id();
    for reg in &j.registrations {
        if let Ok(deleted) = j.realm.unregister(id, *reg) {
            meta::events::unregistered(&j.realm, id, *reg, deleted);
        }
    }
}

/// In a cluster, for a session with registrations: ends them now and returns what the
/// GOODBYE reply waits for (bounded). `None`: answer at once (no cluster, no
/// registration).
pub(super) fn registrations_given_back(j: &mut Joined) -> Option<Deferred> {
    if j.registrations.is_empty() || j.realm.backplane().is_none() {
        return None;
    }
    unregister_all(j);
    j.registrations.clear();
    let applied = j.realm.backplane()?.registry_applied()?;
    Some(Box::pin(async move {
        applied.await;
        let done: Completion = Box::new(|_| {});
        done
    }))
}
