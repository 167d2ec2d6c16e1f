//! The client over RawSocket (`rs://`, `tcp://`, `unix://`) against a fake router that does
//! the router side of the handshake and the framing by hand.
// Test helpers outside `#[test]` fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use wamp_client::{
    CallError, Client, CloseKind, ConnectError, Invocation, PublishError, ReconnectPolicy,
    Serializer, Value,
};
use wamp_proto::message::Result as ResultMsg;
use wamp_proto::message::{
    code, Abort, Challenge, Goodbye, Invocation as InvocationMsg, Registered, Welcome,
};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Uri};

const WAIT: Duration = Duration::from_secs(5);

/// Frame types.
const MESSAGE: u8 = 0;
const PING: u8 = 1;
const PONG: u8 = 2;

fn code_of(s: Serializer) -> u8 {
    s.rawsocket_id()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A TCP or Unix listener; a Unix socket file is removed on drop.
enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    /// Listens for `scheme` (`rs`, `tcp` or `unix`); returns the URL to connect to.
    async fn bind(scheme: &str) -> (Listener, String) {
        match scheme {
            #[cfg(unix)]
            "unix" => {
                static N: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "wamp-client-test-{}-{}.sock",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = std::fs::remove_file(&path);
                let l = tokio::net::UnixListener::bind(&path).unwrap();
                let url = format!("unix://{}", path.display());
                (Listener::Unix(l, path), url)
            }
            _ => {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("{scheme}://{}", l.local_addr().unwrap());
                (Listener::Tcp(l), url)
            }
        }
    }

    async fn accept(&self) -> Box<dyn Io> {
        let accept = async {
            match self {
                Listener::Tcp(l) => {
                    let (s, _) = l.accept().await.unwrap();
                    s.set_nodelay(true).unwrap();
                    Box::new(s) as Box<dyn Io>
                }
                #[cfg(unix)]
                Listener::Unix(l, _) => Box::new(l.accept().await.unwrap().0) as Box<dyn Io>,
            }
        };
        tokio::time::timeout(WAIT, accept)
            .await
            .expect("no connection")
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The router end of one RawSocket connection.
struct Peer {
    io: Box<dyn Io>,
    serializer: Serializer,
}

impl Peer {
    /// Reads the client's 4 handshake octets.
    async fn read_handshake(io: &mut Box<dyn Io>) -> [u8; 4] {
        let mut h = [0; 4];
        tokio::time::timeout(WAIT, io.read_exact(&mut h))
            .await
            .expect("no handshake")
            .unwrap();
        h
    }

    /// Accepts a connection, checks the client's handshake for `serializer` and accepts it,
    /// announcing that the router takes messages of up to `2^(9 + max_exp)` octets.
    async fn accept(l: &Listener, serializer: Serializer, max_exp: u8) -> Peer {
        let mut io = l.accept().await;
        let h = Peer::read_handshake(&mut io).await;
        assert_eq!(
            h,
            [0x7F, 0xF0 | code_of(serializer), 0, 0],
            "client handshake"
        );
        io.write_all(&[0x7F, (max_exp << 4) | code_of(serializer), 0, 0])
            .await
            .unwrap();
        Peer { io, serializer }
    }

    /// The next frame: its header and payload.
    async fn read_frame(&mut self) -> ([u8; 4], Vec<u8>) {
        let read = async {
            let mut h = [0; 4];
            self.io.read_exact(&mut h).await.unwrap();
            assert_eq!(h[0] & 0xF0, 0, "reserved bits");
            let len = (usize::from(h[0] & 0x08) << 21)
                | (usize::from(h[1]) << 16)
                | (usize::from(h[2]) << 8)
                | usize::from(h[3]);
            let mut payload = vec![0; len];
            self.io.read_exact(&mut payload).await.unwrap();
            (h, payload)
        };
        tokio::time::timeout(WAIT, read).await.expect("no frame")
    }

    /// The next WAMP message.
    async fn recv(&mut self) -> Message {
        let (h, payload) = self.read_frame().await;
        assert_eq!(h[0] & 0x07, MESSAGE, "frame type");
        self.serializer
            .decode(&payload)
            .expect("client sent garbage")
    }

    /// Writes one frame, `chunk` octets per write.
    async fn send_frame_in(&mut self, kind: u8, payload: &[u8], chunk: usize) {
        let len = payload.len();
        let mut frame = vec![kind, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        frame.extend_from_slice(payload);
        for part in frame.chunks(chunk) {
            self.io.write_all(part).await.unwrap();
            self.io.flush().await.unwrap();
        }
    }

    async fn send_frame(&mut self, kind: u8, payload: &[u8]) {
        self.send_frame_in(kind, payload, usize::MAX).await;
    }

    async fn send(&mut self, m: impl Into<Message>) {
        let encoded = self.serializer.encode(&m.into()).unwrap();
        self.send_frame(MESSAGE, encoded.as_bytes()).await;
    }

    /// Waits until the client has closed the connection (EOF or reset).
    async fn expect_closed(&mut self) {
        let mut buf = [0; 256];
        let drained = async {
            loop {
                match self.io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(WAIT, drained)
            .await
            .expect("the client did not close the connection");
    }
}

fn welcome() -> Welcome {
    Welcome {
        session: Id::new(99).unwrap(),
        details: dict([("authrole", "anonymous".into())]),
    }
}

/// A client joined over `scheme` with `serializer` to a router that accepts messages of up
/// to `2^(9 + max_exp)` octets; the router side checks HELLO and its framing.
async fn joined(scheme: &str, serializer: Serializer, max_exp: u8) -> (Client, Peer) {
    let (l, url) = Listener::bind(scheme).await;
    let router = async {
        let mut p = Peer::accept(&l, serializer, max_exp).await;
        let (h, payload) = p.read_frame().await;
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        assert_eq!((h[0], len), (MESSAGE, payload.len()), "HELLO frame header");
        let Ok(Message::Hello(hello)) = serializer.decode(&payload) else {
            panic!("expected HELLO")
        };
        assert_eq!(hello.realm.as_str(), "realm1");
        assert!(hello.details.contains_key("roles"));
        p.send(welcome()).await;
        p
    };
    let connect = Client::builder(&url)
        .reconnect(ReconnectPolicy::never())
        .realm("realm1")
        .serializer(serializer)
        .connect();
    let (peer, client) = tokio::join!(router, connect);
    let client = client.unwrap();
    assert_eq!(client.session_id().get(), 99);
    assert_eq!(client.serializer(), serializer);
    (client, peer)
}

fn schemes() -> &'static [&'static str] {
    if cfg!(unix) {
        &["rs", "tcp", "unix"]
    } else {
        &["rs", "tcp"]
    }
}

#[tokio::test]
async fn joins_and_leaves_over_every_scheme_and_serializer() {
    for scheme in schemes() {
        for serializer in [Serializer::Json, Serializer::MsgPack] {
            let (client, mut peer) = joined(scheme, serializer, 15).await;
            let c = client.clone();
            let leave = tokio::spawn(async move { c.leave().await });
            let Message::Goodbye(g) = peer.recv().await else {
                panic!("expected GOODBYE")
            };
            assert_eq!(g.reason.as_str(), uris::CLOSE_NORMAL);
            peer.send(Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
            })
            .await;
            // Like a router, close on the client's EOF: that ends the client's close.
            let router = async move { peer.expect_closed().await };
            let (left, ()) = tokio::join!(tokio::time::timeout(WAIT, leave), router);
            let left = left.unwrap().unwrap();
            assert_eq!(
                left.unwrap().kind,
                CloseKind::Left,
                "{scheme} {serializer:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_first_preferred_serializer_is_the_one_offered() {
    for (preferred, code) in [
        (vec![], 2),
        (vec![Serializer::Json, Serializer::MsgPack], 1),
        (vec![Serializer::MsgPack, Serializer::Json], 2),
    ] {
        let (l, url) = Listener::bind("rs").await;
        let router = async {
            let mut io = l.accept().await;
            let h = Peer::read_handshake(&mut io).await;
            io.write_all(&[0x7F, 0x40, 0, 0]).await.unwrap();
            h
        };
        let connect = Client::builder(&url)
            .reconnect(ReconnectPolicy::never())
            .realm("realm1")
            .serializers(preferred)
            .connect();
        let (h, r) = tokio::join!(router, connect);
        assert_eq!(h, [0x7F, 0xF0 | code, 0, 0]);
        assert!(
            matches!(r, Err(ConnectError::RawSocketRefused { code: 4, .. })),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn call_round_trip() {
    for serializer in [Serializer::Json, Serializer::MsgPack] {
        let (client, mut peer) = joined("rs", serializer, 15).await;
        let c = client.clone();
        let call = tokio::spawn(async move { c.call("com.example.add").args([2, 3]).await });
        let Message::Call(m) = peer.recv().await else {
            panic!("expected CALL")
        };
        assert_eq!(m.procedure.as_str(), "com.example.add");
        assert_eq!(m.payload.args, Some(vec![Value::from(2), Value::from(3)]));
        peer.send(ResultMsg {
            request: m.request,
            details: Dict::new(),
            payload: Payload::args(vec![Value::from(5)]),
        })
        .await;
        let r = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
        assert_eq!(r.unwrap().args, vec![Value::from(5)]);
    }
}

#[tokio::test]
async fn ping_is_answered_with_one_pong_echoing_the_payload() {
    let (client, mut peer) = joined("tcp", Serializer::MsgPack, 15).await;
    let payload: Vec<u8> = (0..=255).chain(0..=43).collect();
    peer.send_frame(PING, &payload).await;
    let (h, echoed) = peer.read_frame().await;
    assert_eq!(h, [PONG, 0, 1, 44]);
    assert_eq!(echoed, payload);
    peer.send_frame(PING, b"").await;
    assert_eq!(peer.read_frame().await, ([PONG, 0, 0, 0], Vec::new()));
    // Nothing else follows the pongs: the next frame is the client's own.
    let c = client.clone();
    tokio::spawn(async move { c.publish("com.example.after").await });
    let Message::Publish(p) = peer.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(p.topic.as_str(), "com.example.after");
    // An unsolicited PONG is ignored.
    peer.send_frame(PONG, b"x").await;
    let c = client.clone();
    tokio::spawn(async move { c.publish("com.example.after_pong").await });
    let Message::Publish(p) = peer.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(p.topic.as_str(), "com.example.after_pong");
    assert!(!client.is_closed());
}

/// Connects to a router that answers the handshake with `reply` (or, if `None`, closes
/// without answering).
async fn connect_with_reply(reply: Option<&[u8]>, serializer: Serializer) -> ConnectError {
    let (l, url) = Listener::bind("rs").await;
    let router = async {
        let mut io = l.accept().await;
        Peer::read_handshake(&mut io).await;
        if let Some(reply) = reply {
            io.write_all(reply).await.unwrap();
        }
    };
    let connect = Client::builder(&url)
        .reconnect(ReconnectPolicy::never())
        .realm("realm1")
        .serializer(serializer)
        .connect();
    let ((), r) = tokio::join!(router, connect);
    r.expect_err("connect must fail")
}

#[tokio::test]
async fn handshake_error_codes_are_connect_errors() {
    let e = connect_with_reply(Some(&[0x7F, 0x10, 0, 0]), Serializer::Json).await;
    match e {
        ConnectError::NoSerializer { offered } => assert_eq!(offered, ["wamp.2.json"]),
        other => panic!("{other:?}"),
    }
    for (code, reason) in [
        (2, "maximum message length unacceptable"),
        (3, "use of reserved bits (unsupported feature)"),
        (4, "maximum connection count reached"),
        (9, "unknown error code"),
    ] {
        let e = connect_with_reply(Some(&[0x7F, code << 4, 0, 0]), Serializer::MsgPack).await;
        match &e {
            ConnectError::RawSocketRefused { code: c, reason: r } => {
                assert_eq!((*c, *r), (code, reason))
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(reason), "{e}");
    }
}

#[tokio::test]
async fn bad_handshake_replies_are_protocol_errors() {
    for (reply, serializer) in [
        (&b"HTTP/1.1 400 Bad Request\r\n"[..], Serializer::Json), // not a RawSocket router
        (&[0x7F, 0xF1, 0, 0][..], Serializer::MsgPack),           // another serializer
        (&[0x7F, 0xF2, 1, 0][..], Serializer::MsgPack),           // reserved octets
    ] {
        let e = connect_with_reply(Some(reply), serializer).await;
        assert!(matches!(e, ConnectError::Protocol(_)), "{reply:?}: {e:?}");
    }
    let e = connect_with_reply(None, Serializer::MsgPack).await;
    assert!(matches!(e, ConnectError::Closed), "{e:?}");
    let e = connect_with_reply(Some(&[0x7F, 0xF2]), Serializer::MsgPack).await;
    assert!(matches!(e, ConnectError::Closed), "{e:?}");
}

#[tokio::test]
async fn nobody_listening_is_a_transport_error() {
    let (l, url) = Listener::bind("rs").await;
    drop(l);
    match Client::connect(&url, "realm1").await {
        Err(ConnectError::Transport(e)) => {
            assert_eq!(e.io_kind(), Some(ErrorKind::ConnectionRefused), "{e}")
        }
        other => panic!("{other:?}"),
    }
    #[cfg(unix)]
    {
        let url = format!("unix://{}/no-such.sock", std::env::temp_dir().display());
        match Client::connect(&url, "realm1").await {
            Err(ConnectError::Transport(e)) => {
                assert_eq!(e.io_kind(), Some(ErrorKind::NotFound), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_frame_headers_close_the_client() {
    for (header, what) in [
        ([0x08, 0, 0, 1], "octets"), // 2^24 + 1: over our maximum; no payload follows
        ([0x10, 0, 0, 4], "reserved bits"),
        ([0x03, 0, 0, 0], "unknown type"),
    ] {
        let (client, mut peer) = joined("rs", Serializer::Json, 15).await;
        let c = client.clone();
        let call = tokio::spawn(async move { c.call("com.example.slow").await });
        let Message::Call(_) = peer.recv().await else {
            panic!("expected CALL")
        };
        peer.io.write_all(&header).await.unwrap();
        let closed = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
        assert_eq!(closed.kind, CloseKind::TransportLost, "{header:?}");
        let message = closed.message.unwrap_or_default();
        assert!(message.contains(what), "{header:?}: {message}");
        let r = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
        assert_eq!(r, Err(CallError::ConnectionClosed));
        peer.expect_closed().await;
    }
}

#[tokio::test]
async fn frames_split_across_many_small_writes_are_parsed() {
    let (l, url) = Listener::bind("tcp").await;
    let router = async {
        let mut io = l.accept().await;
        Peer::read_handshake(&mut io).await;
        for b in [0x7F, 0xF1, 0, 0] {
            io.write_all(&[b]).await.unwrap();
            io.flush().await.unwrap();
        }
        let mut p = Peer {
            io,
            serializer: Serializer::Json,
        };
        let Message::Hello(_) = p.recv().await else {
            panic!("expected HELLO")
        };
        let welcome = Serializer::Json.encode(&welcome().into()).unwrap();
        p.send_frame_in(MESSAGE, welcome.as_bytes(), 1).await;
        p
    };
    let connect = Client::builder(&url)
        .reconnect(ReconnectPolicy::never())
        .realm("realm1")
        .serializer(Serializer::Json)
        .connect();
    let (mut peer, client) = tokio::join!(router, connect);
    let client = client.unwrap();

    let c = client.clone();
    let call = tokio::spawn(async move { c.call("com.example.echo").await });
    let Message::Call(m) = peer.recv().await else {
        panic!("expected CALL")
    };
    let result = Message::from(ResultMsg {
        request: m.request,
        details: Dict::new(),
        payload: Payload::args(vec![Value::from("x".repeat(3000))]),
    });
    let result = Serializer::Json.encode(&result).unwrap();
    for chunk in [1, 3, 7] {
        peer.send_frame_in(PING, b"ping", chunk).await;
    }
    peer.send_frame_in(MESSAGE, result.as_bytes(), 5).await;
    let r = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert_eq!(r.unwrap().args, vec![Value::from("x".repeat(3000))]);
    for _ in 0..3 {
        assert_eq!(peer.read_frame().await, ([PONG, 0, 0, 4], b"ping".to_vec()));
    }
}

#[tokio::test]
async fn messages_over_the_routers_limit_fail_alone() {
    // The router accepts 2^(9 + 1) = 1024 octets.
    let (client, mut peer) = joined("rs", Serializer::MsgPack, 1).await;
    let big = "x".repeat(2000);
    let r = tokio::time::timeout(WAIT, client.call("com.example.big").arg(big.as_str()))
        .await
        .unwrap();
    match r {
        Err(CallError::InvalidPayload(m)) => assert!(m.contains("maximum of 1024"), "{m}"),
        other => panic!("{other:?}"),
    }
    let r = client
        .publish("com.example.big")
        .arg(big.as_str())
        .acknowledge();
    let r = tokio::time::timeout(WAIT, r).await.unwrap();
    assert!(matches!(r, Err(PublishError::InvalidPayload(_))), "{r:?}");

    // A handler result over the limit becomes an ERROR instead.
    let b = big.clone();
    let c = client.clone();
    let reg = tokio::spawn(async move {
        c.register("com.example.big_result", move |_: Invocation| {
            let b = b.clone();
            async move { Ok::<_, CallError>(Value::from(b)) }
        })
        .await
    });
    let Message::Register(m) = peer.recv().await else {
        panic!("expected REGISTER: the oversize messages must not have been sent")
    };
    let registration = Id::new(5).unwrap();
    peer.send(Registered {
        request: m.request,
        registration,
    })
    .await;
    let _reg = tokio::time::timeout(WAIT, reg)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let request = Id::new(1).unwrap();
    peer.send(InvocationMsg {
        request,
        registration,
        details: Dict::new(),
        payload: Payload::default(),
    })
    .await;
    let Message::Error(e) = peer.recv().await else {
        panic!("expected ERROR")
    };
    assert_eq!((e.request_type, e.request), (code::INVOCATION, request));
    assert_eq!(e.error.as_str(), uris::RUNTIME_ERROR);

    // The session goes on.
    let c = client.clone();
    let call = tokio::spawn(async move { c.call("com.example.small").await });
    let Message::Call(m) = peer.recv().await else {
        panic!("expected CALL")
    };
    assert_eq!(m.procedure.as_str(), "com.example.small");
    peer.send(ResultMsg {
        request: m.request,
        details: Dict::new(),
        payload: Payload::default(),
    })
    .await;
    let r = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert!(!client.is_closed());
}

#[tokio::test]
async fn hello_over_the_routers_limit_fails_connect() {
    let (l, url) = Listener::bind("rs").await;
    let router = async {
        // 2^9 = 512 octets: less than this client's HELLO.
        let mut p = Peer::accept(&l, Serializer::Json, 0).await;
        p.expect_closed().await;
    };
    let connect = Client::builder(&url)
        .reconnect(ReconnectPolicy::never())
        .realm("realm1")
        .serializer(Serializer::Json)
        .connect();
    let ((), r) = tokio::join!(router, connect);
    match r {
        Err(ConnectError::Transport(e)) => assert!(e.message().contains("HELLO"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// Authenticates over `scheme` with `serializer` against a fake router that sends
/// `challenge` (and WELCOME, or `abort` instead, after the AUTHENTICATE). Returns
/// HELLO.Details, the AUTHENTICATE signature and the outcome.
async fn authenticate_over(
    scheme: &str,
    serializer: Serializer,
    builder: impl FnOnce(wamp_client::ClientBuilder) -> wamp_client::ClientBuilder,
    challenge: Challenge,
    abort: Option<&str>,
) -> (Dict, String, Result<Client, ConnectError>) {
    let (l, url) = Listener::bind(scheme).await;
    let router = async {
        let mut p = Peer::accept(&l, serializer, 15).await;
        let Message::Hello(hello) = p.recv().await else {
            panic!("expected HELLO")
        };
        let method = challenge.auth_method.clone();
        p.send(challenge).await;
        let auth = match p.recv().await {
            Message::Authenticate(a) => a,
            other => panic!("expected AUTHENTICATE, got {other:?}"),
        };
        assert_eq!(auth.extra, Dict::new());
        match abort {
            Some(reason) => {
                p.send(Abort {
                    details: dict([("message", "the credentials were not accepted".into())]),
                    reason: Uri::new(reason),
                    payload: Payload::default(),
                })
                .await
            }
            None => {
                let details = dict([
                    ("authid", "someone".into()),
                    ("authrole", "app".into()),
                    ("authmethod", method.into()),
                    ("authprovider", "static".into()),
                ]);
                p.send(Welcome {
                    details,
                    ..welcome()
                })
                .await
            }
        }
        (hello.details, auth.signature, p)
    };
    let connect = builder(Client::builder(&url).realm("realm1").serializer(serializer))
        .reconnect(ReconnectPolicy::never())
        .connect();
    let ((hello, signature, _p), r) = tokio::join!(router, connect);
    (hello, signature, r)
}

#[tokio::test]
async fn every_method_authenticates_over_every_scheme_and_serializer() {
    let seed = [9u8; 32];
    let key = wamp_auth::cryptosign::SigningKey::from_seed(&seed);
    let challenge_hex = "a5".repeat(32);
    let salting = wamp_auth::wampcra::Salting {
        salt: "salt123",
        iterations: 1000,
        keylen: 32,
    };
    let cra_key = wamp_auth::wampcra::key("s3", Some(salting)).unwrap();
    for scheme in schemes() {
        for serializer in [Serializer::Json, Serializer::MsgPack] {
            let at = format!("{scheme} {serializer:?}");
            let (hello, sig, r) = authenticate_over(
                scheme,
                serializer,
                |b| b.authid("joe").ticket("secret1"),
                Challenge {
                    auth_method: "ticket".into(),
                    extra: Dict::new(),
                },
                None,
            )
            .await;
            assert_eq!(hello["authmethods"], Value::List(vec!["ticket".into()]));
            assert_eq!(hello["authid"], Value::from("joe"), "{at}");
            assert_eq!(sig, "secret1", "{at}");
            assert_eq!(r.unwrap().authmethod(), Some("ticket"), "{at}");

            let cra = Challenge {
                auth_method: "wampcra".into(),
                extra: dict([
                    ("challenge", "{\"nonce\": \"n\"}".into()),
                    ("salt", "salt123".into()),
                    ("iterations", 1000u64.into()),
                    ("keylen", 32u64.into()),
                ]),
            };
            let (_, sig, r) = authenticate_over(
                scheme,
                serializer,
                |b| b.authid("sally").wampcra("s3"),
                cra,
                None,
            )
            .await;
            assert_eq!(
                sig,
                wamp_auth::wampcra::sign(&cra_key, "{\"nonce\": \"n\"}"),
                "{at}"
            );
            assert_eq!(r.unwrap().authmethod(), Some("wampcra"), "{at}");

            let cs = Challenge {
                auth_method: "cryptosign".into(),
                extra: dict([
                    ("challenge", challenge_hex.as_str().into()),
                    ("channel_binding", Value::Null),
                ]),
            };
            let (hello, sig, r) =
                authenticate_over(scheme, serializer, |b| b.cryptosign(seed), cs, None).await;
            assert_eq!(
                hello["authextra"],
                Value::Dict(dict([("pubkey", key.public_key_hex().into())])),
                "{at}"
            );
            assert_eq!(
                sig,
                key.sign_challenge(&challenge_hex, None).unwrap(),
                "{at}"
            );
            assert_eq!(r.unwrap().authmethod(), Some("cryptosign"), "{at}");
        }
    }
}

#[tokio::test]
async fn a_refused_authenticate_is_an_authentication_failure() {
    for scheme in schemes() {
        let (_, sig, r) = authenticate_over(
            scheme,
            Serializer::MsgPack,
            |b| b.authid("joe").ticket("wrong"),
            Challenge {
                auth_method: "ticket".into(),
                extra: Dict::new(),
            },
            Some(uris::AUTHENTICATION_FAILED),
        )
        .await;
        assert_eq!(sig, "wrong");
        match r {
            Err(ConnectError::AuthenticationFailed { reason, message }) => {
                assert_eq!(reason, uris::AUTHENTICATION_FAILED);
                assert_eq!(
                    message.as_deref(),
                    Some("the credentials were not accepted")
                );
            }
            other => panic!("{scheme}: {other:?}"),
        }
    }
}
