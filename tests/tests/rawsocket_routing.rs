//! RawSocket sessions among WebSocket ones: transport reuse after GOODBYE (on both
//! transports), routing between RawSocket (TCP and Unix) and WebSocket sessions with our
//! client, payload pass-through, and the Unix socket file. Size limits are in
//! `rawsocket_limits.rs`.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use futures_util::StreamExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_client::{CallError, CallResult, Client, Dict, Invocation, Serializer, Value};
use wamp_proto::message::{Goodbye, Welcome, Yield};
use wamp_proto::{uris, Id, Message, Payload, Uri};
use wamp_tests::rawsocket::{eventually, RsPeer, TempDir, MESSAGE};
use wamp_tests::{hello, Closed, RawPeer, TestRouter, WAIT};

const REALM: &str = "realm1";

/// A RawSocket transport on TCP (`urls()[0]`), a WebSocket one (`[1]`) and a RawSocket one on
/// a Unix socket in `dir` (`[2]`), with `mode`; `router` goes into `[router]`.
async fn three_transports(dir: &TempDir, mode: &str, router: &str) -> TestRouter {
    let sock = dir.path().join("router.sock");
    TestRouter::with_config(&format!(
        "[router]\n{router}\n\
         [[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n\
         [[transport]]\ntype = \"websocket\"\nbind = \"127.0.0.1:0\"\n\
         [[transport]]\ntype = \"rawsocket\"\nunix_socket = \"{}\"\n{mode}\n\
         [[realm]]\nname = \"{REALM}\"\n",
        sock.display()
    ))
    .await
}

/// The URLs of [`three_transports`]: (rs, ws, unix).
fn urls(router: &TestRouter) -> (String, String, String) {
    match router.server().urls() {
        [rs, ws, unix] => (rs.clone(), ws.clone(), unix.clone()),
        other => panic!("three URLs expected: {other:?}"),
    }
}

async fn client(url: &str, serializer: Serializer) -> Client {
    wamp_tests::client(url, REALM, serializer).await
}

async fn leave(c: Client) {
    timeout(WAIT, c.leave())
        .await
        .expect("leave in time")
        .expect("leave");
}

// --- transport reuse after GOODBYE -----------------------------------------------------------

/// The raw peers of both transports, for the reuse scenario.
trait Peer {
    async fn send(&mut self, msg: &Message);
    async fn recv(&mut self) -> Message;
    /// How the connection ends, after no further message: `true` for an orderly close.
    async fn ends(&mut self) -> bool;
}

impl Peer for RsPeer {
    async fn send(&mut self, msg: &Message) {
        RsPeer::send(self, msg).await;
    }
    async fn recv(&mut self) -> Message {
        RsPeer::recv(self).await
    }
    async fn ends(&mut self) -> bool {
        let (msgs, end) = self.until_closed().await;
        assert!(msgs.is_empty(), "{msgs:?}");
        end == wamp_tests::rawsocket::Ended::Eof
    }
}

impl Peer for RawPeer {
    async fn send(&mut self, msg: &Message) {
        RawPeer::send(self, msg).await;
    }
    async fn recv(&mut self) -> Message {
        RawPeer::recv(self).await
    }
    async fn ends(&mut self) -> bool {
        let (msgs, closed) = self.until_closed().await;
        assert!(msgs.is_empty(), "{msgs:?}");
        matches!(closed, Closed::CloseFrame(_))
    }
}

async fn welcome(p: &mut impl Peer) -> Welcome {
    p.send(&hello(REALM)).await;
    match p.recv().await {
        Message::Welcome(w) => w,
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

async fn register(p: &mut impl Peer, request: u64, procedure: &str) {
    let request = Id::new(request).expect("id");
    let procedure = Uri::new(procedure);
    let options = Dict::new();
    let msg = wamp_proto::message::Register {
        request,
        options,
        procedure,
    };
    p.send(&msg.into()).await;
    assert!(matches!(p.recv().await, Message::Registered(r) if r.request == request));
}

/// Client GOODBYE on `p`'s session: the router answers `goodbye_and_out`.
async fn goodbye(p: &mut impl Peer) {
    let details = Dict::new();
    let reason = Uri::new(uris::CLOSE_NORMAL);
    p.send(&Goodbye { details, reason }.into()).await;
    match p.recv().await {
        Message::Goodbye(g) => assert_eq!(g.reason.as_str(), uris::CLOSE_GOODBYE_AND_OUT),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
}

/// Join, register, GOODBYE; HELLO again on the same connection: a new session, which does
/// not own the old registration and serves a new one to `caller`.
async fn reuse(p: &mut impl Peer, router: &TestRouter, caller: &Client, tag: &str) {
    let first = welcome(p).await.session;
    register(p, 1, &format!("com.reuse.{tag}.old")).await;
    goodbye(p).await;
    eventually("the first session left", || {
        router.server().session_count() == 1 // the caller
    })
    .await;
    let second = welcome(p).await.session;
    assert_ne!(first, second, "a new session id");
    let err = timeout(WAIT, caller.call(&format!("com.reuse.{tag}.old")))
        .await
        .expect("answered in time")
        .expect_err("the old session's registration is gone");
    assert_eq!(err.uri(), Some(uris::NO_SUCH_PROCEDURE), "{err:?}");

    // Request ids start afresh in the new session.
    let proc_ = format!("com.reuse.{tag}.new");
    register(p, 1, &proc_).await;
    let call = caller.call(&proc_).arg(Value::from(tag));
    let serve = async {
        let Message::Invocation(inv) = p.recv().await else {
            panic!("expected INVOCATION")
        };
        assert_eq!(inv.payload.args, Some(vec![Value::from(tag)]));
        let payload = Payload::args(vec![Value::from("served"), Value::from(second.get())]);
        let request = inv.request;
        p.send(
            &Yield {
                request,
                options: Dict::new(),
                payload,
            }
            .into(),
        )
        .await;
    };
    let (r, ()) = tokio::join!(timeout(WAIT, call), serve);
    let r = r.expect("result in time").expect("the call succeeds");
    assert_eq!(
        r.args,
        vec![Value::from("served"), Value::UInt(second.get())]
    );
    goodbye(p).await;
}

#[tokio::test]
async fn a_rawsocket_connection_carries_a_new_session_after_goodbye() {
    let dir = TempDir::new();
    let router = three_transports(&dir, "", "").await;
    let (rs, ws, unix) = urls(&router);
    let caller = client(&ws, Serializer::Json).await;
    for (url, ser) in [(&rs, Serializer::MsgPack), (&unix, Serializer::Json)] {
        let mut p = RsPeer::open(url, ser).await;
        reuse(&mut p, &router, &caller, &format!("rs.{ser:?}")).await;
        // Twice on one connection.
        reuse(&mut p, &router, &caller, &format!("rs.{ser:?}.again")).await;
    }
    leave(caller).await;
}

#[tokio::test]
async fn a_websocket_connection_carries_a_new_session_after_goodbye() {
    let dir = TempDir::new();
    let router = three_transports(&dir, "", "").await;
    let (rs, ws, _) = urls(&router);
    let caller = client(&rs, Serializer::MsgPack).await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let mut p = RawPeer::connect(&ws, ser).await;
        reuse(&mut p, &router, &caller, &format!("ws.{ser:?}")).await;
        reuse(&mut p, &router, &caller, &format!("ws.{ser:?}.again")).await;
    }
    leave(caller).await;
}

#[tokio::test]
async fn closing_right_after_goodbye_and_idling_after_it_are_fine() {
    let dir = TempDir::new();
    let router = three_transports(&dir, "", "handshake_timeout_ms = 200").await;
    let (rs, ws, _) = urls(&router);
    let reason = || -> Message {
        let details = Dict::new();
        let reason = Uri::new(uris::CLOSE_NORMAL);
        Goodbye { details, reason }.into()
    };
    // GOODBYE, then the connection is dropped before the reply is read.
    let (mut p, _) = RsPeer::join(&rs, REALM, Serializer::Json).await;
    let (mut w, _) = RawPeer::join(&ws, REALM, Serializer::Json).await;
    assert_eq!(router.server().session_count(), 2);
    p.send(&reason()).await;
    w.send(&reason()).await;
    drop((p, w));
    eventually("both sessions left", || {
        router.server().session_count() == 0
    })
    .await;

    // GOODBYE answered, then nothing: the unjoined connection is closed after the HELLO
    // deadline.
    let (mut p, _) = RsPeer::join(&rs, REALM, Serializer::MsgPack).await;
    let (mut w, _) = RawPeer::join(&ws, REALM, Serializer::MsgPack).await;
    goodbye(&mut p).await;
    goodbye(&mut w).await;
    assert!(p.ends().await, "RawSocket closed in order");
    assert!(w.ends().await, "WebSocket closed with a close frame");
    assert_eq!(router.server().session_count(), 0);
}

// --- routing between transports ----------------------------------------------------------------

/// Arguments with nested values, binary data and integers at the edges of 64 bits.
fn payload_args() -> Vec<Value> {
    vec![
        Value::UInt(u64::MAX),
        Value::Int(i64::MIN),
        Value::UInt((1 << 53) + 1),
        Value::Bytes(vec![0x00, 0x01, 0x7f, 0x80, 0xff]),
        Value::List(vec![
            Value::Dict(Dict::from([("deep".into(), Value::Bytes(b"bin".to_vec()))])),
            Value::List(vec![Value::Null, Value::Bool(false), Value::Float(-1.5)]),
        ]),
        Value::from("é ✓ \u{0}"),
    ]
}

fn payload_kwargs() -> Dict {
    Dict::from([
        (
            "nested".into(),
            Value::Dict(Dict::from([("list".into(), Value::List(payload_args()))])),
        ),
        ("empty".into(), Value::Dict(Dict::new())),
        ("bin".into(), Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
    ])
}

/// A callee on `callee_url` echoes what a caller on `caller_url` sends, and fails on `.fail`.
async fn rpc(callee_url: &str, callee_ser: Serializer, caller_url: &str, caller_ser: Serializer) {
    let callee = client(callee_url, callee_ser).await;
    let proc_ = format!("com.rpc.{}", callee.session_id());
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let _echo = callee
        .register(&proc_, move |inv: Invocation| {
            let _ = seen_tx.send((inv.args.clone(), inv.kwargs.clone()));
            async move {
                Ok::<_, CallError>(
                    CallResult::new()
                        .with_args(inv.args)
                        .with_kwargs(inv.kwargs),
                )
            }
        })
        .await
        .expect("register");
    let _fail = callee
        .register(&format!("{proc_}.fail"), |_inv: Invocation| async move {
            Err::<CallResult, _>(
                CallError::new("com.error.failed").with_args([Value::Bytes(vec![9])]),
            )
        })
        .await
        .expect("register .fail");
    let caller = client(caller_url, caller_ser).await;
    let what = format!("{callee_url} {callee_ser:?} <- {caller_url} {caller_ser:?}");
    let r = timeout(
        WAIT,
        caller
            .call(&proc_)
            .args(payload_args())
            .kwargs(payload_kwargs()),
    )
    .await
    .expect("answered in time")
    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(
        (r.args, r.kwargs),
        (payload_args(), payload_kwargs()),
        "{what}"
    );
    assert_eq!(
        seen_rx.try_recv().ok(),
        Some((payload_args(), payload_kwargs())),
        "{what}"
    );
    let err = timeout(WAIT, caller.call(&format!("{proc_}.fail")))
        .await
        .expect("answered in time")
        .expect_err("fails");
    assert_eq!(
        err,
        CallError::new("com.error.failed").with_args([Value::Bytes(vec![9])]),
        "{what}"
    );
    leave(caller).await;
    leave(callee).await;
}

/// A publisher on `pub_url` reaches subscribers on each of `subs`, with exact payloads.
async fn pubsub(pub_url: &str, pub_ser: Serializer, subs: &[(&str, Serializer)]) {
    let topic = format!("com.pubsub.{}", pub_url.replace([':', '/', '.'], "_"));
    let mut subscribers = Vec::new();
    for (url, ser) in subs {
        let c = client(url, *ser).await;
        let events = timeout(WAIT, c.subscribe(&topic))
            .await
            .expect("subscribe in time")
            .expect("subscribe");
        subscribers.push((format!("{url} {ser:?}"), c, events));
    }
    let publisher = client(pub_url, pub_ser).await;
    for i in 0..3u64 {
        let mut args = payload_args();
        args.push(Value::UInt(i));
        timeout(
            WAIT,
            publisher
                .publish(&topic)
                .args(args)
                .kwargs(payload_kwargs())
                .acknowledge(),
        )
        .await
        .expect("acknowledged in time")
        .expect("acknowledged");
    }
    for (what, c, mut events) in subscribers {
        for i in 0..3u64 {
            let ev = timeout(WAIT, events.next())
                .await
                .unwrap_or_else(|_| panic!("{what}: event {i} in time"))
                .unwrap_or_else(|| panic!("{what}: stream ended"));
            let mut args = payload_args();
            args.push(Value::UInt(i));
            assert_eq!(
                (ev.args, ev.kwargs),
                (args, payload_kwargs()),
                "{what} event {i}"
            );
        }
        drop(events);
        leave(c).await;
    }
    leave(publisher).await;
}

#[tokio::test]
async fn rpc_between_rawsocket_and_websocket_sessions() {
    let dir = TempDir::new();
    let router = three_transports(&dir, "", "").await;
    let (rs, ws, unix) = urls(&router);
    use Serializer::{Json, MsgPack};
    rpc(&rs, MsgPack, &ws, Json).await;
    rpc(&ws, Json, &rs, MsgPack).await;
    rpc(&unix, Json, &rs, Json).await;
    rpc(&ws, MsgPack, &unix, MsgPack).await;
    rpc(&rs, Json, &unix, MsgPack).await;
}

#[tokio::test]
async fn pubsub_between_rawsocket_and_websocket_sessions() {
    let dir = TempDir::new();
    let router = three_transports(&dir, "", "").await;
    let (rs, ws, unix) = urls(&router);
    use Serializer::{Json, MsgPack};
    pubsub(&rs, MsgPack, &[(&ws, Json), (&ws, MsgPack), (&unix, Json)]).await;
    pubsub(&ws, Json, &[(&rs, MsgPack), (&rs, Json), (&unix, MsgPack)]).await;
    pubsub(&unix, MsgPack, &[(&rs, Json), (&ws, Json)]).await;
}

#[tokio::test]
async fn json_payloads_cross_transports_byte_for_byte() {
    let dir = TempDir::new();
    let router = three_transports(&dir, "", "").await;
    let (rs, ws, _) = urls(&router);
    let (mut rs_peer, _) = RsPeer::join(&rs, REALM, Serializer::Json).await;
    let (mut ws_peer, _) = RawPeer::join(&ws, REALM, Serializer::Json).await;
    rs_peer.register("com.bytes").await;
    // An integer beyond 64 bits, a float spelled `1.50`, an escape, keys out of order.
    let args = r#"[123456789012345678901234567890, 1.50, "\u00e9"]"#;
    let kwargs = r#"{"z": 1, "a": {"y": 2, "b": 3}}"#;
    let call = format!(r#"[48, 7, {{}}, "com.bytes", {args}, {kwargs}]"#);
    ws_peer.send_frame(WsMessage::Text(call.into())).await;
    let inv = String::from_utf8(rs_peer.recv_bytes().await).expect("UTF-8");
    assert!(
        inv.ends_with(&format!(",{args},{kwargs}]")),
        "re-encoded: {inv}"
    );
    let Ok(Message::Invocation(i)) = Serializer::Json.decode(inv.as_bytes()) else {
        panic!("expected INVOCATION: {inv}");
    };
    let result = r#"[18446744073709551616, -0.0, 1e3]"#;
    let yield_ = format!("[70, {}, {{}}, {result}]", i.request);
    rs_peer.send_frame(MESSAGE, yield_.as_bytes()).await;
    let res = String::from_utf8(ws_peer.recv_bytes().await).expect("UTF-8");
    assert_eq!(res, format!("[50,7,{{}},{result}]"));
}

// --- the Unix socket -----------------------------------------------------------------------------

#[tokio::test]
async fn the_unix_socket_gets_its_mode_and_is_removed_at_shutdown() {
    for mode in [0o600, 0o640] {
        let dir = TempDir::new();
        let path = dir.path().join("router.sock");
        let router = three_transports(&dir, &format!("unix_socket_mode = 0o{mode:o}"), "").await;
        let (_, _, unix) = urls(&router);
        assert_eq!(unix, format!("unix://{}", path.display()));
        let meta = std::fs::metadata(&path).expect("the socket file exists");
        assert!(meta.file_type().is_socket(), "{meta:?}");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "mode of {}",
            path.display()
        );

        let (mut p, _) = RsPeer::join(&unix, REALM, Serializer::MsgPack).await;
        p.subscribe("com.unix").await;
        let c = client(&unix, Serializer::Json).await;
        leave(c).await;
        drop(p);
        router.shutdown().await;
        assert!(!path.exists(), "{} is left behind", path.display());
    }
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_another_file_is_not() {
    let dir = TempDir::new();
    let path = dir.path().join("router.sock");
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let router = three_transports(&dir, "", "").await;
    let (_, _, unix) = urls(&router);
    RsPeer::join(&unix, REALM, Serializer::Json).await;
    // While it listens, a second router cannot take the path.
    let config = wamp_router::Config::from_toml(
        &format!(
            "[[transport]]\ntype = \"rawsocket\"\nunix_socket = \"{}\"\n[[realm]]\nname = \"r\"\n",
            path.display()
        ),
        "<test>",
    )
    .expect("valid");
    let e = wamp_router::Server::start(config.clone())
        .await
        .expect_err("in use");
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    router.shutdown().await;
    // A regular file in the way is left alone.
    std::fs::write(&path, b"not a socket").expect("write");
    let e = wamp_router::Server::start(config)
        .await
        .expect_err("a file is in the way");
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&path).expect("still there"), b"not a socket");
}
