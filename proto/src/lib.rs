//! The WAMP v2 wire protocol, sans I/O.
//!
//! # Layout
//! - [`message`]: every message type with its code and field order ([`Message`]).
//! - [`value`]: the payload model shared by all serializers ([`Value`], [`Dict`]).
//! - [`codec`]: the `wamp.2.json`, `wamp.2.msgpack` and `wamp.2.cbor` serializers ([`Serializer`]).
//! - [`uri`] and [`id`]: validated protocol nouns ([`Uri`], [`Id`]) and ID generators.
//! - [`error`]: codec errors and the well-known error URIs ([`uris`]).
//! - [`raw`]: payloads kept in their wire encoding, so a router forwards them unchanged.
//! - [`options`]: typed readers for the Options/Details keys the router acts on.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod error;
mod fields;
pub mod id;
pub mod message;
pub mod options;
pub mod raw;
pub mod uri;
pub mod value;
mod wording;

pub use codec::{Encoded, Serializer};
pub use error::{uris, DecodeError, EncodeError};
pub use id::{Id, SequentialIds, MAX_ID};
pub use message::{Message, Payload};
pub use raw::RawPayload;
pub use uri::{MatchPolicy, Uri, UriCheck};
pub use value::{from_value, to_value, Dict, Value};
