//! The properties every fuzz target checks.

use wamp_proto::{Message, Serializer};

/// The documented normalisation: a payload with kwargs but no args is sent as `[]` + kwargs
/// and so decodes with `args: Some(vec![])`.
fn normalise(m: &Message) -> Message {
    let mut m = m.clone();
    if let Some(p) = m.payload_mut() {
        if p.args.is_none() && p.kwargs.is_some() {
            p.args = Some(vec![]);
        }
    }
    m
}

/// Equal, or (NaN being unequal to itself) printed the same.
fn same(a: &Message, b: &Message) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

/// Decoding never panics; whatever decodes re-encodes with the same serializer and decodes
/// again to the same message, and re-encoding is byte-stable. The router's decode
/// (`decode_shared`, payload left encoded) accepts exactly the same inputs, materializes to
/// the same message, and re-encodes in every serializer to what the full decode gives.
pub(crate) fn check(ser: Serializer, data: &[u8]) {
    let shared = ser.decode_shared(&bytes::Bytes::copy_from_slice(data));
    let Ok(m1) = ser.decode(data) else {
        assert!(
            shared.is_err(),
            "decode_shared accepted what decode refuses: {shared:?}"
        );
        return;
    };
    let shared =
        shared.unwrap_or_else(|e| panic!("decode accepted {m1:?}, decode_shared refused: {e}"));
    let mut materialized = shared.clone();
    if let Some(p) = materialized.payload_mut() {
        p.materialize().expect("a validated payload decodes");
    }
    assert!(
        same(&m1, &materialized),
        "decode_shared differs:\n  {m1:?}\n  {materialized:?}"
    );
    for to in Serializer::ALL {
        let via_shared = to.encode(&shared).expect("a shared payload encodes");
        let back = to.decode(via_shared.as_bytes()).expect("and decodes");
        let want = to
            .decode(to.encode(&m1).expect("encodes").as_bytes())
            .expect("decodes");
        assert!(
            same(&want, &back),
            "{ser:?} -> {to:?}:\n  {want:?}\n  {back:?}"
        );
    }
    let e1 = ser
        .encode(&m1)
        .unwrap_or_else(|e| panic!("decoded {m1:?} but cannot re-encode it: {e}"));
    let m2 = ser
        .decode(e1.as_bytes())
        .unwrap_or_else(|e| panic!("re-encoded {m1:?} as {e1:?}, which does not decode: {e}"));
    let n1 = normalise(&m1);
    if !same(&n1, &m2) {
        panic!("round trip changed the message:\n  {n1:?}\n  {m2:?}");
    }
    let e2 = ser.encode(&m2).expect("a decoded message re-encodes");
    assert_eq!(e1, e2, "re-encoding is not stable");
}
