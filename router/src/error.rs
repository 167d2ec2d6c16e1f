//! Routing refusals: one type for every "no" the router answers (an error URI and a
//! human-readable text), and the one place where a refusal becomes an ERROR or an ABORT.

use wamp_proto::message::{Abort, Error};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Uri};

/// A refusal: the error URI the peer gets and a text saying why, in the peer's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The error or close URI, e.g. `wamp.error.no_such_procedure`.
    pub(crate) uri: &'static str,
    /// What a user reads: `Arguments[0]` of an ERROR, `Details.message` of an ABORT.
    pub(crate) message: String,
}

impl Refusal {
    /// A refusal with this URI and text.
    pub(crate) fn new(uri: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            uri,
            message: message.into(),
        }
    }

    /// A protocol violation: the session is aborted and the transport closed.
    pub(crate) fn violation(message: impl Into<String>) -> Refusal {
        Refusal::new(uris::PROTOCOL_VIOLATION, message)
    }

    /// Whether this refusal ends the session (a protocol violation) rather than one request.
    pub(crate) fn is_violation(&self) -> bool {
        self.uri == uris::PROTOCOL_VIOLATION
    }

    /// The ERROR answering request `request` of type `request_type`, the text in
    /// `Arguments[0]`.
    pub(crate) fn to_error(&self, request_type: u64, request: Id) -> Message {
        Error {
            request_type,
            request,
            details: Dict::new(),
            error: Uri::new(self.uri),
            payload: Payload::args(vec![self.message.as_str().into()]),
        }
        .into()
    }

    /// The ABORT ending a session, the text in `Details.message` (always 3 elements, as
    /// autobahn parses).
    pub(crate) fn to_abort(&self) -> Message {
        Abort {
            details: dict([("message", self.message.as_str().into())]),
            reason: Uri::new(self.uri),
            payload: Payload::default(),
        }
        .into()
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.uri, self.message)
    }
}

/// `ERROR` for `request` with `uri` and `text` (shorthand for [`Refusal::to_error`]).
pub(crate) fn error(request_type: u64, request: Id, uri: &'static str, text: &str) -> Message {
    Refusal::new(uri, text).to_error(request_type, request)
}
