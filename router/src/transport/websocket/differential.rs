//! Differential property test: our WebSocket framing ([`WebSocketFraming`]) against
//! tungstenite's (server role), on generated client frame sequences (masked or not,
//! fragmented, control frames between fragments, reserved opcodes and RSV bits, bad close
//! payloads, bad UTF-8, extended and oversized lengths) and on arbitrary bytes, ours fed in
//! random chunks. Both must yield the same messages and pings, and fail where the other fails.
//!
//! Errors are compared coarsely (failed or not). Deliberate differences, allowed here:
//! - ours checks a frame on its header (RSV bits, mask, opcode, control length): when the
//!   input ends inside such a frame's payload, ours has failed and tungstenite still waits;
//! - ours checks a fragmented text message's UTF-8 once it is complete, tungstenite fragment
//!   by fragment: tungstenite may fail earlier (fewer events before the failure), or while
//!   ours still waits for the final fragment;
//! - a close frame with an invalid close code: tungstenite returns the close (and answers
//!   1002), ours fails with a protocol error (and the driver answers 1002): both are "failed".
//!
//! Pongs are not compared (ours drops them silently).

use std::io::{Read, Write};

use proptest::prelude::*;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use super::frames::WebSocketFraming;
use crate::transport::framing::Inbound;
use crate::transport::reader::Decoder;

/// The message limit both sides get.
const MAX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Message(Vec<u8>),
    Ping(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The input ended; more may come.
    Waiting,
    /// A close frame was accepted.
    Closed,
    /// The connection must fail.
    Failed { utf8: bool },
}

/// A byte source for tungstenite; what it writes (pongs, close replies) is dropped.
struct Input(std::io::Cursor<Vec<u8>>);

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Input {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tungstenite(bytes: &[u8]) -> (Vec<Event>, End) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX))
        .max_frame_size(Some(MAX));
    let input = Input(std::io::Cursor::new(bytes.to_vec()));
    let mut ws = WebSocket::from_raw_socket(input, Role::Server, Some(config));
    let mut events = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => events.push(Event::Message(t.as_bytes().to_vec())),
            Ok(Message::Binary(b)) => events.push(Event::Message(b.to_vec())),
            Ok(Message::Ping(p)) => events.push(Event::Ping(p.to_vec())),
            Ok(Message::Pong(_) | Message::Frame(_)) => {}
            // tungstenite's stand-in for a close code that is not allowed.
            Ok(Message::Close(Some(f)))
                if f.code == CloseCode::Protocol && f.reason.as_str() == "Protocol violation" =>
            {
                return (events, End::Failed { utf8: false })
            }
            Ok(Message::Close(_)) => return (events, End::Closed),
            Err(
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
                | WsError::ConnectionClosed
                | WsError::AlreadyClosed,
            ) => return (events, End::Waiting),
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return (events, End::Waiting)
            }
            Err(WsError::Utf8(_)) => return (events, End::Failed { utf8: true }),
            Err(_) => return (events, End::Failed { utf8: false }),
        }
    }
}

fn ours(bytes: &[u8], chunks: &[usize]) -> (Vec<Event>, End) {
    let mut framing = Decoder::new(WebSocketFraming::new(MAX, true));
    let mut events = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let fed = framing.feed(chunk, |inbound| match inbound {
            Inbound::Message(m) => {
                events.push(Event::Message(m.to_vec()));
                true
            }
            Inbound::Ping(p) => {
                events.push(Event::Ping(p.to_vec()));
                true
            }
            Inbound::Close => false,
        });
        match fed {
            Ok(true) => {}
            Ok(false) => return (events, End::Closed),
            Err(e) => {
                let utf8 = e == crate::transport::framing::FramingError::InvalidUtf8;
                return (events, End::Failed { utf8 });
            }
        }
    }
    (events, End::Waiting)
}

/// One generated client frame.
#[derive(Debug, Clone)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
    /// Length encoding: 0 shortest, 1 forces 16 bits, 2 forces 64 bits.
    wide: u8,
}

impl Frame {
    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode];
        let m = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        if len < 126 && self.wide == 0 {
            out.push(m | len as u8);
        } else if len <= 0xFFFF && self.wide < 2 {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(m | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match self.mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..40),
        // Valid UTF-8 text (most WAMP JSON).
        6 => "[a-z\\[\\]{}\",0-9é€😀]{0,60}".prop_map(String::into_bytes),
        // Close payloads: valid and invalid codes, a 1-byte payload, a bad reason.
        3 => (prop_oneof![Just(1000u16), Just(1001), Just(1002), Just(1005), Just(1006),
                Just(1015), Just(999), Just(2000), Just(3000), Just(4999), Just(5000), any::<u16>()],
              prop_oneof![Just(b"".to_vec()), Just(b"bye".to_vec()), Just(vec![0xff, 0xfe])])
            .prop_map(|(code, reason)| {
                let mut p = code.to_be_bytes().to_vec();
                p.extend(reason);
                p
            }),
        1 => Just(vec![0x03]),
        // Over the control limit, and over the message limit.
        1 => proptest::collection::vec(any::<u8>(), 120..140),
        1 => proptest::collection::vec(any::<u8>(), MAX - 2..MAX + 2),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let opcode = prop_oneof![
        6 => Just(0x2u8), 6 => Just(0x1), 5 => Just(0x0), 2 => Just(0x9), 2 => Just(0xA),
        1 => Just(0x8), 1 => 0x3u8..=0x7, 1 => 0xBu8..=0xF,
    ];
    let rsv = prop_oneof![12 => Just(0u8), 1 => 1u8..8];
    let mask = prop_oneof![12 => any::<[u8; 4]>().prop_map(Some), 1 => Just(None)];
    let wide = prop_oneof![8 => Just(0u8), 1 => Just(1), 1 => Just(2)];
    (
        prop_oneof![3 => Just(true), 1 => Just(false)],
        rsv,
        opcode,
        mask,
        payload(),
        wide,
    )
        .prop_map(|(fin, rsv, opcode, mask, payload, wide)| Frame {
            fin,
            rsv,
            opcode,
            mask,
            payload,
            wide,
        })
}

/// Whether two runs agree, allowing the documented differences.
fn agree(ours: &(Vec<Event>, End), theirs: &(Vec<Event>, End)) -> bool {
    let prefix = |short: &[Event], long: &[Event]| long.starts_with(short);
    match (ours.1, theirs.1) {
        (a, b) if a == b && ours.0 == theirs.0 => true,
        // Failed on the header, tungstenite still reading the payload.
        (End::Failed { utf8: false }, End::Waiting) => ours.0 == theirs.0,
        // tungstenite checks UTF-8 fragment by fragment.
        (End::Failed { .. } | End::Waiting, End::Failed { utf8: true }) => {
            prefix(&theirs.0, &ours.0)
        }
        (End::Failed { .. }, End::Failed { .. }) => ours.0 == theirs.0,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn frame_sequences_decode_as_tungstenite_decodes_them(
        frames in proptest::collection::vec(frame(), 0..8),
        cut in any::<prop::sample::Index>(),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        truncate in prop_oneof![4 => Just(false), 1 => Just(true)],
    ) {
        let mut bytes: Vec<u8> = frames.iter().flat_map(Frame::bytes).collect();
        if truncate && !bytes.is_empty() {
            bytes.truncate(cut.index(bytes.len()));
        }
        let (a, b) = (ours(&bytes, &chunks), tungstenite(&bytes));
        prop_assert!(agree(&a, &b), "ours {:?}\ntungstenite {:?}\nframes {:?}", a, b, frames);
    }

    #[test]
    fn arbitrary_bytes_decode_as_tungstenite_decodes_them(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let (a, b) = (ours(&bytes, &chunks), tungstenite(&bytes));
        prop_assert!(agree(&a, &b), "ours {:?}\ntungstenite {:?}", a, b);
    }
}
