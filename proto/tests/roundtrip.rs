//! Property tests: every message survives `decode(encode(m))` with every serializer (json,
//! msgpack, cbor), and `decode` never panics, whatever bytes it is handed.
//!
//! Two normalisations are part of the documented behaviour and are applied to the expected value:
//! - a payload with kwargs but no args is sent as `[], {kwargs}` and so comes back with
//!   `args: Some(vec![])` (every serializer);
//! - in JSON, binary data travels as a string made of NUL followed by base64, so a *string*
//!   [`Value`] of exactly that form comes back as [`Value::Bytes`] (the WAMP convention; JSON
//!   cannot tell the two apart). URIs, dict keys and the plain-string fields of CHALLENGE and
//!   AUTHENTICATE are never reinterpreted.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeSet;
use wamp_proto::message::*;
use wamp_proto::{Dict, Encoded, Id, Message, Payload, Serializer, Uri, Value, MAX_ID};

/// Cases per property: enough to hit every variant many times, small enough for debug mode.
/// `PROPTEST_CASES=20000 cargo test -p wamp-proto --release --test roundtrip` digs deeper.
const CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES);
    Config {
        cases,
        // Keep failures reproducible in CI without writing regression files into the repo.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Strings of every flavour that matters for the JSON binary convention.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,12}",
        2 => "[a-z_.]{0,10}",
        // NUL + valid, canonical base64: JSON reads it back as bytes.
        1 => vec(any::<u8>(), 0..12).prop_map(|b| format!("\0{}", BASE64.encode(b))),
        // NUL + arbitrary text: mostly not base64, so stays a string.
        1 => ".{0,8}".prop_map(|s| format!("\0{s}")),
        1 => Just("\0".to_owned()),
    ]
}

/// Finite floats only: JSON has no NaN or infinity.
fn float() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO),
        Just(0.5),
        Just(-1.0),
        Just(1e300),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(9007199254740993.0),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        // Value::Int holds negative integers only (the documented normalisation).
        (i64::MIN..0).prop_map(Value::Int),
        Just(Value::Int(i64::MIN)),
        Just(Value::Int(-1)),
        (0..=MAX_ID).prop_map(Value::UInt),
        (MAX_ID..=u64::MAX).prop_map(Value::UInt),
        Just(Value::UInt(u64::MAX)),
        Just(Value::UInt(MAX_ID + 1)),
        float().prop_map(Value::Float),
        string().prop_map(Value::Str),
        vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
    ]
}

/// Any [`Value`], at most 3 containers deep and with a few dozen nodes.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::List),
            btree_map(string(), inner, 0..4).prop_map(Value::Dict),
        ]
    })
}

fn dict() -> impl Strategy<Value = Dict> {
    btree_map(string(), value(), 0..4)
}

fn list() -> impl Strategy<Value = Vec<Value>> {
    vec(value(), 0..4)
}

/// Every payload shape, including `args: None` + kwargs (normalised on decode).
fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        Just(Payload::default()),
        list().prop_map(Payload::args),
        (list(), dict()).prop_map(|(a, k)| Payload {
            args: Some(a),
            kwargs: Some(k),
            raw: None,
        }),
        dict().prop_map(|k| Payload {
            args: Some(vec![]),
            kwargs: Some(k),
            raw: None,
        }),
        dict().prop_map(|k| Payload {
            args: None,
            kwargs: Some(k),
            raw: None,
        }),
    ]
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![Just(1), Just(MAX_ID), 1..=MAX_ID, 1..=1000u64]
        .prop_map(|n| Id::new(n).expect("strategy yields valid ids"))
}

fn uri() -> impl Strategy<Value = Uri> {
    prop_oneof![
        3 => "[a-z0-9_]{1,6}(\\.[a-z0-9_]{1,6}){0,3}",
        1 => string(),
    ]
    .prop_map(|s| Uri::new(&s))
}

/// Request ids of UNSUBSCRIBED/UNREGISTERED: an id without details, or the revocation form
/// `0` + details.
fn request_or_revocation() -> impl Strategy<Value = (u64, Option<Dict>)> {
    prop_oneof![
        id().prop_map(|i| (i.get(), None)),
        dict().prop_map(|d| (0, Some(d))),
    ]
}

/// Any [`Message`]: one arm per variant (24), with every optional element exercised.
fn message() -> impl Strategy<Value = Message> {
    let arms: Vec<BoxedStrategy<Message>> = vec![
        (uri(), dict())
            .prop_map(|(realm, details)| Hello { realm, details }.into())
            .boxed(),
        (id(), dict())
            .prop_map(|(session, details)| Welcome { session, details }.into())
            .boxed(),
        (dict(), uri(), payload())
            .prop_map(|(details, reason, payload)| {
                Abort {
                    details,
                    reason,
                    payload,
                }
                .into()
            })
            .boxed(),
        (string(), dict())
            .prop_map(|(auth_method, extra)| Challenge { auth_method, extra }.into())
            .boxed(),
        (string(), dict())
            .prop_map(|(signature, extra)| Authenticate { signature, extra }.into())
            .boxed(),
        (dict(), uri())
            .prop_map(|(details, reason)| Goodbye { details, reason }.into())
            .boxed(),
        (
            prop_oneof![
                Just(code::SUBSCRIBE),
                Just(code::UNSUBSCRIBE),
                Just(code::PUBLISH),
                Just(code::REGISTER),
                Just(code::UNREGISTER),
                Just(code::CALL),
                Just(code::INVOCATION),
                any::<u64>(),
            ],
            id(),
            dict(),
            uri(),
            payload(),
        )
            .prop_map(|(request_type, request, details, error, payload)| {
                Error {
                    request_type,
                    request,
                    details,
                    error,
                    payload,
                }
                .into()
            })
            .boxed(),
        (id(), dict(), uri(), payload())
            .prop_map(|(request, options, topic, payload)| {
                Publish {
                    request,
                    options,
                    topic,
                    payload,
                }
                .into()
            })
            .boxed(),
        (id(), id())
            .prop_map(|(request, publication)| {
                Published {
                    request,
                    publication,
                }
                .into()
            })
            .boxed(),
        (id(), dict(), uri())
            .prop_map(|(request, options, topic)| {
                Subscribe {
                    request,
                    options,
                    topic,
                }
                .into()
            })
            .boxed(),
        (id(), id())
            .prop_map(|(request, subscription)| {
                Subscribed {
                    request,
                    subscription,
                }
                .into()
            })
            .boxed(),
        (id(), id(), proptest::option::of(dict()))
            .prop_map(|(request, subscription, options)| {
                Unsubscribe {
                    request,
                    subscription,
                    options,
                }
                .into()
            })
            .boxed(),
        request_or_revocation()
            .prop_map(|(request, details)| Unsubscribed { request, details }.into())
            .boxed(),
        (id(), id(), dict(), payload())
            .prop_map(|(subscription, publication, details, payload)| {
                Event {
                    subscription,
                    publication,
                    details,
                    payload,
                }
                .into()
            })
            .boxed(),
        (id(), dict(), uri(), payload())
            .prop_map(|(request, options, procedure, payload)| {
                Call {
                    request,
                    options,
                    procedure,
                    payload,
                }
                .into()
            })
            .boxed(),
        (id(), dict())
            .prop_map(|(request, options)| Cancel { request, options }.into())
            .boxed(),
        (id(), dict(), payload())
            .prop_map(|(request, details, payload)| {
                Result {
                    request,
                    details,
                    payload,
                }
                .into()
            })
            .boxed(),
        (id(), dict(), uri())
            .prop_map(|(request, options, procedure)| {
                Register {
                    request,
                    options,
                    procedure,
                }
                .into()
            })
            .boxed(),
        (id(), id())
            .prop_map(|(request, registration)| {
                Registered {
                    request,
                    registration,
                }
                .into()
            })
            .boxed(),
        (id(), id(), proptest::option::of(dict()))
            .prop_map(|(request, registration, options)| {
                Unregister {
                    request,
                    registration,
                    options,
                }
                .into()
            })
            .boxed(),
        request_or_revocation()
            .prop_map(|(request, details)| Unregistered { request, details }.into())
            .boxed(),
        (id(), id(), dict(), payload())
            .prop_map(|(request, registration, details, payload)| {
                Invocation {
                    request,
                    registration,
                    details,
                    payload,
                }
                .into()
            })
            .boxed(),
        (id(), dict())
            .prop_map(|(request, options)| Interrupt { request, options }.into())
            .boxed(),
        (id(), dict(), payload())
            .prop_map(|(request, options, payload)| {
                Yield {
                    request,
                    options,
                    payload,
                }
                .into()
            })
            .boxed(),
    ];
    Union::new(arms)
}

/// Every message code, in declaration order.
const ALL_CODES: [u64; 24] = [
    code::HELLO,
    code::WELCOME,
    code::ABORT,
    code::CHALLENGE,
    code::AUTHENTICATE,
    code::GOODBYE,
    code::ERROR,
    code::PUBLISH,
    code::PUBLISHED,
    code::SUBSCRIBE,
    code::SUBSCRIBED,
    code::UNSUBSCRIBE,
    code::UNSUBSCRIBED,
    code::EVENT,
    code::CALL,
    code::CANCEL,
    code::RESULT,
    code::REGISTER,
    code::REGISTERED,
    code::UNREGISTER,
    code::UNREGISTERED,
    code::INVOCATION,
    code::INTERRUPT,
    code::YIELD,
];

// ---------------------------------------------------------------------------------------------
// Expected normalisations
// ---------------------------------------------------------------------------------------------

/// Applies `f` to every [`Value`] a message carries (dicts' values and payloads), and the
/// kwargs-without-args normalisation to every payload.
///
/// The match is exhaustive on purpose: a new variant must be added here and to [`message`].
fn map_message(m: Message, f: &impl Fn(Value) -> Value) -> Message {
    let d = |d: Dict| -> Dict { d.into_iter().map(|(k, v)| (k, f(v))).collect() };
    let p = |p: Payload| -> Payload {
        let kwargs = p.kwargs.map(d);
        let args = match (p.args, &kwargs) {
            (None, Some(_)) => Some(vec![]),
            (a, _) => a,
        };
        Payload {
            args: args.map(|a| a.into_iter().map(f).collect()),
            kwargs,
            raw: None,
        }
    };
    use Message as M;
    match m {
        M::Hello(mut m) => {
            m.details = d(m.details);
            m.into()
        }
        M::Welcome(mut m) => {
            m.details = d(m.details);
            m.into()
        }
        M::Abort(mut m) => {
            m.details = d(m.details);
            m.payload = p(m.payload);
            m.into()
        }
        M::Challenge(mut m) => {
            m.extra = d(m.extra);
            m.into()
        }
        M::Authenticate(mut m) => {
            m.extra = d(m.extra);
            m.into()
        }
        M::Goodbye(mut m) => {
            m.details = d(m.details);
            m.into()
        }
        M::Error(mut m) => {
            m.details = d(m.details);
            m.payload = p(m.payload);
            m.into()
        }
        M::Publish(mut m) => {
            m.options = d(m.options);
            m.payload = p(m.payload);
            m.into()
        }
        M::Published(m) => m.into(),
        M::Subscribe(mut m) => {
            m.options = d(m.options);
            m.into()
        }
        M::Subscribed(m) => m.into(),
        M::Unsubscribe(mut m) => {
            m.options = m.options.map(d);
            m.into()
        }
        M::Unsubscribed(mut m) => {
            m.details = m.details.map(d);
            m.into()
        }
        M::Event(mut m) => {
            m.details = d(m.details);
            m.payload = p(m.payload);
            m.into()
        }
        M::Call(mut m) => {
            m.options = d(m.options);
            m.payload = p(m.payload);
            m.into()
        }
        M::Cancel(mut m) => {
            m.options = d(m.options);
            m.into()
        }
        M::Result(mut m) => {
            m.details = d(m.details);
            m.payload = p(m.payload);
            m.into()
        }
        M::Register(mut m) => {
            m.options = d(m.options);
            m.into()
        }
        M::Registered(m) => m.into(),
        M::Unregister(mut m) => {
            m.options = m.options.map(d);
            m.into()
        }
        M::Unregistered(mut m) => {
            m.details = m.details.map(d);
            m.into()
        }
        M::Invocation(mut m) => {
            m.details = d(m.details);
            m.payload = p(m.payload);
            m.into()
        }
        M::Interrupt(mut m) => {
            m.options = d(m.options);
            m.into()
        }
        M::Yield(mut m) => {
            m.options = d(m.options);
            m.payload = p(m.payload);
            m.into()
        }
    }
}

/// What a message looks like after a round trip through `ser`.
fn expected(ser: Serializer, m: &Message) -> Message {
    match ser {
        Serializer::MsgPack | Serializer::Cbor => map_message(m.clone(), &|v| v),
        Serializer::Json => map_message(m.clone(), &json_value),
    }
}

/// The JSON view of a value: a string made of NUL + canonical base64 is binary data.
fn json_value(v: Value) -> Value {
    match v {
        Value::Str(s) => match s.strip_prefix('\0').map(|b64| BASE64.decode(b64)) {
            Some(Ok(bytes)) => Value::Bytes(bytes),
            _ => Value::Str(s),
        },
        Value::List(l) => Value::List(l.into_iter().map(json_value).collect()),
        Value::Dict(d) => Value::Dict(d.into_iter().map(|(k, v)| (k, json_value(v))).collect()),
        other => other,
    }
}

/// Re-encodes a decoded message with the same serializer and checks that it decodes to the
/// same message (bytes-identical re-encoding too, which also covers NaN from msgpack input).
fn assert_reencode_stable(ser: Serializer, m: &Message) -> std::result::Result<(), TestCaseError> {
    let e1 = ser
        .encode(m)
        .map_err(|e| TestCaseError::fail(format!("a decoded message must re-encode: {e}")))?;
    let m2 = ser
        .decode(e1.as_bytes())
        .map_err(|e| TestCaseError::fail(format!("a re-encoded message must decode: {e}")))?;
    let e2 = ser.encode(&m2).expect("encodes");
    prop_assert_eq!(e1.as_bytes(), e2.as_bytes(), "re-encoding is not stable");
    let n1 = map_message(m.clone(), &|v| v);
    if n1 != m2 {
        // NaN (only possible from msgpack input) is the one value unequal to itself.
        prop_assert_eq!(format!("{n1:?}"), format!("{m2:?}"));
    }
    Ok(())
}

/// The router's decode (`decode_shared`, payload left encoded) accepts exactly what `decode`
/// accepts, materializes to the same message, and whatever it keeps re-encodes, in either
/// serializer, to something that decodes to that message again.
fn assert_shared_agrees(ser: Serializer, bytes: &[u8]) -> std::result::Result<(), TestCaseError> {
    let frame = Bytes::copy_from_slice(bytes);
    let (full, shared) = match (ser.decode(bytes), ser.decode_shared(&frame)) {
        (Err(_), Err(_)) => return Ok(()),
        (Ok(f), Ok(s)) => (f, s),
        (f, s) => {
            return Err(TestCaseError::fail(format!(
                "{ser:?}: decode gave {f:?} but decode_shared gave {s:?} for {bytes:?}"
            )))
        }
    };
    let mut materialized = shared.clone();
    if let Some(p) = materialized.payload_mut() {
        p.materialize()
            .map_err(|e| TestCaseError::fail(format!("materialize: {e}")))?;
    }
    same_message(&full, &materialized)?;
    for to in Serializer::ALL {
        let enc = to
            .encode(&shared)
            .map_err(|e| TestCaseError::fail(format!("{ser:?} -> {to:?}: {e}")))?;
        let back = to
            .decode(enc.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{ser:?} -> {to:?}: {e} in {enc:?}")))?;
        let want = to.decode(to.encode(&full).unwrap().as_bytes()).unwrap();
        same_message(&want, &back)?;
    }
    Ok(())
}

/// A value as CBOR, the way `wamp.2.cbor` encodes it (null for [`Value::Null`]).
fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = minicbor_serde::Serializer::new(&mut out);
    ser.serialize_unit_as_null(true);
    serde::Serialize::serialize(v, &mut ser).unwrap();
    out
}

/// Equal, or (NaN being unequal to itself) printed the same.
fn same_message(a: &Message, b: &Message) -> std::result::Result<(), TestCaseError> {
    if a != b {
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn messages_round_trip(m in message()) {
        for ser in Serializer::ALL {
            let enc = ser.encode(&m).map_err(|e| TestCaseError::fail(format!("{ser:?}: {e}")))?;
            match (&enc, ser.is_binary()) {
                (Encoded::Binary(_), true) | (Encoded::Text(_), false) => {}
                _ => prop_assert!(false, "{:?} produced the wrong frame type", ser),
            }
            let back = ser
                .decode(enc.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{ser:?}: {e} in {enc:?}")))?;
            prop_assert_eq!(back.code(), m.code());
            prop_assert_eq!(&back, &expected(ser, &m), "{:?}", ser);
            // Routed without re-encoding: byte for byte what the encoder makes of `back`,
            // whichever serializer the receiving peer speaks.
            let shared = ser.decode_shared(&Bytes::copy_from_slice(enc.as_bytes()))
                .map_err(|e| TestCaseError::fail(format!("{ser:?} decode_shared: {e}")))?;
            for to in Serializer::ALL {
                let (got, want) = (to.encode(&shared).unwrap(), to.encode(&back).unwrap());
                prop_assert_eq!(got.as_bytes(), want.as_bytes(), "{:?} -> {:?}", ser, to);
                // Appended to a buffer (a fan-out batch): the same bytes after what was there.
                for msg in [&shared, &m] {
                    let mut buf = b"before".to_vec();
                    to.encode_into(msg, &mut buf).unwrap();
                    prop_assert_eq!(&buf[..6], b"before");
                    let alone = to.encode(msg).unwrap();
                    prop_assert_eq!(&buf[6..], alone.as_bytes(), "{:?} -> {:?}", ser, to);
                }
            }
            assert_shared_agrees(ser, enc.as_bytes())?;
        }
    }

    #[test]
    fn values_round_trip_inside_a_payload(v in value()) {
        let m: Message = Yield { request: Id::new(1).unwrap(), options: Dict::new(),
            payload: Payload::args(vec![v.clone()]) }.into();
        for ser in Serializer::ALL {
            let back = ser.decode(ser.encode(&m).unwrap().as_bytes()).unwrap();
            let Message::Yield(y) = back else { panic!("not a YIELD") };
            let want = if ser == Serializer::Json { json_value(v.clone()) } else { v.clone() };
            prop_assert_eq!(y.payload.args, Some(vec![want]));
        }
    }

    #[test]
    fn json_and_msgpack_agree_without_nul_strings(m in message()) {
        // After a JSON round trip the message no longer holds NUL+base64 strings, so every
        // serializer must then carry it to the very same value.
        let via_json = Serializer::Json.decode(Serializer::Json.encode(&m).unwrap().as_bytes()).unwrap();
        for ser in [Serializer::MsgPack, Serializer::Cbor] {
            let via = ser.decode(ser.encode(&via_json).unwrap().as_bytes()).unwrap();
            prop_assert_eq!(&via_json, &via, "{:?}", ser);
        }
    }

    /// A message travels unchanged through any chain of serializers a router may put it
    /// through (each hop decoded the router's way, `decode_shared`, and encoded for the next
    /// peer), as long as JSON is not among them (NUL+base64 strings).
    #[test]
    fn binary_serializers_relay_each_other_unchanged(m in message(), hops in vec(0..2usize, 1..4)) {
        let bin = [Serializer::MsgPack, Serializer::Cbor];
        let want = expected(Serializer::MsgPack, &m);
        let mut frame = Bytes::from(bin[hops[0]].encode(&m).unwrap().as_bytes().to_vec());
        let mut from = bin[hops[0]];
        for &h in &hops[1..] {
            let to = bin[h];
            let shared = from.decode_shared(&frame).unwrap();
            frame = Bytes::from(to.encode(&shared).unwrap().as_bytes().to_vec());
            from = to;
        }
        prop_assert_eq!(from.decode(&frame).unwrap(), want);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..256)) {
        for ser in Serializer::ALL {
            if let Ok(m) = ser.decode(&bytes) {
                assert_reencode_stable(ser, &m)?;
            }
            assert_shared_agrees(ser, &bytes)?;
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_messages(
        m in message(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for ser in Serializer::ALL {
            let mut bytes = ser.encode(&m).unwrap().as_bytes().to_vec();
            for (at, byte, kind) in &edits {
                let i = at.index(bytes.len() + 1);
                match kind {
                    0 if i < bytes.len() => bytes[i] = *byte,
                    1 => bytes.insert(i, *byte),
                    _ if i < bytes.len() => { bytes.remove(i); }
                    _ => {}
                }
            }
            if let Ok(m) = ser.decode(&bytes) {
                assert_reencode_stable(ser, &m)?;
            }
            assert_shared_agrees(ser, &bytes)?;
            let truncated = &bytes[..cut.index(bytes.len() + 1)];
            if let Ok(m) = ser.decode(truncated) {
                assert_reencode_stable(ser, &m)?;
            }
            assert_shared_agrees(ser, truncated)?;
        }
    }

    /// Arrays of random values, headed by a real message code most of the time: these reach
    /// every field decoder with wrong types, wrong lengths and out-of-range ids.
    #[test]
    fn decode_never_panics_on_random_arrays(
        head in prop_oneof![
            4 => proptest::sample::select(ALL_CODES.to_vec()).prop_map(Value::UInt),
            1 => Just(Value::UInt(337)),
            1 => value(),
        ],
        tail in vec(prop_oneof![
            3 => value(),
            1 => prop_oneof![Just(0u64), Just(MAX_ID), Just(MAX_ID + 1), 1..=MAX_ID].prop_map(Value::UInt),
            1 => dict().prop_map(Value::Dict),
        ], 0..8),
    ) {
        let mut arr = vec![head];
        arr.extend(tail);
        let arr = Value::List(arr);
        let json = serde_json::to_vec(&arr).unwrap();
        if let Ok(m) = Serializer::Json.decode(&json) {
            assert_reencode_stable(Serializer::Json, &m)?;
        }
        assert_shared_agrees(Serializer::Json, &json)?;
        let mp = rmp_serde::to_vec(&arr).unwrap();
        if let Ok(m) = Serializer::MsgPack.decode(&mp) {
            assert_reencode_stable(Serializer::MsgPack, &m)?;
        }
        assert_shared_agrees(Serializer::MsgPack, &mp)?;
        let cb = cbor(&arr);
        if let Ok(m) = Serializer::Cbor.decode(&cb) {
            assert_reencode_stable(Serializer::Cbor, &m)?;
        }
        assert_shared_agrees(Serializer::Cbor, &cb)?;
    }

    /// Any msgpack or CBOR value at all (not only arrays) is either a message or an error.
    #[test]
    fn decode_never_panics_on_random_msgpack_values(v in value()) {
        let mp = rmp_serde::to_vec(&v).unwrap();
        if let Ok(m) = Serializer::MsgPack.decode(&mp) {
            assert_reencode_stable(Serializer::MsgPack, &m)?;
        }
        let cb = cbor(&v);
        if let Ok(m) = Serializer::Cbor.decode(&cb) {
            assert_reencode_stable(Serializer::Cbor, &m)?;
        }
        let json = serde_json::to_vec(&v).unwrap();
        if let Ok(m) = Serializer::Json.decode(&json) {
            assert_reencode_stable(Serializer::Json, &m)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed examples of the documented behaviour, and a coverage check of the strategies
// ---------------------------------------------------------------------------------------------

#[test]
fn strategy_covers_every_variant_and_optional_form() {
    let mut runner = TestRunner::deterministic();
    let strat = message();
    let mut codes = BTreeSet::new();
    let (mut unsub_opts, mut unreg_opts, mut unsubd_revoked, mut unregd_revoked) =
        (false, false, false, false);
    let mut shapes = BTreeSet::new();
    for _ in 0..5_000 {
        let m = strat.new_tree(&mut runner).unwrap().current();
        codes.insert(m.code());
        match &m {
            Message::Unsubscribe(u) => unsub_opts |= u.options.is_some(),
            Message::Unregister(u) => unreg_opts |= u.options.is_some(),
            Message::Unsubscribed(u) => unsubd_revoked |= u.request == 0 && u.details.is_some(),
            Message::Unregistered(u) => unregd_revoked |= u.request == 0 && u.details.is_some(),
            Message::Call(c) => {
                shapes.insert((
                    c.payload.args.as_ref().map(Vec::is_empty),
                    c.payload.kwargs.is_some(),
                ));
            }
            _ => {}
        }
    }
    assert_eq!(codes, ALL_CODES.into_iter().collect::<BTreeSet<_>>());
    assert!(unsub_opts && unreg_opts && unsubd_revoked && unregd_revoked);
    // none, args (empty and not), args + kwargs, [] + kwargs, kwargs without args
    assert!(shapes.contains(&(None, false)));
    assert!(shapes.contains(&(Some(false), false)));
    assert!(shapes.contains(&(Some(false), true)));
    assert!(shapes.contains(&(Some(true), true)));
    assert!(shapes.contains(&(None, true)));
}

fn yield_with(args: Vec<Value>) -> Message {
    Yield {
        request: Id::new(1).expect("valid id"),
        options: Dict::new(),
        payload: Payload::args(args),
    }
    .into()
}

#[test]
fn json_nul_strings_follow_the_binary_convention() {
    let cases = [
        // NUL + valid base64: bytes.
        (Value::Str("\0AAH/".into()), Value::Bytes(vec![0, 1, 255])),
        // NUL alone is the empty byte string.
        (Value::Str("\0".into()), Value::Bytes(vec![])),
        // NUL + something that is not base64 stays a string.
        (
            Value::Str("\0not base64!".into()),
            Value::Str("\0not base64!".into()),
        ),
        (Value::Str("\0AAH".into()), Value::Str("\0AAH".into())),
        // A NUL elsewhere means nothing.
        (Value::Str("a\0AAH/".into()), Value::Str("a\0AAH/".into())),
    ];
    for (sent, got) in cases {
        let json = Serializer::Json
            .encode(&yield_with(vec![sent.clone()]))
            .unwrap();
        assert_eq!(
            Serializer::Json.decode(json.as_bytes()).unwrap(),
            yield_with(vec![got]),
            "{sent:?} via JSON"
        );
        // MessagePack has real strings and real binary: nothing is reinterpreted.
        let mp = Serializer::MsgPack
            .encode(&yield_with(vec![sent.clone()]))
            .unwrap();
        assert_eq!(
            Serializer::MsgPack.decode(mp.as_bytes()).unwrap(),
            yield_with(vec![sent])
        );
    }
    // URIs and dict keys are never reinterpreted.
    let m: Message = Publish {
        request: Id::new(1).unwrap(),
        options: Dict::from([("\0AAH/".to_owned(), Value::Null)]),
        topic: Uri::new("\0AAH/"),
        payload: Payload::default(),
    }
    .into();
    let back = Serializer::Json
        .decode(Serializer::Json.encode(&m).unwrap().as_bytes())
        .unwrap();
    assert_eq!(back, m);
}

#[test]
fn kwargs_without_args_come_back_with_empty_args() {
    let kw = Dict::from([("k".to_owned(), Value::UInt(1))]);
    let m: Message = Event {
        subscription: Id::new(1).unwrap(),
        publication: Id::new(2).unwrap(),
        details: Dict::new(),
        payload: Payload {
            args: None,
            kwargs: Some(kw.clone()),
            raw: None,
        },
    }
    .into();
    for ser in Serializer::ALL {
        let Message::Event(e) = ser.decode(ser.encode(&m).unwrap().as_bytes()).unwrap() else {
            panic!("not an EVENT")
        };
        assert_eq!(e.payload.args, Some(vec![]));
        assert_eq!(e.payload.kwargs, Some(kw.clone()));
    }
}

#[test]
fn integers_beyond_2_pow_53_and_negative_survive() {
    let args = vec![
        Value::UInt(MAX_ID + 1),
        Value::UInt(u64::MAX),
        Value::Int(i64::MIN),
        Value::Int(-1),
        Value::Float(-0.5),
    ];
    for ser in Serializer::ALL {
        let m = yield_with(args.clone());
        assert_eq!(ser.decode(ser.encode(&m).unwrap().as_bytes()).unwrap(), m);
    }
}

#[test]
fn non_finite_floats_cannot_be_sent_as_json() {
    for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let m = yield_with(vec![Value::Float(f)]);
        // serde_json writes non-finite floats as `null`; either an error or a null is
        // acceptable, but never something that decodes to a number.
        if let Ok(enc) = Serializer::Json.encode(&m) {
            let back = Serializer::Json.decode(enc.as_bytes()).unwrap();
            assert_eq!(back, yield_with(vec![Value::Null]), "{f}");
        }
        // MessagePack and CBOR carry them (NaN != NaN, so compare the bit pattern).
        for ser in [Serializer::MsgPack, Serializer::Cbor] {
            let back = ser.decode(ser.encode(&m).unwrap().as_bytes()).unwrap();
            let Message::Yield(y) = back else { panic!() };
            let Some(Value::Float(g)) = y.payload.args.unwrap().pop() else {
                panic!()
            };
            assert_eq!(g.to_bits(), f.to_bits(), "{ser:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions for bugs these tests found
// ---------------------------------------------------------------------------------------------

/// serde_json without `float_roundtrip` parsed some printed floats back 1 ULP off.
#[test]
fn json_floats_round_trip_exactly() {
    for f in [
        9.518898240646499e-71,
        -9.581628663016824e264,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        0.1 + 0.2,
    ] {
        let m = yield_with(vec![Value::Float(f)]);
        let back = Serializer::Json
            .decode(Serializer::Json.encode(&m).unwrap().as_bytes())
            .unwrap();
        assert_eq!(back, m, "{f:e}");
    }
}

/// rmp-serde hands msgpack `bin` to a sequence visitor as a list of integers: binary data in
/// the Arguments position (Payload Passthru Mode, which we do not support) must be refused,
/// not turned into `args: [1, 2, 3]`.
#[test]
fn binary_in_place_of_arguments_is_refused() {
    // [50, 1, {}, bin(1,2,3)]
    let mp = [0x94, 50, 1, 0x80, 0xc4, 3, 1, 2, 3];
    assert!(Serializer::MsgPack.decode(&mp).is_err());
    // The same with a list is fine.
    let mp = [0x94, 50, 1, 0x80, 0x93, 1, 2, 3];
    assert!(Serializer::MsgPack.decode(&mp).is_ok());
    // JSON: the NUL + base64 form of binary, or any string, in place of Arguments.
    assert!(Serializer::Json
        .decode(b"[50,1,{},\"\\u0000AQID\"]")
        .is_err());
    assert!(Serializer::Json.decode(b"[50,1,{},\"abc\"]").is_err());
}

/// A msgpack `bin` frame is not a message array, even when its bytes spell one.
#[test]
fn a_binary_frame_is_not_a_message_array() {
    // bin(17, 5, 6) would otherwise read as PUBLISHED [17, 5, 6].
    assert!(Serializer::MsgPack.decode(&[0xc4, 3, 17, 5, 6]).is_err());
    assert!(Serializer::MsgPack.decode(&[0x93, 17, 5, 6]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// wamp.2.cbor specifics
// ---------------------------------------------------------------------------------------------

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Binary data is a byte string (major type 2), text a text string (major type 3), integers
/// take the shortest head, every length is definite.
#[test]
fn cbor_wire_form() {
    let m = yield_with(vec![
        Value::Bytes(vec![1, 2]),
        "ü".into(),
        Value::UInt(MAX_ID),
        Value::Int(-1),
        Value::Float(1.5),
        Value::Null,
        Value::Bool(true),
    ]);
    let enc = Serializer::Cbor.encode(&m).unwrap();
    assert!(matches!(enc, Encoded::Binary(_)));
    // [70, 1, {}, [h'0102', "ü", 2^53, -1, 1.5, null, true]]
    let want = "84 1846 01 a0 87 420102 62c3bc 1b0020000000000000 20 fb3ff8000000000000 f6 f5";
    assert_eq!(hex(enc.as_bytes()), hex(&unhex(want)));
    assert_eq!(Serializer::Cbor.decode(enc.as_bytes()).unwrap(), m);
}

/// Peers may send floats in any precision, and integers with longer heads than needed.
#[test]
fn cbor_accepts_every_float_width_and_long_heads() {
    // [70, 1, {}, [1.5 as half, single and double, 2 in a 64-bit head, -2 in an 8-bit head]]
    let b = unhex("84 1846 01 a0 85 f93e00 fa3fc00000 fb3ff8000000000000 1b0000000000000002 3801");
    let want = yield_with(vec![
        Value::Float(1.5),
        Value::Float(1.5),
        Value::Float(1.5),
        Value::UInt(2),
        Value::Int(-2),
    ]);
    assert_eq!(Serializer::Cbor.decode(&b).unwrap(), want);
    let shared = Serializer::Cbor
        .decode_shared(&Bytes::from(b.clone()))
        .unwrap();
    // Passed through to a CBOR peer exactly as it came; normalised for the others.
    assert_eq!(Serializer::Cbor.encode(&shared).unwrap().as_bytes(), &b[..]);
    let json = Serializer::Json.encode(&shared).unwrap();
    assert_eq!(json.as_bytes(), br#"[70,1,{},[1.5,1.5,1.5,2,-2]]"#);
    // The message array itself with a long head (0x98 0x04) decodes too.
    let long = unhex("98 04 1846 01 a0 80");
    assert_eq!(Serializer::Cbor.decode(&long).unwrap(), yield_with(vec![]));
}

/// What `wamp.2.cbor` refuses, by the ordinary decoder and the router's alike.
#[test]
fn cbor_refuses_what_wamp_does_not_use() {
    for (hex, what) in [
        ("9f 1846 01 a0 ff", "an indefinite-length message array"),
        ("84 1846 01 a0 9f01ff", "indefinite-length Arguments"),
        (
            "85 1846 01 a0 80 bf6161 01ff",
            "indefinite-length ArgumentsKw",
        ),
        (
            "84 1846 01 a0 81 7f616161 62ff",
            "an indefinite-length text string",
        ),
        (
            "84 1846 01 a0 81 5f4101ff",
            "an indefinite-length byte string",
        ),
        ("d818 83 1846 01 a0", "a tagged message"),
        (
            "84 1846 01 a0 81 c11a514b67b0",
            "a tag in the payload (epoch date)",
        ),
        ("84 1846 01 a0 81 c249010000000000000000", "a bignum"),
        (
            "84 1846 01 a0 81 3b8000000000000000",
            "an integer below -2^63",
        ),
        ("84 1846 01 a0 81 f7", "undefined"),
        ("84 1846 01 a0 81 f0", "a simple value"),
        ("83 1846 01 a10102", "a non-string key in Options"),
        (
            "85 1846 01 a0 80 a1410102",
            "a byte-string key in ArgumentsKw",
        ),
        (
            "85 1830 01 a0 41 61 80",
            "a byte string as the procedure URI",
        ),
        ("84 1832 01 a0 43010203", "binary in place of Arguments"),
        ("43 110506", "a byte string that spells PUBLISHED"),
        ("84 1846 01 a0 81 62c328", "invalid UTF-8"),
        ("83 1846 01 a0 00", "trailing bytes"),
        ("83 1846 01", "a truncated message"),
        ("83 1846 00 a0", "request id 0"),
    ] {
        let b = unhex(hex);
        assert!(
            Serializer::Cbor.decode(&b).is_err(),
            "{what} must be refused: {hex}"
        );
        assert!(
            Serializer::Cbor.decode_shared(&Bytes::from(b)).is_err(),
            "{what} must be refused by decode_shared: {hex}"
        );
    }
    // Nesting is bounded like the other decoders'.
    let mut deep = unhex("84 1846 01 a0");
    deep.extend(std::iter::repeat_n(0x81, 100_000));
    deep.push(0xf6);
    assert!(Serializer::Cbor.decode(&deep).is_err());
    assert!(Serializer::Cbor.decode_shared(&Bytes::from(deep)).is_err());
}

/// A CBOR payload is kept as slices of the frame, copied through byte for byte to CBOR
/// peers and transcoded for json and msgpack peers (and back), values unchanged.
#[test]
fn cbor_payload_passes_through_and_transcodes() {
    let args = vec![
        Value::UInt(MAX_ID),
        Value::Int(-(1 << 53)),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Float(-0.1),
        Value::Str("héllo wörld ✓ 🎉".into()),
        Value::Bytes((0..=255).collect()),
        Value::List(vec![Value::Dict(Dict::from([(
            "deep".to_owned(),
            Value::List(vec![
                Value::Bytes(vec![0, 0xff]),
                Value::Null,
                Value::Bool(false),
            ]),
        )]))]),
    ];
    let kwargs = Dict::from([("ключ".to_owned(), Value::Bytes(vec![9; 300]))]);
    let m: Message = Call {
        request: Id::new(7).unwrap(),
        options: Dict::new(),
        procedure: Uri::new("com.example.echo"),
        payload: Payload::new(Some(args), Some(kwargs)),
    }
    .into();
    let frame = Bytes::from(Serializer::Cbor.encode(&m).unwrap().as_bytes().to_vec());
    let shared = Serializer::Cbor.decode_shared(&frame).unwrap();
    let raw = shared
        .payload()
        .unwrap()
        .raw
        .as_ref()
        .expect("kept encoded");
    assert_eq!(raw.serializer(), Serializer::Cbor);
    // The slices point into the frame: no copy.
    let at = raw.args_bytes().as_ptr() as usize - frame.as_ptr() as usize;
    assert!(at < frame.len());
    assert_eq!(
        Serializer::Cbor.encode(&shared).unwrap().as_bytes(),
        &frame[..]
    );
    for to in [Serializer::Json, Serializer::MsgPack] {
        let out = Bytes::from(to.encode(&shared).unwrap().as_bytes().to_vec());
        assert_eq!(to.decode(&out).unwrap(), m, "cbor -> {to:?}");
        // ... and from that peer back to CBOR, through its own pass-through.
        let back = Serializer::Cbor
            .encode(&to.decode_shared(&out).unwrap())
            .unwrap();
        assert_eq!(back.as_bytes(), &frame[..], "{to:?} -> cbor");
    }
}

/// Every serializer, with either decoder, takes the same nesting: 127 lists and dicts in one
/// another, the message array included (the limit of serde_json and rmp-serde), so what one
/// accepts the others can carry. Found by the `decode_cbor` fuzz target (CBOR took one level
/// more, which a msgpack peer then could not decode); the same run showed msgpack's and JSON's
/// `decode_shared` taking payloads one level (msgpack) or any number of levels (JSON) deeper
/// than `decode`.
#[test]
fn every_serializer_and_decoder_has_the_same_nesting_limit() {
    let nested = |d: usize| (0..d).fold(Value::Null, |v, _| Value::List(vec![v]));
    let kw = |d: usize| Dict::from([("k".to_owned(), nested(d))]);
    for d in 120..=130 {
        let shapes: [Message; 3] = [
            yield_with(vec![nested(d)]),
            Yield {
                request: Id::new(1).unwrap(),
                options: kw(d),
                payload: Payload::default(),
            }
            .into(),
            Yield {
                request: Id::new(1).unwrap(),
                options: Dict::new(),
                payload: Payload::new(Some(vec![]), Some(kw(d))),
            }
            .into(),
        ];
        for (shape, m) in shapes.iter().enumerate() {
            for ser in Serializer::ALL {
                let enc = ser.encode(m).unwrap();
                let accepted = ser.decode(enc.as_bytes()).is_ok();
                // message array + (args list | options dict | kwargs dict) + d lists
                assert_eq!(accepted, d <= 125, "{ser:?}, shape {shape}, depth {d}");
                assert_shared_agrees(ser, enc.as_bytes())
                    .unwrap_or_else(|e| panic!("{ser:?}, shape {shape}, depth {d}: {e}"));
            }
        }
    }
    // A JSON payload far deeper than the limit is refused by decode_shared too.
    let deep = format!("[70,1,{{}},{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Serializer::Json.decode_shared(&Bytes::from(deep)).is_err());
}
