//! Registering procedures: [`RegisterBuilder`], [`Registration`], [`Invocation`].

use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use wamp_proto::{message, Dict, Id, MatchPolicy, Uri, Value};

use crate::call::CallResult;
use crate::client::Client;
use crate::connection::{Command, Handler};
use crate::error::{CallError, RegisterError};
use crate::payload;

/// One call of a registered procedure, as handed to its handler.
#[derive(Debug, Clone, PartialEq)]
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
}

impl Invocation {
    /// The procedure actually called, when the router tells it (pattern registrations).
    pub fn procedure(&self) -> Option<&str> {
        self.details.get("procedure").and_then(Value::as_str)
    }

    /// The caller's session ID, when the router discloses it.
    pub fn caller(&self) -> Option<Id> {
        self.details
            .get("caller")
            .and_then(Value::as_u64)
            .and_then(Id::new)
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
    /// called procedure is then in [`Invocation::procedure`].
    pub fn match_policy(mut self, policy: MatchPolicy) -> Self {
        match policy {
            MatchPolicy::Exact => self.options.remove("match"),
            p => self.options.insert("match".into(), p.as_str().into()),
        };
        self
    }

    /// Sets a raw REGISTER option (e.g. `"invoke"`: `"roundrobin"`, where supported).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    async fn run(self) -> Result<Registration, RegisterError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Register {
            procedure: self.procedure.clone(),
            options: self.options,
            handler: self.handler,
            reply,
        };
        self.client
            .send(cmd)
            .await
            .map_err(|()| RegisterError::ConnectionClosed)?;
        let id = rx.await.unwrap_or(Err(RegisterError::ConnectionClosed))?;
        Ok(Registration {
            id,
            procedure: self.procedure.to_string(),
            cmd: self.client.command_sender(),
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
/// Dropping the handle keeps the procedure registered (until the session ends); call
/// [`Registration::unregister`] to remove it. While the handle exists it keeps the session
/// open.
#[derive(Debug)]
pub struct Registration {
    id: Id,
    procedure: String,
    cmd: mpsc::Sender<Command>,
}

impl Registration {
    /// The router's registration ID.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The registered procedure URI (or pattern).
    pub fn procedure(&self) -> &str {
        &self.procedure
    }

    /// Sends UNREGISTER and waits for UNREGISTERED. Invocations already running finish.
    pub async fn unregister(self) -> Result<(), RegisterError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Unregister {
            registration: self.id,
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
            ]),
            payload: Payload {
                args: Some(vec![Value::from(2), Value::from(3)]),
                kwargs: None,
            },
        });
        assert_eq!(inv.procedure(), Some("com.x.y"));
        assert_eq!(inv.caller().map(Id::get), Some(42));
        assert_eq!(inv.decode_args::<(i64, i64)>().unwrap(), (2, 3));
        assert_eq!(inv.decode::<i64>().unwrap(), 2);
        let e = inv.decode::<String>().unwrap_err();
        assert_eq!(e.to_wire().0.as_str(), wamp_proto::uris::INVALID_ARGUMENT);
    }
}
