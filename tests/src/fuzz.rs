//! A protocol fuzzer's generator: random WAMP messages, valid and invalid, each with what the
//! router must do about it ([`Expect`]), encoded in any serializer (also shapes the typed
//! encoder refuses: wrong types and arities, router-only messages, deep nesting).
//!
//! Seeded ([`Rng`]): a failure replays with the same seed.

use wamp_proto::{Dict, Serializer, Value};

/// A small, seeded pseudo-random generator (SplitMix64): enough for a fuzzer, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the router must do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Answer request `.1` of message type `.0` (the typed answer, or an ERROR).
    Answer(u64, u64),
    /// Nothing: no answer, the session goes on.
    Quiet,
    /// ABORT `wamp.error.protocol_violation`, then close.
    Violation,
    /// Either the answer to request `.1` of type `.0` (if any), or the session is aborted.
    Maybe(Option<(u64, u64)>),
}

/// Encodes a value (a message array) in `ser`; `None` if the encoder refuses it.
pub fn encode_value(ser: Serializer, v: &Value) -> Option<Vec<u8>> {
    match ser {
        Serializer::Json => serde_json::to_vec(v).ok(),
        Serializer::MsgPack => rmp_serde::to_vec(v).ok(),
        Serializer::Cbor => {
            let mut buf = Vec::new();
            let mut s = minicbor_serde::Serializer::new(&mut buf);
            s.serialize_unit_as_null(true);
            serde::Serialize::serialize(v, &mut s).ok()?;
            Some(buf)
        }
    }
}

fn u(n: u64) -> Value {
    Value::UInt(n)
}

fn list(items: Vec<Value>) -> Value {
    Value::List(items)
}

fn dict() -> Value {
    Value::Dict(Dict::new())
}

/// A random payload value, at most `depth` containers deep.
pub fn value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 8 } else { 10 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => u(*rng.pick(&[0, 1, 255, 65_536, 1 << 53, u64::MAX])),
        3 => Value::Int(*rng.pick(&[-1, -129, i64::from(i32::MIN), i64::MIN])),
        4 => Value::Float(*rng.pick(&[0.5, -1e300, 1e-300, f64::MAX])),
        5 => Value::Str(rng.pick(&["", "x", "é€😀", "\u{0}", "a\"b\\c"]).to_string()),
        6 => Value::Str("long.".repeat(rng.below(2000))),
        7 => Value::Bytes((0..rng.below(64)).map(|i| i as u8).collect()),
        8 => list((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => Value::Dict(
            (0..rng.below(4))
                .map(|i| (format!("k{i}"), value(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// Lists nested `n` deep around a null.
pub fn nested(n: usize) -> Value {
    (0..n).fold(Value::Null, |v, _| list(vec![v]))
}

/// A topic or procedure: usual, long, or malformed (then the router answers ERROR).
fn uri(rng: &mut Rng, stem: &str) -> Value {
    Value::Str(match rng.below(10) {
        0 => format!("{stem}.{}", "segment".repeat(rng.below(3000))),
        1 => "com..bad uri".to_owned(),
        2 => "wamp.reserved.x".to_owned(),
        _ => format!("{stem}.{}", rng.below(8)),
    })
}

/// Options with keys the router acts on and random values (they may be refused by ERROR, or
/// be a protocol violation: [`Expect::Maybe`]).
fn wild_options(rng: &mut Rng) -> Value {
    const KEYS: [&str; 12] = [
        "timeout",
        "receive_progress",
        "disclose_me",
        "acknowledge",
        "exclude_me",
        "exclude",
        "eligible",
        "match",
        "invoke",
        "retain",
        "mode",
        "progress",
    ];
    Value::Dict(
        (0..1 + rng.below(3))
            .map(|_| (rng.pick(&KEYS).to_string(), value(rng, 1)))
            .collect(),
    )
}

/// One message for a joined session whose next request id is `*next`, with what the router
/// must do: valid, or with unknown ids or random options (never a sure violation: see
/// [`violation`]). `own` is a procedure prefix only this session registers under.
pub fn joined_message(rng: &mut Rng, next: &mut u64, own: &str) -> (Value, Expect) {
    *next += 1;
    let r = *next;
    let payload = |rng: &mut Rng| list((0..rng.below(3)).map(|_| value(rng, 3)).collect());
    let procedure = |rng: &mut Rng| match rng.below(4) {
        0 => Value::Str("fuzz.echo".into()),
        1 => Value::Str("fuzz.nobody".into()),
        _ => Value::Str(format!("{own}.{}", rng.below(3))),
    };
    match rng.below(10) {
        0 => (
            list(vec![u(32), u(r), dict(), uri(rng, "fuzz.t")]),
            Expect::Answer(32, r),
        ),
        1 => (
            list(vec![u(34), u(r), u(1 + rng.below(1 << 20) as u64)]),
            Expect::Answer(34, r),
        ),
        2 => {
            let ack = rng.chance(50);
            let options = Value::Dict(Dict::from([("acknowledge".into(), Value::Bool(ack))]));
            let expect = if ack {
                Expect::Answer(16, r)
            } else {
                Expect::Quiet
            };
            let m = list(vec![u(16), u(r), options, uri(rng, "fuzz.t"), payload(rng)]);
            (m, expect)
        }
        3 => (
            list(vec![u(64), u(r), dict(), procedure(rng)]),
            Expect::Answer(64, r),
        ),
        4 => (
            list(vec![u(66), u(r), u(1 + rng.below(1 << 20) as u64)]),
            Expect::Answer(66, r),
        ),
        5 => (
            list(vec![u(48), u(r), dict(), procedure(rng), payload(rng)]),
            Expect::Answer(48, r),
        ),
        // Unknown request ids: a CANCEL of nothing is ignored; a YIELD or ERROR for an
        // invocation never issued is a violation, for one issued before it is ignored.
        7 => (
            list(vec![u(49), u(1 + rng.below(1000) as u64), dict()]),
            Expect::Quiet,
        ),
        8 => (
            list(vec![u(70), u(1 + rng.below(1000) as u64), dict()]),
            Expect::Maybe(None),
        ),
        // Random options on a request: an answer or a violation.
        _ => {
            let code = *rng.pick(&[16u64, 32, 48, 64]);
            let target = if code == 48 || code == 64 {
                procedure(rng)
            } else {
                uri(rng, "fuzz.t")
            };
            let m = list(vec![u(code), u(r), wild_options(rng), target]);
            let answered = code != 16; // an unacknowledged PUBLISH has no answer
            (m, Expect::Maybe(answered.then_some((code, r))))
        }
    }
}

/// A message that is a protocol violation on an established session.
pub fn violation(rng: &mut Rng, r: u64) -> (Value, Expect) {
    let s = |t: &str| Value::Str(t.into());
    let m = match rng.below(10) {
        // Router-only messages, every one of them.
        0 => rng
            .pick(&[
                list(vec![u(2), u(r), dict()]),
                list(vec![u(4), s("ticket"), dict()]),
                list(vec![u(17), u(r), u(1)]),
                list(vec![u(33), u(r), u(1)]),
                list(vec![u(35), u(r)]),
                list(vec![u(36), u(1), u(2), dict()]),
                list(vec![u(50), u(r), dict()]),
                list(vec![u(65), u(r), u(1)]),
                list(vec![u(67), u(r)]),
                list(vec![u(68), u(r), u(1), dict()]),
                list(vec![u(69), u(r), dict()]),
            ])
            .clone(),
        // Out of state: HELLO or AUTHENTICATE on an established session; a client ERROR
        // for something other than an INVOCATION.
        1 => list(vec![u(1), s("realm1"), dict()]),
        2 => list(vec![u(5), s("signature"), dict()]),
        3 => list(vec![u(8), u(48), u(r), dict(), s("com.x.error")]),
        // Wrong arities.
        4 => list(vec![u(48), u(r)]),
        5 => list(vec![u(32), u(r), dict(), s("a.b"), dict(), dict()]),
        // Wrong types.
        6 => list(vec![u(48), s("r"), dict(), s("a")]),
        7 => list(vec![u(64), u(r), list(vec![]), s("a")]),
        // Huge numbers: an id beyond 2^53, an unknown message type.
        8 => rng
            .pick(&[
                list(vec![u(48), u(u64::MAX), dict(), s("a")]),
                list(vec![u(1 << 40)]),
            ])
            .clone(),
        // Deeper than the nesting limit.
        _ => list(vec![
            u(48),
            u(r),
            dict(),
            s("fuzz.echo"),
            list(vec![nested(130 + rng.below(100))]),
        ]),
    };
    (m, Expect::Violation)
}

/// A message before HELLO that is not HELLO: a violation.
pub fn before_hello(rng: &mut Rng) -> (Value, Expect) {
    let m = match rng.below(4) {
        0 => list(vec![u(48), u(1), dict(), Value::Str("fuzz.echo".into())]),
        1 => list(vec![u(32), u(1), dict(), Value::Str("fuzz.t".into())]),
        2 => list(vec![u(36), u(1), u(2), dict()]),
        _ => list(vec![u(5), Value::Str("sig".into()), dict()]),
    };
    (m, Expect::Violation)
}

/// `bytes` with 1 to 3 random mutations (flip, delete, insert, truncate, duplicate).
pub fn mutate(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + rng.below(3) {
        if b.is_empty() {
            b.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.below(b.len());
        match rng.below(5) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => {
                b.remove(at);
            }
            2 => b.insert(at, rng.next_u64() as u8),
            3 => b.truncate(at),
            _ => {
                let copy = b.clone();
                b.extend_from_slice(&copy);
            }
        }
    }
    b
}
