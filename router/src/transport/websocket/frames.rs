//! WebSocket framing (RFC 6455) for the server side, after the handshake.
//!
//! [`WebSocketFraming`] turns bytes read from a client into messages and control events: it unmasks,
//! reassembles fragmented messages, enforces the size limit and validates text as UTF-8.
//! Only an incomplete frame (or fragmented message) is kept between reads, so an idle
//! connection holds no buffer. Server frame headers come from `peer::wire` ([`header`]).

use std::io::Cursor;

use bytes::{Buf, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use crate::close::CloseReason;
use crate::transport::framing::{FrameKind, Framing, FramingError, Inbound, Parsed};

pub(crate) use crate::peer::wire::{ws_header as header, WS_BINARY as BINARY, WS_TEXT as TEXT};
/// The close opcode.
pub(crate) const CLOSE: u8 = 0x8;
/// The ping opcode.
pub(crate) const PING: u8 = 0x9;
/// The pong opcode.
pub(crate) const PONG: u8 = 0xA;

/// The largest payload of a control frame.
const MAX_CONTROL: u64 = 125;

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Fragments {
    text: bool,
    data: Vec<u8>,
    /// Text: the bytes of `data` known to be whole UTF-8 characters.
    checked: usize,
}

impl Fragments {
    /// Fails a text message as soon as its bytes cannot be UTF-8, whatever follows (RFC 6455
    /// 8.1, as tungstenite and browsers do), not only once its last fragment came.
    fn check_so_far(&mut self) -> Result<(), FramingError> {
        if !self.text {
            return Ok(());
        }
        match std::str::from_utf8(&self.data[self.checked..]) {
            Ok(_) => self.checked = self.data.len(),
            // Only a character cut at the end: the next fragment may complete it.
            Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
            Err(_) => return Err(FramingError::InvalidUtf8),
        }
        Ok(())
    }
}

/// WebSocket framing of the server side: an incremental decoder of client frames, and the
/// headers of unmasked server frames (text for JSON, binary for MessagePack).
#[derive(Debug)]
pub(crate) struct WebSocketFraming {
    max_message: usize,
    /// The opcode of WAMP messages sent.
    opcode: u8,
    fragments: Option<Box<Fragments>>,
}

impl WebSocketFraming {
    /// Framing for messages up to `max_message` bytes, sent as binary frames if `binary`.
    pub(crate) fn new(max_message: usize, binary: bool) -> WebSocketFraming {
        WebSocketFraming {
            max_message,
            opcode: if binary { BINARY } else { TEXT },
            fragments: None,
        }
    }
}

impl Framing for WebSocketFraming {
    const NAME: &'static str = "websocket";
    const PONG_EACH_PING: bool = false;

    fn frame(
        &mut self,
        buf: &mut BytesMut,
        on: &mut impl FnMut(Inbound) -> bool,
    ) -> Result<Parsed, FramingError> {
        let mut cursor = Cursor::new(&buf[..]);
        let parsed = FrameHeader::parse(&mut cursor)
            .map_err(|_| FramingError::Protocol("invalid frame header"))?;
        let Some((header, len)) = parsed else {
            return Ok(Parsed::Incomplete { wanted: 0 });
        };
        self.check(&header, len)?;
        // `check` bounded `len` by the message limit, which fits in memory.
        let start = cursor.position() as usize;
        let end = start + len as usize;
        if buf.len() < end {
            return Ok(Parsed::Incomplete { wanted: end });
        }
        buf.advance(start);
        let mut payload = buf.split_to(len as usize);
        if let Some(mask) = header.mask {
            unmask(&mut payload, mask);
        }
        let more = match self.on_frame(&header, payload)? {
            Some(event) => on(event),
            None => true,
        };
        Ok(Parsed::Frame { more })
    }

    fn header(&self, kind: FrameKind, len: usize) -> ([u8; 10], usize) {
        let opcode = match kind {
            FrameKind::Message => self.opcode,
            FrameKind::Pong => PONG,
            FrameKind::Ping => PING,
            FrameKind::Close => CLOSE,
        };
        header(opcode, len)
    }

    fn close_payload(&self, reason: CloseReason) -> Option<Bytes> {
        let (code, text) = match reason {
            CloseReason::Normal | CloseReason::ProtocolViolation => (CloseCode::Normal, ""),
            CloseReason::SlowConsumer => (CloseCode::Policy, "slow consumer"),
            CloseReason::TooLarge => (CloseCode::Size, ""),
            CloseReason::InvalidPayload => (CloseCode::Invalid, ""),
            CloseReason::FramingError => (CloseCode::Protocol, ""),
        };
        Some(close_payload(code, text))
    }
}

impl WebSocketFraming {
    /// Rejects what RFC 6455 forbids of a client frame, and messages over the limit.
    fn check(&self, h: &FrameHeader, len: u64) -> Result<(), FramingError> {
        if h.rsv1 || h.rsv2 || h.rsv3 {
            return Err(FramingError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        if h.mask.is_none() {
            return Err(FramingError::Protocol("unmasked frame from a client"));
        }
        match h.opcode {
            OpCode::Control(_) if !h.is_final => {
                Err(FramingError::Protocol("fragmented control frame"))
            }
            OpCode::Control(_) if len > MAX_CONTROL => {
                Err(FramingError::Protocol("control frame too long"))
            }
            OpCode::Control(_) => Ok(()),
            OpCode::Data(_) => {
                let before = self.fragments.as_ref().map_or(0, |f| f.data.len() as u64);
                if before.saturating_add(len) > self.max_message as u64 {
                    Err(FramingError::TooLarge)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn on_frame(
        &mut self,
        h: &FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Inbound>, FramingError> {
        let (text, data) = match h.opcode {
            OpCode::Control(Control::Close) => {
                check_close_payload(&payload)?;
                return Ok(Some(Inbound::Close));
            }
            // Copied: a pong may wait long for a full socket, and must not pin the read buffer.
            OpCode::Control(Control::Ping) => {
                return Ok(Some(Inbound::Ping(Bytes::copy_from_slice(&payload))))
            }
            OpCode::Control(_) => return Ok(None),
            OpCode::Data(Data::Continue) => {
                let Some(f) = self.fragments.as_mut() else {
                    return Err(FramingError::Protocol(
                        "continuation frame without a message",
                    ));
                };
                f.data.extend_from_slice(&payload);
                if !h.is_final {
                    f.check_so_far()?;
                    return Ok(None);
                }
                let Some(f) = self.fragments.take() else {
                    return Ok(None);
                };
                if f.text && std::str::from_utf8(&f.data[f.checked..]).is_err() {
                    return Err(FramingError::InvalidUtf8);
                }
                return Ok(Some(Inbound::Message(f.data.into())));
            }
            OpCode::Data(d) => {
                if self.fragments.is_some() {
                    return Err(FramingError::Protocol(
                        "new message inside a fragmented one",
                    ));
                }
                let text = d == Data::Text;
                if !h.is_final {
                    let mut f = Box::new(Fragments {
                        text,
                        data: payload.to_vec(),
                        checked: 0,
                    });
                    f.check_so_far()?;
                    self.fragments = Some(f);
                    return Ok(None);
                }
                (text, payload)
            }
        };
        if text && std::str::from_utf8(&data).is_err() {
            return Err(FramingError::InvalidUtf8);
        }
        Ok(Some(Inbound::Message(data.freeze())))
    }
}

/// A close frame's payload is empty, or a valid close code (RFC 6455 7.4) and UTF-8 text.
fn check_close_payload(p: &[u8]) -> Result<(), FramingError> {
    match p {
        [] => Ok(()),
        [_] => Err(FramingError::Protocol(
            "a close frame with a 1-byte payload",
        )),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(FramingError::Protocol(
                    "a close frame with an invalid close code",
                ));
            }
            std::str::from_utf8(reason)
                .map(drop)
                .map_err(|_| FramingError::Protocol("a close reason that is not UTF-8"))
        }
    }
}

/// Removes a client payload's mask, in place.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    // Sixteen bytes at a time (one vector XOR): the mask repeats every four.
    let mut wide = [0u8; 16];
    for (w, m) in wide.iter_mut().zip(mask.iter().cycle()) {
        *w = *m;
    }
    let mut chunks = payload.chunks_exact_mut(16);
    for chunk in &mut chunks {
        for (b, m) in chunk.iter_mut().zip(wide) {
            *b ^= m;
        }
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(wide) {
        *b ^= m;
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
pub(crate) mod tests {
    use super::*;
    use crate::transport::reader::Decoder;

    #[test]
    fn unmask_matches_the_bytewise_rule_at_every_length() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let src: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(29)).collect();
        for len in 0..src.len() {
            let want: Vec<u8> = src[..len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            let mut got = src[..len].to_vec();
            unmask(&mut got, mask);
            assert_eq!(got, want, "length {len}");
        }
    }

    /// A masked client frame.
    pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
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

    fn decode(
        d: &mut Decoder<WebSocketFraming>,
        data: &[u8],
    ) -> Result<Vec<Inbound>, FramingError> {
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
            let mut d = Decoder::new(WebSocketFraming::new(1024, false));
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
            assert!(d.is_unallocated());
        }
    }

    #[test]
    fn fragments_with_interleaved_control_frames() {
        let mut wire = frame(false, TEXT, b"he");
        wire.extend(frame(true, 0x9, b""));
        wire.extend(frame(false, 0x0, b"ll"));
        wire.extend(frame(true, 0x0, b"o"));
        let mut d = Decoder::new(WebSocketFraming::new(1024, false));
        assert_eq!(
            decode(&mut d, &wire).unwrap(),
            vec![Inbound::Ping(Bytes::new()), msg(b"hello")]
        );
    }

    #[test]
    fn fragmented_text_fails_at_the_first_bytes_that_cannot_be_utf8() {
        // "é" (c3 a9) cut between two fragments is fine.
        let mut wire = frame(false, TEXT, b"caf\xc3");
        wire.extend(frame(true, 0x0, b"\xa9"));
        let mut d = Decoder::new(WebSocketFraming::new(64, false));
        assert_eq!(decode(&mut d, &wire).unwrap(), vec![msg("café".as_bytes())]);
        // A stray continuation byte fails at once: the close frame after it is never read.
        let mut wire = frame(false, TEXT, &[0x80, 0x00]);
        wire.extend(frame(true, CLOSE, b""));
        let mut d = Decoder::new(WebSocketFraming::new(64, false));
        assert_eq!(decode(&mut d, &wire), Err(FramingError::InvalidUtf8));
        let mut wire = frame(false, TEXT, b"ok");
        wire.extend(frame(false, 0x0, &[0xc3, 0x28]));
        let mut d = Decoder::new(WebSocketFraming::new(64, false));
        assert_eq!(decode(&mut d, &wire), Err(FramingError::InvalidUtf8));
    }

    #[test]
    fn limits_and_protocol_errors() {
        let mut d = Decoder::new(WebSocketFraming::new(4, false));
        assert_eq!(
            decode(&mut d, &frame(true, TEXT, b"12345")),
            Err(FramingError::TooLarge)
        );
        // The limit holds before the payload arrives.
        let big = frame(true, BINARY, &[0; 70_000]);
        assert_eq!(
            decode(
                &mut Decoder::new(WebSocketFraming::new(4, false)),
                &big[..14]
            ),
            Err(FramingError::TooLarge)
        );
        let mut d = Decoder::new(WebSocketFraming::new(4, false));
        let mut wire = frame(false, TEXT, b"123");
        wire.extend(frame(true, 0x0, b"45"));
        assert_eq!(decode(&mut d, &wire), Err(FramingError::TooLarge));
        assert_eq!(
            decode(
                &mut Decoder::new(WebSocketFraming::new(64, false)),
                &frame(true, TEXT, &[0xff, 0xfe])
            ),
            Err(FramingError::InvalidUtf8)
        );
        assert!(matches!(
            decode(
                &mut Decoder::new(WebSocketFraming::new(64, false)),
                &frame(true, 0x0, b"x")
            ),
            Err(FramingError::Protocol(_))
        ));
        assert!(matches!(
            decode(
                &mut Decoder::new(WebSocketFraming::new(64, false)),
                &frame(false, 0x9, b"x")
            ),
            Err(FramingError::Protocol(_))
        ));
        assert!(matches!(
            decode(
                &mut Decoder::new(WebSocketFraming::new(64, false)),
                &[0x81, 0x01, b'x']
            ),
            Err(FramingError::Protocol(_))
        ));
        assert!(matches!(
            decode(
                &mut Decoder::new(WebSocketFraming::new(64, false)),
                &[0x83, 0x80, 0, 0, 0, 0]
            ),
            Err(FramingError::Protocol(_))
        ));
        let mut rsv = frame(true, TEXT, b"x");
        rsv[0] |= 0x40;
        assert!(matches!(
            decode(&mut Decoder::new(WebSocketFraming::new(64, false)), &rsv),
            Err(FramingError::Protocol(_))
        ));
        let mut wire = frame(false, TEXT, b"a");
        wire.extend(frame(true, TEXT, b"b"));
        assert!(matches!(
            decode(&mut Decoder::new(WebSocketFraming::new(64, false)), &wire),
            Err(FramingError::Protocol(_))
        ));
    }

    #[test]
    fn close_and_stop() {
        let mut wire = frame(true, TEXT, b"a");
        wire.extend(frame(true, CLOSE, &[0x03, 0xe8]));
        wire.extend(frame(true, TEXT, b"b"));
        let mut d = Decoder::new(WebSocketFraming::new(64, false));
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
    fn close_frames_with_bad_codes_or_payloads_are_protocol_errors() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            let f = frame(true, CLOSE, &code.to_be_bytes());
            assert!(
                matches!(
                    decode(&mut Decoder::new(WebSocketFraming::new(64, false)), &f),
                    Err(FramingError::Protocol(_))
                ),
                "close code {code}"
            );
        }
        let one = frame(true, CLOSE, &[0x03]);
        assert!(decode(&mut Decoder::new(WebSocketFraming::new(64, false)), &one).is_err());
        for code in [1000u16, 1001, 1003, 1007, 1011, 3000, 4999] {
            let f = frame(true, CLOSE, &code.to_be_bytes());
            assert_eq!(
                decode(&mut Decoder::new(WebSocketFraming::new(64, false)), &f),
                Ok(vec![Inbound::Close])
            );
        }
        let bad_text = frame(true, CLOSE, &[0x03, 0xe8, 0xff]);
        assert!(decode(
            &mut Decoder::new(WebSocketFraming::new(64, false)),
            &bad_text
        )
        .is_err());
    }
}
