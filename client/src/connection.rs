//! The connection task: the one owner of the WebSocket.
//!
//! Handles send [`Command`]s over a bounded queue; each request gets the next session-scope
//! request ID and its reply is routed back through a oneshot kept in a request-ID map.
//! Reading never blocks: replies go to oneshots, events to bounded per-subscription queues with
//! `try_send` (a full queue drops the event, see [`crate::Subscription`]), invocations to
//! spawned tasks. Writes go through an outbox; while it is above [`OUTBOX_HIGH_WATER`] the
//! task stops taking new commands (so senders wait) but keeps reading, so a router that
//! pushes while we push cannot deadlock us.

mod inbound;

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wamp_proto::message as msg;
use wamp_proto::{uris, Dict, Id, Message, Payload, SequentialIds, Serializer, Uri};

use crate::call::{CallResult, CallSink, CancelMode};
use crate::client::{encode, CloseKind, CloseReason};
use crate::error::{CallError, LeaveError, PublishError, RegisterError, SubscribeError};
use crate::register::Invocation;
use crate::subscribe::Event;

/// The WebSocket type the task owns.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A procedure handler, type-erased.
pub(crate) type Handler =
    Arc<dyn Fn(Invocation) -> BoxFuture<'static, Result<CallResult, CallError>> + Send + Sync>;

/// Messages buffered for writing before the task stops taking commands.
const OUTBOX_HIGH_WATER: usize = 64;
/// Handler results queued back to the task before handler tasks wait.
const REPLY_QUEUE: usize = 64;
/// Time allowed for flushing and the WebSocket close handshake after the session ended.
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
    Frame(Option<Result<WsMessage, tungstenite::Error>>),
    Command(Option<Command>),
    Reply(HandlerReply),
    WriteFailed(tungstenite::Error),
    LeaveTimeout,
}

/// How the session ended, and whether the socket still deserves a clean close.
struct End {
    reason: CloseReason,
    graceful: bool,
}

/// The connection task's state.
pub(crate) struct Connection {
    ws: WsStream,
    serializer: Serializer,
    ids: SequentialIds,
    cmd_rx: mpsc::Receiver<Command>,
    reply_tx: mpsc::Sender<HandlerReply>,
    reply_rx: mpsc::Receiver<HandlerReply>,
    outbox: VecDeque<WsMessage>,
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
}

impl Connection {
    pub(crate) fn new(
        ws: WsStream,
        serializer: Serializer,
        cmd_rx: mpsc::Receiver<Command>,
        closed_tx: watch::Sender<Option<CloseReason>>,
        leave_timeout: Duration,
    ) -> Connection {
        let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
        Connection {
            ws,
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
            };
            if let Some(end) = end {
                break end;
            }
        };
        self.finish(end).await;
    }

    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        if let Err(e) = self.poll_write(cx) {
            return Poll::Ready(Wake::WriteFailed(e));
        }
        // Alternate so a busy socket cannot starve commands, nor busy callers the socket.
        self.read_first = !self.read_first;
        if self.read_first {
            if let Poll::Ready(f) = Pin::new(&mut self.ws).poll_next(cx) {
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
            if let Poll::Ready(f) = Pin::new(&mut self.ws).poll_next(cx) {
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
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), tungstenite::Error> {
        while !self.outbox.is_empty() {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(m) = self.outbox.pop_front() {
                        Pin::new(&mut self.ws).start_send(m)?;
                        self.needs_flush = true;
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Encodes and queues a message. After GOODBYE nothing more is sent.
    fn send(&mut self, m: Message) -> Result<(), String> {
        if matches!(self.state, State::Leaving { .. }) {
            tracing::debug!(message = m.name(), "not sent: leaving");
            return Ok(());
        }
        let frame = encode(self.serializer, &m)?;
        self.outbox.push_back(frame);
        Ok(())
    }

    // ----- commands -----

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Call {
                procedure,
                options,
                payload,
                local,
                sink,
            } => {
                let request = self.ids.next();
                let m = msg::Call {
                    request,
                    options,
                    procedure,
                    payload,
                };
                match self.send(m.into()) {
                    Ok(()) => {
                        self.pending.insert(request, Pending::Call { local, sink });
                        self.call_ids.insert(local, request);
                    }
                    Err(e) => sink.finish(Err(CallError::InvalidPayload(e))),
                }
            }
            Command::CallChunk {
                local,
                procedure,
                payload,
                last,
            } => self.call_chunk(local, procedure, payload, last),
            Command::Cancel {
                local,
                mode,
                forget,
            } => self.cancel_call(local, mode, forget),
            Command::Register {
                procedure,
                options,
                handler,
                revoked,
                reply,
            } => self.request(
                |request| {
                    msg::Register {
                        request,
                        options,
                        procedure,
                    }
                    .into()
                },
                Pending::Register {
                    handler,
                    revoked,
                    reply,
                },
            ),
            Command::Unregister {
                registration,
                reply,
            } => self.request(
                |request| {
                    msg::Unregister {
                        request,
                        registration,
                        options: None,
                    }
                    .into()
                },
                Pending::Unregister {
                    registration,
                    reply,
                },
            ),
            Command::Subscribe {
                topic,
                options,
                sink,
                reply,
            } => self.request(
                |request| {
                    msg::Subscribe {
                        request,
                        options,
                        topic,
                    }
                    .into()
                },
                Pending::Subscribe { sink, reply },
            ),
            Command::Unsubscribe {
                subscription,
                local,
                reply,
            } => self.unsubscribe_local(subscription, local, reply),
            Command::Publish {
                topic,
                options,
                payload,
                ack,
            } => {
                let request = self.ids.next();
                let m = msg::Publish {
                    request,
                    options,
                    topic,
                    payload,
                };
                match (self.send(m.into()), ack) {
                    (Ok(()), Some(ack)) => {
                        self.pending.insert(request, Pending::Publish(ack));
                    }
                    (Ok(()), None) => {}
                    (Err(e), Some(ack)) => {
                        let _ = ack.send(Err(PublishError::InvalidPayload(e)));
                    }
                    (Err(e), None) => tracing::warn!(error = %e, "publication not sent"),
                }
            }
            Command::Leave { reason, reply } => self.start_leave(reason, Some(reply)),
        }
    }

    /// Sends a request under a fresh id and remembers what waits for its reply.
    fn request(&mut self, build: impl FnOnce(Id) -> Message, pending: Pending) {
        let request = self.ids.next();
        if self.send_or_log(build(request)) {
            self.pending.insert(request, pending);
        }
    }

    /// Sends a further chunk of a progressive call invocation, if the call still waits.
    fn call_chunk(&mut self, local: u64, procedure: Uri, payload: Payload, last: bool) {
        let Some(&request) = self.call_ids.get(&local) else {
            return; // the call has ended: the router would drop the chunk anyway
        };
        let options = if last {
            Dict::new()
        } else {
            Dict::from([("progress".to_owned(), true.into())])
        };
        let m = msg::Call {
            request,
            options,
            procedure,
            payload,
        };
        if let Err(e) = self.send(m.into()) {
            // A stream with a hole in it is no use: end the call.
            self.cancel_call(local, CancelMode::KillNoWait, false);
            self.call_ids.remove(&local);
            if let Some(Pending::Call { sink, .. }) = self.pending.remove(&request) {
                sink.finish(Err(CallError::InvalidPayload(e)));
            }
        }
    }

    /// Sends CANCEL for a call still waiting; when `forget`, its answer will be ignored.
    fn cancel_call(&mut self, local: u64, mode: CancelMode, forget: bool) {
        let Some(&request) = self.call_ids.get(&local) else {
            return; // already answered
        };
        let m = msg::Cancel {
            request,
            options: Dict::from([("mode".to_owned(), mode.as_str().into())]),
        };
        self.send_or_log(m.into());
        if forget {
            self.call_ids.remove(&local);
            self.pending.remove(&request);
        }
    }

    /// Sends a message that carries no user payload; encoding cannot really fail.
    fn send_or_log(&mut self, m: Message) -> bool {
        match self.send(m) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a request");
                false
            }
        }
    }

    fn unsubscribe_local(
        &mut self,
        subscription: Id,
        local: u64,
        reply: Option<oneshot::Sender<Result<(), SubscribeError>>>,
    ) {
        let Some(sinks) = self.subscriptions.get_mut(&subscription) else {
            // Already gone (revoked, or the last local one was removed before).
            if let Some(r) = reply {
                let _ = r.send(Ok(()));
            }
            return;
        };
        sinks.retain(|s| s.local != local);
        if !sinks.is_empty() {
            if let Some(r) = reply {
                let _ = r.send(Ok(()));
            }
            return;
        }
        self.subscriptions.remove(&subscription);
        self.send_unsubscribe(subscription, reply);
    }

    fn send_unsubscribe(
        &mut self,
        subscription: Id,
        reply: Option<oneshot::Sender<Result<(), SubscribeError>>>,
    ) {
        let request = self.ids.next();
        let m = msg::Unsubscribe {
            request,
            subscription,
            options: None,
        };
        if self.send_or_log(m.into()) {
            self.pending.insert(request, Pending::Unsubscribe(reply));
        }
    }

    fn start_leave(
        &mut self,
        reason: Uri,
        reply: Option<oneshot::Sender<Result<CloseReason, LeaveError>>>,
    ) {
        match &mut self.state {
            State::Leaving { waiters, .. } => waiters.extend(reply),
            State::Established => {
                let m = msg::Goodbye {
                    details: Dict::new(),
                    reason: reason.clone(),
                };
                self.send_or_log(m.into());
                self.state = State::Leaving {
                    reason,
                    deadline: Box::pin(tokio::time::sleep(self.leave_timeout)),
                    waiters: reply.into_iter().collect(),
                };
            }
        }
    }

    fn leave_timed_out(&mut self) -> End {
        let reason = match &self.state {
            State::Leaving { reason, .. } => reason.to_string(),
            State::Established => uris::CLOSE_NORMAL.to_owned(),
        };
        End {
            reason: CloseReason::new(
                CloseKind::LeaveTimedOut,
                reason,
                Some(format!("no GOODBYE reply within {:?}", self.leave_timeout)),
            ),
            // The router is unresponsive: do not wait for a close handshake too.
            graceful: false,
        }
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
            let ws = &mut self.ws;
            let outbox = std::mem::take(&mut self.outbox);
            let close = async move {
                for m in outbox {
                    if ws.feed(m).await.is_err() {
                        return;
                    }
                }
                if ws.close(None).await.is_err() {
                    return;
                }
                // Wait for the router's close frame (or EOF).
                while let Some(Ok(_)) = ws.next().await {}
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
