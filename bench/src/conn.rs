//! A minimal WAMP client connection for load generation: WebSocket + `wamp_proto` codecs.
//!
//! One task owns one [`Conn`]: it reads and writes through the same `WebSocketStream`.
//! Writes are `feed`-ed and flushed once per batch of work, so a burst of replies costs one
//! `write` syscall.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use wamp_proto::message::{Goodbye, Hello};
use wamp_proto::options::dict;
use wamp_proto::{Dict, Encoded, Id, Message, Payload, Serializer, Uri, Value};

/// Where and how to connect: a loopback WebSocket URL, a realm and a serializer.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) addr: SocketAddr,
    pub(crate) realm: String,
    pub(crate) serializer: Serializer,
}

/// Bytes of the read buffer of each client connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BufSize {
    /// For busy connections (callers, callees, publishers): 64 KiB.
    Busy,
    /// For the many connections of fan-out and idle-session runs: 4 KiB.
    Small,
}

impl Target {
    /// Resolves `url`'s host; only loopback addresses are accepted.
    pub(crate) fn new(url: &str, realm: &str, serializer: Serializer) -> anyhow::Result<Target> {
        let req = url
            .into_client_request()
            .with_context(|| format!("invalid WebSocket URL `{url}`"))?;
        let uri = req.uri();
        if uri.scheme_str() != Some("ws") {
            bail!("only ws:// URLs are supported (got `{url}`)");
        }
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("URL `{url}` has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve `{host}`"))?
            .collect();
        let addr = addrs
            .iter()
            .copied()
            .find(|a| a.ip().is_loopback())
            .ok_or_else(|| {
                anyhow!("`{host}` is not a loopback address: wamp-bench only targets this machine (127.0.0.0/8, ::1)")
            })?;
        Ok(Target {
            url: url.to_owned(),
            addr,
            realm: realm.to_owned(),
            serializer,
        })
    }

    /// The local address to bind for the `n`-th connection: with many connections to one
    /// IPv4 loopback port, spread them over 127.0.0.1, .2, ... so no source address runs out
    /// of ephemeral ports (about 28,000 each).
    fn source_for(&self, n: usize) -> Option<SocketAddr> {
        const PER_SOURCE: usize = 25_000;
        match self.addr.ip() {
            IpAddr::V4(_) if n >= PER_SOURCE => {
                let k = u8::try_from(1 + n / PER_SOURCE).unwrap_or(u8::MAX);
                Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, k)), 0))
            }
            _ => None,
        }
    }
}

/// One joined WAMP session.
#[derive(Debug)]
pub(crate) struct Conn {
    ws: WebSocketStream<TcpStream>,
    ser: Serializer,
    /// The session id from WELCOME.
    pub(crate) session: Id,
    next_request: u64,
}

/// The client roles announced in HELLO (no advanced features).
fn client_roles() -> Value {
    let role = || Value::Dict(Dict::new());
    Value::Dict(dict([
        ("caller", role()),
        ("callee", role()),
        ("publisher", role()),
        ("subscriber", role()),
    ]))
}

impl Conn {
    /// Connects (the `n`-th connection of this run), performs the WebSocket handshake with
    /// the serializer's subprotocol, sends HELLO and waits for WELCOME.
    pub(crate) async fn connect(
        t: &Target,
        n: usize,
        buf: BufSize,
        timeout: Duration,
    ) -> anyhow::Result<Conn> {
        tokio::time::timeout(timeout, Conn::connect_inner(t, n, buf))
            .await
            .map_err(|_| anyhow!("connect + join timed out after {timeout:?}"))?
    }

    async fn connect_inner(t: &Target, n: usize, buf: BufSize) -> anyhow::Result<Conn> {
        let socket = match t.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .context("socket")?;
        if let Some(src) = t.source_for(n) {
            socket.bind(src).with_context(|| format!("bind {src}"))?;
        }
        let stream = socket
            .connect(t.addr)
            .await
            .with_context(|| format!("connect {}", t.addr))?;
        stream.set_nodelay(true)?;
        let mut req = t.url.as_str().into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(t.serializer.subprotocol()),
        );
        let read_buf = match buf {
            BufSize::Busy => 64 * 1024,
            BufSize::Small => 4096,
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buf)
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let (ws, _resp) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
            .await
            .context("WebSocket handshake")?;
        let mut c = Conn {
            ws,
            ser: t.serializer,
            session: Id::new(1).unwrap_or_else(|| unreachable!()),
            next_request: 0,
        };
        c.send(
            &Hello {
                realm: Uri::new(&t.realm),
                details: dict([("roles", client_roles())]),
            }
            .into(),
        )
        .await?;
        match c.recv().await? {
            Some(Message::Welcome(w)) => {
                c.session = w.session;
                Ok(c)
            }
            Some(Message::Abort(a)) => bail!("join refused: ABORT {} {:?}", a.reason, a.details),
            Some(m) => bail!("expected WELCOME, got {}", m.name()),
            None => bail!("connection closed before WELCOME"),
        }
    }

    /// Sends a SUBSCRIBE or REGISTER built around a fresh request id and waits for its
    /// SUBSCRIBED / REGISTERED.
    pub(crate) async fn acknowledged(
        &mut self,
        build: impl FnOnce(Id) -> Message,
    ) -> anyhow::Result<()> {
        let request = self.request_id();
        let m = build(request);
        let what = m.name();
        self.send(&m).await?;
        match self.recv().await? {
            Some(Message::Subscribed(r)) if r.request == request => Ok(()),
            Some(Message::Registered(r)) if r.request == request => Ok(()),
            Some(Message::Error(e)) => bail!("{what} refused: {}", e.error),
            Some(m) => bail!("unexpected {} in reply to {what}", m.name()),
            None => bail!("connection closed"),
        }
    }

    /// A fresh request id (sequential per session).
    pub(crate) fn request_id(&mut self) -> Id {
        self.next_request += 1;
        Id::new(self.next_request).unwrap_or_else(|| unreachable!("2^53 requests"))
    }

    /// Encodes and buffers a message (no flush).
    pub(crate) async fn feed(&mut self, msg: &Message) -> anyhow::Result<()> {
        let frame = match self.ser.encode(msg)? {
            Encoded::Text(s) => WsMessage::Text(s.into()),
            Encoded::Binary(b) => WsMessage::Binary(b.into()),
        };
        self.ws.feed(frame).await?;
        Ok(())
    }

    /// Writes everything buffered.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        self.ws.flush().await?;
        Ok(())
    }

    /// Encodes, buffers and flushes one message.
    pub(crate) async fn send(&mut self, msg: &Message) -> anyhow::Result<()> {
        self.feed(msg).await?;
        self.flush().await
    }

    fn decode(
        &self,
        item: Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>,
    ) -> Decoded {
        match item {
            None => Decoded::Closed,
            // Payloads stay encoded: echoed as they came, read in place with [`args`].
            Some(Ok(WsMessage::Text(t))) => Decoded::Msg(self.ser.decode_shared(&t.into())),
            Some(Ok(WsMessage::Binary(b))) => Decoded::Msg(self.ser.decode_shared(&b)),
            Some(Ok(WsMessage::Close(_))) => Decoded::Closed,
            Some(Ok(_)) => Decoded::Skip,
            Some(Err(e)) => Decoded::Err(e.into()),
        }
    }

    /// The next WAMP message; `None` when the connection closed.
    pub(crate) async fn recv(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            let item = self.ws.next().await;
            match self.decode(item) {
                Decoded::Msg(m) => return Ok(Some(m?)),
                Decoded::Closed => return Ok(None),
                Decoded::Skip => continue,
                Decoded::Err(e) => return Err(e),
            }
        }
    }

    /// A message that is already readable without waiting, if any.
    pub(crate) fn try_recv(&mut self) -> Option<anyhow::Result<Option<Message>>> {
        loop {
            let item = self.ws.next().now_or_never()?;
            match self.decode(item) {
                Decoded::Msg(m) => return Some(m.map(Some).map_err(Into::into)),
                Decoded::Closed => return Some(Ok(None)),
                Decoded::Skip => continue,
                Decoded::Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Leaves politely: GOODBYE, waits (bounded) for the router's GOODBYE, closes.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            self.send(
                &Goodbye {
                    details: Dict::new(),
                    reason: Uri::new(wamp_proto::uris::CLOSE_NORMAL),
                }
                .into(),
            )
            .await?;
            while let Some(m) = self.recv().await? {
                if matches!(m, Message::Goodbye(_)) {
                    break;
                }
            }
            self.ws.close(None).await?;
            anyhow::Ok(())
        })
        .await;
    }
}

/// Reads a received payload's positional arguments as `T` (e.g. a tuple), in place: no
/// value tree is built. `None` without exactly such arguments, or with keyword arguments.
pub(crate) fn args<'a, T: serde::Deserialize<'a>>(p: &'a Payload) -> Option<T> {
    let raw = p.raw.as_ref()?;
    if raw.kwargs_bytes().is_some() {
        return None;
    }
    match raw.serializer() {
        Serializer::Json => serde_json::from_slice(raw.args_bytes()).ok(),
        Serializer::MsgPack => rmp_serde::from_slice(raw.args_bytes()).ok(),
        Serializer::Cbor => minicbor_serde::from_slice(raw.args_bytes()).ok(),
    }
}

enum Decoded {
    Msg(Result<Message, wamp_proto::DecodeError>),
    Closed,
    Skip,
    Err(anyhow::Error),
}
