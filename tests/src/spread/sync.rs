//! The registration wait of the parity topology (D3: a registration is callable on other
//! nodes once the registry watch delivered it, milliseconds after REGISTERED).
//!
//! Each peer of a spread TestRouter notes what it registered (REGISTER, then REGISTERED)
//! in its group. Before a peer sends a CALL, it checks with its own meta calls on its own
//! node that every registration the group's other peers hold on other nodes (same realm)
//! is there: `wamp.registration.lookup` finds it and `wamp.registration.list_callees`
//! names the registering session. No extra session is opened, so no meta event or count
//! changes. The harness's calls use request ids from [`HARNESS_REQUESTS`] up, and whatever
//! arrives meanwhile is kept for the test's next receive. The wait is bounded
//! ([`VISIBLE_BOUND`]) and gives up quietly (with a notice) rather than fail: a callee the
//! router closed is never seen. A realm where the peer cannot call the meta API (off, or
//! not permitted) is not waited for.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::message::{code, Call};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};

use super::{Group, NODES};
use crate::{RawPeer, WAIT};

/// The first request id of the harness's own calls (far above any a test uses).
const HARNESS_REQUESTS: u64 = 1 << 52;

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
    /// The nodes it is known to be visible on (or not waited for any more).
    seen: [bool; NODES],
}

/// A peer's place in its group.
#[derive(Debug)]
pub(crate) struct PeerLink {
    group: Arc<Group>,
    node: usize,
    realm: Option<String>,
    session: Option<u64>,
    /// Whether its HELLO announced the caller role.
    caller: bool,
    /// Whether it sent GOODBYE (then it sends no harness calls).
    leaving: bool,
    /// REGISTER requests not answered yet: request id to (procedure, match policy).
    registering: HashMap<u64, (String, String)>,
    next_request: u64,
}

/// What one check of a registration on this node found.
enum Check {
    Visible,
    NotYet,
    /// The meta API cannot be used here: the wait is given up.
    Unverifiable(String),
}

impl PeerLink {
    pub(crate) fn new(group: Arc<Group>, node: usize) -> PeerLink {
        PeerLink {
            group,
            node,
            realm: None,
            session: None,
            caller: false,
            leaving: false,
            registering: HashMap::new(),
            next_request: HARNESS_REQUESTS,
        }
    }

    fn registrations(&self) -> std::sync::MutexGuard<'_, Vec<Registration>> {
        self.group
            .registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes what `msg` (about to be sent) changes; true for a CALL to wait before.
    fn note_sent(&mut self, msg: &Message) -> bool {
        match msg {
            Message::Hello(h) => {
                self.realm = Some(h.realm.as_str().to_owned());
                self.caller = h
                    .details
                    .get("roles")
                    .and_then(Value::as_dict)
                    .is_some_and(|r| r.contains_key("caller"));
            }
            Message::Register(r) => {
                let policy = r.options.get("match").and_then(Value::as_str);
                let policy = policy.unwrap_or("exact").to_owned();
                let procedure = r.procedure.as_str().to_owned();
                self.registering
                    .insert(r.request.get(), (procedure, policy));
            }
            Message::Unregister(u) => {
                let (node, session) = (self.node, self.session);
                self.registrations().retain(|x| {
                    !(x.node == node
                        && Some(x.session) == session
                        && x.registration == u.registration.get())
                });
            }
            Message::Goodbye(_) => {
                self.leaving = true;
                self.forget_session();
            }
            Message::Call(_) => return true,
            _ => {}
        }
        false
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
        self.registrations()
            .retain(|x| !(x.node == node && Some(x.session) == session));
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
        for x in self.registrations().iter_mut() {
            if (x.node, x.session, x.registration) == (r.node, r.session, r.registration) {
                x.seen[self.node] = true;
            }
        }
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.forget_session();
    }
}

impl RawPeer {
    /// The parity hook before `msg` is sent: notes it, and before a CALL waits until the
    /// group's registrations are visible on this peer's node.
    pub(crate) async fn spread_before_send(&mut self, msg: &Message) {
        let Some(link) = self.spread.as_mut() else {
            return;
        };
        let call = link.note_sent(msg);
        if !call || link.leaving || !link.caller || link.session.is_none() {
            return;
        }
        for r in link.unseen() {
            let what = format!(
                "{} ({} match) of session {}",
                r.procedure, r.policy, r.session
            );
            let outcome = self.wait_visible(&r).await;
            let Some(link) = self.spread.as_ref() else {
                return;
            };
            match outcome {
                Check::Visible => link.mark_seen(&r),
                Check::Unverifiable(why) => {
                    eprintln!("parity: not waiting for registrations in this realm: {why}");
                    for x in link.unseen() {
                        link.mark_seen(&x);
                    }
                    return;
                }
                Check::NotYet => {
                    eprintln!(
                        "parity: {what} not visible on node {} in {VISIBLE_BOUND:?}; not waiting",
                        link.node + 1
                    );
                    link.mark_seen(&r);
                }
            }
        }
    }

    /// Checks `r` until it is visible or unverifiable, at most [`VISIBLE_BOUND`] (a loop,
    /// not [`crate::poll::poll`]: its async closure would make `send`'s future not `Send`).
    async fn wait_visible(&mut self, r: &Registration) -> Check {
        let deadline = tokio::time::Instant::now() + VISIBLE_BOUND;
        loop {
            match self.check(r).await {
                Check::NotYet if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RECHECK_PAUSE).await;
                }
                done => return done,
            }
        }
    }

    /// Whether `r` is visible on this peer's node now.
    async fn check(&mut self, r: &Registration) -> Check {
        let options = dict([("match", Value::from(r.policy.as_str()))]);
        let args = vec![Value::from(r.procedure.as_str()), Value::Dict(options)];
        let id = match self.harness_call("wamp.registration.lookup", args).await {
            Ok(args) => match args.first().and_then(Value::as_u64) {
                Some(id) => id,
                None => return Check::NotYet,
            },
            Err(e) => return Check::Unverifiable(e),
        };
        let args = vec![Value::from(id)];
        match self
            .harness_call("wamp.registration.list_callees", args)
            .await
        {
            Ok(args) => {
                let callees = args.first().and_then(Value::as_list).unwrap_or_default();
                if callees.iter().any(|c| c.as_u64() == Some(r.session)) {
                    Check::Visible
                } else {
                    Check::NotYet
                }
            }
            // Gone between the two calls: look again.
            Err(e) if e.starts_with(uris::NO_SUCH_REGISTRATION) => Check::NotYet,
            Err(e) => Check::Unverifiable(e),
        }
    }

    /// Calls `procedure` with `args` on the peer's own session and returns the RESULT's
    /// arguments, or the ERROR's URI (or why there was no answer). Other messages that
    /// arrive meanwhile are kept for the test.
    async fn harness_call(
        &mut self,
        procedure: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Value>, String> {
        let Some(link) = self.spread.as_mut() else {
            return Err("not spread".into());
        };
        link.next_request += 1;
        let request = Id::new(link.next_request).ok_or("request id out of range")?;
        let call = Call {
            request,
            options: Dict::new(),
            procedure: Uri::new(procedure),
            payload: Payload::args(args),
        };
        self.send_now(&call.into()).await;
        loop {
            let frame = match tokio::time::timeout(WAIT, self.read_socket()).await {
                Err(_) => return Err(format!("{procedure}: no answer in {WAIT:?}")),
                Ok(Some(Ok(f))) => f,
                Ok(_) => {
                    self.ended = true;
                    return Err(format!("{procedure}: the connection ended"));
                }
            };
            let answer = match &frame {
                WsMessage::Text(t) => self.serializer.decode(t.as_bytes()).ok(),
                WsMessage::Binary(b) => self.serializer.decode(b).ok(),
                _ => None,
            };
            match answer {
                Some(Message::Result(r)) if r.request == request => {
                    return Ok(r.payload.args.unwrap_or_default())
                }
                Some(Message::Error(e)) if e.request == request && e.request_type == code::CALL => {
                    return Err(format!("{}: {procedure}", e.error.as_str()))
                }
                _ => {
                    let closed = matches!(frame, WsMessage::Close(_));
                    self.inbox.push_back(frame);
                    if closed {
                        return Err(format!("{procedure}: the router closed the session"));
                    }
                }
            }
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
