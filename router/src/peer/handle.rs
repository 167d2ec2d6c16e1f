//! What the realm tables store for a session: a cheap, cloneable handle.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tracing::warn;
use wamp_proto::{Id, Message, SequentialIds, Serializer};

use super::calls::{Calls, Invocations};
use super::features::PeerFeatures;
use super::outbox::{encode_frame, Out, Outbox, Refused};
use super::wire::Wire;
use crate::counters::SlowClose;

/// The shared part of a session.
pub(crate) struct SessionShared {
    pub(crate) id: Id,
    pub(crate) serializer: Serializer,
    // Kept for authorization and publisher/caller disclosure (advanced profile).
    #[allow(dead_code)]
    pub(crate) authid: Arc<str>,
    #[allow(dead_code)]
    pub(crate) authrole: Arc<str>,
    /// Frames waiting for the connection; also carries the kill signal.
    outbox: Arc<Outbox>,
    /// Set once GOODBYE went out: nothing else may follow it on the wire.
    said_goodbye: std::sync::atomic::AtomicBool,
    /// INVOCATION request ids, sequential per callee session.
    pub(crate) next_invocation: SequentialIds,
    /// Calls this session (as callee) has not answered yet.
    pub(crate) invocations: Mutex<Invocations>,
    /// Calls this session (as caller) waits for.
    pub(crate) calls: Mutex<Calls>,
    /// What the peer announced in HELLO.
    pub(crate) features: PeerFeatures,
    /// The longest frame the peer accepts (RawSocket announces one; WebSocket: unbounded).
    max_frame: usize,
    /// How its connection frames messages.
    wire: Wire,
    /// How it authenticated and where it connects from (meta API).
    pub(crate) info: SessionInfo,
    /// Counted in [`crate::TableSizes::session_states`] while it lives.
    _alive: crate::stats::Alive,
}

/// The `transport` of the cluster's proxy sessions (a remote node's callee or caller).
pub(crate) const PROXY_TRANSPORT: &str = "cluster";

/// What the meta API tells about a session besides its id, authid and authrole.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionInfo {
    pub(crate) authmethod: &'static str,
    pub(crate) authprovider: &'static str,
    pub(crate) authextra: wamp_proto::Dict,
    /// `websocket`, `rawsocket` (or `internal`).
    pub(crate) transport: &'static str,
    /// `tcp:ADDR` or `unix`.
    pub(crate) peer: Arc<str>,
}

/// Why a message was not queued for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotSent {
    /// Longer than the peer accepts (RawSocket announces a maximum).
    TooLarge { len: usize, max: usize },
    /// It cannot be encoded for the peer's serializer.
    Unencodable,
    /// The session is closing, gone, or too far behind.
    Closed,
}

/// What became of a frame handed to [`SessionHandle::send_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Not queued (see [`NotSent`]; logged where it matters).
    No,
    /// Queued.
    Yes,
    /// Queued, and the session's backlog is over its soft bound.
    OverBound,
}

/// A cheap, cloneable reference to a session (an `Arc`).
#[derive(Clone)]
pub(crate) struct SessionHandle(Arc<SessionShared>);

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({})", self.0.id)
    }
}

/// Locks a mutex, recovering from poisoning (a panicking holder cannot corrupt these maps).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionHandle {
    /// Whether this stands in for a session of another cluster node (a proxy), rather than
    /// being one of this node's own.
    pub(crate) fn is_cluster_proxy(&self) -> bool {
        self.shared().info.transport == PROXY_TRANSPORT
    }

    /// A session `id` who is `who` (authid, authrole), writing to `outbox`.
    pub(crate) fn new(
        id: Id,
        serializer: Serializer,
        who: (Arc<str>, Arc<str>),
        outbox: Arc<Outbox>,
        features: PeerFeatures,
        wire_limits_info: (Wire, usize, SessionInfo),
    ) -> SessionHandle {
        let (authid, authrole) = who;
        let (wire, max_frame, info) = wire_limits_info;
        SessionHandle(Arc::new(SessionShared {
            id,
            serializer,
            authid,
            authrole,
            outbox,
            said_goodbye: std::sync::atomic::AtomicBool::new(false),
            next_invocation: SequentialIds::new(),
            invocations: Mutex::new(Invocations::default()),
            calls: Mutex::new(Calls::default()),
            features,
            max_frame,
            wire,
            info,
            _alive: crate::stats::Alive::new(),
        }))
    }

    /// The session id.
    pub(crate) fn id(&self) -> Id {
        self.0.id
    }

    /// The serializer this session's peer speaks.
    pub(crate) fn serializer(&self) -> Serializer {
        self.0.serializer
    }

    /// How the session's connection frames messages.
    pub(crate) fn wire(&self) -> Wire {
        self.0.wire
    }

    /// The longest frame payload the peer accepts.
    pub(crate) fn max_frame(&self) -> usize {
        self.0.max_frame
    }

    pub(crate) fn shared(&self) -> &SessionShared {
        &self.0
    }

    /// Queues an already-encoded frame without waiting. A backlog at its hard cap marks the
    /// session as a slow consumer and drops it; a frame longer than the peer accepts is dropped and logged.
    /// Not counted in the metrics: the caller counts what it sends (a fan-out counts once).
    pub(crate) fn send_frame(&self, frame: Bytes) -> Queued {
        let len = frame.len();
        self.send_out(Out::payload(frame), Some(len))
    }

    /// Queues `frames` messages already framed for this session's wire (a fan-out batch:
    /// see [`Out`]), like [`SessionHandle::send_frame`]; the caller checked them against the
    /// peer's frame limit.
    pub(crate) fn send_framed(&self, bytes: Bytes, frames: u32) -> Queued {
        self.send_out(
            Out {
                bytes,
                framed: frames,
            },
            None,
        )
    }

    fn send_out(&self, out: Out, len: Option<usize>) -> Queued {
        match self.push(out, len, None) {
            Ok(false) => Queued::Yes,
            Ok(true) => Queued::OverBound,
            Err(_) => Queued::No,
        }
    }

    /// A publisher paused for this session: see [`Outbox::hold_publisher`].
    pub(crate) fn hold_publisher(&self, waker: &std::task::Waker) -> bool {
        self.0.outbox.hold_publisher(waker)
    }

    /// Queues an entry: one message of `len` bytes (checked against the peer's limit, and
    /// counted in the metrics as of type `code`, if given) or frames checked already (`len`
    /// `None`); `Ok(true)` when the backlog is now over the soft bound.
    fn push(&self, out: Out, len: Option<usize>, code: Option<u64>) -> Result<bool, NotSent> {
        if self
            .0
            .said_goodbye
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(NotSent::Closed);
        }
        if let Some(len) = len.filter(|len| *len > self.0.max_frame) {
            warn!(session = %self.0.id, len, max = self.0.max_frame, "message longer than the peer accepts; not sent");
            return Err(NotSent::TooLarge {
                len,
                max: self.0.max_frame,
            });
        }
        let metrics = &self.0.outbox.budget().metrics;
        match self.0.outbox.push_out(out) {
            Ok(over) => {
                if let (Some(code), Some(len)) = (code, len) {
                    metrics.sent_frame(code, len);
                }
                Ok(over)
            }
            Err(Refused::OverCap) => {
                let backlog = self.backlog();
                if self.kill("slow consumer: outbound backlog at its cap") {
                    metrics.slow_close(SlowClose::Cap);
                    warn!(session = %self.0.id, messages = backlog.messages, bytes = backlog.bytes, "slow consumer: outbound backlog at its cap; closing session");
                }
                Err(NotSent::Closed)
            }
            Err(Refused::Closed) => Err(NotSent::Closed),
        }
    }

    /// Encodes `msg` for this session's serializer and queues it, saying why it was not.
    pub(crate) fn try_send(&self, msg: &Message) -> Result<(), NotSent> {
        // Framed here (header and message in one buffer) unless in-process.
        let encoded = match self.0.wire {
            Wire::Unframed => encode_frame(self.0.serializer, msg).map(|b| {
                let len = b.len();
                (Out::payload(b), len)
            }),
            wire => wire
                .encode(self.0.serializer, msg)
                .map(|(bytes, len)| (Out { bytes, framed: 1 }, len)),
        };
        match encoded {
            Ok((out, len)) => self.push(out, Some(len), Some(msg.code())).map(|_| ()),
            Err(e) => {
                warn!(session = %self.0.id, cause = %e, message = msg.name(), "cannot encode outbound message; dropped");
                Err(NotSent::Unencodable)
            }
        }
    }

    /// Queues GOODBYE as the last WAMP message this session will be sent.
    pub(crate) fn send_goodbye(&self, msg: &Message) {
        self.send(msg);
        self.0
            .said_goodbye
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Encodes `msg` for this session's serializer and queues it; whether it was queued.
    pub(crate) fn send(&self, msg: &Message) -> bool {
        self.try_send(msg).is_ok()
    }

    /// Ends the session from outside (meta API `kill`): GOODBYE with `reason`, then the
    /// connection waits for the reply and closes.
    pub(crate) fn end(&self, reason: &str, message: Option<&str>) {
        let mut details = wamp_proto::Dict::new();
        if let Some(m) = message {
            details.insert("message".into(), m.into());
        }
        self.send_goodbye(
            &wamp_proto::message::Goodbye {
                details,
                reason: wamp_proto::Uri::new(reason),
            }
            .into(),
        );
        self.0.outbox.end();
    }

    /// Asks the session's connection to drop, recording why (first reason wins): true for
    /// the first reason (the caller logs it).
    pub(crate) fn kill(&self, reason: &'static str) -> bool {
        self.0.outbox.kill(reason)
    }

    /// The router's counters.
    pub(crate) fn metrics(&self) -> &crate::counters::Metrics {
        &self.0.outbox.budget().metrics
    }

    /// What its outbound queue holds (messages and bytes, including frames being written).
    pub(crate) fn backlog(&self) -> crate::peer::Backlog {
        self.0.outbox.backlog()
    }

    /// Why the session was killed, if it was.
    pub(crate) fn kill_reason(&self) -> Option<&'static str> {
        self.0.outbox.kill_reason()
    }
}
