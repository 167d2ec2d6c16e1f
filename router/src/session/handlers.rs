//! Helpers shared by the message handlers.

use wamp_proto::message::Error;
use wamp_proto::options::str_opt;
use wamp_proto::{Dict, Id, MatchPolicy, Message, Payload, Uri};

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

/// Reads the `match` option; only exact matching exists so far.
pub(super) fn exact_match_only(options: &Dict, what: &str) -> Result<(), String> {
    match str_opt(options, "match") {
        Ok(None | Some("exact")) => Ok(()),
        Ok(Some(m)) if MatchPolicy::parse(m).is_some() => Err(format!(
            "{m}-based {what} is not supported by this router yet"
        )),
        Ok(Some(m)) => Err(format!("unknown match policy `{m}`")),
        Err(_) => Err("option `match` must be a string".into()),
    }
}
