//! `[[transport]]`: a tagged choice (`type = "websocket" | "rawsocket"`), each listening on
//! TCP (`bind`) or, for RawSocket, a Unix socket (`unix_socket`).
//!
//! What the router uses; `transport_file.rs` parses and checks what the file says (an
//! option of the other type is an error naming `transport[i].key` and its line).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::SerializerName;

/// One listening transport (`[[transport]]`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TransportConfig {
    /// WebSocket (RFC 6455) with WAMP subprotocols, over TCP.
    WebSocket(WebSocketTransport),
    /// RawSocket (the WAMP spec's length-prefixed framing), over TCP or a Unix socket.
    RawSocket(RawSocketTransport),
}

impl TransportConfig {
    /// Where the transport listens.
    pub fn listen(&self) -> &Listen {
        match self {
            TransportConfig::WebSocket(t) => &t.listen,
            TransportConfig::RawSocket(t) => &t.listen,
        }
    }

    /// The most connections the transport holds at once.
    pub fn max_connections(&self) -> usize {
        match self {
            TransportConfig::WebSocket(t) => t.max_connections,
            TransportConfig::RawSocket(t) => t.max_connections,
        }
    }

    /// Keep-alive: (interval, timeout) in milliseconds; an interval of 0 sends no pings.
    pub fn keepalive_ms(&self) -> (u64, u64) {
        match self {
            TransportConfig::WebSocket(t) => (t.keepalive_interval_ms, t.keepalive_timeout_ms),
            TransportConfig::RawSocket(t) => (t.keepalive_interval_ms, t.keepalive_timeout_ms),
        }
    }

    /// TLS on this transport, if configured.
    pub fn tls(&self) -> Option<&TlsConfig> {
        match self {
            TransportConfig::WebSocket(t) => t.tls.as_ref(),
            TransportConfig::RawSocket(t) => t.tls.as_ref(),
        }
    }

    /// The authentication methods sessions on this transport may use (`None`: every method
    /// their realm allows).
    pub fn auth_methods(&self) -> Option<&[AuthMethod]> {
        match self {
            TransportConfig::WebSocket(t) => t.auth_methods.as_deref(),
            TransportConfig::RawSocket(t) => t.auth_methods.as_deref(),
        }
    }
}

/// Where a transport listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (`bind = "127.0.0.1:8080"`; port 0 picks a free port).
    Tcp(SocketAddr),
    /// A Unix domain socket (`unix_socket = "/run/wamp.sock"`), with its file mode.
    Unix {
        /// The socket's path; a stale socket file there is replaced.
        path: PathBuf,
        /// The permission bits set on the socket file (`unix_socket_mode = 0o660`).
        mode: Option<u32>,
    },
}

/// A WebSocket transport (`type = "websocket"`, the default).
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketTransport {
    /// Where it listens.
    pub listen: Listen,
    /// The HTTP path of the WebSocket endpoint.
    pub path: String,
    /// Serializers offered, as `json` / `msgpack` / `cbor`.
    pub serializers: Vec<SerializerName>,
    /// The largest WAMP message accepted, in bytes.
    pub max_message_size: usize,
    /// Allowed `Origin` header values; `*` wildcards are allowed. Empty allows all.
    pub allowed_origins: Vec<String>,
    /// The most connections held at once; more get HTTP 503.
    pub max_connections: usize,
    /// The authentication methods allowed on this transport (default: all the realm allows).
    pub auth_methods: Option<Vec<AuthMethod>>,
    /// TLS (`wss://`, RawSocket over TLS), if configured.
    pub tls: Option<TlsConfig>,
    /// Milliseconds of silence after which the router pings the peer (0: never).
    pub keepalive_interval_ms: u64,
    /// Milliseconds a pinged peer has to send anything before it is closed.
    pub keepalive_timeout_ms: u64,
    /// The HTTP long-poll transport on this port, if enabled.
    pub longpoll: Option<LongPollConfig>,
    /// `GET /metrics` on this port: the Prometheus / OpenMetrics text.
    pub metrics: bool,
    /// `GET /health` on this port: 200 while serving, 503 once shutting down.
    pub health: bool,
}

/// The WAMP HTTP long-poll transport on a WebSocket transport's port
/// (`longpoll = { path = "/lp" }`): `POST <path>/open`, then `<path>/<id>/send|receive|close`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongPollConfig {
    /// The base path (must differ from the WebSocket path).
    pub path: String,
    /// Milliseconds an idle `receive` is held before it is answered empty (autobahn-js
    /// gives up after 12 s).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Milliseconds a transport may go unpolled before it is dropped (its session leaves).
    #[serde(default = "default_session_timeout")]
    pub session_timeout_ms: u64,
}

fn default_request_timeout() -> u64 {
    9_000
}

fn default_session_timeout() -> u64 {
    30_000
}

/// A RawSocket transport (`type = "rawsocket"`).
#[derive(Debug, Clone, PartialEq)]
pub struct RawSocketTransport {
    /// Where it listens.
    pub listen: Listen,
    /// Serializers accepted, as `json` / `msgpack` / `cbor` (RawSocket serializer ids 1, 2,
    /// 3); others get handshake error 1.
    pub serializers: Vec<SerializerName>,
    /// The largest WAMP message accepted, in bytes; the handshake announces the largest
    /// power of two (512 B to 16 MiB) not above it.
    pub max_message_size: usize,
    /// The smallest maximum message length a client may announce (handshake error 2 below).
    pub min_client_max_message_size: usize,
    /// The most connections held at once; more get handshake error 4.
    pub max_connections: usize,
    /// The authentication methods allowed on this transport (default: all the realm allows).
    pub auth_methods: Option<Vec<AuthMethod>>,
    /// TLS (`wss://`, RawSocket over TLS), if configured.
    pub tls: Option<TlsConfig>,
    /// Milliseconds of silence after which the router pings the peer (0: never).
    pub keepalive_interval_ms: u64,
    /// Milliseconds a pinged peer has to send anything before it is closed.
    pub keepalive_timeout_ms: u64,
}

/// An authentication method (WAMP spec, "Authentication").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// No credentials; the realm's anonymous role.
    Anonymous,
    /// A shared ticket (password).
    Ticket,
    /// WAMP challenge-response with a shared secret.
    #[serde(rename = "wampcra")]
    WampCra,
    /// Ed25519 public-key signatures.
    Cryptosign,
    /// The TLS client certificate (its subject CN is the authid).
    Tls,
}

impl AuthMethod {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Ticket => "ticket",
            AuthMethod::WampCra => "wampcra",
            AuthMethod::Cryptosign => "cryptosign",
            AuthMethod::Tls => "tls",
        }
    }

    /// The method named `name`, if it is one the router implements.
    pub fn parse(name: &str) -> Option<AuthMethod> {
        Some(match name {
            "anonymous" => AuthMethod::Anonymous,
            "ticket" => AuthMethod::Ticket,
            "wampcra" => AuthMethod::WampCra,
            "cryptosign" => AuthMethod::Cryptosign,
            "tls" => AuthMethod::Tls,
            _ => return None,
        })
    }
}

/// TLS on a transport (`tls = { certificate = "...", key = "..." }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), leaf first.
    pub certificate: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates are verified against; without it
    /// clients are not asked for one.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a client must present a certificate (`required`) or may
    /// (`optional`, the default).
    #[serde(default)]
    pub client_certificates: ClientCertificates,
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertificates {
    /// A client may present one (and authenticate with method `tls`).
    #[default]
    Optional,
    /// A client without a valid certificate is refused in the TLS handshake.
    Required,
}
