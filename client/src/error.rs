//! Error types, one per operation, plus [`Error`] to hold any of them.

use std::time::Duration;
use std::{fmt, io};

use thiserror::Error;
use wamp_proto::{uris, Dict, Payload, Uri, Value};

use crate::client::CloseReason;

/// Why [`ClientBuilder::connect`](crate::ClientBuilder::connect) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a usable `ws://`, `wss://`, `rs://`, `tcp://`, `rss://`, `tcps://`
    /// or `unix://` URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No realm was given to the builder.
    #[error("no realm given (call ClientBuilder::realm)")]
    NoRealm,
    /// The connection could not be opened, or failed before the session was established
    /// (e.g. connection refused, no such Unix socket, reset, or a message over the router's
    /// RawSocket length limit). A failed TLS handshake is one too, its message naming the
    /// host and the cause, e.g. `TLS handshake with localhost failed: invalid peer
    /// certificate: UnknownIssuer` (a certificate no trusted CA signed) or `...: certificate
    /// not valid for name "127.0.0.1"; ...` (a certificate for another host).
    #[error("connection failed: {0}")]
    Transport(#[source] TransportError),
    /// The TLS options cannot be used: PEM given to
    /// [`ClientBuilder::tls_root_certificates_pem`](crate::ClientBuilder::tls_root_certificates_pem)
    /// or [`ClientBuilder::tls_client_certificate`](crate::ClientBuilder::tls_client_certificate)
    /// that holds no usable certificate or key, or no trusted root at all. Checked when a
    /// `wss://` or `rss://` URL is connected.
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
    /// The server answered the WebSocket opening handshake with something other than an
    /// upgrade (e.g. HTTP 404), or broke the WebSocket protocol.
    #[error("WebSocket handshake failed: {0}")]
    WebSocket(#[source] TransportError),
    /// The router selected none of the offered serializers (over RawSocket: refused the
    /// one offered, error code 1).
    #[error("the router accepted none of the offered WAMP serializers ({})", .offered.join(", "))]
    NoSerializer {
        /// The serializers offered, as subprotocol names (`wamp.2.msgpack`, `wamp.2.json`).
        offered: Vec<&'static str>,
    },
    /// The router refused the RawSocket handshake with an error code other than 1 (see
    /// [`ConnectError::NoSerializer`]): 2 maximum message length unacceptable, 3 reserved
    /// bits used, 4 maximum connection count reached.
    #[error("the router refused the RawSocket connection: {reason} (error {code})")]
    RawSocketRefused {
        /// The error code of the router's handshake reply (1 to 15).
        code: u8,
        /// What the code means.
        reason: &'static str,
    },
    /// The router answered HELLO (or AUTHENTICATE) with ABORT for a reason other than
    /// authentication (see [`ConnectError::AuthenticationFailed`]).
    #[error("the router refused the session: {reason}{}", suffix(.message))]
    Aborted {
        /// The ABORT reason URI, e.g. `wamp.error.no_such_realm`.
        reason: String,
        /// `Details.message`, if the router sent one.
        message: Option<String>,
    },
    /// The router refused to authenticate the client: an ABORT with
    /// `wamp.error.authentication_failed` (wrong ticket, secret or signature),
    /// `wamp.error.no_such_principal` (unknown authid, or no user with this cryptosign
    /// public key), `wamp.error.no_auth_method` (none of the offered methods is allowed here,
    /// e.g. anonymous on a realm that requires credentials) or `wamp.error.not_authorized`
    /// (also the spec's `no_matching_auth_method`, `authentication_denied` and
    /// `authentication_required`). Retrying with the same credentials will not help;
    /// network failures are [`ConnectError::Transport`] instead.
    #[error("authentication failed: {reason}{}", suffix(.message))]
    AuthenticationFailed {
        /// The ABORT reason URI, e.g. `wamp.error.authentication_failed`.
        reason: String,
        /// `Details.message`, if the router sent one.
        message: Option<String>,
    },
    /// This client refused to answer the router's CHALLENGE: it is malformed, or asks for
    /// more than this client does (WAMP-CRA iterations over
    /// [`MAX_WAMPCRA_ITERATIONS`](crate::MAX_WAMPCRA_ITERATIONS) or a key over 1024 bytes,
    /// cryptosign channel binding, which needs TLS). The client sent ABORT
    /// `wamp.error.cannot_authenticate`.
    #[error("cannot answer the router's {method} CHALLENGE: {reason}")]
    ChallengeRefused {
        /// The CHALLENGE's auth method.
        method: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The router broke the protocol during the opening handshake (WAMP, e.g. a CHALLENGE
    /// for a method this client did not offer or a second CHALLENGE, or the RawSocket
    /// handshake reply).
    #[error("protocol error while joining: {0}")]
    Protocol(String),
    /// The connection closed before the session was established.
    #[error("the connection closed before the session was established")]
    Closed,
    /// No WELCOME (or ABORT) arrived in time.
    #[error("no WELCOME from the router within {0:?}")]
    Timeout(Duration),
}

/// A cryptosign private key that could not be read
/// ([`CryptosignKey::from_hex`](crate::CryptosignKey::from_hex)).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid cryptosign private key: {message}")]
pub struct InvalidKey {
    message: String,
}

impl InvalidKey {
    pub(crate) fn new(message: impl Into<String>) -> InvalidKey {
        InvalidKey {
            message: message.into(),
        }
    }
}

/// A failure of the connection under the session: socket I/O, or WebSocket or RawSocket
/// framing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct TransportError {
    message: String,
    io_kind: Option<io::ErrorKind>,
}

impl TransportError {
    pub(crate) fn new(message: impl Into<String>) -> TransportError {
        TransportError {
            message: message.into(),
            io_kind: None,
        }
    }

    pub(crate) fn io(e: &io::Error) -> TransportError {
        TransportError {
            message: e.to_string(),
            io_kind: Some(e.kind()),
        }
    }

    /// An I/O error described by `message`, keeping its kind.
    pub(crate) fn io_with_message(e: &io::Error, message: String) -> TransportError {
        TransportError {
            message,
            io_kind: Some(e.kind()),
        }
    }

    /// The description of the failure.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The kind of the underlying I/O error, when it was one (e.g.
    /// [`io::ErrorKind::ConnectionRefused`]).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        self.io_kind
    }
}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> TransportError {
        TransportError::io(&e)
    }
}

/// Why a call failed; also what a procedure handler returns to fail an invocation.
///
/// A handler's error travels to the caller as `ERROR` with [`CallError::uri`]
/// (see [`CallError::to_wire`] for the local variants).
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CallError {
    /// The callee or the router answered with an error URI (and optional payload).
    #[error("{uri}{}", first_str(.args))]
    Application {
        /// The error URI, e.g. `wamp.error.no_such_procedure` or `com.example.error.busy`.
        uri: String,
        /// Positional error arguments.
        args: Vec<Value>,
        /// Keyword error arguments.
        kwargs: Dict,
    },
    /// The session ended before an answer arrived (or was already closed).
    #[error("the session is closed")]
    ConnectionClosed,
    /// The connection dropped before the answer arrived; the client is reconnecting
    /// ([`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)). The request may or
    /// may not have taken effect: it is not retried.
    #[error("the connection was lost before the answer arrived (reconnecting)")]
    ConnectionLost,
    /// The client is disconnected and reconnecting: nothing was sent, so retrying later is
    /// safe ([`Client::state`](crate::Client::state) tells when it is back).
    #[error("not connected (the client is reconnecting); nothing was sent")]
    NotConnected,
    /// Arguments could not be encoded, or a payload could not be decoded into the wanted type.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
}

impl CallError {
    /// An application error with this URI and no payload.
    pub fn new(uri: impl Into<String>) -> CallError {
        CallError::Application {
            uri: uri.into(),
            args: Vec::new(),
            kwargs: Dict::new(),
        }
    }

    /// `wamp.error.runtime_error` with the message as the only positional argument.
    pub fn runtime(message: impl fmt::Display) -> CallError {
        CallError::new(uris::RUNTIME_ERROR).with_args([message.to_string()])
    }

    /// `wamp.error.canceled`: what a handler returns when it stops because its call was
    /// canceled (see [`Invocation::cancelled`](crate::Invocation::cancelled)).
    pub fn canceled() -> CallError {
        CallError::new(uris::CANCELED)
    }

    /// Whether this is the `wamp.error.canceled` error (a canceled call, or a callee that
    /// left before answering).
    pub fn is_canceled(&self) -> bool {
        self.uri() == Some(uris::CANCELED)
    }

    /// Whether this is the `wamp.error.timeout` error (the router's call timeout).
    pub fn is_timeout(&self) -> bool {
        self.uri() == Some(uris::TIMEOUT)
    }

    /// `wamp.error.invalid_argument` with the message as the only positional argument.
    pub fn invalid_argument(message: impl fmt::Display) -> CallError {
        CallError::new(uris::INVALID_ARGUMENT).with_args([message.to_string()])
    }

    /// Sets the positional arguments of an [`CallError::Application`] error.
    pub fn with_args<I, V>(mut self, new_args: I) -> CallError
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        if let CallError::Application { args, .. } = &mut self {
            *args = new_args.into_iter().map(Into::into).collect();
        }
        self
    }

    /// Sets the keyword arguments of an [`CallError::Application`] error.
    pub fn with_kwargs<I, K, V>(mut self, new_kwargs: I) -> CallError
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        if let CallError::Application { kwargs, .. } = &mut self {
            *kwargs = new_kwargs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
        }
        self
    }

    /// The error URI of an [`CallError::Application`] error; `None` for local failures.
    pub fn uri(&self) -> Option<&str> {
        match self {
            CallError::Application { uri, .. } => Some(uri),
            _ => None,
        }
    }

    /// The positional arguments of an [`CallError::Application`] error (empty otherwise).
    pub fn args(&self) -> &[Value] {
        match self {
            CallError::Application { args, .. } => args,
            _ => &[],
        }
    }

    /// The keyword arguments of an [`CallError::Application`] error, if any.
    pub fn kwargs(&self) -> Option<&Dict> {
        match self {
            CallError::Application { kwargs, .. } => Some(kwargs),
            _ => None,
        }
    }

    /// The error URI and payload sent when a handler returns this error.
    ///
    /// [`CallError::InvalidPayload`] becomes `wamp.error.invalid_argument` and
    /// [`CallError::ConnectionClosed`], [`CallError::ConnectionLost`] and
    /// [`CallError::NotConnected`] become `wamp.error.runtime_error`, each with the
    /// error text as the only positional argument.
    pub fn to_wire(&self) -> (Uri, Payload) {
        match self {
            CallError::Application { uri, args, kwargs } => (
                Uri::new(uri),
                crate::payload::to_payload(args.clone(), kwargs.clone()),
            ),
            CallError::InvalidPayload(m) => (
                Uri::new(uris::INVALID_ARGUMENT),
                Payload::args(vec![Value::Str(m.clone())]),
            ),
            CallError::ConnectionClosed | CallError::ConnectionLost | CallError::NotConnected => (
                Uri::new(uris::RUNTIME_ERROR),
                Payload::args(vec![Value::Str(self.to_string())]),
            ),
        }
    }

    pub(crate) fn from_wire(uri: &Uri, payload: Payload) -> CallError {
        CallError::Application {
            uri: uri.to_string(),
            args: payload.args.unwrap_or_default(),
            kwargs: payload.kwargs.unwrap_or_default(),
        }
    }
}

/// The router's ERROR answer to a request other than a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The error URI, e.g. `wamp.error.not_authorized`.
    pub uri: String,
    /// Positional error arguments.
    pub args: Vec<Value>,
    /// Keyword error arguments.
    pub kwargs: Dict,
}

impl Rejection {
    pub(crate) fn from_wire(uri: &Uri, payload: Payload) -> Rejection {
        Rejection {
            uri: uri.to_string(),
            args: payload.args.unwrap_or_default(),
            kwargs: payload.kwargs.unwrap_or_default(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.uri, first_str(&self.args))
    }
}

/// Why registering or unregistering a procedure failed.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The router refused, e.g. `wamp.error.procedure_already_exists`.
    #[error("registration refused: {0}")]
    Rejected(Rejection),
    /// The session ended before an answer arrived (or was already closed).
    #[error("the session is closed")]
    ConnectionClosed,
    /// The connection dropped before the answer arrived; the client is reconnecting
    /// ([`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)). The request may or
    /// may not have taken effect: it is not retried.
    #[error("the connection was lost before the answer arrived (reconnecting)")]
    ConnectionLost,
    /// The client is disconnected and reconnecting: nothing was sent, so retrying later is
    /// safe ([`Client::state`](crate::Client::state) tells when it is back).
    #[error("not connected (the client is reconnecting); nothing was sent")]
    NotConnected,
}

/// Why subscribing or unsubscribing failed.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The router refused, e.g. `wamp.error.not_authorized`.
    #[error("subscription refused: {0}")]
    Rejected(Rejection),
    /// The session ended before an answer arrived (or was already closed).
    #[error("the session is closed")]
    ConnectionClosed,
    /// The connection dropped before the answer arrived; the client is reconnecting
    /// ([`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)). The request may or
    /// may not have taken effect: it is not retried.
    #[error("the connection was lost before the answer arrived (reconnecting)")]
    ConnectionLost,
    /// The client is disconnected and reconnecting: nothing was sent, so retrying later is
    /// safe ([`Client::state`](crate::Client::state) tells when it is back).
    #[error("not connected (the client is reconnecting); nothing was sent")]
    NotConnected,
}

/// Why a publication failed.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The router refused an acknowledged publication.
    #[error("publication refused: {0}")]
    Rejected(Rejection),
    /// The session ended before the publication was queued or acknowledged.
    #[error("the session is closed")]
    ConnectionClosed,
    /// The connection dropped before the answer arrived; the client is reconnecting
    /// ([`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)). The request may or
    /// may not have taken effect: it is not retried.
    #[error("the connection was lost before the answer arrived (reconnecting)")]
    ConnectionLost,
    /// The client is disconnected and reconnecting: nothing was sent, so retrying later is
    /// safe ([`Client::state`](crate::Client::state) tells when it is back).
    #[error("not connected (the client is reconnecting); nothing was sent")]
    NotConnected,
    /// The arguments could not be encoded.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
}

/// Why [`Client::leave`](crate::Client::leave) did not end with the router's GOODBYE reply.
///
/// Either way the session is closed afterwards.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum LeaveError {
    /// The router did not answer GOODBYE in time; the socket was closed anyway.
    #[error("the router did not answer GOODBYE in time")]
    Timeout,
    /// The session had already ended (or ended otherwise while leaving), as described.
    #[error("the session had already ended: {0}")]
    Closed(CloseReason),
}

/// Any error of this crate, so `?` works across operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting or joining failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// Registering or unregistering failed.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// Subscribing or unsubscribing failed.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Leaving did not complete cleanly.
    #[error(transparent)]
    Leave(#[from] LeaveError),
}

/// `": message"` for an optional message.
fn suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

/// `": text"` when the first argument is a string (the usual error message convention).
fn first_str(args: &[Value]) -> String {
    match args.first() {
        Some(Value::Str(s)) => format!(": {s}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_error_constructors_and_accessors() {
        let e = CallError::new("com.example.oops")
            .with_args([1, 2])
            .with_kwargs([("k", "v")]);
        assert_eq!(e.uri(), Some("com.example.oops"));
        assert_eq!(e.args(), &[Value::UInt(1), Value::UInt(2)]);
        assert_eq!(e.kwargs().and_then(|k| k.get("k")), Some(&Value::from("v")));
        assert_eq!(CallError::ConnectionClosed.uri(), None);
        assert_eq!(
            CallError::runtime("boom").to_string(),
            "wamp.error.runtime_error: boom"
        );
    }

    #[test]
    fn call_error_wire_form() {
        let (uri, p) = CallError::new("a.b").to_wire();
        assert_eq!(uri.as_str(), "a.b");
        assert!(p.is_empty(), "no empty [] / {{}} tail");

        let (uri, p) = CallError::new("a.b").with_kwargs([("x", 1)]).to_wire();
        assert_eq!(uri.as_str(), "a.b");
        assert_eq!(p.args, Some(vec![]));
        assert_eq!(p.kwargs.map(|k| k.len()), Some(1));

        let (uri, p) = CallError::InvalidPayload("bad".into()).to_wire();
        assert_eq!(uri.as_str(), uris::INVALID_ARGUMENT);
        assert_eq!(p.args, Some(vec![Value::from("bad")]));

        let (uri, _) = CallError::ConnectionClosed.to_wire();
        assert_eq!(uri.as_str(), uris::RUNTIME_ERROR);
    }

    #[test]
    fn connect_error_messages() {
        let e = ConnectError::Aborted {
            reason: "wamp.error.no_such_realm".into(),
            message: Some("no realm x".into()),
        };
        assert_eq!(
            e.to_string(),
            "the router refused the session: wamp.error.no_such_realm: no realm x"
        );
        let e = ConnectError::NoSerializer {
            offered: vec!["wamp.2.msgpack", "wamp.2.json"],
        };
        assert!(e.to_string().contains("wamp.2.msgpack, wamp.2.json"));
        let e = ConnectError::AuthenticationFailed {
            reason: "wamp.error.authentication_failed".into(),
            message: Some("the credentials were not accepted".into()),
        };
        assert_eq!(
            e.to_string(),
            "authentication failed: wamp.error.authentication_failed: the credentials were not accepted"
        );
        let e = ConnectError::ChallengeRefused {
            method: "wampcra".into(),
            reason: "too many iterations".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot answer the router's wampcra CHALLENGE: too many iterations"
        );
    }
}
