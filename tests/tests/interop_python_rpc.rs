//! Advanced RPC interop with autobahn-python through our router: progressive results in both
//! directions, canceling in both directions, prefix and wildcard Python callees (with
//! `details.procedure` and the disclosed caller), a roundrobin shared registration of Python
//! and Rust callees, and a Python caller's `timeout` against a slow Rust callee.
//!
//! Each test runs the real router in-process and drives `tests/interop/python/peer.py` (its
//! `rpc-callee`, `shared-callee`, `progress-caller`, `cancel-caller` and `timeout-caller`
//! modes; see its docstring) as a child process against our own `wamp_client`. The
//! serializers vary between tests, and most tests mix JSON and MessagePack sessions.
//!
//! What autobahn-python (as pinned in `requirements.txt`) cannot do, and so is tested with
//! our client only (`client_rpc_advanced.rs`): choose a CANCEL mode (it sends CANCEL without
//! one, which the router treats as `killnowait`), progressive call invocations (not
//! implemented), `disclose_me` (it never sends it), and reacting to registration revocation
//! (it only logs it). An autobahn callee interrupted in `kill` mode answers
//! `wamp.error.runtime_error` (the CancelledError of its handler), not `canceled`.
//!
//! **Timeout unit**: autobahn documents `CallOptions(timeout=...)` in seconds but puts the
//! number on the wire unchanged (and only as an int), while our router reads CALL `timeout`
//! in milliseconds, as the WAMP spec says (Crossbar.io reads seconds). So `timeout=1` from
//! autobahn means 1 ms here, which [`python_caller_timeout_is_milliseconds_on_the_wire`]
//! shows.
//!
//! Needs `WAMP_INTEROP_PYTHON`, a Python with autobahn installed: `scripts/test-all.sh`
//! creates the venv (`target/interop/venv`) and exports it. Without it the tests skip with a
//! notice, or fail when `CI` is set.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use tokio::sync::mpsc;
use tokio::time::timeout;
use wamp_client::{
    uris, CallError, CallResult, CancelMode, Client, Invocation, InvokePolicy, Registration,
    Serializer, Value,
};
use wamp_tests::client::{leave, rust_client};
use wamp_tests::interop::{python, ser_name, ScriptPeer};
use wamp_tests::{TestRouter, WAIT};

// --- our side --------------------------------------------------------------------------

/// Awaits `f` within [`WAIT`].
async fn within<F: std::future::IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// A Rust procedure that hands each invocation to the test and waits until it is canceled,
/// then answers `wamp.error.canceled`.
async fn register_until_cancelled(
    callee: &Client,
    procedure: &str,
) -> (Registration, mpsc::UnboundedReceiver<Invocation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let reg = within(
        "register",
        callee.register(procedure, move |inv: Invocation| {
            let _ = tx.send(inv.clone());
            async move {
                inv.cancelled().await;
                Err::<CallResult, _>(CallError::canceled())
            }
        }),
    )
    .await
    .expect("register");
    (reg, rx)
}

fn json_args(r: &CallResult) -> Json {
    serde_json::to_value(
        r.args
            .iter()
            .map(|v| match v {
                Value::Null => Json::Null,
                Value::Bool(b) => json!(b),
                Value::UInt(u) => json!(u),
                Value::Int(i) => json!(i),
                Value::Str(s) => json!(s),
                other => panic!("unexpected value {other:?}"),
            })
            .collect::<Vec<_>>(),
    )
    .expect("json")
}

// --- Python callee, Rust caller ---------------------------------------------------------

/// A Python callee (`py`) streams progressive results to a Rust caller (`rust`), serves
/// prefix and wildcard registrations with `details.procedure` (and the caller, when the
/// Rust caller discloses itself), and is interrupted when the Rust caller cancels.
async fn python_callee_rust_caller(py: Serializer, rust: Serializer) {
    let Some(python) = python("autobahn-python RPC interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let proc_ = format!("com.example.pyrpc.{}_{}", ser_name(py), ser_name(rust));
    let mut callee = ScriptPeer::python(&python, router.url(), py, &["rpc-callee", &proc_]);
    callee.expect_line(json!({"ready": true})).await;
    let caller = rust_client(router.url(), rust).await;

    // Progressive results, in order, then the final one.
    let count = format!("{proc_}.count");
    let mut s = within("call", caller.call(&count).arg(4).progressive())
        .await
        .expect("progressive call sent");
    let mut items = Vec::new();
    while let Some(item) = within("result", s.next()).await {
        items.push(json_args(&item.expect("no error")));
    }
    assert_eq!(
        items,
        vec![
            json!([1]),
            json!([2]),
            json!([3]),
            json!([4]),
            json!(["done", true])
        ]
    );
    // Not asked: only the final result, and autobahn's details.progress is None.
    let r = within("call", caller.call(&count).arg(4))
        .await
        .expect("plain call");
    assert_eq!(json_args(&r), json!(["done", false]));

    // Patterns: the concrete procedure, and the caller only when disclosed.
    let me = caller.session_id().get();
    let cases = [
        (format!("{proc_}.prefix.a.b"), "prefix", false),
        (format!("{proc_}.prefix.c"), "prefix", true),
        (format!("{proc_}.wild.any.x"), "wildcard", false),
        (format!("{proc_}.wild.other.x"), "wildcard", true),
    ];
    for (uri, label, disclose) in cases {
        let mut call = caller.call(&uri);
        if disclose {
            call = call.disclose_me();
        }
        let r = within("call", call).await.expect("pattern call");
        let who = if disclose { json!(me) } else { Json::Null };
        assert_eq!(json_args(&r), json!([label, uri, who]), "{uri}");
    }

    // Canceling: autobahn cancels the handler's future on INTERRUPT.
    let hang = format!("{proc_}.hang");
    for mode in [CancelMode::Kill, CancelMode::KillNoWait, CancelMode::Skip] {
        let call = within("send", caller.call(&hang).send())
            .await
            .expect("sent");
        callee.expect_line(json!({"invoked": hang})).await;
        call.cancel(mode);
        let e = within("canceled call", call).await.expect_err("canceled");
        match mode {
            // Kill forwards the callee's answer: autobahn cancels its handler's future and
            // answers the CancelledError as any non-WAMP exception, `runtime_error`.
            CancelMode::Kill => assert_eq!(e.uri(), Some(uris::RUNTIME_ERROR), "{e:?}"),
            _ => assert!(e.is_canceled(), "{mode:?}: {e:?}"),
        }
        if mode != CancelMode::Skip {
            callee.expect_line(json!({"interrupted": hang})).await;
        }
    }
    leave(caller).await;
    // A skipped invocation is never interrupted: it ends with the session.
    let rest = callee.succeed().await;
    assert!(
        rest.iter().all(|l| *l == json!({"interrupted": hang})),
        "callee lines: {rest:?}"
    );
}

#[tokio::test]
async fn python_callee_json_rust_caller_msgpack() {
    python_callee_rust_caller(Serializer::Json, Serializer::MsgPack).await;
}

#[tokio::test]
async fn python_callee_msgpack_rust_caller_json() {
    python_callee_rust_caller(Serializer::MsgPack, Serializer::Json).await;
}

// --- Python caller, Rust callee ---------------------------------------------------------

/// A Python caller (`py`) receives progressive results from a Rust callee (`rust`).
async fn python_caller_progressive(py: Serializer, rust: Serializer) {
    let Some(python) = python("autobahn-python RPC interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let callee = rust_client(router.url(), rust).await;
    let proc_ = format!("com.example.rustrpc.count.{}", ser_name(py));
    let _reg = within(
        "register",
        callee.register(&proc_, |inv: Invocation| async move {
            let n: u64 = inv.decode()?;
            for i in 1..=n {
                inv.progress(CallResult::new().with_args([Value::from(i), Value::from("x")]))
                    .await?;
            }
            Ok::<_, CallError>(Value::from(inv.receives_progress()))
        }),
    )
    .await
    .expect("register");

    let peer = ScriptPeer::python(&python, router.url(), py, &["progress-caller", &proc_, "3"]);
    let lines = peer.succeed().await;
    assert_eq!(
        lines,
        vec![
            json!({"progress": [1, "x"]}),
            json!({"progress": [2, "x"]}),
            json!({"progress": [3, "x"]}),
            json!({"result": [true]}),
        ]
    );
    leave(callee).await;
}

#[tokio::test]
async fn python_caller_progressive_results_from_rust_callee_json() {
    python_caller_progressive(Serializer::Json, Serializer::MsgPack).await;
}

#[tokio::test]
async fn python_caller_progressive_results_from_rust_callee_msgpack() {
    python_caller_progressive(Serializer::MsgPack, Serializer::Json).await;
}

/// A Python caller cancels its call to a Rust callee: autobahn sends CANCEL without a mode,
/// so the router answers at once and interrupts our handler with `killnowait`.
async fn python_caller_cancels(py: Serializer, rust: Serializer) {
    let Some(python) = python("autobahn-python RPC interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let callee = rust_client(router.url(), rust).await;
    let proc_ = format!("com.example.rustrpc.hang.{}", ser_name(py));
    let (_reg, mut invoked) = register_until_cancelled(&callee, &proc_).await;

    let mut peer = ScriptPeer::python(&python, router.url(), py, &["cancel-caller", &proc_]);
    peer.expect_line(json!({"called": true})).await;
    let inv = within("invocation", invoked.recv())
        .await
        .expect("the Rust handler got the invocation");
    assert!(!inv.is_cancelled());
    peer.write_line("cancel").await;
    within("interrupt", inv.cancelled()).await;
    assert_eq!(inv.cancel_mode(), Some(CancelMode::KillNoWait));
    assert_eq!(peer.succeed().await, vec![json!({"cancelled": true})]);
    leave(callee).await;
}

#[tokio::test]
async fn python_caller_json_cancels_rust_callee() {
    python_caller_cancels(Serializer::Json, Serializer::Json).await;
}

#[tokio::test]
async fn python_caller_msgpack_cancels_rust_callee() {
    python_caller_cancels(Serializer::MsgPack, Serializer::MsgPack).await;
}

/// A Python caller's `CallOptions(timeout=1)` (one second, for autobahn) reaches the router
/// as `1`, which is one millisecond under the WAMP spec: the slow Rust callee sees a 1 ms
/// timeout, is interrupted, and the Python caller gets `wamp.error.timeout`.
#[tokio::test]
async fn python_caller_timeout_is_milliseconds_on_the_wire() {
    let Some(python) = python("autobahn-python RPC interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let callee = rust_client(router.url(), Serializer::MsgPack).await;
    let proc_ = "com.example.rustrpc.slow";
    let (_reg, mut invoked) = register_until_cancelled(&callee, proc_).await;

    let peer = ScriptPeer::python(
        &python,
        router.url(),
        Serializer::Json,
        &["timeout-caller", proc_, "1"],
    );
    let lines = peer.succeed().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["error"], "wamp.error.timeout", "{lines:?}");
    // The callee was invoked with the timeout as sent, in ms, and interrupted.
    let inv = within("invocation", invoked.recv())
        .await
        .expect("the Rust handler was invoked");
    assert_eq!(inv.timeout(), Some(Duration::from_millis(1)));
    within("interrupt", inv.cancelled()).await;
    assert_eq!(inv.cancel_mode(), Some(CancelMode::KillNoWait));
    leave(callee).await;
}

// --- shared registration ----------------------------------------------------------------

/// Two Python callees (one per serializer) and a Rust callee share a roundrobin
/// registration; a Rust caller's calls take turns in registration order.
#[tokio::test]
async fn python_and_rust_callees_share_a_roundrobin_registration() {
    const ROUNDS: usize = 4;
    let Some(python) = python("autobahn-python RPC interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let proc_ = "com.example.shared.rr";
    let mut first = ScriptPeer::python(
        &python,
        router.url(),
        Serializer::Json,
        &["shared-callee", proc_, "0"],
    );
    first.expect_line(json!({"ready": true})).await;
    let rust = rust_client(router.url(), Serializer::MsgPack).await;
    let reg = within(
        "register",
        rust.register(proc_, |_inv: Invocation| async move {
            Ok::<_, CallError>(Value::from(1))
        })
        .invoke(InvokePolicy::RoundRobin),
    )
    .await
    .expect("the Rust callee joins the shared registration");
    let mut third = ScriptPeer::python(
        &python,
        router.url(),
        Serializer::MsgPack,
        &["shared-callee", proc_, "2"],
    );
    third.expect_line(json!({"ready": true})).await;

    let caller = rust_client(router.url(), Serializer::Json).await;
    let mut order = Vec::new();
    for _ in 0..3 * ROUNDS {
        let i: u64 = within("call", caller.call(proc_).result())
            .await
            .expect("shared call");
        order.push(i);
    }
    let counts: Vec<usize> = (0..3)
        .map(|k| order.iter().filter(|i| **i == k).count())
        .collect();
    assert_eq!(counts, vec![ROUNDS; 3], "{order:?}");
    for w in order.windows(2) {
        assert_eq!((w[0] + 1) % 3, w[1], "registration order: {order:?}");
    }
    assert!(!reg.is_revoked());
    leave(caller).await;
    assert_eq!(first.succeed().await, Vec::<Json>::new());
    assert_eq!(third.succeed().await, Vec::<Json>::new());
    leave(rust).await;
}
