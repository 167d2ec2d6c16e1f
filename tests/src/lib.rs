//! Test harness for wamp-router: a router on port 0 and a raw WAMP peer over a real socket.
//!
//! [`TestRouter`] runs the real router in-process; [`RawPeer`] speaks WAMP frame by frame so
//! tests can send exactly the (bad) input they mean and see exactly what comes back;
//! [`rawsocket::RsPeer`] does the same over RawSocket (TCP or a Unix socket). [`auth`] logs
//! a raw peer in (CHALLENGE answered with `wamp_auth`), [`client`] joins our own client, and
//! [`payloads`] holds what the interop peers send and print.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wamp_proto::message::{Call, Hello, Invocation, Register, Subscribe, Welcome, Yield};
use wamp_proto::options::dict;
use wamp_proto::{Dict, Encoded, Id, Message, Payload, Serializer, Uri, Value};
use wamp_router::{Config, Server};

pub mod auth;
pub mod client;
pub mod cluster;
pub mod fuzz;
pub mod http;
pub mod interop;
pub mod interop_auth;
pub mod interop_meta;
pub mod payloads;
mod poll;
mod procs;
pub mod proxy;
pub mod rawsocket;
pub mod reconnect;
pub mod spread;

/// How long a test waits for something that should happen (never a synchronisation sleep:
/// only the upper bound of a wait that normally ends at once).
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub async fn within<F: std::future::IntoFuture>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// A router running in-process on a free port; with `WAMP_TEST_TOPOLOGY=cluster3`, three
/// routers of one cluster that the peers are spread over (see [`spread`]).
#[derive(Debug)]
pub struct TestRouter {
    server: Option<Server>,
    url: String,
    spread: Option<spread::Spread>,
}

/// The default test configuration: one WebSocket transport on port 0 (every serializer),
/// realm `realm1`.
pub const TEST_CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json", "msgpack", "cbor"]

[[realm]]
name = "realm1"
"#;

/// A WebSocket transport (`urls()[0]`) and a RawSocket one (`urls()[1]`), both with every
/// serializer, realm `realm1`.
pub const BOTH_TRANSPORTS_CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json", "msgpack", "cbor"]

[[transport]]
type = "rawsocket"
bind = "127.0.0.1:0"
serializers = ["json", "msgpack", "cbor"]

[[realm]]
name = "realm1"
"#;

impl TestRouter {
    /// Starts a router with [`TEST_CONFIG`].
    pub async fn start() -> TestRouter {
        TestRouter::with_config(TEST_CONFIG).await
    }

    /// Starts a router with the given TOML configuration (use port 0); in the parity
    /// topology, three nodes of a cluster from it.
    pub async fn with_config(toml: &str) -> TestRouter {
        init_tracing();
        let (server, spread) = if spread::enabled() {
            let (first, rest) = spread::start(toml).await;
            (first, Some(rest))
        } else {
            let config = Config::from_toml(toml, "<test>").expect("test config is valid");
            (Server::start(config).await.expect("router starts"), None)
        };
        let url = server.url();
        TestRouter {
            server: Some(server),
            url,
            spread,
        }
    }

    /// The URL of the router's first transport (`ws://`, `rs://` or `unix://`; all of them
    /// in `server().urls()`); in the parity topology, each node's WebSocket URL in turn.
    pub fn url(&self) -> &str {
        match &self.spread {
            Some(s) => s.next_url(),
            None => &self.url,
        }
    }

    /// The running server (node 1 in the parity topology).
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server is running")
    }

    /// Shuts the router (every node) down gracefully (GOODBYE to every session).
    pub async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        if let Some(s) = self.spread.take() {
            s.shutdown().await;
        }
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// What a raw peer observed when it expected the connection to end.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// A close frame with this code.
    CloseFrame(Option<u16>),
    /// The TCP connection ended without a close frame, or with an error.
    Dropped,
}

/// A WAMP peer that sends and receives individual frames.
#[derive(Debug)]
pub struct RawPeer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The negotiated serializer.
    pub serializer: Serializer,
    /// The session id, once joined.
    pub session: Option<Id>,
    next_request: u64,
    /// Frames that arrived while the parity harness waited (received before the socket).
    inbox: VecDeque<WsMessage>,
    /// The socket ended while the parity harness waited.
    ended: bool,
    /// Its TestRouter's group in the parity topology.
    spread: Option<spread::sync::PeerLink>,
}

impl RawPeer {
    /// Opens a WebSocket offering exactly `protocols` (and an optional Origin header). In
    /// the parity topology a URL of any node goes to the TestRouter's next node.
    pub async fn connect_with(
        url: &str,
        protocols: &[&str],
        origin: Option<&str>,
    ) -> Result<RawPeer, tokio_tungstenite::tungstenite::Error> {
        let (url, spread) = match spread::route(url) {
            Some((routed, link)) => (routed, Some(link)),
            None => (url.to_owned(), None),
        };
        let mut req = url.into_client_request()?;
        if !protocols.is_empty() {
            let v = HeaderValue::from_str(&protocols.join(", ")).expect("valid header");
            req.headers_mut().insert("Sec-WebSocket-Protocol", v);
        }
        if let Some(o) = origin {
            req.headers_mut()
                .insert("Origin", HeaderValue::from_str(o).expect("valid header"));
        }
        let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(Serializer::from_subprotocol)
            .expect("router selected a WAMP subprotocol");
        Ok(RawPeer {
            ws,
            serializer: chosen,
            session: None,
            next_request: 0,
            inbox: VecDeque::new(),
            ended: false,
            spread,
        })
    }

    /// Opens a WebSocket speaking `serializer`.
    pub async fn connect(url: &str, serializer: Serializer) -> RawPeer {
        RawPeer::connect_with(url, &[serializer.subprotocol()], None)
            .await
            .expect("websocket connects")
    }

    /// Connects and joins `realm` with all four client roles; panics unless WELCOME comes.
    pub async fn join(url: &str, realm: &str, serializer: Serializer) -> (RawPeer, Welcome) {
        RawPeer::join_hello(url, serializer, &hello(realm)).await
    }

    /// Joins `realm` with all four roles, announcing `features` as `(role, feature)` pairs
    /// (`("callee", "call_canceling")`); panics unless WELCOME comes.
    pub async fn join_with_features(
        url: &str,
        realm: &str,
        serializer: Serializer,
        features: &[(&str, &str)],
    ) -> RawPeer {
        let mut roles = Dict::new();
        for role in ["caller", "callee", "publisher", "subscriber"] {
            let f: Dict = features
                .iter()
                .filter(|(r, _)| *r == role)
                .map(|(_, f)| ((*f).to_owned(), Value::Bool(true)))
                .collect();
            roles.insert(role.into(), Value::Dict(dict([("features", f.into())])));
        }
        let hello = Hello {
            realm: Uri::new(realm),
            details: dict([("roles", roles.into())]),
        };
        RawPeer::join_hello(url, serializer, &hello.into()).await.0
    }

    async fn join_hello(url: &str, serializer: Serializer, hello: &Message) -> (RawPeer, Welcome) {
        let mut p = RawPeer::connect(url, serializer).await;
        p.send(hello).await;
        match p.recv().await {
            Message::Welcome(w) => {
                p.session = Some(w.session);
                (p, w)
            }
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    /// A fresh sequential request id.
    pub fn request(&mut self) -> Id {
        self.next_request += 1;
        Id::new(self.next_request).expect("in range")
    }

    /// SUBSCRIBEs and returns the subscription id; panics unless SUBSCRIBED comes.
    pub async fn subscribe(&mut self, topic: &str, options: Dict) -> Id {
        let r = self.request();
        let topic = Uri::new(topic);
        self.send(
            &Subscribe {
                request: r,
                options,
                topic,
            }
            .into(),
        )
        .await;
        match self.recv().await {
            Message::Subscribed(s) if s.request == r => s.subscription,
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        }
    }

    /// REGISTERs and returns the registration id; panics unless REGISTERED comes.
    pub async fn register(&mut self, procedure: &str, options: Dict) -> Id {
        let r = self.request();
        let procedure = Uri::new(procedure);
        self.send(
            &Register {
                request: r,
                options,
                procedure,
            }
            .into(),
        )
        .await;
        match self.recv().await {
            Message::Registered(m) if m.request == r => m.registration,
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    /// Sends a CALL of `procedure` with `payload` and no options; returns its request id
    /// (the answer is for the caller to [`RawPeer::recv`]).
    pub async fn send_call(&mut self, procedure: &str, payload: Payload) -> Id {
        self.send_call_with(procedure, Dict::new(), payload).await
    }

    /// Sends a CALL of `procedure` with `options` and `payload`; returns its request id.
    pub async fn send_call_with(&mut self, procedure: &str, options: Dict, payload: Payload) -> Id {
        let request = self.request();
        let procedure = Uri::new(procedure);
        self.send(
            &Call {
                request,
                options,
                procedure,
                payload,
            }
            .into(),
        )
        .await;
        request
    }

    /// Expects the next message to be an INVOCATION and answers it with a YIELD of
    /// `payload`; returns the invocation.
    pub async fn answer_invocation(&mut self, payload: Payload) -> Invocation {
        let inv = match self.recv().await {
            Message::Invocation(inv) => inv,
            other => panic!("expected INVOCATION, got {other:?}"),
        };
        let answer = Yield {
            request: inv.request,
            options: Dict::new(),
            payload,
        };
        self.send(&answer.into()).await;
        inv
    }

    /// Sends a message with the negotiated serializer (in the parity topology, a CALL only
    /// once the group's registrations are visible on this node: [`spread::sync`]).
    pub async fn send(&mut self, msg: &Message) {
        if self.spread.is_some() {
            self.spread_before_send(msg).await;
        }
        self.send_now(msg).await;
    }

    async fn send_now(&mut self, msg: &Message) {
        let frame = match self.serializer.encode(msg).expect("encodes") {
            Encoded::Text(s) => WsMessage::Text(s.into()),
            Encoded::Binary(b) => WsMessage::Binary(b.into()),
        };
        self.ws.send(frame).await.expect("send");
    }

    /// Sends a raw frame (for malformed input, or exact bytes). In the parity topology a
    /// frame that decodes gets the same hook as [`RawPeer::send`] (the registration wait).
    pub async fn send_frame(&mut self, frame: WsMessage) {
        if self.spread.is_some() {
            // In the parity topology a frame that decodes is waited for like `send`'s.
            let decoded = match &frame {
                WsMessage::Text(t) => self.serializer.decode(t.as_bytes()).ok(),
                WsMessage::Binary(b) => self.serializer.decode(b).ok(),
                _ => None,
            };
            if let Some(m) = decoded {
                self.spread_before_send(&m).await;
            }
        }
        self.ws.send(frame).await.expect("send");
    }

    /// Sends a raw frame; false if the connection is gone (the router may close at any time).
    pub async fn try_send_frame(&mut self, frame: WsMessage) -> bool {
        tokio::time::timeout(WAIT, self.ws.send(frame))
            .await
            .expect("send in time")
            .is_ok()
    }

    /// Receives the next WAMP message (bounded by [`WAIT`]); panics on close or timeout.
    pub async fn recv(&mut self) -> Message {
        match self.try_recv().await {
            Ok(m) => m,
            Err(c) => panic!("expected a message, connection ended: {c:?}"),
        }
    }

    /// Receives the next WAMP message, or how the connection ended.
    pub async fn try_recv(&mut self) -> Result<Message, Closed> {
        let bytes = self.try_recv_bytes().await?;
        Ok(self
            .serializer
            .decode(&bytes)
            .expect("router sent a valid message"))
    }

    /// Waits as long as it takes for the next WAMP message, or how the connection ended.
    pub async fn next_message(&mut self) -> Result<Message, Closed> {
        loop {
            return match self.next_frame().await {
                Some(Ok(WsMessage::Text(t))) => Ok(self.decode(t.as_bytes())),
                Some(Ok(WsMessage::Binary(b))) => Ok(self.decode(&b)),
                Some(Ok(WsMessage::Close(f))) => Err(Closed::CloseFrame(f.map(|f| f.code.into()))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Err(Closed::Dropped),
            };
        }
    }

    /// The next frame: first any the parity harness kept, then the socket's.
    async fn next_frame(
        &mut self,
    ) -> Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>> {
        if let Some(f) = self.inbox.pop_front() {
            return Some(Ok(f));
        }
        if self.ended {
            return None;
        }
        self.read_socket().await
    }

    fn decode(&self, bytes: &[u8]) -> Message {
        self.serializer
            .decode(bytes)
            .expect("router sent a valid message")
    }

    /// Receives the bytes of the next WAMP message as they came over the wire.
    pub async fn recv_bytes(&mut self) -> Vec<u8> {
        match self.try_recv_bytes().await {
            Ok(b) => b,
            Err(c) => panic!("expected a message, connection ended: {c:?}"),
        }
    }

    async fn try_recv_bytes(&mut self) -> Result<Vec<u8>, Closed> {
        Ok(match self.try_recv_data_frame().await? {
            WsMessage::Text(t) => t.as_bytes().to_vec(),
            other => other.into_data().to_vec(),
        })
    }

    /// Receives the next data frame (text or binary) as it came, or how the connection ended.
    pub async fn try_recv_data_frame(&mut self) -> Result<WsMessage, Closed> {
        loop {
            let next = tokio::time::timeout(WAIT, self.next_frame())
                .await
                .expect("timed out waiting for a message");
            return match next {
                Some(Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => Ok(m),
                Some(Ok(WsMessage::Close(f))) => Err(Closed::CloseFrame(f.map(|f| f.code.into()))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Err(Closed::Dropped),
            };
        }
    }

    /// Expects the connection to end (after any messages, which are returned).
    pub async fn until_closed(&mut self) -> (Vec<Message>, Closed) {
        let mut msgs = Vec::new();
        loop {
            match self.try_recv().await {
                Ok(m) => msgs.push(m),
                Err(c) => return (msgs, c),
            }
        }
    }

    /// Receives the next message and checks it is an ABORT with `reason`, then the close.
    pub async fn expect_abort(&mut self, reason: &str) -> wamp_proto::message::Abort {
        let (msgs, _) = self.until_closed().await;
        match msgs.as_slice() {
            [Message::Abort(a)] => {
                assert_eq!(a.reason.as_str(), reason, "{a:?}");
                a.clone()
            }
            other => panic!("expected exactly one ABORT {reason}, got {other:?}"),
        }
    }
}

/// Our client, joined to `realm` at `url` speaking exactly `serializer` (bounded by [`WAIT`]).
pub async fn client(url: &str, realm: &str, serializer: Serializer) -> wamp_client::Client {
    let c = tokio::time::timeout(
        WAIT,
        wamp_client::Client::builder(url)
            .realm(realm)
            .serializer(serializer)
            .connect(),
    )
    .await
    .expect("connect in time")
    .unwrap_or_else(|e| panic!("{url} {serializer:?}: {e:?}"));
    assert_eq!(c.serializer(), serializer);
    c
}

/// A HELLO for `realm` announcing all four client roles.
pub fn hello(realm: &str) -> Message {
    let role = || Value::Dict(dict([("features", Value::Dict(Default::default()))]));
    Hello {
        realm: Uri::new(realm),
        details: dict([(
            "roles",
            Value::Dict(dict([
                ("caller", role()),
                ("callee", role()),
                ("publisher", role()),
                ("subscriber", role()),
            ])),
        )]),
    }
    .into()
}

/// Whether CI is running (then missing prerequisites fail tests instead of skipping them).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}
