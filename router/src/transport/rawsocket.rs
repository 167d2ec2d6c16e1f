//! The RawSocket transport (WAMP spec, "RawSocket Transport"): a 4-octet handshake, then
//! length-prefixed frames with PING/PONG, over any byte stream (TCP, Unix socket, TLS).
//!
//! Handshake: the client sends `0x7F`, `LLLL SSSS`, `0x00`, `0x00` (it accepts messages of at
//! most 2^(9+L) octets, in serializer S); the router answers `0x7F`, `(L_router << 4) | S`,
//! `0`, `0`, or `0x7F`, `E << 4`, `0`, `0` with an error code E and closes. Frames: a header
//! `RRRR XTTT` + 24-bit big-endian length (X is a 25th length bit, for exactly 2^24), then the
//! payload, unmasked.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wamp_proto::Serializer;

use super::framing::{FrameKind, Framing, FramingError, Inbound, Parsed};
use crate::close::CloseReason;

/// The first octet of every handshake.
const MAGIC: u8 = 0x7F;
/// Frame types (`TTT`).
const MESSAGE: u8 = crate::peer::wire::RAW_MESSAGE;
const PING: u8 = 1;
const PONG: u8 = 2;
/// The largest payload a frame can carry: 2^24 (the X bit set, the 24 length bits zero).
const MAX_FRAME: usize = crate::peer::wire::RAW_MAX_FRAME;

/// A handshake error code the router answers with (TRN-09).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// 1: the serializer is not supported on this transport.
    SerializerUnsupported = 1,
    /// 2: the client's maximum message length is below what this transport accepts.
    MaxLengthUnacceptable = 2,
    /// 3: the reserved octets are not zero.
    ReservedBits = 3,
    /// 4: the transport has as many connections as it accepts.
    ConnectionLimit = 4,
}

impl HandshakeError {
    /// The 4-octet error reply.
    pub(crate) fn reply(self) -> [u8; 4] {
        [MAGIC, (self as u8) << 4, 0, 0]
    }

    /// What the log says.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            HandshakeError::SerializerUnsupported => "serializer not supported",
            HandshakeError::MaxLengthUnacceptable => "maximum message length unacceptable",
            HandshakeError::ReservedBits => "reserved handshake bits set",
            HandshakeError::ConnectionLimit => "connection limit reached",
        }
    }
}

/// Why a RawSocket handshake did not complete.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The first octet was not 0x7F: closed without a reply.
    NotRawSocket(u8),
    /// Refused with this error reply (already sent).
    Refused(HandshakeError),
    /// The stream failed or ended during the handshake.
    Io(std::io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotRawSocket(b) => write!(f, "first octet {b:#04x} is not 0x7f"),
            Refusal::Refused(e) => f.write_str(e.describe()),
            Refusal::Io(e) => write!(f, "stream failed during the handshake: {e}"),
        }
    }
}

/// What a RawSocket transport accepts.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Serializers enabled on the transport.
    pub(crate) serializers: Vec<Serializer>,
    /// The largest message the router accepts (rounded down to a power of two in the reply).
    pub(crate) max_message: usize,
    /// The smallest maximum a client may announce.
    pub(crate) min_peer_max: usize,
}

/// The length exponent to announce for `max`: the largest L with 2^(9+L) <= max (0..=15).
pub(crate) fn exponent_for(max: usize) -> u8 {
    (0..=15u8)
        .rev()
        .find(|l| 1usize << (9 + l) <= max)
        .unwrap_or(0)
}

/// A completed handshake.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) serializer: Serializer,
    /// The longest frame the client accepts.
    pub(crate) peer_max: usize,
    /// The longest frame the router accepts (what it announced).
    pub(crate) own_max: usize,
}

/// Reads the client's handshake and answers it; an error reply is sent before `Err`.
/// `over_limit` refuses with error 4 (the caller counts connections).
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    limits: &Limits,
    over_limit: bool,
) -> Result<Accepted, Refusal> {
    let mut hs = [0u8; 4];
    io.read_exact(&mut hs[..1]).await.map_err(Refusal::Io)?;
    if hs[0] != MAGIC {
        return Err(Refusal::NotRawSocket(hs[0]));
    }
    io.read_exact(&mut hs[1..]).await.map_err(Refusal::Io)?;
    let outcome = check(hs, limits, over_limit);
    let reply = match &outcome {
        Ok(a) => [MAGIC, (exponent_for(a.own_max) << 4) | (hs[1] & 0x0F), 0, 0],
        Err(e) => e.reply(),
    };
    io.write_all(&reply).await.map_err(Refusal::Io)?;
    io.flush().await.map_err(Refusal::Io)?;
    outcome.map_err(Refusal::Refused)
}

fn check(hs: [u8; 4], limits: &Limits, over_limit: bool) -> Result<Accepted, HandshakeError> {
    if hs[2] != 0 || hs[3] != 0 {
        return Err(HandshakeError::ReservedBits);
    }
    let serializer = Serializer::from_rawsocket_id(hs[1] & 0x0F)
        .filter(|s| limits.serializers.contains(s))
        .ok_or(HandshakeError::SerializerUnsupported)?;
    let peer_max = 1usize << (9 + (hs[1] >> 4));
    if peer_max < limits.min_peer_max {
        return Err(HandshakeError::MaxLengthUnacceptable);
    }
    if over_limit {
        return Err(HandshakeError::ConnectionLimit);
    }
    let own_max = 1usize << (9 + exponent_for(limits.max_message));
    Ok(Accepted {
        serializer,
        peer_max,
        own_max,
    })
}

/// RawSocket framing after the handshake.
#[derive(Debug)]
pub(crate) struct RawSocketFraming {
    /// The largest payload accepted from the peer.
    max_in: usize,
}

impl RawSocketFraming {
    pub(crate) fn new(max_in: usize) -> RawSocketFraming {
        RawSocketFraming {
            max_in: max_in.min(MAX_FRAME),
        }
    }
}

/// Parses the frame header at the start of `buf`: (type, payload length).
fn parse_header(buf: &[u8]) -> Option<Result<(u8, usize), FramingError>> {
    let h: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    if h[0] & 0xF0 != 0 {
        return Some(Err(FramingError::Protocol(
            "reserved frame header bits set",
        )));
    }
    let low = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
    let len = if h[0] & 0x08 != 0 {
        if low != 0 {
            return Some(Err(FramingError::Protocol(
                "25th length bit set with a non-zero length",
            )));
        }
        MAX_FRAME
    } else {
        low
    };
    Some(Ok((h[0] & 0x07, len)))
}

impl Framing for RawSocketFraming {
    const NAME: &'static str = "rawsocket";
    const PONG_EACH_PING: bool = true;

    fn frame(
        &mut self,
        buf: &mut BytesMut,
        on: &mut impl FnMut(Inbound) -> bool,
    ) -> Result<Parsed, FramingError> {
        let Some(header) = parse_header(buf) else {
            return Ok(Parsed::Incomplete { wanted: 4 });
        };
        let (kind, len) = header?;
        if kind > PONG {
            return Err(FramingError::Protocol("reserved frame type"));
        }
        // Checked on the header alone: an oversized frame is never buffered.
        if len > self.max_in {
            return Err(FramingError::TooLarge);
        }
        let used = 4 + len;
        if buf.len() < used {
            return Ok(Parsed::Incomplete { wanted: used });
        }
        buf.advance(4);
        let payload = buf.split_to(len);
        let more = match kind {
            MESSAGE => on(Inbound::Message(payload.freeze())),
            // Copied: a pong may wait long for a full socket, and must not pin the read buffer.
            PING => on(Inbound::Ping(Bytes::copy_from_slice(&payload))),
            _ => true, // an unsolicited PONG
        };
        Ok(Parsed::Frame { more })
    }

    fn header(&self, kind: FrameKind, len: usize) -> ([u8; 10], usize) {
        let t = match kind {
            FrameKind::Message => MESSAGE,
            FrameKind::Pong => PONG,
            FrameKind::Ping => PING,
            // Never written: RawSocket has no closing frame.
            FrameKind::Close => MESSAGE,
        };
        crate::peer::wire::raw_header(t, len)
    }

    fn close_payload(&self, _reason: CloseReason) -> Option<Bytes> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::reader::Decoder;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut v = vec![kind, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        v.extend_from_slice(payload);
        v
    }

    fn decode(
        f: &mut Decoder<RawSocketFraming>,
        data: &[u8],
    ) -> Result<Vec<Inbound>, FramingError> {
        let mut out = Vec::new();
        f.feed(data, |e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    #[test]
    fn frames_split_at_every_byte_reassemble() {
        let mut wire = frame(MESSAGE, b"[1,\"realm1\",{}]");
        wire.extend(frame(PING, b"ping!"));
        wire.extend(frame(PONG, b"ignored"));
        wire.extend(frame(MESSAGE, &[7u8; 300]));
        for cut in 0..wire.len() {
            let mut f = Decoder::new(RawSocketFraming::new(1024));
            let mut got = decode(&mut f, &wire[..cut]).unwrap();
            got.extend(decode(&mut f, &wire[cut..]).unwrap());
            assert_eq!(
                got,
                vec![
                    Inbound::Message(Bytes::from_static(b"[1,\"realm1\",{}]")),
                    Inbound::Ping(Bytes::from_static(b"ping!")),
                    Inbound::Message(Bytes::from(vec![7u8; 300])),
                ],
                "cut at {cut}"
            );
            assert!(f.is_unallocated());
        }
    }

    #[test]
    fn limits_and_bad_headers() {
        let big = frame(MESSAGE, &[0u8; 600]);
        // Refused on the header alone, before the payload arrives.
        assert_eq!(
            decode(&mut Decoder::new(RawSocketFraming::new(512)), &big[..4]),
            Err(FramingError::TooLarge)
        );
        assert!(matches!(
            decode(
                &mut Decoder::new(RawSocketFraming::new(512)),
                &[0x10, 0, 0, 1, b'x']
            ),
            Err(FramingError::Protocol(_))
        ));
        assert!(matches!(
            decode(
                &mut Decoder::new(RawSocketFraming::new(512)),
                &[0x03, 0, 0, 0]
            ),
            Err(FramingError::Protocol(_))
        ));
        assert!(matches!(
            decode(
                &mut Decoder::new(RawSocketFraming::new(MAX_FRAME)),
                &[0x08, 0, 0, 1]
            ),
            Err(FramingError::Protocol(_))
        ));
        // A truncated frame is simply kept until more arrives.
        let mut f = Decoder::new(RawSocketFraming::new(512));
        assert_eq!(decode(&mut f, &[0, 0, 0, 5, b'a', b'b']), Ok(vec![]));
    }

    #[test]
    fn the_25th_length_bit() {
        let f = RawSocketFraming::new(MAX_FRAME);
        assert_eq!(
            f.header(FrameKind::Message, MAX_FRAME).0[..4],
            [0x08, 0, 0, 0]
        );
        assert_eq!(f.header(FrameKind::Pong, 0x01_02_03).0[..4], [2, 1, 2, 3]);
        assert_eq!(
            parse_header(&[0x08, 0, 0, 0]).unwrap().unwrap(),
            (0, MAX_FRAME)
        );
    }

    #[test]
    fn handshake_checks() {
        let limits = Limits {
            serializers: vec![Serializer::Json, Serializer::MsgPack],
            max_message: 1 << 20,
            min_peer_max: 1 << 12,
        };
        let ok = check([MAGIC, 0xF2, 0, 0], &limits, false).unwrap();
        assert_eq!(ok.serializer, Serializer::MsgPack);
        assert_eq!((ok.peer_max, ok.own_max), (1 << 24, 1 << 20));
        assert_eq!(exponent_for(1 << 20), 11);
        assert_eq!(exponent_for(1000), 0);
        assert_eq!(exponent_for(usize::MAX), 15);
        let err = |hs, over| check(hs, &limits, over).unwrap_err();
        assert_eq!(
            err([MAGIC, 0xF3, 0, 0], false),
            HandshakeError::SerializerUnsupported
        );
        assert_eq!(
            err([MAGIC, 0xF0, 0, 0], false),
            HandshakeError::SerializerUnsupported
        );
        // 3 is CBOR, when the transport accepts it; 4 and up are unknown.
        let with_cbor = Limits {
            serializers: vec![Serializer::Cbor],
            ..limits
        };
        let ok = check([MAGIC, 0xF3, 0, 0], &with_cbor, false).unwrap();
        assert_eq!(ok.serializer, Serializer::Cbor);
        for unknown in [0xF4, 0xFF] {
            assert_eq!(
                check([MAGIC, unknown, 0, 0], &with_cbor, false).unwrap_err(),
                HandshakeError::SerializerUnsupported
            );
        }
        assert_eq!(
            err([MAGIC, 0x01, 0, 0], false),
            HandshakeError::MaxLengthUnacceptable
        );
        assert_eq!(
            err([MAGIC, 0xF1, 0, 1], false),
            HandshakeError::ReservedBits
        );
        assert_eq!(
            err([MAGIC, 0xF1, 0, 0], true),
            HandshakeError::ConnectionLimit
        );
        assert_eq!(HandshakeError::ConnectionLimit.reply(), [MAGIC, 0x40, 0, 0]);
    }
}
