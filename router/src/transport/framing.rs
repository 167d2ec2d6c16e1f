//! What every framing (WebSocket, RawSocket) gives the connection driver: inbound events
//! decoded from bytes, frame headers for what it writes, and how it closes.

use bytes::Bytes;

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

    /// Decodes `data` (after any incomplete frame from earlier reads), handing each event to
    /// `on` until it returns false. Returns whether `on` wants more.
    fn feed(&mut self, data: &[u8], on: impl FnMut(Inbound) -> bool) -> Result<bool, FramingError>;

    /// The header of a frame of `kind` with a `len`-byte payload: bytes and their count.
    fn header(&self, kind: FrameKind, len: usize) -> ([u8; 10], usize);

    /// The payload of the closing frame for `reason`, or `None` when the framing has no
    /// closing frame (RawSocket just closes the stream).
    fn close_payload(&self, reason: CloseReason) -> Option<Bytes>;
}

/// What a frame parser found at the start of the bytes it was given.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Not a whole frame yet: at least `wanted` bytes (from the frame's start) are needed.
    Incomplete { wanted: usize },
    /// A frame of `used` bytes was handled; `more` is false to stop.
    Frame { used: usize, more: bool },
}

/// The bytes of an incomplete frame, kept between reads; empty (unallocated) between frames,
/// so an idle connection holds no buffer.
#[derive(Debug, Default)]
pub(crate) struct Partial(Vec<u8>);

impl Partial {
    /// Whether no incomplete frame is kept.
    #[cfg(test)]
    pub(crate) fn is_unallocated(&self) -> bool {
        self.0.is_empty() && self.0.capacity() == 0
    }

    /// Runs `parse` over the kept bytes followed by `data`, frame after frame, and keeps
    /// whatever incomplete frame is left. Returns whether the parser wants more.
    pub(crate) fn feed<E>(
        &mut self,
        data: &[u8],
        mut parse: impl FnMut(&[u8]) -> Result<Parsed, E>,
    ) -> Result<bool, E> {
        let mut partial = std::mem::take(&mut self.0);
        let buffered = !partial.is_empty();
        if buffered {
            partial.extend_from_slice(data);
        }
        let buf: &[u8] = if buffered { &partial } else { data };
        let mut pos = 0;
        let mut wanted = 0;
        while pos < buf.len() {
            match parse(&buf[pos..])? {
                Parsed::Incomplete { wanted: w } => {
                    wanted = w;
                    break;
                }
                Parsed::Frame { used, more } => {
                    pos += used;
                    if !more {
                        return Ok(false);
                    }
                }
            }
        }
        if buffered {
            partial.drain(..pos);
            if !partial.is_empty() {
                partial.reserve(wanted.saturating_sub(partial.len()));
                self.0 = partial;
            }
        } else if pos < data.len() {
            let mut keep = Vec::with_capacity(wanted.max(data.len() - pos));
            keep.extend_from_slice(&data[pos..]);
            self.0 = keep;
        }
        Ok(true)
    }
}
