//! Every WAMP v2 message as a typed value, with its exact code and field order.
//!
//! Serialization is hand-written so that each message is one array on the wire:
//! `[CODE, field, ..., Arguments?, ArgumentsKw?]`.

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fields::{Field, Where};
use crate::raw::RawPayload;
use crate::{Dict, Id, Uri, Value};

type StdResult<T, E> = std::result::Result<T, E>;

/// The error text for `Arguments` that is not a list.
pub(crate) const NOT_A_LIST: &str = "expected a list";
/// The error text for `ArgumentsKw` that is not a dict.
pub(crate) const NOT_A_DICT: &str = "expected a dict";

/// Message type codes.
pub mod code {
    #![allow(missing_docs)]
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
}

/// The optional trailing `Arguments|list, ArgumentsKw|dict` of a message.
///
/// Kept exactly as received: `[]` with kwargs stays `[]`, an absent list stays absent.
///
/// A router decodes with [`crate::Serializer::decode_shared`], which leaves the payload in
/// `raw` (still encoded, `args` and `kwargs` are `None`) so that it can be forwarded without
/// re-encoding; [`Payload::materialize`] decodes it when the values are needed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// Positional arguments.
    pub args: Option<Vec<Value>>,
    /// Keyword arguments.
    pub kwargs: Option<Dict>,
    /// The payload in its wire encoding, not decoded yet.
    pub raw: Option<RawPayload>,
}

impl Payload {
    /// A payload with positional arguments only.
    pub fn args(args: Vec<Value>) -> Payload {
        Payload {
            args: Some(args),
            ..Payload::default()
        }
    }

    /// A payload with the given positional and keyword arguments.
    pub fn new(args: Option<Vec<Value>>, kwargs: Option<Dict>) -> Payload {
        Payload {
            args,
            kwargs,
            raw: None,
        }
    }

    /// True when there is neither args nor kwargs.
    pub fn is_empty(&self) -> bool {
        self.args.is_none() && self.kwargs.is_none() && self.raw.is_none()
    }

    /// A copy whose still-encoded bytes, if any, are in a buffer of their own (see
    /// [`RawPayload::detached`]): for a payload kept after its message was handled.
    pub fn detached(&self) -> Payload {
        Payload {
            args: self.args.clone(),
            kwargs: self.kwargs.clone(),
            raw: self.raw.as_ref().map(RawPayload::detached),
        }
    }

    /// Decodes a still-encoded payload into `args` and `kwargs` (a no-op otherwise).
    pub fn materialize(&mut self) -> StdResult<(), crate::DecodeError> {
        if let Some(raw) = &self.raw {
            let (args, kwargs) = raw.decode()?;
            self.args = Some(args);
            self.kwargs = kwargs;
            self.raw = None;
        }
        Ok(())
    }

    fn wire_len(&self) -> usize {
        if let Some(raw) = &self.raw {
            return raw.wire_len();
        }
        match (&self.args, &self.kwargs) {
            (_, Some(_)) => 2,
            (Some(_), None) => 1,
            (None, None) => 0,
        }
    }

    fn write<S: SerializeSeq>(&self, seq: &mut S, tail: Tail) -> StdResult<(), S::Error> {
        if let Some(raw) = &self.raw {
            if tail == Tail::Spliced {
                return Ok(()); // the codec appends the encoded bytes
            }
            // Another serializer (or a generic serde consumer): transcode.
            let (args, kwargs) = raw.decode().map_err(serde::ser::Error::custom)?;
            seq.serialize_element(&args)?;
            if let Some(kw) = &kwargs {
                seq.serialize_element(kw)?;
            }
            return Ok(());
        }
        match (&self.args, &self.kwargs) {
            (args, Some(kw)) => {
                match args {
                    Some(a) => seq.serialize_element(a)?,
                    None => seq.serialize_element(&[] as &[Value])?,
                }
                seq.serialize_element(kw)
            }
            (Some(a), None) => seq.serialize_element(a),
            (None, None) => Ok(()),
        }
    }

    fn read<'de, A: SeqAccess<'de>>(
        seq: &mut A,
        mode: ReadMode<'_>,
        w: &Where,
    ) -> StdResult<Payload, A::Error> {
        w.set_field("Arguments");
        if let ReadMode::JsonRaw(frame) = mode {
            return Payload::read_json_raw(seq, frame, w);
        }
        // Read a self-describing Value rather than a `Vec<Value>`: rmp-serde hands msgpack
        // `bin` to a sequence visitor as a list of byte-sized integers, which would turn a binary
        // payload (e.g. Payload Passthru Mode, not supported) into `args: [131, 165, ...]`.
        let args = match seq.next_element::<Value>()? {
            None => None,
            Some(Value::List(l)) => Some(l),
            Some(other) => return Err(not_a(NOT_A_LIST, &other)),
        };
        let kwargs = match args {
            Some(_) => optional(seq, w, "ArgumentsKw")?,
            None => None,
        };
        Ok(Payload::new(args, kwargs))
    }

    /// Captures `Arguments` and `ArgumentsKw` as slices of `frame` (JSON only): serde_json
    /// checks the syntax while finding their ends; the shapes are checked here.
    fn read_json_raw<'de, A: SeqAccess<'de>>(
        seq: &mut A,
        frame: &bytes::Bytes,
        w: &Where,
    ) -> StdResult<Payload, A::Error> {
        let Some(args) = seq.next_element::<&'de serde_json::value::RawValue>()? else {
            return Ok(Payload::default());
        };
        if !args.get().starts_with('[') {
            return Err(not_a_json(NOT_A_LIST, args));
        }
        crate::raw::check_json_values(args.get().as_bytes()).map_err(de::Error::custom)?;
        w.set_field("ArgumentsKw");
        let kwargs = seq.next_element::<&'de serde_json::value::RawValue>()?;
        if let Some(k) = kwargs.filter(|k| !k.get().starts_with('{')) {
            return Err(not_a_json(NOT_A_DICT, k));
        }
        if let Some(k) = kwargs {
            crate::raw::check_json_values(k.get().as_bytes()).map_err(de::Error::custom)?;
        }
        let slice = |raw: &serde_json::value::RawValue| {
            let offset = (raw.get().as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
            let end = offset.wrapping_add(raw.get().len());
            if offset > frame.len() || end > frame.len() || end < offset {
                return Err(de::Error::custom("payload outside the frame"));
            }
            Ok(frame.slice(offset..end))
        };
        let args = slice(args)?;
        let kwargs = kwargs.map(slice).transpose()?;
        Ok(Payload {
            raw: Some(RawPayload::new(crate::Serializer::Json, args, kwargs)),
            ..Payload::default()
        })
    }
}

/// `expected a list, got the integer 5`.
fn not_a<E: de::Error>(expected: &str, got: &Value) -> E {
    E::custom(format_args!(
        "{expected}, got {}",
        crate::wording::describe(got)
    ))
}

/// [`not_a`] for a JSON element still in its text form.
fn not_a_json<E: de::Error>(expected: &str, got: &serde_json::value::RawValue) -> E {
    match serde_json::from_str::<Value>(got.get()) {
        Ok(v) => not_a(expected, &v),
        Err(_) => E::custom(expected),
    }
}

/// How a payload is written: inline as values, or left for the codec to splice in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    Inline,
    Spliced,
}

/// How payloads are read: into values, or (JSON) kept as slices of the frame.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadMode<'f> {
    Values,
    JsonRaw(&'f bytes::Bytes),
}

macro_rules! messages {
    ($(
        $(#[$doc:meta])*
        $name:ident = $code:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? } $(+ $tail:ident)?
    ;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $name {
                $($(#[$fdoc])* pub $field: $ty,)*
                $(
                    /// Arguments and keyword arguments.
                    pub $tail: Payload,
                )?
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message { Message::$name(m) }
            }
        )*

        /// Any WAMP message.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Message {
            $($(#[$doc])* $name($name),)*
        }

        impl Message {
            /// The message type code.
            pub fn code(&self) -> u64 {
                match self { $(Message::$name(_) => code::$code,)* }
            }

            /// The message type name, for logs (`"CALL"`).
            pub fn name(&self) -> &'static str {
                match self { $(Message::$name(_) => stringify!($code),)* }
            }
        }

        /// The name of a message code (`"CALL"`), or `None` for an unknown code.
        pub fn code_name(c: u64) -> Option<&'static str> {
            match c { $(code::$code => Some(stringify!($code)),)* _ => None }
        }
    };
}

messages! {
    /// `[1, Realm|uri, Details|dict]`: a client asks to join a realm.
    Hello = HELLO { realm: Uri, details: Dict };
    /// `[2, Session|id, Details|dict]`: the router accepts a session.
    Welcome = WELCOME { session: Id, details: Dict };
    /// `[3, Details|dict, Reason|uri, Arguments?, ArgumentsKw?]`: a session is refused or torn down.
    Abort = ABORT { details: Dict, reason: Uri } + payload;
    /// `[4, AuthMethod|string, Extra|dict]`: the router challenges the client.
    Challenge = CHALLENGE { auth_method: String, extra: Dict };
    /// `[5, Signature|string, Extra|dict]`: the client answers a challenge.
    Authenticate = AUTHENTICATE { signature: String, extra: Dict };
    /// `[6, Details|dict, Reason|uri]`: a session is closed by either side.
    Goodbye = GOODBYE { details: Dict, reason: Uri };
    /// `[8, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments?, ArgumentsKw?]`.
    Error = ERROR {
        /// The code of the request message this error answers.
        request_type: u64,
        request: Id, details: Dict, error: Uri
    } + payload;
    /// `[16, Request|id, Options|dict, Topic|uri, Arguments?, ArgumentsKw?]`.
    Publish = PUBLISH { request: Id, options: Dict, topic: Uri } + payload;
    /// `[17, PUBLISH.Request|id, Publication|id]`.
    Published = PUBLISHED { request: Id, publication: Id };
    /// `[32, Request|id, Options|dict, Topic|uri]`.
    Subscribe = SUBSCRIBE { request: Id, options: Dict, topic: Uri };
    /// `[33, SUBSCRIBE.Request|id, Subscription|id]`.
    Subscribed = SUBSCRIBED { request: Id, subscription: Id };
    /// `[34, Request|id, SUBSCRIBED.Subscription|id, Options|dict?]`.
    Unsubscribe = UNSUBSCRIBE { request: Id, subscription: Id, options: Option<Dict> };
    /// `[35, UNSUBSCRIBE.Request|id]`, or the revocation form `[35, 0, Details|dict]`.
    Unsubscribed = UNSUBSCRIBED {
        /// The request id, 0 in the revocation form.
        request: u64,
        details: Option<Dict>
    };
    /// `[36, Subscription|id, Publication|id, Details|dict, Arguments?, ArgumentsKw?]`.
    Event = EVENT { subscription: Id, publication: Id, details: Dict } + payload;
    /// `[48, Request|id, Options|dict, Procedure|uri, Arguments?, ArgumentsKw?]`.
    Call = CALL { request: Id, options: Dict, procedure: Uri } + payload;
    /// `[49, CALL.Request|id, Options|dict]`.
    Cancel = CANCEL { request: Id, options: Dict };
    /// `[50, CALL.Request|id, Details|dict, Arguments?, ArgumentsKw?]`.
    Result = RESULT { request: Id, details: Dict } + payload;
    /// `[64, Request|id, Options|dict, Procedure|uri]`.
    Register = REGISTER { request: Id, options: Dict, procedure: Uri };
    /// `[65, REGISTER.Request|id, Registration|id]`.
    Registered = REGISTERED { request: Id, registration: Id };
    /// `[66, Request|id, REGISTERED.Registration|id, Options|dict?]`.
    Unregister = UNREGISTER { request: Id, registration: Id, options: Option<Dict> };
    /// `[67, UNREGISTER.Request|id]`, or the revocation form `[67, 0, Details|dict]`.
    Unregistered = UNREGISTERED {
        /// The request id, 0 in the revocation form.
        request: u64,
        details: Option<Dict>
    };
    /// `[68, Request|id, REGISTERED.Registration|id, Details|dict, Arguments?, ArgumentsKw?]`.
    Invocation = INVOCATION { request: Id, registration: Id, details: Dict } + payload;
    /// `[69, INVOCATION.Request|id, Options|dict]`.
    Interrupt = INTERRUPT { request: Id, options: Dict };
    /// `[70, INVOCATION.Request|id, Options|dict, Arguments?, ArgumentsKw?]`.
    Yield = YIELD { request: Id, options: Dict } + payload;
}

impl Message {
    /// Whether only a router may send this message (a client sending it is a protocol
    /// violation).
    pub fn is_router_only(&self) -> bool {
        matches!(
            self,
            Message::Welcome(_)
                | Message::Challenge(_)
                | Message::Published(_)
                | Message::Subscribed(_)
                | Message::Unsubscribed(_)
                | Message::Event(_)
                | Message::Result(_)
                | Message::Registered(_)
                | Message::Unregistered(_)
                | Message::Invocation(_)
                | Message::Interrupt(_)
        )
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> StdResult<S::Ok, S::Error> {
        self.write_wire(s, Tail::Inline)
    }
}

/// A message whose still-encoded payload the codec appends after serializing the rest
/// (the array length counts the payload elements).
pub(crate) struct Spliced<'a>(pub(crate) &'a Message);

impl Serialize for Spliced<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> StdResult<S::Ok, S::Error> {
        self.0.write_wire(s, Tail::Spliced)
    }
}

impl Message {
    /// The payload, for the messages that carry one.
    pub fn payload(&self) -> Option<&Payload> {
        match self {
            Message::Abort(m) => Some(&m.payload),
            Message::Error(m) => Some(&m.payload),
            Message::Publish(m) => Some(&m.payload),
            Message::Event(m) => Some(&m.payload),
            Message::Call(m) => Some(&m.payload),
            Message::Result(m) => Some(&m.payload),
            Message::Invocation(m) => Some(&m.payload),
            Message::Yield(m) => Some(&m.payload),
            _ => None,
        }
    }

    /// The payload, mutably, for the messages that carry one.
    pub fn payload_mut(&mut self) -> Option<&mut Payload> {
        match self {
            Message::Abort(m) => Some(&mut m.payload),
            Message::Error(m) => Some(&mut m.payload),
            Message::Publish(m) => Some(&mut m.payload),
            Message::Event(m) => Some(&mut m.payload),
            Message::Call(m) => Some(&mut m.payload),
            Message::Result(m) => Some(&mut m.payload),
            Message::Invocation(m) => Some(&mut m.payload),
            Message::Yield(m) => Some(&mut m.payload),
            _ => None,
        }
    }

    fn write_wire<S: Serializer>(&self, s: S, tail: Tail) -> StdResult<S::Ok, S::Error> {
        use Message as M;
        let len = 1 + match self {
            M::Hello(_)
            | M::Welcome(_)
            | M::Challenge(_)
            | M::Authenticate(_)
            | M::Goodbye(_)
            | M::Published(_)
            | M::Subscribed(_)
            | M::Registered(_)
            | M::Cancel(_)
            | M::Interrupt(_) => 2,
            M::Abort(m) => 2 + m.payload.wire_len(),
            M::Error(m) => 4 + m.payload.wire_len(),
            M::Publish(m) => 3 + m.payload.wire_len(),
            M::Subscribe(_) | M::Register(_) => 3,
            M::Unsubscribe(m) => 2 + usize::from(m.options.is_some()),
            M::Unregister(m) => 2 + usize::from(m.options.is_some()),
            M::Unsubscribed(m) => 1 + usize::from(m.details.is_some()),
            M::Unregistered(m) => 1 + usize::from(m.details.is_some()),
            M::Event(m) => 3 + m.payload.wire_len(),
            M::Call(m) => 3 + m.payload.wire_len(),
            M::Result(m) => 2 + m.payload.wire_len(),
            M::Invocation(m) => 3 + m.payload.wire_len(),
            M::Yield(m) => 2 + m.payload.wire_len(),
        };
        let mut q = s.serialize_seq(Some(len))?;
        q.serialize_element(&self.code())?;
        match self {
            M::Hello(m) => {
                q.serialize_element(&m.realm)?;
                q.serialize_element(&m.details)?;
            }
            M::Welcome(m) => {
                q.serialize_element(&m.session)?;
                q.serialize_element(&m.details)?;
            }
            M::Abort(m) => {
                q.serialize_element(&m.details)?;
                q.serialize_element(&m.reason)?;
                m.payload.write(&mut q, tail)?;
            }
            M::Challenge(m) => {
                q.serialize_element(&m.auth_method)?;
                q.serialize_element(&m.extra)?;
            }
            M::Authenticate(m) => {
                q.serialize_element(&m.signature)?;
                q.serialize_element(&m.extra)?;
            }
            M::Goodbye(m) => {
                q.serialize_element(&m.details)?;
                q.serialize_element(&m.reason)?;
            }
            M::Error(m) => {
                q.serialize_element(&m.request_type)?;
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.details)?;
                q.serialize_element(&m.error)?;
                m.payload.write(&mut q, tail)?;
            }
            M::Publish(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                q.serialize_element(&m.topic)?;
                m.payload.write(&mut q, tail)?;
            }
            M::Published(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.publication)?;
            }
            M::Subscribe(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                q.serialize_element(&m.topic)?;
            }
            M::Subscribed(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.subscription)?;
            }
            M::Unsubscribe(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.subscription)?;
                if let Some(o) = &m.options {
                    q.serialize_element(o)?;
                }
            }
            M::Unsubscribed(m) => {
                q.serialize_element(&m.request)?;
                if let Some(d) = &m.details {
                    q.serialize_element(d)?;
                }
            }
            M::Event(m) => {
                q.serialize_element(&m.subscription)?;
                q.serialize_element(&m.publication)?;
                q.serialize_element(&m.details)?;
                m.payload.write(&mut q, tail)?;
            }
            M::Call(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                q.serialize_element(&m.procedure)?;
                m.payload.write(&mut q, tail)?;
            }
            M::Cancel(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
            }
            M::Result(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.details)?;
                m.payload.write(&mut q, tail)?;
            }
            M::Register(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                q.serialize_element(&m.procedure)?;
            }
            M::Registered(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.registration)?;
            }
            M::Unregister(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.registration)?;
                if let Some(o) = &m.options {
                    q.serialize_element(o)?;
                }
            }
            M::Unregistered(m) => {
                q.serialize_element(&m.request)?;
                if let Some(d) = &m.details {
                    q.serialize_element(d)?;
                }
            }
            M::Invocation(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.registration)?;
                q.serialize_element(&m.details)?;
                m.payload.write(&mut q, tail)?;
            }
            M::Interrupt(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
            }
            M::Yield(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                m.payload.write(&mut q, tail)?;
            }
        }
        q.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> StdResult<Self, D::Error> {
        // `deserialize_any`, not `deserialize_seq`: rmp-serde presents msgpack `bin` to a
        // sequence visitor as a list of integers, so a bin frame could pass for a message.
        d.deserialize_any(MessageVisitor {
            mode: ReadMode::Values,
            at: &Where::default(),
        })
    }
}

/// Deserializes a message in a given payload [`ReadMode`], recording where it is in a
/// [`Where`] for the error text.
pub(crate) struct MessageSeed<'f>(pub(crate) ReadMode<'f>, pub(crate) &'f Where);

impl<'de> de::DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = Message;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> StdResult<Message, D::Error> {
        d.deserialize_any(MessageVisitor {
            mode: self.0,
            at: self.1,
        })
    }
}

struct MessageVisitor<'f> {
    mode: ReadMode<'f>,
    /// Where the reader is, for the error text.
    at: &'f Where,
}

/// Reads the next required element, recording it in `w` for the error text.
fn req<'de, A: SeqAccess<'de>, T>(
    seq: &mut A,
    w: &Where,
    what: &'static str,
) -> StdResult<T, A::Error>
where
    Field<T>: Deserialize<'de>,
{
    w.set_field(what);
    match seq.next_element::<Field<T>>()? {
        Some(Field(v)) => Ok(v),
        None => Err(de::Error::custom(
            "missing (the message has too few elements)",
        )),
    }
}

/// Reads an optional trailing element.
fn optional<'de, A: SeqAccess<'de>, T>(
    seq: &mut A,
    w: &Where,
    what: &'static str,
) -> StdResult<Option<T>, A::Error>
where
    Field<T>: Deserialize<'de>,
{
    w.set_field(what);
    Ok(seq.next_element::<Field<T>>()?.map(|Field(v)| v))
}

/// Reads a revocation-capable request field: an id, or 0 (then a Details dict must follow).
fn request_or_revocation<'de, A: SeqAccess<'de>>(
    seq: &mut A,
    w: &Where,
) -> StdResult<(u64, Option<Dict>), A::Error> {
    let request: u64 = req(seq, w, "Request")?;
    if request > crate::MAX_ID {
        return Err(de::Error::custom("request id out of range (at most 2^53)"));
    }
    let details: Option<Dict> = optional(seq, w, "Details")?;
    if (request == 0) != details.is_some() {
        return Err(de::Error::custom(
            "a Details dict is allowed only with request 0 (revocation)",
        ));
    }
    Ok((request, details))
}

impl<'de> Visitor<'de> for MessageVisitor<'_> {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WAMP message array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut q: A) -> StdResult<Message, A::Error> {
        let w = self.at;
        let code: u64 = req(&mut q, w, "message type")?;
        w.set_field("");
        if let Some(name) = code_name(code) {
            w.set_message(name);
        }
        let q = &mut q;
        let mode = self.mode;
        let msg: Message = match code {
            code::HELLO => Hello {
                realm: req(q, w, "Realm")?,
                details: req(q, w, "Details")?,
            }
            .into(),
            code::WELCOME => Welcome {
                session: req(q, w, "Session")?,
                details: req(q, w, "Details")?,
            }
            .into(),
            code::ABORT => Abort {
                details: req(q, w, "Details")?,
                reason: req(q, w, "Reason")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            code::CHALLENGE => Challenge {
                auth_method: req(q, w, "AuthMethod")?,
                extra: req(q, w, "Extra")?,
            }
            .into(),
            code::AUTHENTICATE => Authenticate {
                signature: req(q, w, "Signature")?,
                extra: req(q, w, "Extra")?,
            }
            .into(),
            code::GOODBYE => Goodbye {
                details: req(q, w, "Details")?,
                reason: req(q, w, "Reason")?,
            }
            .into(),
            code::ERROR => Error {
                request_type: req(q, w, "REQUEST.Type")?,
                request: req(q, w, "REQUEST.Request")?,
                details: req(q, w, "Details")?,
                error: req(q, w, "Error")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            code::PUBLISH => Publish {
                request: req(q, w, "Request")?,
                options: req(q, w, "Options")?,
                topic: req(q, w, "Topic")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            code::PUBLISHED => Published {
                request: req(q, w, "Request")?,
                publication: req(q, w, "Publication")?,
            }
            .into(),
            code::SUBSCRIBE => Subscribe {
                request: req(q, w, "Request")?,
                options: req(q, w, "Options")?,
                topic: req(q, w, "Topic")?,
            }
            .into(),
            code::SUBSCRIBED => Subscribed {
                request: req(q, w, "Request")?,
                subscription: req(q, w, "Subscription")?,
            }
            .into(),
            code::UNSUBSCRIBE => Unsubscribe {
                request: req(q, w, "Request")?,
                subscription: req(q, w, "Subscription")?,
                options: optional(q, w, "Options")?,
            }
            .into(),
            code::UNSUBSCRIBED => {
                let (request, details) = request_or_revocation(q, w)?;
                Unsubscribed { request, details }.into()
            }
            code::EVENT => Event {
                subscription: req(q, w, "Subscription")?,
                publication: req(q, w, "Publication")?,
                details: req(q, w, "Details")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            code::CALL => Call {
                request: req(q, w, "Request")?,
                options: req(q, w, "Options")?,
                procedure: req(q, w, "Procedure")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            code::CANCEL => Cancel {
                request: req(q, w, "Request")?,
                options: req(q, w, "Options")?,
            }
            .into(),
            code::RESULT => Result {
                request: req(q, w, "Request")?,
                details: req(q, w, "Details")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            code::REGISTER => Register {
                request: req(q, w, "Request")?,
                options: req(q, w, "Options")?,
                procedure: req(q, w, "Procedure")?,
            }
            .into(),
            code::REGISTERED => Registered {
                request: req(q, w, "Request")?,
                registration: req(q, w, "Registration")?,
            }
            .into(),
            code::UNREGISTER => Unregister {
                request: req(q, w, "Request")?,
                registration: req(q, w, "Registration")?,
                options: optional(q, w, "Options")?,
            }
            .into(),
            code::UNREGISTERED => {
                let (request, details) = request_or_revocation(q, w)?;
                Unregistered { request, details }.into()
            }
            code::INVOCATION => Invocation {
                request: req(q, w, "Request")?,
                registration: req(q, w, "Registration")?,
                details: req(q, w, "Details")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            code::INTERRUPT => Interrupt {
                request: req(q, w, "Request")?,
                options: req(q, w, "Options")?,
            }
            .into(),
            code::YIELD => Yield {
                request: req(q, w, "Request")?,
                options: req(q, w, "Options")?,
                payload: Payload::read(q, mode, w)?,
            }
            .into(),
            other => {
                return Err(de::Error::custom(format_args!(
                    "unknown message type {other}"
                )))
            }
        };
        w.set_field("");
        if q.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("too many elements"));
        }
        Ok(msg)
    }
}
