//! Calling procedures: [`CallBuilder`], [`CallResult`], and the Advanced Profile caller
//! features: [`PendingCall`] (canceling), [`ProgressiveCall`] (progressive results) and
//! [`ChunkedCall`] (progressive call invocations).

use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use wamp_proto::{Dict, Payload, Uri, Value};

use crate::client::Client;
use crate::connection::Command;
use crate::error::CallError;
use crate::payload::{self, payload_methods, PayloadBuf};

mod sent;
use sent::CallLink;
pub use sent::{ChunkedCall, PendingCall, ProgressiveCall};

/// The caller features announced in HELLO (`roles.caller.features`).
pub(crate) const CALLER_FEATURES: &[&str] = &[
    "progressive_call_results",
    "call_canceling",
    "call_timeout",
    "caller_identification",
    "progressive_call_invocations",
];

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

/// How a call is canceled (the `mode` of CANCEL, and of the INTERRUPT a callee receives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelMode {
    /// The router answers the caller `wamp.error.canceled` at once and does not tell the
    /// callee, whose answer is discarded.
    Skip,
    /// The router interrupts the callee and forwards whatever it answers (usually
    /// `wamp.error.canceled`, or the result if it won the race).
    Kill,
    /// The router answers the caller `wamp.error.canceled` at once and interrupts the
    /// callee, whose answer is discarded.
    KillNoWait,
}

impl CancelMode {
    /// The wire name: `skip`, `kill` or `killnowait`.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelMode::Skip => "skip",
            CancelMode::Kill => "kill",
            CancelMode::KillNoWait => "killnowait",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<CancelMode> {
        match s {
            "skip" => Some(CancelMode::Skip),
            "kill" => Some(CancelMode::Kill),
            "killnowait" => Some(CancelMode::KillNoWait),
            _ => None,
        }
    }
}

impl fmt::Display for CancelMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mode of the CANCEL sent when a call is dropped before its answer.
const DEFAULT_DROP_CANCEL_MODE: CancelMode = CancelMode::KillNoWait;

/// Where the connection task delivers a call's answers.
pub(crate) enum CallSink {
    /// One final answer.
    Once(oneshot::Sender<Result<CallResult, CallError>>),
    /// Progressive results (`true`), then the final answer (`false`).
    Stream(mpsc::UnboundedSender<(bool, Result<CallResult, CallError>)>),
}

impl CallSink {
    /// Delivers a progressive result; `Once` sinks did not ask for them.
    pub(crate) fn progress(&self, r: CallResult) {
        if let CallSink::Stream(tx) = self {
            let _ = tx.send((true, Ok(r)));
        }
    }

    /// Delivers the final answer (the receiver may have stopped waiting).
    pub(crate) fn finish(self, r: Result<CallResult, CallError>) {
        match self {
            CallSink::Once(tx) => {
                let _ = tx.send(r);
            }
            CallSink::Stream(tx) => {
                let _ = tx.send((false, r));
            }
        }
    }
}

/// A call being prepared; `.await` it to send the CALL and wait for the RESULT.
///
/// Besides arguments it takes the Advanced Profile options: [`CallBuilder::timeout`],
/// [`CallBuilder::disclose_me`], and what to do when dropped ([`CallBuilder::cancel_mode`]).
/// Instead of awaiting it, [`CallBuilder::send`] gives a [`PendingCall`] that can be
/// canceled, [`CallBuilder::progressive`] a stream of progressive results, and
/// [`CallBuilder::chunked`] a [`ChunkedCall`] that sends its arguments in several chunks.
///
/// Dropping the call (the future, or any of those handles) before the answer arrived sends
/// CANCEL with mode [`CancelMode::KillNoWait`] by default: the router stops waiting and tells
/// the callee, if it supports canceling; nobody is left to read the answer anyway. So a call
/// inside `tokio::time::timeout` or a losing `select!` branch is canceled at the callee.
#[derive(Debug)]
#[must_use = "a call does nothing until awaited"]
pub struct CallBuilder {
    client: Client,
    procedure: Uri,
    options: Dict,
    payload: PayloadBuf,
    drop_mode: CancelMode,
}

impl CallBuilder {
    pub(crate) fn new(client: Client, procedure: Uri) -> CallBuilder {
        CallBuilder {
            client,
            procedure,
            options: Dict::new(),
            payload: PayloadBuf::default(),
            drop_mode: DEFAULT_DROP_CANCEL_MODE,
        }
    }

    payload_methods!();

    /// Sets a raw CALL option (e.g. `"timeout"` or `"disclose_me"`, where the router supports
    /// them).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Asks the router to cancel the call if it is not answered within `timeout`: the call
    /// then fails with `wamp.error.timeout` and the callee is interrupted. Sent as the
    /// `timeout` option in **milliseconds**, the spec's unit (rounded up; zero means no
    /// timeout). With progressive results it bounds the gap between two results.
    ///
    /// Routers that follow Crossbar.io read `timeout` in seconds instead.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        match timeout_ms(timeout) {
            0 => self.options.remove("timeout"),
            ms => self.options.insert("timeout".into(), ms.into()),
        };
        self
    }

    /// Asks the router to disclose this caller (session ID, authid, authrole) to the callee
    /// (`disclose_me`), read there with [`Invocation::caller`](crate::Invocation::caller).
    pub fn disclose_me(self) -> Self {
        self.option("disclose_me", true)
    }

    /// The mode of the CANCEL sent when the call is dropped before its answer (default
    /// [`CancelMode::KillNoWait`]).
    pub fn cancel_mode(mut self, mode: CancelMode) -> Self {
        self.drop_mode = mode;
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

    /// Sends the CALL and returns at once (after queueing it) with a [`PendingCall`]: a
    /// future of the answer that can also be canceled with [`PendingCall::cancel`].
    ///
    /// ```no_run
    /// # async fn f(client: wamp_client::Client) -> Result<(), wamp_client::CallError> {
    /// use wamp_client::CancelMode;
    /// let mut call = client.call("com.example.slow").send().await?;
    /// tokio::select! {
    ///     r = &mut call => println!("answered: {r:?}"),
    ///     _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
    ///         call.cancel(CancelMode::Kill);
    ///         println!("after cancel: {:?}", call.await); // the callee's last word
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send(self) -> Result<PendingCall, CallError> {
        let (tx, rx) = oneshot::channel();
        let link = self.start(CallSink::Once(tx)).await?;
        Ok(PendingCall { rx, link })
    }

    /// Sends the CALL asking for progressive results (`receive_progress`) and returns a
    /// [`ProgressiveCall`]: a `Stream` of the results in order, ending with the final one
    /// (or an error).
    ///
    /// ```no_run
    /// # async fn f(client: wamp_client::Client) -> Result<(), wamp_client::CallError> {
    /// use futures_util::StreamExt;
    /// let mut lines = client.call("com.example.tail").progressive().await?.decoded::<String>();
    /// while let Some(line) = lines.next().await {
    ///     println!("{}", line?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn progressive(mut self) -> Result<ProgressiveCall, CallError> {
        self.options.insert("receive_progress".into(), true.into());
        let (tx, rx) = mpsc::unbounded_channel();
        let link = self.start(CallSink::Stream(tx)).await?;
        Ok(ProgressiveCall {
            rx,
            link,
            finished: false,
            decode: Ok,
        })
    }

    /// Starts a progressive call invocation: sends the builder's arguments as the first
    /// chunk (CALL with `progress`); send more with [`ChunkedCall::send`] and the last one
    /// with [`ChunkedCall::finish`], which waits for the result. The router streams the
    /// chunks to one callee invocation (see [`Invocation::next_chunk`]); a callee that does
    /// not support it answers `wamp.error.feature_not_supported`.
    ///
    /// [`Invocation::next_chunk`]: crate::Invocation::next_chunk
    pub async fn chunked(mut self) -> Result<ChunkedCall, CallError> {
        self.options.insert("progress".into(), true.into());
        let procedure = self.procedure.clone();
        let (tx, rx) = oneshot::channel();
        let link = self.start(CallSink::Once(tx)).await?;
        Ok(ChunkedCall {
            procedure,
            call: PendingCall { rx, link },
        })
    }

    /// Queues the CALL; the returned link cancels it if dropped while armed.
    async fn start(self, sink: CallSink) -> Result<CallLink, CallError> {
        let payload = self.payload.build().map_err(CallError::InvalidPayload)?;
        let local = self.client.next_local_id();
        let cmd = Command::Call {
            procedure: self.procedure,
            options: self.options,
            payload,
            local,
            sink,
        };
        self.client
            .send(cmd)
            .await
            .map_err(|()| CallError::ConnectionClosed)?;
        Ok(CallLink {
            cmd: self.client.command_sender(),
            local,
            drop_mode: self.drop_mode,
            armed: true,
        })
    }

    async fn run(self) -> Result<CallResult, CallError> {
        self.send().await?.await
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

/// A duration in whole milliseconds, rounded up (saturating).
fn timeout_ms(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
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

    #[test]
    fn timeout_is_whole_milliseconds_rounded_up() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_nanos(1)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(100)), 100);
        assert_eq!(timeout_ms(Duration::from_micros(1_500)), 2);
        assert_eq!(timeout_ms(Duration::from_secs(3)), 3_000);
        assert_eq!(timeout_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn handles_are_send() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<PendingCall>();
        send::<ProgressiveCall<String>>();
        send_sync::<ChunkedCall>();
        send_sync::<crate::Invocation>();
        send_sync::<crate::Registration>();
    }

    #[test]
    fn cancel_modes_round_trip() {
        for m in [CancelMode::Skip, CancelMode::Kill, CancelMode::KillNoWait] {
            assert_eq!(CancelMode::parse(m.as_str()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert_eq!(CancelMode::parse("abort"), None);
    }
}
