//! Transports: byte streams and their framings, nothing about WAMP state.
//!
//! - [`framing`]: what the connection driver needs of a framing.
//! - [`connection`]: one connection's reads and vectored writes, generic over the stream
//!   (TCP, Unix socket, TLS later) and the framing.
//! - [`reader`]: the read buffer (one per worker thread) messages are sliced from.
//! - [`websocket`]: the HTTP upgrade (on any stream) and RFC 6455 framing.
//! - [`http`]: plain-HTTP routes on the WebSocket port (hyper), [`longpoll`] among them.
//! - [`rawsocket`]: the WAMP RawSocket handshake and length-prefixed framing.
//! - [`tls`]: rustls on top of any stream, under either framing.
//! - [`fuzzing`]: the properties the cargo-fuzz targets check (`router/fuzz`).

pub(crate) mod connection;
pub(crate) mod framing;
pub(crate) mod fuzzing;
pub(crate) mod http;
pub(crate) mod longpoll;
pub(crate) mod rawsocket;
pub(crate) mod reader;
pub(crate) mod tls;
pub(crate) mod websocket;
