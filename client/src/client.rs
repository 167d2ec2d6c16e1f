//! The [`Client`] handle and how sessions end ([`CloseReason`]).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use wamp_proto::{uris, Dict, Encoded, Id, Message, Serializer, Uri, Value};

use crate::builder::ClientBuilder;
use crate::call::{CallBuilder, CallResult};
use crate::connection::{self, Command, Settings};
use crate::error::{CallError, ConnectError, LeaveError};
use crate::handshake::{Dialer, Joined};
use crate::publish::PublishBuilder;
use crate::reconnect::{ConnectionState, StateWatcher};
use crate::register::{Invocation, RegisterBuilder};
use crate::subscribe::SubscribeBuilder;

/// The `agent` announced in HELLO.
pub const AGENT: &str = concat!("wamp-client-rs/", env!("CARGO_PKG_VERSION"));

/// Requests queued from handles to the connection task before senders wait.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Default capacity of each subscription's event queue.
pub const DEFAULT_EVENT_BUFFER: usize = 256;

/// A joined WAMP session: a cheap, cloneable handle to one background connection task.
///
/// The task owns the connection. The session stays open while any `Client`, [`Subscription`],
/// [`SubscriptionHandle`] or [`Registration`] exists, until [`Client::leave`] is called, or
/// until the router or the network ends it ([`Client::closed`] tells how). When every handle
/// is dropped, the task leaves with GOODBYE `wamp.close.normal`.
///
/// When the connection is lost the task reconnects, rejoins and restores every registration
/// and subscription (see [`ClientBuilder::reconnect`]; [`Client::state`] tells where it
/// stands). Once closed, a `Client` stays closed and every request fails with a
/// `ConnectionClosed` error.
///
/// [`Subscription`]: crate::Subscription
/// [`SubscriptionHandle`]: crate::SubscriptionHandle
/// [`Registration`]: crate::Registration
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cmd: mpsc::Sender<Command>,
    /// The current (or last) session's ID, kept up to date by the connection task.
    session: watch::Receiver<Id>,
    realm: String,
    serializer: Serializer,
    welcome: Dict,
    closed: watch::Receiver<Option<CloseReason>>,
    state: watch::Receiver<ConnectionState>,
    next_local: AtomicU64,
    event_buffer: usize,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// Who or what ended the session.
    pub kind: CloseKind,
    /// The GOODBYE or ABORT reason URI; `wamp.close.transport_lost` when the connection
    /// dropped without one.
    pub reason: String,
    /// `Details.message` of the GOODBYE or ABORT, or a description of the failure.
    pub message: Option<String>,
}

/// Who or what ended a session (see [`CloseReason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseKind {
    /// This client left with GOODBYE and the router replied (the reason is the reply's).
    Left,
    /// This client sent GOODBYE and the router did not reply in time.
    LeaveTimedOut,
    /// The router closed the session with GOODBYE (e.g. `wamp.close.system_shutdown`).
    RouterGoodbye,
    /// The router aborted the session with ABORT.
    Aborted,
    /// The connection closed or failed without a WAMP close.
    TransportLost,
    /// This client aborted the session because the router broke the protocol.
    ProtocolViolation,
}

/// The reason URI used when the connection drops without GOODBYE or ABORT.
pub const TRANSPORT_LOST: &str = "wamp.close.transport_lost";

impl CloseReason {
    pub(crate) fn new(kind: CloseKind, reason: impl Into<String>, message: Option<String>) -> Self {
        CloseReason {
            kind,
            reason: reason.into(),
            message,
        }
    }

    pub(crate) fn transport_lost(message: Option<String>) -> Self {
        CloseReason::new(CloseKind::TransportLost, TRANSPORT_LOST, message)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.reason)?;
        if let Some(m) = &self.message {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("session", &self.session_id())
            .field("realm", &self.inner.realm)
            .field("authid", &self.authid())
            .field("serializer", &self.inner.serializer)
            .field("closed", &self.close_reason())
            .finish()
    }
}

impl Client {
    /// Connects to `url` and joins `realm` with the default options (WebSocket: msgpack
    /// preferred, json accepted; RawSocket: msgpack).
    ///
    /// `url` is `ws://host:port/path` (WebSocket), `rs://host:port` or `tcp://host:port`
    /// (RawSocket over TCP), `unix:///path/to/socket` (RawSocket over a Unix domain socket),
    /// or, over TLS, `wss://host:port/path` and `rss://host:port` (alias `tcps://`).
    pub async fn connect(url: &str, realm: &str) -> Result<Client, ConnectError> {
        Client::builder(url).realm(realm).connect().await
    }

    /// A builder for the connection options.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into())
    }

    /// Spawns the connection task for a joined session.
    pub(crate) fn start(
        joined: Joined,
        dialer: Dialer,
        settings: Settings,
        event_buffer: usize,
    ) -> Client {
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (closed_tx, closed_rx) = watch::channel(None);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connected {
            session: joined.session,
        });
        let (session_tx, session) = watch::channel(joined.session);
        tracing::debug!(session = %joined.session, realm = %dialer.realm,
            serializer = joined.serializer.name(), "joined");
        let inner = Inner {
            cmd: cmd_tx,
            session,
            realm: dialer.realm.clone(),
            serializer: joined.serializer,
            welcome: joined.welcome.clone(),
            closed: closed_rx,
            state: state_rx,
            next_local: AtomicU64::new(1),
            event_buffer,
        };
        let links = connection::Links {
            cmd_rx,
            closed_tx,
            state_tx,
            session_tx,
        };
        tokio::spawn(connection::Connection::new(joined, dialer, links, settings).run());
        Client {
            inner: Arc::new(inner),
        }
    }

    /// The current session's ID: the one the router assigned in the last WELCOME (it
    /// changes at each reconnect).
    pub fn session_id(&self) -> Id {
        *self.inner.session.borrow()
    }

    /// Where the connection stands: connected, disconnected, reconnecting, or closed.
    pub fn state(&self) -> ConnectionState {
        self.inner.state.borrow().clone()
    }

    /// A watcher of [`Client::state`], to wait for changes (e.g. to log them, or to wait
    /// until a reconnect has restored everything).
    pub fn state_watcher(&self) -> StateWatcher {
        StateWatcher::new(self.inner.state.clone())
    }

    /// The realm joined.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The serializer the router selected.
    pub fn serializer(&self) -> Serializer {
        self.inner.serializer
    }

    /// The `Details` of the router's first WELCOME (roles, authid, authrole, ...). The
    /// accessors below read it too: after a reconnect, an authenticated client has the same
    /// identity (an anonymous one may get a new authid); only [`Client::session_id`] follows.
    pub fn welcome_details(&self) -> &Dict {
        &self.inner.welcome
    }

    /// The authid the router assigned (WELCOME `authid`): the one authenticated, the one
    /// found by the cryptosign public key, or a generated one for anonymous sessions.
    pub fn authid(&self) -> Option<&str> {
        self.welcome_str("authid")
    }

    /// The role the router assigned (WELCOME `authrole`).
    pub fn authrole(&self) -> Option<&str> {
        self.welcome_str("authrole")
    }

    /// The method the session was authenticated with (WELCOME `authmethod`: `anonymous`,
    /// `ticket`, `wampcra`, `cryptosign`, ...).
    pub fn authmethod(&self) -> Option<&str> {
        self.welcome_str("authmethod")
    }

    /// Who authenticated the session (WELCOME `authprovider`, e.g. `static`).
    pub fn authprovider(&self) -> Option<&str> {
        self.welcome_str("authprovider")
    }

    /// WELCOME `authextra`, if the router sent one (e.g. cryptosign: the `pubkey`).
    pub fn authextra(&self) -> Option<&Dict> {
        self.inner.welcome.get("authextra").and_then(Value::as_dict)
    }

    fn welcome_str(&self, key: &str) -> Option<&str> {
        self.inner.welcome.get(key).and_then(Value::as_str)
    }

    /// Starts a call; set arguments on the builder, then `.await` it.
    ///
    /// ```no_run
    /// # async fn f(client: wamp_client::Client) -> Result<(), wamp_client::CallError> {
    /// let r = client.call("com.example.add").args([2, 3]).await?;
    /// let sum: i64 = r.decode()?;
    /// # Ok(()) }
    /// ```
    pub fn call(&self, procedure: &str) -> CallBuilder {
        CallBuilder::new(self.clone(), Uri::new(procedure))
    }

    /// Calls `procedure` with explicit positional and keyword arguments.
    pub async fn call_with(
        &self,
        procedure: &str,
        args: Vec<Value>,
        kwargs: Dict,
    ) -> Result<CallResult, CallError> {
        self.call(procedure).args(args).kwargs(kwargs).await
    }

    /// Starts registering `handler` for `procedure`; `.await` the builder for the
    /// [`Registration`](crate::Registration).
    ///
    /// Each invocation runs in its own task. `Ok(r)` answers YIELD with `r` converted into a
    /// [`CallResult`] (e.g. from a [`Value`], `Vec<Value>` or `()`); `Err(e)` answers ERROR
    /// with `e`'s URI and payload (see [`CallError::to_wire`]); a panic answers
    /// `wamp.error.runtime_error`. In an `async` block write `Ok::<_, CallError>(..)` so the
    /// error type is known.
    pub fn register<F, Fut, R>(&self, procedure: &str, handler: F) -> RegisterBuilder
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, CallError>> + Send + 'static,
        R: Into<CallResult>,
    {
        RegisterBuilder::new(self.clone(), Uri::new(procedure), handler)
    }

    /// Starts subscribing to `topic`; `.await` the builder for a
    /// [`Subscription`](crate::Subscription), a `Stream` of events.
    pub fn subscribe(&self, topic: &str) -> SubscribeBuilder {
        SubscribeBuilder::new(self.clone(), Uri::new(topic), self.inner.event_buffer)
    }

    /// Starts a publication; set arguments, then `.await` it (fire-and-forget: resolves once
    /// queued), or `.acknowledge().await` it to wait for the router's PUBLISHED.
    pub fn publish(&self, topic: &str) -> PublishBuilder {
        PublishBuilder::new(self.clone(), Uri::new(topic))
    }

    /// Leaves the session: sends GOODBYE `wamp.close.normal`, waits (bounded by
    /// [`ClientBuilder::leave_timeout`]) for the router's GOODBYE, and closes the socket.
    ///
    /// Pending requests fail with `ConnectionClosed`. Returns the [`CloseReason`] (kind
    /// [`CloseKind::Left`]) once the router replied, also to concurrent or repeated calls;
    /// errs when the router did not reply in time ([`LeaveError::Timeout`]) or the session
    /// had ended otherwise ([`LeaveError::Closed`]; also when called while disconnected: it
    /// stops reconnecting). Either way it is closed afterwards.
    pub async fn leave(&self) -> Result<CloseReason, LeaveError> {
        let (tx, rx) = oneshot::channel();
        let cmd = Command::Leave {
            reason: Uri::new(uris::CLOSE_NORMAL),
            reply: tx,
        };
        if self.inner.cmd.send(cmd).await.is_ok() {
            if let Ok(r) = rx.await {
                return r;
            }
        }
        // Already closed (or closing because of another leave): report how it ended.
        let reason = self.closed().await;
        match reason.kind {
            CloseKind::Left => Ok(reason),
            CloseKind::LeaveTimedOut => Err(LeaveError::Timeout),
            _ => Err(LeaveError::Closed(reason)),
        }
    }

    /// Resolves when the client has closed for good, with how the last session ended (e.g.
    /// the router's GOODBYE `wamp.close.system_shutdown` with reconnecting off), so a
    /// service can react. A lost connection the client reconnects from does not resolve it:
    /// watch [`Client::state`] for those.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.inner.closed.clone();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(v) => (*v).clone(),
            Err(_) => None,
        };
        reason.unwrap_or_else(|| CloseReason::transport_lost(None))
    }

    /// How the client closed, or `None` while it is open or reconnecting.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.closed.borrow().clone()
    }

    /// Whether the client has closed for good.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    /// Queues a command for the connection task; `Err` when the session is closed.
    pub(crate) async fn send(&self, cmd: Command) -> Result<(), ()> {
        self.inner.cmd.send(cmd).await.map_err(drop)
    }

    pub(crate) fn command_sender(&self) -> mpsc::Sender<Command> {
        self.inner.cmd.clone()
    }

    /// A client-side ID telling apart local subscriptions that share one router subscription.
    pub(crate) fn next_local_id(&self) -> u64 {
        self.inner.next_local.fetch_add(1, Ordering::Relaxed)
    }
}

/// `Details.message` if it is a string.
pub(crate) fn detail_message(details: &Dict) -> Option<String> {
    details
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Encodes a message (JSON text or msgpack/CBOR bytes, as the transport frames want them).
pub(crate) fn encode(serializer: Serializer, msg: &Message) -> Result<Encoded, String> {
    serializer.encode(msg).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_sync_clone() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Client>();
        send_sync::<crate::Registration>();
        send::<crate::Subscription>();
        send_sync::<crate::SubscriptionHandle>();
        send::<crate::CallBuilder>();
        send::<crate::PublishBuilder>();
        send::<crate::RegisterBuilder>();
        let _ = <Client as Clone>::clone;
    }
}
