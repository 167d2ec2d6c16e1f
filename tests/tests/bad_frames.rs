//! Frames that are not exactly one WAMP message, over WebSocket and RawSocket: bytes after
//! the message (a whole nil, a second message) are a protocol violation in every serializer,
//! answered like every other one (ABORT `wamp.error.protocol_violation`, then the close), and
//! the ABORT's `Details.message` names the message and field in WAMP's words.

use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::message::{Abort, Call};
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::rawsocket::{eventually, RsPeer, MESSAGE};
use wamp_tests::{RawPeer, TestRouter};

fn call() -> Message {
    Call {
        request: Id::new(1).expect("id"),
        options: Dict::new(),
        procedure: Uri::new("com.example.p"),
        payload: Payload::args(vec![Value::UInt(1)]),
    }
    .into()
}

/// The frame of `msg` in `ser` followed by `tail`.
fn with_tail(ser: Serializer, msg: &Message, tail: &[u8]) -> Vec<u8> {
    let mut b = ser.encode(msg).expect("encodes").as_bytes().to_vec();
    b.extend_from_slice(tail);
    b
}

/// One whole value by itself in `ser` (nil, null, 0).
fn one_value(ser: Serializer) -> &'static [u8] {
    match ser {
        Serializer::Json => b" 0",
        Serializer::MsgPack => &[0xc0],
        Serializer::Cbor => &[0xf6],
    }
}

/// Sends `frame` on a joined session of each transport; returns the ABORT texts.
async fn aborts_for(router: &TestRouter, ser: Serializer, frame: &[u8]) -> Vec<String> {
    let urls = router.server().urls();
    let mut texts = Vec::new();
    let (mut ws, _) = RawPeer::join(&urls[0], "realm1", ser).await;
    let f = if ser.is_binary() {
        WsMessage::Binary(frame.to_vec().into())
    } else {
        WsMessage::Text(String::from_utf8(frame.to_vec()).expect("utf-8").into())
    };
    ws.send_frame(f).await;
    texts.push(abort_text(&ws.expect_abort(uris::PROTOCOL_VIOLATION).await));
    let (mut rs, _) = RsPeer::join(&urls[1], "realm1", ser).await;
    rs.send_frame(MESSAGE, frame).await;
    let (msgs, _) = rs.until_closed().await;
    match msgs.as_slice() {
        [Message::Abort(a)] => {
            assert_eq!(a.reason.as_str(), uris::PROTOCOL_VIOLATION);
            texts.push(abort_text(a));
        }
        other => panic!("expected one ABORT over RawSocket, got {other:?}"),
    }
    texts
}

fn abort_text(a: &Abort) -> String {
    a.details
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn bytes_after_the_message_are_a_protocol_violation() {
    let router = TestRouter::with_config(wamp_tests::BOTH_TRANSPORTS_CONFIG).await;
    for ser in Serializer::ALL {
        let second = ser.encode(&call()).expect("encodes").as_bytes().to_vec();
        for tail in [one_value(ser), &second[..]] {
            for text in aborts_for(&router, ser, &with_tail(ser, &call(), tail)).await {
                assert!(
                    text.contains("unexpected bytes after the end of the message"),
                    "{ser:?}: {text}"
                );
                assert!(text.contains(ser.subprotocol()), "{ser:?}: {text}");
            }
        }
    }
    // The router still serves, and no aborted session is left behind.
    let (mut p, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    p.send(&call()).await;
    assert!(
        matches!(p.recv().await, Message::Error(e) if e.error.as_str() == uris::NO_SUCH_PROCEDURE)
    );
    drop(p);
    eventually("the sessions left", || router.server().session_count() == 0).await;
}

#[tokio::test]
async fn a_bad_msgpack_option_is_named_in_wamp_words() {
    let router = TestRouter::with_config(wamp_tests::BOTH_TRANSPORTS_CONFIG).await;
    // [48, 1, {"k": <fixext1>}, "com.example.p"]
    let mut frame = vec![0x94, 48, 1, 0x81, 0xa1, b'k', 0xd4, 1, 2, 0xad];
    frame.extend_from_slice(b"com.example.p");
    for text in aborts_for(&router, Serializer::MsgPack, &frame).await {
        assert!(text.contains("CALL.Options"), "{text}");
        assert!(text.contains("MessagePack ext value"), "{text}");
        assert!(!text.contains("newtype"), "{text}");
    }
    // A SUBSCRIBE whose topic is a number, in each serializer.
    for ser in Serializer::ALL {
        let bad = Value::List(vec![
            Value::UInt(32),
            Value::UInt(1),
            Value::Dict(Dict::new()),
            Value::UInt(7),
        ]);
        let frame = match ser {
            Serializer::Json => serde_json::to_vec(&bad).expect("json"),
            // The same array through the JSON data model into each binary serializer.
            Serializer::MsgPack => vec![0x94, 32, 1, 0x80, 7],
            Serializer::Cbor => vec![0x84, 0x18, 32, 1, 0xa0, 7],
        };
        for text in aborts_for(&router, ser, &frame).await {
            assert!(text.contains("SUBSCRIBE.Topic"), "{ser:?}: {text}");
            assert!(text.contains("expected a URI string"), "{ser:?}: {text}");
            assert!(text.contains("got the integer 7"), "{ser:?}: {text}");
        }
    }
}
