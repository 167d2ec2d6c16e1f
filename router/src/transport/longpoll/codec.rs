//! How WAMP messages sit in long-poll request and answer bodies, by protocol.
//!
//! `wamp.2.<ser>`: a body is exactly one message. `wamp.2.<ser>.batched` (as autobahn-python
//! and Crossbar): JSON messages each followed by `\x1e`; binary ones (msgpack, cbor) each
//! behind a 4-byte big-endian length.

use bytes::{BufMut, Bytes, BytesMut};
use wamp_proto::Serializer;

/// The record separator after each message of a batched JSON body.
const SEPARATOR: u8 = 0x1e;
/// The suffix of a batched protocol's name.
const BATCHED: &str = ".batched";

/// The body format of one long-poll transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Codec {
    pub(crate) serializer: Serializer,
    pub(crate) batched: bool,
}

impl Codec {
    /// The first of `offered` (the client's order) that `supported` allows.
    pub(crate) fn negotiate(offered: &[String], supported: &[Serializer]) -> Option<Codec> {
        offered.iter().find_map(|p| {
            let (name, batched) = match p.strip_suffix(BATCHED) {
                Some(name) => (name, true),
                None => (p.as_str(), false),
            };
            Serializer::from_subprotocol(name)
                .filter(|s| supported.contains(s))
                .map(|serializer| Codec {
                    serializer,
                    batched,
                })
        })
    }

    /// Every protocol name a transport with `supported` serializers speaks.
    pub(crate) fn names(supported: &[Serializer]) -> Vec<String> {
        supported
            .iter()
            .flat_map(|s| {
                [
                    s.subprotocol().to_owned(),
                    format!("{}{BATCHED}", s.subprotocol()),
                ]
            })
            .collect()
    }

    /// The protocol's name (`wamp.2.json`, `wamp.2.json.batched`, ...).
    pub(crate) fn name(&self) -> String {
        let base = self.serializer.subprotocol();
        if self.batched {
            format!("{base}{BATCHED}")
        } else {
            base.to_owned()
        }
    }

    /// The `Content-Type` of answers carrying messages.
    pub(crate) fn content_type(&self) -> &'static str {
        match self.serializer {
            Serializer::Json => "application/json; charset=utf-8",
            Serializer::MsgPack => "application/x-msgpack",
            Serializer::Cbor => "application/cbor",
        }
    }

    /// The messages of a `send` body, each checked as far as the serializer allows here (JSON:
    /// UTF-8 and well-formed; the session decodes the rest as on every transport).
    pub(crate) fn split(&self, body: &Bytes) -> Result<Vec<Bytes>, String> {
        let messages = if !self.batched {
            vec![body.clone()]
        } else if self.serializer == Serializer::Json {
            let mut parts: Vec<Bytes> = body
                .split(|b| *b == SEPARATOR)
                .map(|p| body.slice_ref(p))
                .collect();
            // A batch ends with the separator: the last, empty, piece is not a message.
            if parts.last().is_some_and(Bytes::is_empty) {
                parts.pop();
            }
            parts
        } else {
            let mut parts = Vec::new();
            let mut rest = &body[..];
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or("a batched message's 4-byte length is cut short")?;
                let len = u32::from_be_bytes(*len) as usize;
                let msg = tail
                    .get(..len)
                    .ok_or("a batched message is shorter than its length")?;
                parts.push(body.slice_ref(msg));
                rest = &tail[len..];
            }
            parts
        };
        if messages.is_empty() || messages.iter().any(Bytes::is_empty) {
            return Err("the body holds no message, or an empty one".into());
        }
        if self.serializer == Serializer::Json {
            for m in &messages {
                std::str::from_utf8(m).map_err(|e| format!("the body is not UTF-8: {e}"))?;
                serde_json::from_slice::<serde::de::IgnoredAny>(m)
                    .map_err(|e| format!("the body is not JSON: {e}"))?;
            }
        }
        Ok(messages)
    }

    /// How many of `queued` (oldest first) go into one `receive` answer: one unbatched;
    /// batched, as many as fit in `max` bytes (at least one).
    pub(crate) fn take(&self, queued: &[usize], max: usize) -> usize {
        if !self.batched {
            return queued.len().min(1);
        }
        let mut total = 0;
        let n = queued
            .iter()
            .take_while(|len| {
                total += *len + 4;
                total <= max
            })
            .count();
        n.max(queued.len().min(1))
    }

    /// The body of a `receive` answer carrying `messages`.
    pub(crate) fn join(&self, messages: impl ExactSizeIterator<Item = Bytes>) -> Bytes {
        if !self.batched {
            return messages.into_iter().next().unwrap_or_default();
        }
        let mut out = BytesMut::new();
        for m in messages {
            if self.serializer == Serializer::Json {
                out.put_slice(&m);
                out.put_u8(SEPARATOR);
            } else {
                // Messages are at most 16 MiB (RawSocket frames between pipe and session).
                out.put_u32(u32::try_from(m.len()).unwrap_or(u32::MAX));
                out.put_slice(&m);
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    fn codec(serializer: Serializer, batched: bool) -> Codec {
        Codec {
            serializer,
            batched,
        }
    }

    #[test]
    fn negotiation_follows_the_clients_order() {
        let offer = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let c = Codec::negotiate(&offer(&["wamp.2.ubjson", "wamp.2.json.batched"]), &ALL);
        assert_eq!(c, Some(codec(Serializer::Json, true)));
        assert_eq!(c.map(|c| c.name()).as_deref(), Some("wamp.2.json.batched"));
        let c = Codec::negotiate(
            &offer(&["wamp.2.msgpack", "wamp.2.json"]),
            &[Serializer::Json],
        );
        assert_eq!(c, Some(codec(Serializer::Json, false)));
        assert_eq!(
            Codec::negotiate(&offer(&["wamp.2.cbor"]), &[Serializer::Json]),
            None
        );
        assert_eq!(Codec::negotiate(&[], &ALL), None);
        assert_eq!(
            Codec::names(&[Serializer::Json]),
            ["wamp.2.json", "wamp.2.json.batched"]
        );
    }

    #[test]
    fn batches_round_trip() {
        let msgs = [Bytes::from_static(b"[1,\"a\"]"), Bytes::from_static(b"[2]")];
        for c in [
            codec(Serializer::Json, true),
            codec(Serializer::MsgPack, true),
        ] {
            let body = c.join(msgs.iter().cloned());
            assert_eq!(c.split(&body).unwrap(), msgs, "{c:?}");
        }
        let json = codec(Serializer::Json, true).join(msgs.iter().cloned());
        assert_eq!(&json[..], b"[1,\"a\"]\x1e[2]\x1e");
        let one = codec(Serializer::Json, false);
        assert_eq!(one.join(msgs.iter().cloned()), msgs[0]);
        assert_eq!(one.take(&[10, 10], 100), 1);
        assert_eq!(codec(Serializer::Json, true).take(&[10, 10, 10], 30), 2);
        assert_eq!(codec(Serializer::Json, true).take(&[100], 30), 1);
    }

    #[test]
    fn bad_bodies_are_refused() {
        let json = codec(Serializer::Json, false);
        for bad in [&b"\xff\xfe"[..], b"[1,", b"", b"{} {}"] {
            assert!(json.split(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        let batched = codec(Serializer::Json, true);
        assert!(batched.split(&Bytes::from_static(b"[1]\x1e\x1e")).is_err());
        let bin = codec(Serializer::MsgPack, true);
        assert!(bin.split(&Bytes::from_static(b"\0\0\0\x05ab")).is_err());
        assert!(bin.split(&Bytes::from_static(b"\0\0")).is_err());
    }
}
