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

mod commands;
mod inbound;

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
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
        procedure: Uri,
        options: Dict,
        handler: Handler,
        revoked: watch::Sender<Option<String>>,
        reply: oneshot::Sender<Result<Id, RegisterError>>,
    },
    Unregister {
        registration: Id,
        reply: oneshot::Sender<Result<(), RegisterError>>,
    },
    Subscribe {
        topic: Uri,
        options: Dict,
        sink: EventSink,
        reply: oneshot::Sender<Result<Id, SubscribeError>>,
    },
    /// Removes one local subscription; UNSUBSCRIBE goes out when it was the last one.
    Unsubscribe {
        subscription: Id,
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

/// A registration of this session.
struct RegEntry {
    handler: Handler,
    /// Told the reason when the router revokes the registration.
    revoked: watch::Sender<Option<String>>,
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
        handler: Handler,
        revoked: watch::Sender<Option<String>>,
        reply: oneshot::Sender<Result<Id, RegisterError>>,
    },
    Unregister {
        registration: Id,
        reply: oneshot::Sender<Result<(), RegisterError>>,
    },
    Subscribe {
        sink: EventSink,
        reply: oneshot::Sender<Result<Id, SubscribeError>>,
    },
    Unsubscribe(Option<oneshot::Sender<Result<(), SubscribeError>>>),
    Publish(oneshot::Sender<Result<Id, PublishError>>),
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
    subscriptions: HashMap<Id, Vec<EventSink>>,
    registrations: HashMap<Id, RegEntry>,
    invocations: HashMap<Id, ActiveInvocation>,
    ended_streams: VecDeque<Id>,
    state: State,
    closed_tx: watch::Sender<Option<CloseReason>>,
    leave_timeout: Duration,
    keepalive: Option<KeepAlive>,
}

impl Connection {
    pub(crate) fn new(
        transport: BoxTransport,
        serializer: Serializer,
        cmd_rx: mpsc::Receiver<Command>,
        closed_tx: watch::Sender<Option<CloseReason>>,
        leave_timeout: Duration,
        keepalive: Option<Duration>,
    ) -> Connection {
        let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
        Connection {
            max_message_len: transport.max_message_len(),
            transport,
            serializer,
            ids: SequentialIds::new(),
            cmd_rx,
            reply_tx,
            reply_rx,
            outbox: VecDeque::new(),
            needs_flush: false,
            read_first: true,
            pending: HashMap::new(),
            call_ids: HashMap::new(),
            subscriptions: HashMap::new(),
            registrations: HashMap::new(),
            invocations: HashMap::new(),
            ended_streams: VecDeque::new(),
            state: State::Established,
            closed_tx,
            leave_timeout,
            keepalive: keepalive.map(KeepAlive::new),
        }
    }

    /// Runs the session until it ends, then fails what is pending and closes the socket.
    pub(crate) async fn run(mut self) {
        let end = loop {
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
                break end;
            }
        };
        self.finish(end).await;
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
        if matches!(self.state, State::Established) && self.outbox.len() < OUTBOX_HIGH_WATER {
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

    async fn finish(mut self, end: End) {
        let End { reason, graceful } = end;
        tracing::debug!(%reason, "session ended");
        // Announce first, so a request failing below can already read the reason.
        self.closed_tx.send_replace(Some(reason.clone()));
        // Dropping the oneshots fails every pending request with `ConnectionClosed`, and
        // dropping the event senders ends every subscription stream.
        self.pending.clear();
        self.call_ids.clear();
        self.subscriptions.clear();
        // Also resolves `Registration::revoked` (with `None`) and `Invocation::cancelled`.
        self.registrations.clear();
        self.invocations.clear();
        self.cmd_rx.close();
        while self.cmd_rx.try_recv().is_ok() {}
        let waiters = match std::mem::replace(&mut self.state, State::Established) {
            State::Leaving { waiters, .. } => waiters,
            State::Established => Vec::new(),
        };

        if graceful {
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
