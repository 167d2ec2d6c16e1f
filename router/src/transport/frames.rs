//! WebSocket framing (RFC 6455) for the server side, after the handshake.
//!
//! [`Decoder`] turns bytes read from a client into messages and control events: it unmasks,
//! reassembles fragmented messages, enforces the size limit and validates text as UTF-8.
//! Only an incomplete frame (or fragmented message) is kept between reads, so an idle
//! connection holds no buffer. [`header`] formats the header of an unmasked server frame.

use std::io::Cursor;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Bytes;

/// The text opcode.
pub(crate) const TEXT: u8 = 0x1;
/// The binary opcode.
pub(crate) const BINARY: u8 = 0x2;
/// The close opcode.
pub(crate) const CLOSE: u8 = 0x8;
/// The pong opcode.
pub(crate) const PONG: u8 = 0xA;

/// The largest payload of a control frame.
const MAX_CONTROL: u64 = 125;

/// What a client sent, frame by frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A complete text or binary message.
    Message(Bytes),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Bytes),
    /// The client started the closing handshake.
    Close,
}

/// Why the connection must be closed; each maps to a close code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A message longer than the configured maximum (1009).
    TooLarge,
    /// A text message that is not UTF-8 (1007).
    InvalidUtf8,
    /// Anything else RFC 6455 forbids (1002).
    Protocol(&'static str),
}

impl FrameError {
    /// The close code to send.
    pub(crate) fn close_code(&self) -> CloseCode {
        match self {
            FrameError::TooLarge => CloseCode::Size,
            FrameError::InvalidUtf8 => CloseCode::Invalid,
            FrameError::Protocol(_) => CloseCode::Protocol,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge => f.write_str("message too large"),
            FrameError::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            FrameError::Protocol(why) => f.write_str(why),
        }
    }
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Fragments {
    text: bool,
    data: Vec<u8>,
}

/// Incremental decoder of client frames.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_message: usize,
    /// The bytes of an incomplete frame; empty (unallocated) between frames.
    partial: Vec<u8>,
    fragments: Option<Box<Fragments>>,
}

impl Decoder {
    pub(crate) fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            partial: Vec::new(),
            fragments: None,
        }
    }

    /// Decodes `data` (after any incomplete frame from earlier reads), handing each event to
    /// `on` until it returns false. Returns whether `on` wants more.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        mut on: impl FnMut(Inbound) -> bool,
    ) -> Result<bool, FrameError> {
        let mut partial = std::mem::take(&mut self.partial);
        let buffered = !partial.is_empty();
        if buffered {
            partial.extend_from_slice(data);
        }
        let buf: &[u8] = if buffered { &partial } else { data };
        let mut pos = 0;
        let mut more = true;
        let mut wanted = 0;
        while more {
            let rest = &buf[pos..];
            let mut cursor = Cursor::new(rest);
            let parsed = FrameHeader::parse(&mut cursor)
                .map_err(|_| FrameError::Protocol("invalid frame header"))?;
            let Some((header, len)) = parsed else {
                break;
            };
            self.check(&header, len)?;
            // `check` bounded `len` by the message limit, which fits in memory.
            let start = cursor.position() as usize;
            let end = start + len as usize;
            if rest.len() < end {
                wanted = end;
                break;
            }
            let payload = unmask(&rest[start..end], header.mask);
            pos += end;
            if let Some(event) = self.on_frame(&header, payload)? {
                more = on(event);
            }
        }
        if !more {
            return Ok(false);
        }
        if buffered {
            partial.drain(..pos);
            if !partial.is_empty() {
                partial.reserve(wanted.saturating_sub(partial.len()));
                self.partial = partial;
            }
        } else if pos < data.len() {
            let mut keep = Vec::with_capacity(wanted.max(data.len() - pos));
            keep.extend_from_slice(&data[pos..]);
            self.partial = keep;
        }
        Ok(true)
    }

    /// Rejects what RFC 6455 forbids of a client frame, and messages over the limit.
    fn check(&self, h: &FrameHeader, len: u64) -> Result<(), FrameError> {
        if h.rsv1 || h.rsv2 || h.rsv3 {
            return Err(FrameError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        if h.mask.is_none() {
            return Err(FrameError::Protocol("unmasked frame from a client"));
        }
        match h.opcode {
            OpCode::Control(_) if !h.is_final => {
                Err(FrameError::Protocol("fragmented control frame"))
            }
            OpCode::Control(_) if len > MAX_CONTROL => {
                Err(FrameError::Protocol("control frame too long"))
            }
            OpCode::Control(_) => Ok(()),
            OpCode::Data(_) => {
                let before = self.fragments.as_ref().map_or(0, |f| f.data.len() as u64);
                if before.saturating_add(len) > self.max_message as u64 {
                    Err(FrameError::TooLarge)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn on_frame(
        &mut self,
        h: &FrameHeader,
        payload: Vec<u8>,
    ) -> Result<Option<Inbound>, FrameError> {
        let (text, data) = match h.opcode {
            OpCode::Control(Control::Close) => return Ok(Some(Inbound::Close)),
            OpCode::Control(Control::Ping) => return Ok(Some(Inbound::Ping(payload.into()))),
            OpCode::Control(_) => return Ok(None),
            OpCode::Data(Data::Continue) => {
                let Some(f) = self.fragments.as_mut() else {
                    return Err(FrameError::Protocol("continuation frame without a message"));
                };
                f.data.extend_from_slice(&payload);
                if !h.is_final {
                    return Ok(None);
                }
                let Some(f) = self.fragments.take() else {
                    return Ok(None);
                };
                (f.text, f.data)
            }
            OpCode::Data(d) => {
                if self.fragments.is_some() {
                    return Err(FrameError::Protocol("new message inside a fragmented one"));
                }
                let text = d == Data::Text;
                if !h.is_final {
                    self.fragments = Some(Box::new(Fragments {
                        text,
                        data: payload,
                    }));
                    return Ok(None);
                }
                (text, payload)
            }
        };
        if text && std::str::from_utf8(&data).is_err() {
            return Err(FrameError::InvalidUtf8);
        }
        Ok(Some(Inbound::Message(data.into())))
    }
}

/// Copies a client payload, removing its mask.
fn unmask(src: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let Some(mask) = mask else {
        return src.to_vec();
    };
    let mut out = Vec::with_capacity(src.len());
    let mut chunks = src.chunks_exact(4);
    for c in &mut chunks {
        out.extend_from_slice(&[
            c[0] ^ mask[0],
            c[1] ^ mask[1],
            c[2] ^ mask[2],
            c[3] ^ mask[3],
        ]);
    }
    out.extend(chunks.remainder().iter().zip(mask).map(|(b, m)| b ^ m));
    out
}

/// The header of an unmasked, final server frame: bytes and their count.
pub(crate) fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
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

/// The payload of a close frame: the code, then a UTF-8 reason.
pub(crate) fn close_payload(code: CloseCode, reason: &str) -> Bytes {
    let mut p = Vec::with_capacity(2 + reason.len());
    p.extend_from_slice(&u16::from(code).to_be_bytes());
    p.extend_from_slice(reason.as_bytes());
    p.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn decode(d: &mut Decoder, data: &[u8]) -> Result<Vec<Inbound>, FrameError> {
        let mut out = Vec::new();
        d.feed(data, |e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    fn msg(b: &[u8]) -> Inbound {
        Inbound::Message(Bytes::copy_from_slice(b))
    }

    #[test]
    fn frames_split_at_every_byte_reassemble() {
        let mut wire = frame(true, TEXT, b"hello world");
        wire.extend(frame(true, BINARY, &[7u8; 300]));
        wire.extend(frame(true, 0x9, b"p"));
        for cut in 0..wire.len() {
            let mut d = Decoder::new(1024);
            let mut got = decode(&mut d, &wire[..cut]).unwrap();
            got.extend(decode(&mut d, &wire[cut..]).unwrap());
            assert_eq!(
                got,
                vec![
                    msg(b"hello world"),
                    msg(&[7u8; 300]),
                    Inbound::Ping(Bytes::from_static(b"p"))
                ],
                "cut at {cut}"
            );
            assert!(d.partial.is_empty() && d.partial.capacity() == 0);
        }
    }

    #[test]
    fn fragments_with_interleaved_control_frames() {
        let mut wire = frame(false, TEXT, b"he");
        wire.extend(frame(true, 0x9, b""));
        wire.extend(frame(false, 0x0, b"ll"));
        wire.extend(frame(true, 0x0, b"o"));
        let mut d = Decoder::new(1024);
        assert_eq!(
            decode(&mut d, &wire).unwrap(),
            vec![Inbound::Ping(Bytes::new()), msg(b"hello")]
        );
    }

    #[test]
    fn limits_and_protocol_errors() {
        let mut d = Decoder::new(4);
        assert_eq!(
            decode(&mut d, &frame(true, TEXT, b"12345")),
            Err(FrameError::TooLarge)
        );
        // The limit holds before the payload arrives.
        let big = frame(true, BINARY, &[0; 70_000]);
        assert_eq!(
            decode(&mut Decoder::new(4), &big[..14]),
            Err(FrameError::TooLarge)
        );
        let mut d = Decoder::new(4);
        let mut wire = frame(false, TEXT, b"123");
        wire.extend(frame(true, 0x0, b"45"));
        assert_eq!(decode(&mut d, &wire), Err(FrameError::TooLarge));
        assert_eq!(
            decode(&mut Decoder::new(64), &frame(true, TEXT, &[0xff, 0xfe])),
            Err(FrameError::InvalidUtf8)
        );
        assert!(matches!(
            decode(&mut Decoder::new(64), &frame(true, 0x0, b"x")),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            decode(&mut Decoder::new(64), &frame(false, 0x9, b"x")),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            decode(&mut Decoder::new(64), &[0x81, 0x01, b'x']),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            decode(&mut Decoder::new(64), &[0x83, 0x80, 0, 0, 0, 0]),
            Err(FrameError::Protocol(_))
        ));
        let mut rsv = frame(true, TEXT, b"x");
        rsv[0] |= 0x40;
        assert!(matches!(
            decode(&mut Decoder::new(64), &rsv),
            Err(FrameError::Protocol(_))
        ));
        let mut wire = frame(false, TEXT, b"a");
        wire.extend(frame(true, TEXT, b"b"));
        assert!(matches!(
            decode(&mut Decoder::new(64), &wire),
            Err(FrameError::Protocol(_))
        ));
    }

    #[test]
    fn close_and_stop() {
        let mut wire = frame(true, TEXT, b"a");
        wire.extend(frame(true, CLOSE, &[0x03, 0xe8]));
        wire.extend(frame(true, TEXT, b"b"));
        let mut d = Decoder::new(64);
        let mut seen = Vec::new();
        let more = d
            .feed(&wire, |e| {
                let stop = e == Inbound::Close;
                seen.push(e);
                !stop
            })
            .unwrap();
        assert!(!more);
        assert_eq!(seen, vec![msg(b"a"), Inbound::Close]);
    }

    #[test]
    fn headers() {
        assert_eq!(header(TEXT, 5), ([0x81, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2));
        let (h, n) = header(BINARY, 300);
        assert_eq!(&h[..n], &[0x82, 126, 1, 44]);
        let (h, n) = header(BINARY, 70_000);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }
}
