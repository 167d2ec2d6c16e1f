//! Every WAMP v2 message as a typed value, with its exact code and field order.
//!
//! Serialization is hand-written so that each message is one array on the wire:
//! `[CODE, field, ..., Arguments?, ArgumentsKw?]`.

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Dict, Id, Uri, Value};

type StdResult<T, E> = std::result::Result<T, E>;

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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// Positional arguments.
    pub args: Option<Vec<Value>>,
    /// Keyword arguments.
    pub kwargs: Option<Dict>,
}

impl Payload {
    /// A payload with positional arguments only.
    pub fn args(args: Vec<Value>) -> Payload {
        Payload {
            args: Some(args),
            kwargs: None,
        }
    }

    /// True when there is neither args nor kwargs.
    pub fn is_empty(&self) -> bool {
        self.args.is_none() && self.kwargs.is_none()
    }

    fn wire_len(&self) -> usize {
        match (&self.args, &self.kwargs) {
            (_, Some(_)) => 2,
            (Some(_), None) => 1,
            (None, None) => 0,
        }
    }

    fn write<S: SerializeSeq>(&self, seq: &mut S) -> StdResult<(), S::Error> {
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

    fn read<'de, A: SeqAccess<'de>>(seq: &mut A) -> StdResult<Payload, A::Error> {
        // Read a self-describing Value rather than a `Vec<Value>`: rmp-serde hands msgpack
        // `bin` to a sequence visitor as a list of byte-sized integers, which would turn a binary
        // payload (e.g. Payload Passthru Mode, not supported) into `args: [131, 165, ...]`.
        let args = match seq.next_element::<Value>()? {
            None => None,
            Some(Value::List(l)) => Some(l),
            Some(_) => return Err(de::Error::custom("Arguments must be a list")),
        };
        let kwargs = match args {
            Some(_) => seq.next_element()?,
            None => None,
        };
        Ok(Payload { args, kwargs })
    }
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
                m.payload.write(&mut q)?;
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
                m.payload.write(&mut q)?;
            }
            M::Publish(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                q.serialize_element(&m.topic)?;
                m.payload.write(&mut q)?;
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
                m.payload.write(&mut q)?;
            }
            M::Call(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                q.serialize_element(&m.procedure)?;
                m.payload.write(&mut q)?;
            }
            M::Cancel(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
            }
            M::Result(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.details)?;
                m.payload.write(&mut q)?;
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
                m.payload.write(&mut q)?;
            }
            M::Interrupt(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
            }
            M::Yield(m) => {
                q.serialize_element(&m.request)?;
                q.serialize_element(&m.options)?;
                m.payload.write(&mut q)?;
            }
        }
        q.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> StdResult<Self, D::Error> {
        // `deserialize_any`, not `deserialize_seq`: rmp-serde presents msgpack `bin` to a
        // sequence visitor as a list of integers, so a bin frame could pass for a message.
        d.deserialize_any(MessageVisitor)
    }
}

struct MessageVisitor;

/// Reads the next required element, naming it in the error.
fn req<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
    seq: &mut A,
    what: &'static str,
) -> StdResult<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::custom(format_args!("missing element {what}")))
}

/// Reads a revocation-capable request field: an id, or 0 (then a Details dict must follow).
fn request_or_revocation<'de, A: SeqAccess<'de>>(
    seq: &mut A,
) -> StdResult<(u64, Option<Dict>), A::Error> {
    let request: u64 = req(seq, "Request")?;
    if request > crate::MAX_ID {
        return Err(de::Error::custom("request id out of range"));
    }
    let details: Option<Dict> = seq.next_element()?;
    if (request == 0) != details.is_some() {
        return Err(de::Error::custom(
            "a Details dict is allowed only with request 0 (revocation)",
        ));
    }
    Ok((request, details))
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WAMP message array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut q: A) -> StdResult<Message, A::Error> {
        let code: u64 = req(&mut q, "message type")?;
        let q = &mut q;
        let msg: Message = match code {
            code::HELLO => Hello {
                realm: req(q, "Realm")?,
                details: req(q, "Details")?,
            }
            .into(),
            code::WELCOME => Welcome {
                session: req(q, "Session")?,
                details: req(q, "Details")?,
            }
            .into(),
            code::ABORT => Abort {
                details: req(q, "Details")?,
                reason: req(q, "Reason")?,
                payload: Payload::read(q)?,
            }
            .into(),
            code::CHALLENGE => Challenge {
                auth_method: req(q, "AuthMethod")?,
                extra: req(q, "Extra")?,
            }
            .into(),
            code::AUTHENTICATE => Authenticate {
                signature: req(q, "Signature")?,
                extra: req(q, "Extra")?,
            }
            .into(),
            code::GOODBYE => Goodbye {
                details: req(q, "Details")?,
                reason: req(q, "Reason")?,
            }
            .into(),
            code::ERROR => Error {
                request_type: req(q, "REQUEST.Type")?,
                request: req(q, "REQUEST.Request")?,
                details: req(q, "Details")?,
                error: req(q, "Error")?,
                payload: Payload::read(q)?,
            }
            .into(),
            code::PUBLISH => Publish {
                request: req(q, "Request")?,
                options: req(q, "Options")?,
                topic: req(q, "Topic")?,
                payload: Payload::read(q)?,
            }
            .into(),
            code::PUBLISHED => Published {
                request: req(q, "Request")?,
                publication: req(q, "Publication")?,
            }
            .into(),
            code::SUBSCRIBE => Subscribe {
                request: req(q, "Request")?,
                options: req(q, "Options")?,
                topic: req(q, "Topic")?,
            }
            .into(),
            code::SUBSCRIBED => Subscribed {
                request: req(q, "Request")?,
                subscription: req(q, "Subscription")?,
            }
            .into(),
            code::UNSUBSCRIBE => Unsubscribe {
                request: req(q, "Request")?,
                subscription: req(q, "Subscription")?,
                options: q.next_element()?,
            }
            .into(),
            code::UNSUBSCRIBED => {
                let (request, details) = request_or_revocation(q)?;
                Unsubscribed { request, details }.into()
            }
            code::EVENT => Event {
                subscription: req(q, "Subscription")?,
                publication: req(q, "Publication")?,
                details: req(q, "Details")?,
                payload: Payload::read(q)?,
            }
            .into(),
            code::CALL => Call {
                request: req(q, "Request")?,
                options: req(q, "Options")?,
                procedure: req(q, "Procedure")?,
                payload: Payload::read(q)?,
            }
            .into(),
            code::CANCEL => Cancel {
                request: req(q, "Request")?,
                options: req(q, "Options")?,
            }
            .into(),
            code::RESULT => Result {
                request: req(q, "Request")?,
                details: req(q, "Details")?,
                payload: Payload::read(q)?,
            }
            .into(),
            code::REGISTER => Register {
                request: req(q, "Request")?,
                options: req(q, "Options")?,
                procedure: req(q, "Procedure")?,
            }
            .into(),
            code::REGISTERED => Registered {
                request: req(q, "Request")?,
                registration: req(q, "Registration")?,
            }
            .into(),
            code::UNREGISTER => Unregister {
                request: req(q, "Request")?,
                registration: req(q, "Registration")?,
                options: q.next_element()?,
            }
            .into(),
            code::UNREGISTERED => {
                let (request, details) = request_or_revocation(q)?;
                Unregistered { request, details }.into()
            }
            code::INVOCATION => Invocation {
                request: req(q, "Request")?,
                registration: req(q, "Registration")?,
                details: req(q, "Details")?,
                payload: Payload::read(q)?,
            }
            .into(),
            code::INTERRUPT => Interrupt {
                request: req(q, "Request")?,
                options: req(q, "Options")?,
            }
            .into(),
            code::YIELD => Yield {
                request: req(q, "Request")?,
                options: req(q, "Options")?,
                payload: Payload::read(q)?,
            }
            .into(),
            other => {
                return Err(de::Error::custom(format_args!(
                    "unknown message type {other}"
                )))
            }
        };
        if q.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format_args!(
                "too many elements in {}",
                msg.name()
            )));
        }
        Ok(msg)
    }
}
