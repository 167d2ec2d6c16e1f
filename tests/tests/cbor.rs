//! `wamp.2.cbor` over real sockets: a CBOR session on WebSocket (binary frames) and one on
//! RawSocket (serializer 3) route RPC and PubSub to and from JSON and MessagePack sessions,
//! with payloads that hold nested values, binary data, 2^53, negative integers down to
//! -2^63, floats and unicode, unchanged in both directions; a CBOR payload reaches another
//! CBOR session byte for byte; malformed CBOR earns ABORT `wamp.error.protocol_violation`;
//! our client speaks CBOR over both transports. Interop with autobahn-python's CBOR
//! serializer is in `interop_python.rs`.

use futures_util::StreamExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_client::{CallResult, Client, Invocation};
use wamp_proto::message::{Call, Publish, Yield};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value, MAX_ID};
use wamp_tests::rawsocket::RsPeer;
use wamp_tests::{RawPeer, TestRouter, WAIT};

const REALM: &str = "realm1";

/// A WebSocket and a RawSocket (TCP) transport, both with every serializer.
async fn router() -> TestRouter {
    TestRouter::with_config(&format!(
        "[[transport]]\ntype = \"websocket\"\nbind = \"127.0.0.1:0\"\npath = \"/ws\"\n\
         serializers = [\"json\", \"msgpack\", \"cbor\"]\n\
         [[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n\
         serializers = [\"json\", \"msgpack\", \"cbor\"]\n\
         [[realm]]\nname = \"{REALM}\"\n"
    ))
    .await
}

/// (WebSocket URL, RawSocket URL) of [`router`].
fn urls(router: &TestRouter) -> (String, String) {
    match router.server().urls() {
        [ws, rs] => (ws.clone(), rs.clone()),
        other => panic!("two URLs expected: {other:?}"),
    }
}

/// Everything CBOR, JSON and MessagePack must carry alike.
fn payload() -> Payload {
    let args = vec![
        Value::UInt(MAX_ID),
        Value::UInt(MAX_ID + 1),
        Value::UInt(u64::MAX),
        Value::Int(-1),
        Value::Int(-(1 << 53)),
        Value::Int(i64::MIN),
        Value::Float(1.5),
        Value::Float(-0.1),
        Value::Float(1e300),
        Value::Float(5e-324),
        Value::Str("héllo wörld ✓ 🎉 中文".into()),
        Value::Str(String::new()),
        Value::Bytes((0..=255).collect()),
        Value::Bytes(vec![]),
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::List(vec![
            Value::Dict(dict([(
                "nested",
                Value::List(vec![
                    Value::Bytes(vec![0, 1, 0xff]),
                    Value::Dict(dict([("deeper", Value::List(vec![1.into(), "ü".into()]))])),
                ]),
            )])),
            Value::List(vec![]),
        ]),
    ];
    let kwargs = dict([
        ("binary", Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
        ("unicode ключ", "值".into()),
        ("neg", Value::Int(-7)),
        ("float", Value::Float(3.25)),
        (
            "nested",
            Value::Dict(dict([("a", Value::List(vec![Value::Null]))])),
        ),
    ]);
    Payload::new(Some(args), Some(kwargs))
}

fn assert_payload(got: &Payload, what: &str) {
    let want = payload();
    assert_eq!(got.args, want.args, "{what}: args");
    assert_eq!(got.kwargs, want.kwargs, "{what}: kwargs");
}

/// What the scenarios need of a raw peer, on either transport.
trait Peer {
    fn name(&self) -> String;
    fn request(&mut self) -> Id;
    async fn send(&mut self, msg: &Message);
    async fn recv(&mut self) -> Message;
    async fn recv_bytes(&mut self) -> Vec<u8>;
    async fn send_binary(&mut self, bytes: Vec<u8>);
    async fn register(&mut self, procedure: &str) -> Id;
    async fn subscribe(&mut self, topic: &str) -> Id;
}

impl Peer for RawPeer {
    fn name(&self) -> String {
        format!("{} over WebSocket", self.serializer.name())
    }
    fn request(&mut self) -> Id {
        RawPeer::request(self)
    }
    async fn send(&mut self, msg: &Message) {
        RawPeer::send(self, msg).await
    }
    async fn recv(&mut self) -> Message {
        RawPeer::recv(self).await
    }
    async fn recv_bytes(&mut self) -> Vec<u8> {
        RawPeer::recv_bytes(self).await
    }
    async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send_frame(WsMessage::Binary(bytes.into())).await
    }
    async fn register(&mut self, procedure: &str) -> Id {
        RawPeer::register(self, procedure, Dict::new()).await
    }
    async fn subscribe(&mut self, topic: &str) -> Id {
        RawPeer::subscribe(self, topic, Dict::new()).await
    }
}

impl Peer for RsPeer {
    fn name(&self) -> String {
        format!("{} over RawSocket", self.serializer.name())
    }
    fn request(&mut self) -> Id {
        RsPeer::request(self)
    }
    async fn send(&mut self, msg: &Message) {
        RsPeer::send(self, msg).await
    }
    async fn recv(&mut self) -> Message {
        RsPeer::recv(self).await
    }
    async fn recv_bytes(&mut self) -> Vec<u8> {
        RsPeer::recv_bytes(self).await
    }
    async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send_frame(wamp_tests::rawsocket::MESSAGE, &bytes)
            .await
    }
    async fn register(&mut self, procedure: &str) -> Id {
        RsPeer::register(self, procedure).await
    }
    async fn subscribe(&mut self, topic: &str) -> Id {
        RsPeer::subscribe(self, topic).await
    }
}

/// `caller` calls `procedure`, registered by `callee`, with [`payload`]; the callee checks
/// what arrives and yields it back; the caller checks the result.
async fn call_through(caller: &mut impl Peer, callee: &mut impl Peer, procedure: &str) {
    let route = format!("{} -> {}", caller.name(), callee.name());
    let r = caller.request();
    caller
        .send(
            &Call {
                request: r,
                options: Dict::new(),
                procedure: Uri::new(procedure),
                payload: payload(),
            }
            .into(),
        )
        .await;
    let Message::Invocation(inv) = callee.recv().await else {
        panic!("{route}: INVOCATION expected");
    };
    assert_payload(&inv.payload, &format!("INVOCATION {route}"));
    callee
        .send(
            &Yield {
                request: inv.request,
                options: Dict::new(),
                payload: inv.payload,
            }
            .into(),
        )
        .await;
    match caller.recv().await {
        Message::Result(res) if res.request == r => {
            assert_payload(&res.payload, &format!("RESULT {route}"))
        }
        other => panic!("{route}: RESULT expected, got {other:?}"),
    }
}

/// `publisher` publishes [`payload`] (acknowledged) to `topic`.
async fn publish(publisher: &mut impl Peer, topic: &str) {
    let r = publisher.request();
    publisher
        .send(
            &Publish {
                request: r,
                options: dict([("acknowledge", true.into())]),
                topic: Uri::new(topic),
                payload: payload(),
            }
            .into(),
        )
        .await;
    assert!(
        matches!(publisher.recv().await, Message::Published(p) if p.request == r),
        "{}: PUBLISHED expected",
        publisher.name()
    );
}

async fn expect_event(subscriber: &mut impl Peer, subscription: Id, from: &str) {
    match subscriber.recv().await {
        Message::Event(e) if e.subscription == subscription => assert_payload(
            &e.payload,
            &format!("EVENT {from} -> {}", subscriber.name()),
        ),
        other => panic!("{}: EVENT expected, got {other:?}", subscriber.name()),
    }
}

/// RPC both ways and PubSub both ways between `cbor` and a JSON and a MessagePack peer.
async fn route_with_json_and_msgpack(
    cbor: &mut impl Peer,
    json: &mut impl Peer,
    mp: &mut impl Peer,
    tag: &str,
) {
    // CBOR callee, JSON and MessagePack callers.
    let proc_ = format!("com.cbor.{tag}.cbor_callee");
    cbor.register(&proc_).await;
    call_through(json, cbor, &proc_).await;
    call_through(mp, cbor, &proc_).await;
    // CBOR caller, JSON and MessagePack callees.
    let (pj, pm) = (
        format!("com.cbor.{tag}.json_callee"),
        format!("com.cbor.{tag}.msgpack_callee"),
    );
    json.register(&pj).await;
    mp.register(&pm).await;
    call_through(cbor, json, &pj).await;
    call_through(cbor, mp, &pm).await;

    // CBOR publisher, JSON and MessagePack subscribers; then the other way round.
    let topic = format!("com.cbor.{tag}.from_cbor");
    let (sj, sm) = (json.subscribe(&topic).await, mp.subscribe(&topic).await);
    publish(cbor, &topic).await;
    let from = cbor.name();
    expect_event(json, sj, &from).await;
    expect_event(mp, sm, &from).await;
    let topic = format!("com.cbor.{tag}.to_cbor");
    let sc = cbor.subscribe(&topic).await;
    publish(json, &topic).await;
    let from = json.name();
    expect_event(cbor, sc, &from).await;
    publish(mp, &topic).await;
    let from = mp.name();
    expect_event(cbor, sc, &from).await;
}

#[tokio::test]
async fn a_cbor_websocket_session_routes_rpc_and_pubsub_with_json_and_msgpack_peers() {
    let router = router().await;
    let (ws, rs) = urls(&router);
    let (mut cbor, _) = RawPeer::join(&ws, REALM, Serializer::Cbor).await;
    let (mut json, _) = RawPeer::join(&ws, REALM, Serializer::Json).await;
    let (mut mp, _) = RsPeer::join(&rs, REALM, Serializer::MsgPack).await;
    route_with_json_and_msgpack(&mut cbor, &mut json, &mut mp, "ws").await;

    // Every message to a CBOR WebSocket session is a binary frame.
    let topic = "com.cbor.ws.frames";
    let sub = cbor.subscribe(topic, Dict::new()).await;
    publish(&mut json, topic).await;
    match cbor.try_recv_data_frame().await {
        Ok(WsMessage::Binary(b)) => match Serializer::Cbor.decode(&b) {
            Ok(Message::Event(e)) => assert_eq!(e.subscription, sub),
            other => panic!("EVENT expected, got {other:?}"),
        },
        other => panic!("a binary frame expected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cbor_rawsocket_session_routes_rpc_and_pubsub_with_json_and_msgpack_peers() {
    let router = router().await;
    let (ws, rs) = urls(&router);
    let (mut cbor, _) = RsPeer::join(&rs, REALM, Serializer::Cbor).await;
    let (mut json, _) = RsPeer::join(&rs, REALM, Serializer::Json).await;
    let (mut mp, _) = RawPeer::join(&ws, REALM, Serializer::MsgPack).await;
    route_with_json_and_msgpack(&mut cbor, &mut json, &mut mp, "rs").await;
}

/// A CBOR payload reaches CBOR sessions exactly as it was sent (here a float in half
/// precision, an integer with a longer head than needed and dict keys out of order, which a
/// re-encode would change), and the others transcoded.
#[tokio::test]
async fn a_cbor_payload_reaches_cbor_peers_byte_for_byte() {
    let router = router().await;
    let (ws, rs) = urls(&router);
    let (mut publisher, _) = RawPeer::join(&ws, REALM, Serializer::Cbor).await;
    let (mut cbor_ws, _) = RawPeer::join(&ws, REALM, Serializer::Cbor).await;
    let (mut cbor_rs, _) = RsPeer::join(&rs, REALM, Serializer::Cbor).await;
    let (mut json, _) = RawPeer::join(&ws, REALM, Serializer::Json).await;
    let topic = "com.cbor.verbatim";
    Peer::subscribe(&mut cbor_ws, topic).await;
    Peer::subscribe(&mut cbor_rs, topic).await;
    Peer::subscribe(&mut json, topic).await;

    // args [1.5 (half), 2 (in a 64-bit head), h'00ff'], kwargs {"z": 1, "a": "é"}
    let payload: &[u8] = &[
        0x83, 0xf9, 0x3e, 0x00, 0x1b, 0, 0, 0, 0, 0, 0, 0, 2, 0x42, 0x00, 0xff, //
        0xa2, 0x61, b'z', 0x01, 0x61, b'a', 0x62, 0xc3, 0xa9,
    ];
    // [16, 1, {}, "com.cbor.verbatim", args, kwargs]
    let mut frame = vec![0x86, 0x10, 0x01, 0xa0, 0x60 | topic.len() as u8];
    frame.extend_from_slice(topic.as_bytes());
    frame.extend_from_slice(payload);
    publisher.send_binary(frame).await;
    for bytes in [
        cbor_ws.recv_bytes().await,
        Peer::recv_bytes(&mut cbor_rs).await,
    ] {
        assert!(
            bytes.ends_with(payload),
            "EVENT re-encoded the payload: {bytes:02x?}"
        );
        assert!(matches!(
            Serializer::Cbor.decode(&bytes),
            Ok(Message::Event(_))
        ));
    }
    let Message::Event(e) = json.recv().await else {
        panic!("EVENT expected");
    };
    assert_eq!(
        e.payload.args,
        Some(vec![
            Value::Float(1.5),
            Value::UInt(2),
            Value::Bytes(vec![0, 0xff])
        ])
    );
    assert_eq!(
        e.payload.kwargs,
        Some(dict([("z", 1.into()), ("a", "é".into())]))
    );
}

/// Malformed or unsupported CBOR, before or after HELLO, on either transport: ABORT
/// `wamp.error.protocol_violation` naming the serializer, then the connection closes.
#[tokio::test]
async fn malformed_cbor_is_a_protocol_violation() {
    let router = router().await;
    let (ws, rs) = urls(&router);
    let bad: [(&str, &[u8]); 4] = [
        // [48, 1, {}, "a", (_ 1)]: an indefinite-length array
        (
            "indefinite length",
            &[0x85, 0x18, 0x30, 0x01, 0xa0, 0x61, b'a', 0x9f, 0x01, 0xff],
        ),
        // [48, 1, {}, "a", [1(0)]]: a tag
        (
            "tag",
            &[0x85, 0x18, 0x30, 0x01, 0xa0, 0x61, b'a', 0x81, 0xc1, 0x00],
        ),
        // [48, 1, {}, "a", [], {1: 2}]: a non-string key
        (
            "key",
            &[
                0x86, 0x18, 0x30, 0x01, 0xa0, 0x61, b'a', 0x80, 0xa1, 0x01, 0x02,
            ],
        ),
        // [48, 1, {}, "a", [...: truncated
        (
            "truncated",
            &[0x85, 0x18, 0x30, 0x01, 0xa0, 0x61, b'a', 0x82, 0x01],
        ),
    ];
    for (what, bytes) in bad {
        for joined in [true, false] {
            let mut p = RawPeer::connect(&ws, Serializer::Cbor).await;
            if joined {
                p.send(&wamp_tests::hello(REALM)).await;
                assert!(matches!(p.recv().await, Message::Welcome(_)));
            }
            p.send_frame(WsMessage::Binary(bytes.to_vec().into())).await;
            let abort = p.expect_abort(uris::PROTOCOL_VIOLATION).await;
            let message = abort.details.get("message").and_then(Value::as_str);
            assert!(
                message.is_some_and(|m| m.contains("wamp.2.cbor")),
                "{what}: {abort:?}"
            );

            let mut p = if joined {
                RsPeer::join(&rs, REALM, Serializer::Cbor).await.0
            } else {
                RsPeer::open(&rs, Serializer::Cbor).await
            };
            p.send_binary(bytes.to_vec()).await;
            p.expect_abort(uris::PROTOCOL_VIOLATION).await;
        }
    }
    // The router still serves CBOR sessions.
    let (mut ok, _) = RawPeer::join(&ws, REALM, Serializer::Cbor).await;
    Peer::subscribe(&mut ok, "com.cbor.still_fine").await;
}

/// The router takes the client's first acceptable subprotocol; a transport without `cbor`
/// refuses a CBOR-only offer (WebSocket) or handshake (RawSocket error 1).
#[tokio::test]
async fn cbor_is_negotiated_only_where_configured() {
    let router = router().await;
    let (ws, rs) = urls(&router);
    for (offer, chosen) in [
        (&["wamp.2.cbor", "wamp.2.json"][..], Serializer::Cbor),
        (&["wamp.2.json", "wamp.2.cbor"][..], Serializer::Json),
        (&["wamp.2.cbor"][..], Serializer::Cbor),
    ] {
        let p = RawPeer::connect_with(&ws, offer, None)
            .await
            .expect("connects");
        assert_eq!(p.serializer, chosen, "{offer:?}");
    }
    let mut p = RsPeer::connect(&rs).await;
    assert_eq!(p.handshake([0x7F, 0xF3, 0, 0]).await[1] & 0x0F, 3);

    let without = TestRouter::with_config(
        "[[transport]]\ntype = \"websocket\"\nbind = \"127.0.0.1:0\"\npath = \"/ws\"\n\
         serializers = [\"json\", \"msgpack\"]\n\
         [[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n\
         [[realm]]\nname = \"realm1\"\n",
    )
    .await;
    let (ws, rs) = urls(&without);
    assert!(RawPeer::connect_with(&ws, &["wamp.2.cbor"], None)
        .await
        .is_err());
    let mut p = RsPeer::connect(&rs).await;
    assert_eq!(p.handshake([0x7F, 0xF3, 0, 0]).await, [0x7F, 0x10, 0, 0]);
}

async fn client(url: &str, serializer: Serializer) -> Client {
    wamp_tests::client(url, REALM, serializer).await
}

/// Our client over CBOR, on WebSocket and on RawSocket: calls a JSON callee, serves a
/// MessagePack caller, publishes to and hears from JSON sessions.
#[tokio::test]
async fn our_client_speaks_cbor_over_websocket_and_rawsocket() {
    let router = router().await;
    let (ws, rs) = urls(&router);
    let json = client(&ws, Serializer::Json).await;
    let mp = client(&rs, Serializer::MsgPack).await;
    let echo = |inv: Invocation| async move {
        Ok::<_, wamp_client::CallError>(
            CallResult::new()
                .with_args(inv.args)
                .with_kwargs(inv.kwargs),
        )
    };
    let _json_echo = json
        .register("com.cbor.client.json_echo", echo)
        .await
        .expect("register");
    let want = payload();
    let (args, kwargs) = (want.args.unwrap(), want.kwargs.unwrap());
    for url in [&ws, &rs] {
        let cbor = client(url, Serializer::Cbor).await;
        let r = timeout(
            WAIT,
            cbor.call("com.cbor.client.json_echo")
                .args(args.clone())
                .kwargs(kwargs.clone()),
        )
        .await
        .expect("in time")
        .expect("the call succeeds");
        assert_eq!((&r.args, &r.kwargs), (&args, &kwargs), "{url}");

        let proc_ = format!("com.cbor.client.cbor_echo.{}", cbor.session_id());
        let _cbor_echo = cbor.register(&proc_, echo).await.expect("register");
        let r = timeout(
            WAIT,
            mp.call(&proc_).args(args.clone()).kwargs(kwargs.clone()),
        )
        .await
        .expect("in time")
        .expect("the call succeeds");
        assert_eq!((&r.args, &r.kwargs), (&args, &kwargs), "{url}");

        let topic = format!("com.cbor.client.events.{}", cbor.session_id());
        let mut heard_by_cbor = cbor.subscribe(&topic).await.expect("subscribe");
        let mut heard_by_json = json.subscribe(&topic).await.expect("subscribe");
        for publisher in [&json, &cbor] {
            timeout(
                WAIT,
                publisher
                    .publish(&topic)
                    .args(args.clone())
                    .kwargs(kwargs.clone())
                    .exclude_me(false)
                    .acknowledge(),
            )
            .await
            .expect("in time")
            .expect("published");
            for events in [&mut heard_by_cbor, &mut heard_by_json] {
                let ev = timeout(WAIT, events.next())
                    .await
                    .expect("in time")
                    .expect("an event");
                assert_eq!((&ev.args, &ev.kwargs), (&args, &kwargs), "{url}");
            }
        }
        drop((heard_by_cbor, heard_by_json));
        timeout(WAIT, cbor.leave())
            .await
            .expect("in time")
            .expect("leaves");
    }
}
