//! Sizes of the router's tables: what a leak test checks after sessions come and go, and an
//! embedder may watch.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::peer::lock;
use crate::shared::RouterShared;

/// Session states alive in this process (every router's, their internal callers included).
static SESSION_STATES: AtomicUsize = AtomicUsize::new(0);

/// Counts one live session state from creation to drop.
#[derive(Debug)]
pub(crate) struct Alive(());

impl Alive {
    pub(crate) fn new() -> Alive {
        SESSION_STATES.fetch_add(1, Ordering::Relaxed);
        Alive(())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        SESSION_STATES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many entries each of the router's tables holds (see [`crate::Server::table_sizes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSizes {
    /// Joined sessions, over all realms.
    pub sessions: usize,
    /// Session ids in use router-wide (the router's internal caller's excluded).
    pub session_ids: usize,
    /// Session states not freed yet, in this whole process: every router's joined sessions,
    /// plus one internal caller per router, plus any state something still holds on to.
    pub session_states: usize,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Exact-match topic index entries.
    pub subscribed_topics: usize,
    /// Registrations.
    pub registrations: usize,
    /// Exact and pattern procedure index entries.
    pub registered_procedures: usize,
    /// Calls the joined sessions wait for, as callers.
    pub calls_in_flight: usize,
    /// Invocations the joined sessions have not answered, as callees.
    pub invocations_in_flight: usize,
    /// Call timeout timers armed.
    pub call_timers: usize,
    /// Tasks the router tracks: one per connection being served, plus its own (one for a
    /// router with no client: compare with the count at start).
    pub connections: usize,
}

/// The sizes of `shared`'s tables now.
pub(crate) fn table_sizes(shared: &RouterShared) -> TableSizes {
    let mut t = TableSizes {
        session_ids: shared.session_ids.len().saturating_sub(1),
        session_states: SESSION_STATES.load(Ordering::Relaxed),
        connections: shared.tracker.len(),
        ..TableSizes::default()
    };
    for realm in shared.realms() {
        t.sessions += realm.sessions.len();
        (t.subscriptions, t.subscribed_topics) = {
            let (ids, topics) = realm.broker.table_sizes();
            (t.subscriptions + ids, t.subscribed_topics + topics)
        };
        (t.registrations, t.registered_procedures) = {
            let (ids, procedures) = realm.dealer.table_sizes();
            (t.registrations + ids, t.registered_procedures + procedures)
        };
        for s in realm.sessions.iter() {
            let shared = s.value().shared();
            t.calls_in_flight += lock(&shared.calls).active.len();
            let inv = lock(&shared.invocations);
            t.invocations_in_flight += inv.pending.len();
            t.call_timers += inv.pending.values().filter(|p| p.timer.is_some()).count();
        }
    }
    t
}
