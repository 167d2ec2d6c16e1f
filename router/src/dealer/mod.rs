//! The dealer: registrations (exact, prefix, wildcard; single or shared) and the lookup that
//! routes a CALL to one callee.
//!
//! A CALL to an exact procedure is one `DashMap` lookup. Pattern registrations live in a
//! writer-side table and a [`PatternIndex`] changed in place under a write lock (asked only
//! when patterns exist, behind a lock-free flag). In-flight calls
//! live on the sessions ([`crate::peer::calls`]); their lifecycle is
//! in [`call`] (CALL to INVOCATION) and [`answer`] (YIELD, ERROR, CANCEL, timeouts, leaving).

pub(crate) mod answer;
pub(crate) mod call;
mod patterns;

pub(crate) use patterns::MAX_WILDCARD_COMPONENTS;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::SystemTime;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use wamp_proto::{Dict, Id, MatchPolicy, Uri, Value};

use wamp_proto::message::Unregistered;

use crate::peer::{lock, FastHash, PeerFeatures, SessionHandle};
use patterns::PatternIndex;

/// How a registration picks the callee of each call (`REGISTER.Options.invoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvokePolicy {
    /// One callee only; a second REGISTER fails.
    Single,
    /// Each callee in turn, in registration order.
    RoundRobin,
    /// A callee drawn uniformly at random.
    Random,
    /// The oldest callee still registered.
    First,
    /// The newest callee.
    Last,
}

impl InvokePolicy {
    /// Parses the `invoke` option value.
    pub(crate) fn parse(s: &str) -> Option<InvokePolicy> {
        Some(match s {
            "single" => InvokePolicy::Single,
            "roundrobin" => InvokePolicy::RoundRobin,
            "random" => InvokePolicy::Random,
            "first" => InvokePolicy::First,
            "last" => InvokePolicy::Last,
            _ => return None,
        })
    }

    /// The `invoke` option value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InvokePolicy::Single => "single",
            InvokePolicy::RoundRobin => "roundrobin",
            InvokePolicy::Random => "random",
            InvokePolicy::First => "first",
            InvokePolicy::Last => "last",
        }
    }
}

/// One callee of a registration, with its own REGISTER options.
#[derive(Debug, Clone)]
pub(crate) struct Callee {
    pub(crate) session: SessionHandle,
    /// `REGISTER.Options.disclose_caller`: always identify the caller to this callee.
    pub(crate) disclose_caller: bool,
}

/// One registration: a (URI, match policy) with its ordered list of callees.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) id: Id,
    pub(crate) uri: Uri,
    pub(crate) policy: MatchPolicy,
    pub(crate) invoke: InvokePolicy,
    /// When its first callee created it (meta API).
    pub(crate) created: SystemTime,
    callees: RwLock<Vec<Callee>>,
    cursor: AtomicUsize,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

impl Registration {
    fn new(id: Id, uri: Uri, policy: MatchPolicy, invoke: InvokePolicy) -> Registration {
        Registration {
            id,
            uri,
            policy,
            invoke,
            created: SystemTime::now(),
            callees: RwLock::new(Vec::new()),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The callees' session ids, in registration order (meta API).
    pub(crate) fn callee_ids(&self) -> Vec<Id> {
        read(&self.callees).iter().map(|c| c.session.id()).collect()
    }

    /// The ids of the callees that are this node's own sessions (not a cluster's proxies of
    /// another node's callees), in registration order (meta API).
    pub(crate) fn own_callee_ids(&self) -> Vec<Id> {
        read(&self.callees)
            .iter()
            .filter(|c| !c.session.is_cluster_proxy())
            .map(|c| c.session.id())
            .collect()
    }

    /// Whether one of the callees is this node's own session (not a cluster's proxy).
    pub(crate) fn has_own_callees(&self) -> bool {
        read(&self.callees)
            .iter()
            .any(|c| !c.session.is_cluster_proxy())
    }

    /// The callees' sessions, in registration order.
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn callee_sessions(&self) -> Vec<SessionHandle> {
        read(&self.callees)
            .iter()
            .map(|c| c.session.clone())
            .collect()
    }

    /// The callee for the next call, by the invoke policy (`None` once every callee left).
    pub(crate) fn pick(&self) -> Option<Callee> {
        let c = read(&self.callees);
        let i = match self.invoke {
            InvokePolicy::Single | InvokePolicy::First => 0,
            InvokePolicy::Last => c.len().checked_sub(1)?,
            _ if c.is_empty() => return None,
            InvokePolicy::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed) % c.len(),
            // Modulo bias over 2^53 values is negligible.
            InvokePolicy::Random => (Id::random().get() % c.len() as u64) as usize,
        };
        c.get(i).cloned()
    }

    /// Whether every callee satisfies `f` (false without callees).
    pub(crate) fn all_callees(&self, f: impl Fn(&Callee) -> bool) -> bool {
        let c = read(&self.callees);
        !c.is_empty() && c.iter().all(f)
    }

    /// Removes `session`; `Ok(true)` when it was the last callee.
    fn remove_callee(&self, session: Id) -> Result<bool, NoSuchRegistration> {
        let mut c = self.callees.write().unwrap_or_else(|e| e.into_inner());
        let i = c
            .iter()
            .position(|x| x.session.id() == session)
            .ok_or(NoSuchRegistration)?;
        c.remove(i);
        Ok(c.is_empty())
    }
}

/// What a REGISTER asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegisterOptions {
    pub(crate) policy: MatchPolicy,
    pub(crate) invoke: InvokePolicy,
    pub(crate) disclose_caller: bool,
    /// `force_reregister`: evict the current callees instead of failing.
    pub(crate) force: bool,
}

/// Why a REGISTER failed.
#[derive(Debug)]
pub(crate) enum RegisterError {
    /// A `single` registration exists, or this session is already one of its callees.
    AlreadyExists,
    /// A shared registration exists with this other invoke policy.
    DifferentPolicy(InvokePolicy),
}

/// A successful REGISTER.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) id: Id,
    /// Callees evicted by `force_reregister`, with the id of the registration they lost.
    pub(crate) evicted: Vec<(SessionHandle, Id)>,
    /// The registration was created by this REGISTER.
    pub(crate) created: bool,
}

/// What [`Dealer::place`] did: the answer, and a new registration to store, if any.
#[derive(Debug)]
struct Placed {
    registered: Registered,
    created: Option<Arc<Registration>>,
}

/// Why an UNREGISTER failed.
#[derive(Debug)]
pub(crate) struct NoSuchRegistration;

/// The dealer of one realm.
#[derive(Debug, Default)]
pub(crate) struct Dealer {
    exact: DashMap<Uri, Arc<Registration>, FastHash>,
    /// Writers' table of pattern registrations; the mutex serialises writers.
    patterns: Mutex<HashMap<(MatchPolicy, Uri), Arc<Registration>>>,
    /// Readers' index over `patterns`, changed in place under its write lock.
    index: RwLock<PatternIndex>,
    /// Set before a pattern REGISTERED goes out; cleared once `patterns` empties.
    has_patterns: AtomicBool,
    by_id: DashMap<Id, Arc<Registration>>,
    /// Calls in flight per caller and per callee (`[realm.limits]`).
    pub(crate) limits: CallLimits,
    /// In a cluster: the realm's name, from which every node derives the same registration
    /// id for the same (URI, match policy).
    stable_ids: Option<String>,
}

/// How many calls may be in flight at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallLimits {
    pub(crate) per_caller: usize,
    pub(crate) per_callee: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            per_caller: usize::MAX,
            per_callee: usize::MAX,
        }
    }
}

impl Dealer {
    /// An empty dealer with these limits.
    pub(crate) fn new(limits: CallLimits, stable_ids: Option<String>) -> Dealer {
        Dealer {
            limits,
            stable_ids,
            ..Dealer::default()
        }
    }

    /// Registers `callee` for `procedure`.
    ///
    /// `reply` runs before any call can be routed to `callee` through this registration, so
    /// the REGISTERED it queues reaches the callee before any INVOCATION.
    pub(crate) fn register(
        &self,
        callee: &SessionHandle,
        procedure: &Uri,
        o: RegisterOptions,
        reply: impl FnOnce(Id),
    ) -> Result<Registered, RegisterError> {
        let me = Callee {
            session: callee.clone(),
            disclose_caller: o.disclose_caller,
        };
        if o.policy == MatchPolicy::Exact {
            // The entry's shard lock serialises every change to this procedure.
            return match self.exact.entry(procedure.clone()) {
                Entry::Occupied(mut e) => {
                    let placed = self.place(Some(e.get().clone()), me, procedure, o, reply)?;
                    if let Some(reg) = placed.created {
                        e.insert(reg);
                    }
                    Ok(placed.registered)
                }
                Entry::Vacant(v) => {
                    let placed = self.place(None, me, procedure, o, reply)?;
                    if let Some(reg) = placed.created {
                        v.insert(reg);
                    }
                    Ok(placed.registered)
                }
            };
        }
        let mut table = lock(&self.patterns);
        let key = (o.policy, procedure.clone());
        let existing = table.get(&key).cloned();
        // Held across the reply (a few µs): a CALL that REGISTERED prompts waits for the
        // insert instead of missing it.
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        self.has_patterns.store(true, Ordering::Release);
        let placed = self.place(existing, me, procedure, o, reply);
        if let Ok(Placed {
            created: Some(reg), ..
        }) = &placed
        {
            table.insert(key, reg.clone());
            index.insert(reg.clone());
        }
        self.has_patterns
            .store(!table.is_empty(), Ordering::Release);
        Ok(placed?.registered)
    }

    /// Joins `existing`, or creates a registration (returned, for the caller to store).
    /// Runs under the (URI, match) slot's lock.
    fn place(
        &self,
        existing: Option<Arc<Registration>>,
        me: Callee,
        procedure: &Uri,
        o: RegisterOptions,
        reply: impl FnOnce(Id),
    ) -> Result<Placed, RegisterError> {
        let mut evicted = Vec::new();
        if let Some(reg) = existing {
            if o.force {
                let old =
                    std::mem::take(&mut *reg.callees.write().unwrap_or_else(|e| e.into_inner()));
                evicted = old.into_iter().map(|c| (c.session, reg.id)).collect();
                self.by_id.remove(&reg.id);
            } else if reg.invoke == InvokePolicy::Single {
                return Err(RegisterError::AlreadyExists);
            } else if reg.invoke != o.invoke {
                return Err(RegisterError::DifferentPolicy(reg.invoke));
            } else {
                let mut callees = reg.callees.write().unwrap_or_else(|e| e.into_inner());
                if callees.iter().any(|c| c.session.id() == me.session.id()) {
                    return Err(RegisterError::AlreadyExists);
                }
                // Under the write lock: no call can pick this callee before REGISTERED.
                reply(reg.id);
                callees.push(me);
                return Ok(Placed {
                    registered: Registered {
                        id: reg.id,
                        evicted,
                        created: false,
                    },
                    created: None,
                });
            }
        }
        let mut attempt = 0;
        let reg = loop {
            let id = match &self.stable_ids {
                Some(realm) if attempt < 4 => {
                    crate::stable_ids::stable_id(realm, b"r", o.policy, procedure.as_str(), attempt)
                }
                _ => Id::random(),
            };
            attempt += 1;
            if let dashmap::Entry::Vacant(v) = self.by_id.entry(id) {
                let reg = Arc::new(Registration::new(id, procedure.clone(), o.policy, o.invoke));
                v.insert(reg.clone());
                break reg;
            }
        };
        // Not reachable by any CALL until the caller stores it, after this reply.
        reply(reg.id);
        reg.callees
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(me);
        Ok(Placed {
            registered: Registered {
                id: reg.id,
                evicted,
                created: true,
            },
            created: Some(reg),
        })
    }

    /// Removes `callee` from registration `id`; the last callee deletes the registration
    /// (`Ok(true)`).
    pub(crate) fn unregister(&self, callee: Id, id: Id) -> Result<bool, NoSuchRegistration> {
        let reg = self
            .by_id
            .get(&id)
            .map(|r| r.clone())
            .ok_or(NoSuchRegistration)?;
        if reg.policy == MatchPolicy::Exact {
            let Entry::Occupied(e) = self.exact.entry(reg.uri.clone()) else {
                return Err(NoSuchRegistration);
            };
            if e.get().id != id {
                return Err(NoSuchRegistration);
            }
            let deleted = reg.remove_callee(callee)?;
            if deleted {
                e.remove();
                self.by_id.remove(&id);
            }
            return Ok(deleted);
        }
        let mut table = lock(&self.patterns);
        let key = (reg.policy, reg.uri.clone());
        if table.get(&key).is_none_or(|r| r.id != id) {
            return Err(NoSuchRegistration);
        }
        let deleted = reg.remove_callee(callee)?;
        if deleted {
            table.remove(&key);
            self.by_id.remove(&id);
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.remove(reg.policy, &reg.uri);
            self.has_patterns
                .store(!table.is_empty(), Ordering::Release);
        }
        Ok(deleted)
    }

    /// (registrations, exact and pattern procedures): for [`crate::TableSizes`].
    pub(crate) fn table_sizes(&self) -> (usize, usize) {
        let patterns = self.patterns.lock().map_or(0, |p| p.len());
        (self.by_id.len(), self.exact.len() + patterns)
    }

    /// Every registration (meta API).
    pub(crate) fn registrations(&self) -> Vec<Arc<Registration>> {
        self.by_id.iter().map(|e| e.value().clone()).collect()
    }

    /// The registration with this id (meta API).
    pub(crate) fn registration(&self, id: Id) -> Option<Arc<Registration>> {
        self.by_id.get(&id).map(|r| r.clone())
    }

    /// The registration for exactly `(procedure, policy)` (meta API `lookup`).
    pub(crate) fn lookup_exactly(
        &self,
        procedure: &Uri,
        policy: MatchPolicy,
    ) -> Option<Arc<Registration>> {
        if policy == MatchPolicy::Exact {
            return self.exact.get(procedure).map(|r| r.clone());
        }
        lock(&self.patterns)
            .get(&(policy, procedure.clone()))
            .cloned()
    }

    /// The registration that handles a call to `procedure`: exact, then longest prefix, then
    /// the best wildcard (ADV-07).
    pub(crate) fn lookup(&self, procedure: &Uri) -> Option<Arc<Registration>> {
        if let Some(r) = self.exact.get(procedure) {
            return Some(r.clone());
        }
        if !self.has_patterns.load(Ordering::Acquire) {
            return None;
        }
        read(&self.index).lookup(procedure)
    }
}

/// The reason in a revocation UNREGISTERED ([AB]/[CB]).
const UNREGISTERED_REASON: &str = "wamp.error.unregistered";

/// Tells `callee`, evicted from `registration` by a `force_reregister`, with an
/// UNREGISTERED (ADV-11: only a callee that announced `registration_revocation`).
pub(crate) fn revoke(callee: &SessionHandle, registration: Id) {
    if !callee
        .shared()
        .features
        .has(PeerFeatures::CALLEE_REGISTRATION_REVOCATION)
    {
        return;
    }
    let details = wamp_proto::options::dict([
        ("registration", registration.get().into()),
        ("reason", UNREGISTERED_REASON.into()),
    ]);
    callee.send(
        &Unregistered {
            request: 0,
            details: Some(details),
        }
        .into(),
    );
}

/// The dealer features announced in WELCOME: only those that really work.
///
/// Not announced: `call_trustlevels` (no trust-level configuration yet), `call_reroute`,
/// `sharded_registration`, and the meta APIs.
pub(crate) fn features() -> Dict {
    [
        "call_canceling",
        "call_timeout",
        "caller_identification",
        "pattern_based_registration",
        "progressive_call_invocations",
        "progressive_call_results",
        "registration_revocation",
        "shared_registration",
    ]
    .into_iter()
    .map(|f| (f.to_owned(), Value::Bool(true)))
    .collect()
}
