//! Reading MessagePack without decoding it: where a value ends and whether it decodes into
//! a [`crate::Value`] (`skip`, the pass-through's validation), and the code and request id
//! at the start of a message ([`head`]).

use super::MAX_NESTING;

/// Why [`skip`] refused the bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// The first two elements of a MessagePack-encoded WAMP message when both are unsigned
/// integers: its code and, for most messages, its request id (an ERROR's second element is
/// the request type). Nothing else is read or checked; `None` if the frame does not start
/// that way.
pub fn head(frame: &[u8]) -> Option<(u64, u64)> {
    let (_, at) = array_header(frame, 0)?;
    let (code, at) = uint(frame, at)?;
    let (request, _) = uint(frame, at)?;
    Some((code, request))
}

pub(crate) fn is_array_marker(m: u8) -> bool {
    matches!(m, 0x90..=0x9f | 0xdc | 0xdd)
}

pub(crate) fn is_map_marker(m: u8) -> bool {
    matches!(m, 0x80..=0x8f | 0xde | 0xdf)
}

fn be(b: &[u8], at: usize, n: usize) -> Result<u64, Malformed> {
    let s = b
        .get(at..at.checked_add(n).ok_or(Malformed)?)
        .ok_or(Malformed)?;
    Ok(s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

pub(crate) fn array_header(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let m = *b.get(at)?;
    let (len, hdr) = match m {
        0x90..=0x9f => (u64::from(m & 0x0f), 1),
        0xdc => (be(b, at + 1, 2).ok()?, 3),
        0xdd => (be(b, at + 1, 4).ok()?, 5),
        _ => return None,
    };
    Some((usize::try_from(len).ok()?, at + hdr))
}

pub(crate) fn uint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let m = *b.get(at)?;
    match m {
        0x00..=0x7f => Some((u64::from(m), at + 1)),
        0xcc..=0xcf => {
            let n = 1usize << (m - 0xcc);
            Some((be(b, at + 1, n).ok()?, at + 1 + n))
        }
        _ => None,
    }
}

/// Skips one MessagePack value starting at `at`, returning where it ends.
///
/// Accepts exactly what decodes into a [`Value`]: no `ext` types, map keys are strings,
/// strings are UTF-8, at most [`MAX_NESTING`] containers deep (`depth`: the containers
/// around the value at `at`). Never panics; every length is bounds-checked against the input
/// before it is trusted.
pub(crate) fn skip(b: &[u8], at: usize, depth: usize) -> Result<usize, Malformed> {
    let m = *b.get(at).ok_or(Malformed)?;
    let next = at + 1;
    let blob = |len_bytes: usize, utf8: bool| -> Result<usize, Malformed> {
        let len = usize::try_from(be(b, next, len_bytes)?).map_err(|_| Malformed)?;
        let start = next + len_bytes;
        let end = start.checked_add(len).ok_or(Malformed)?;
        let s = b.get(start..end).ok_or(Malformed)?;
        if utf8 && std::str::from_utf8(s).is_err() {
            return Err(Malformed);
        }
        Ok(end)
    };
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok(next),
        0xa0..=0xbf => {
            let end = next + usize::from(m & 0x1f);
            let s = b.get(next..end).ok_or(Malformed)?;
            std::str::from_utf8(s).map_err(|_| Malformed)?;
            Ok(end)
        }
        0xd9 => blob(1, true),
        0xda => blob(2, true),
        0xdb => blob(4, true),
        0xc4 => blob(1, false),
        0xc5 => blob(2, false),
        0xc6 => blob(4, false),
        0xca => fixed(b, next, 4),
        0xcb => fixed(b, next, 8),
        0xcc..=0xcf => fixed(b, next, 1 << (m - 0xcc)),
        0xd0..=0xd3 => fixed(b, next, 1 << (m - 0xd0)),
        0x90..=0x9f | 0xdc | 0xdd | 0x80..=0x8f | 0xde | 0xdf if depth >= MAX_NESTING => {
            Err(Malformed)
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let (len, mut at) = array_header(b, at).ok_or(Malformed)?;
            if len > b.len() - at {
                return Err(Malformed); // each element takes at least one byte
            }
            for _ in 0..len {
                at = skip(b, at, depth + 1)?;
            }
            Ok(at)
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let (len, mut at) = match m {
                0x80..=0x8f => (u64::from(m & 0x0f), next),
                0xde => (be(b, next, 2)?, next + 2),
                _ => (be(b, next, 4)?, next + 4),
            };
            let len = usize::try_from(len).map_err(|_| Malformed)?;
            if len > b.len().saturating_sub(at) / 2 {
                return Err(Malformed);
            }
            for _ in 0..len {
                if !matches!(*b.get(at).ok_or(Malformed)?, 0xa0..=0xbf | 0xd9..=0xdb) {
                    return Err(Malformed); // WAMP dict keys are strings
                }
                at = skip(b, at, depth + 1)?;
                at = skip(b, at, depth + 1)?;
            }
            Ok(at)
        }
        // ext types and the reserved 0xc1 have no WAMP meaning.
        _ => Err(Malformed),
    }
}

fn fixed(b: &[u8], at: usize, n: usize) -> Result<usize, Malformed> {
    let end = at + n;
    if end > b.len() {
        return Err(Malformed);
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dict, Value};

    fn mp(v: &Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    #[test]
    fn skip_finds_the_end_of_every_kind_of_value() {
        let v = Value::List(vec![
            Value::Null,
            true.into(),
            Value::UInt(u64::MAX),
            Value::Int(-5),
            Value::Int(i64::MIN),
            Value::Float(1.5),
            "x".repeat(300).into(),
            Value::Bytes(vec![1; 70_000]),
            Value::Dict(Dict::from([("k".into(), Value::List(vec![]))])),
        ]);
        let mut b = mp(&v);
        let end = b.len();
        b.extend_from_slice(&[0xc0, 0xc0]);
        assert_eq!(skip(&b, 0, 0), Ok(end));
    }

    #[test]
    fn skip_refuses_truncated_ext_bad_utf8_and_non_string_keys() {
        let good = mp(&Value::List(vec!["abc".into(), Value::Bytes(vec![1, 2])]));
        for cut in 0..good.len() {
            assert_eq!(skip(&good[..cut], 0, 0), Err(Malformed), "cut at {cut}");
        }
        assert_eq!(skip(&[0xd4, 1, 2], 0, 0), Err(Malformed)); // fixext1
        assert_eq!(skip(&[0xa2, 0xff, 0xfe], 0, 0), Err(Malformed));
        assert_eq!(skip(&[0x81, 0x01, 0x02], 0, 0), Err(Malformed));
        assert_eq!(skip(&[0xdd, 0xff, 0xff, 0xff, 0xff], 0, 0), Err(Malformed));
        assert_eq!(skip(&[0xc1], 0, 0), Err(Malformed));
        let mut deep = vec![0x91; 200];
        deep.push(0xc0);
        assert_eq!(skip(&deep, 0, 0), Err(Malformed));
    }

    #[test]
    fn head_reads_code_and_request_of_every_width() {
        use crate::message::{Interrupt, Message};
        use crate::{Id, Serializer};
        for request in [
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            1 << 40,
            (1 << 53) - 1,
        ] {
            let inv = Message::Interrupt(Interrupt {
                request: Id::new(request).expect("an id"),
                options: Dict::new(),
            });
            let frame = Serializer::MsgPack.encode(&inv).expect("encodes");
            let b = frame.as_bytes();
            assert_eq!(head(b), Some((69, request)), "{request}");
            for n in 0..b.len() {
                let h = head(&b[..n]);
                assert!(h.is_none() || h == Some((69, request)), "{n} bytes: {h:?}");
            }
        }
        assert_eq!(head(b"\x81\x01\x02"), None, "a map, not an array");
        assert_eq!(head(b"\x92\xa1x\x01"), None, "a string code");
        assert_eq!(head(b""), None);
    }
}
