//! The session core: the WAMP state machine of one transport, without I/O.
//!
//! It takes decoded messages and answers by queueing frames in its outbox (the driver writes
//! them) and by returning a [`Flow`]: go on, or close with a WAMP-level [`CloseReason`] that
//! the framing maps to its own close. It knows nothing of sockets or framing.
//!
//! States: `AwaitHello` → (`Authenticating` →) `Established` → `Closing`. After the GOODBYE
//! handshake a client started, the core returns to `AwaitHello` with a fresh outbox, so the
//! same transport can carry a new session (the spec allows it).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{info, warn};
use wamp_proto::message::{code, Goodbye};
use wamp_proto::options::dict;
use wamp_proto::{uris, Id, Message, Serializer, Uri};

use std::time::Duration;

use std::task::{ready, Context, Poll};

use super::hello::{Authenticated, Greeted, PendingJoin};
use super::{hello, pubsub, rpc, CloseReason};
use crate::auth::roles::{Action, Grant, Role};
use crate::broker::batch;
use crate::config::AuthMethod;
use crate::dealer;
use crate::error::Refusal;
use crate::meta;
use crate::peer::{encode_frame, Outbox, Refused, SessionHandle, Wire};
use crate::realm::Realm;
use crate::shared::RouterShared;

/// Where a session is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Transport open, waiting for HELLO.
    AwaitHello,
    /// HELLO answered with a CHALLENGE: only AUTHENTICATE and ABORT are valid. (An
    /// asynchronous authenticator would wait here too; anonymous joins skip this state.)
    Authenticating,
    /// Joined a realm.
    Established,
    /// The router sent GOODBYE and waits for the reply; the transport closes after it.
    Closing,
    /// The client sent GOODBYE; its reply waits until the cluster registry took this
    /// node's share of its registrations back (`leaving.rs`). Other messages are ignored.
    Leaving,
}

/// What the driver does after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Close the transport after what is queued.
    Close(CloseReason),
}

/// The timer the current state runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// No timer (an established session).
    None,
    /// HELLO (and authentication) must complete in `handshake_timeout_ms`.
    Hello,
    /// The GOODBYE reply must come within `goodbye_timeout_ms`.
    Goodbye,
}

/// What the connection tells the session about its transport (logs, and later the meta API).
#[derive(Debug)]
pub(crate) struct TransportInfo {
    /// `websocket`, `rawsocket` or `longpoll`.
    pub(crate) kind: &'static str,
    /// How the connection frames messages (fan-out batches are framed ahead for it).
    pub(crate) wire: Wire,
    /// The peer: `tcp:ADDR` or `unix` (shared with the session's meta description).
    pub(crate) peer: Arc<str>,
    /// The longest frame the peer accepts.
    pub(crate) max_frame: usize,
    /// The peer's IP address (none for a Unix socket), for slowing down its failed logins.
    pub(crate) ip: Option<std::net::IpAddr>,
    /// The authentication methods this transport allows (`None`: all the realm allows).
    pub(crate) auth_methods: Option<Arc<[AuthMethod]>>,
    /// The verified TLS client certificate's subject CN, if the client sent one.
    pub(crate) client_cn: Option<String>,
    /// Keep-alive pings (a zero interval: none).
    pub(crate) keepalive: KeepAlive,
}

/// Keep-alive: a peer silent for `interval` is pinged; silent `timeout` longer, it is closed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeepAlive {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// Everything that exists once the session has joined a realm.
pub(crate) struct Joined {
    pub(crate) handle: SessionHandle,
    pub(crate) realm: Arc<Realm>,
    /// What the session's authrole may do.
    pub(crate) role: Arc<Role>,
    /// (foldhash: an 8-byte hasher state instead of SipHash's 16, in every session's task)
    pub(crate) subscriptions: HashSet<Id, crate::peer::FastHash>,
    pub(crate) registrations: HashSet<Id, crate::peer::FastHash>,
    /// What to publish when the session goes away (allocated on first use: most sessions
    /// have none, and every byte here is in each connection's task).
    pub(crate) testaments: Option<Box<meta::Testaments>>,
    /// Realm `pause_publishers`: a subscriber this session's last PUBLISH left over its
    /// soft bound; nothing more is read from this session until it drains.
    pub(crate) paused_by: Option<SessionHandle>,
    /// Requests whose answer waits for the cluster (a first subscription's NATS interest, a
    /// registration's claim, ...), in arrival order; boxed, since most sessions never
    /// have one (8 bytes in every connection's task instead of a `VecDeque`'s 32).
    #[allow(clippy::box_collection)]
    pub(crate) deferred: Option<Box<VecDeque<super::deferred::Deferred>>>,
}

impl Joined {
    /// Flushes this thread's fan-out batch before the session is sent something that must
    /// follow the events it published (see [`SessionCore::fanned_out`]).
    pub(super) fn flush_fanout(&mut self) {
        if let Some(s) = batch::flush() {
            self.paused_by.get_or_insert(s);
        }
    }

    /// Re-reads the session's role if a reload replaced the realm's roles since: one plain
    /// atomic load per action otherwise (no per-session state: the role knows its epoch).
    fn refresh_role(&mut self) {
        if self.role.epoch() != self.realm.roles_epoch() {
            self.role = self.realm.roles().role(&self.handle.shared().authrole);
        }
    }
}

/// One transport's session state machine.
pub(crate) struct SessionCore {
    pub(super) serializer: Serializer,
    pub(super) transport: Arc<TransportInfo>,
    pub(super) router: Arc<RouterShared>,
    outbox: Arc<Outbox>,
    state: State,
    pub(super) joined: Option<Joined>,
    /// The HELLO being authenticated.
    pending: Option<Box<PendingJoin>>,
    /// Milliseconds to hold the closing answer (repeated authentication failures); a `u32`
    /// keeps every connection's task small.
    close_delay_ms: u32,
}

impl SessionCore {
    pub(crate) fn new(
        serializer: Serializer,
        transport: Arc<TransportInfo>,
        router: Arc<RouterShared>,
    ) -> SessionCore {
        SessionCore {
            serializer,
            outbox: Arc::new(Outbox::new(router.outbound.clone())),
            transport,
            router,
            state: State::AwaitHello,
            joined: None,
            pending: None,
            close_delay_ms: 0,
        }
    }

    /// How long the driver holds the closing answer (an ABORT after failed authentication).
    pub(crate) fn close_delay(&self) -> Duration {
        Duration::from_millis(self.close_delay_ms.into())
    }

    /// The frames waiting for the transport; replaced when a new session starts on it.
    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The timer the driver must run now.
    pub(crate) fn deadline(&self) -> Deadline {
        match self.state {
            State::AwaitHello | State::Authenticating => Deadline::Hello,
            State::Established | State::Leaving => Deadline::None,
            State::Closing => Deadline::Goodbye,
        }
    }

    /// Whether reading must wait for a subscriber to drain its backlog (realm
    /// `pause_publishers`); if so, `waker` is woken when it has, or is closed.
    pub(crate) fn publisher_paused(&mut self, waker: &std::task::Waker) -> bool {
        let Some(j) = &mut self.joined else {
            return false;
        };
        match &j.paused_by {
            Some(s) if s.hold_publisher(waker) => true,
            Some(_) => {
                j.paused_by = None;
                false
            }
            None => false,
        }
    }

    /// After a fan-out batch was flushed: under `pause_publishers`, the subscriber it left
    /// over its soft bound pauses this publisher.
    pub(crate) fn fanned_out(&mut self, over_bound: Option<SessionHandle>) {
        if let (Some(j), Some(s)) = (&mut self.joined, over_bound) {
            j.paused_by.get_or_insert(s);
        }
    }

    /// Whether the session is a paused publisher (see [`SessionCore::publisher_paused`]).
    pub(crate) fn is_paused(&self) -> bool {
        self.joined.as_ref().is_some_and(|j| j.paused_by.is_some())
    }

    pub(crate) fn session_id(&self) -> Option<Id> {
        self.joined.as_ref().map(|j| j.handle.id())
    }

    /// Decodes and handles one WAMP message.
    pub(crate) fn on_frame(&mut self, bytes: &Bytes) -> Flow {
        match self.serializer.decode_shared(bytes) {
            Ok(msg) => {
                self.router.metrics.received(msg.code(), bytes.len());
                self.on_message(msg)
            }
            Err(e) => self.protocol_violation(&e.to_string()),
        }
    }

    /// The current state's timer ran out.
    pub(crate) fn on_deadline(&mut self) -> Flow {
        if matches!(self.state, State::AwaitHello | State::Authenticating) {
            self.router.metrics.limit_hit("handshake_timeout_ms");
            warn!(peer = %self.transport.peer, transport = self.transport.kind, "no HELLO in time; closing connection");
        }
        Flow::Close(CloseReason::Normal)
    }

    /// The router is shutting down: GOODBYE `system_shutdown` to a joined session (the
    /// driver then waits for the reply under [`Deadline::Goodbye`]), a plain close otherwise.
    pub(crate) fn on_shutdown(&mut self) -> Flow {
        match self.state {
            State::Established => {
                self.send_goodbye(uris::CLOSE_SYSTEM_SHUTDOWN, "the router is shutting down");
                self.state = State::Closing;
                Flow::Continue
            }
            State::Closing | State::Leaving => Flow::Continue,
            State::AwaitHello | State::Authenticating => Flow::Close(CloseReason::Normal),
        }
    }

    /// Someone ended this session (meta API kill: its GOODBYE is queued): wait for the reply
    /// like at shutdown, then close.
    pub(crate) fn on_ended(&mut self) {
        if self.state == State::Established {
            self.state = State::Closing;
        }
    }

    fn send_goodbye(&self, reason: &str, message: &str) {
        let msg = Goodbye {
            details: dict([("message", message.into())]),
            reason: Uri::new(reason),
        }
        .into();
        match &self.joined {
            Some(j) => j.handle.send_goodbye(&msg),
            None => self.send(&msg),
        }
    }

    /// Queues a message to this session's own peer.
    pub(super) fn send(&self, msg: &Message) {
        if let Some(j) = &self.joined {
            j.handle.send(msg);
            return;
        }
        match encode_frame(self.serializer, msg) {
            Ok(f) => {
                self.router.metrics.sent_frame(msg.code(), f.len());
                if self.outbox.push(f) == Err(Refused::OverCap) {
                    self.outbox
                        .kill("slow consumer: outbound backlog at its cap");
                }
            }
            Err(e) => warn!(cause = %e, "cannot encode reply"),
        }
    }

    /// Answers a protocol violation with ABORT; the transport then closes.
    pub(super) fn protocol_violation(&mut self, why: &str) -> Flow {
        let j = self.joined.as_ref();
        let realm = j.map(|j| j.realm.name.as_str());
        let authid = j.map(|j| &*j.handle.shared().authid);
        warn!(peer = %self.transport.peer, session = ?self.session_id(), realm, authid, why, "protocol violation; aborting session");
        self.send(&Refusal::violation(why).to_abort());
        Flow::Close(CloseReason::ProtocolViolation)
    }

    /// Handles one decoded message in the current state.
    pub(crate) fn on_message(&mut self, msg: Message) -> Flow {
        // What this session published so far reaches its subscribers before anything its
        // next message causes (an INVOCATION, a meta event, an answer to itself).
        if !matches!(msg, Message::Publish(_)) {
            self.fanned_out(batch::flush());
        }
        match (self.state, msg) {
            (State::AwaitHello, Message::Hello(h)) => match hello::hello(self, h) {
                Ok(Greeted::Joined(joined)) => self.established(joined),
                Ok(Greeted::Challenged(pending)) => {
                    self.pending = Some(pending);
                    self.state = State::Authenticating;
                    Flow::Continue
                }
                // Unknown principals wait like wrong credentials do: no timing oracle.
                Err(refusal) if refusal.uri == uris::NO_SUCH_PRINCIPAL => {
                    let delay = self.router.penalties.probe(self.transport.ip);
                    self.close_delay_ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
                    self.refuse_join(refusal)
                }
                Err(refusal) => self.refuse_join(refusal),
            },
            (State::Authenticating, Message::Authenticate(a)) => {
                let Some(pending) = self.pending.take() else {
                    return Flow::Close(CloseReason::Normal);
                };
                match hello::authenticate(self, pending, a) {
                    Ok(Authenticated::Joined(joined)) => self.established(joined),
                    Ok(Authenticated::Checking(pending)) => {
                        self.pending = Some(pending);
                        Flow::Continue
                    }
                    Err(refusal) => self.authentication_failed(refusal),
                }
            }
            (State::AwaitHello | State::Authenticating, Message::Abort(_)) => {
                Flow::Close(CloseReason::Normal)
            }
            (State::AwaitHello, m) => {
                self.protocol_violation(&format!("expected HELLO, got {}", m.name()))
            }
            (State::Authenticating, m) => {
                self.protocol_violation(&format!("expected AUTHENTICATE, got {}", m.name()))
            }
            (State::Closing, Message::Goodbye(_) | Message::Abort(_)) => {
                Flow::Close(CloseReason::Normal)
            }
            (State::Closing | State::Leaving, _) => Flow::Continue,
            (State::Established, m) => self.on_established(m),
        }
    }

    /// Finishes the requests whose cluster wait is over, in order; the driver calls it each
    /// round.
    pub(crate) fn poll_deferred(&mut self, cx: &mut Context<'_>) {
        if let Some(j) = &mut self.joined {
            super::deferred::poll(j, cx);
            if self.state == State::Leaving && j.deferred.is_none() {
                self.goodbye_and_out();
            }
        }
    }

    /// Polls an authentication check that runs off the executor (a hashed ticket): the
    /// driver calls it each round; `Pending` when none runs.
    pub(crate) fn poll_authentication(&mut self, cx: &mut Context<'_>) -> Poll<Flow> {
        let Some(check) = self.pending.as_mut().and_then(|p| p.check()) else {
            return Poll::Pending;
        };
        let result = ready!(check.as_mut().poll(cx));
        let Some(p) = self.pending.take() else {
            return Poll::Pending;
        };
        Poll::Ready(match hello::done(self, *p, result) {
            Ok(joined) => self.established(joined),
            Err(refusal) => self.authentication_failed(refusal),
        })
    }

    fn authentication_failed(&mut self, refusal: Refusal) -> Flow {
        self.router.metrics.auth_failure();
        let delay = self.router.penalties.fail(self.transport.ip);
        self.close_delay_ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
        self.refuse_join(refusal)
    }

    fn established(&mut self, joined: Joined) -> Flow {
        self.joined = Some(joined);
        self.state = State::Established;
        Flow::Continue
    }

    /// HELLO or AUTHENTICATE refused: ABORT (or a protocol violation), then close.
    fn refuse_join(&mut self, refusal: Refusal) -> Flow {
        if refusal.is_violation() {
            return self.protocol_violation(&refusal.message);
        }
        self.router.metrics.refused(refusal.uri);
        self.send(&refusal.to_abort());
        Flow::Close(CloseReason::Normal)
    }

    fn on_established(&mut self, msg: Message) -> Flow {
        let Some(j) = &mut self.joined else {
            return Flow::Close(CloseReason::Normal);
        };
        let request = request_of(&msg);
        // Authorization: one check per action, before any routing.
        j.refresh_role();
        let grant = match authorized(j, &msg) {
            Ok(g) => g,
            Err(refusal) => {
                if let (Some(r), Some((kind, id))) = (refusal, request) {
                    j.flush_fanout();
                    self.router.metrics.refused(r.uri);
                    j.handle.send(&r.to_error(kind, id));
                }
                return Flow::Continue;
            }
        };
        let handled = match msg {
            Message::Goodbye(_) => {
                if let Some(wait) = super::leaving::registrations_given_back(j) {
                    j.defer(wait);
                    self.state = State::Leaving;
                } else {
                    self.goodbye_and_out();
                }
                return Flow::Continue;
            }
            Message::Abort(a) => {
                info!(session = %j.handle.id(), realm = %j.realm.name, authid = %j.handle.shared().authid, reason = %a.reason, "client aborted session");
                return Flow::Close(CloseReason::Normal);
            }
            Message::Publish(m) => pubsub::publish(j, m, grant.disclose_publisher()),
            Message::Subscribe(m) => pubsub::subscribe(j, m),
            Message::Unsubscribe(m) => pubsub::unsubscribe(j, m),
            Message::Call(m) if meta::is_meta_procedure(m.procedure.as_str()) => {
                let caller = meta::Caller {
                    handle: &j.handle,
                    realm: &j.realm,
                    testaments: &mut j.testaments,
                };
                meta::call(caller, m).map(|later| {
                    if let Some(answer) = later {
                        j.defer(Box::pin(async move {
                            let answer = answer.await;
                            let done: super::deferred::Completion = Box::new(move |j| {
                                j.handle.send(&answer);
                            });
                            done
                        }));
                    }
                })
            }
            Message::Call(m) => dealer::call::call(
                &j.handle,
                &j.realm.dealer,
                j.realm.uri_check,
                m,
                grant.disclose_caller(),
            ),
            Message::Register(m) => rpc::register(j, m),
            Message::Unregister(m) => rpc::unregister(j, m),
            Message::Yield(m) => dealer::answer::on_yield(&j.handle, m),
            Message::Error(m) => dealer::answer::on_error(&j.handle, m),
            Message::Cancel(m) => dealer::answer::cancel(&j.handle, m),
            m => Err(Refusal::violation(if m.is_router_only() {
                format!("{} may only be sent by a router", m.name())
            } else {
                format!("{} is not valid on an established session", m.name())
            })),
        };
        match handled {
            Ok(()) => Flow::Continue,
            Err(r) if r.is_violation() => self.protocol_violation(&r.message),
            Err(r) => {
                if let Some((kind, id)) = request {
                    j.flush_fanout();
                    self.router.metrics.refused(r.uri);
                    j.handle.send(&r.to_error(kind, id));
                }
                Flow::Continue
            }
        }
    }

    /// The client's GOODBYE answered: the session ends, the transport stays open.
    fn goodbye_and_out(&mut self) {
        if let Some(j) = &self.joined {
            let reason = Uri::new(uris::CLOSE_GOODBYE_AND_OUT);
            let details = Default::default();
            j.handle.send_goodbye(&Goodbye { details, reason }.into());
        }
        self.rejoinable();
    }

    /// After the GOODBYE handshake: the session ends, the transport stays open for a new
    /// HELLO. What was queued (the GOODBYE reply) is written first.
    fn rejoinable(&mut self) {
        self.leave_with(false);
        self.outbox = Arc::new(Outbox::succeed(&self.outbox));
        self.state = State::AwaitHello;
    }

    /// Removes everything the session owns; callers waiting on it get an ERROR at once. Its
    /// testaments are published, then the meta events of what it held, then `on_leave`.
    /// Idempotent.
    pub(crate) fn leave(&mut self) {
        // Without a GOODBYE handshake (router shutdown excepted) the transport was lost.
        self.leave_with(!matches!(self.state, State::Closing | State::Leaving));
    }

    fn leave_with(&mut self, lost: bool) {
        if let Some(p) = self.pending.take() {
            p.release(self);
        }
        let Some(mut j) = self.joined.take() else {
            return;
        };
        let id = j.handle.id();
        let realm = &j.realm;
        realm.sessions.remove(&id);
        if let Some(testaments) = j.testaments.take() {
            meta::publish_testaments(realm, &j.handle, *testaments, lost);
            if let Some(b) = realm.backplane() {
                b.testaments(id, Vec::new());
            }
        }
        for sub in &j.subscriptions {
            if let Ok(deleted) = realm.unsubscribe(id, *sub) {
                meta::events::unsubscribed(realm, id, *sub, deleted);
            }
        }
        super::leaving::unregister_all(&j);
        dealer::answer::fail_pending_invocations(&j.handle);
        dealer::answer::forget_pending_calls(&j.handle);
        self.router.session_ids.remove(&id);
        meta::events::left(realm, &j.handle);
        let authid = &*j.handle.shared().authid;
        match j.handle.kill_reason() {
            Some(reason) => {
                info!(session = %id, realm = %realm.name, authid, reason, "session left")
            }
            None => info!(session = %id, realm = %realm.name, authid, "session left"),
        }
    }
}

/// A safety net: should the connection task ever panic, the session still leaves its realm
/// (its registrations, subscriptions and pending calls are cleaned up).
impl Drop for SessionCore {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Checks `msg` against the session's role: what the matching rule grants, or the refusal
/// (`None` for an unacknowledged PUBLISH: dropped and logged, nobody waits for an ERROR).
fn authorized(j: &Joined, msg: &Message) -> Result<Grant, Option<Refusal>> {
    let (action, uri) = match msg {
        Message::Call(m) => (Action::Call, &m.procedure),
        Message::Register(m) => (Action::Register, &m.procedure),
        Message::Publish(m) => (Action::Publish, &m.topic),
        Message::Subscribe(m) => (Action::Subscribe, &m.topic),
        _ => return Ok(Grant::default()),
    };
    let grant = j.role.grant(uri.as_str());
    if grant.allows(action) {
        return Ok(grant);
    }
    let (authid, authrole) = (&j.handle.shared().authid, &j.handle.shared().authrole);
    warn!(session = %j.handle.id(), realm = %j.realm.name, %authid, %authrole, action = action.as_str(), %uri, "not authorized");
    let acknowledged = match msg {
        Message::Publish(m) => {
            wamp_proto::options::bool_opt(&m.options, "acknowledge", false).unwrap_or(false)
        }
        _ => true,
    };
    let refusal = Refusal::new(
        uris::NOT_AUTHORIZED,
        format!("role `{authrole}` may not {} `{uri}`", action.as_str()),
    );
    Err(acknowledged.then_some(refusal))
}

/// The (type, request id) an ERROR for this message would answer.
fn request_of(msg: &Message) -> Option<(u64, Id)> {
    Some(match msg {
        Message::Publish(m) => (code::PUBLISH, m.request),
        Message::Subscribe(m) => (code::SUBSCRIBE, m.request),
        Message::Unsubscribe(m) => (code::UNSUBSCRIBE, m.request),
        Message::Call(m) => (code::CALL, m.request),
        Message::Register(m) => (code::REGISTER, m.request),
        Message::Unregister(m) => (code::UNREGISTER, m.request),
        _ => return None,
    })
}
