//! The session core: the WAMP state machine of one transport, without I/O.
//!
//! It takes decoded messages and answers by queueing frames in its outbox (the driver writes
//! them) and by returning a [`Flow`]: go on, or close with a WAMP-level [`CloseReason`] that
//! the framing maps to its own close. It knows nothing of sockets or framing.
//!
//! States: `AwaitHello` → (`Authenticating` →) `Established` → `Closing`. After the GOODBYE
//! handshake a client started, the core returns to `AwaitHello` with a fresh outbox, so the
//! same transport can carry a new session (the spec allows it).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{info, warn};
use wamp_proto::message::{code, Goodbye};
use wamp_proto::options::dict;
use wamp_proto::{uris, Id, Message, Serializer, Uri};

use super::{hello, meta, pubsub, rpc, CloseReason};
use crate::dealer;
use crate::error::Refusal;
use crate::peer::{encode_frame, Outbox, Refused, SessionHandle};
use crate::realm::Realm;
use crate::shared::RouterShared;

/// Where a session is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Transport open, waiting for HELLO.
    AwaitHello,
    /// HELLO received, authentication under way (CHALLENGE/AUTHENTICATE, or an asynchronous
    /// authenticator): only AUTHENTICATE and ABORT are valid. Entered once authentication
    /// methods exist; anonymous joins go straight to `Established`.
    #[allow(dead_code)]
    Authenticating,
    /// Joined a realm.
    Established,
    /// The router sent GOODBYE and waits for the reply; the transport closes after it.
    Closing,
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
    /// `websocket` or `rawsocket`.
    pub(crate) kind: &'static str,
    /// The peer: `tcp:ADDR` or `unix`.
    pub(crate) peer: String,
    /// The longest frame the peer accepts.
    pub(crate) max_frame: usize,
}

/// Everything that exists once the session has joined a realm.
pub(crate) struct Joined {
    pub(crate) handle: SessionHandle,
    pub(crate) realm: Arc<Realm>,
    pub(crate) subscriptions: HashSet<Id>,
    pub(crate) registrations: HashSet<Id>,
}

/// One transport's session state machine.
pub(crate) struct SessionCore {
    pub(super) serializer: Serializer,
    pub(super) transport: Arc<TransportInfo>,
    pub(super) router: Arc<RouterShared>,
    outbox: Arc<Outbox>,
    state: State,
    pub(super) joined: Option<Joined>,
}

impl SessionCore {
    pub(crate) fn new(
        serializer: Serializer,
        transport: Arc<TransportInfo>,
        router: Arc<RouterShared>,
    ) -> SessionCore {
        SessionCore {
            serializer,
            outbox: Arc::new(Outbox::new(router.options.outbound_queue)),
            transport,
            router,
            state: State::AwaitHello,
            joined: None,
        }
    }

    /// The frames waiting for the transport; replaced when a new session starts on it.
    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The timer the driver must run now.
    pub(crate) fn deadline(&self) -> Deadline {
        match self.state {
            State::AwaitHello | State::Authenticating => Deadline::Hello,
            State::Established => Deadline::None,
            State::Closing => Deadline::Goodbye,
        }
    }

    pub(crate) fn session_id(&self) -> Option<Id> {
        self.joined.as_ref().map(|j| j.handle.id())
    }

    /// Decodes and handles one WAMP message.
    pub(crate) fn on_frame(&mut self, bytes: &Bytes) -> Flow {
        match self.serializer.decode_shared(bytes) {
            Ok(msg) => self.on_message(msg),
            Err(e) => self.protocol_violation(&e.to_string()),
        }
    }

    /// The current state's timer ran out.
    pub(crate) fn on_deadline(&mut self) -> Flow {
        if matches!(self.state, State::AwaitHello | State::Authenticating) {
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
            State::Closing => Flow::Continue,
            State::AwaitHello | State::Authenticating => Flow::Close(CloseReason::Normal),
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
                if self.outbox.push(f) == Err(Refused::Full) {
                    self.outbox.kill("slow consumer: outbound queue full");
                }
            }
            Err(e) => warn!(cause = %e, "cannot encode reply"),
        }
    }

    /// Answers a protocol violation with ABORT; the transport then closes.
    pub(super) fn protocol_violation(&mut self, why: &str) -> Flow {
        warn!(peer = %self.transport.peer, session = ?self.session_id(), why, "protocol violation; aborting session");
        self.send(&Refusal::violation(why).to_abort());
        Flow::Close(CloseReason::ProtocolViolation)
    }

    /// Handles one decoded message in the current state.
    pub(crate) fn on_message(&mut self, msg: Message) -> Flow {
        match (self.state, msg) {
            (State::AwaitHello, Message::Hello(h)) => match hello::join(self, h) {
                Ok(joined) => {
                    self.joined = Some(joined);
                    self.state = State::Established;
                    Flow::Continue
                }
                Err(refusal) if refusal.is_violation() => self.protocol_violation(&refusal.message),
                Err(refusal) => {
                    self.send(&refusal.to_abort());
                    Flow::Close(CloseReason::Normal)
                }
            },
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
            (State::Closing, _) => Flow::Continue,
            (State::Established, m) => self.on_established(m),
        }
    }

    fn on_established(&mut self, msg: Message) -> Flow {
        let Some(j) = &mut self.joined else {
            return Flow::Close(CloseReason::Normal);
        };
        let request = request_of(&msg);
        let handled = match msg {
            Message::Goodbye(_) => {
                j.handle.send_goodbye(
                    &Goodbye {
                        details: Default::default(),
                        reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
                    }
                    .into(),
                );
                self.rejoinable();
                return Flow::Continue;
            }
            Message::Abort(a) => {
                info!(session = %j.handle.id(), reason = %a.reason, "client aborted session");
                return Flow::Close(CloseReason::Normal);
            }
            Message::Publish(m) => pubsub::publish(j, m),
            Message::Subscribe(m) => pubsub::subscribe(j, m),
            Message::Unsubscribe(m) => pubsub::unsubscribe(j, m),
            Message::Call(m) if meta::is_meta_procedure(&m.procedure) => meta::call(j, m),
            Message::Call(m) => {
                dealer::call::call(&j.handle, &j.realm.dealer, j.realm.uri_check, m)
            }
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
                    j.handle.send(&r.to_error(kind, id));
                }
                Flow::Continue
            }
        }
    }

    /// After the GOODBYE handshake: the session ends, the transport stays open for a new
    /// HELLO. What was queued (the GOODBYE reply) is written first.
    fn rejoinable(&mut self) {
        self.leave();
        self.outbox = Arc::new(Outbox::succeed(&self.outbox));
        self.state = State::AwaitHello;
    }

    /// Removes everything the session owns; callers waiting on it get an ERROR at once.
    /// Idempotent.
    pub(crate) fn leave(&mut self) {
        let Some(j) = self.joined.take() else {
            return;
        };
        let id = j.handle.id();
        j.realm.sessions.remove(&id);
        for sub in &j.subscriptions {
            let _ = j.realm.broker.unsubscribe(id, *sub);
        }
        for reg in &j.registrations {
            let _ = j.realm.dealer.unregister(id, *reg);
        }
        dealer::answer::fail_pending_invocations(&j.handle);
        dealer::answer::forget_pending_calls(&j.handle);
        self.router.session_ids.remove(&id);
        match j.handle.kill_reason() {
            Some(reason) => info!(session = %id, realm = %j.realm.name, reason, "session left"),
            None => info!(session = %id, realm = %j.realm.name, "session left"),
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
