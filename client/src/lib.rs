//! Async WAMP v2 client (Basic Profile) for Rust services, on tokio, over WebSocket or
//! RawSocket, either one plain or over TLS.
//!
//! A [`Client`] is a cheap, cloneable handle to one background task that owns the socket.
//! Every request builder is `IntoFuture`, so the common case is one `.await`:
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use wamp_client::{CallError, Client, Invocation, Value};
//!
//! # async fn demo() -> Result<(), wamp_client::Error> {
//! let client = Client::connect("ws://127.0.0.1:8080/ws", "realm1").await?;
//!
//! // A procedure: each invocation runs in its own task; `Err` answers an ERROR.
//! let _reg = client
//!     .register("com.example.add", |inv: Invocation| async move {
//!         let (a, b): (i64, i64) = inv.decode_args()?;
//!         Ok::<_, CallError>(Value::from(a + b))
//!     })
//!     .await?;
//!
//! // A call, raw or typed (see the payload rule below).
//! let r = client.call("com.example.add").args([2, 3]).await?;
//! assert_eq!(r.args, vec![Value::from(5)]);
//! let sum: i64 = client.call("com.example.add").args([2, 3]).result().await?;
//!
//! // Subscriptions are streams; publications are fire-and-forget unless acknowledged.
//! let mut ticks = client.subscribe("com.example.tick").await?;
//! client.publish("com.example.tick").arg(sum).exclude_me(false).acknowledge().await?;
//! if let Some(event) = ticks.next().await {
//!     println!("tick {:?}", event.args);
//! }
//!
//! client.leave().await?;
//! # Ok(()) }
//! ```
//!
//! # Transports
//! The URL picks the transport: `ws://host:port/path` is WebSocket (the serializers offered
//! as subprotocols, the router picks one); `rs://host:port` or `tcp://host:port` is
//! RawSocket over TCP and `unix:///path/to/socket` RawSocket over a Unix domain socket
//! (Unix only). RawSocket negotiates exactly one serializer, the first one given to
//! [`ClientBuilder::serializer`]/[`ClientBuilder::serializers`] (default msgpack; json and
//! cbor on request, e.g. `.serializer(Serializer::Cbor)`); the client
//! accepts messages of up to 16 MiB and sends none longer than the router announced (a
//! request that would be longer fails alone, e.g. with [`CallError::InvalidPayload`]).
//! Connection failures are [`ConnectError`]s, with a [`TransportError`] for I/O.
//!
//! # TLS
//! `wss://host:port/path` is WebSocket and `rss://host:port` (alias `tcps://`) RawSocket,
//! each over TLS (rustls; TLS 1.2 and 1.3). The router's certificate must be valid for the
//! URL's host (a DNS name, or an IP address in its IP SANs) and chain to a trusted root:
//! Mozilla's roots, which this crate ships (the `webpki-roots` crate, default feature
//! `webpki-roots`), plus any CA given to [`ClientBuilder::tls_root_certificates_pem`];
//! [`ClientBuilder::tls_default_roots`]`(false)` trusts only the latter. For mutual TLS,
//! [`ClientBuilder::tls_client_certificate`] sends a client certificate and offers the
//! `tls` authmethod: a router that maps the certificate to a user logs the client in without
//! a CHALLENGE.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let ca = std::fs::read("/etc/wamp/ca.pem")?;
//! let device = wamp_client::Client::builder("rss://router.example.com:8443")
//!     .realm("realm1")
//!     .tls_root_certificates_pem(&ca)
//!     .tls_client_certificate(std::fs::read("device.pem")?, std::fs::read("device.key")?)
//!     .connect()
//!     .await?;
//! assert_eq!(device.authmethod(), Some("tls"));
//! # Ok(()) }
//! ```
//!
//! A certificate that is not trusted or not for the host, like any failed TLS handshake, is
//! [`ConnectError::Transport`] with a message such as `TLS handshake with localhost failed:
//! invalid peer certificate: UnknownIssuer`; PEM that holds no usable certificate or key is
//! [`ConnectError::TlsConfig`]. Certificates and keys are given as PEM bytes: no TLS
//! library type is part of this API.
//!
//! # Keep-alive
//! The client answers the router's pings (WebSocket pings, RawSocket PINGs) on every
//! transport. [`ClientBuilder::keepalive`] makes it ping a quiet router too, and treat the
//! connection as lost (kind [`CloseKind::TransportLost`]; then it reconnects, see below)
//! when the router sends nothing for an interval after a ping, so a dead router or a
//! silently dropped connection is noticed within about three intervals instead of at the
//! next request. Off by default.
//!
//! # Authentication
//! [`Client::connect`] joins anonymously. To authenticate, give the builder an authid and
//! one or more credentials; each offers its method (HELLO `authmethods`, in the order
//! configured) and the router uses the first one it allows:
//!
//! ```no_run
//! use wamp_client::{Client, ConnectError, CryptosignKey};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Ticket: the CHALLENGE is answered with the ticket itself.
//! let joe = Client::builder("ws://127.0.0.1:8080/ws")
//!     .realm("realm1")
//!     .authid("joe")
//!     .ticket("secret1")
//!     .connect()
//!     .await?;
//! // WAMP-CRA: HMAC of the router's challenge; salted secrets are derived as the router says.
//! let peter = Client::builder("rs://127.0.0.1:8081")
//!     .realm("realm1")
//!     .authid("peter")
//!     .wampcra("secret2")
//!     .connect()
//!     .await?;
//! // Cryptosign (Ed25519): the authid may be left out, the router knows the public key.
//! let key: CryptosignKey = std::env::var("WAMP_KEY_SEED")?.parse()?; // 64 hex characters
//! println!("the router's cryptosign_keys list {}", key.public_key_hex());
//! let dev = Client::builder("unix:///run/wamp.sock")
//!     .realm("realm1")
//!     .cryptosign(key)
//!     .connect()
//!     .await;
//! match dev {
//!     Ok(dev) => println!("joined as {:?} ({:?})", dev.authid(), dev.authrole()),
//!     Err(ConnectError::AuthenticationFailed { reason, message }) => {
//!         eprintln!("refused: {reason} {message:?}") // wrong credentials: do not retry
//!     }
//!     Err(e) => eprintln!("could not connect: {e}"), // network etc.: retrying may help
//! }
//! # Ok(()) }
//! ```
//!
//! [`ClientBuilder::anonymous`] adds anonymous as a fallback at that place in the order, and
//! [`ClientBuilder::authrole`] sends HELLO `authrole`. The session's identity is in
//! [`Client::authid`], [`Client::authrole`], [`Client::authmethod`] and
//! [`Client::authprovider`]. A refusal is [`ConnectError::AuthenticationFailed`] (ABORT
//! `wamp.error.authentication_failed`, `no_such_principal`, `no_auth_method` or
//! `not_authorized`, with the router's message); a CHALLENGE this client will not answer
//! (malformed, WAMP-CRA iterations over [`MAX_WAMPCRA_ITERATIONS`], channel binding) is
//! [`ConnectError::ChallengeRefused`], and a CHALLENGE for a method not offered, or a second
//! one, [`ConnectError::Protocol`]. Tickets and secrets travel in the clear on `ws://` and
//! `rs://`: use them over `wss://` or `rss://`, or on trusted networks; cryptosign and
//! WAMP-CRA never send the secret. A client certificate
//! ([`ClientBuilder::tls_client_certificate`]) offers the `tls` method. `Debug` output never
//! shows a credential or a key.
//!
//! # Payloads
//! Arguments are [`Value`]s: builders take `.arg(v)`, `.args([..])`, `.kwarg(k, v)` and
//! `.kwargs([(k, v), ..])` with anything `Into<Value>`, or serde types through
//! `.args_ser(&tuple)` (must serialize to a list) and `.kwargs_ser(&struct)` (must serialize
//! to a map). Typed reading (`decode::<T>()` on [`CallResult`], [`Invocation`], [`Event`];
//! [`CallBuilder::result`]) takes `T` from the first positional argument; when there is
//! none, from the keyword arguments as a map; when both are empty, from `null`.
//! `decode_args`/`decode_kwargs` read the whole list or map.
//!
//! # Reconnecting
//! A lost connection (the socket dropped, a keep-alive went unanswered, or the router said
//! GOODBYE `wamp.close.system_shutdown` because it is restarting) does not end the client:
//! it dials again with exponential backoff and jitter ([`ReconnectPolicy`], on by default),
//! joins the same realm with the same credentials, and registers and subscribes again
//! everything still held, so [`Registration`] handlers and [`Subscription`] streams go on
//! (their IDs may change; the handles show the current ones). Meanwhile:
//! - requests in flight at the drop fail with `ConnectionLost` (e.g.
//!   [`CallError::ConnectionLost`]): they may or may not have taken effect and are never
//!   retried;
//! - requests made while disconnected fail at once with `NotConnected` (nothing was sent);
//! - [`Client::state`] / [`Client::state_watcher`] tell [`ConnectionState::Connected`],
//!   `Disconnected`, `Reconnecting` or `Closed`; `Connected` comes back once every
//!   registration and subscription is restored;
//! - a registration the new session refuses (e.g. another callee took the procedure) is
//!   logged and resolves [`Registration::revoked`] with the router's error URI; a refused
//!   subscription's stream ends; a subscription made with
//!   [`SubscribeBuilder::get_retained`] receives the retained event again, covering what
//!   was published meanwhile. After a silent loss (noticed by the keep-alive) the router
//!   may still hold the old session for a while, and refuse a single-callee registration
//!   with `wamp.error.procedure_already_exists` that way.
//!
//! The first [`ClientBuilder::connect`] is not retried: its failure is returned at once.
//! Short-lived programs opt out with `.reconnect(ReconnectPolicy::never())`.
//!
//! ```no_run
//! use std::time::Duration;
//! use wamp_client::{Client, ConnectionState, ReconnectPolicy};
//!
//! # async fn demo() -> Result<(), wamp_client::Error> {
//! let client = Client::builder("ws://127.0.0.1:8080/ws")
//!     .realm("realm1")
//!     .reconnect(ReconnectPolicy::default().max_delay(Duration::from_secs(10)))
//!     .connect()
//!     .await?;
//! let mut state = client.state_watcher();
//! tokio::spawn(async move {
//!     loop {
//!         match state.changed().await {
//!             ConnectionState::Closed => break,
//!             s => tracing::info!(?s, "wamp connection"),
//!         }
//!     }
//! });
//! # Ok(()) }
//! ```
//!
//! # Session end
//! [`Client::leave`] says GOODBYE and waits for the reply; the router may also end the
//! session for good (another GOODBYE, e.g. the session was killed; an ABORT), the
//! connection may be lost with reconnecting off ([`ReconnectPolicy::never`]), or the
//! reconnect attempts may run out ([`ReconnectPolicy::max_attempts`]). Either way every
//! pending request fails at once with a `ConnectionClosed` error, subscription streams end,
//! and [`Client::closed`] resolves with a [`CloseReason`].
//!
//! # Advanced PubSub
//! Publications can choose their receivers ([`PublishBuilder::exclude`], `eligible`, and
//! the `_authid` / `_authrole` variants), disclose the publisher
//! ([`PublishBuilder::disclose_me`], read back with [`Event::publisher`]) and be retained
//! ([`PublishBuilder::retain`], [`SubscribeBuilder::get_retained`]). Subscriptions can match
//! a prefix or wildcard pattern ([`SubscribeBuilder::prefix`], [`SubscribeBuilder::wildcard`];
//! [`Event::topic`] is the concrete topic), and a router that keeps event history answers
//! [`Client::subscription_events`].
//!
//! # Advanced RPC
//! Calls can carry a router-enforced [`CallBuilder::timeout`] (sent in milliseconds), ask
//! for caller disclosure ([`CallBuilder::disclose_me`]), stream progressive results
//! ([`CallBuilder::progressive`], a `Stream`), send their arguments in chunks
//! ([`CallBuilder::chunked`]), and be canceled ([`PendingCall::cancel`] with a
//! [`CancelMode`]; dropping an unanswered call sends CANCEL `killnowait`). Registrations can
//! match a prefix or wildcard ([`RegisterBuilder::prefix`], [`RegisterBuilder::wildcard`];
//! [`Invocation::procedure`] is the called URI), be shared ([`RegisterBuilder::invoke`]),
//! take a procedure over ([`RegisterBuilder::force_reregister`]; the evicted callee sees
//! [`Registration::revoked`]) and see every caller ([`RegisterBuilder::disclose_caller`]).
//! Handlers send progressive results with [`Invocation::progress`], read further chunks
//! with [`Invocation::next_chunk`], and learn of cancellation from
//! [`Invocation::cancelled`].
//!
//! # Not yet implemented
//! Retrying the first connect, cryptosign channel binding (`tls-unique`),
//! loading the operating system's certificate store, SCRAM, router authentication (cryptosign
//! `authextra.challenge`), multi-round authentication (one CHALLENGE is answered), call
//! rerouting, and callee-side timeouts (`forward_timeout`). Raw `.option(key, value)` setters
//! on the builders pass options through to routers that support more.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod auth;
mod builder;
mod call;
mod client;
mod connection;
mod error;
mod handshake;
mod history;
mod payload;
mod publish;
mod reconnect;
mod register;
mod subscribe;
mod tls;
mod transport;

pub use auth::{CryptosignKey, MAX_WAMPCRA_ITERATIONS};
pub use builder::ClientBuilder;
pub use call::{
    CallBuilder, CallResult, CancelMode, ChunkedCall, PendingCall, ProgressiveCall, TypedCall,
};
pub use client::{Client, CloseKind, CloseReason, AGENT, DEFAULT_EVENT_BUFFER, TRANSPORT_LOST};
pub use error::{
    CallError, ConnectError, Error, InvalidKey, LeaveError, PublishError, RegisterError, Rejection,
    SubscribeError, TransportError,
};
pub use history::HistoryEvent;
pub use publish::{AcknowledgedPublish, PublishBuilder};
pub use reconnect::{ConnectionState, ReconnectPolicy, StateWatcher};
pub use register::{Invocation, InvokePolicy, RegisterBuilder, Registration};
pub use subscribe::{Event, SubscribeBuilder, Subscription, SubscriptionHandle};
pub use wamp_proto::{uris, Dict, Id, MatchPolicy, Serializer, Value};
