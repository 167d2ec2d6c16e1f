//! Advanced RPC through the `wamp-client` API against the real router, over real sockets:
//! caller identification, progressive call results and invocations, call canceling in each
//! mode (explicit, and by dropping the call) and the router's call timeout (registrations:
//! `client_rpc_registrations.rs`).
//!
//! Handlers that must wait hand their [`Invocation`] to the test over a channel first, so
//! the test knows the callee has it; every wait is bounded ([`WAIT`], or [`AT_ONCE`] where
//! the answer must not wait for anything but the router); nothing sleeps to synchronise.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use wamp_client::{
    uris, CallError, CallResult, CancelMode, Client, Invocation, Registration, Serializer, Value,
};
use wamp_proto::message::{Register, Registered};
use wamp_proto::{Dict, Message, Uri};
use wamp_tests::{RawPeer, TestRouter, WAIT};

const REALM: &str = "realm1";

/// Bound for an answer that must come at once (it depends on no timeout of the router or the
/// client), generous for a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(3);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// Awaits `f`, failing the test if it takes longer than [`AT_ONCE`].
async fn at_once<F: IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(AT_ONCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {AT_ONCE:?}"))
}

pub(crate) async fn connect(url: &str, serializer: Serializer) -> Client {
    within(
        "connect",
        Client::builder(url)
            .realm(REALM)
            .serializer(serializer)
            .connect(),
    )
    .await
    .expect("client joins")
}

pub(crate) async fn leave(c: Client) {
    within("leave", c.leave()).await.expect("leave succeeds");
}

/// The URI of an application error (panics on other errors).
pub(crate) fn app_uri(e: &CallError) -> &str {
    match e {
        CallError::Application { uri, .. } => uri,
        other => panic!("expected an application error, got {other:?}"),
    }
}

fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected text, got {v:?}"))
}

/// Registers `procedure` with a handler that hands each invocation to the test, waits until
/// the router interrupts it, and then answers `on_cancel` (or `Err(canceled)`).
async fn register_until_cancelled(
    callee: &Client,
    procedure: &str,
    on_cancel: Option<CallError>,
) -> (Registration, mpsc::UnboundedReceiver<Invocation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let reg = within(
        "register",
        callee.register(procedure, move |inv: Invocation| {
            let _ = tx.send(inv.clone());
            let answer = on_cancel.clone().unwrap_or_else(CallError::canceled);
            async move {
                inv.cancelled().await;
                Err::<CallResult, _>(answer)
            }
        }),
    )
    .await
    .expect("register");
    (reg, rx)
}

/// Registers an echo procedure on `callee` (a synchronisation point with its socket).
async fn register_echo(callee: &Client, procedure: &str) -> Registration {
    within(
        "register",
        callee.register(procedure, |inv: Invocation| async move {
            Ok::<_, CallError>(CallResult::new().with_args(inv.args))
        }),
    )
    .await
    .expect("register echo")
}

async fn next_invocation(rx: &mut mpsc::UnboundedReceiver<Invocation>) -> Invocation {
    within("invocation", rx.recv())
        .await
        .expect("the handler got the invocation")
}

// --- caller identification ----------------------------------------------------------------

#[tokio::test]
async fn caller_identification_by_disclose_me_and_disclose_caller() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;

    // Each handler answers what it learned about its caller.
    let who = |inv: Invocation| async move {
        let caller = inv.caller().map_or(Value::Null, |id| Value::from(id.get()));
        let authid = inv.caller_authid().map_or(Value::Null, Value::from);
        let authrole = inv.caller_authrole().map_or(Value::Null, Value::from);
        Ok::<_, CallError>(CallResult::new().with_args([caller, authid, authrole]))
    };
    let _plain = within("register", callee.register("com.example.who", who))
        .await
        .expect("register");
    let _disclosing = within(
        "register",
        callee
            .register("com.example.who.always", who)
            .disclose_caller(),
    )
    .await
    .expect("register disclose_caller");

    let me = Value::from(caller.session_id().get());
    let authid = caller.welcome_details()["authid"].clone();
    let authrole = caller.welcome_details()["authrole"].clone();
    let disclosed = vec![me, authid, authrole];

    let r = within("call", caller.call("com.example.who"))
        .await
        .expect("call");
    assert_eq!(r.args, vec![Value::Null; 3], "not disclosed unless asked");
    let r = within("call", caller.call("com.example.who").disclose_me())
        .await
        .expect("call disclose_me");
    assert_eq!(r.args, disclosed, "disclose_me");
    let r = within("call", caller.call("com.example.who.always"))
        .await
        .expect("call");
    assert_eq!(r.args, disclosed, "disclose_caller");
    leave(caller).await;
    leave(callee).await;
}

// --- progressive call results ---------------------------------------------------------------

/// Registers `com.example.count`: args `[n]`; sends `1..=n` as progressive results, then
/// answers `"done"` (or fails with `com.example.error.late` when kwarg `fail` is true).
async fn register_counter(callee: &Client) -> Registration {
    within(
        "register",
        callee.register("com.example.count", |inv: Invocation| async move {
            let n: u64 = inv.decode()?;
            let asked = inv.receives_progress();
            for i in 1..=n {
                inv.progress(Value::from(i)).await?;
            }
            if inv.kwargs.get("fail") == Some(&Value::Bool(true)) {
                return Err(CallError::new("com.example.error.late").with_args([n]));
            }
            Ok(CallResult::new().with_args([Value::from("done"), Value::Bool(asked)]))
        }),
    )
    .await
    .expect("register counter")
}

#[tokio::test]
async fn progressive_results_stream_in_order_then_the_final_one() {
    const N: u64 = 200;
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let _reg = register_counter(&callee).await;

    let mut results = within(
        "call",
        caller.call("com.example.count").arg(N).progressive(),
    )
    .await
    .expect("progressive call sent");
    for i in 1..=N {
        let r = within("progressive result", results.next())
            .await
            .expect("the stream goes on")
            .expect("a progressive result");
        assert_eq!(r.args, vec![Value::from(i)], "result {i} in order");
        assert!(!results.is_finished());
    }
    let last = within("final result", results.next())
        .await
        .expect("the final result")
        .expect("success");
    assert_eq!(last.args, vec![Value::from("done"), Value::Bool(true)]);
    assert!(results.is_finished());
    assert!(
        within("end", results.next()).await.is_none(),
        "ends after the final one"
    );

    // Typed, and ending with the callee's error.
    let mut typed = within(
        "call",
        caller
            .call("com.example.count")
            .arg(3)
            .kwarg("fail", true)
            .progressive(),
    )
    .await
    .expect("sent")
    .decoded::<u64>();
    let mut got = Vec::new();
    let end = loop {
        match within("item", typed.next()).await.expect("an item") {
            Ok(i) => got.push(i),
            Err(e) => break e,
        }
    };
    assert_eq!(got, vec![1, 2, 3]);
    assert_eq!(app_uri(&end), "com.example.error.late");
    assert_eq!(end.args(), &[Value::from(3)]);
    assert!(typed.is_finished());
    assert!(within("end", typed.next()).await.is_none());

    // A caller that did not ask gets only the final result; the callee knew it.
    let r = within("call", caller.call("com.example.count").arg(5))
        .await
        .expect("plain call");
    assert_eq!(r.args, vec![Value::from("done"), Value::Bool(false)]);
    leave(caller).await;
    leave(callee).await;
}

#[tokio::test]
async fn progressive_stream_can_be_canceled_and_ends_when_the_callee_leaves() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    // One progressive result, then wait for cancellation.
    let (tx, mut invoked) = mpsc::unbounded_channel();
    let _reg = within(
        "register",
        callee.register("com.example.stream", move |inv: Invocation| {
            let tx = tx.clone();
            async move {
                inv.progress(Value::from("first")).await?;
                let _ = tx.send(inv.clone());
                inv.cancelled().await;
                Err::<CallResult, _>(CallError::new("com.example.error.stopped"))
            }
        }),
    )
    .await
    .expect("register");

    // Canceled (kill): the stream ends with the handler's own answer.
    let mut s = within("call", caller.call("com.example.stream").progressive())
        .await
        .expect("sent");
    let first = within("first", s.next()).await.expect("item").expect("ok");
    assert_eq!(first.args, vec![Value::from("first")]);
    let inv = next_invocation(&mut invoked).await;
    s.cancel(CancelMode::Kill);
    let e = within("end", s.next())
        .await
        .expect("item")
        .expect_err("stopped");
    assert_eq!(app_uri(&e), "com.example.error.stopped");
    assert_eq!(inv.cancel_mode(), Some(CancelMode::Kill));
    assert!(within("end", s.next()).await.is_none());

    // The callee leaves mid-stream: the stream ends with `canceled` at once.
    let mut s = within("call", caller.call("com.example.stream").progressive())
        .await
        .expect("sent");
    let first = within("first", s.next()).await.expect("item").expect("ok");
    assert_eq!(first.args, vec![Value::from("first")]);
    next_invocation(&mut invoked).await;
    leave(callee).await;
    let e = at_once("end", s.next())
        .await
        .expect("item")
        .expect_err("gone");
    assert!(e.is_canceled(), "{e:?}");
    assert!(s.is_finished());
    leave(caller).await;
}

// --- progressive call invocations -------------------------------------------------------------

#[tokio::test]
async fn progressive_invocation_streams_chunks_to_one_handler() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    // Joins every chunk's text; kwargs of a chunk are counted.
    let _reg = within(
        "register",
        callee.register("com.example.concat", |inv: Invocation| async move {
            let mut parts: Vec<Value> = inv.args.clone();
            let mut kwargs = inv.kwargs.len();
            let progressive = inv.is_progressive();
            while let Some(chunk) = inv.next_chunk().await {
                parts.extend(chunk.args);
                kwargs += chunk.kwargs.len();
            }
            let joined: String = parts.iter().map(text).collect::<Vec<_>>().join("");
            Ok::<_, CallError>(CallResult::new().with_args([
                Value::from(joined),
                Value::from(kwargs as u64),
                Value::Bool(progressive),
            ]))
        }),
    )
    .await
    .expect("register");

    let mut upload = within("call", caller.call("com.example.concat").arg("a").chunked())
        .await
        .expect("first chunk sent");
    for c in ["b", "c"] {
        within("chunk", upload.send(Value::from(c)))
            .await
            .expect("chunk sent");
    }
    within(
        "chunk",
        upload.send(CallResult::new().with_args(["d"]).with_kwargs([("k", 1)])),
    )
    .await
    .expect("chunk with kwargs sent");
    let r = within("finish", upload.finish(Value::from("e")))
        .await
        .expect("result");
    assert_eq!(
        r.args,
        vec![Value::from("abcde"), Value::from(1), Value::Bool(true)]
    );

    // Two streams at once stay apart.
    let mut x = within("call", caller.call("com.example.concat").arg("x").chunked())
        .await
        .expect("sent");
    let mut y = within("call", caller.call("com.example.concat").arg("y").chunked())
        .await
        .expect("sent");
    within("chunk", x.send(Value::from("1"))).await.expect("x1");
    within("chunk", y.send(Value::from("1"))).await.expect("y1");
    within("chunk", y.send(Value::from("2"))).await.expect("y2");
    let (rx, ry) = tokio::join!(
        within("finish x", x.finish(Value::from("2"))),
        within("finish y", y.finish(Value::from("3")))
    );
    assert_eq!(rx.expect("x").args[0], Value::from("x12"));
    assert_eq!(ry.expect("y").args[0], Value::from("y123"));

    // A plain call is not progressive and has no further chunks.
    let r = within("call", caller.call("com.example.concat").arg("z"))
        .await
        .expect("plain call");
    assert_eq!(
        r.args,
        vec![Value::from("z"), Value::from(0), Value::Bool(false)]
    );
    leave(caller).await;
    leave(callee).await;
}

#[tokio::test]
async fn progressive_invocation_to_a_callee_without_the_feature_fails() {
    let router = TestRouter::start().await;
    // A raw callee that announces no features.
    let (mut raw, _) = RawPeer::join(router.url(), REALM, Serializer::Json).await;
    let request = raw.request();
    raw.send(
        &Register {
            request,
            options: Dict::new(),
            procedure: Uri::new("com.example.basic"),
        }
        .into(),
    )
    .await;
    match raw.recv().await {
        Message::Registered(Registered { request: r, .. }) if r == request => {}
        other => panic!("expected REGISTERED, got {other:?}"),
    }
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let mut upload = within("call", caller.call("com.example.basic").arg(1).chunked())
        .await
        .expect("first chunk sent");
    // The refusal may already be known when sending: then `send` reports it.
    if let Err(e) = within("chunk", upload.send(Value::from(2))).await {
        assert_eq!(app_uri(&e), uris::FEATURE_NOT_SUPPORTED, "{e:?}");
    }
    let e = within("finish", upload.finish(Value::from(3)))
        .await
        .expect_err("refused");
    assert_eq!(app_uri(&e), uris::FEATURE_NOT_SUPPORTED, "{e:?}");
    leave(caller).await;
}

// --- call timeout ----------------------------------------------------------------------------

#[tokio::test]
async fn call_timeout_fails_the_call_and_interrupts_the_handler() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let (_reg, mut invoked) = register_until_cancelled(&callee, "com.example.slow", None).await;

    let started = Instant::now();
    let call = tokio::spawn(
        caller
            .call("com.example.slow")
            .timeout(Duration::from_millis(100))
            .into_future(),
    );
    let inv = next_invocation(&mut invoked).await;
    assert_eq!(
        inv.timeout(),
        Some(Duration::from_millis(100)),
        "sent in ms"
    );
    let e = at_once("timed-out call", call)
        .await
        .expect("call task")
        .expect_err("timed out");
    assert!(e.is_timeout(), "{e:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "not before the timeout"
    );
    // The handler was interrupted (killnowait: its answer is not wanted).
    at_once("interrupt", inv.cancelled()).await;
    assert_eq!(inv.cancel_mode(), Some(CancelMode::KillNoWait));
    assert!(inv.is_cancelled());

    // A call answered in time is not affected by its timeout.
    let _echo = register_echo(&callee, "com.example.echo").await;
    let r = within(
        "call",
        caller
            .call("com.example.echo")
            .arg(1)
            .timeout(Duration::from_secs(30)),
    )
    .await
    .expect("answered in time");
    assert_eq!(r.args, vec![Value::from(1)]);
    leave(caller).await;
    leave(callee).await;
}

// --- call canceling -------------------------------------------------------------------------

#[tokio::test]
async fn cancel_kill_forwards_the_handlers_answer() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    let stopped = CallError::new("com.example.error.stopped").with_args(["cleaned up"]);
    let (_reg, mut invoked) =
        register_until_cancelled(&callee, "com.example.slow", Some(stopped.clone())).await;

    let call = within("send", caller.call("com.example.slow").send())
        .await
        .expect("sent");
    let inv = next_invocation(&mut invoked).await;
    call.cancel(CancelMode::Kill);
    call.cancel(CancelMode::Kill); // repeated CANCELs are ignored
    let e = within("answer", call).await.expect_err("stopped");
    assert_eq!(e, stopped, "the handler's own answer");
    assert_eq!(inv.cancel_mode(), Some(CancelMode::Kill));
    leave(caller).await;
    leave(callee).await;
}

#[tokio::test]
async fn cancel_killnowait_answers_at_once_and_interrupts() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::Json).await;
    // The handler never answers: the caller must not wait for it.
    let (tx, mut invoked) = mpsc::unbounded_channel();
    let _reg = within(
        "register",
        callee.register("com.example.stuck", move |inv: Invocation| {
            let _ = tx.send(inv);
            std::future::pending::<Result<(), CallError>>()
        }),
    )
    .await
    .expect("register");

    let call = within("send", caller.call("com.example.stuck").send())
        .await
        .expect("sent");
    let inv = next_invocation(&mut invoked).await;
    call.cancel(CancelMode::KillNoWait);
    let e = at_once("answer", call).await.expect_err("canceled");
    assert!(e.is_canceled(), "{e:?}");
    at_once("interrupt", inv.cancelled()).await;
    assert_eq!(inv.cancel_mode(), Some(CancelMode::KillNoWait));
    leave(caller).await;
    leave(callee).await;
}

#[tokio::test]
async fn cancel_skip_answers_at_once_and_leaves_the_callee_alone() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let (tx, mut invoked) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = std::sync::Mutex::new(Some(release_rx));
    let (seen_tx, seen_rx) = oneshot::channel::<bool>();
    let seen_tx = std::sync::Mutex::new(Some(seen_tx));
    let _reg = within(
        "register",
        callee.register("com.example.skip", move |inv: Invocation| {
            let _ = tx.send(inv.clone());
            let release = release_rx.lock().unwrap().take();
            let seen = seen_tx.lock().unwrap().take();
            async move {
                if let Some(r) = release {
                    let _ = r.await;
                }
                if let Some(s) = seen {
                    let _ = s.send(inv.is_cancelled());
                }
                Ok::<_, CallError>(Value::from("late"))
            }
        }),
    )
    .await
    .expect("register");
    let _echo = register_echo(&callee, "com.example.echo").await;

    let call = within("send", caller.call("com.example.skip").send())
        .await
        .expect("sent");
    next_invocation(&mut invoked).await;
    call.cancel(CancelMode::Skip);
    let e = at_once("answer", call).await.expect_err("canceled");
    assert!(e.is_canceled(), "{e:?}");
    // A later invocation on the callee's socket: an INTERRUPT for the first one would
    // have come before it.
    let r = within("echo", caller.call("com.example.echo").arg(7))
        .await
        .expect("echo");
    assert_eq!(r.args, vec![Value::from(7)]);
    release_tx.send(()).expect("handler waits");
    let interrupted = within("handler", seen_rx).await.expect("handler reported");
    assert!(!interrupted, "skip does not interrupt the callee");
    // Its late answer is discarded by the router and ignored by the caller.
    let r = within("echo", caller.call("com.example.echo").arg(8))
        .await
        .expect("echo");
    assert_eq!(r.args, vec![Value::from(8)]);
    leave(caller).await;
    leave(callee).await;
}

#[tokio::test]
async fn dropping_a_call_cancels_it_with_the_chosen_mode() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let (_reg, mut invoked) = register_until_cancelled(&callee, "com.example.slow", None).await;
    let _echo = register_echo(&callee, "com.example.echo").await;

    for mode in [None, Some(CancelMode::Kill), Some(CancelMode::KillNoWait)] {
        let mut builder = caller.call("com.example.slow");
        if let Some(m) = mode {
            builder = builder.cancel_mode(m);
        }
        // The call's future runs in a task that is aborted (so the future is dropped) once
        // the callee has the invocation.
        let task = tokio::spawn(builder.into_future());
        let inv = next_invocation(&mut invoked).await;
        task.abort();
        assert!(within("abort", task).await.is_err_and(|e| e.is_cancelled()));
        within("interrupt", inv.cancelled()).await;
        assert_eq!(
            inv.cancel_mode(),
            Some(mode.unwrap_or(CancelMode::KillNoWait)),
            "drop mode {mode:?}"
        );
    }

    // So does a losing `select!` branch, and a dropped PendingCall; the caller goes on.
    tokio::select! {
        r = caller.call("com.example.slow") => panic!("answered: {r:?}"),
        inv = next_invocation(&mut invoked) => {
            within("interrupt", inv.cancelled()).await;
        }
    }
    let pending = within("send", caller.call("com.example.slow").send())
        .await
        .expect("sent");
    let inv = next_invocation(&mut invoked).await;
    drop(pending);
    within("interrupt", inv.cancelled()).await;
    let r = within("echo", caller.call("com.example.echo").arg(1))
        .await
        .expect("the caller still works");
    assert_eq!(r.args, vec![Value::from(1)]);
    leave(caller).await;
    leave(callee).await;
}
