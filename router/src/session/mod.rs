//! Sessions: the WAMP state machine without I/O ([`core`]), HELLO/WELCOME (`hello`), the
//! message handlers (`pubsub`, `rpc`; the meta API is `crate::meta`), and the one connection driver ([`driver`])
//! that runs a session core over any byte stream and framing.

pub(crate) mod core;
mod deferred;
pub(crate) mod driver;
mod hello;
mod leaving;
mod pubsub;
mod rpc;

pub(crate) use self::core::{KeepAlive, TransportInfo};
pub(crate) use crate::close::CloseReason;
