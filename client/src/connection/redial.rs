//! The connection task across a lost connection: failing what was in flight, answering
//! requests while disconnected, dialing again with backoff, and restoring registrations and
//! subscriptions on the new session.

use std::future::Future;

use tokio::sync::mpsc;
use wamp_proto::{uris, Id, SequentialIds, Uri};

use super::commands::{register_message, subscribe_message};
use super::{Command, Connection, End, KeepAlive, Pending, RegEntry, State, SubEntry, REPLY_QUEUE};
use crate::client::{CloseKind, CloseReason};
use crate::error::{CallError, PublishError, RegisterError, SubscribeError};
use crate::handshake::Joined;
use crate::reconnect::{random_unit, ConnectionState};

/// Why the wait for a new connection stopped early.
enum Stop {
    /// [`Client::leave`](crate::Client::leave) was called.
    Leave(tokio::sync::oneshot::Sender<Result<CloseReason, crate::LeaveError>>),
    /// Every handle is gone.
    Abandoned,
}

impl Connection {
    /// Whether the session that ended as `end` is followed by a reconnect: after the
    /// connection dropped without a WAMP close (keep-alive included) and after the router's
    /// GOODBYE `wamp.close.system_shutdown` (a restart). Not after this client left, nor
    /// after a deliberate end: another GOODBYE (the session was killed, its realm closed),
    /// an ABORT, or a protocol violation.
    pub(super) fn may_reconnect(&self, end: &End) -> bool {
        let restartable = match end.reason.kind {
            CloseKind::TransportLost => true,
            CloseKind::RouterGoodbye => end.reason.reason == uris::CLOSE_SYSTEM_SHUTDOWN,
            _ => false,
        };
        restartable && self.reconnect.is_enabled() && matches!(self.state, State::Established)
    }

    /// After a lost connection: fails every request in flight with `ConnectionLost` (an
    /// unregister or unsubscribe in flight succeeds: the session that held it is gone) and
    /// keeps the registrations and subscriptions to restore.
    pub(super) fn disconnect(&mut self, lost: &CloseReason) {
        self.set_state(ConnectionState::Disconnected {
            next_attempt: self.attempts + 1,
            reason: lost.to_string(),
        });
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Call { sink, .. } => sink.finish(Err(CallError::ConnectionLost)),
                Pending::Register { reply, .. } => {
                    let _ = reply.send(Err(RegisterError::ConnectionLost));
                }
                Pending::Unregister {
                    registration,
                    key,
                    reply,
                } => {
                    self.registrations.remove(&registration);
                    self.reg_keys.remove(&key);
                    let _ = reply.send(Ok(()));
                }
                Pending::Subscribe { reply, .. } => {
                    let _ = reply.send(Err(SubscribeError::ConnectionLost));
                }
                Pending::Unsubscribe(reply) => {
                    if let Some(r) = reply {
                        let _ = r.send(Ok(()));
                    }
                }
                Pending::Publish(tx) => {
                    let _ = tx.send(Err(PublishError::ConnectionLost));
                }
                Pending::Reregister(entry) => self.stash.registrations.push(entry),
                Pending::Resubscribe(entry) => self.stash.subscriptions.push(entry),
            }
        }
        self.restoring = 0;
        self.call_ids.clear();
        self.reg_keys.clear();
        self.local_subs.clear();
        let regs = self.registrations.drain().map(|(_, e)| e);
        self.stash.registrations.extend(regs);
        let subs = self.subscriptions.drain().map(|(_, e)| e);
        self.stash.subscriptions.extend(subs);
        // Handlers still running see `Invocation::cancelled`; their answers (for a session
        // that is gone) go to the old reply queue, which nobody reads any more.
        self.invocations.clear();
        self.ended_streams.clear();
        let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
        self.reply_tx = reply_tx;
        self.reply_rx = reply_rx;
    }

    /// Dials until a session is joined, waiting as the policy says between attempts and
    /// answering requests meanwhile. `Err` when the client closes instead: it left, every
    /// handle is gone, or the attempts ran out. Attempts count from the last time the client
    /// was connected with everything restored, so a router that drops every new session
    /// early is not redialed ever faster.
    pub(super) async fn redial(&mut self, lost: CloseReason) -> Result<Joined, End> {
        tracing::warn!(reason = %lost, "connection lost; reconnecting");
        let mut last = lost;
        loop {
            let attempt = self.attempts.saturating_add(1);
            if !self.reconnect.allows(attempt) {
                tracing::warn!(attempts = attempt - 1, "giving up reconnecting");
                return Err(self.gave_up(last));
            }
            self.set_state(ConnectionState::Disconnected {
                next_attempt: attempt,
                reason: last.to_string(),
            });
            let delay = self.reconnect.delay(attempt, random_unit());
            if let Err(stop) = self.serve_offline(tokio::time::sleep(delay)).await {
                return Err(self.stopped(stop, last));
            }
            self.attempts = attempt;
            self.set_state(ConnectionState::Reconnecting { attempt });
            let dialer = self.dialer.clone();
            match self.serve_offline(async move { dialer.dial().await }).await {
                Ok(Ok(joined)) => {
                    tracing::info!(attempt, session = %joined.session, "reconnected");
                    return Ok(joined);
                }
                Ok(Err(e)) => {
                    tracing::warn!(attempt, error = %e, "reconnect attempt failed");
                    last = CloseReason::transport_lost(Some(e.to_string()));
                }
                Err(stop) => return Err(self.stopped(stop, last)),
            }
        }
    }

    /// The end after the last allowed attempt failed.
    fn gave_up(&self, last: CloseReason) -> End {
        End {
            reason: last,
            graceful: false,
        }
    }

    /// The end when the client stopped waiting for a connection.
    fn stopped(&mut self, stop: Stop, last: CloseReason) -> End {
        if let Stop::Leave(reply) = stop {
            // `finish` answers it: the session had ended already.
            self.state = State::Leaving {
                reason: Uri::new(uris::CLOSE_NORMAL),
                deadline: Box::pin(tokio::time::sleep(self.leave_timeout)),
                waiters: vec![reply],
            };
        }
        End {
            reason: last,
            graceful: false,
        }
    }

    /// Runs `f` while answering requests as a disconnected client does.
    async fn serve_offline<F: Future>(&mut self, f: F) -> Result<F::Output, Stop> {
        tokio::pin!(f);
        loop {
            tokio::select! {
                out = &mut f => return Ok(out),
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(cmd) => self.on_offline_command(cmd)?,
                    None => return Err(Stop::Abandoned),
                },
            }
        }
    }

    /// Answers a request while disconnected: nothing can be sent, so requests fail with
    /// `NotConnected`, while unregistering and unsubscribing succeed (nothing is restored).
    fn on_offline_command(&mut self, cmd: Command) -> Result<(), Stop> {
        match cmd {
            Command::Call { sink, .. } => sink.finish(Err(CallError::NotConnected)),
            Command::CallChunk { .. } | Command::Cancel { .. } => {}
            Command::Register { reply, .. } => {
                let _ = reply.send(Err(RegisterError::NotConnected));
            }
            Command::Unregister { key, reply } => {
                self.stash.registrations.retain(|e| e.key != key);
                let _ = reply.send(Ok(()));
            }
            Command::Subscribe { reply, .. } => {
                let _ = reply.send(Err(SubscribeError::NotConnected));
            }
            Command::Unsubscribe { local, reply } => {
                for entry in &mut self.stash.subscriptions {
                    entry.sinks.retain(|s| s.local != local);
                }
                self.stash.subscriptions.retain(|e| !e.sinks.is_empty());
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
            }
            Command::Publish { ack, .. } => match ack {
                Some(ack) => {
                    let _ = ack.send(Err(PublishError::NotConnected));
                }
                None => tracing::debug!("publication dropped: not connected"),
            },
            Command::Leave { reply, .. } => return Err(Stop::Leave(reply)),
        }
        Ok(())
    }

    /// Takes over a new session and restores every registration and subscription on it;
    /// the state turns `Connected` once the router has answered them all.
    pub(super) fn resume(&mut self, joined: Joined) {
        self.max_message_len = joined.transport.max_message_len();
        self.transport = joined.transport;
        self.serializer = joined.serializer;
        self.ids = SequentialIds::new();
        // What the old socket could not take (`close_transport` flushed the rest).
        self.outbox.clear();
        self.needs_flush = false;
        self.read_first = true;
        self.state = State::Established;
        self.keepalive = self.keepalive_interval.map(KeepAlive::new);
        self.session_tx.send_replace(joined.session);
        for entry in std::mem::take(&mut self.stash.registrations) {
            let m = register_message(&entry.procedure, &entry.options);
            self.request(m, Pending::Reregister(entry));
            self.restoring += 1;
        }
        for mut entry in std::mem::take(&mut self.stash.subscriptions) {
            // Local subscriptions dropped while disconnected are not restored.
            entry.sinks.retain(|s| !s.tx.is_closed());
            if entry.sinks.is_empty() {
                continue;
            }
            let m = subscribe_message(&entry.topic, &entry.options);
            self.request(m, Pending::Resubscribe(entry));
            self.restoring += 1;
        }
        tracing::debug!(
            requests = self.restoring,
            "restoring registrations and subscriptions"
        );
        if self.restoring == 0 {
            self.announce_connected();
        }
    }

    /// One restoring request was answered.
    pub(super) fn restored(&mut self) {
        self.restoring = self.restoring.saturating_sub(1);
        if self.restoring == 0 {
            self.announce_connected();
        }
    }

    fn announce_connected(&mut self) {
        self.attempts = 0;
        let session = *self.session_tx.borrow();
        self.set_state(ConnectionState::Connected { session });
    }

    /// Publishes a new state to the watchers (nothing when it is the same).
    pub(super) fn set_state(&self, state: ConnectionState) {
        self.state_tx.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    // ----- what the session holds -----

    pub(super) fn add_registration(&mut self, id: Id, entry: RegEntry) {
        entry.id.set(id);
        self.reg_keys.insert(entry.key, id);
        self.registrations.insert(id, entry);
    }

    /// Adds local subscriptions to a router subscription (the router gives one ID to
    /// equal subscriptions).
    pub(super) fn add_subscription(&mut self, id: Id, entry: SubEntry) {
        for sink in &entry.sinks {
            self.local_subs.insert(sink.local, id);
        }
        match self.subscriptions.get_mut(&id) {
            Some(existing) => existing.sinks.extend(entry.sinks),
            None => {
                self.subscriptions.insert(id, entry);
            }
        }
    }

    /// Forgets a router subscription (dropping its sinks ends the streams).
    pub(super) fn remove_subscription(&mut self, id: Id) {
        if let Some(entry) = self.subscriptions.remove(&id) {
            for sink in &entry.sinks {
                self.local_subs.remove(&sink.local);
            }
        }
    }
}
