//! A minimal WAMP client connection for load generation: WebSocket (`ws://`) or RawSocket
//! over TCP (`rs://`, alias `tcp://`) or a Unix domain socket (`unix:///path`), with the
//! `wamp_proto` codecs.
//!
//! One task owns one [`Conn`]: it reads and writes through the same stream. Writes are
//! `feed`-ed and flushed once per batch of work, so a burst of replies costs one `write`
//! syscall (the RawSocket side, [`crate::rawsocket`], buffers the same way).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri as HttpUri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;
use wamp_proto::message::{Authenticate, Goodbye, Hello};
use wamp_proto::options::dict;
use wamp_proto::{Dict, Encoded, Id, Message, Payload, Serializer, Uri, Value};

use crate::rawsocket::{RawSocket, Stream};

/// Where and how to connect: a loopback URL, a realm and a serializer.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    endpoint: Endpoint,
    pub(crate) realm: String,
    pub(crate) serializer: Serializer,
    /// How sessions authenticate (anonymous when `None`).
    pub(crate) auth: Option<Auth>,
}

/// Credentials every session of a run uses (`--authid` with `--ticket`, `--wampcra-secret`
/// or `--cryptosign-seed`), to measure the join rate per authentication method.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) authid: Option<String>,
    pub(crate) method: AuthMethod,
}

/// One authentication method and its secret.
#[derive(Clone)]
pub(crate) enum AuthMethod {
    Ticket(String),
    WampCra(String),
    Cryptosign(wamp_auth::cryptosign::SigningKey),
}

impl std::fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl AuthMethod {
    fn name(&self) -> &'static str {
        match self {
            AuthMethod::Ticket(_) => "ticket",
            AuthMethod::WampCra(_) => "wampcra",
            AuthMethod::Cryptosign(_) => "cryptosign",
        }
    }

    /// The AUTHENTICATE signature for a CHALLENGE's `extra`.
    fn sign(&self, extra: &Dict) -> anyhow::Result<String> {
        let text = |k: &str| extra.get(k).and_then(Value::as_str);
        Ok(match self {
            AuthMethod::Ticket(t) => t.clone(),
            AuthMethod::WampCra(secret) => {
                let challenge =
                    text("challenge").ok_or_else(|| anyhow!("CHALLENGE without challenge"))?;
                let salting = match (
                    text("salt"),
                    extra.get("iterations").and_then(Value::as_u64),
                    extra.get("keylen").and_then(Value::as_u64),
                ) {
                    (Some(salt), Some(i), Some(k)) => Some(wamp_auth::wampcra::Salting {
                        salt,
                        iterations: u32::try_from(i)?,
                        keylen: usize::try_from(k)?,
                    }),
                    _ => None,
                };
                let key = wamp_auth::wampcra::key(secret, salting).map_err(|e| anyhow!("{e}"))?;
                wamp_auth::wampcra::sign(&key, challenge)
            }
            AuthMethod::Cryptosign(key) => {
                let challenge =
                    text("challenge").ok_or_else(|| anyhow!("CHALLENGE without challenge"))?;
                key.sign_challenge(challenge, None)
                    .map_err(|e| anyhow!("{e}"))?
            }
        })
    }
}

/// The transport and address of a [`Target`].
#[derive(Debug, Clone)]
enum Endpoint {
    /// `ws://HOST:PORT/PATH`: WebSocket.
    WebSocket(SocketAddr),
    /// `rs://HOST:PORT` or `tcp://HOST:PORT`: RawSocket over TCP.
    RawTcp(SocketAddr),
    /// `unix:///PATH`: RawSocket over a Unix domain socket.
    RawUnix(PathBuf),
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
    /// Parses `url` (`ws://`, `rs://`, `tcp://` or `unix://`); a host must be a loopback
    /// address.
    pub(crate) fn new(url: &str, realm: &str, serializer: Serializer) -> anyhow::Result<Target> {
        let endpoint = match url.split_once("://") {
            Some(("rs" | "tcp", _)) => Endpoint::RawTcp(raw_tcp_addr(url)?),
            Some(("unix", path)) if !path.is_empty() => Endpoint::RawUnix(PathBuf::from(path)),
            Some(("unix", _)) => bail!("URL `{url}` has no socket path (unix:///PATH)"),
            _ => Endpoint::WebSocket(ws_addr(url)?),
        };
        Ok(Target {
            url: url.to_owned(),
            endpoint,
            realm: realm.to_owned(),
            serializer,
            auth: None,
        })
    }

    /// The transport's name in the JSON line.
    pub(crate) fn transport(&self) -> &'static str {
        match self.endpoint {
            Endpoint::WebSocket(_) => "websocket",
            Endpoint::RawTcp(_) => "rawsocket-tcp",
            Endpoint::RawUnix(_) => "rawsocket-unix",
        }
    }

    /// The local address to bind for the `n`-th connection: with many connections to one
    /// IPv4 loopback port, spread them over 127.0.0.1, .2, ... so no source address runs out
    /// of ephemeral ports (about 28,000 each).
    fn source_for(addr: SocketAddr, n: usize) -> Option<SocketAddr> {
        const PER_SOURCE: usize = 25_000;
        match addr.ip() {
            IpAddr::V4(_) if n >= PER_SOURCE => {
                let k = u8::try_from(1 + n / PER_SOURCE).unwrap_or(u8::MAX);
                Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, k)), 0))
            }
            _ => None,
        }
    }

    /// Opens the `n`-th TCP connection of this run to `addr` (no Nagle).
    async fn tcp(addr: SocketAddr, n: usize) -> anyhow::Result<TcpStream> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .context("socket")?;
        if let Some(src) = Target::source_for(addr, n) {
            socket.bind(src).with_context(|| format!("bind {src}"))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// The address of a `ws://` URL.
fn ws_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let req = url
        .into_client_request()
        .with_context(|| format!("invalid WebSocket URL `{url}`"))?;
    let uri = req.uri();
    if uri.scheme_str() != Some("ws") {
        bail!("only ws://, rs://, tcp:// and unix:// URLs are supported (got `{url}`)");
    }
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("URL `{url}` has no host"))?;
    loopback(host, uri.port_u16().unwrap_or(80))
}

/// The address of an `rs://HOST:PORT` (or `tcp://`) URL: a port is required, a path is not
/// allowed.
fn raw_tcp_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: HttpUri = url
        .parse()
        .with_context(|| format!("invalid RawSocket URL `{url}`"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        bail!("a RawSocket URL has no path (got `{url}`; rs://HOST:PORT)");
    }
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
        bail!("URL `{url}` needs a host and a port (rs://HOST:PORT)");
    };
    loopback(host, port)
}

/// Resolves `host`; only loopback addresses are accepted.
fn loopback(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?
        .collect();
    addrs
        .iter()
        .copied()
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| {
            anyhow!("`{host}` is not a loopback address: wamp-bench only targets this machine (127.0.0.0/8, ::1)")
        })
}

/// The stream of one connection.
#[derive(Debug)]
enum Link {
    Ws(WebSocketStream<TcpStream>),
    Raw(RawSocket<Stream>),
}

/// One joined WAMP session.
#[derive(Debug)]
pub(crate) struct Conn {
    link: Link,
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
    /// the serializer's subprotocol or the RawSocket handshake with its code, sends HELLO
    /// and waits for WELCOME.
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
        let read_buf = match buf {
            BufSize::Busy => 64 * 1024,
            BufSize::Small => 4096,
        };
        let link = match &t.endpoint {
            Endpoint::WebSocket(addr) => Link::Ws(Conn::websocket(t, *addr, n, read_buf).await?),
            Endpoint::RawTcp(addr) => Link::Raw(
                RawSocket::handshake(
                    Stream::Tcp(Target::tcp(*addr, n).await?),
                    t.serializer,
                    read_buf,
                )
                .await
                .context("RawSocket handshake")?,
            ),
            Endpoint::RawUnix(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connect {}", path.display()))?;
                Link::Raw(
                    RawSocket::handshake(Stream::Unix(stream), t.serializer, read_buf)
                        .await
                        .context("RawSocket handshake")?,
                )
            }
        };
        let mut c = Conn {
            link,
            ser: t.serializer,
            session: Id::new(1).unwrap_or_else(|| unreachable!()),
            next_request: 0,
        };
        let mut details = dict([("roles", client_roles())]);
        if let Some(a) = &t.auth {
            details.insert(
                "authmethods".into(),
                Value::List(vec![a.method.name().into()]),
            );
            if let Some(id) = &a.authid {
                details.insert("authid".into(), id.as_str().into());
            }
            if let AuthMethod::Cryptosign(k) = &a.method {
                details.insert(
                    "authextra".into(),
                    Value::Dict(dict([("pubkey", k.public_key_hex().into())])),
                );
            }
        }
        c.send(
            &Hello {
                realm: Uri::new(&t.realm),
                details,
            }
            .into(),
        )
        .await?;
        let mut answer = c.recv().await?;
        if let (Some(Message::Challenge(ch)), Some(a)) = (&answer, &t.auth) {
            let signature = a.method.sign(&ch.extra)?;
            c.send(
                &Authenticate {
                    signature,
                    extra: Dict::new(),
                }
                .into(),
            )
            .await?;
            answer = c.recv().await?;
        }
        match answer {
            Some(Message::Welcome(w)) => {
                c.session = w.session;
                Ok(c)
            }
            Some(Message::Abort(a)) => bail!("join refused: ABORT {} {:?}", a.reason, a.details),
            Some(m) => bail!("expected WELCOME, got {}", m.name()),
            None => bail!("connection closed before WELCOME"),
        }
    }

    /// The WebSocket handshake with the serializer's subprotocol.
    async fn websocket(
        t: &Target,
        addr: SocketAddr,
        n: usize,
        read_buf: usize,
    ) -> anyhow::Result<WebSocketStream<TcpStream>> {
        let stream = Target::tcp(addr, n).await?;
        let mut req = t.url.as_str().into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(t.serializer.subprotocol()),
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buf)
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let (ws, _resp) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
            .await
            .context("WebSocket handshake")?;
        Ok(ws)
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
        let encoded = self.ser.encode(msg)?;
        match &mut self.link {
            Link::Ws(ws) => {
                let frame = match encoded {
                    Encoded::Text(s) => WsMessage::Text(s.into()),
                    Encoded::Binary(b) => WsMessage::Binary(b.into()),
                };
                ws.feed(frame).await?;
            }
            Link::Raw(rs) => rs.feed(encoded.as_bytes()).await?,
        }
        Ok(())
    }

    /// Writes everything buffered.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.link {
            Link::Ws(ws) => ws.flush().await?,
            Link::Raw(rs) => rs.flush().await?,
        }
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

    /// A RawSocket read: a message's bytes, or `None` when the router closed.
    fn decode_raw(&self, item: anyhow::Result<Option<Bytes>>) -> Decoded {
        match item {
            Ok(Some(b)) => Decoded::Msg(self.ser.decode_shared(&b)),
            Ok(None) => Decoded::Closed,
            Err(e) => Decoded::Err(e),
        }
    }

    /// The next WAMP message; `None` when the connection closed.
    pub(crate) async fn recv(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            let decoded = match &mut self.link {
                Link::Ws(ws) => {
                    let item = ws.next().await;
                    self.decode(item)
                }
                Link::Raw(rs) => {
                    let item = rs.next().await;
                    self.decode_raw(item)
                }
            };
            match decoded {
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
            let decoded = match &mut self.link {
                Link::Ws(ws) => {
                    let item = ws.next().now_or_never()?;
                    self.decode(item)
                }
                Link::Raw(rs) => {
                    let item = rs.next().now_or_never()?;
                    self.decode_raw(item)
                }
            };
            match decoded {
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
            match &mut self.link {
                Link::Ws(ws) => ws.close(None).await?,
                Link::Raw(rs) => rs.shutdown().await?,
            }
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
