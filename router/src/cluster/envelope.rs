//! What nodes send each other: a small msgpack header, then (for events and calls) a WAMP
//! message in msgpack, passed on as it came.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use wamp_proto::{Message, Serializer};

use crate::broker::Filter;

/// A publication for other nodes' subscribers (the WAMP part is the EVENT).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EventHeader {
    pub(crate) origin: String,
    pub(crate) topic: String,
    pub(crate) filter: Filter,
    pub(crate) retain: bool,
    /// When it was sent (ms since the Unix epoch): see [`is_stale`].
    #[serde(default)]
    pub(crate) sent_ms: u64,
}

/// A call-path message between a caller's node and a callee's node: INVOCATION and
/// INTERRUPT towards the callee, RESULT and ERROR back. Sent with borrowed names
/// (`RpcHeader<&str>`), read into owned ones: both encode alike.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RpcHeader<S = String> {
    pub(crate) realm: S,
    /// The sending node and its incarnation.
    pub(crate) from: S,
    pub(crate) incarnation: u64,
    /// The callee's session id (on the callee's node).
    pub(crate) callee: u64,
    /// When it was sent (ms since the Unix epoch): see [`is_stale`].
    #[serde(default)]
    pub(crate) sent_ms: u64,
}

/// Now, in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether a message sent at `sent_ms` arrives after more than `bound` ms: one the NATS
/// client kept through an outage longer than the node timeout (it had queued it before it
/// noticed the connection was gone) is dropped rather than delivered late, as a burst.
/// Assumes the nodes' clocks agree to well within the node timeout (NTP).
pub(crate) fn is_stale(sent_ms: u64, bound: u64) -> bool {
    sent_ms != 0 && now_ms().saturating_sub(sent_ms) > bound
}

/// A node's heartbeat.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) node: String,
    pub(crate) incarnation: u64,
    /// Sessions per (realm, authrole): no longer filled in (`wamp.session.count` asks every
    /// node), kept so that heartbeats of this and of older builds decode on both.
    #[serde(default)]
    pub(crate) sessions: Vec<(String, String, u64)>,
}

/// A registration's callee, as every node's registry holds it (KV value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CalleeRecord {
    pub(crate) realm: String,
    pub(crate) uri: String,
    /// `exact`, `prefix` or `wildcard`.
    pub(crate) policy: String,
    /// The invoke policy.
    pub(crate) invoke: String,
    pub(crate) disclose_caller: bool,
    pub(crate) node: String,
    pub(crate) incarnation: u64,
    pub(crate) session: u64,
    pub(crate) authid: String,
    pub(crate) authrole: String,
    /// The callee's announced features ([`crate::peer::PeerFeatures`] bits).
    pub(crate) features: u32,
    pub(crate) registration: u64,
}

/// A registration's invoke policy and the nodes with callees of it (KV value; see
/// `claims.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claim {
    pub(crate) invoke: String,
    pub(crate) holders: Vec<Holder>,
}

/// A node (one incarnation of it) that holds a share of a [`Claim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub(crate) node: String,
    pub(crate) incarnation: u64,
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("bad header: {0}")]
    Header(#[from] rmp_serde::decode::Error),
    #[error("bad WAMP message: {0}")]
    Message(String),
}

/// A header alone (heartbeats, KV values).
pub(crate) fn encode<H: Serialize>(header: &H) -> Bytes {
    // Serializing these plain structs into a Vec cannot fail.
    Bytes::from(rmp_serde::to_vec(header).unwrap_or_default())
}

/// Reads a header-only envelope.
pub(crate) fn decode<H: DeserializeOwned>(bytes: &[u8]) -> Result<H, EnvelopeError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// A header followed by a WAMP message already encoded in msgpack.
pub(crate) fn encode_with<H: Serialize>(header: &H, msgpack_frame: &[u8]) -> Bytes {
    let mut out = with_header(header, msgpack_frame.len());
    out.extend_from_slice(msgpack_frame);
    Bytes::from(out)
}

/// A buffer holding `header`, with room for `more` bytes after it.
fn with_header<H: Serialize>(header: &H, more: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_ROOM + more);
    // Serializing these plain structs into a Vec cannot fail.
    if rmp_serde::encode::write(&mut out, header).is_err() {
        out.clear();
    }
    out
}

/// Room for a header: node and realm names and a few integers.
const HEADER_ROOM: usize = 96;

/// A header followed by `msg`, encoded in msgpack (`None`: it cannot be encoded).
pub(crate) fn encode_message<H: Serialize>(header: &H, msg: &Message) -> Option<Bytes> {
    let mut out = with_header(header, 128);
    Serializer::MsgPack.encode_into(msg, &mut out).ok()?;
    Some(Bytes::from(out))
}

/// Splits an envelope into its header and the WAMP message after it.
pub(crate) fn decode_with<H: DeserializeOwned>(
    bytes: &Bytes,
) -> Result<(H, Message), EnvelopeError> {
    let mut cursor = std::io::Cursor::new(&bytes[..]);
    let header: H = rmp_serde::decode::from_read(&mut cursor)?;
    let at = usize::try_from(cursor.position()).unwrap_or(bytes.len());
    let rest = bytes.slice(at.min(bytes.len())..);
    let msg = Serializer::MsgPack
        .decode_shared(&rest)
        .map_err(|e| EnvelopeError::Message(e.to_string()))?;
    Ok((header, msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::message::Event;
    use wamp_proto::{Dict, Id, Payload};

    fn event_envelope() -> Bytes {
        let h = EventHeader {
            origin: "n1".into(),
            topic: "a.b".into(),
            filter: Filter::default(),
            retain: false,
            sent_ms: now_ms(),
        };
        let ev = Message::Event(Event {
            subscription: Id::new(1).expect("an id"),
            publication: Id::new(1).expect("an id"),
            details: Dict::new(),
            payload: Payload::args(vec!["x".into()]),
        });
        encode_message(&h, &ev).expect("encodes")
    }

    #[test]
    fn an_envelope_round_trips() {
        let (h, m) = decode_with::<EventHeader>(&event_envelope()).expect("decodes");
        assert_eq!((h.origin.as_str(), h.topic.as_str()), ("n1", "a.b"));
        assert!(matches!(m, Message::Event(_)));
        assert!(!is_stale(h.sent_ms, 1000));
        assert!(is_stale(h.sent_ms - 5000, 1000));
    }

    #[test]
    fn garbage_and_every_truncation_are_errors_not_panics() {
        let whole = event_envelope();
        for n in 0..whole.len() {
            assert!(
                decode_with::<EventHeader>(&whole.slice(..n)).is_err(),
                "{n} bytes"
            );
        }
        for junk in [&b"\xff\xff\xff"[..], b"not msgpack", b"\x93\xa2n1"] {
            assert!(decode_with::<RpcHeader>(&Bytes::copy_from_slice(junk)).is_err());
            assert!(decode::<Heartbeat>(junk).is_err());
        }
    }
}
