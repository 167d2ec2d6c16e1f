//! Calling procedures: [`CallBuilder`], [`CallResult`].

use std::future::IntoFuture;
use std::marker::PhantomData;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;
use wamp_proto::{Dict, Payload, Uri, Value};

use crate::client::Client;
use crate::connection::Command;
use crate::error::CallError;
use crate::payload::{self, payload_methods, PayloadBuf};

/// The outcome of a successful call, and what a procedure handler returns.
///
/// Typed access follows the crate's payload rule (see [`CallResult::decode`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallResult {
    /// Positional results.
    pub args: Vec<Value>,
    /// Keyword results.
    pub kwargs: Dict,
}

impl CallResult {
    /// An empty result.
    pub fn new() -> CallResult {
        CallResult::default()
    }

    /// Sets the positional results.
    pub fn with_args<I, V>(mut self, args: I) -> CallResult
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the keyword results.
    pub fn with_kwargs<I, K, V>(mut self, kwargs: I) -> CallResult
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        self.kwargs = kwargs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// A result whose only positional value is `value` serialized with serde (the
    /// counterpart of [`CallResult::decode`]).
    pub fn from_ser<T: Serialize + ?Sized>(value: &T) -> Result<CallResult, CallError> {
        let v = payload::ser_value(value).map_err(CallError::InvalidPayload)?;
        Ok(CallResult::from(v))
    }

    /// Deserializes the result: from the first positional value; when there is none, from
    /// the keyword results as a map (so `T` can be a struct); when both are empty, from
    /// `null` (so `()` and `Option<_>` work).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode(&self.args, &self.kwargs).map_err(CallError::InvalidPayload)
    }

    /// Deserializes the whole positional list (e.g. into a tuple or `Vec`).
    pub fn decode_args<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode_args(&self.args).map_err(CallError::InvalidPayload)
    }

    /// Deserializes the keyword results (e.g. into a struct or map).
    pub fn decode_kwargs<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode_kwargs(&self.kwargs).map_err(CallError::InvalidPayload)
    }

    pub(crate) fn from_payload(p: Payload) -> CallResult {
        CallResult {
            args: p.args.unwrap_or_default(),
            kwargs: p.kwargs.unwrap_or_default(),
        }
    }

    pub(crate) fn into_payload(self) -> Payload {
        payload::to_payload(self.args, self.kwargs)
    }
}

/// No results.
impl From<()> for CallResult {
    fn from(_: ()) -> CallResult {
        CallResult::default()
    }
}

/// One positional result.
impl From<Value> for CallResult {
    fn from(v: Value) -> CallResult {
        CallResult {
            args: vec![v],
            kwargs: Dict::new(),
        }
    }
}

/// Positional results.
impl From<Vec<Value>> for CallResult {
    fn from(args: Vec<Value>) -> CallResult {
        CallResult {
            args,
            kwargs: Dict::new(),
        }
    }
}

/// A wire payload (absent parts become empty).
impl From<Payload> for CallResult {
    fn from(p: Payload) -> CallResult {
        CallResult::from_payload(p)
    }
}

/// A call being prepared; `.await` it to send the CALL and wait for the RESULT.
///
/// Dropping the future before the answer arrives does not cancel the call at the callee
/// (canceling is not implemented yet); the late answer is discarded.
#[derive(Debug)]
#[must_use = "a call does nothing until awaited"]
pub struct CallBuilder {
    client: Client,
    procedure: Uri,
    options: Dict,
    payload: PayloadBuf,
}

impl CallBuilder {
    pub(crate) fn new(client: Client, procedure: Uri) -> CallBuilder {
        CallBuilder {
            client,
            procedure,
            options: Dict::new(),
            payload: PayloadBuf::default(),
        }
    }

    payload_methods!();

    /// Sets a raw CALL option (e.g. `"timeout"` or `"disclose_me"`, where the router supports
    /// them).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Makes the call resolve to the result deserialized by [`CallResult::decode`].
    ///
    /// ```no_run
    /// # async fn f(client: wamp_client::Client) -> Result<(), wamp_client::CallError> {
    /// let sum: i64 = client.call("com.example.add").args([2, 3]).result().await?;
    /// # Ok(()) }
    /// ```
    pub fn result<T: DeserializeOwned>(self) -> TypedCall<T> {
        TypedCall {
            call: self,
            _result: PhantomData,
        }
    }

    async fn run(self) -> Result<CallResult, CallError> {
        let payload = self.payload.build().map_err(CallError::InvalidPayload)?;
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Call {
            procedure: self.procedure,
            options: self.options,
            payload,
            reply,
        };
        self.client
            .send(cmd)
            .await
            .map_err(|()| CallError::ConnectionClosed)?;
        rx.await.unwrap_or(Err(CallError::ConnectionClosed))
    }
}

impl IntoFuture for CallBuilder {
    type Output = Result<CallResult, CallError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A call whose result is deserialized into `T`; made by [`CallBuilder::result`].
#[derive(Debug)]
#[must_use = "a call does nothing until awaited"]
pub struct TypedCall<T> {
    call: CallBuilder,
    _result: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + 'static> IntoFuture for TypedCall<T> {
    type Output = Result<T, CallError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let call = self.call;
        Box::pin(async move { call.run().await?.decode() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_conversions() {
        assert_eq!(CallResult::from(()), CallResult::new());
        assert_eq!(CallResult::from(Value::from(3)).args, vec![Value::from(3)]);
        let r = CallResult::new()
            .with_args([1, 2])
            .with_kwargs([("a", true)]);
        let p = r.clone().into_payload();
        assert_eq!(p.args.as_ref().map(Vec::len), Some(2));
        assert_eq!(CallResult::from(p), r);
        assert!(CallResult::new().into_payload().is_empty());
    }

    #[test]
    fn typed_results() {
        let r = CallResult::from_ser(&vec![1, 2, 3]).unwrap();
        assert_eq!(
            r.args.len(),
            1,
            "a serialized value is one positional result"
        );
        assert_eq!(r.decode::<Vec<u8>>().unwrap(), vec![1, 2, 3]);
        let r = CallResult::new().with_args([Value::from(1), Value::from("x")]);
        assert_eq!(r.decode_args::<(u8, String)>().unwrap(), (1, "x".into()));
        assert!(matches!(
            r.decode::<String>(),
            Err(CallError::InvalidPayload(_))
        ));
    }
}
