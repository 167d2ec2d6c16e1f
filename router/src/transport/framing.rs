//! What every framing (WebSocket, RawSocket) gives the connection driver: inbound events
//! decoded from bytes, frame headers for what it writes, and how it closes.

use bytes::{Bytes, BytesMut};

use crate::close::CloseReason;

/// What a peer sent, frame by frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A complete WAMP message.
    Message(Bytes),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Bytes),
    /// The peer started the closing handshake (WebSocket close frame).
    Close,
}

/// The kinds of frame the driver writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// A WAMP message.
    Message,
    /// The answer to a ping.
    Pong,
    /// A keep-alive ping.
    Ping,
    /// The closing frame (WebSocket only).
    Close,
}

/// Why a connection must be closed because of what the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FramingError {
    /// A message longer than the limit.
    TooLarge,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// Anything else the framing forbids.
    Protocol(&'static str),
}

impl FramingError {
    /// The WAMP-level closing reason for this error.
    pub(crate) fn close_reason(&self) -> CloseReason {
        match self {
            FramingError::TooLarge => CloseReason::TooLarge,
            FramingError::InvalidUtf8 => CloseReason::InvalidPayload,
            FramingError::Protocol(_) => CloseReason::FramingError,
        }
    }
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramingError::TooLarge => f.write_str("message too large"),
            FramingError::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            FramingError::Protocol(why) => f.write_str(why),
        }
    }
}

/// A framing: turns bytes into [`Inbound`] events and formats the frames the driver writes.
pub(crate) trait Framing: Send + 'static {
    /// The transport's name in logs (`websocket`, `rawsocket`).
    const NAME: &'static str;

    /// Whether every ping gets its own pong (RawSocket), or only the latest (WebSocket).
    const PONG_EACH_PING: bool;

    /// Decodes the frame at the start of `buf`: a complete one is taken off `buf` (its
    /// payload split off, unmasked in place, not copied) and its event, if any, handed to `on`.
    fn frame(
        &mut self,
        buf: &mut BytesMut,
        on: &mut impl FnMut(Inbound) -> bool,
    ) -> Result<Parsed, FramingError>;

    /// The header of a frame of `kind` with a `len`-byte payload: bytes and their count.
    fn header(&self, kind: FrameKind, len: usize) -> ([u8; 10], usize);

    /// The payload of the closing frame for `reason`, or `None` when the framing has no
    /// closing frame (RawSocket just closes the stream).
    fn close_payload(&self, reason: CloseReason) -> Option<Bytes>;
}

/// What a frame parser found at the start of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a whole frame yet: `wanted` bytes (from the frame's start) are needed in all, 0
    /// while its header is incomplete. Nothing was taken off the buffer.
    Incomplete { wanted: usize },
    /// A frame was taken off the buffer; `more` is false to stop.
    Frame { more: bool },
}
