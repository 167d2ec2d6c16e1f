//! Codec errors and the well-known WAMP error and close URIs.

use thiserror::Error;

use crate::Serializer;

/// Why bytes could not be decoded into a [`crate::Message`].
///
/// A protocol violation when it comes from a peer: the router answers ABORT
/// `wamp.error.protocol_violation` with this error's text in `Details.message`. The text
/// names the serializer, the message and field where decoding stopped and what WAMP expects
/// there: `invalid wamp.2.msgpack message: CALL.Options: expected a dict, got a
/// MessagePack ext type`.
#[derive(Debug, Error)]
#[error("invalid {} message: {reason}", .serializer.subprotocol())]
pub struct DecodeError {
    serializer: Serializer,
    reason: String,
}

impl DecodeError {
    /// An error in `serializer`'s input at `place` (`CALL.Options`, or empty), the decoder's
    /// own text `raw` reworded in WAMP's terms.
    pub(crate) fn new(serializer: Serializer, place: &str, raw: &str) -> DecodeError {
        let why = crate::wording::reword(serializer, raw);
        let reason = if place.is_empty() {
            why
        } else {
            format!("{place}: {why}")
        };
        DecodeError {
            serializer,
            reason: crate::wording::shorten(reason),
        }
    }

    /// The serializer whose input this was.
    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// What was wrong, without the serializer's name (`CALL.Options: expected a dict, ...`).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// JSON encoding failed (e.g. a non-finite float).
    #[error("cannot encode as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// MessagePack encoding failed.
    #[error("cannot encode as MessagePack: {0}")]
    MsgPack(#[from] rmp_serde::encode::Error),
    /// CBOR encoding failed.
    #[error("cannot encode as CBOR: {0}")]
    Cbor(#[from] minicbor_serde::error::EncodeError<std::convert::Infallible>),
}

/// Well-known error URIs (`ERROR.Error`, `ABORT.Reason`).
pub mod uris {
    /// A topic, procedure or realm is malformed, or uses a reserved prefix.
    pub const INVALID_URI: &str = "wamp.error.invalid_uri";
    /// No registration matches a CALL.
    pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
    /// A REGISTER targets a procedure that already has a callee.
    pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
    /// An UNREGISTER names an unknown registration.
    pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
    /// An UNSUBSCRIBE names an unknown subscription.
    pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
    /// Payload or option validation failed.
    pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
    /// The call was canceled, or its callee went away.
    pub const CANCELED: &str = "wamp.error.canceled";
    /// A message exceeds the transport's size limit.
    pub const PAYLOAD_SIZE_EXCEEDED: &str = "wamp.error.payload_size_exceeded";
    /// The peer broke the protocol; the session is closed.
    pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
    /// Authorization denied the action.
    pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
    /// The realm does not exist.
    pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
    /// The role does not exist on the realm.
    pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";
    /// No user with that authid (or public key) can use the offered methods.
    pub const NO_SUCH_PRINCIPAL: &str = "wamp.error.no_such_principal";
    /// None of the offered authentication methods is allowed (the name autobahn and
    /// Crossbar use; the spec's `no_matching_auth_method`).
    pub const NO_AUTH_METHOD: &str = "wamp.error.no_auth_method";
    /// The credentials were wrong.
    pub const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";
    /// The call timed out.
    pub const TIMEOUT: &str = "wamp.error.timeout";
    /// The router refuses an option.
    pub const OPTION_NOT_ALLOWED: &str = "wamp.error.option_not_allowed";
    /// A feature needed by the request is not supported.
    pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
    /// A generic application failure (client-side fallback).
    pub const RUNTIME_ERROR: &str = "wamp.error.runtime_error";

    /// GOODBYE reason: the router is shutting down.
    pub const CLOSE_SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
    /// GOODBYE reason: the realm is closing.
    pub const CLOSE_REALM: &str = "wamp.close.close_realm";
    /// GOODBYE reply reason.
    pub const CLOSE_GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
    /// GOODBYE reason: the session was killed.
    pub const CLOSE_KILLED: &str = "wamp.close.killed";
    /// GOODBYE reason: a normal close (autobahn's default).
    pub const CLOSE_NORMAL: &str = "wamp.close.normal";
}
