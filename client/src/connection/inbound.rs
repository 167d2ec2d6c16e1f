//! The connection task's inbound side: routing each router message to its waiter.

use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, watch};
use wamp_proto::message::{self as msg, code};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Uri, Value};

use super::ENDED_STREAMS;
use super::{ActiveInvocation, Connection, End, HandlerReply, Pending, State, SubEntry};
use crate::call::{CallResult, CancelMode};
use crate::client::{detail_message, CloseKind, CloseReason};
use crate::error::{
    CallError, PublishError, RegisterError, Rejection, SubscribeError, TransportError,
};
use crate::register::{Invocation, InvocationLink};
use crate::subscribe::Event;
use crate::transport::Incoming;

impl Connection {
    pub(super) fn on_frame(
        &mut self,
        frame: Option<Result<Incoming, TransportError>>,
    ) -> Option<End> {
        let decoded = match frame {
            Some(Ok(Incoming::Message(m))) => m,
            Some(Ok(Incoming::Closed(message))) => {
                return Some(End {
                    reason: CloseReason::transport_lost(message),
                    graceful: true,
                });
            }
            Some(Err(e)) => {
                return Some(End {
                    reason: CloseReason::transport_lost(Some(e.to_string())),
                    graceful: false,
                })
            }
            None => {
                return Some(End {
                    reason: CloseReason::transport_lost(None),
                    graceful: false,
                })
            }
        };
        match decoded {
            Ok(m) => self.on_message(m),
            Err(e) => Some(self.violation(format!("undecodable message: {e}"))),
        }
    }

    fn on_message(&mut self, m: Message) -> Option<End> {
        let leaving = matches!(self.state, State::Leaving { .. });
        match m {
            Message::Goodbye(g) => {
                let message = detail_message(&g.details);
                if leaving {
                    return Some(End {
                        reason: CloseReason::new(CloseKind::Left, g.reason.to_string(), message),
                        graceful: true,
                    });
                }
                let reply = msg::Goodbye {
                    details: Dict::new(),
                    reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
                };
                self.send_or_log(reply.into());
                Some(End {
                    reason: CloseReason::new(
                        CloseKind::RouterGoodbye,
                        g.reason.to_string(),
                        message,
                    ),
                    graceful: true,
                })
            }
            Message::Abort(a) => Some(End {
                reason: CloseReason::new(
                    CloseKind::Aborted,
                    a.reason.to_string(),
                    detail_message(&a.details),
                ),
                graceful: true,
            }),
            Message::Result(r) => {
                if r.details.get("progress").and_then(Value::as_bool) == Some(true) {
                    // A progressive result: the call goes on.
                    match self.pending.get(&r.request) {
                        Some(Pending::Call { sink, .. }) => {
                            sink.progress(CallResult::from_payload(r.payload));
                        }
                        None => tracing::debug!(request = %r.request,
                            "progressive RESULT for an unknown request ignored"),
                        Some(_) => {
                            let p = self.pending.remove(&r.request);
                            return self.unexpected_reply("RESULT", r.request, p);
                        }
                    }
                    return None;
                }
                match self.pending.remove(&r.request) {
                    Some(Pending::Call { local, sink }) => {
                        self.call_ids.remove(&local);
                        sink.finish(Ok(CallResult::from_payload(r.payload)));
                        None
                    }
                    other => self.unexpected_reply("RESULT", r.request, other),
                }
            }
            Message::Error(e) => self.on_error(e),
            Message::Registered(r) => match self.pending.remove(&r.request) {
                Some(Pending::Register { entry, reply }) => {
                    // Registered even if the caller stopped waiting: dropping the handle
                    // keeps a registration, as documented.
                    self.add_registration(r.registration, entry);
                    let _ = reply.send(Ok(()));
                    None
                }
                Some(Pending::Reregister(entry)) => {
                    tracing::debug!(procedure = %entry.procedure, registration = %r.registration,
                        "registration restored");
                    self.add_registration(r.registration, entry);
                    self.restored();
                    None
                }
                other => self.unexpected_reply("REGISTERED", r.request, other),
            },
            Message::Unregistered(u) => {
                if u.request == 0 {
                    // Revocation: the router removed one of our registrations.
                    let id = u
                        .details
                        .as_ref()
                        .and_then(|d| id_detail(d, "registration"));
                    if let Some(id) = id {
                        tracing::info!(registration = %id, "registration revoked by the router");
                        if let Some(entry) = self.registrations.remove(&id) {
                            self.reg_keys.remove(&entry.key);
                            let reason = u.details.as_ref().and_then(|d| d.get("reason"));
                            let reason = reason.and_then(Value::as_str).unwrap_or_default();
                            entry.revoked.send_replace(Some(reason.to_owned()));
                        }
                    }
                    return None;
                }
                // `request` is not 0 here; an out-of-range one matches nothing.
                let request = Id::new(u.request)?;
                match self.pending.remove(&request) {
                    Some(Pending::Unregister {
                        registration,
                        key,
                        reply,
                    }) => {
                        self.registrations.remove(&registration);
                        self.reg_keys.remove(&key);
                        let _ = reply.send(Ok(()));
                        None
                    }
                    other => self.unexpected_reply("UNREGISTERED", request, other),
                }
            }
            Message::Subscribed(s) => match self.pending.remove(&s.request) {
                Some(Pending::Subscribe {
                    topic,
                    options,
                    sink,
                    reply,
                }) => {
                    sink.id.set(s.subscription);
                    if reply.send(Ok(())).is_ok() {
                        let entry = SubEntry {
                            topic,
                            options,
                            sinks: vec![sink],
                        };
                        self.add_subscription(s.subscription, entry);
                    } else if !self.subscriptions.contains_key(&s.subscription) && !leaving {
                        // Nobody waits for it any more.
                        self.send_unsubscribe(s.subscription, None);
                    }
                    None
                }
                Some(Pending::Resubscribe(entry)) => {
                    tracing::debug!(topic = %entry.topic, subscription = %s.subscription,
                        "subscription restored");
                    for sink in &entry.sinks {
                        sink.id.set(s.subscription);
                    }
                    self.add_subscription(s.subscription, entry);
                    self.restored();
                    None
                }
                other => self.unexpected_reply("SUBSCRIBED", s.request, other),
            },
            Message::Unsubscribed(u) => {
                if u.request == 0 {
                    let id = u
                        .details
                        .as_ref()
                        .and_then(|d| id_detail(d, "subscription"));
                    if let Some(id) = id {
                        tracing::info!(subscription = %id, "subscription revoked by the router");
                        // Dropping the senders ends the subscription streams.
                        self.remove_subscription(id);
                    }
                    return None;
                }
                let request = Id::new(u.request)?;
                match self.pending.remove(&request) {
                    Some(Pending::Unsubscribe(reply)) => {
                        if let Some(r) = reply {
                            let _ = r.send(Ok(()));
                        }
                        None
                    }
                    other => self.unexpected_reply("UNSUBSCRIBED", request, other),
                }
            }
            Message::Published(p) => match self.pending.remove(&p.request) {
                Some(Pending::Publish(tx)) => {
                    let _ = tx.send(Ok(p.publication));
                    None
                }
                other => self.unexpected_reply("PUBLISHED", p.request, other),
            },
            Message::Event(e) => {
                self.on_event(e);
                None
            }
            Message::Invocation(i) => {
                // After GOODBYE nothing but GOODBYE may be sent, so do not start handlers.
                if !leaving {
                    self.on_invocation(i);
                }
                None
            }
            Message::Interrupt(i) => {
                let mode = match i.options.get("mode").and_then(Value::as_str) {
                    Some("killnowait") => CancelMode::KillNoWait,
                    _ => CancelMode::Kill,
                };
                match self.invocations.get(&i.request) {
                    // A second INTERRUPT does not change the first one's mode.
                    Some(a) => {
                        a.cancel
                            .send_if_modified(|m| m.is_none() && m.replace(mode).is_none());
                    }
                    None => tracing::debug!(request = %i.request,
                        "INTERRUPT for an invocation no longer running ignored"),
                }
                None
            }
            other => Some(self.violation(format!("unexpected {} from the router", other.name()))),
        }
    }

    /// A reply whose request ID is unknown (ignored) or belongs to another kind of request
    /// (a protocol violation).
    fn unexpected_reply(&mut self, what: &str, request: Id, p: Option<Pending>) -> Option<End> {
        match p {
            None => {
                tracing::debug!(%request, "{what} for an unknown request ignored");
                None
            }
            Some(_) => Some(self.violation(format!(
                "{what} answers request {request}, which was not of that kind"
            ))),
        }
    }

    fn on_error(&mut self, e: msg::Error) -> Option<End> {
        let Some(p) = self.pending.remove(&e.request) else {
            tracing::debug!(request = %e.request, "ERROR for an unknown request ignored");
            return None;
        };
        match (e.request_type, p) {
            (code::CALL, Pending::Call { local, sink }) => {
                self.call_ids.remove(&local);
                sink.finish(Err(CallError::from_wire(&e.error, e.payload)));
            }
            (code::REGISTER, Pending::Register { reply, .. }) => {
                let r = Rejection::from_wire(&e.error, e.payload);
                let _ = reply.send(Err(RegisterError::Rejected(r)));
            }
            (code::REGISTER, Pending::Reregister(entry)) => {
                tracing::warn!(procedure = %entry.procedure, error = %e.error,
                    "registration could not be restored after reconnecting");
                entry.revoked.send_replace(Some(e.error.to_string()));
                self.restored();
            }
            (code::SUBSCRIBE, Pending::Resubscribe(entry)) => {
                // Dropping the sinks ends the streams.
                tracing::warn!(topic = %entry.topic, error = %e.error,
                    "subscription could not be restored after reconnecting; its stream ends");
                self.restored();
            }
            (
                code::UNREGISTER,
                Pending::Unregister {
                    registration,
                    key,
                    reply,
                },
            ) => {
                if e.error.as_str() == uris::NO_SUCH_REGISTRATION {
                    self.registrations.remove(&registration);
                    self.reg_keys.remove(&key);
                }
                let r = Rejection::from_wire(&e.error, e.payload);
                let _ = reply.send(Err(RegisterError::Rejected(r)));
            }
            (code::SUBSCRIBE, Pending::Subscribe { reply, .. }) => {
                let r = Rejection::from_wire(&e.error, e.payload);
                let _ = reply.send(Err(SubscribeError::Rejected(r)));
            }
            (code::UNSUBSCRIBE, Pending::Unsubscribe(reply)) => {
                let r = Rejection::from_wire(&e.error, e.payload);
                match reply {
                    Some(reply) => {
                        let _ = reply.send(Err(SubscribeError::Rejected(r)));
                    }
                    None => tracing::debug!(error = %r, "UNSUBSCRIBE refused"),
                }
            }
            (code::PUBLISH, Pending::Publish(tx)) => {
                let r = Rejection::from_wire(&e.error, e.payload);
                let _ = tx.send(Err(PublishError::Rejected(r)));
            }
            (t, _) => {
                return Some(self.violation(format!(
                    "ERROR with request type {t} answers request {}, which was not of that kind",
                    e.request
                )))
            }
        }
        None
    }

    fn on_event(&mut self, e: msg::Event) {
        let Some(entry) = self.subscriptions.get_mut(&e.subscription) else {
            // A race with UNSUBSCRIBE.
            tracing::trace!(subscription = %e.subscription, "EVENT for an unknown subscription");
            return;
        };
        let subscription = e.subscription;
        let event = Event::from_message(e);
        let local_subs = &mut self.local_subs;
        entry
            .sinks
            .retain(|sink| match sink.tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let n = sink.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(%subscription, dropped = n,
                        "subscriber is not reading its events; dropping events");
                    }
                    true
                }
                // The Subscription was dropped.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    local_subs.remove(&sink.local);
                    false
                }
            });
        if entry.sinks.is_empty() {
            self.subscriptions.remove(&subscription);
            self.send_unsubscribe(subscription, None);
        }
    }

    fn on_invocation(&mut self, i: msg::Invocation) {
        let request = i.request;
        let progress = i.details.get("progress").and_then(Value::as_bool) == Some(true);
        if let Some(active) = self.invocations.get_mut(&request) {
            // A further chunk of a progressive call invocation (same request ID).
            match &active.chunks {
                Some(tx) => {
                    let _ = tx.send(CallResult::from_payload(i.payload));
                    if !progress {
                        active.chunks = None; // the last one
                    }
                }
                None => tracing::debug!(%request, "INVOCATION repeats a running one; ignored"),
            }
            return;
        }
        if let Some(at) = self.ended_streams.iter().position(|r| *r == request) {
            // A chunk for a progressive invocation whose handler already answered.
            if !progress {
                self.ended_streams.remove(at);
            }
            return;
        }
        let Some(handler) = self
            .registrations
            .get(&i.registration)
            .map(|r| r.handler.clone())
        else {
            // A race with UNREGISTER.
            let m = msg::Error {
                request_type: code::INVOCATION,
                request,
                details: Dict::new(),
                error: Uri::new(uris::NO_SUCH_REGISTRATION),
                payload: Payload::default(),
            };
            self.send_or_log(m.into());
            return;
        };
        let (cancel, cancel_rx) = watch::channel(None);
        let (chunks, chunks_rx) = if progress {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.invocations
            .insert(request, ActiveInvocation { cancel, chunks });
        let link = InvocationLink::new(self.reply_tx.clone(), cancel_rx, chunks_rx);
        let invocation = Invocation::from_message(i).with_link(link);
        let replies = self.reply_tx.clone();
        // The handler is called inside its own task, so neither a slow handler nor a panic
        // (even in the closure's synchronous part) reaches this task.
        let task = tokio::spawn(async move { handler(invocation).await });
        tokio::spawn(async move {
            let result = match task.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%request, error = %e, "procedure handler panicked");
                    Err(CallError::runtime("procedure handler panicked"))
                }
            };
            let reply = HandlerReply {
                request,
                result,
                progress: false,
            };
            let _ = replies.send(reply).await;
        });
    }

    pub(super) fn on_handler_reply(&mut self, r: HandlerReply) {
        if r.progress {
            // Only while the invocation runs and was not interrupted.
            let running = self
                .invocations
                .get(&r.request)
                .is_some_and(|a| a.cancel.borrow().is_none());
            if let (true, Ok(result)) = (running, r.result) {
                let m = msg::Yield {
                    request: r.request,
                    options: dict([("progress", true.into())]),
                    payload: result.into_payload(),
                };
                if let Err(e) = self.send(m.into()) {
                    tracing::warn!(request = %r.request, error = %e,
                        "progressive result cannot be encoded; not sent");
                }
            }
            return;
        }
        if let Some(active) = self.invocations.remove(&r.request) {
            if active.chunks.is_some() {
                // The caller is still streaming: ignore the rest of its chunks.
                if self.ended_streams.len() == ENDED_STREAMS {
                    self.ended_streams.pop_front();
                }
                self.ended_streams.push_back(r.request);
            }
            if *active.cancel.borrow() == Some(CancelMode::KillNoWait) {
                // The router has answered the caller already and discards ours.
                return;
            }
        }
        let m: Message = match r.result {
            Ok(result) => msg::Yield {
                request: r.request,
                options: Dict::new(),
                payload: result.into_payload(),
            }
            .into(),
            Err(e) => error_message(r.request, &e),
        };
        if let Err(e) = self.send(m) {
            tracing::warn!(request = %r.request, error = %e, "handler result cannot be encoded");
            let fallback = CallError::runtime("the procedure's result could not be encoded");
            self.send_or_log(error_message(r.request, &fallback));
        }
    }

    /// Aborts the session because the router broke the protocol.
    fn violation(&mut self, text: String) -> End {
        tracing::warn!(%text, "protocol violation by the router; aborting");
        let m = msg::Abort {
            details: dict([("message", Value::Str(text.clone()))]),
            reason: Uri::new(uris::PROTOCOL_VIOLATION),
            payload: Payload::default(),
        };
        self.send_or_log(m.into());
        End {
            reason: CloseReason::new(
                CloseKind::ProtocolViolation,
                uris::PROTOCOL_VIOLATION,
                Some(text),
            ),
            graceful: true,
        }
    }
}

/// ERROR answering an INVOCATION.
fn error_message(request: Id, e: &CallError) -> Message {
    let (error, payload) = e.to_wire();
    msg::Error {
        request_type: code::INVOCATION,
        request,
        details: Dict::new(),
        error,
        payload,
    }
    .into()
}

/// An ID-valued detail (`registration`, `subscription`).
fn id_detail(details: &Dict, key: &str) -> Option<Id> {
    details.get(key).and_then(Value::as_u64).and_then(Id::new)
}
