//! The registration wait of the parity topology (D3: a registration is callable on other
//! nodes once the registry watch delivered it, milliseconds after REGISTERED, and routed to
//! there until the watch delivered its end, milliseconds after UNREGISTERED or GOODBYE).
//!
//! Each peer of a spread TestRouter notes what it registered (REGISTER, then REGISTERED)
//! and what it gave up (UNREGISTER, GOODBYE, dropped) in its group. Before a peer sends a
//! CALL, it checks in its own node's routing table (an in-process look, no WAMP traffic:
//! the meta API answers for the whole cluster, not for one node's table) that every
//! registration the group's other peers hold on other nodes (same realm) routes to the
//! registering session, and that none they gave up still does. Before a REGISTER, the same
//! for the group's registrations of that procedure (and match policy): then its callee
//! record follows theirs in the registry, so every node orders the callees as they were
//! registered (D6), and a claim given up is free again. The wait is bounded
//! ([`VISIBLE_BOUND`]) and gives up quietly (with a notice) rather than fail: a callee the
//! router closed is never seen.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::message::code;
use wamp_proto::{Message, Serializer, Value};

use super::{Group, NODES};
use crate::RawPeer;

/// How long a registration may take to be visible on another node before the harness
/// stops waiting for it.
const VISIBLE_BOUND: Duration = Duration::from_secs(5);

/// The pause between two checks of a registration.
const RECHECK_PAUSE: Duration = Duration::from_millis(10);

/// A registration one of the group's peers holds.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    realm: String,
    procedure: String,
    policy: String,
    /// The node it was made on.
    node: usize,
    session: u64,
    registration: u64,
    /// The nodes it is known to be visible on (gone from, once `gone`), or not waited for
    /// any more.
    seen: [bool; NODES],
    /// Given up (unregistered, or its session left): waited for until no longer listed.
    gone: bool,
}

/// A peer's place in its group.
#[derive(Debug)]
pub(crate) struct PeerLink {
    group: Arc<Group>,
    node: usize,
    realm: Option<String>,
    session: Option<u64>,
    /// REGISTER requests not answered yet: request id to (procedure, match policy).
    registering: HashMap<u64, (String, String)>,
}

/// What a message about to be sent waits for.
enum Before {
    Nothing,
    /// Every registration of the group.
    Call,
    /// The group's registrations of this procedure and match policy.
    Register(String, String),
}

impl PeerLink {
    pub(crate) fn new(group: Arc<Group>, node: usize) -> PeerLink {
        PeerLink {
            group,
            node,
            realm: None,
            session: None,
            registering: HashMap::new(),
        }
    }

    fn registrations(&self) -> std::sync::MutexGuard<'_, Vec<Registration>> {
        self.group
            .registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes what `msg` (about to be sent) changes, and what it waits for.
    fn note_sent(&mut self, msg: &Message) -> Before {
        match msg {
            Message::Hello(h) => self.realm = Some(h.realm.as_str().to_owned()),
            Message::Register(r) => {
                let policy = r.options.get("match").and_then(Value::as_str);
                let policy = policy.unwrap_or("exact").to_owned();
                let procedure = r.procedure.as_str().to_owned();
                self.registering
                    .insert(r.request.get(), (procedure.clone(), policy.clone()));
                return Before::Register(procedure, policy);
            }
            Message::Unregister(u) => {
                let (node, session) = (self.node, self.session);
                for x in self.registrations().iter_mut() {
                    if x.node == node
                        && Some(x.session) == session
                        && x.registration == u.registration.get()
                    {
                        x.give_up();
                    }
                }
            }
            Message::Goodbye(_) => self.forget_session(),
            Message::Call(_) => return Before::Call,
            _ => {}
        }
        Before::Nothing
    }

    /// Notes what a frame the router sent changes (WELCOME, REGISTERED, REGISTER errors).
    pub(crate) fn observe(&mut self, serializer: Serializer, frame: &WsMessage) {
        let m = match frame {
            WsMessage::Text(t) => serializer.decode(t.as_bytes()),
            WsMessage::Binary(b) => serializer.decode(b),
            _ => return,
        };
        match m {
            Ok(Message::Welcome(w)) => self.session = Some(w.session.get()),
            Ok(Message::Registered(r)) => {
                let (Some((procedure, policy)), Some(realm), Some(session)) = (
                    self.registering.remove(&r.request.get()),
                    self.realm.clone(),
                    self.session,
                ) else {
                    return;
                };
                let mut seen = [false; NODES];
                seen[self.node] = true;
                self.registrations().push(Registration {
                    realm,
                    procedure,
                    policy,
                    node: self.node,
                    session,
                    registration: r.registration.get(),
                    seen,
                    gone: false,
                });
            }
            Ok(Message::Error(e)) if e.request_type == code::REGISTER => {
                self.registering.remove(&e.request.get());
            }
            _ => {}
        }
    }

    fn forget_session(&mut self) {
        let (node, session) = (self.node, self.session);
        for x in self.registrations().iter_mut() {
            if x.node == node && Some(x.session) == session {
                x.give_up();
            }
        }
    }

    /// The registrations of other peers on other nodes, in this peer's realm, not yet
    /// seen on its node.
    fn unseen(&self) -> Vec<Registration> {
        let Some(realm) = &self.realm else {
            return Vec::new();
        };
        self.registrations()
            .iter()
            .filter(|x| &x.realm == realm && !x.seen[self.node] && Some(x.session) != self.session)
            .cloned()
            .collect()
    }

    fn mark_seen(&self, r: &Registration) {
        let mut all = self.registrations();
        for x in all.iter_mut() {
            if (x.node, x.session, x.registration, x.gone)
                == (r.node, r.session, r.registration, r.gone)
            {
                x.seen[self.node] = true;
            }
        }
        // Gone from every node: nothing to wait for any more.
        all.retain(|x| !(x.gone && x.seen.iter().all(|s| *s)));
    }
}

impl PeerLink {
    /// Waits until this peer's node routes to `r` (no longer, if `r.gone`), at most
    /// [`VISIBLE_BOUND`]; false if it did not in time.
    async fn wait_settled(&self, r: &Registration) -> bool {
        let table = &self.group.tables[self.node];
        let deadline = tokio::time::Instant::now() + VISIBLE_BOUND;
        loop {
            if table.routes_to(&r.realm, &r.procedure, &r.policy, r.session) != r.gone {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(RECHECK_PAUSE).await;
        }
    }
}

impl Registration {
    /// Its session gave it up: from now on waited for until other nodes no longer list it
    /// (its own node removed it at once).
    fn give_up(&mut self) {
        if !self.gone {
            self.gone = true;
            self.seen = [false; NODES];
            self.seen[self.node] = true;
        }
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.forget_session();
    }
}

impl RawPeer {
    /// The parity hook before `msg` is sent: notes it, and before a CALL (a REGISTER) waits
    /// until the group's registrations (of that procedure) settled on this peer's node.
    pub(crate) async fn spread_before_send(&mut self, msg: &Message) {
        let Some(link) = self.spread.as_mut() else {
            return;
        };
        let only = match link.note_sent(msg) {
            Before::Nothing => return,
            Before::Call => None,
            Before::Register(procedure, policy) => Some((procedure, policy)),
        };
        let concerned = |r: &Registration| {
            only.as_ref()
                .is_none_or(|(p, m)| *p == r.procedure && *m == r.policy)
        };
        let link = &*link;
        for r in link.unseen().into_iter().filter(concerned) {
            if link.wait_settled(&r).await {
                link.mark_seen(&r);
                continue;
            }
            let what = if r.gone { "still routed" } else { "not routed" };
            eprintln!(
                "parity: {} ({} match) of session {} {what} on node {} after {VISIBLE_BOUND:?}; not waiting",
                r.procedure,
                r.policy,
                r.session,
                link.node + 1
            );
            link.mark_seen(&r);
        }
    }
    /// The next frame from the socket, noted by the parity link if there is one.
    pub(crate) async fn read_socket(
        &mut self,
    ) -> Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>> {
        let next = self.ws.next().await;
        if let (Some(link), Some(Ok(f))) = (self.spread.as_mut(), &next) {
            link.observe(self.serializer, f);
        }
        next
    }
}
