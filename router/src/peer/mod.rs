//! What the routing tables hold for a session, and how messages reach it: the session
//! handle, its bounded outbox, frame encoding, and the features the peer announced.
//!
//! A leaf module: broker, dealer and session all use it; it uses none of them. The in-flight
//! call records (`calls`) are session state the handle carries; the dealer's `call` and
//! `answer` modules are the lifecycle that changes them.

mod budget;
pub(crate) mod calls;
mod features;
mod handle;
mod outbox;
pub(crate) mod spare;
pub(crate) mod wire;

pub(crate) use budget::{Backlog, OutboundBudget, STALL_LOOKS};

/// The hasher of the tables the routing path looks into on every CALL (procedures, call and
/// invocation ids): foldhash, randomly seeded per table (hashbrown's own default), instead
/// of SipHash, which cost about 600 instructions per call. The seed keeps clients, who choose
/// URIs and request ids, from aiming at collisions.
pub(crate) type FastHash = foldhash::fast::RandomState;
pub(crate) use calls::{OutgoingCall, PendingInvocation};
pub(crate) use features::PeerFeatures;
#[cfg(feature = "cluster-nats")]
pub(crate) use handle::PROXY_TRANSPORT;
pub(crate) use handle::{lock, NotSent, Queued, SessionHandle, SessionInfo};
pub(crate) use outbox::{encode_frame, Out, Outbox, Refused};
pub(crate) use wire::Wire;
