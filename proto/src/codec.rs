//! The serializers: `wamp.2.json`, `wamp.2.msgpack` and `wamp.2.cbor`.

use bytes::Bytes;
use serde::de::{DeserializeSeed as _, IgnoredAny};
use serde::Deserialize;

use crate::error::{DecodeError, EncodeError};
use crate::fields::Where;
use crate::message::{MessageSeed, ReadMode, Spliced};
use crate::raw::{cbor, cbor_layout, msgpack_layout, Layout, RawPayload};
use crate::Message;

/// Nesting limit for decoded values (JSON's default limit is the same).
const MAX_DEPTH: usize = 128;

/// A WAMP serializer, as negotiated by the WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `wamp.2.json`: UTF-8 text frames, binary as `"\u0000" + base64`.
    Json,
    /// `wamp.2.msgpack`: binary frames.
    MsgPack,
    /// `wamp.2.cbor`: binary frames (RFC 8949; binary data as byte strings).
    Cbor,
}

/// An encoded message, ready for a text (JSON) or binary (MessagePack, CBOR) frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// A JSON text.
    Text(String),
    /// MessagePack or CBOR bytes.
    Binary(Vec<u8>),
}

impl Encoded {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Encoded::Text(s) => s.as_bytes(),
            Encoded::Binary(b) => b,
        }
    }
}

impl Serializer {
    /// Every serializer.
    pub const ALL: [Serializer; Serializer::COUNT] =
        [Serializer::MsgPack, Serializer::Json, Serializer::Cbor];

    /// How many serializers there are: the size of a per-serializer cache indexed by
    /// [`Serializer::index`].
    pub const COUNT: usize = 3;

    /// What a client offers unless told otherwise, in order of preference.
    pub const DEFAULT: [Serializer; 2] = [Serializer::MsgPack, Serializer::Json];

    /// The WebSocket subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    /// The short name used in configuration (`json`, `msgpack`, `cbor`).
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }

    /// Parses a WebSocket subprotocol name.
    pub fn from_subprotocol(s: &str) -> Option<Serializer> {
        match s {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            "wamp.2.cbor" => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// Parses a configuration name (`json`, `msgpack`, `cbor`).
    pub fn from_name(s: &str) -> Option<Serializer> {
        match s {
            "json" => Some(Serializer::Json),
            "msgpack" => Some(Serializer::MsgPack),
            "cbor" => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// The serializer id of the RawSocket handshake (`1` json, `2` msgpack, `3` cbor).
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        }
    }

    /// Parses a RawSocket handshake's serializer id.
    pub fn from_rawsocket_id(id: u8) -> Option<Serializer> {
        Serializer::ALL.into_iter().find(|s| s.rawsocket_id() == id)
    }

    /// Whether messages travel in binary frames (else text frames).
    pub fn is_binary(self) -> bool {
        self != Serializer::Json
    }

    /// A small index for per-serializer caches (`[Option<T>; Serializer::COUNT]`).
    pub fn index(self) -> usize {
        match self {
            Serializer::Json => 0,
            Serializer::MsgPack => 1,
            Serializer::Cbor => 2,
        }
    }

    /// Encodes one message.
    ///
    /// A payload still in this serializer's encoding (see [`Serializer::decode_shared`]) is
    /// copied in as it is; one in another serializer's encoding is transcoded.
    pub fn encode(self, msg: &Message) -> Result<Encoded, EncodeError> {
        let raw = self.own_raw(msg);
        if self == Serializer::Json && raw.is_none() {
            return Ok(Encoded::Text(serde_json::to_string(msg)?));
        }
        let mut buf = Vec::with_capacity(size_hint(raw));
        self.append(msg, raw, &mut buf)?;
        Ok(match self {
            Serializer::Json => Encoded::Text(String::from_utf8(buf).map_err(|_| not_utf8())?),
            Serializer::MsgPack | Serializer::Cbor => Encoded::Binary(buf),
        })
    }

    /// Encodes one message after `headroom` zero bytes, in a buffer sized like
    /// [`Serializer::encode`]'s: room for a frame header to be written in front of it, so
    /// that header and message are one buffer.
    #[inline]
    pub fn encode_after(self, headroom: usize, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let raw = self.own_raw(msg);
        let mut buf = Vec::with_capacity(headroom + size_hint(raw));
        buf.resize(headroom, 0);
        self.append_checked(msg, raw, &mut buf)?;
        Ok(buf)
    }

    /// Encodes one message at the end of `buf` (what [`Serializer::encode`] returns, with no
    /// buffer of its own); on an error `buf` is as it was.
    pub fn encode_into(self, msg: &Message, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = buf.len();
        let done = self.append_checked(msg, self.own_raw(msg), buf);
        if done.is_err() {
            buf.truncate(start);
        }
        done
    }

    /// [`Serializer::append`], then for JSON with a spliced payload the check that the text
    /// is UTF-8 (serde_json writes only that; `encode` checks a splice the same way).
    fn append_checked(
        self,
        msg: &Message,
        raw: Option<&RawPayload>,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = buf.len();
        self.append(msg, raw, buf)?;
        match (self, raw) {
            (Serializer::Json, Some(_)) => std::str::from_utf8(&buf[start..])
                .map(drop)
                .map_err(|_| not_utf8()),
            _ => Ok(()),
        }
    }

    /// The message's payload, if it is still in this serializer's encoding.
    fn own_raw(self, msg: &Message) -> Option<&RawPayload> {
        msg.payload()
            .and_then(|p| p.raw.as_ref())
            .filter(|r| r.serializer() == self)
    }

    /// Appends the encoded message; a `raw` payload is spliced in after the rest.
    fn append(
        self,
        msg: &Message,
        raw: Option<&RawPayload>,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let Some(raw) = raw else {
            return match self {
                Serializer::Json => Ok(serde_json::to_writer(buf, msg)?),
                Serializer::MsgPack => Ok(rmp_serde::encode::write(buf, msg)?),
                Serializer::Cbor => cbor_write(buf, msg),
            };
        };
        match self {
            Serializer::Json => {
                serde_json::to_writer(&mut *buf, &Spliced(msg))?;
                // `[code,...]`: reopen the array, append `,args[,kwargs]`, close it again.
                buf.pop();
                raw.append_to(buf);
                buf.push(b']');
            }
            Serializer::MsgPack => {
                rmp_serde::encode::write(&mut *buf, &Spliced(msg))?;
                raw.append_to(buf);
            }
            Serializer::Cbor => {
                cbor_write(buf, &Spliced(msg))?;
                raw.append_to(buf);
            }
        }
        Ok(())
    }

    /// Decodes one message from a frame, leaving its payload encoded (a router's decode).
    ///
    /// `Arguments` and `ArgumentsKw` become a [`RawPayload`] that slices `frame` (no copy)
    /// after being validated, so [`Serializer::encode`] forwards them byte for byte to a peer
    /// of the same serializer and transcodes them for the others. Accepts and refuses exactly
    /// what [`Serializer::decode`] does. Never panics, whatever the input.
    pub fn decode_shared(self, frame: &Bytes) -> Result<Message, DecodeError> {
        match self {
            Serializer::Json => {
                let at = Where::default();
                let mut de = serde_json::Deserializer::from_slice(frame);
                let read = MessageSeed(ReadMode::JsonRaw(frame), &at)
                    .deserialize(&mut de)
                    .and_then(|msg| de.end().map(|()| msg));
                read.map_err(|e| self.error(&at, e))
            }
            Serializer::MsgPack => match msgpack_layout(frame) {
                // A fixarray header for the header elements (at most 5).
                Some(layout) => self.decode_header(frame, &layout, 0x90, |buf| self.decode(buf)),
                None => self.decode(frame),
            },
            Serializer::Cbor => match cbor_layout(frame) {
                // The layout validated the header elements: only the serde mapping is left.
                Some(layout) => self.decode_header(frame, &layout, 0x80, cbor_read),
                None => self.decode(frame),
            },
        }
    }

    /// A decode error at `at`, from the decoder's own error `e`.
    fn error(self, at: &Where, e: impl std::fmt::Display) -> DecodeError {
        DecodeError::new(self, &at.describe(), &e.to_string())
    }

    /// Decodes the header of a binary message alone (a copy of its bytes under an array
    /// header, `short_array | count`, that leaves out the payload elements) and attaches the
    /// payload as slices of `frame`.
    fn decode_header(
        self,
        frame: &Bytes,
        layout: &Layout,
        short_array: u8,
        decode: impl FnOnce(&[u8]) -> Result<Message, DecodeError>,
    ) -> Result<Message, DecodeError> {
        let header = &frame[layout.code_at..layout.payload_at];
        let mut buf = Vec::with_capacity(1 + header.len());
        buf.push(short_array | layout.header_elements as u8);
        buf.extend_from_slice(header);
        let mut msg = decode(&buf)?;
        let (args, kwargs) = match layout.kwargs_at {
            Some(k) => (
                frame.slice(layout.payload_at..k),
                Some(frame.slice(k..frame.len())),
            ),
            None => (frame.slice(layout.payload_at..frame.len()), None),
        };
        if let Some(p) = msg.payload_mut() {
            p.raw = Some(RawPayload::new(self, args, kwargs));
        }
        Ok(msg)
    }

    /// Decodes one message from a frame's bytes. Never panics, whatever the input.
    ///
    /// The frame must hold exactly one message: bytes after it are an error.
    pub fn decode(self, bytes: &[u8]) -> Result<Message, DecodeError> {
        let at = Where::default();
        match self {
            Serializer::Json => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let read = MessageSeed(ReadMode::Values, &at)
                    .deserialize(&mut de)
                    .and_then(|msg| de.end().map(|()| msg));
                read.map_err(|e| self.error(&at, e))
            }
            Serializer::MsgPack => {
                let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
                de.set_max_depth(MAX_DEPTH);
                let msg = MessageSeed(ReadMode::Values, &at)
                    .deserialize(&mut de)
                    .map_err(|e| self.error(&at, e))?;
                // rmp-serde keeps the rest of the slice to itself: reading one more marker
                // fails at once (a length check) unless bytes follow the message.
                match IgnoredAny::deserialize(&mut de) {
                    Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
                        if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                    {
                        Ok(msg)
                    }
                    _ => Err(DecodeError::new(
                        self,
                        &at.describe(),
                        crate::wording::TRAILING,
                    )),
                }
            }
            Serializer::Cbor => {
                // The WAMP rules (definite lengths, no tags, string keys, depth, UTF-8, ...)
                // first, with the same check the router's pass-through applies to payloads.
                cbor::check(bytes).map_err(|why| DecodeError::new(self, "", why))?;
                cbor_read(bytes)
            }
        }
    }
}

/// Maps a CBOR message that passed [`cbor::check`] onto a [`Message`].
fn cbor_read(bytes: &[u8]) -> Result<Message, DecodeError> {
    let at = Where::default();
    let mut de = minicbor_serde::Deserializer::new(bytes);
    MessageSeed(ReadMode::Values, &at)
        .deserialize(&mut de)
        .map_err(|e| Serializer::Cbor.error(&at, e))
}

/// Room for a typical message (growing from an empty Vec made small msgpack messages slower
/// to encode than JSON), plus the payload copied in.
fn size_hint(raw: Option<&RawPayload>) -> usize {
    raw.map_or(128, |r| {
        96 + r.args_bytes().len() + r.kwargs_bytes().map_or(0, <[u8]>::len)
    })
}

fn not_utf8() -> EncodeError {
    EncodeError::Json(serde::ser::Error::custom("payload is not UTF-8"))
}

/// Encodes `v` as CBOR at the end of `buf` (`null` for unit: [`Value::Null`](crate::Value)).
fn cbor_write<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, v: &T) -> Result<(), EncodeError> {
    let mut ser = minicbor_serde::Serializer::new(buf);
    ser.serialize_unit_as_null(true);
    v.serialize(&mut ser)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;
    use crate::{Dict, Id, Uri, Value};

    fn id(n: u64) -> Id {
        Id::new(n).unwrap()
    }

    #[test]
    fn call_json_wire_form() {
        let m: Message = Call {
            request: id(7),
            options: Dict::new(),
            procedure: Uri::new("com.x"),
            payload: Payload {
                args: None,
                kwargs: Some(Dict::from([("a".into(), Value::UInt(1))])),
                raw: None,
            },
        }
        .into();
        let Encoded::Text(s) = Serializer::Json.encode(&m).unwrap() else {
            panic!("json must be text")
        };
        assert_eq!(s, r#"[48,7,{},"com.x",[],{"a":1}]"#);
        assert_eq!(Serializer::Json.decode(s.as_bytes()).unwrap(), {
            let Message::Call(mut c) = m else {
                unreachable!()
            };
            c.payload.args = Some(vec![]);
            Message::Call(c)
        });
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            &b""[..],
            b"[]",
            b"{}",
            b"[999]",
            b"[48]",
            b"[48, 0, {}, \"a\"]",
            b"[48, 1, [], \"a\"]",
            b"[48, 1, {}, 5]",
            b"[48, 1, {}, \"a\", {}, {}]",
            b"[48, 1, {}, \"a\", [], {}, 1]",
            b"[6, {}, \"x\", 1]",
            b"[35, 0]",
            b"[35, 5, {}]",
            b"[1, \"r\", {}]]",
        ] {
            assert!(
                Serializer::Json.decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Serializer::MsgPack.decode(&[0x91, 0xc1]).is_err());
        assert!(Serializer::MsgPack
            .decode(&[0xdd, 0xff, 0xff, 0xff, 0xff])
            .is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = format!(
            "[48,1,{{}},\"a\",{}{}]",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(Serializer::Json.decode(deep.as_bytes()).is_err());
        let mut mp = vec![0x95, 48, 1, 0x80, 0xa1, b'a'];
        mp.extend(std::iter::repeat_n(0x91, 100_000));
        mp.push(0xc0);
        assert!(Serializer::MsgPack.decode(&mp).is_err());
        let mut cb = vec![0x84, 0x18, 48, 1, 0xa0];
        cb.extend(std::iter::repeat_n(0x81, 100_000));
        cb.push(0xf6);
        assert!(Serializer::Cbor.decode(&cb).is_err());
    }

    #[test]
    fn names_subprotocols_and_rawsocket_ids() {
        for (ser, name, sub, id, binary) in [
            (Serializer::Json, "json", "wamp.2.json", 1, false),
            (Serializer::MsgPack, "msgpack", "wamp.2.msgpack", 2, true),
            (Serializer::Cbor, "cbor", "wamp.2.cbor", 3, true),
        ] {
            assert_eq!(ser.name(), name);
            assert_eq!(Serializer::from_name(name), Some(ser));
            assert_eq!(ser.subprotocol(), sub);
            assert_eq!(Serializer::from_subprotocol(sub), Some(ser));
            assert_eq!(ser.rawsocket_id(), id);
            assert_eq!(Serializer::from_rawsocket_id(id), Some(ser));
            assert_eq!(ser.is_binary(), binary);
            assert_eq!(Serializer::ALL[..].iter().filter(|s| **s == ser).count(), 1);
        }
        assert_eq!(Serializer::from_rawsocket_id(0), None);
        assert_eq!(Serializer::from_rawsocket_id(4), None);
        let mut indexes: Vec<usize> = Serializer::ALL.iter().map(|s| s.index()).collect();
        indexes.sort();
        assert_eq!(indexes, (0..Serializer::COUNT).collect::<Vec<_>>());
    }

    #[test]
    fn revocation_forms() {
        let m = Serializer::Json
            .decode(br#"[67, 0, {"registration": 5, "reason": "wamp.error.unregistered"}]"#)
            .unwrap();
        let Message::Unregistered(u) = m else {
            panic!()
        };
        assert_eq!(u.request, 0);
        assert!(u.details.is_some());
    }
}
