//! The connection task's inbound side: routing each router message to its waiter.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use wamp_proto::message::{self as msg, code};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Uri, Value};

use super::{Connection, End, HandlerReply, Pending, State};
use crate::call::CallResult;
use crate::client::{detail_message, CloseKind, CloseReason};
use crate::error::{CallError, PublishError, RegisterError, Rejection, SubscribeError};
use crate::register::Invocation;
use crate::subscribe::Event;

impl Connection {
    pub(super) fn on_frame(
        &mut self,
        frame: Option<Result<WsMessage, tungstenite::Error>>,
    ) -> Option<End> {
        let bytes = match frame {
            Some(Ok(WsMessage::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
            Some(Ok(WsMessage::Close(frame))) => {
                let message = frame
                    .map(|f| format!("WebSocket closed by the router ({}) {}", f.code, f.reason));
                return Some(End {
                    reason: CloseReason::transport_lost(message),
                    graceful: true,
                });
            }
            Some(Ok(_)) => return None, // ping/pong: tungstenite answers pings itself
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
        match self.serializer.decode(&bytes) {
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
            Message::Result(r) => match self.pending.remove(&r.request) {
                Some(Pending::Call(tx)) => {
                    let _ = tx.send(Ok(CallResult::from_payload(r.payload)));
                    None
                }
                other => self.unexpected_reply("RESULT", r.request, other),
            },
            Message::Error(e) => self.on_error(e),
            Message::Registered(r) => match self.pending.remove(&r.request) {
                Some(Pending::Register { handler, reply }) => {
                    // Registered even if the caller stopped waiting: dropping the handle
                    // keeps a registration, as documented.
                    self.registrations.insert(r.registration, handler);
                    let _ = reply.send(Ok(r.registration));
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
                        self.registrations.remove(&id);
                    }
                    return None;
                }
                // `request` is not 0 here; an out-of-range one matches nothing.
                let request = Id::new(u.request)?;
                match self.pending.remove(&request) {
                    Some(Pending::Unregister {
                        registration,
                        reply,
                    }) => {
                        self.registrations.remove(&registration);
                        let _ = reply.send(Ok(()));
                        None
                    }
                    other => self.unexpected_reply("UNREGISTERED", request, other),
                }
            }
            Message::Subscribed(s) => match self.pending.remove(&s.request) {
                Some(Pending::Subscribe { sink, reply }) => {
                    if reply.send(Ok(s.subscription)).is_ok() {
                        self.subscriptions
                            .entry(s.subscription)
                            .or_default()
                            .push(sink);
                    } else if !self.subscriptions.contains_key(&s.subscription) && !leaving {
                        // Nobody waits for it any more.
                        self.send_unsubscribe(s.subscription, None);
                    }
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
                        self.subscriptions.remove(&id);
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
                // Call canceling is not announced, so a router should not send this.
                tracing::debug!(request = %i.request, "INTERRUPT ignored (call canceling not supported)");
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
            (code::CALL, Pending::Call(tx)) => {
                let _ = tx.send(Err(CallError::from_wire(&e.error, e.payload)));
            }
            (code::REGISTER, Pending::Register { reply, .. }) => {
                let r = Rejection::from_wire(&e.error, e.payload);
                let _ = reply.send(Err(RegisterError::Rejected(r)));
            }
            (
                code::UNREGISTER,
                Pending::Unregister {
                    registration,
                    reply,
                },
            ) => {
                if e.error.as_str() == uris::NO_SUCH_REGISTRATION {
                    self.registrations.remove(&registration);
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
        let Some(sinks) = self.subscriptions.get_mut(&e.subscription) else {
            // A race with UNSUBSCRIBE.
            tracing::trace!(subscription = %e.subscription, "EVENT for an unknown subscription");
            return;
        };
        let subscription = e.subscription;
        let event = Event::from_message(e);
        sinks.retain(|sink| match sink.tx.try_send(event.clone()) {
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
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if sinks.is_empty() {
            self.subscriptions.remove(&subscription);
            self.send_unsubscribe(subscription, None);
        }
    }

    fn on_invocation(&mut self, i: msg::Invocation) {
        let request = i.request;
        let Some(handler) = self.registrations.get(&i.registration).cloned() else {
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
        let invocation = Invocation::from_message(i);
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
            let _ = replies.send(HandlerReply { request, result }).await;
        });
    }

    pub(super) fn on_handler_reply(&mut self, r: HandlerReply) {
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
