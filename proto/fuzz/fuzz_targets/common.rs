//! The property both fuzz targets check.

use wamp_proto::{Message, Serializer};

/// The documented normalisation: a payload with kwargs but no args is sent as `[]` + kwargs
/// and so decodes with `args: Some(vec![])`.
fn normalise(m: &Message) -> Message {
    let mut m = m.clone();
    let payload = match &mut m {
        Message::Abort(x) => Some(&mut x.payload),
        Message::Error(x) => Some(&mut x.payload),
        Message::Publish(x) => Some(&mut x.payload),
        Message::Event(x) => Some(&mut x.payload),
        Message::Call(x) => Some(&mut x.payload),
        Message::Result(x) => Some(&mut x.payload),
        Message::Invocation(x) => Some(&mut x.payload),
        Message::Yield(x) => Some(&mut x.payload),
        _ => None,
    };
    if let Some(p) = payload {
        if p.args.is_none() && p.kwargs.is_some() {
            p.args = Some(vec![]);
        }
    }
    m
}

/// Decoding never panics; whatever decodes re-encodes with the same serializer and decodes
/// again to the same message, and re-encoding is byte-stable.
pub fn check(ser: Serializer, data: &[u8]) {
    let Ok(m1) = ser.decode(data) else { return };
    let e1 = ser
        .encode(&m1)
        .unwrap_or_else(|e| panic!("decoded {m1:?} but cannot re-encode it: {e}"));
    let m2 = ser
        .decode(e1.as_bytes())
        .unwrap_or_else(|e| panic!("re-encoded {m1:?} as {e1:?}, which does not decode: {e}"));
    let n1 = normalise(&m1);
    // NaN (msgpack can carry it) is unequal to itself; its Debug form is not.
    if n1 != m2 && format!("{n1:?}") != format!("{m2:?}") {
        panic!("round trip changed the message:\n  {n1:?}\n  {m2:?}");
    }
    let e2 = ser.encode(&m2).expect("a decoded message re-encodes");
    assert_eq!(e1, e2, "re-encoding is not stable");
}
