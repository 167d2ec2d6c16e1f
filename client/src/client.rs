//! The [`Client`] handle, its builder, and the opening handshake (HELLO/WELCOME).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use wamp_proto::message::{Abort, Authenticate, Hello};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Encoded, Id, Message, Serializer, Uri, Value};

use crate::auth::{self, Auth, CryptosignKey, Method, Unanswered};
use crate::call::{CallBuilder, CallResult, CALLER_FEATURES};
use crate::connection::{self, Command};
use crate::error::{CallError, ConnectError, LeaveError, TransportError};
use crate::publish::{PublishBuilder, PUBLISHER_FEATURES};
use crate::register::{Invocation, RegisterBuilder, CALLEE_FEATURES};
use crate::subscribe::{SubscribeBuilder, SUBSCRIBER_FEATURES};
use crate::tls::TlsOptions;
use crate::transport::{self, BoxTransport, Incoming};

/// The `agent` announced in HELLO.
pub const AGENT: &str = concat!("wamp-client-rs/", env!("CARGO_PKG_VERSION"));

/// Requests queued from handles to the connection task before senders wait.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Default capacity of each subscription's event queue.
pub const DEFAULT_EVENT_BUFFER: usize = 256;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A joined WAMP session: a cheap, cloneable handle to one background connection task.
///
/// The task owns the connection. The session stays open while any `Client`, [`Subscription`],
/// [`SubscriptionHandle`] or [`Registration`] exists, until [`Client::leave`] is called, or
/// until the router or the network ends it ([`Client::closed`] tells how). When every handle
/// is dropped, the task leaves with GOODBYE `wamp.close.normal`.
///
/// Reconnecting is not implemented yet: once closed, a `Client` stays closed and every request
/// fails with a `ConnectionClosed` error; connect a new one.
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
    session: Id,
    realm: String,
    serializer: Serializer,
    welcome: Dict,
    closed: watch::Receiver<Option<CloseReason>>,
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
            .field("session", &self.inner.session)
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
        ClientBuilder {
            url: url.into(),
            realm: None,
            serializers: Serializer::DEFAULT.to_vec(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            leave_timeout: DEFAULT_LEAVE_TIMEOUT,
            event_buffer: DEFAULT_EVENT_BUFFER,
            auth: Auth::default(),
            tls: TlsOptions::default(),
            keepalive: None,
        }
    }

    /// The session ID the router assigned in WELCOME.
    pub fn session_id(&self) -> Id {
        self.inner.session
    }

    /// The realm joined.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The serializer the router selected.
    pub fn serializer(&self) -> Serializer {
        self.inner.serializer
    }

    /// The `Details` of the router's WELCOME (roles, authid, authrole, ...).
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
    /// had ended otherwise ([`LeaveError::Closed`]). Either way it is closed afterwards.
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

    /// Resolves when the session has ended, with how it ended (e.g. the router's GOODBYE
    /// `wamp.close.system_shutdown`), so a service can react.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.inner.closed.clone();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(v) => (*v).clone(),
            Err(_) => None,
        };
        reason.unwrap_or_else(|| CloseReason::transport_lost(None))
    }

    /// How the session ended, or `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.closed.borrow().clone()
    }

    /// Whether the session has ended.
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

/// Options for [`Client`]; finish with [`ClientBuilder::connect`].
///
/// Authentication: [`ClientBuilder::ticket`], [`ClientBuilder::wampcra`] and
/// [`ClientBuilder::cryptosign`] each offer a method with its credential, in the order
/// called ([`ClientBuilder::anonymous`] adds anonymous as a fallback); the router uses the
/// first one it allows. With none of them the client joins anonymously. `Debug` never shows
/// a ticket, a secret or a private key.
///
/// TLS (`wss://`, `rss://`): [`ClientBuilder::tls_root_certificates_pem`],
/// [`ClientBuilder::tls_default_roots`] and [`ClientBuilder::tls_client_certificate`] (which
/// also offers the `tls` method).
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    realm: Option<String>,
    serializers: Vec<Serializer>,
    connect_timeout: Duration,
    leave_timeout: Duration,
    event_buffer: usize,
    pub(crate) auth: Auth,
    pub(crate) tls: TlsOptions,
    keepalive: Option<Duration>,
}

impl ClientBuilder {
    /// The realm to join (required).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Offers only this serializer (default: msgpack, then json, as [`Serializer::DEFAULT`];
    /// [`Serializer::Cbor`] only when asked for; RawSocket offers only the first).
    pub fn serializer(mut self, serializer: Serializer) -> Self {
        self.serializers = vec![serializer];
        self
    }

    /// Offers these serializers, in order of preference (an empty list means the default).
    /// RawSocket negotiates exactly one: it offers the first.
    pub fn serializers(mut self, serializers: impl IntoIterator<Item = Serializer>) -> Self {
        let mut list: Vec<Serializer> = Vec::new();
        for s in serializers {
            if !list.contains(&s) {
                list.push(s);
            }
        }
        self.serializers = if list.is_empty() {
            Serializer::DEFAULT.to_vec()
        } else {
            list
        };
        self
    }

    /// Time allowed for connecting and the transport and WAMP handshakes together (default
    /// 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time [`Client::leave`] waits for the router's GOODBYE reply (default 5 s).
    pub fn leave_timeout(mut self, timeout: Duration) -> Self {
        self.leave_timeout = timeout;
        self
    }

    /// Default capacity of each subscription's event queue (default
    /// [`DEFAULT_EVENT_BUFFER`]; at least 1). See [`Subscription`](crate::Subscription) for
    /// what happens when it is full.
    pub fn event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity.max(1);
        self
    }

    /// Pings a quiet router every `interval` (a WebSocket ping, a RawSocket PING) and ends
    /// the session when the router sends nothing at all for `interval` after a ping: the
    /// session closes with [`CloseKind::TransportLost`] (`wamp.close.transport_lost`) and
    /// pending requests fail as on any disconnect. Anything the router sends counts as a
    /// sign of life, so a busy session is never pinged; a dead router is noticed within
    /// about three intervals. Choose `interval` well above the round trip under load.
    /// Default: off (the client still answers the router's pings either way). A zero
    /// interval turns it off.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = Some(interval).filter(|i| !i.is_zero());
        self
    }

    /// The authid to authenticate as (HELLO `authid`). Required for ticket and WAMP-CRA;
    /// optional for cryptosign (the router finds the user by the public key); ignored by
    /// routers for anonymous.
    pub fn authid(mut self, authid: impl Into<String>) -> Self {
        self.auth.authid = Some(authid.into());
        self
    }

    /// The role asked for (HELLO `authrole`). Routers that assign the role from the user's
    /// configuration, as wamp-router does, ignore it.
    pub fn authrole(mut self, authrole: impl Into<String>) -> Self {
        self.auth.authrole = Some(authrole.into());
        self
    }

    /// Offers `ticket` authentication: the CHALLENGE is answered with `ticket` as is (send
    /// it over a trusted network or TLS only). Needs [`ClientBuilder::authid`].
    pub fn ticket(mut self, ticket: impl Into<String>) -> Self {
        self.auth.offer(Method::Ticket(ticket.into()));
        self
    }

    /// Offers `wampcra` (challenge-response) authentication with the shared `secret`: the
    /// CHALLENGE is answered with its HMAC-SHA256, keyed with the secret, or, when the router
    /// salts it, with the PBKDF2-derived key (at most
    /// [`MAX_WAMPCRA_ITERATIONS`](crate::MAX_WAMPCRA_ITERATIONS)). Needs
    /// [`ClientBuilder::authid`].
    pub fn wampcra(mut self, secret: impl Into<String>) -> Self {
        self.auth.offer(Method::WampCra(secret.into()));
        self
    }

    /// Offers `cryptosign` (Ed25519) authentication with `key`: a [`CryptosignKey`], or its
    /// 32-byte seed. HELLO carries the public key (`authextra.pubkey`); the CHALLENGE is
    /// answered with its signature. [`ClientBuilder::authid`] is optional.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use wamp_client::{Client, CryptosignKey};
    /// let key: CryptosignKey = std::env::var("WAMP_PRIVATE_KEY")?.parse()?; // 64 hex
    /// let client = Client::builder("rs://127.0.0.1:8081")
    ///     .realm("realm1")
    ///     .cryptosign(key)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cryptosign(mut self, key: impl Into<CryptosignKey>) -> Self {
        self.auth.offer(Method::Cryptosign(key.into()));
        self
    }

    /// Also offers `anonymous`, after the methods configured so far (and before those
    /// configured later): the router lets the client in anonymously when none of the
    /// earlier methods fits (e.g. an unknown authid), if the realm allows anonymous.
    /// Without credentials the client offers anonymous alone anyway.
    pub fn anonymous(mut self) -> Self {
        self.auth.offer(Method::Anonymous);
        self
    }

    /// Opens the connection, joins the realm, and starts the connection task.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let realm = self.realm.clone().ok_or(ConnectError::NoRealm)?;
        let timeout = self.connect_timeout;
        let (transport, serializer, welcome) =
            tokio::time::timeout(timeout, self.handshake(&realm))
                .await
                .map_err(|_| ConnectError::Timeout(timeout))??;
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (closed_tx, closed_rx) = watch::channel(None);
        tracing::debug!(session = %welcome.0, %realm, serializer = serializer.name(), "joined");
        tokio::spawn(
            connection::Connection::new(
                transport,
                serializer,
                cmd_rx,
                closed_tx,
                self.leave_timeout,
                self.keepalive,
            )
            .run(),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                cmd: cmd_tx,
                session: welcome.0,
                realm,
                serializer,
                welcome: welcome.1,
                closed: closed_rx,
                next_local: AtomicU64::new(1),
                event_buffer: self.event_buffer,
            }),
        })
    }

    async fn handshake(
        &self,
        realm: &str,
    ) -> Result<(BoxTransport, Serializer, (Id, Dict)), ConnectError> {
        let (mut transport, serializer) =
            transport::open(&self.url, &self.serializers, &self.tls).await?;
        let mut details = hello_details();
        self.auth.add_to_hello(&mut details);
        let hello = Message::from(Hello {
            realm: Uri::new(realm),
            details,
        });
        send_handshake(&mut transport, serializer, &hello, "HELLO").await?;

        // HELLO → WELCOME | ABORT | CHALLENGE → AUTHENTICATE → WELCOME | ABORT.
        let mut challenged = false;
        loop {
            let msg = match transport.recv().await {
                Some(Ok(Incoming::Message(m))) => {
                    m.map_err(|e| ConnectError::Protocol(e.to_string()))?
                }
                Some(Ok(Incoming::Closed(_))) | None => return Err(ConnectError::Closed),
                Some(Err(e)) => return Err(ConnectError::Transport(e)),
            };
            let c = match msg {
                Message::Welcome(w) => return Ok((transport, serializer, (w.session, w.details))),
                Message::Abort(a) => return Err(refused(&a)),
                Message::Challenge(c) => c,
                other => {
                    return Err(ConnectError::Protocol(format!(
                        "expected WELCOME, got {}",
                        other.name()
                    )))
                }
            };
            if challenged {
                let why = "a second CHALLENGE (this client answers one)".to_owned();
                abort(&mut transport, serializer, uris::PROTOCOL_VIOLATION, &why).await;
                return Err(ConnectError::Protocol(why));
            }
            challenged = true;
            let signature = match self.auth.answer(&c).await {
                Ok(s) => s,
                Err(Unanswered::NotOffered(why)) => {
                    abort(&mut transport, serializer, uris::PROTOCOL_VIOLATION, &why).await;
                    return Err(ConnectError::Protocol(why));
                }
                Err(Unanswered::Refused(reason)) => {
                    abort(&mut transport, serializer, CANNOT_AUTHENTICATE, &reason).await;
                    return Err(ConnectError::ChallengeRefused {
                        method: c.auth_method,
                        reason,
                    });
                }
            };
            let authenticate = Message::from(Authenticate {
                signature,
                extra: Dict::new(),
            });
            tracing::debug!(authmethod = %c.auth_method, "answering CHALLENGE");
            send_handshake(&mut transport, serializer, &authenticate, "AUTHENTICATE").await?;
        }
    }
}

/// The ABORT reason this client sends when it will not answer a CHALLENGE (autobahn's).
const CANNOT_AUTHENTICATE: &str = "wamp.error.cannot_authenticate";

/// Sends a handshake message (HELLO, AUTHENTICATE), checking the router's length limit.
async fn send_handshake(
    transport: &mut BoxTransport,
    serializer: Serializer,
    msg: &Message,
    what: &str,
) -> Result<(), ConnectError> {
    let frame = encode(serializer, msg).map_err(ConnectError::Protocol)?;
    let max = transport.max_message_len();
    if frame.as_bytes().len() > max {
        return Err(ConnectError::Transport(TransportError::new(format!(
            "{what} is {} octets, over the router's maximum of {max}",
            frame.as_bytes().len()
        ))));
    }
    transport.send(frame).await.map_err(ConnectError::Transport)
}

/// Ends a handshake this client gives up: ABORT `reason` (best effort), then close.
async fn abort(transport: &mut BoxTransport, serializer: Serializer, reason: &str, message: &str) {
    let abort = Message::from(Abort {
        details: dict([("message", message.into())]),
        reason: Uri::new(reason),
        payload: Default::default(),
    });
    if let Ok(frame) = encode(serializer, &abort) {
        let _ = transport.send(frame).await;
    }
    let _ = transport.close().await;
}

/// The error for the router's ABORT during the handshake.
fn refused(a: &Abort) -> ConnectError {
    let reason = a.reason.to_string();
    let message = detail_message(&a.details);
    if auth::is_auth_failure(&reason) {
        ConnectError::AuthenticationFailed { reason, message }
    } else {
        ConnectError::Aborted { reason, message }
    }
}

/// HELLO.Details: the agent and the four client roles with the features this client
/// implements (`true` flags under `roles.<role>.features`).
pub(crate) fn hello_details() -> Dict {
    let role = |features: &[&str]| {
        let f = features
            .iter()
            .map(|f| ((*f).to_owned(), Value::Bool(true)));
        Value::Dict(dict([("features", Value::Dict(f.collect()))]))
    };
    dict([
        ("agent", AGENT.into()),
        (
            "roles",
            Value::Dict(dict([
                ("caller", role(CALLER_FEATURES)),
                ("callee", role(CALLEE_FEATURES)),
                ("publisher", role(PUBLISHER_FEATURES)),
                ("subscriber", role(SUBSCRIBER_FEATURES)),
            ])),
        ),
    ])
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
    fn hello_announces_roles_features_and_agent() {
        let d = hello_details();
        assert_eq!(d["agent"].as_str(), Some(AGENT));
        assert!(AGENT.starts_with("wamp-client-rs/"));
        let roles = d["roles"].as_dict().unwrap();
        let features = |r: &str| roles[r].as_dict().unwrap()["features"].clone();
        let flags = |names: &[&str]| {
            Value::Dict(names.iter().map(|n| ((*n).into(), true.into())).collect())
        };
        assert_eq!(
            features("caller"),
            flags(&[
                "progressive_call_results",
                "call_canceling",
                "call_timeout",
                "caller_identification",
                "progressive_call_invocations"
            ])
        );
        assert_eq!(
            features("callee"),
            flags(&[
                "progressive_call_results",
                "call_canceling",
                "pattern_based_registration",
                "shared_registration",
                "caller_identification",
                "registration_revocation",
                "progressive_call_invocations"
            ])
        );
        assert_eq!(
            features("publisher"),
            flags(&[
                "publisher_exclusion",
                "publisher_identification",
                "subscriber_blackwhite_listing"
            ])
        );
        assert_eq!(
            features("subscriber"),
            flags(&[
                "publisher_identification",
                "pattern_based_subscription",
                "event_retention",
                "event_history",
                "subscription_revocation"
            ])
        );
        assert_eq!(roles.len(), 4);
    }

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

    #[test]
    fn builder_serializer_choice() {
        let b = Client::builder("ws://x/ws");
        assert_eq!(b.serializers, vec![Serializer::MsgPack, Serializer::Json]);
        let b = b.serializer(Serializer::Json);
        assert_eq!(b.serializers, vec![Serializer::Json]);
        let b = b.serializers([Serializer::Json, Serializer::Json, Serializer::MsgPack]);
        assert_eq!(b.serializers, vec![Serializer::Json, Serializer::MsgPack]);
        let b = b.serializers([]);
        assert_eq!(b.serializers, Serializer::DEFAULT.to_vec());
        let b = b.serializer(Serializer::Cbor);
        assert_eq!(b.serializers, vec![Serializer::Cbor]);
    }

    #[tokio::test]
    async fn missing_realm_and_bad_url_fail_clearly() {
        let e = Client::builder("ws://127.0.0.1:1/ws").connect().await;
        assert!(matches!(e, Err(ConnectError::NoRealm)));
        for url in [
            "ftp://127.0.0.1:1/ws",
            "rss://127.0.0.1",
            "not a url",
            "ws://",
            "rs://127.0.0.1",
            "unix://relative/path",
        ] {
            let e = Client::connect(url, "realm1").await;
            assert!(matches!(e, Err(ConnectError::InvalidUrl { .. })), "{e:?}");
        }
    }
}
