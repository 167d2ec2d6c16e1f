//! Payloads kept in the encoding they arrived in, for routing without re-encoding.
//!
//! A router forwards `Arguments|list, ArgumentsKw|dict` untouched: when the receiving peer
//! speaks the sender's serializer, the encoded bytes are copied into the outgoing message as
//! they are; only a peer with another serializer costs a decode and re-encode (transcoding).
//! [`crate::Serializer::decode_shared`] produces such payloads; the bytes are validated there
//! (well-formed, a list and a dict, nesting limit, UTF-8 strings, string keys; for CBOR the
//! rules of [`cbor`]), so transcoding later cannot fail on them.

use bytes::Bytes;
use serde::Deserialize;

use crate::error::DecodeError;
use crate::{Dict, Serializer, Value};

pub(crate) mod cbor;
pub mod msgpack;

/// `Arguments` and `ArgumentsKw` still in their wire encoding (slices of the received frame).
#[derive(Debug, Clone, PartialEq)]
pub struct RawPayload {
    serializer: Serializer,
    args: Bytes,
    kwargs: Option<Bytes>,
}

impl RawPayload {
    /// The serializer the bytes are in.
    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// The encoded `Arguments` list.
    pub fn args_bytes(&self) -> &[u8] {
        &self.args
    }

    /// The encoded `ArgumentsKw` dict, if present.
    pub fn kwargs_bytes(&self) -> Option<&[u8]> {
        self.kwargs.as_deref()
    }

    /// How many payload elements there are on the wire (1 or 2).
    pub(crate) fn wire_len(&self) -> usize {
        1 + usize::from(self.kwargs.is_some())
    }

    pub(crate) fn new(serializer: Serializer, args: Bytes, kwargs: Option<Bytes>) -> RawPayload {
        RawPayload {
            serializer,
            args,
            kwargs,
        }
    }

    /// The same payload in one buffer of its own: what outlives the frame it was read from
    /// then keeps only its own bytes alive, not the (possibly much larger) read buffer the
    /// frame was sliced from.
    pub fn detached(&self) -> RawPayload {
        let kwargs = self.kwargs.as_deref().unwrap_or_default();
        let mut own = Vec::with_capacity(self.args.len() + kwargs.len());
        own.extend_from_slice(&self.args);
        own.extend_from_slice(kwargs);
        let own = Bytes::from(own);
        let split = self.args.len();
        RawPayload {
            serializer: self.serializer,
            args: own.slice(..split),
            kwargs: self.kwargs.as_ref().map(|_| own.slice(split..)),
        }
    }

    /// Decodes the bytes into values.
    pub fn decode(&self) -> Result<(Vec<Value>, Option<Dict>), DecodeError> {
        let args = match decode_value(self.serializer, &self.args)? {
            Value::List(l) => l,
            _ => return Err(shape_error(self.serializer, crate::message::NOT_A_LIST)),
        };
        let kwargs = match &self.kwargs {
            None => None,
            Some(k) => match decode_value(self.serializer, k)? {
                Value::Dict(d) => Some(d),
                _ => return Err(shape_error(self.serializer, crate::message::NOT_A_DICT)),
            },
        };
        Ok((args, kwargs))
    }

    /// Appends the encoded elements to a message being written in the same serializer
    /// (JSON: `,args[,kwargs]`, the caller closes the array).
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        let json = self.serializer == Serializer::Json;
        if json {
            out.push(b',');
        }
        out.extend_from_slice(&self.args);
        if let Some(k) = &self.kwargs {
            if json {
                out.push(b',');
            }
            out.extend_from_slice(k);
        }
    }
}

fn decode_value(ser: Serializer, bytes: &[u8]) -> Result<Value, DecodeError> {
    let value = match ser {
        Serializer::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        Serializer::MsgPack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            Value::deserialize(&mut de).map_err(|e| e.to_string())
        }
        Serializer::Cbor => minicbor_serde::from_slice(bytes).map_err(|e| e.to_string()),
    };
    value.map_err(|e| DecodeError::new(ser, "payload", &e))
}

fn shape_error(ser: Serializer, why: &str) -> DecodeError {
    DecodeError::new(ser, "payload", why)
}

/// What decoding JSON into values refuses but merely finding a value's end accepts: numbers
/// beyond the `f64` range, unpaired UTF-16 surrogate escapes and nesting deeper than
/// [`MAX_NESTING`] (serde_json skips a raw value without a recursion limit). `text` is one
/// JSON value, an element of the message array, whose syntax was already checked.
pub(crate) fn check_json_values(text: &[u8]) -> Result<(), &'static str> {
    const SURROGATE: &str = "unpaired surrogate in a \\u escape";
    let hex4 = |at: usize| -> Result<u32, &'static str> {
        let h = text.get(at..at + 4).ok_or(SURROGATE)?;
        let h = std::str::from_utf8(h).map_err(|_| SURROGATE)?;
        u32::from_str_radix(h, 16).map_err(|_| SURROGATE)
    };
    let mut i = 0;
    // The message array holds the value.
    let mut depth = 1;
    while let Some(&c) = text.get(i) {
        match c {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err("nesting too deep");
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' => {
                i += 1;
                loop {
                    i += skip_plain(text.get(i..).unwrap_or_default());
                    match *text.get(i).ok_or("unterminated string")? {
                        b'"' => break,
                        b'\\' if text.get(i + 1) == Some(&b'u') => {
                            let n = hex4(i + 2)?;
                            i += 6;
                            if (0xDC00..=0xDFFF).contains(&n) {
                                return Err(SURROGATE);
                            }
                            if (0xD800..=0xDBFF).contains(&n) {
                                let pair = text.get(i..i + 2) == Some(b"\\u")
                                    && (0xDC00..=0xDFFF).contains(&hex4(i + 2)?);
                                if !pair {
                                    return Err(SURROGATE);
                                }
                                i += 6;
                            }
                        }
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while text
                    .get(i)
                    .is_some_and(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    i += 1;
                }
                let token = &text[start..i];
                // Integers up to 19 digits always fit; anything else may become an f64.
                let float_like =
                    token.len() >= 20 || token.iter().any(|c| matches!(c, b'.' | b'e' | b'E'));
                if float_like {
                    let n: f64 = std::str::from_utf8(token)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .ok_or("invalid number")?;
                    if n.is_infinite() {
                        return Err("number out of range");
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// How many bytes at the start of `s` are neither `"` nor `\\` (string content that needs no
/// look), eight at a time.
fn skip_plain(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has = |w: u64, b: u8| {
        let x = w ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let mut i = 0;
    for chunk in s.chunks_exact(8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(bytes);
        if has(w, b'"') | has(w, b'\\') != 0 {
            break;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .unwrap_or(s.len() - i)
}

/// Where the parts of a payload-carrying MessagePack or CBOR message are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offset of the message type code (just after the array header).
    pub(crate) code_at: usize,
    /// Elements before the payload, the code included.
    pub(crate) header_elements: usize,
    /// Offset where the payload starts (end of the header elements).
    pub(crate) payload_at: usize,
    /// Offset where `ArgumentsKw` starts, if present.
    pub(crate) kwargs_at: Option<usize>,
}

/// What [`layout`] needs to read of a binary serializer's wire format.
trait Wire {
    /// An array header at `at`: (element count, offset of the first element).
    fn array_header(b: &[u8], at: usize) -> Option<(usize, usize)>;
    /// An unsigned integer at `at`: (value, offset after it).
    fn uint(b: &[u8], at: usize) -> Option<(u64, usize)>;
    /// Where the value at `at` ends, if it is one that decodes into a [`Value`].
    fn skip(b: &[u8], at: usize, depth: usize) -> Option<usize>;
    /// Whether a value starting with this byte is an array.
    fn is_array(first: u8) -> bool;
    /// Whether a value starting with this byte is a map.
    fn is_map(first: u8) -> bool;
}

struct MsgPack;

impl Wire for MsgPack {
    fn array_header(b: &[u8], at: usize) -> Option<(usize, usize)> {
        msgpack::array_header(b, at)
    }
    fn uint(b: &[u8], at: usize) -> Option<(u64, usize)> {
        msgpack::uint(b, at)
    }
    fn skip(b: &[u8], at: usize, depth: usize) -> Option<usize> {
        msgpack::skip(b, at, depth).ok()
    }
    fn is_array(first: u8) -> bool {
        msgpack::is_array_marker(first)
    }
    fn is_map(first: u8) -> bool {
        msgpack::is_map_marker(first)
    }
}

struct Cbor;

impl Wire for Cbor {
    fn array_header(b: &[u8], at: usize) -> Option<(usize, usize)> {
        cbor::array_header(b, at)
    }
    fn uint(b: &[u8], at: usize) -> Option<(u64, usize)> {
        cbor::uint(b, at)
    }
    fn skip(b: &[u8], at: usize, depth: usize) -> Option<usize> {
        cbor::skip(b, at, depth).ok()
    }
    fn is_array(first: u8) -> bool {
        cbor::is_array_marker(first)
    }
    fn is_map(first: u8) -> bool {
        cbor::is_map_marker(first)
    }
}

/// Finds the payload of a MessagePack message that carries one (CALL, YIELD, PUBLISH, ...),
/// validating the payload as [`msgpack::skip`] does. `None` when the message has no payload or is
/// not well-formed: the caller then decodes it the ordinary way, which reports the error.
pub(crate) fn msgpack_layout(b: &[u8]) -> Option<Layout> {
    layout::<MsgPack>(b)
}

/// [`msgpack_layout`] for CBOR, validating as [`cbor::skip`] does.
pub(crate) fn cbor_layout(b: &[u8]) -> Option<Layout> {
    layout::<Cbor>(b)
}

fn layout<W: Wire>(b: &[u8]) -> Option<Layout> {
    let (len, code_at) = W::array_header(b, 0)?;
    let (code, after_code) = W::uint(b, code_at)?;
    let fields = fields_before_payload(code)?;
    let header_elements = 1 + fields;
    let payload_elements = len.checked_sub(header_elements)?;
    if !(1..=2).contains(&payload_elements) {
        return None;
    }
    // Depth 1: the elements sit inside the message array, as for the ordinary decoder.
    let mut at = after_code;
    for _ in 0..fields {
        at = W::skip(b, at, 1)?;
    }
    let payload_at = at;
    if !W::is_array(*b.get(at)?) {
        return None;
    }
    at = W::skip(b, at, 1)?;
    let kwargs_at = if payload_elements == 2 {
        if !W::is_map(*b.get(at)?) {
            return None;
        }
        let k = at;
        at = W::skip(b, at, 1)?;
        Some(k)
    } else {
        None
    };
    (at == b.len()).then_some(Layout {
        code_at,
        header_elements,
        payload_at,
        kwargs_at,
    })
}

/// Fields between the type code and `Arguments` for messages that carry a payload.
fn fields_before_payload(code: u64) -> Option<usize> {
    use crate::message::code;
    Some(match code {
        code::ABORT | code::RESULT | code::YIELD => 2,
        code::PUBLISH | code::EVENT | code::CALL | code::INVOCATION => 3,
        code::ERROR => 4,
        _ => return None,
    })
}

/// How many lists and dicts a message may nest in one another, its own array included: what
/// the ordinary decoders let through (serde_json's recursion limit and rmp-serde's
/// `set_max_depth` of 128 both refuse the 128th container). `depth` in the skip functions
/// counts the containers around a value, so a container at depth `MAX_NESTING` is refused.
pub(crate) const MAX_NESTING: usize = 127;

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(v: &Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    #[test]
    fn a_detached_payload_holds_its_own_bytes_only() {
        let args = mp(&Value::List(vec!["abc".into()]));
        let kwargs = mp(&Value::Dict(Dict::new()));
        // A frame with other bytes around the payload, as a read buffer has.
        let frame = Bytes::from([&[0u8; 100][..], &args, &kwargs, &[0u8; 100]].concat());
        let (a, k) = (
            100..100 + args.len(),
            100 + args.len()..100 + args.len() + kwargs.len(),
        );
        let sliced = RawPayload::new(Serializer::MsgPack, frame.slice(a), Some(frame.slice(k)));
        let own = sliced.detached();
        assert_eq!(own, sliced);
        let inside = |b: &[u8]| frame.as_ptr_range().contains(&b.as_ptr());
        assert!(inside(sliced.args_bytes()));
        assert!(!inside(own.args_bytes()));
        assert!(!own.kwargs_bytes().is_some_and(inside));
        let args_only = RawPayload::new(
            Serializer::MsgPack,
            frame.slice(100..100 + args.len()),
            None,
        );
        assert_eq!(args_only.detached(), args_only);
    }

    #[test]
    fn json_check_refuses_what_decoding_into_values_refuses() {
        for (text, ok) in [
            (
                r#"[1, -2.5e10, 123456789012345678901234567890, "a\"b", {"k": [0]}]"#,
                true,
            ),
            (r#"["\ud83d\ude00", "\u00e9", "\\ud800"]"#, true),
            (r#"[1e400]"#, false),
            (r#"[-1e309]"#, false),
            (r#"{"\ud800": 1}"#, false),
            (r#"["\udc00"]"#, false),
            (r#"["\ud800\u0041"]"#, false),
            (r#"["\ud800"]"#, false),
        ] {
            assert_eq!(check_json_values(text.as_bytes()).is_ok(), ok, "{text}");
            let decoded = serde_json::from_str::<Value>(text);
            assert_eq!(decoded.is_ok(), ok, "serde_json disagrees on {text}");
        }
    }

    #[test]
    fn json_check_counts_nesting_from_the_message_array() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(
            check_json_values(nested(MAX_NESTING - 1).as_bytes()),
            Ok(())
        );
        let deep = nested(MAX_NESTING);
        assert_eq!(check_json_values(deep.as_bytes()), Err("nesting too deep"));
        let dicts = format!(
            "{}1{}",
            r#"{"k":"#.repeat(MAX_NESTING),
            "}".repeat(MAX_NESTING)
        );
        assert_eq!(check_json_values(dicts.as_bytes()), Err("nesting too deep"));
        // Brackets inside strings are text.
        let text = format!(r#"["{}\"{}"]"#, "[".repeat(500), "{".repeat(500));
        assert_eq!(check_json_values(text.as_bytes()), Ok(()));
    }

    #[test]
    fn skip_plain_stops_at_the_first_quote_or_backslash() {
        for n in 0..40 {
            let mut s = vec![b'x'; n];
            assert_eq!(skip_plain(&s), n);
            for (at, stop) in [(0, b'"'), (n / 2, b'\\'), (n.saturating_sub(1), b'"')] {
                if n > 0 {
                    s[at] = stop;
                    assert_eq!(skip_plain(&s), at, "n={n} at={at}");
                    s[at] = b'x';
                }
            }
        }
    }

    #[test]
    fn layout_of_a_call() {
        // [48, 7, {}, "a.b", [1], {"k": 2}]
        let b = [
            0x96, 48, 7, 0x80, 0xa3, b'a', b'.', b'b', 0x91, 1, 0x81, 0xa1, b'k', 2,
        ];
        assert_eq!(
            msgpack_layout(&b),
            Some(Layout {
                code_at: 1,
                header_elements: 4,
                payload_at: 8,
                kwargs_at: Some(10),
            })
        );
        // no payload, a non-payload message, args not a list, trailing bytes
        assert_eq!(msgpack_layout(&b[..0]), None);
        assert_eq!(msgpack_layout(&[0x94, 48, 7, 0x80, 0xa1, b'a']), None);
        assert_eq!(msgpack_layout(&[0x93, 32, 7, 0x80]), None);
        assert_eq!(msgpack_layout(&[0x95, 48, 7, 0x80, 0xa1, b'a', 0x80]), None);
        assert_eq!(
            msgpack_layout(&[0x95, 48, 7, 0x80, 0xa1, b'a', 0x90, 0xc0]),
            None
        );
    }

    #[test]
    fn cbor_layout_of_a_call() {
        // [48, 7, {}, "a.b", [1], {"k": 2}]
        let b = [
            0x86, 0x18, 48, 7, 0xa0, 0x63, b'a', b'.', b'b', 0x81, 1, 0xa1, 0x61, b'k', 2,
        ];
        assert_eq!(
            cbor_layout(&b),
            Some(Layout {
                code_at: 1,
                header_elements: 4,
                payload_at: 9,
                kwargs_at: Some(11),
            })
        );
        // no payload; args not a list; kwargs not a map; an indefinite-length payload;
        // trailing bytes; an indefinite-length message array
        for bad in [
            &[0x84, 0x18, 48, 7, 0xa0, 0x61, b'a'][..],
            &[0x85, 0x18, 48, 7, 0xa0, 0x61, b'a', 0xa0],
            &[0x86, 0x18, 48, 7, 0xa0, 0x61, b'a', 0x80, 0x80],
            &[0x85, 0x18, 48, 7, 0xa0, 0x61, b'a', 0x9f, 0xff],
            &[0x85, 0x18, 48, 7, 0xa0, 0x61, b'a', 0x80, 0xf6],
            &[0x9f, 0x18, 48, 7, 0xa0, 0x61, b'a', 0x80, 0xff],
        ] {
            assert_eq!(cbor_layout(bad), None, "{bad:02x?}");
        }
    }
}
