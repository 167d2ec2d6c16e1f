//! Why a connection closes, in WAMP terms: the session core decides it, and each framing maps
//! it to its own close (a WebSocket close code; RawSocket simply closes the stream).

/// Why a connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// A normal end: after GOODBYE or ABORT, at shutdown, or a HELLO that never came.
    Normal,
    /// After the ABORT answering a protocol violation.
    ProtocolViolation,
    /// The session fell too far behind reading its messages.
    SlowConsumer,
    /// A message over the transport's size limit.
    TooLarge,
    /// A text message that is not UTF-8.
    InvalidPayload,
    /// The peer broke the framing's rules.
    FramingError,
}
