//! The connection task: the one owner of the transport (WebSocket or RawSocket).
//!
//! Handles send [`Command`]s over a bounded queue; each request gets the next session-scope
//! request ID and its reply is routed back through a oneshot kept in a request-ID map.
//! Reading never blocks: replies go to oneshots, events to bounded per-subscription queues with
//! `try_send` (a full queue drops the event, see [`crate::Subscription`]), invocations to
//! spawned tasks. Writes go through an outbox; while it is above [`OUTBOX_HIGH_WATER`] the
//! task stops taking new commands (so senders wait) but keeps reading, so a router that
//! pushes while we push cannot deadlock us. With a keep-alive interval set, the task pings a
//! quiet router and ends the session (transport lost) when a ping goes unanswered.
//!
//! When the connection is lost and the [`ReconnectPolicy`] allows, the task keeps the
//! registrations and subscriptions, dials again with backoff, and restores them on the new
//! session (see `redial`).

mod commands;
mod inbound;
mod redial;

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Sleep;
use wamp_proto::{uris, Dict, Encoded, Id, Message, Payload, SequentialIds, Serializer, Uri};

use crate::call::{CallResult, CallSink, CancelMode};
use crate::client::{encode, CloseKind, CloseReason};
use crate::error::{
    CallError, LeaveError, PublishError, RegisterError, SubscribeError, TransportError,
};
use crate::handshake::{Dialer, Joined};
use crate::reconnect::{ConnectionState, ReconnectPolicy};
use crate::register::Invocation;
use crate::subscribe::Event;
use crate::transport::{BoxTransport, Incoming};

/// A procedure handler, type-erased.
pub(crate) type Handler =
    Arc<dyn Fn(Invocation) -> BoxFuture<'static, Result<CallResult, CallError>> + Send + Sync>;

/// Messages buffered for writing before the task stops taking commands.
const OUTBOX_HIGH_WATER: usize = 64;
/// Handler results queued back to the task before handler tasks wait.
const REPLY_QUEUE: usize = 64;
/// Time allowed for flushing and closing the transport (the WebSocket close handshake, or
/// the router's EOF) after the session ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A request from a handle to the connection task.
pub(crate) enum Command {
    Call {
        procedure: Uri,
        options: Dict,
        payload: Payload,
        /// The caller's key for this call (request IDs are assigned here).
        local: u64,
        sink: CallSink,
    },
    /// A further chunk of a progressive call invocation (`last`: the final one).
    CallChunk {
        local: u64,
        procedure: Uri,
        payload: Payload,
        last: bool,
    },
    /// CANCEL for a call still waiting; `forget`: nobody waits for its answer any more.
    Cancel {
        local: u64,
        mode: CancelMode,
        forget: bool,
    },
    Register {
        entry: RegEntry,
        reply: oneshot::Sender<Result<(), RegisterError>>,
    },
    /// Unregisters the registration made under the client-side `key`.
    Unregister {
        key: u64,
        reply: oneshot::Sender<Result<(), RegisterError>>,
    },
    Subscribe {
        topic: Uri,
        options: Dict,
        sink: EventSink,
        reply: oneshot::Sender<Result<(), SubscribeError>>,
    },
    /// Removes one local subscription; UNSUBSCRIBE goes out when it was the last one.
    Unsubscribe {
        local: u64,
        reply: Option<oneshot::Sender<Result<(), SubscribeError>>>,
    },
    Publish {
        topic: Uri,
        options: Dict,
        payload: Payload,
        ack: Option<oneshot::Sender<Result<Id, PublishError>>>,
    },
    Leave {
        reason: Uri,
        reply: oneshot::Sender<Result<CloseReason, LeaveError>>,
    },
}

/// The delivery end of one local subscription.
pub(crate) struct EventSink {
    pub(crate) local: u64,
    pub(crate) tx: mpsc::Sender<Event>,
    pub(crate) dropped: Arc<AtomicU64>,
    /// The router's current subscription ID, shown by the handles.
    pub(crate) id: IdCell,
}

/// A router ID shared with a handle and updated when a reconnect changes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdCell(Arc<AtomicU64>);

impl IdCell {
    pub(crate) fn get(&self) -> Id {
        Id::new(self.0.load(Ordering::Relaxed)).unwrap_or(UNSET_ID)
    }

    fn set(&self, id: Id) {
        self.0.store(id.get(), Ordering::Relaxed);
    }
}

/// What [`IdCell::get`] shows before the router's answer (no handle exists then).
const UNSET_ID: Id = match Id::new(1) {
    Some(id) => id,
    None => panic!("1 is a valid ID"),
};

/// The connection task's settings, from the builder.
pub(crate) struct Settings {
    pub(crate) leave_timeout: Duration,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) reconnect: ReconnectPolicy,
}

/// The channels between the task and the [`Client`](crate::Client) handles.
pub(crate) struct Links {
    pub(crate) cmd_rx: mpsc::Receiver<Command>,
    pub(crate) closed_tx: watch::Sender<Option<CloseReason>>,
    pub(crate) state_tx: watch::Sender<ConnectionState>,
    pub(crate) session_tx: watch::Sender<Id>,
}

/// A handler's outcome, on its way back to be sent as YIELD or ERROR; or a progressive
/// result (YIELD with `progress`) sent ahead of it through the same queue.
#[derive(Debug)]
pub(crate) struct HandlerReply {
    request: Id,
    result: Result<CallResult, CallError>,
    progress: bool,
}

impl HandlerReply {
    pub(crate) fn progress(request: Id, result: CallResult) -> HandlerReply {
        HandlerReply {
            request,
            result: Ok(result),
            progress: true,
        }
    }
}

/// A registration of this client, with what it takes to register it again after a
/// reconnect.
pub(crate) struct RegEntry {
    /// The client-side key of its [`Registration`](crate::Registration) handle.
    pub(crate) key: u64,
    pub(crate) procedure: Uri,
    pub(crate) options: Dict,
    pub(crate) handler: Handler,
    /// Told the reason when the router revokes the registration (or a reconnect cannot
    /// restore it).
    pub(crate) revoked: watch::Sender<Option<String>>,
    /// The router's current registration ID.
    pub(crate) id: IdCell,
}

/// A router subscription and the local subscriptions sharing it.
struct SubEntry {
    topic: Uri,
    options: Dict,
    sinks: Vec<EventSink>,
}

/// An invocation whose handler is running.
struct ActiveInvocation {
    /// `Some(mode)` once the router interrupted it.
    cancel: watch::Sender<Option<CancelMode>>,
    /// A progressive invocation's chunk queue, until its last chunk arrived.
    chunks: Option<mpsc::UnboundedSender<CallResult>>,
}

/// Progressive invocations remembered after their handler finished, so that their late
/// chunks are not mistaken for new invocations.
const ENDED_STREAMS: usize = 256;

/// A request waiting for the router's answer.
enum Pending {
    Call {
        local: u64,
        sink: CallSink,
    },
    Register {
        entry: RegEntry,
        reply: oneshot::Sender<Result<(), RegisterError>>,
    },
    Unregister {
        registration: Id,
        key: u64,
        reply: oneshot::Sender<Result<(), RegisterError>>,
    },
    Subscribe {
        topic: Uri,
        options: Dict,
        sink: EventSink,
        reply: oneshot::Sender<Result<(), SubscribeError>>,
    },
    Unsubscribe(Option<oneshot::Sender<Result<(), SubscribeError>>>),
    Publish(oneshot::Sender<Result<Id, PublishError>>),
    /// A registration being restored after a reconnect.
    Reregister(RegEntry),
    /// A subscription being restored after a reconnect.
    Resubscribe(SubEntry),
}

enum State {
    Established,
    /// GOODBYE sent; waiting for the reply.
    Leaving {
        reason: Uri,
        deadline: Pin<Box<Sleep>>,
        waiters: Vec<oneshot::Sender<Result<CloseReason, LeaveError>>>,
    },
}

/// What woke the task.
enum Wake {
    Frame(Option<Result<Incoming, TransportError>>),
    Command(Option<Command>),
    Reply(HandlerReply),
    WriteFailed(TransportError),
    LeaveTimeout,
    /// A keep-alive ping went unanswered: nothing arrived for a whole interval after it.
    KeepAliveLost(Duration),
}

/// How the session ended, and whether the socket still deserves a clean close.
struct End {
    reason: CloseReason,
    graceful: bool,
}

/// The client's own keep-alive ([`ClientBuilder::keepalive`](crate::ClientBuilder::keepalive)):
/// each `interval` without anything from the router, a ping; another interval without
/// anything, the router is gone.
struct KeepAlive {
    interval: Duration,
    tick: Pin<Box<Sleep>>,
    /// A ping was sent (or is due) and nothing arrived since.
    pinged: bool,
    /// A ping waits to be written.
    due: bool,
}

impl KeepAlive {
    fn new(interval: Duration) -> KeepAlive {
        KeepAlive {
            interval,
            tick: Box::pin(tokio::time::sleep(interval)),
            pinged: false,
            due: false,
        }
    }

    /// Runs the ticks that are due; `Ready` when the router stayed silent after a ping.
    fn poll(&mut self, transport: &mut BoxTransport, cx: &mut Context<'_>) -> Poll<()> {
        while self.tick.as_mut().poll(cx).is_ready() {
            if transport.take_activity() {
                self.pinged = false;
            } else if self.pinged {
                return Poll::Ready(());
            } else {
                self.pinged = true;
                self.due = true;
            }
            let next = tokio::time::Instant::now() + self.interval;
            self.tick.as_mut().reset(next);
        }
        Poll::Pending
    }
}

/// The connection task's state.
pub(crate) struct Connection {
    transport: BoxTransport,
    serializer: Serializer,
    /// The longest message the router accepts.
    max_message_len: usize,
    ids: SequentialIds,
    cmd_rx: mpsc::Receiver<Command>,
    reply_tx: mpsc::Sender<HandlerReply>,
    reply_rx: mpsc::Receiver<HandlerReply>,
    outbox: VecDeque<Encoded>,
    needs_flush: bool,
    read_first: bool,
    pending: HashMap<Id, Pending>,
    /// Request ID of each call waiting for its answer, by the caller's key.
    call_ids: HashMap<u64, Id>,
    subscriptions: HashMap<Id, SubEntry>,
    /// The router subscription of each local subscription, by its key.
    local_subs: HashMap<u64, Id>,
    registrations: HashMap<Id, RegEntry>,
    /// The router registration of each [`Registration`](crate::Registration), by its key.
    reg_keys: HashMap<u64, Id>,
    /// Registrations and subscriptions kept across a lost connection, to restore.
    stash: Stash,
    /// Restoring requests not answered yet; new commands wait until they are.
    restoring: usize,
    /// Reconnect attempts since the client was last connected with everything restored.
    attempts: u32,
    invocations: HashMap<Id, ActiveInvocation>,
    ended_streams: VecDeque<Id>,
    state: State,
    closed_tx: watch::Sender<Option<CloseReason>>,
    state_tx: watch::Sender<ConnectionState>,
    session_tx: watch::Sender<Id>,
    leave_timeout: Duration,
    keepalive: Option<KeepAlive>,
    keepalive_interval: Option<Duration>,
    reconnect: ReconnectPolicy,
    dialer: Arc<Dialer>,
}

/// What a lost connection leaves to restore.
#[derive(Default)]
struct Stash {
    registrations: Vec<RegEntry>,
    subscriptions: Vec<SubEntry>,
}

impl Connection {
    pub(crate) fn new(joined: Joined, dialer: Dialer, links: Links, s: Settings) -> Connection {
        let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
        Connection {
            max_message_len: joined.transport.max_message_len(),
            transport: joined.transport,
            serializer: joined.serializer,
            ids: SequentialIds::new(),
            cmd_rx: links.cmd_rx,
            reply_tx,
            reply_rx,
            outbox: VecDeque::new(),
            needs_flush: false,
            read_first: true,
            pending: HashMap::new(),
            call_ids: HashMap::new(),
            subscriptions: HashMap::new(),
            local_subs: HashMap::new(),
            registrations: HashMap::new(),
            reg_keys: HashMap::new(),
            stash: Stash::default(),
            restoring: 0,
            attempts: 0,
            invocations: HashMap::new(),
            ended_streams: VecDeque::new(),
            state: State::Established,
            closed_tx: links.closed_tx,
            state_tx: links.state_tx,
            session_tx: links.session_tx,
            leave_timeout: s.leave_timeout,
            keepalive: s.keepalive.map(KeepAlive::new),
            keepalive_interval: s.keepalive,
            reconnect: s.reconnect,
            dialer: Arc::new(dialer),
        }
    }

    /// Runs sessions until the client closes: after a lost connection, reconnects as the
    /// policy allows; at the end fails what is pending and closes the socket.
    pub(crate) async fn run(mut self) {
        loop {
            let end = self.run_session().await;
            if !self.may_reconnect(&end) {
                return self.finish(end).await;
            }
            self.disconnect(&end.reason);
            self.close_transport(end.graceful).await;
            match self.redial(end.reason).await {
                Ok(joined) => self.resume(joined),
                Err(end) => return self.finish(end).await,
            }
        }
    }

    /// Runs one session until it ends.
    async fn run_session(&mut self) -> End {
        loop {
            let wake = poll_fn(|cx| self.poll_wake(cx)).await;
            let end = match wake {
                Wake::Frame(frame) => self.on_frame(frame),
                Wake::Command(Some(cmd)) => {
                    self.on_command(cmd);
                    None
                }
                Wake::Command(None) => {
                    // Every handle is gone: nobody can use the session any more.
                    self.start_leave(Uri::new(uris::CLOSE_NORMAL), None);
                    None
                }
                Wake::Reply(r) => {
                    self.on_handler_reply(r);
                    None
                }
                Wake::WriteFailed(e) => Some(End {
                    reason: CloseReason::transport_lost(Some(e.to_string())),
                    graceful: false,
                }),
                Wake::LeaveTimeout => Some(self.leave_timed_out()),
                Wake::KeepAliveLost(interval) => Some(End {
                    reason: CloseReason::transport_lost(Some(format!(
                        "the router answered no keep-alive ping within {interval:?}"
                    ))),
                    graceful: false,
                }),
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        if let Some(k) = &mut self.keepalive {
            if k.poll(&mut self.transport, cx).is_ready() {
                return Poll::Ready(Wake::KeepAliveLost(k.interval));
            }
        }
        if let Err(e) = self.poll_write(cx) {
            return Poll::Ready(Wake::WriteFailed(e));
        }
        // Alternate so a busy socket cannot starve commands, nor busy callers the socket.
        self.read_first = !self.read_first;
        if self.read_first {
            if let Poll::Ready(f) = self.transport.poll_recv(cx) {
                return Poll::Ready(Wake::Frame(f));
            }
        }
        if matches!(self.state, State::Established)
            && self.restoring == 0
            && self.outbox.len() < OUTBOX_HIGH_WATER
        {
            // `reply_rx` never yields `None`: this task holds a sender.
            if let Poll::Ready(Some(r)) = self.reply_rx.poll_recv(cx) {
                return Poll::Ready(Wake::Reply(r));
            }
            if let Poll::Ready(c) = self.cmd_rx.poll_recv(cx) {
                return Poll::Ready(Wake::Command(c));
            }
        }
        if !self.read_first {
            if let Poll::Ready(f) = self.transport.poll_recv(cx) {
                return Poll::Ready(Wake::Frame(f));
            }
        }
        if let State::Leaving { deadline, .. } = &mut self.state {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::LeaveTimeout);
            }
        }
        Poll::Pending
    }

    /// Moves the outbox into the socket and flushes, as far as the socket allows.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), TransportError> {
        if let Some(k) = self.keepalive.as_mut().filter(|k| k.due) {
            if let Poll::Ready(ready) = self.transport.poll_ready(cx) {
                ready?;
                self.transport.start_ping()?;
                k.due = false;
                self.needs_flush = true;
            }
        }
        while !self.outbox.is_empty() {
            match self.transport.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(m) = self.outbox.pop_front() {
                        self.transport.start_send(m)?;
                        self.needs_flush = true;
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if self.needs_flush {
            match self.transport.poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Encodes and queues a message. After GOODBYE nothing more is sent. Errs, sending
    /// nothing, when the message does not encode or is longer than the router accepts.
    fn send(&mut self, m: Message) -> Result<(), String> {
        if matches!(self.state, State::Leaving { .. }) {
            tracing::debug!(message = m.name(), "not sent: leaving");
            return Ok(());
        }
        let frame = encode(self.serializer, &m)?;
        let len = frame.as_bytes().len();
        if len > self.max_message_len {
            return Err(format!(
                "the {} message is {len} octets, over the router's maximum of {}",
                m.name(),
                self.max_message_len
            ));
        }
        self.outbox.push_back(frame);
        Ok(())
    }

    // ----- the end -----

    /// Flushes what is queued and closes the socket cleanly (bounded), if `graceful`.
    async fn close_transport(&mut self, graceful: bool) {
        if !graceful {
            return;
        }
        let transport = &mut *self.transport;
        let outbox = std::mem::take(&mut self.outbox);
        let close = async move {
            for m in outbox {
                if transport.feed(m).await.is_err() {
                    return;
                }
            }
            if transport.close().await.is_err() {
                return;
            }
            // Wait for the router's close frame (or EOF).
            while let Some(Ok(_)) = transport.recv().await {}
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }

    async fn finish(mut self, end: End) {
        let End { reason, graceful } = end;
        tracing::debug!(%reason, "session ended");
        // Announce first, so a request failing below can already read the reason.
        self.closed_tx.send_replace(Some(reason.clone()));
        self.state_tx.send_replace(ConnectionState::Closed);
        // Dropping the oneshots fails every pending request with `ConnectionClosed`, and
        // dropping the event senders ends every subscription stream.
        self.pending.clear();
        self.call_ids.clear();
        self.subscriptions.clear();
        // Also resolves `Registration::revoked` (with `None`) and `Invocation::cancelled`.
        self.registrations.clear();
        self.stash = Stash::default();
        self.invocations.clear();
        self.cmd_rx.close();
        while self.cmd_rx.try_recv().is_ok() {}
        let waiters = match std::mem::replace(&mut self.state, State::Established) {
            State::Leaving { waiters, .. } => waiters,
            State::Established => Vec::new(),
        };
        self.close_transport(graceful).await;

        let result = match reason.kind {
            CloseKind::Left => Ok(reason),
            CloseKind::LeaveTimedOut => Err(LeaveError::Timeout),
            _ => Err(LeaveError::Closed(reason)),
        };
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}
