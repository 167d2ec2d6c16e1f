//! Helpers shared by the message handlers.

use wamp_proto::message::Error;
use wamp_proto::{Dict, Id, Message, Payload, Uri};

/// An ERROR reply with a human-readable text in `Arguments[0]`.
pub(super) fn error(request_type: u64, request: Id, uri: &str, text: &str) -> Message {
    Error {
        request_type,
        request,
        details: Dict::new(),
        error: Uri::new(uri),
        payload: Payload::args(vec![text.into()]),
    }
    .into()
}
