//! Payloads are routed without re-encoding: a peer of the sender's serializer receives the
//! `Arguments`/`ArgumentsKw` bytes exactly as sent (key order, number spelling, integers
//! beyond 64 bits, float32); a peer of the other serializer receives them transcoded.

use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::{Dict, Message, Serializer, Value};
use wamp_tests::{RawPeer, TestRouter};

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("a JSON frame is UTF-8")
}

#[tokio::test]
async fn json_call_and_result_payloads_arrive_byte_for_byte() {
    let router = TestRouter::start().await;
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    callee.register("com.pass", Dict::new()).await;

    // An integer no 64-bit type holds, a float spelled `1.50`, an escape, keys out of order:
    // a decode/re-encode would change every one of them.
    let args = r#"[123456789012345678901234567890, 1.50, "\u00e9"]"#;
    let kwargs = r#"{"z": 1, "a": {"y": 2, "b": 3}}"#;
    caller
        .send_frame(WsMessage::Text(
            format!(r#"[48, 1, {{}}, "com.pass", {args}, {kwargs}]"#).into(),
        ))
        .await;
    let inv = text(callee.recv_bytes().await);
    assert!(
        inv.ends_with(&format!(",{args},{kwargs}]")),
        "INVOCATION re-encoded the payload: {inv}"
    );
    let Ok(Message::Invocation(i)) = Serializer::Json.decode(inv.as_bytes()) else {
        panic!("expected INVOCATION, got {inv}");
    };

    let result = r#"[18446744073709551616, -0.0, 1e3]"#;
    callee
        .send_frame(WsMessage::Text(
            format!("[70, {}, {{}}, {result}]", i.request).into(),
        ))
        .await;
    let res = text(caller.recv_bytes().await);
    assert_eq!(res, format!("[50,1,{{}},{result}]"));
}

#[tokio::test]
async fn msgpack_event_payload_arrives_byte_for_byte() {
    let router = TestRouter::start().await;
    let (mut sub, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut publisher, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    sub.subscribe("com.topic", Dict::new()).await;

    // args: [float32 1.5, str "hi"]; kwargs: {"z": 1, "a": 2} (not in key order).
    let payload: &[u8] = &[
        0x92, 0xca, 0x3f, 0xc0, 0x00, 0x00, 0xa2, b'h', b'i', //
        0x82, 0xa1, b'z', 0x01, 0xa1, b'a', 0x02,
    ];
    // [16, 1, {}, "com.topic", args, kwargs]
    let mut frame = vec![0x96, 16, 1, 0x80, 0xa9];
    frame.extend_from_slice(b"com.topic");
    frame.extend_from_slice(payload);
    publisher.send_frame(WsMessage::Binary(frame.into())).await;
    let ev = sub.recv_bytes().await;
    assert!(
        ev.ends_with(payload),
        "EVENT re-encoded the payload: {ev:02x?}"
    );
    assert!(matches!(
        Serializer::MsgPack.decode(&ev),
        Ok(Message::Event(_))
    ));
}

#[tokio::test]
async fn other_serializer_peers_receive_the_payload_transcoded() {
    let router = TestRouter::start().await;
    let (mut json_sub, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut mp_sub, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut publisher, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    json_sub.subscribe("com.topic", Dict::new()).await;
    mp_sub.subscribe("com.topic", Dict::new()).await;

    // JSON binary convention: "\u0000" + base64 of [1, 2].
    let args = r#"[1, "\u0000AQI=", {"b": null, "a": [true]}]"#;
    publisher
        .send_frame(WsMessage::Text(
            format!(r#"[16, 1, {{}}, "com.topic", {args}]"#).into(),
        ))
        .await;
    let from_json = text(json_sub.recv_bytes().await);
    assert!(from_json.ends_with(&format!(",{args}]")), "{from_json}");

    let Message::Event(ev) = mp_sub.recv().await else {
        panic!("expected EVENT");
    };
    assert_eq!(
        ev.payload.args,
        Some(vec![
            Value::UInt(1),
            Value::Bytes(vec![1, 2]),
            Value::Dict(Dict::from([
                ("a".into(), Value::List(vec![Value::Bool(true)])),
                ("b".into(), Value::Null),
            ])),
        ])
    );
    assert_eq!(ev.payload.kwargs, None);
}

#[tokio::test]
async fn a_malformed_payload_is_still_a_protocol_violation() {
    let router = TestRouter::start().await;
    for (ser, frame) in [
        (
            Serializer::Json,
            WsMessage::Text(r#"[16, 1, {}, "com.topic", {"not": "a list"}]"#.into()),
        ),
        (
            Serializer::Json,
            WsMessage::Text(r#"[16, 1, {}, "com.topic", [], [1]]"#.into()),
        ),
        (
            // args announced as a 2-element list holding one element.
            Serializer::MsgPack,
            WsMessage::Binary(vec![0x95, 16, 1, 0x80, 0xa1, b't', 0x92, 0x01].into()),
        ),
        (
            // an ext value inside args.
            Serializer::MsgPack,
            WsMessage::Binary(vec![0x95, 16, 1, 0x80, 0xa1, b't', 0x91, 0xd4, 1, 2].into()),
        ),
    ] {
        let (mut p, _) = RawPeer::join(router.url(), "realm1", ser).await;
        p.send_frame(frame).await;
        p.expect_abort("wamp.error.protocol_violation").await;
    }
}
