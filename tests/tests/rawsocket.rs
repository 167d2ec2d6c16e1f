//! The RawSocket transport over real sockets, octet by octet: the handshake (its reply and
//! every error code), the framing (PING/PONG, the 25th length bit, bad headers, oversize and
//! truncated frames) and protocol violations. After each failure, the listener still serves
//! new sessions. Routing between transports is in `rawsocket_routing.rs`.

use wamp_proto::message::{Call, Publish};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::rawsocket::{
    code, encode, eventually, frame, handshake, header, Ended, RsPeer, MAGIC, MAX_FRAME, MESSAGE,
    PING, PONG,
};
use wamp_tests::TestRouter;

const JSON: u8 = 1;
const MSGPACK: u8 = 2;

/// A router with one RawSocket transport on TCP; `options` go into its `[[transport]]`.
async fn rs_router(options: &str) -> TestRouter {
    TestRouter::with_config(&format!(
        "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n{options}\n\
         [[realm]]\nname = \"realm1\"\n"
    ))
    .await
}

/// A PUBLISH with acknowledgement carrying `args`.
fn publish(request: Id, topic: &str, args: Vec<Value>) -> Message {
    Publish {
        request,
        options: dict([("acknowledge", true.into())]),
        topic: Uri::new(topic),
        payload: Payload::args(args),
    }
    .into()
}

/// Two fresh sessions on `url` (JSON and MessagePack) route an event between them: the
/// listener, the realm and the router's loop are undisturbed.
async fn assert_listener_works(url: &str) {
    let (mut sub, _) = RsPeer::join(url, "realm1", Serializer::Json).await;
    let (mut publisher, _) = RsPeer::join(url, "realm1", Serializer::MsgPack).await;
    let topic = format!("com.check.{}", sub.session.expect("joined"));
    let subscription = sub.subscribe(&topic).await;
    let r = publisher.request();
    publisher.send(&publish(r, &topic, vec![7.into()])).await;
    assert!(
        matches!(publisher.recv().await, Message::Published(p) if p.request == r),
        "PUBLISHED expected"
    );
    match sub.recv().await {
        Message::Event(e) => {
            assert_eq!(e.subscription, subscription);
            assert_eq!(e.payload.args, Some(vec![Value::UInt(7)]));
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// Sends `octets` as a handshake and expects exactly `reply`, then an orderly close.
async fn assert_refused(url: &str, octets: [u8; 4], reply: [u8; 4]) {
    let mut p = RsPeer::connect(url).await;
    assert_eq!(
        p.handshake(octets).await,
        reply,
        "reply to handshake {octets:02x?}"
    );
    p.expect_eof().await;
}

// --- handshake ---------------------------------------------------------------------------

#[tokio::test]
async fn handshake_reply_echoes_the_serializer_and_announces_the_router_maximum() {
    // max_message_size -> the L the router announces: the largest 2^(9+L) not above it.
    let cases = [
        ("max_message_size = 65536", 7),
        ("max_message_size = 100000", 7),
        ("max_message_size = 1024", 1),
        ("max_message_size = 67108864", 15),
        ("", 15), // the default, 16 MiB
    ];
    for (option, l) in cases {
        let router = rs_router(option).await;
        for ser in [Serializer::Json, Serializer::MsgPack] {
            // Whatever the client accepts (L = 3, 9, 15), the reply carries the router's own L.
            for client_l in [3, 9, 15] {
                let mut p = RsPeer::connect(router.url()).await;
                let reply = p.handshake(handshake(client_l, code(ser))).await;
                assert_eq!(
                    reply,
                    [MAGIC, (l << 4) | code(ser), 0, 0],
                    "{option:?}, {ser:?}, client L {client_l}"
                );
            }
        }
        // And the session then works in the serializer of the handshake.
        assert_listener_works(router.url()).await;
    }
}

#[tokio::test]
async fn unsupported_serializers_get_error_1() {
    let router = rs_router("serializers = [\"json\"]").await;
    for s in [MSGPACK, 3, 0, 4, 15] {
        assert_refused(router.url(), handshake(15, s), [MAGIC, 0x10, 0, 0]).await;
        let (_json, _) = RsPeer::join(router.url(), "realm1", Serializer::Json).await;
    }
    // Without the `serializers` key a transport takes json and msgpack: CBOR (3) is refused.
    let router = rs_router("").await;
    assert_refused(router.url(), handshake(15, 3), [MAGIC, 0x10, 0, 0]).await;
    assert_listener_works(router.url()).await;
}

#[tokio::test]
async fn a_client_maximum_below_the_transport_minimum_gets_error_2() {
    let router = rs_router("min_client_max_message_size = 65536").await;
    for l in [0, 6] {
        assert_refused(router.url(), handshake(l, JSON), [MAGIC, 0x20, 0, 0]).await;
    }
    // 2^(9+7) = 65536 is enough.
    let mut p = RsPeer::connect(router.url()).await;
    assert_eq!(
        p.handshake(handshake(7, MSGPACK)).await,
        [MAGIC, 0xF2, 0, 0]
    );
    p.serializer = Serializer::MsgPack;
    p.hello("realm1").await;
    assert_listener_works(router.url()).await;
}

#[tokio::test]
async fn reserved_handshake_octets_get_error_3() {
    let router = rs_router("").await;
    for octets in [
        [MAGIC, 0xF1, 0, 1],
        [MAGIC, 0xF1, 0x80, 0],
        [MAGIC, 0xF2, 0xFF, 0xFF],
    ] {
        assert_refused(router.url(), octets, [MAGIC, 0x30, 0, 0]).await;
    }
    assert_listener_works(router.url()).await;
}

#[tokio::test]
async fn connections_over_the_limit_get_error_4() {
    let router = rs_router("max_connections = 1").await;
    let (mut held, _) = RsPeer::join(router.url(), "realm1", Serializer::Json).await;
    for ser in [JSON, MSGPACK] {
        assert_refused(router.url(), handshake(15, ser), [MAGIC, 0x40, 0, 0]).await;
    }
    // The connection that holds the slot is untouched.
    held.subscribe("com.held").await;
    drop(held);
    // Its slot is freed once the router has seen it close: retry (bounded) until accepted.
    let mut p = tokio::time::timeout(wamp_tests::WAIT, async {
        loop {
            let mut p = RsPeer::connect(router.url()).await;
            match p.handshake(handshake(15, JSON)).await {
                [MAGIC, 0x40, 0, 0] => p.expect_eof().await,
                reply => {
                    assert_eq!(reply, [MAGIC, 0xF1, 0, 0]);
                    return p;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the slot is freed in time");
    p.hello("realm1").await;
    p.subscribe("com.next").await;
}

#[tokio::test]
async fn a_first_octet_other_than_0x7f_closes_without_a_reply() {
    let router = rs_router("").await;
    let http = b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n";
    for first in [&[0x00u8, 0xF1, 0, 0][..], &http[..], &[0x7E][..]] {
        let mut p = RsPeer::connect(router.url()).await;
        p.write(first).await;
        // Closed (in time) with nothing sent back. Octets the router did not read may turn
        // the close into a reset, so how it ended is not checked.
        p.expect_end().await;
    }
    assert_listener_works(router.url()).await;
}

#[tokio::test]
async fn an_incomplete_handshake_and_a_missing_hello_time_out() {
    let router = TestRouter::with_config(
        "[router]\nhandshake_timeout_ms = 200\n[[transport]]\ntype = \"rawsocket\"\n\
         bind = \"127.0.0.1:0\"\n[[realm]]\nname = \"realm1\"\n",
    )
    .await;
    // Two of the four handshake octets, then nothing: closed, no reply.
    let mut partial = RsPeer::connect(router.url()).await;
    partial.write(&[MAGIC, 0xF1]).await;
    // Handshake done, no HELLO: closed without a message.
    let mut idle = RsPeer::open(router.url(), Serializer::Json).await;
    partial.expect_eof().await;
    let (msgs, end) = idle.until_closed().await;
    assert!(msgs.is_empty(), "{msgs:?}");
    assert_eq!(end, Ended::Eof);
    assert_listener_works(router.url()).await;
}

// --- framing -------------------------------------------------------------------------------

/// A joined session writes `octets`: the router closes its connection without a message and
/// the session leaves, while a session joined next to it and new ones keep working.
async fn assert_closes_connection(router: &TestRouter, octets: &[u8]) {
    let url = router.url();
    eventually("earlier sessions left", || {
        router.server().session_count() == 0
    })
    .await;
    let (mut witness, _) = RsPeer::join(url, "realm1", Serializer::MsgPack).await;
    let (mut victim, _) = RsPeer::join(url, "realm1", Serializer::Json).await;
    assert_eq!(router.server().session_count(), 2);
    victim.write(octets).await;
    let (msgs, end) = victim.until_closed().await;
    assert!(msgs.is_empty(), "after {octets:02x?}: {msgs:?}");
    assert_eq!(end, Ended::Eof, "after {octets:02x?}");
    eventually("the closed session left", || {
        router.server().session_count() == 1
    })
    .await;
    witness.subscribe("com.witness").await;
    assert_listener_works(url).await;
}

#[tokio::test]
async fn bad_frame_headers_close_the_connection() {
    let router = rs_router("").await;
    let ok = [0x00, 0, 0, 2, b'[', b']'];
    for bad in [
        [0x10, 0, 0, 2], // reserved bits
        [0x80, 0, 0, 2],
        [0x03, 0, 0, 2], // reserved frame types
        [0x05, 0, 0, 2],
        [0x07, 0, 0, 2],
        [0x08, 0, 0, 2], // the 25th length bit with a non-zero length
    ] {
        let mut octets = bad.to_vec();
        octets.extend_from_slice(&ok[4..]);
        assert_closes_connection(&router, &octets).await;
    }
}

#[tokio::test]
async fn a_frame_over_the_router_maximum_is_refused_on_its_header() {
    let router = rs_router("max_message_size = 65536").await;
    // Only the header: the router must not wait for 65537 octets that never come.
    assert_closes_connection(&router, &header(MESSAGE, 65537)).await;
    assert_closes_connection(&router, &header(PING, 65537)).await;
    assert_closes_connection(&router, &header(MESSAGE, MAX_FRAME)).await;

    // A message of exactly the maximum is accepted.
    let (mut p, _) = RsPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = p.request();
    let mut fill = 65536 - encode(Serializer::Json, &publish(r, "com.big", vec!["".into()])).len();
    let msg = publish(r, "com.big", vec!["x".repeat(fill).into()]);
    assert_eq!(encode(Serializer::Json, &msg).len(), 65536);
    p.send(&msg).await;
    assert!(matches!(p.recv().await, Message::Published(m) if m.request == r));
    // One octet more is not.
    fill += 1;
    let r = p.request();
    p.send(&publish(r, "com.big", vec!["x".repeat(fill).into()]))
        .await;
    let (msgs, end) = p.until_closed().await;
    assert!(msgs.is_empty(), "{msgs:?}");
    assert_eq!(end, Ended::Eof);
}

#[tokio::test]
async fn a_truncated_frame_then_the_client_closing_is_harmless() {
    let router = rs_router("").await;
    let (mut witness, _) = RsPeer::join(router.url(), "realm1", Serializer::Json).await;
    for cut in [1, 3, 4, 10] {
        let (mut p, _) = RsPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
        let mut octets = frame(MESSAGE, &[0x90; 100]);
        octets.truncate(cut);
        p.write(&octets).await;
        p.shutdown().await;
        // The router sees the stream end mid-frame and closes its side.
        assert_eq!(p.expect_end().await, Ended::Eof, "cut at {cut}");
        eventually("the session left", || router.server().session_count() == 1).await;
    }
    // Dropped (not half-closed) mid-frame, before joining.
    let mut p = RsPeer::open(router.url(), Serializer::Json).await;
    p.write(&header(MESSAGE, 50)).await;
    drop(p);
    witness.subscribe("com.witness").await;
    assert_listener_works(router.url()).await;
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_echoing_its_payload() {
    let router = rs_router("").await;
    let payloads: [&[u8]; 3] = [b"", b"hello \x00\xff", &[0xA5; 3000]];
    // Before HELLO, and on a joined session.
    let mut p = RsPeer::open(router.url(), Serializer::Json).await;
    for payload in payloads {
        p.send_frame(PING, payload).await;
        assert_eq!(p.recv_frame().await, (PONG, payload.to_vec()));
    }
    // An unsolicited PONG is ignored.
    p.send_frame(PONG, b"unasked").await;
    p.hello("realm1").await;
    for payload in payloads {
        p.send_frame(PING, payload).await;
        assert_eq!(p.recv_frame().await, (PONG, payload.to_vec()));
    }
    // A PING between two messages in one write: both replies and the PONG come.
    let topic = "com.ping.between";
    let mut octets = encode_frame(&mut p, topic);
    octets.extend(frame(PING, b"between"));
    octets.extend(encode_frame(&mut p, topic));
    p.write(&octets).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(p.recv_frame().await.0);
    }
    got.sort_unstable();
    assert_eq!(got, [MESSAGE, MESSAGE, PONG]);
    assert_listener_works(router.url()).await;
}

/// A SUBSCRIBE frame of `p` to `topic` (its SUBSCRIBED is the reply).
fn encode_frame(p: &mut RsPeer, topic: &str) -> Vec<u8> {
    let msg = wamp_proto::message::Subscribe {
        request: p.request(),
        options: Dict::new(),
        topic: Uri::new(topic),
    }
    .into();
    frame(MESSAGE, &encode(p.serializer, &msg))
}

/// TRN-11: every PING gets exactly one PONG, also when several arrive in one read.
#[tokio::test]
async fn every_ping_gets_its_own_pong() {
    let router = rs_router("").await;
    let (mut p, _) = RsPeer::join(router.url(), "realm1", Serializer::Json).await;
    let mut octets = frame(PING, b"one");
    octets.extend(frame(PING, b"two"));
    octets.extend(frame(PING, b"three"));
    p.write(&octets).await;
    for want in [&b"one"[..], b"two", b"three"] {
        assert_eq!(p.recv_frame().await, (PONG, want.to_vec()));
    }
}

#[tokio::test]
async fn a_ping_of_2_24_octets_uses_the_25th_length_bit_both_ways() {
    let router = rs_router("").await;
    let mut p = RsPeer::open(router.url(), Serializer::Json).await;
    assert_eq!(p.router_max, MAX_FRAME);
    let payload: Vec<u8> = (0..MAX_FRAME).map(|i| (i % 251) as u8).collect();
    let mut octets = header(PING, MAX_FRAME).to_vec();
    assert_eq!(octets, [0x09, 0, 0, 0]);
    octets.extend_from_slice(&payload);
    p.write(&octets).await;
    assert_eq!(
        p.read(4).await,
        [0x0A, 0, 0, 0],
        "PONG header with the X bit"
    );
    assert!(p.read(MAX_FRAME).await == payload, "PONG payload differs");
    p.hello("realm1").await;
}

// --- protocol violations -------------------------------------------------------------------

#[tokio::test]
async fn a_protocol_violation_gets_abort_then_close() {
    let router = rs_router("").await;
    let call = |r| -> Message {
        Call {
            request: Id::new(r).expect("id"),
            options: Dict::new(),
            procedure: Uri::new("com.p"),
            payload: Payload::default(),
        }
        .into()
    };
    for ser in [Serializer::Json, Serializer::MsgPack] {
        // CALL before HELLO.
        let mut p = RsPeer::open(router.url(), ser).await;
        p.send(&call(1)).await;
        p.expect_abort(uris::PROTOCOL_VIOLATION).await;
        // A frame that does not decode in the session's serializer.
        let mut p = RsPeer::open(router.url(), ser).await;
        p.send_frame(MESSAGE, b"\xc1 not a message").await;
        p.expect_abort(uris::PROTOCOL_VIOLATION).await;
        // A second HELLO on an established session.
        let (mut p, _) = RsPeer::join(router.url(), "realm1", ser).await;
        p.send(&wamp_tests::hello("realm1")).await;
        p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    }
    eventually("the aborted sessions left", || {
        router.server().session_count() == 0
    })
    .await;
    assert_listener_works(router.url()).await;
}
