//! What a peer reads when its message is refused: every serializer names the message, the
//! field and what WAMP expects there, in the same words; and a frame holding bytes after the
//! message is refused by every serializer and both decoders (`decode`, `decode_shared`).

use bytes::Bytes;
use wamp_proto::{Dict, Serializer, Value};

fn list(items: Vec<Value>) -> Value {
    Value::List(items)
}

fn bytes_of(ser: Serializer, v: &Value) -> Vec<u8> {
    match ser {
        Serializer::Json => serde_json::to_vec(v).unwrap(),
        Serializer::MsgPack => rmp_serde::to_vec(v).unwrap(),
        Serializer::Cbor => minicbor_serde::to_vec(v).unwrap(),
    }
}

/// Both decoders refuse `frame`; the texts agree and are returned.
fn refused(ser: Serializer, frame: &[u8]) -> String {
    let full = ser.decode(frame).expect_err("decode accepted it");
    let shared = ser
        .decode_shared(&Bytes::copy_from_slice(frame))
        .expect_err("decode_shared accepted it");
    assert_eq!(full.serializer(), ser);
    let text = full.to_string();
    assert!(text.starts_with(&format!("invalid {} message: ", ser.subprotocol())));
    // Both name the same problem (JSON positions aside).
    let cut = |s: &str| s.split(" (at line").next().unwrap_or_default().to_owned();
    assert_eq!(cut(full.reason()), cut(shared.reason()), "{ser:?}");
    text
}

fn uint(n: u64) -> Value {
    Value::UInt(n)
}

fn s(t: &str) -> Value {
    t.into()
}

fn dict() -> Value {
    Value::Dict(Dict::new())
}

#[test]
fn errors_name_the_message_the_field_and_the_expected_type() {
    let cases: Vec<(Value, &[&str])> = vec![
        (
            list(vec![uint(48), uint(1), s("x"), s("a.b")]),
            &["CALL.Options", "expected a dict", "got the string \"x\""],
        ),
        (
            list(vec![uint(48), uint(1), dict(), uint(5)]),
            &[
                "CALL.Procedure",
                "expected a URI string",
                "got the integer 5",
            ],
        ),
        (
            list(vec![uint(32), uint(0), dict(), s("t")]),
            &["SUBSCRIBE.Request", "expected an id", "got the integer 0"],
        ),
        (
            list(vec![uint(16), Value::Int(-3), dict(), s("t")]),
            &["PUBLISH.Request", "expected an id", "got the integer -3"],
        ),
        (
            list(vec![uint(48), uint(1), dict(), s("a"), dict()]),
            &["CALL.Arguments", "expected a list"],
        ),
        (
            list(vec![
                uint(16),
                uint(1),
                dict(),
                s("a"),
                list(vec![]),
                list(vec![]),
            ]),
            &["PUBLISH.ArgumentsKw", "expected a dict"],
        ),
        (
            list(vec![uint(64), uint(1)]),
            &["REGISTER.Options", "missing"],
        ),
        (
            list(vec![uint(6), dict(), s("wamp.close.normal"), uint(1)]),
            &["GOODBYE", "too many elements"],
        ),
        (list(vec![uint(999)]), &["unknown message type 999"]),
        (
            list(vec![s("x")]),
            &["message type", "got the string \"x\""],
        ),
        (dict(), &["expected a WAMP message array", "got a dict"]),
        (
            list(vec![uint(1), s("realm1"), Value::Bool(true)]),
            &["HELLO.Details", "expected a dict", "got true"],
        ),
        (
            list(vec![uint(8), uint(48), uint(1), dict(), list(vec![])]),
            &["ERROR.Error", "expected a URI string", "got a list"],
        ),
    ];
    for ser in Serializer::ALL {
        for (msg, words) in &cases {
            let text = refused(ser, &bytes_of(ser, msg));
            for w in *words {
                assert!(text.contains(w), "{ser:?}: {text:?} lacks {w:?}");
            }
            assert!(
                !text.contains("invalid type") && !text.contains("newtype"),
                "{ser:?}: serde's words in {text:?}"
            );
        }
    }
}

#[test]
fn a_msgpack_ext_value_is_named_as_such() {
    // [48, 1, <fixext1>, "a"]: an ext value where CALL.Options belongs.
    let text = refused(Serializer::MsgPack, &[0x94, 48, 1, 0xd4, 1, 2, 0xa1, b'a']);
    assert!(text.contains("CALL.Options"), "{text}");
    assert!(text.contains("MessagePack ext value"), "{text}");
    // ... and inside Options: {"k": <fixext1>}
    let text = refused(
        Serializer::MsgPack,
        &[0x94, 48, 1, 0x81, 0xa1, b'k', 0xd4, 1, 2, 0xa1, b'a'],
    );
    assert!(text.contains("CALL.Options"), "{text}");
    assert!(text.contains("MessagePack ext value"), "{text}");
}

#[test]
fn a_non_string_dict_key_is_named() {
    for ser in [Serializer::MsgPack, Serializer::Cbor] {
        // [32, 1, {1: 2}, "t"]
        let frame = match ser {
            Serializer::MsgPack => vec![0x94, 32, 1, 0x81, 1, 2, 0xa1, b't'],
            _ => vec![0x84, 0x18, 32, 1, 0xa1, 1, 2, 0x61, b't'],
        };
        let text = refused(ser, &frame);
        if ser == Serializer::MsgPack {
            assert!(text.contains("SUBSCRIBE.Options"), "{text}");
            assert!(text.contains("string key"), "{text}");
        } else {
            // CBOR's own rules are checked before the message is read, without the field.
            assert!(text.contains("map keys must be text strings"), "{text}");
        }
    }
}

#[test]
fn truncated_and_too_deep_messages_say_so() {
    for ser in Serializer::ALL {
        let whole = bytes_of(ser, &list(vec![uint(48), uint(1), dict(), s("com.a")]));
        let text = refused(ser, &whole[..whole.len() - 2]);
        assert!(
            text.contains("ends early") || text.contains("EOF"),
            "{ser:?}: {text}"
        );
        let mut deep = list(vec![]);
        for _ in 0..200 {
            deep = list(vec![deep]);
        }
        let m = list(vec![uint(48), uint(1), dict(), s("com.a"), deep]);
        let text = refused(ser, &bytes_of(ser, &m));
        assert!(text.contains("nested too deeply"), "{ser:?}: {text}");
    }
}

#[test]
fn bytes_after_the_message_are_refused_by_every_serializer() {
    let messages = [
        // with a payload (the router's fast path for binary serializers) and without
        list(vec![
            uint(48),
            uint(1),
            dict(),
            s("com.a"),
            list(vec![uint(1)]),
            Value::Dict(Dict::from([("k".into(), uint(2))])),
        ]),
        list(vec![uint(48), uint(1), dict(), s("com.a"), list(vec![])]),
        list(vec![uint(32), uint(1), dict(), s("com.t")]),
        list(vec![uint(6), dict(), s("wamp.close.normal")]),
    ];
    for ser in Serializer::ALL {
        for m in &messages {
            let good = bytes_of(ser, m);
            assert!(ser.decode(&good).is_ok(), "{ser:?}");
            assert!(ser.decode_shared(&Bytes::from(good.clone())).is_ok());
            // One extra byte that is a whole value by itself (nil / null / 0), and a
            // whole second message.
            let extra: &[u8] = match ser {
                Serializer::Json => b" 0",
                Serializer::MsgPack => &[0xc0],
                Serializer::Cbor => &[0xf6],
            };
            for tail in [extra, &good[..]] {
                let mut frame = good.clone();
                frame.extend_from_slice(tail);
                let text = refused(ser, &frame);
                assert!(
                    text.contains("unexpected bytes after the end of the message"),
                    "{ser:?}: {text}"
                );
            }
        }
    }
}
