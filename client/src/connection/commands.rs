//! The connection task's outbound side: turning each handle's [`Command`] into a request.

use tokio::sync::oneshot;
use wamp_proto::message as msg;
use wamp_proto::{uris, Dict, Id, Message, Payload, Uri};

use super::{Command, Connection, End, Pending, State};
use crate::call::CancelMode;
use crate::client::{CloseKind, CloseReason};
use crate::error::{CallError, LeaveError, PublishError, RegisterError, Rejection, SubscribeError};

impl Connection {
    pub(super) fn on_command(&mut self, cmd: Command) {
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
            Command::Register { entry, reply } => {
                let m = register_message(&entry.procedure, &entry.options);
                self.request(m, Pending::Register { entry, reply });
            }
            Command::Unregister { key, reply } => {
                let Some(&registration) = self.reg_keys.get(&key) else {
                    // Revoked, or not restored after a reconnect: the router has none.
                    let r = Rejection::from_wire(
                        &Uri::new(uris::NO_SUCH_REGISTRATION),
                        Payload::default(),
                    );
                    let _ = reply.send(Err(RegisterError::Rejected(r)));
                    return;
                };
                let m = move |request| {
                    msg::Unregister {
                        request,
                        registration,
                        options: None,
                    }
                    .into()
                };
                let pending = Pending::Unregister {
                    registration,
                    key,
                    reply,
                };
                self.request(m, pending);
            }
            Command::Subscribe {
                topic,
                options,
                sink,
                reply,
            } => {
                let m = subscribe_message(&topic, &options);
                let pending = Pending::Subscribe {
                    topic,
                    options,
                    sink,
                    reply,
                };
                self.request(m, pending);
            }
            Command::Unsubscribe { local, reply } => self.unsubscribe_local(local, reply),
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
    pub(super) fn request(&mut self, build: impl FnOnce(Id) -> Message, pending: Pending) {
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
    pub(super) fn send_or_log(&mut self, m: Message) -> bool {
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
        local: u64,
        reply: Option<oneshot::Sender<Result<(), SubscribeError>>>,
    ) {
        let entry = self
            .local_subs
            .remove(&local)
            .and_then(|id| Some(id).zip(self.subscriptions.get_mut(&id)));
        let Some((subscription, entry)) = entry else {
            // Already gone (revoked, or the last local one was removed before).
            if let Some(r) = reply {
                let _ = r.send(Ok(()));
            }
            return;
        };
        entry.sinks.retain(|s| s.local != local);
        if !entry.sinks.is_empty() {
            if let Some(r) = reply {
                let _ = r.send(Ok(()));
            }
            return;
        }
        self.subscriptions.remove(&subscription);
        self.send_unsubscribe(subscription, reply);
    }

    pub(super) fn send_unsubscribe(
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

    pub(super) fn start_leave(
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

    pub(super) fn leave_timed_out(&mut self) -> End {
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
}

/// REGISTER for `procedure` (the first time, or again after a reconnect).
pub(super) fn register_message(procedure: &Uri, options: &Dict) -> impl FnOnce(Id) -> Message {
    let (procedure, options) = (procedure.clone(), options.clone());
    move |request| {
        msg::Register {
            request,
            options,
            procedure,
        }
        .into()
    }
}

/// SUBSCRIBE to `topic` (the first time, or again after a reconnect).
pub(super) fn subscribe_message(topic: &Uri, options: &Dict) -> impl FnOnce(Id) -> Message {
    let (topic, options) = (topic.clone(), options.clone());
    move |request| {
        msg::Subscribe {
            request,
            options,
            topic,
        }
        .into()
    }
}
