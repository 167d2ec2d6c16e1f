//! Calling procedures: [`CallBuilder`], [`CallResult`], and the Advanced Profile caller
//! features: [`PendingCall`] (canceling), [`ProgressiveCall`] (progressive results) and
//! [`ChunkedCall`] (progressive call invocations).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use wamp_proto::{Dict, Payload, Uri, Value};

use crate::client::Client;
use crate::connection::Command;
use crate::error::CallError;
use crate::payload::{self, payload_methods, PayloadBuf};

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

/// A sent call's tie to the connection task: cancels the call when dropped while armed.
#[derive(Debug)]
struct CallLink {
    cmd: mpsc::Sender<Command>,
    local: u64,
    drop_mode: CancelMode,
    /// Until the final answer arrived.
    armed: bool,
}

impl CallLink {
    fn cancel(&self, mode: CancelMode) {
        if self.armed {
            send_soon(
                &self.cmd,
                Command::Cancel {
                    local: self.local,
                    mode,
                    forget: false,
                },
            );
        }
    }
}

impl Drop for CallLink {
    fn drop(&mut self) {
        if self.armed {
            send_soon(
                &self.cmd,
                Command::Cancel {
                    local: self.local,
                    mode: self.drop_mode,
                    forget: true,
                },
            );
        }
    }
}

/// Queues a command without waiting: at once if the queue has room, else from a task.
fn send_soon(cmd: &mpsc::Sender<Command>, c: Command) {
    match cmd.try_send(c) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(c)) => {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let cmd = cmd.clone();
                rt.spawn(async move {
                    let _ = cmd.send(c).await;
                });
            }
        }
    }
}

/// A sent call: a future of its answer that can be canceled ([`CallBuilder::send`]).
///
/// Dropped before the answer, it sends CANCEL with the builder's
/// [`cancel_mode`](CallBuilder::cancel_mode).
#[derive(Debug)]
#[must_use = "dropping a pending call cancels it"]
pub struct PendingCall {
    rx: oneshot::Receiver<Result<CallResult, CallError>>,
    link: CallLink,
}

impl PendingCall {
    /// Sends CANCEL with `mode` (unless the answer already arrived); the call then ends with
    /// `wamp.error.canceled` (at once for `Skip` and `KillNoWait`), or with whatever the
    /// interrupted callee answers (`Kill`). Keep awaiting the call for that answer. Routers
    /// ignore repeated CANCELs, and treat a callee that does not support canceling as `Skip`.
    pub fn cancel(&self, mode: CancelMode) {
        self.link.cancel(mode);
    }
}

impl Future for PendingCall {
    type Output = Result<CallResult, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let r = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r.unwrap_or(Err(CallError::ConnectionClosed)),
        };
        self.link.armed = false;
        Poll::Ready(r)
    }
}

/// A call's progressive results as a `Stream` ([`CallBuilder::progressive`]).
///
/// It yields each progressive result in order, then the final result (or the call's error)
/// and ends; [`ProgressiveCall::is_finished`] tells the final item apart. If the session
/// ends first, the last item is `Err(ConnectionClosed)`. Results are queued without bound
/// until read. Dropped before the end, it sends CANCEL with the builder's
/// [`cancel_mode`](CallBuilder::cancel_mode).
pub struct ProgressiveCall<T = CallResult> {
    rx: mpsc::UnboundedReceiver<(bool, Result<CallResult, CallError>)>,
    link: CallLink,
    finished: bool,
    decode: fn(CallResult) -> Result<T, CallError>,
}

impl<T> fmt::Debug for ProgressiveCall<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressiveCall")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T> ProgressiveCall<T> {
    /// Whether the final result (or error) has been yielded: the last item was the final one.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Sends CANCEL with `mode` (see [`PendingCall::cancel`]); the stream then ends with the
    /// resulting error (or the callee's last answer, for `Kill`).
    pub fn cancel(&self, mode: CancelMode) {
        if !self.finished {
            self.link.cancel(mode);
        }
    }

    /// The same stream with every result deserialized into `U` by [`CallResult::decode`]
    /// (a result that does not decode is an `Err(InvalidPayload)` item; the stream goes on).
    pub fn decoded<U: DeserializeOwned>(self) -> ProgressiveCall<U> {
        let ProgressiveCall {
            rx, link, finished, ..
        } = self;
        ProgressiveCall {
            rx,
            link,
            finished,
            decode: |r| r.decode(),
        }
    }
}

impl<T> Stream for ProgressiveCall<T> {
    type Item = Result<T, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let (progress, r) = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(item)) => item,
            Poll::Ready(None) => (false, Err(CallError::ConnectionClosed)),
        };
        if !progress {
            self.finished = true;
            self.link.armed = false;
        }
        Poll::Ready(Some(r.and_then(self.decode)))
    }
}

/// A progressive call invocation under way ([`CallBuilder::chunked`]): the first chunk is
/// sent; send more, then finish.
///
/// Dropped before [`ChunkedCall::finish`], it sends CANCEL with the builder's
/// [`cancel_mode`](CallBuilder::cancel_mode).
#[derive(Debug)]
#[must_use = "dropping a chunked call cancels it"]
pub struct ChunkedCall {
    procedure: Uri,
    call: PendingCall,
}

impl ChunkedCall {
    /// Sends a further chunk (CALL with the same request ID and `progress`): its arguments
    /// are `chunk`'s (e.g. a [`Value`], `Vec<Value>`, or a [`CallResult`] with kwargs).
    ///
    /// Fails with the call's error if the call has already failed (e.g. the callee does not
    /// support progressive invocations), or `ConnectionClosed`. A chunk sent after the
    /// callee already answered is dropped by the router.
    pub async fn send(&mut self, chunk: impl Into<CallResult>) -> Result<(), CallError> {
        self.send_chunk(chunk.into(), false).await
    }

    /// Sends the last chunk (CALL without `progress`) and waits for the call's result.
    pub async fn finish(mut self, chunk: impl Into<CallResult>) -> Result<CallResult, CallError> {
        if let Err(e) = self.send_chunk(chunk.into(), true).await {
            self.call.link.armed = false;
            return Err(e);
        }
        self.call.await
    }

    /// Cancels the call (see [`PendingCall::cancel`]); [`ChunkedCall::finish`] then returns
    /// the outcome.
    pub fn cancel(&self, mode: CancelMode) {
        self.call.cancel(mode);
    }

    async fn send_chunk(&mut self, chunk: CallResult, last: bool) -> Result<(), CallError> {
        // An early answer (an error, typically) ends the call: report it rather than stream
        // into the void.
        match self.call.rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {}
            Ok(r) => {
                let e = r.as_ref().err().cloned();
                // Keep the answer for `finish`.
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(r);
                self.call.rx = rx;
                return match e {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            Err(oneshot::error::TryRecvError::Closed) => return Err(CallError::ConnectionClosed),
        }
        let cmd = Command::CallChunk {
            local: self.call.link.local,
            procedure: self.procedure.clone(),
            payload: chunk.into_payload(),
            last,
        };
        self.call
            .link
            .cmd
            .send(cmd)
            .await
            .map_err(|_| CallError::ConnectionClosed)
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
