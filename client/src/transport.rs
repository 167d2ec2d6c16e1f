//! The transports under a session: WebSocket (`ws://`, over TLS `wss://`) and RawSocket over
//! TCP (`rs://`, `tcp://`; over TLS `rss://`, `tcps://`) or a Unix domain socket
//! (`unix://`).
//!
//! A [`Transport`] carries whole WAMP messages: encoded frames out, decoded messages in. The
//! connection task drives it through the `poll_*` methods (so that it can read, write and
//! take commands at once); the handshake uses the async helpers on `dyn Transport`.

mod rawsocket;
mod websocket;

use std::future::poll_fn;
use std::task::{Context, Poll};

use tokio::net::TcpStream;
use wamp_proto::{DecodeError, Encoded, Message, Serializer};

use crate::error::{ConnectError, TransportError};
use crate::tls::{self, TlsOptions};

/// One WAMP connection: sends encoded messages, receives decoded ones.
///
/// `poll_ready`, `start_send`, `poll_flush` and `poll_close` follow `futures::Sink`:
/// `start_send` only buffers, `poll_flush` writes everything buffered out.
pub(crate) trait Transport: Send + 'static {
    /// The next message from the peer; `None` at the end of the stream. Also writes out
    /// what the transport answers by itself (pongs).
    fn poll_recv(&mut self, cx: &mut Context<'_>)
        -> Poll<Option<Result<Incoming, TransportError>>>;

    /// Ready for [`Transport::start_send`] (there is room in the write buffer).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// Buffers one message; at most [`Transport::max_message_len`] octets long.
    fn start_send(&mut self, frame: Encoded) -> Result<(), TransportError>;

    /// Writes out everything buffered.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// Flushes and closes the sending side (WebSocket close frame, or socket shutdown).
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// The longest message the peer accepts, in octets.
    fn max_message_len(&self) -> usize;

    /// Buffers a keep-alive ping (a WebSocket ping, a RawSocket PING), like
    /// [`Transport::start_send`]: after `poll_ready`, written out by `poll_flush`.
    fn start_ping(&mut self) -> Result<(), TransportError>;

    /// Whether anything (a message, a ping, a pong) arrived since the last call.
    fn take_activity(&mut self) -> bool;
}

/// What a transport received.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A WAMP message, or why its frame does not decode.
    Message(Result<Message, DecodeError>),
    /// The peer closed the connection in an orderly way (a WebSocket close frame), with a
    /// description.
    Closed(Option<String>),
}

impl dyn Transport {
    /// Sends one message and flushes.
    pub(crate) async fn send(&mut self, frame: Encoded) -> Result<(), TransportError> {
        poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send(frame)?;
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Buffers one message, waiting for room first.
    pub(crate) async fn feed(&mut self, frame: Encoded) -> Result<(), TransportError> {
        poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send(frame)
    }

    /// The next message; `None` at the end of the stream.
    pub(crate) async fn recv(&mut self) -> Option<Result<Incoming, TransportError>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Flushes and closes the sending side.
    pub(crate) async fn close(&mut self) -> Result<(), TransportError> {
        poll_fn(|cx| self.poll_close(cx)).await
    }
}

/// A transport, boxed: the connection task does not care which one it drives.
pub(crate) type BoxTransport = Box<dyn Transport>;

/// Where a URL points.
#[derive(Debug, PartialEq)]
enum Endpoint<'a> {
    /// `ws://...` or `wss://...`: the whole URL goes to the WebSocket client.
    WebSocket { tls: bool },
    /// `rs://host:port` or `tcp://host:port`; over TLS `rss://` or `tcps://`.
    Tcp { addr: &'a str, tls: bool },
    /// `unix:///path/to/socket`.
    Unix(&'a str),
}

/// Parses the scheme and, for RawSocket, the address.
fn endpoint(url: &str) -> Result<Endpoint<'_>, String> {
    const SCHEMES: &str =
        "the scheme must be ws://, wss://, rs://, tcp://, rss://, tcps:// or unix://";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(SCHEMES.into());
    };
    let scheme_lower = scheme.to_ascii_lowercase();
    match scheme_lower.as_str() {
        "ws" | "wss" => Ok(Endpoint::WebSocket {
            tls: scheme_lower == "wss",
        }),
        "rs" | "tcp" | "rss" | "tcps" => {
            let addr = rest.strip_suffix('/').unwrap_or(rest);
            let port = addr.rsplit_once(':').map(|(_, p)| p);
            if addr.contains(['/', '?', '#', '@']) {
                Err(format!("a {scheme}:// URL is host:port, without a path"))
            } else if !port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                Err(format!(
                    "a {scheme}:// URL needs a port (e.g. {scheme}://127.0.0.1:8081)"
                ))
            } else {
                let tls = matches!(scheme_lower.as_str(), "rss" | "tcps");
                Ok(Endpoint::Tcp { addr, tls })
            }
        }
        "unix" if rest.starts_with('/') && rest.len() > 1 => Ok(Endpoint::Unix(rest)),
        "unix" => Err("a unix:// URL needs an absolute path (unix:///path/to/socket)".into()),
        _ => Err(SCHEMES.into()),
    }
}

/// A TCP connection to `addr` (`host:port`), without Nagle's delay: the connection task
/// batches its writes itself.
async fn tcp(addr: impl tokio::net::ToSocketAddrs) -> Result<TcpStream, ConnectError> {
    let transport = |e: std::io::Error| ConnectError::Transport(e.into());
    let stream = TcpStream::connect(addr).await.map_err(transport)?;
    stream.set_nodelay(true).map_err(transport)?;
    Ok(stream)
}

/// Opens the connection `url` names (with TLS as `options` say, for `wss://` and `rss://`)
/// and agrees on a serializer from `preferred` (WebSocket: the router picks from the offer;
/// RawSocket: the first one is the only one offered).
pub(crate) async fn open(
    url: &str,
    preferred: &[Serializer],
    options: &TlsOptions,
) -> Result<(BoxTransport, Serializer), ConnectError> {
    let invalid_url = |reason: String| ConnectError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let serializer = preferred.first().copied().unwrap_or(Serializer::MsgPack);
    match endpoint(url).map_err(invalid_url)? {
        Endpoint::WebSocket { tls } => {
            websocket::connect(url, preferred, tls.then_some(options)).await
        }
        Endpoint::Tcp { addr, tls: false } => {
            let rs = rawsocket::RawSocket::connect(tcp(addr).await?, serializer).await?;
            Ok((Box::new(rs), serializer))
        }
        Endpoint::Tcp { addr, tls: true } => {
            let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
            let name = tls::server_name(host).map_err(invalid_url)?;
            let stream = tls::handshake(tcp(addr).await?, name, host, options).await?;
            let rs = rawsocket::RawSocket::connect(stream, serializer).await?;
            Ok((Box::new(rs), serializer))
        }
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| ConnectError::Transport(e.into()))?;
            let rs = rawsocket::RawSocket::connect(stream, serializer).await?;
            Ok((Box::new(rs), serializer))
        }
        #[cfg(not(unix))]
        Endpoint::Unix(_) => Err(invalid_url(
            "Unix domain sockets are not supported on this platform".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_transport() {
        let ws = |tls| Ok(Endpoint::WebSocket { tls });
        let tcp = |addr, tls| Ok(Endpoint::Tcp { addr, tls });
        assert_eq!(endpoint("ws://127.0.0.1:8080/ws"), ws(false));
        assert_eq!(endpoint("WSS://localhost/ws"), ws(true));
        assert_eq!(
            endpoint("rs://127.0.0.1:8081"),
            tcp("127.0.0.1:8081", false)
        );
        assert_eq!(
            endpoint("tcp://localhost:8081/"),
            tcp("localhost:8081", false)
        );
        assert_eq!(endpoint("RS://[::1]:9"), tcp("[::1]:9", false));
        assert_eq!(
            endpoint("rss://localhost:8443"),
            tcp("localhost:8443", true)
        );
        assert_eq!(endpoint("tcps://[::1]:9/"), tcp("[::1]:9", true));
        assert_eq!(
            endpoint("unix:///run/wamp.sock"),
            Ok(Endpoint::Unix("/run/wamp.sock"))
        );
        for bad in [
            "rs://127.0.0.1",
            "rs://127.0.0.1:",
            "tcp://host:80/ws",
            "tcp://host:port",
            "unix://relative.sock",
            "unix://",
            "rss://x",
            "tcps://x:1/path",
            "http://x/ws",
            "127.0.0.1:8081",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }
}
