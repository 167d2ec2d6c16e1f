//! Registering procedures: [`RegisterBuilder`], [`Registration`], [`Invocation`], and the
//! Advanced Profile callee features (patterns, shared registrations, caller
//! identification, progressive results and invocations, cancellation, revocation).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use wamp_proto::{message, Dict, Id, MatchPolicy, Uri, Value};

use crate::call::{CallResult, CancelMode};
use crate::client::Client;
use crate::connection::{Command, Handler, HandlerReply, IdCell, RegEntry};
use crate::error::{CallError, RegisterError};
use crate::payload;

/// The callee features announced in HELLO (`roles.callee.features`).
pub(crate) const CALLEE_FEATURES: &[&str] = &[
    "progressive_call_results",
    "call_canceling",
    "pattern_based_registration",
    "shared_registration",
    "caller_identification",
    "registration_revocation",
    "progressive_call_invocations",
];

/// One call of a registered procedure, as handed to its handler.
///
/// Besides the payload it carries the Advanced Profile details ([`Invocation::procedure`]
/// for pattern registrations, the disclosed [`Invocation::caller`]) and the means to
/// answer progressively ([`Invocation::progress`]), to notice cancellation
/// ([`Invocation::cancelled`]) and to read a progressive invocation's further chunks
/// ([`Invocation::next_chunk`]). Clones share these.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The INVOCATION request ID.
    pub request: Id,
    /// The registration this invocation is for.
    pub registration: Id,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// INVOCATION.Details (e.g. `procedure` for pattern registrations, `caller` when
    /// disclosed).
    pub details: Dict,
    link: Option<Arc<InvocationLink>>,
}

/// Compares the public fields (the request, registration, payload and details).
impl PartialEq for Invocation {
    fn eq(&self, other: &Invocation) -> bool {
        self.request == other.request
            && self.registration == other.registration
            && self.args == other.args
            && self.kwargs == other.kwargs
            && self.details == other.details
    }
}

/// An invocation's tie to the connection task.
#[derive(Debug)]
pub(crate) struct InvocationLink {
    /// Where progressive results go (the queue of handler answers, so they stay in order
    /// with the final one).
    replies: mpsc::Sender<HandlerReply>,
    /// `Some(mode)` once the router sent INTERRUPT; closed when the session ends.
    cancel: watch::Receiver<Option<CancelMode>>,
    /// A progressive invocation's further chunks; closed after the last one.
    chunks: Option<Mutex<mpsc::UnboundedReceiver<CallResult>>>,
}

impl InvocationLink {
    pub(crate) fn new(
        replies: mpsc::Sender<HandlerReply>,
        cancel: watch::Receiver<Option<CancelMode>>,
        chunks: Option<mpsc::UnboundedReceiver<CallResult>>,
    ) -> InvocationLink {
        InvocationLink {
            replies,
            cancel,
            chunks: chunks.map(Mutex::new),
        }
    }
}

impl Invocation {
    /// The procedure actually called, when the router tells it (pattern registrations).
    pub fn procedure(&self) -> Option<&str> {
        self.details.get("procedure").and_then(Value::as_str)
    }

    /// The caller's session ID, when the router discloses it (the caller asked with
    /// [`CallBuilder::disclose_me`](crate::CallBuilder::disclose_me), or the registration
    /// with [`RegisterBuilder::disclose_caller`]).
    pub fn caller(&self) -> Option<Id> {
        self.details
            .get("caller")
            .and_then(Value::as_u64)
            .and_then(Id::new)
    }

    /// The caller's authid, when disclosed.
    pub fn caller_authid(&self) -> Option<&str> {
        self.details.get("caller_authid").and_then(Value::as_str)
    }

    /// The caller's authrole, when disclosed.
    pub fn caller_authrole(&self) -> Option<&str> {
        self.details.get("caller_authrole").and_then(Value::as_str)
    }

    /// The call's timeout, when the caller set one (the router enforces it; this is for
    /// information, e.g. to give up early).
    pub fn timeout(&self) -> Option<Duration> {
        self.details
            .get("timeout")
            .and_then(Value::as_u64)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    /// Whether the caller asked for progressive results (`receive_progress`), so that
    /// [`Invocation::progress`] reaches it.
    pub fn receives_progress(&self) -> bool {
        self.details
            .get("receive_progress")
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// Sends a progressive result (YIELD with `progress`) ahead of the handler's final
    /// answer; the caller receives them in order. When the caller did not ask for them
    /// ([`Invocation::receives_progress`] is false) nothing is sent and `Ok(())` is returned,
    /// so a handler may report progress unconditionally. Nothing is sent either once the
    /// invocation was interrupted. Fails with `ConnectionClosed` when the session is gone.
    pub async fn progress(&self, result: impl Into<CallResult>) -> Result<(), CallError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        if !self.receives_progress() || link.cancel.borrow().is_some() {
            return Ok(());
        }
        let reply = HandlerReply::progress(self.request, result.into());
        link.replies
            .send(reply)
            .await
            .map_err(|_| CallError::ConnectionClosed)
    }

    /// Resolves when the router interrupts this invocation (the call was canceled or timed
    /// out; see [`Invocation::cancel_mode`]), or when the session ends (or, for a clone kept
    /// elsewhere, once the invocation has been answered). Never resolves for an invocation
    /// that is not running under a client.
    ///
    /// Cancellation is cooperative: a handler that never looks runs to completion. After an
    /// INTERRUPT in [`CancelMode::Kill`] the handler's answer is what the caller receives,
    /// so it should return soon, typically `Err(CallError::canceled())`; after
    /// [`CancelMode::KillNoWait`] (also the router's timeout) its answer is not sent.
    ///
    /// ```no_run
    /// # use wamp_client::{CallError, Invocation, Value};
    /// # async fn long_work() -> Value { Value::Null }
    /// async fn handler(inv: Invocation) -> Result<Value, CallError> {
    ///     tokio::select! {
    ///         v = long_work() => Ok(v),
    ///         _ = inv.cancelled() => Err(CallError::canceled()),
    ///     }
    /// }
    /// ```
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let rx = self.link.as_ref().map(|l| l.cancel.clone());
        async move {
            match rx {
                Some(mut rx) => {
                    let _ = rx.wait_for(Option::is_some).await;
                }
                None => std::future::pending().await,
            }
        }
    }

    /// Whether the router has interrupted this invocation (or the session has ended, or the
    /// invocation has been answered).
    pub fn is_cancelled(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.cancel.borrow().is_some() || l.cancel.has_changed().is_err())
    }

    /// The mode of the router's INTERRUPT, once it came (`Kill` or `KillNoWait`).
    pub fn cancel_mode(&self) -> Option<CancelMode> {
        self.link.as_ref().and_then(|l| *l.cancel.borrow())
    }

    /// Whether this is a progressive call invocation: the caller streams its arguments in
    /// chunks, the first being this invocation's payload; read the others with
    /// [`Invocation::next_chunk`].
    pub fn is_progressive(&self) -> bool {
        self.details.get("progress").and_then(Value::as_bool) == Some(true)
    }

    /// The next chunk of a progressive call invocation (its arguments as a [`CallResult`]),
    /// in order; `None` after the caller's last chunk was returned, for an invocation that is
    /// not progressive, or when the session ends. Waits for the caller: combine it with
    /// [`Invocation::cancelled`] if the call may be canceled.
    pub async fn next_chunk(&self) -> Option<CallResult> {
        let chunks = self.link.as_ref()?.chunks.as_ref()?;
        chunks.lock().await.recv().await
    }

    /// Deserializes the first positional argument, else the keyword arguments as a map, else
    /// `null` (the rule of [`CallResult::decode`]). Its error, returned with `?`, answers
    /// the caller `wamp.error.invalid_argument`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode(&self.args, &self.kwargs).map_err(CallError::InvalidPayload)
    }

    /// Deserializes the whole positional list (e.g. `let (a, b): (i64, i64) = ..`).
    pub fn decode_args<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode_args(&self.args).map_err(CallError::InvalidPayload)
    }

    /// Deserializes the keyword arguments (e.g. into a struct).
    pub fn decode_kwargs<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode_kwargs(&self.kwargs).map_err(CallError::InvalidPayload)
    }

    pub(crate) fn from_message(m: message::Invocation) -> Invocation {
        Invocation {
            request: m.request,
            registration: m.registration,
            args: m.payload.args.unwrap_or_default(),
            kwargs: m.payload.kwargs.unwrap_or_default(),
            details: m.details,
            link: None,
        }
    }

    pub(crate) fn with_link(mut self, link: InvocationLink) -> Invocation {
        self.link = Some(Arc::new(link));
        self
    }
}

/// How a shared registration picks the callee of each call (`invoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InvokePolicy {
    /// One callee only; registering the procedure again fails (the default).
    #[default]
    Single,
    /// Each callee in turn, in registration order.
    RoundRobin,
    /// A callee picked at random.
    Random,
    /// The callee that registered first.
    First,
    /// The callee that registered last.
    Last,
}

impl InvokePolicy {
    /// The wire name: `single`, `roundrobin`, `random`, `first` or `last`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvokePolicy::Single => "single",
            InvokePolicy::RoundRobin => "roundrobin",
            InvokePolicy::Random => "random",
            InvokePolicy::First => "first",
            InvokePolicy::Last => "last",
        }
    }
}

/// A registration being prepared; `.await` it to send REGISTER and get a [`Registration`].
#[must_use = "nothing is registered until awaited"]
pub struct RegisterBuilder {
    client: Client,
    procedure: Uri,
    options: Dict,
    handler: Handler,
}

impl fmt::Debug for RegisterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterBuilder")
            .field("procedure", &self.procedure)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RegisterBuilder {
    pub(crate) fn new<F, Fut, R>(client: Client, procedure: Uri, handler: F) -> RegisterBuilder
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, CallError>> + Send + 'static,
        R: Into<CallResult>,
    {
        let handler: Handler = Arc::new(move |inv| -> BoxFuture<'static, _> {
            let fut = handler(inv);
            Box::pin(async move { fut.await.map(Into::into) })
        });
        RegisterBuilder {
            client,
            procedure,
            options: Dict::new(),
            handler,
        }
    }

    /// Registers a pattern: `Prefix` or `Wildcard` (where the router supports them); the
    /// called procedure is then in [`Invocation::procedure`]. A call goes to the exact
    /// registration if there is one, else to the longest matching prefix, else to the most
    /// specific wildcard.
    pub fn match_policy(mut self, policy: MatchPolicy) -> Self {
        match policy {
            MatchPolicy::Exact => self.options.remove("match"),
            p => self.options.insert("match".into(), p.as_str().into()),
        };
        self
    }

    /// Prefix registration: the procedure is a string prefix of the URIs it serves, e.g.
    /// `com.app.` serves `com.app.user.get` (`match_policy(MatchPolicy::Prefix)`).
    pub fn prefix(self) -> Self {
        self.match_policy(MatchPolicy::Prefix)
    }

    /// Wildcard registration: empty URI components match any one component, e.g.
    /// `com.app..get` serves `com.app.user.get` (`match_policy(MatchPolicy::Wildcard)`).
    pub fn wildcard(self) -> Self {
        self.match_policy(MatchPolicy::Wildcard)
    }

    /// Shares the procedure with other callees that register it with the same policy
    /// (`invoke`); registering with a different policy than the existing one fails.
    pub fn invoke(mut self, policy: InvokePolicy) -> Self {
        match policy {
            InvokePolicy::Single => self.options.remove("invoke"),
            p => self.options.insert("invoke".into(), p.as_str().into()),
        };
        self
    }

    /// Takes the procedure over (`force_reregister`): the router revokes the existing
    /// registration of other callees (they see [`Registration::revoked`]) and registers
    /// this one.
    pub fn force_reregister(self) -> Self {
        self.option("force_reregister", true)
    }

    /// Asks the router to disclose every caller to this callee (`disclose_caller`), read
    /// with [`Invocation::caller`].
    pub fn disclose_caller(self) -> Self {
        self.option("disclose_caller", true)
    }

    /// Sets a raw REGISTER option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    async fn run(self) -> Result<Registration, RegisterError> {
        let (reply, rx) = oneshot::channel();
        let (revoked_tx, revoked) = watch::channel(None);
        let key = self.client.next_local_id();
        let id = IdCell::default();
        let entry = RegEntry {
            key,
            procedure: self.procedure.clone(),
            options: self.options,
            handler: self.handler,
            revoked: revoked_tx,
            id: id.clone(),
        };
        self.client
            .send(Command::Register { entry, reply })
            .await
            .map_err(|()| RegisterError::ConnectionClosed)?;
        rx.await.unwrap_or(Err(RegisterError::ConnectionClosed))?;
        Ok(Registration {
            key,
            id,
            procedure: self.procedure.to_string(),
            cmd: self.client.command_sender(),
            revoked,
        })
    }
}

impl IntoFuture for RegisterBuilder {
    type Output = Result<Registration, RegisterError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A registered procedure.
///
/// Dropping the handle keeps the procedure registered (until the client closes; a
/// reconnect registers it again with the same handler); call [`Registration::unregister`]
/// to remove it. While the handle exists it keeps the client open. The router may also
/// revoke it (another callee's `force_reregister`), or a reconnect fail to restore it:
/// [`Registration::revoked`] tells.
#[derive(Debug)]
pub struct Registration {
    key: u64,
    id: IdCell,
    procedure: String,
    cmd: mpsc::Sender<Command>,
    /// `Some(reason)` once revoked; closed when the session ends.
    revoked: watch::Receiver<Option<String>>,
}

impl Registration {
    /// The router's registration ID (a new one after a reconnect restored it).
    pub fn id(&self) -> Id {
        self.id.get()
    }

    /// The registered procedure URI (or pattern).
    pub fn procedure(&self) -> &str {
        &self.procedure
    }

    /// Resolves when the router revokes this registration (UNREGISTERED with request 0),
    /// with the reason it gave (e.g. `wamp.error.unregistered`, or empty), or when a
    /// reconnect could not restore it, with the router's error URI (e.g.
    /// `wamp.error.procedure_already_exists`: another callee took the procedure meanwhile);
    /// or with `None` when the client closes first. No invocation reaches the handler after
    /// that.
    pub async fn revoked(&self) -> Option<String> {
        let mut rx = self.revoked.clone();
        let r = rx.wait_for(Option::is_some).await.ok()?;
        (*r).clone()
    }

    /// Whether the router has revoked this registration.
    pub fn is_revoked(&self) -> bool {
        self.revoked.borrow().is_some()
    }

    /// The reason of the router's revocation, once revoked.
    pub fn revocation(&self) -> Option<String> {
        self.revoked.borrow().clone()
    }

    /// Sends UNREGISTER and waits for UNREGISTERED. Invocations already running finish.
    pub async fn unregister(self) -> Result<(), RegisterError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Unregister {
            key: self.key,
            reply,
        };
        self.cmd
            .send(cmd)
            .await
            .map_err(|_| RegisterError::ConnectionClosed)?;
        rx.await.unwrap_or(Err(RegisterError::ConnectionClosed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::Payload;

    #[test]
    fn invocation_accessors() {
        let inv = Invocation::from_message(message::Invocation {
            request: Id::new(3).unwrap(),
            registration: Id::new(9).unwrap(),
            details: wamp_proto::options::dict([
                ("procedure", "com.x.y".into()),
                ("caller", 42u64.into()),
                ("caller_authid", "alice".into()),
                ("caller_authrole", "user".into()),
                ("timeout", 250u64.into()),
                ("receive_progress", true.into()),
                ("progress", true.into()),
            ]),
            payload: Payload {
                args: Some(vec![Value::from(2), Value::from(3)]),
                kwargs: None,
                raw: None,
            },
        });
        assert_eq!(inv.procedure(), Some("com.x.y"));
        assert_eq!(inv.caller().map(Id::get), Some(42));
        assert_eq!(inv.caller_authid(), Some("alice"));
        assert_eq!(inv.caller_authrole(), Some("user"));
        assert_eq!(inv.timeout(), Some(Duration::from_millis(250)));
        assert!(inv.receives_progress() && inv.is_progressive());
        assert!(!inv.is_cancelled() && inv.cancel_mode().is_none());
        assert_eq!(inv.decode_args::<(i64, i64)>().unwrap(), (2, 3));
        assert_eq!(inv.decode::<i64>().unwrap(), 2);
        let e = inv.decode::<String>().unwrap_err();
        assert_eq!(e.to_wire().0.as_str(), wamp_proto::uris::INVALID_ARGUMENT);
        assert_eq!(inv.clone(), inv);
    }

    #[test]
    fn bare_invocation_has_no_extras() {
        let inv = Invocation::from_message(message::Invocation {
            request: Id::new(1).unwrap(),
            registration: Id::new(1).unwrap(),
            details: Dict::new(),
            payload: Payload::default(),
        });
        assert_eq!(inv.caller(), None);
        assert_eq!(inv.timeout(), None);
        assert!(!inv.receives_progress() && !inv.is_progressive());
    }

    #[test]
    fn invoke_policy_names() {
        let all = [
            (InvokePolicy::Single, "single"),
            (InvokePolicy::RoundRobin, "roundrobin"),
            (InvokePolicy::Random, "random"),
            (InvokePolicy::First, "first"),
            (InvokePolicy::Last, "last"),
        ];
        for (p, name) in all {
            assert_eq!(p.as_str(), name);
        }
        assert_eq!(InvokePolicy::default(), InvokePolicy::Single);
    }
}
