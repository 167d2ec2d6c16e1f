//! One connection's session: the state machine on the reader task.
//!
//! The reader decodes each frame, checks it against the session state and routes it inline
//! against the realm's shared tables; replies and routed messages go, already encoded, into
//! the target sessions' bounded outbound queues, drained by each connection's writer task.

pub(crate) mod features;
pub(crate) mod handle;
mod handlers;
mod meta;
pub(crate) mod outbound;
mod pubsub;
mod rpc;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wamp_proto::message::{Abort, Goodbye};
use wamp_proto::options::dict;
use wamp_proto::{uris, Id, Message, Payload, Serializer, Uri, Value};

use crate::realm::Realm;
use crate::server::RouterShared;
use handle::SessionHandle;
use outbound::{encode_frame, run_writer, Outgoing};

/// Where a session is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Transport open, waiting for HELLO.
    AwaitHello,
    /// Joined a realm.
    Established,
    /// The router sent GOODBYE and waits for the reply.
    ShuttingDown,
}

/// What the reader does after a message.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Close the transport (after what is queued).
    Close,
}

/// The reader task's view of its session.
struct Session {
    serializer: Serializer,
    peer: SocketAddr,
    router: Arc<RouterShared>,
    tx: mpsc::Sender<Outgoing>,
    kill: CancellationToken,
    state: State,
    joined: Option<Joined>,
}

/// Everything that exists once the session has joined a realm.
struct Joined {
    handle: SessionHandle,
    realm: Arc<Realm>,
    subscriptions: HashSet<Id>,
    registrations: HashSet<Id>,
}

/// Runs a connection whose WebSocket handshake is done, until it closes.
pub(crate) async fn run<S>(
    ws: S,
    serializer: Serializer,
    peer: SocketAddr,
    router: Arc<RouterShared>,
) where
    S: Stream<Item = Result<WsMessage, WsError>>
        + Sink<WsMessage, Error = WsError>
        + Send
        + 'static,
{
    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::channel(router.options.outbound_queue);
    let kill = CancellationToken::new();
    let close_timeout = Duration::from_millis(router.options.goodbye_timeout_ms);
    let writer = router
        .tracker
        .spawn(run_writer(sink, rx, kill.clone(), close_timeout));
    let shutdown = router.shutdown.clone();
    let mut s = Session {
        serializer,
        peer,
        router,
        tx,
        kill: kill.clone(),
        state: State::AwaitHello,
        joined: None,
    };
    // Created once and polled by reference: building these futures (and a timer) for
    // every message showed up in profiles.
    let kill_signal = kill.cancelled();
    let shutdown_signal = shutdown.cancelled();
    let deadline = tokio::time::sleep(Duration::from_millis(s.router.options.handshake_timeout_ms));
    tokio::pin!(kill_signal, shutdown_signal, deadline);
    let mut deadline_armed = true;
    let mut close_code = CloseCode::Normal;
    loop {
        let item = tokio::select! {
            biased;
            () = &mut kill_signal => break,
            () = &mut shutdown_signal, if s.state != State::ShuttingDown => {
                if s.state == State::AwaitHello {
                    break;
                }
                s.send_goodbye(&Goodbye {
                    details: dict([("message", "the router is shutting down".into())]),
                    reason: Uri::new(uris::CLOSE_SYSTEM_SHUTDOWN),
                }.into());
                s.state = State::ShuttingDown;
                deadline.as_mut().reset(Instant::now() + close_timeout);
                deadline_armed = true;
                continue;
            }
            () = &mut deadline, if deadline_armed => {
                if s.state == State::AwaitHello {
                    warn!(peer = %s.peer, "no HELLO in time; closing connection");
                }
                break;
            }
            item = stream.next() => item,
        };
        let bytes = match item {
            None => break,
            Some(Ok(WsMessage::Text(t))) => t.into(),
            Some(Ok(WsMessage::Binary(b))) => b,
            Some(Ok(WsMessage::Close(_))) => break,
            Some(Ok(_)) => continue,
            Some(Err(WsError::Capacity(e))) => {
                warn!(peer = %s.peer, session = ?s.session_id(), cause = %e, "message too large; closing connection");
                if matches!(e, CapacityError::MessageTooLong { .. }) {
                    close_code = CloseCode::Size;
                }
                break;
            }
            Some(Err(e)) => {
                debug!(peer = %s.peer, cause = %e, "transport error");
                break;
            }
        };
        let msg = match s.serializer.decode_shared(&bytes) {
            Ok(m) => m,
            Err(e) => {
                s.protocol_violation(&e.to_string());
                break;
            }
        };
        if s.handle(msg) == Flow::Close {
            break;
        }
        if s.state == State::Established {
            deadline_armed = false;
        }
    }
    s.leave();
    // Everything queued before this is still written; then the writer closes the socket.
    let _ = s.tx.try_send(Outgoing::Close(close_code, ""));
    drop(s);
    let _ = writer.await;
}

impl Session {
    fn session_id(&self) -> Option<Id> {
        self.joined.as_ref().map(|j| j.handle.id())
    }

    /// Queues the router's GOODBYE; nothing else is sent to the peer after it.
    fn send_goodbye(&self, msg: &Message) {
        match &self.joined {
            Some(j) => j.handle.send_goodbye(msg),
            None => self.send(msg),
        }
    }

    /// Queues a message to this session's own peer.
    fn send(&self, msg: &Message) {
        if let Some(j) = &self.joined {
            j.handle.send(msg);
            return;
        }
        match encode_frame(self.serializer, msg) {
            Ok(f) => {
                if self.tx.try_send(Outgoing::Frame(f)).is_err() {
                    self.kill.cancel();
                }
            }
            Err(e) => warn!(cause = %e, "cannot encode reply"),
        }
    }

    /// Answers a protocol violation: ABORT with the reason, then the caller closes.
    fn protocol_violation(&mut self, why: &str) {
        warn!(peer = %self.peer, session = ?self.session_id(), why, "protocol violation; aborting session");
        self.send(&abort(uris::PROTOCOL_VIOLATION, why));
    }

    fn handle(&mut self, msg: Message) -> Flow {
        match (self.state, msg) {
            (State::AwaitHello, Message::Hello(h)) => self.on_hello(h),
            (State::AwaitHello, Message::Abort(_)) => Flow::Close,
            (State::AwaitHello, m) => {
                self.protocol_violation(&format!("expected HELLO, got {}", m.name()));
                Flow::Close
            }
            (State::ShuttingDown, Message::Goodbye(_) | Message::Abort(_)) => Flow::Close,
            (State::ShuttingDown, _) => Flow::Continue,
            (State::Established, m) => self.on_established(m),
        }
    }

    fn on_established(&mut self, msg: Message) -> Flow {
        let Some(j) = &mut self.joined else {
            return Flow::Close;
        };
        match msg {
            Message::Goodbye(_) => {
                j.handle.send_goodbye(
                    &Goodbye {
                        details: Default::default(),
                        reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
                    }
                    .into(),
                );
                return Flow::Close;
            }
            Message::Abort(a) => {
                info!(session = %j.handle.id(), reason = %a.reason, "client aborted session");
                return Flow::Close;
            }
            Message::Publish(m) => pubsub::publish(j, m),
            Message::Subscribe(m) => pubsub::subscribe(j, m),
            Message::Unsubscribe(m) => pubsub::unsubscribe(j, m),
            Message::Call(m) if meta::is_meta_procedure(&m.procedure) => meta::call(j, m),
            Message::Call(m) => {
                if let Err(why) = rpc::call(j, m) {
                    self.protocol_violation(&why);
                    return Flow::Close;
                }
            }
            Message::Register(m) => rpc::register(j, m),
            Message::Unregister(m) => rpc::unregister(j, m),
            Message::Yield(m) => {
                if let Err(why) = rpc::on_yield(j, m) {
                    self.protocol_violation(&why);
                    return Flow::Close;
                }
            }
            Message::Error(m) => {
                if let Err(why) = rpc::on_error(j, m) {
                    self.protocol_violation(&why);
                    return Flow::Close;
                }
            }
            Message::Cancel(m) => {
                if let Err(why) = rpc::cancel(j, m) {
                    self.protocol_violation(&why);
                    return Flow::Close;
                }
            }
            m => {
                let why = if m.is_router_only() {
                    format!("{} may only be sent by a router", m.name())
                } else {
                    format!("{} is not valid on an established session", m.name())
                };
                self.protocol_violation(&why);
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    fn on_hello(&mut self, hello: wamp_proto::message::Hello) -> Flow {
        if let Err(why) = check_roles(&hello.details) {
            self.protocol_violation(&why);
            return Flow::Close;
        }
        let Some(realm) = self.router.realms.get(hello.realm.as_str()).cloned() else {
            warn!(peer = %self.peer, realm = %hello.realm, "HELLO for unknown realm; refused");
            self.send(&abort(
                uris::NO_SUCH_REALM,
                &format!("no realm `{}` on this router", hello.realm),
            ));
            return Flow::Close;
        };
        if !realm.anonymous {
            warn!(peer = %self.peer, realm = %realm.name, "anonymous join refused");
            self.send(&abort(
                uris::NOT_AUTHORIZED,
                "anonymous access is disabled on this realm",
            ));
            return Flow::Close;
        }
        let id = self.router.new_session_id();
        let authid: Arc<str> = Arc::from(format!("anonymous-{id}"));
        let authrole: Arc<str> = Arc::from("anonymous");
        let handle = SessionHandle::new(
            id,
            self.serializer,
            authid.clone(),
            authrole.clone(),
            self.tx.clone(),
            self.kill.clone(),
            features::PeerFeatures::from_hello(&hello.details),
        );
        realm.sessions.insert(id, handle.clone());
        let details = dict([
            ("realm", realm.name.as_str().into()),
            ("authid", (*authid).into()),
            ("authrole", (*authrole).into()),
            ("authmethod", "anonymous".into()),
            ("authprovider", "static".into()),
            ("roles", router_roles()),
            (
                "agent",
                concat!("wamp-router-rs/", env!("CARGO_PKG_VERSION")).into(),
            ),
        ]);
        handle.send(
            &wamp_proto::message::Welcome {
                session: id,
                details,
            }
            .into(),
        );
        info!(session = %id, realm = %realm.name, peer = %self.peer, serializer = self.serializer.name(), %authid, "session joined");
        self.joined = Some(Joined {
            handle,
            realm,
            subscriptions: HashSet::new(),
            registrations: HashSet::new(),
        });
        self.state = State::Established;
        Flow::Continue
    }

    /// Removes everything the session owns; callers waiting on it get an ERROR at once.
    fn leave(&mut self) {
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
        rpc::fail_pending_invocations(&j.handle);
        rpc::forget_pending_calls(&j.handle);
        self.router.session_ids.remove(&id);
        match j.handle.kill_reason() {
            Some(reason) => info!(session = %id, realm = %j.realm.name, reason, "session left"),
            None => info!(session = %id, realm = %j.realm.name, "session left"),
        }
    }
}

/// A safety net: should the reader task ever panic, the session still leaves its realm
/// (its registrations, subscriptions and pending calls are cleaned up). `leave` is idempotent.
impl Drop for Session {
    fn drop(&mut self) {
        self.leave();
    }
}

/// `ABORT` with a reason URI and a human-readable message (always 3 elements).
fn abort(reason: &str, message: &str) -> Message {
    Abort {
        details: dict([("message", message.into())]),
        reason: Uri::new(reason),
        payload: Payload::default(),
    }
    .into()
}

/// Validates HELLO.Details.roles: a non-empty dict of known client roles.
fn check_roles(details: &wamp_proto::Dict) -> Result<(), String> {
    let roles = details
        .get("roles")
        .and_then(Value::as_dict)
        .ok_or("HELLO.Details.roles must be a dict")?;
    if roles.is_empty() {
        return Err("HELLO.Details.roles must announce at least one role".into());
    }
    for (name, role) in roles {
        if !matches!(
            name.as_str(),
            "publisher" | "subscriber" | "caller" | "callee"
        ) {
            return Err(format!("unknown client role `{name}` in HELLO"));
        }
        if role.as_dict().is_none() {
            return Err(format!("role `{name}` must be a dict"));
        }
    }
    Ok(())
}

/// The router's roles for WELCOME: only the features that really work.
fn router_roles() -> Value {
    let role = |features| Value::Dict(dict([("features", Value::Dict(features))]));
    Value::Dict(dict([
        ("broker", role(crate::broker::features())),
        ("dealer", role(crate::dealer::features())),
    ]))
}
