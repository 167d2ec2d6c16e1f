//! How a session's connection frames WAMP messages on the wire: known to whoever queues
//! for the session, so frames can be built ahead of the connection (a fan-out batch is
//! framed once and written as it is by every subscriber of the same serializer and wire).
//!
//! The one place the data-frame headers are formatted: the WebSocket and RawSocket framings
//! use these functions too, so a frame built ahead is byte for byte what the connection
//! would have written.

use bytes::{Buf, Bytes};
use wamp_proto::{EncodeError, Message, Serializer};

/// The WebSocket text opcode.
pub(crate) const WS_TEXT: u8 = 0x1;
/// The WebSocket binary opcode.
pub(crate) const WS_BINARY: u8 = 0x2;

/// The longest data-frame header (a WebSocket frame with a 64-bit length).
const MAX_HEADER: usize = 10;

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
            Wire::WebSocket => ws_header(ws_opcode(ser), len),
            Wire::RawSocket => raw_header(RAW_MESSAGE, len),
            Wire::Unframed => ([0; 10], 0),
        }
    }

    /// Encodes `msg` with `ser` as one whole frame, its header in front of the payload in one
    /// buffer (one write, no iovec of its own for the header): the frame and the payload's
    /// length. Unframed, it is the payload alone.
    pub(crate) fn encode(
        self,
        ser: Serializer,
        msg: &Message,
    ) -> Result<(Bytes, usize), EncodeError> {
        let mut buf = ser.encode_after(MAX_HEADER, msg)?;
        let len = buf.len() - MAX_HEADER;
        let mut head = [0u8; MAX_HEADER];
        let start = match self {
            Wire::WebSocket => put_ws_header(&mut head, ws_opcode(ser), len),
            Wire::RawSocket => put_raw_header(&mut head, RAW_MESSAGE, len),
            Wire::Unframed => MAX_HEADER,
        };
        buf[..MAX_HEADER].copy_from_slice(&head);
        let mut frame = Bytes::from(buf);
        frame.advance(start);
        Ok((frame, len))
    }
}

/// The WebSocket opcode of messages encoded with `ser`.
fn ws_opcode(ser: Serializer) -> u8 {
    if ser == Serializer::Json {
        WS_TEXT
    } else {
        WS_BINARY
    }
}

/// The header of an unmasked WebSocket frame (FIN set) with a `len`-byte payload.
pub(crate) fn ws_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    left_aligned(|h| put_ws_header(h, opcode, len))
}

/// The header of a RawSocket frame of type `kind` with a `len`-byte payload (at most
/// [`RAW_MAX_FRAME`]).
pub(crate) fn raw_header(kind: u8, len: usize) -> ([u8; 10], usize) {
    left_aligned(|h| put_raw_header(h, kind, len))
}

/// A header that `put` writes at the end of 10 bytes, moved to their start: bytes and count.
fn left_aligned(put: impl FnOnce(&mut [u8; MAX_HEADER]) -> usize) -> ([u8; 10], usize) {
    let mut h = [0u8; MAX_HEADER];
    let start = put(&mut h);
    h.copy_within(start.., 0);
    (h, MAX_HEADER - start)
}

/// Writes a WebSocket header at the end of `h`: where it starts.
fn put_ws_header(h: &mut [u8; MAX_HEADER], opcode: u8, len: usize) -> usize {
    let first = 0x80 | opcode;
    if len < 126 {
        h[8] = first;
        h[9] = len as u8;
        8
    } else if let Ok(short) = u16::try_from(len) {
        h[6] = first;
        h[7] = 126;
        h[8..].copy_from_slice(&short.to_be_bytes());
        6
    } else {
        h[0] = first;
        h[1] = 127;
        h[2..].copy_from_slice(&(len as u64).to_be_bytes());
        0
    }
}

/// Writes a RawSocket header at the end of `h`: where it starts.
fn put_raw_header(h: &mut [u8; MAX_HEADER], kind: u8, len: usize) -> usize {
    if len == RAW_MAX_FRAME {
        h[6..].copy_from_slice(&[kind | 0x08, 0, 0, 0]);
    } else {
        h[6..].copy_from_slice(&[kind, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    }
    6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let (h, n) = ws_header(WS_TEXT, 5);
        assert_eq!(&h[..n], &[0x81, 5]);
        let (h, n) = ws_header(WS_BINARY, 300);
        assert_eq!(&h[..n], &[0x82, 126, 1, 44]);
        let (h, n) = ws_header(WS_BINARY, 70_000);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let (h, n) = raw_header(RAW_MESSAGE, 70_000);
        assert_eq!(&h[..n], &[0, 1, 0x11, 0x70]);
        let (h, n) = raw_header(RAW_MESSAGE, RAW_MAX_FRAME);
        assert_eq!(&h[..n], &[0x08, 0, 0, 0]);
        let (h, n) = Wire::WebSocket.message_header(Serializer::Json, 3);
        assert_eq!(&h[..n], &[0x81, 3]);
        let (h, n) = Wire::WebSocket.message_header(Serializer::MsgPack, 3);
        assert_eq!(&h[..n], &[0x82, 3]);
        assert_eq!(Wire::Unframed.message_header(Serializer::Json, 3).1, 0);
    }

    #[test]
    fn a_frame_encoded_whole_is_header_then_message() {
        let msg: Message = wamp_proto::message::Goodbye {
            details: wamp_proto::Dict::new(),
            reason: wamp_proto::Uri::new("wamp.close.normal"),
        }
        .into();
        for ser in Serializer::ALL {
            let encoded = ser.encode(&msg).unwrap();
            let body = encoded.as_bytes();
            for wire in Wire::ALL {
                let (frame, len) = wire.encode(ser, &msg).unwrap();
                let (head, n) = wire.message_header(ser, body.len());
                assert_eq!(len, body.len());
                assert_eq!(frame[..n], head[..n], "{wire:?} {ser:?}");
                assert_eq!(frame[n..], body[..], "{wire:?} {ser:?}");
            }
        }
    }
}
