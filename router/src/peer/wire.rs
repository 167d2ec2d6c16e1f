//! How a session's connection frames WAMP messages on the wire: known to whoever queues
//! for the session, so frames can be built ahead of the connection (a fan-out batch is
//! framed once and written as it is by every subscriber of the same serializer and wire).
//!
//! The one place the data-frame headers are formatted: the WebSocket and RawSocket framings
//! use these functions too, so a frame built ahead is byte for byte what the connection
//! would have written.

use wamp_proto::Serializer;

/// The WebSocket text opcode.
pub(crate) const WS_TEXT: u8 = 0x1;
/// The WebSocket binary opcode.
pub(crate) const WS_BINARY: u8 = 0x2;

/// RawSocket frame types.
pub(crate) const RAW_MESSAGE: u8 = 0;
/// The longest RawSocket frame (2^24 bytes), written with the 25th length bit.
pub(crate) const RAW_MAX_FRAME: usize = 1 << 24;

/// The framing of a session's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// WebSocket server frames (unmasked); text for JSON, binary otherwise.
    WebSocket,
    /// RawSocket frames (also what the long-poll transport's pipe carries).
    RawSocket,
    /// Not framed (an in-process session): it takes frame payloads only.
    Unframed,
}

impl Wire {
    /// Kinds of wire (for tables indexed by [`Wire::index`]).
    pub(crate) const COUNT: usize = 3;
    /// Every kind, in index order.
    pub(crate) const ALL: [Wire; Wire::COUNT] = [Wire::WebSocket, Wire::RawSocket, Wire::Unframed];

    /// A dense index in `0..COUNT`.
    pub(crate) fn index(self) -> usize {
        match self {
            Wire::WebSocket => 0,
            Wire::RawSocket => 1,
            Wire::Unframed => 2,
        }
    }

    /// The header of a WAMP message of `len` bytes encoded with `ser`: bytes and count.
    pub(crate) fn message_header(self, ser: Serializer, len: usize) -> ([u8; 10], usize) {
        match self {
            Wire::WebSocket => {
                let opcode = if ser == Serializer::Json {
                    WS_TEXT
                } else {
                    WS_BINARY
                };
                ws_header(opcode, len)
            }
            Wire::RawSocket => raw_header(RAW_MESSAGE, len),
            Wire::Unframed => ([0; 10], 0),
        }
    }
}

/// The header of an unmasked WebSocket frame (FIN set) with a `len`-byte payload.
pub(crate) fn ws_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// The header of a RawSocket frame of type `kind` with a `len`-byte payload (at most
/// [`RAW_MAX_FRAME`]).
pub(crate) fn raw_header(kind: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    if len == RAW_MAX_FRAME {
        h[0] = kind | 0x08;
    } else {
        h[0] = kind;
        h[1] = (len >> 16) as u8;
        h[2] = (len >> 8) as u8;
        h[3] = len as u8;
    }
    (h, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            ws_header(WS_TEXT, 5),
            ([0x81, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        let (h, n) = ws_header(WS_BINARY, 300);
        assert_eq!(&h[..n], &[0x82, 126, 1, 44]);
        let (h, n) = ws_header(WS_BINARY, 70_000);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let (h, n) = raw_header(RAW_MESSAGE, 70_000);
        assert_eq!(&h[..n], &[0, 1, 0x11, 0x70]);
        let (h, n) = Wire::WebSocket.message_header(Serializer::Json, 3);
        assert_eq!(&h[..n], &[0x81, 3]);
        let (h, n) = Wire::WebSocket.message_header(Serializer::MsgPack, 3);
        assert_eq!(&h[..n], &[0x82, 3]);
        assert_eq!(Wire::Unframed.message_header(Serializer::Json, 3).1, 0);
    }
}
