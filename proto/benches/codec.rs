//! Encode and decode cost of every message kind that carries traffic, for every serializer.
//!
//! `cargo bench -p wamp-proto --bench codec` (filter e.g. `-- msgpack/decode`). Under
//! `cargo test --all-targets` each benchmark runs once, as a smoke test.
//!
//! The payload-carrying messages use a realistic small payload (args `[int, 100-char string]`,
//! kwargs a two-key dict) and, with the suffix `+16KiB`, a 16 KiB binary argument (msgpack
//! `bin`, CBOR byte string, JSON `"\u0000" + base64`). Throughput is the encoded message's size in bytes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wamp_proto::message::{
    Call, Error, Event, Hello, Invocation, Publish, Published, Register, Registered, Subscribe,
    Subscribed, Welcome, Yield,
};
use wamp_proto::{Dict, Id, Message, Payload, Serializer, Uri, Value};

fn id(n: u64) -> Id {
    Id::new(n).expect("a valid id")
}

fn dict<const N: usize>(entries: [(&str, Value); N]) -> Dict {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

/// `{feature: true, ...}` as in a role's `features` dict.
fn features(names: &[&str]) -> Value {
    Value::Dict(
        names
            .iter()
            .map(|n| ((*n).to_owned(), Value::Bool(true)))
            .collect(),
    )
}

fn role(names: &[&str]) -> Value {
    Value::Dict(dict([("features", features(names))]))
}

/// args `[int, 100-char string]`, kwargs `{"unit": "celsius", "seq": 42}`.
fn small_payload() -> Payload {
    let text: String = "sensor reading from rack 7, row B: nominal; "
        .chars()
        .cycle()
        .take(100)
        .collect();
    Payload {
        args: Some(vec![Value::UInt(1_234_567), Value::Str(text)]),
        kwargs: Some(dict([("unit", s("celsius")), ("seq", Value::UInt(42))])),
        raw: None,
    }
}

/// args `[16 KiB of binary]` (pseudo-random bytes, so nothing compresses or repeats).
fn large_payload() -> Payload {
    let mut x: u32 = 0x9e37_79b9;
    let bytes = (0..16 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    Payload::args(vec![Value::Bytes(bytes)])
}

/// Builds a payload-carrying message around a payload.
type Make = fn(Payload) -> Message;

/// The payload-carrying messages (name, constructor).
fn with_payload() -> Vec<(&'static str, Make)> {
    vec![
        ("PUBLISH", |payload| {
            Publish {
                request: id(12_345),
                options: dict([("acknowledge", Value::Bool(true))]),
                topic: Uri::new("com.example.sensors.temperature"),
                payload,
            }
            .into()
        }),
        ("EVENT", |payload| {
            Event {
                subscription: id(5_021_399_283_612_345),
                publication: id(7_301_542_993_120_881),
                details: Dict::new(),
                payload,
            }
            .into()
        }),
        ("CALL", |payload| {
            Call {
                request: id(12_345),
                options: Dict::new(),
                procedure: Uri::new("com.example.inventory.update_item"),
                payload,
            }
            .into()
        }),
        ("INVOCATION", |payload| {
            Invocation {
                request: id(67_890),
                registration: id(3_120_448_501_233_976),
                details: Dict::new(),
                payload,
            }
            .into()
        }),
        ("YIELD", |payload| {
            Yield {
                request: id(67_890),
                options: Dict::new(),
                payload,
            }
            .into()
        }),
        ("RESULT", |payload| {
            wamp_proto::message::Result {
                request: id(12_345),
                details: Dict::new(),
                payload,
            }
            .into()
        }),
        ("ERROR", |payload| {
            Error {
                request_type: wamp_proto::message::code::CALL,
                request: id(12_345),
                details: Dict::new(),
                error: Uri::new("com.example.error.invalid_argument"),
                payload,
            }
            .into()
        }),
    ]
}

/// The session and subscription/registration messages (no payload).
fn control() -> Vec<(&'static str, Message)> {
    let client_roles = dict([
        (
            "caller",
            role(&[
                "caller_identification",
                "progressive_call_results",
                "call_canceling",
            ]),
        ),
        (
            "callee",
            role(&[
                "caller_identification",
                "pattern_based_registration",
                "shared_registration",
            ]),
        ),
        (
            "publisher",
            role(&["publisher_exclusion", "publisher_identification"]),
        ),
        (
            "subscriber",
            role(&["pattern_based_subscription", "publisher_identification"]),
        ),
    ]);
    let router_roles = dict([
        (
            "broker",
            role(&[
                "pattern_based_subscription",
                "publisher_exclusion",
                "publisher_identification",
                "subscriber_blackwhite_listing",
                "event_retention",
            ]),
        ),
        (
            "dealer",
            role(&[
                "caller_identification",
                "call_canceling",
                "pattern_based_registration",
                "progressive_call_results",
                "shared_registration",
                "call_timeout",
            ]),
        ),
    ]);
    vec![
        (
            "HELLO",
            Hello {
                realm: Uri::new("realm1"),
                details: dict([
                    ("agent", s("AutobahnPython-24.4.2")),
                    ("authid", s("sensor-gateway-17")),
                    ("authmethods", Value::List(vec![s("anonymous")])),
                    ("roles", Value::Dict(client_roles)),
                ]),
            }
            .into(),
        ),
        (
            "WELCOME",
            Welcome {
                session: id(4_731_223_580_019_772),
                details: dict([
                    ("realm", s("realm1")),
                    ("authid", s("sensor-gateway-17")),
                    ("authrole", s("anonymous")),
                    ("authmethod", s("anonymous")),
                    ("authprovider", s("static")),
                    ("agent", s("wamp-router/0.1.0")),
                    ("roles", Value::Dict(router_roles)),
                ]),
            }
            .into(),
        ),
        (
            "SUBSCRIBE",
            Subscribe {
                request: id(12_345),
                options: dict([("match", s("prefix"))]),
                topic: Uri::new("com.example.sensors."),
            }
            .into(),
        ),
        (
            "REGISTER",
            Register {
                request: id(12_345),
                options: dict([("invoke", s("roundrobin"))]),
                procedure: Uri::new("com.example.inventory.update_item"),
            }
            .into(),
        ),
        (
            "PUBLISHED",
            Published {
                request: id(12_345),
                publication: id(7_301_542_993_120_881),
            }
            .into(),
        ),
        (
            "SUBSCRIBED",
            Subscribed {
                request: id(12_345),
                subscription: id(5_021_399_283_612_345),
            }
            .into(),
        ),
        (
            "REGISTERED",
            Registered {
                request: id(12_345),
                registration: id(3_120_448_501_233_976),
            }
            .into(),
        ),
    ]
}

/// Every benchmarked message, in table order: the control messages, then each payload
/// message with the small payload, then each with the 16 KiB one.
fn messages() -> Vec<(String, Message)> {
    let mut all: Vec<(String, Message)> = control()
        .into_iter()
        .map(|(n, m)| (n.to_owned(), m))
        .collect();
    let (small, large) = (small_payload(), large_payload());
    for (n, make) in with_payload() {
        all.push((n.to_owned(), make(small.clone())));
    }
    for (n, make) in with_payload() {
        all.push((format!("{n}+16KiB"), make(large.clone())));
    }
    all
}

fn codec(c: &mut Criterion) {
    let messages = messages();
    for ser in [Serializer::Json, Serializer::MsgPack, Serializer::Cbor] {
        let encoded: Vec<_> = messages
            .iter()
            .map(|(name, m)| {
                let bytes = ser.encode(m).expect("encodes").as_bytes().to_vec();
                // The benchmark is only meaningful if the message survives the round trip.
                assert_eq!(&ser.decode(&bytes).expect("decodes"), m, "{name}");
                bytes
            })
            .collect();

        let mut g = c.benchmark_group(format!("{}/encode", ser.name()));
        for ((name, msg), bytes) in messages.iter().zip(&encoded) {
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_with_input(BenchmarkId::from_parameter(name), msg, |b, msg| {
                b.iter(|| ser.encode(black_box(msg)))
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("{}/decode", ser.name()));
        for ((name, _), bytes) in messages.iter().zip(&encoded) {
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_with_input(BenchmarkId::from_parameter(name), bytes, |b, bytes| {
                b.iter(|| ser.decode(black_box(bytes)))
            });
        }
        g.finish();

        // What a router does with a payload message: decode it, encode it for the receiver
        // (same serializer). `values` decodes the payload into values and encodes them again;
        // `shared` keeps the payload's bytes and copies them through.
        let mut g = c.benchmark_group(format!("{}/relay", ser.name()));
        for ((name, m), bytes) in messages.iter().zip(&encoded) {
            if m.payload().is_none() {
                continue;
            }
            let frame = bytes::Bytes::copy_from_slice(bytes);
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_with_input(BenchmarkId::new("values", name), bytes, |b, bytes| {
                b.iter(|| ser.encode(&ser.decode(black_box(bytes)).expect("decodes")))
            });
            g.bench_with_input(BenchmarkId::new("shared", name), &frame, |b, frame| {
                b.iter(|| ser.encode(&ser.decode_shared(black_box(frame)).expect("decodes")))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
