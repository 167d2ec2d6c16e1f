//! One connection's session: the state machine, driven by the connection's only task.
//!
//! The task reads frames, checks each message against the session state and routes it inline
//! against the realm's shared tables; replies and routed messages go, already encoded, into
//! the target sessions' bounded outboxes. The same task writes its own outbox to the socket.

pub(crate) mod features;
pub(crate) mod handle;
mod handlers;
mod meta;
pub(crate) mod outbound;
mod pubsub;
mod rpc;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{debug, info, warn};
use wamp_proto::message::{Abort, Goodbye};
use wamp_proto::options::dict;
use wamp_proto::{uris, Id, Message, Payload, Serializer, Uri, Value};

use crate::realm::Realm;
use crate::server::RouterShared;
use crate::transport::connection::{Connection, ReadEnd};
use handle::SessionHandle;
use outbound::{encode_frame, Outbox, Refused};

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

/// What the session does after a message.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Close the transport (after what is queued).
    Close,
}

/// How the connection ends.
#[derive(Debug)]
enum End {
    /// Send a close frame with this code (after what is queued, unless killed), then, if
    /// `wait`, wait for the client's close (bounded): a peer that let a deadline pass or
    /// stopped reading is not waited for.
    Close {
        code: CloseCode,
        reason: &'static str,
        wait: bool,
    },
    /// The client sent its close frame: answer it.
    ClientClosed,
    /// The TCP connection is gone: nothing more to send.
    Gone,
}

impl End {
    fn close(code: CloseCode, reason: &'static str, wait: bool) -> End {
        End::Close { code, reason, wait }
    }
}

/// Read/write rounds per poll before the task yields to others.
const ROUNDS: usize = 32;

/// The connection task's view of its session.
struct Session {
    serializer: Serializer,
    peer: SocketAddr,
    router: Arc<RouterShared>,
    outbox: Arc<Outbox>,
    state: State,
    joined: Option<Joined>,
    /// The HELLO or GOODBYE deadline, while one is running.
    deadline: Option<Pin<Box<Sleep>>>,
}

/// Everything that exists once the session has joined a realm.
struct Joined {
    handle: SessionHandle,
    realm: Arc<Realm>,
    subscriptions: HashSet<Id>,
    registrations: HashSet<Id>,
}

/// Runs a connection whose WebSocket handshake is done, until it closes.
///
/// Built as plain values moved into one small future: an idle connection's whole task is
/// this future, so nothing is held twice in it.
pub(crate) fn run(
    io: TcpStream,
    serializer: Serializer,
    max_message: usize,
    peer: SocketAddr,
    router: Arc<RouterShared>,
) -> impl Future<Output = ()> + Send {
    let outbox = Arc::new(Outbox::new(router.options.outbound_queue));
    let handshake = Duration::from_millis(router.options.handshake_timeout_ms);
    let mut conn = Connection::new(io, serializer == Serializer::MsgPack, max_message);
    let mut shutdown = Box::pin(router.shutdown.clone().cancelled_owned());
    let mut s = Session {
        serializer,
        peer,
        router,
        outbox,
        state: State::AwaitHello,
        joined: None,
        deadline: Some(Box::pin(tokio::time::sleep(handshake))),
    };
    async move {
        let end = std::future::poll_fn(|cx| s.poll_run(cx, &mut conn, shutdown.as_mut())).await;
        drop(shutdown);
        s.leave();
        let (code, reason, wait) = match end {
            End::Gone => return,
            End::Close { code, reason, wait } => (code, reason, wait),
            End::ClientClosed => (CloseCode::Normal, "", false),
        };
        let close_timeout = Duration::from_millis(s.router.options.goodbye_timeout_ms);
        let outbox = s.outbox.clone();
        drop(s);
        // Boxed: the closing steps' state would otherwise enlarge every connection's task.
        Box::pin(conn.close(&outbox, code, reason, wait, close_timeout)).await;
    }
}

impl Session {
    /// Reads and handles messages and writes the outbox until the connection should end.
    fn poll_run(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
        mut shutdown: Pin<&mut WaitForCancellationFutureOwned>,
    ) -> Poll<End> {
        if self.state != State::ShuttingDown && shutdown.as_mut().poll(cx).is_ready() {
            if self.state == State::AwaitHello {
                return Poll::Ready(End::close(CloseCode::Normal, "", false));
            }
            self.send_goodbye(
                &Goodbye {
                    details: dict([("message", "the router is shutting down".into())]),
                    reason: Uri::new(uris::CLOSE_SYSTEM_SHUTDOWN),
                }
                .into(),
            );
            self.state = State::ShuttingDown;
            let close = Duration::from_millis(self.router.options.goodbye_timeout_ms);
            self.deadline = Some(Box::pin(tokio::time::sleep(close)));
        }
        if let Some(d) = &mut self.deadline {
            if d.as_mut().poll(cx).is_ready() {
                if self.state == State::AwaitHello {
                    warn!(peer = %self.peer, "no HELLO in time; closing connection");
                }
                return Poll::Ready(End::close(CloseCode::Normal, "", false));
            }
        }
        for _ in 0..ROUNDS {
            if self.outbox.is_killed() {
                return Poll::Ready(End::close(CloseCode::Policy, "slow consumer", false));
            }
            let flushed = match conn.poll_flush(cx, &self.outbox) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(e)) => {
                    debug!(peer = %self.peer, cause = %e, "write failed");
                    return Poll::Ready(End::Gone);
                }
                Poll::Pending => false,
            };
            let mut flow = Flow::Continue;
            let read = conn.poll_read(cx, |bytes| {
                flow = self.on_frame(&bytes);
                flow == Flow::Continue
            });
            match read {
                Poll::Ready(None) => {}
                Poll::Ready(Some(ReadEnd::Stopped)) => {
                    return Poll::Ready(End::close(CloseCode::Normal, "", true))
                }
                Poll::Ready(Some(ReadEnd::Close)) => return Poll::Ready(End::ClientClosed),
                Poll::Ready(Some(ReadEnd::Gone)) => return Poll::Ready(End::Gone),
                Poll::Ready(Some(ReadEnd::Frame(e))) => {
                    warn!(peer = %self.peer, session = ?self.session_id(), cause = %e, "WebSocket error; closing connection");
                    return Poll::Ready(End::close(e.close_code(), "", true));
                }
                // Nothing to read: wait once the outbox is written or the socket is full.
                Poll::Pending => {
                    let waiting = if flushed {
                        conn.park(cx, &self.outbox)
                    } else {
                        self.outbox.watch(cx.waker())
                    };
                    if waiting {
                        return Poll::Pending;
                    }
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Decodes and handles one WAMP message.
    fn on_frame(&mut self, bytes: &Bytes) -> Flow {
        let msg = match self.serializer.decode_shared(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.protocol_violation(&e.to_string());
                return Flow::Close;
            }
        };
        let flow = self.handle(msg);
        if self.state == State::Established {
            self.deadline = None;
        }
        flow
    }

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
                if self.outbox.push(f) == Err(Refused::Full) {
                    self.outbox.kill("slow consumer: outbound queue full");
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
            self.outbox.clone(),
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
