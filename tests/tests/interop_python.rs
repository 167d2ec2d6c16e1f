//! Interop with autobahn-python, a WAMP client we did not write, through our router.
//!
//! Each test runs the real router in-process and drives `tests/interop/python/peer.py` (an
//! autobahn-python session scripted by its command line; see its docstring for the modes and
//! the JSON lines it prints) as a child process, against our own `wamp_client` or a second
//! Python peer. Every payload carries binary data, so the JSON `"\u0000" + base64` convention
//! and MessagePack `bin` both cross the router in each direction, and every scenario runs with
//! both serializers on both sides (json <-> json, msgpack <-> msgpack, and mixed). autobahn's
//! `wamp.2.cbor` (cbor2) runs each scenario once against JSON (and MessagePack) Rust peers:
//! CBOR byte strings reach JSON peers as `"\u0000" + base64` and come back as byte strings.
//!
//! Needs `WAMP_INTEROP_PYTHON`, a Python with autobahn installed: `scripts/test-all.sh`
//! creates the venv (`target/interop/venv`) and exports it. Without it the tests skip with a
//! notice, or fail when `CI` is set.
//!
//! A Python process costs about 0.3 s to start, so the tests reuse one where natural: one
//! Python callee serves a JSON and a MessagePack Rust caller and a Python caller; one Python
//! publisher feeds a JSON and a MessagePack Rust subscriber; one Python subscriber hears a
//! JSON and a MessagePack Rust publisher.

use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use tokio::time::timeout;
use wamp_client::{CallError, CallResult, Client, Dict, Invocation, Serializer, Value};
use wamp_tests::interop::{python, ser_name, ScriptPeer, REALM};
use wamp_tests::{TestRouter, WAIT};

/// Events per publisher.
const COUNT: u64 = 5;

// --- payloads ------------------------------------------------------------------------

/// What peer.py's caller sends (`CALL_ARGS`), with the exact value types our side decodes.
fn call_args() -> Vec<Value> {
    vec![
        Value::UInt(1),
        Value::from("two"),
        Value::Dict(Dict::from([("three".into(), Value::Float(3.5))])),
        Value::Null,
        Value::Bool(true),
        Value::Bytes(vec![0x00, 0x01, 0xff]),
    ]
}

/// peer.py's `CALL_KWARGS`.
fn call_kwargs() -> Dict {
    Dict::from([
        ("k".into(), Value::from("v")),
        ("n".into(), Value::Int(-7)),
        ("b".into(), Value::Bytes(b"hi".to_vec())),
    ])
}

/// Event `i`: args `[i, "text", b"\x00\x01\xff"]`, kwargs `{"seq": i}` (peer.py's publisher).
fn event_args(i: u64) -> Vec<Value> {
    vec![
        Value::UInt(i),
        Value::from("text"),
        Value::Bytes(vec![0x00, 0x01, 0xff]),
    ]
}

fn event_kwargs(i: u64) -> Dict {
    Dict::from([("seq".into(), Value::UInt(i))])
}

/// peer.py's subscriber line for event `i`.
fn event_line(i: u64) -> Json {
    json!({"args": [i, "text", {"$bytes": "0001ff"}], "kwargs": {"seq": i}})
}

/// The caller's first line: the echoed call payload.
fn echo_line() -> Json {
    json!({
        "result_args": [1, "two", {"three": 3.5}, null, true, {"$bytes": "0001ff"}],
        "result_kwargs": {"b": {"$bytes": "6869"}, "k": "v", "n": -7},
    })
}

/// The caller's line for PROC.fail (the error peer.py's callee raises, and ours returns).
fn failed_line() -> Json {
    json!({
        "error": "com.example.error.failed",
        "error_args": ["boom", 42],
        "error_kwargs": {"detail": "x"},
    })
}

fn failed_error() -> CallError {
    CallError::new("com.example.error.failed")
        .with_args([Value::from("boom"), Value::UInt(42)])
        .with_kwargs([("detail", "x")])
}

/// Checks a Python caller's three lines: the echo, PROC.fail's error, and the router's
/// `no_such_procedure` for `com.example.nonexistent` (its text argument is the router's own).
fn assert_caller_lines(lines: &[Json]) {
    assert_eq!(lines.len(), 3, "caller lines: {lines:#?}");
    assert_eq!(lines[0], echo_line(), "echo");
    assert_eq!(lines[1], failed_line(), "PROC.fail");
    let missing = &lines[2];
    assert_eq!(
        missing["error"], "wamp.error.no_such_procedure",
        "{missing}"
    );
    assert!(
        matches!(
            missing["error_args"].as_array().map(Vec::as_slice),
            Some([Json::String(_)])
        ),
        "one text argument expected: {missing}"
    );
    assert_eq!(missing["error_kwargs"], json!({}), "{missing}");
    assert_eq!(missing.as_object().map(|o| o.len()), Some(3), "{missing}");
}

async fn rust_client(url: &str, serializer: Serializer) -> Client {
    let client = timeout(
        WAIT,
        Client::builder(url)
            .realm(REALM)
            .serializer(serializer)
            .connect(),
    )
    .await
    .expect("connect in time")
    .expect("rust client joins");
    assert_eq!(client.serializer(), serializer);
    client
}

async fn leave(client: Client) {
    timeout(WAIT, client.leave())
        .await
        .expect("leave in time")
        .expect("leave");
}

// --- Python caller -> Rust callee -----------------------------------------------------

/// A Python caller (`py`) calls a Rust callee (`rust`): the echo, an application error with
/// payload, and `no_such_procedure`; and what our client received from autobahn-python.
async fn python_caller_rust_callee(py: Serializer, rust: Serializer) {
    let Some(python) = python("autobahn-python interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let proc_ = format!(
        "com.example.py.rust_echo.{}_{}",
        ser_name(py),
        ser_name(rust)
    );
    let callee = rust_client(router.url(), rust).await;

    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let _echo = callee
        .register(&proc_, move |inv: Invocation| {
            let seen_tx = seen_tx.clone();
            async move {
                let _ = seen_tx.send((inv.args.clone(), inv.kwargs.clone()));
                Ok::<_, CallError>(
                    CallResult::new()
                        .with_args(inv.args)
                        .with_kwargs(inv.kwargs),
                )
            }
        })
        .await
        .expect("register echo");
    let _fail = callee
        .register(&format!("{proc_}.fail"), |_inv: Invocation| async move {
            Err::<CallResult, _>(failed_error())
        })
        .await
        .expect("register .fail");

    let peer = ScriptPeer::python(&python, router.url(), py, &["caller", &proc_]);
    assert_caller_lines(&peer.succeed().await);

    // What autobahn-python sent, as our client decoded it: the exact types, bytes included.
    let (args, kwargs) = seen_rx.try_recv().expect("the echo procedure was invoked");
    assert_eq!(args, call_args());
    assert_eq!(kwargs, call_kwargs());
    assert!(seen_rx.try_recv().is_err(), "echo invoked more than once");
    leave(callee).await;
}

#[tokio::test]
async fn python_caller_rust_callee_json() {
    python_caller_rust_callee(Serializer::Json, Serializer::Json).await;
}

#[tokio::test]
async fn python_caller_rust_callee_msgpack() {
    python_caller_rust_callee(Serializer::MsgPack, Serializer::MsgPack).await;
}

#[tokio::test]
async fn python_caller_json_rust_callee_msgpack() {
    python_caller_rust_callee(Serializer::Json, Serializer::MsgPack).await;
}

#[tokio::test]
async fn python_caller_msgpack_rust_callee_json() {
    python_caller_rust_callee(Serializer::MsgPack, Serializer::Json).await;
}

#[tokio::test]
async fn python_caller_cbor_rust_callee_json() {
    python_caller_rust_callee(Serializer::Cbor, Serializer::Json).await;
}

// --- Python callee <- Rust callers and a Python caller ----------------------------------

/// Our client calls a Python callee speaking `py`, over each serializer.
async fn rust_calls_python_callee(url: &str, rust: Serializer, proc_: &str) {
    let caller = rust_client(url, rust).await;

    let r = timeout(
        WAIT,
        caller.call(proc_).args(call_args()).kwargs(call_kwargs()),
    )
    .await
    .expect("echo answered in time")
    .unwrap_or_else(|e| panic!("echo over {rust:?} fails: {e:?}"));
    assert_eq!(r.args, call_args(), "echo args over {rust:?}");
    assert_eq!(r.kwargs, call_kwargs(), "echo kwargs over {rust:?}");

    // Only keyword arguments, and no arguments at all.
    let r = timeout(
        WAIT,
        caller.call(proc_).kwarg("only", Value::Bytes(vec![7])),
    )
    .await
    .expect("kwargs-only echo answered in time")
    .expect("kwargs-only echo succeeds");
    assert_eq!(r.args, Vec::<Value>::new());
    assert_eq!(
        r.kwargs,
        Dict::from([("only".into(), Value::Bytes(vec![7]))])
    );
    let r = timeout(WAIT, caller.call(proc_))
        .await
        .expect("empty echo answered in time")
        .expect("empty echo succeeds");
    assert_eq!(r, CallResult::new(), "empty echo over {rust:?}");

    let err = timeout(WAIT, caller.call(&format!("{proc_}.fail")).arg(1))
        .await
        .expect(".fail answered in time")
        .expect_err(".fail fails");
    assert!(matches!(err, CallError::Application { .. }), "{err:?}");
    assert_eq!(err, failed_error(), "over {rust:?}");
    leave(caller).await;
}

/// One Python callee (`py`) serves a JSON and a MessagePack Rust caller (concurrently), then a
/// Python caller speaking the other serializer: routing between two autobahn clients.
async fn python_callee(py: Serializer) {
    let Some(python) = python("autobahn-python interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let proc_ = format!("com.example.py.py_echo.{}", ser_name(py));
    let mut callee = ScriptPeer::python(&python, router.url(), py, &["callee", &proc_]);
    callee.ready().await;

    tokio::join!(
        rust_calls_python_callee(router.url(), Serializer::Json, &proc_),
        rust_calls_python_callee(router.url(), Serializer::MsgPack, &proc_),
    );

    let other = match py {
        Serializer::Json => Serializer::MsgPack,
        Serializer::MsgPack | Serializer::Cbor => Serializer::Json,
    };
    let caller = ScriptPeer::python(&python, router.url(), other, &["caller", &proc_]);
    assert_caller_lines(&caller.succeed().await);

    assert_eq!(callee.succeed().await, Vec::<Json>::new(), "callee lines");
}

#[tokio::test]
async fn python_callee_json_serves_rust_and_python_msgpack_callers() {
    python_callee(Serializer::Json).await;
}

#[tokio::test]
async fn python_callee_msgpack_serves_rust_and_python_json_callers() {
    python_callee(Serializer::MsgPack).await;
}

#[tokio::test]
async fn python_callee_cbor_serves_rust_and_python_json_callers() {
    python_callee(Serializer::Cbor).await;
}

// --- Python publisher -> Rust subscribers ---------------------------------------------

/// A Python publisher (`py`) publishes COUNT acknowledged events; a JSON and a MessagePack
/// Rust subscriber each receive all of them, in order, with exact payloads.
async fn python_publisher(py: Serializer) {
    let Some(python) = python("autobahn-python interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let topic = format!("com.example.py.py_pub.{}", ser_name(py));
    let mut subscribers = Vec::new();
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let client = rust_client(router.url(), ser).await;
        let events = timeout(WAIT, client.subscribe(&topic))
            .await
            .expect("subscribe in time")
            .expect("subscribe");
        subscribers.push((ser, client, events));
    }

    let count = COUNT.to_string();
    let peer = ScriptPeer::python(&python, router.url(), py, &["publisher", &topic, &count]);
    assert_eq!(peer.succeed().await, vec![json!({"published": COUNT})]);

    for (ser, client, mut events) in subscribers {
        for i in 0..COUNT {
            let ev = timeout(WAIT, events.next())
                .await
                .unwrap_or_else(|_| panic!("{ser:?} subscriber: event {i} in time"))
                .unwrap_or_else(|| panic!("{ser:?} subscriber: stream ended before event {i}"));
            assert_eq!(ev.args, event_args(i), "{ser:?} subscriber, event {i}");
            assert_eq!(ev.kwargs, event_kwargs(i), "{ser:?} subscriber, event {i}");
        }
        assert_eq!(events.dropped_events(), 0);
        drop(events);
        leave(client).await;
    }
}

#[tokio::test]
async fn python_publisher_json_rust_subscribers() {
    python_publisher(Serializer::Json).await;
}

#[tokio::test]
async fn python_publisher_msgpack_rust_subscribers() {
    python_publisher(Serializer::MsgPack).await;
}

#[tokio::test]
async fn python_publisher_cbor_rust_subscribers() {
    python_publisher(Serializer::Cbor).await;
}

// --- Rust publishers -> Python subscriber ---------------------------------------------

/// A Python subscriber (`py`) hears COUNT events from a JSON Rust publisher (`0..COUNT`) and
/// COUNT from a MessagePack one (`COUNT..2*COUNT`), and prints every one of them.
async fn python_subscriber(py: Serializer) {
    let Some(python) = python("autobahn-python interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let topic = format!("com.example.py.rust_pub.{}", ser_name(py));
    let total = (2 * COUNT).to_string();
    let mut peer = ScriptPeer::python(&python, router.url(), py, &["subscriber", &topic, &total]);
    peer.ready().await;

    let publishers = [Serializer::Json, Serializer::MsgPack];
    for (n, ser) in (0u64..).zip(publishers) {
        let publisher = rust_client(router.url(), ser).await;
        for i in n * COUNT..(n + 1) * COUNT {
            timeout(
                WAIT,
                publisher
                    .publish(&topic)
                    .args(event_args(i))
                    .kwargs(event_kwargs(i))
                    .acknowledge(),
            )
            .await
            .expect("publish acknowledged in time")
            .expect("publish acknowledged");
        }
        leave(publisher).await;
    }

    let lines = peer.succeed().await;
    assert_eq!(
        lines.len() as u64,
        2 * COUNT,
        "subscriber lines: {lines:#?}"
    );
    // Each publisher's events in its order (two publishers' streams may interleave).
    for n in 0..2 {
        let range = n * COUNT..(n + 1) * COUNT;
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| l["args"][0].as_u64().is_some_and(|i| range.contains(&i)))
            .cloned()
            .collect();
        let want: Vec<_> = range.clone().map(event_line).collect();
        assert_eq!(mine, want, "events of publisher {n}: {lines:#?}");
    }
}

#[tokio::test]
async fn rust_publishers_python_subscriber_json() {
    python_subscriber(Serializer::Json).await;
}

#[tokio::test]
async fn rust_publishers_python_subscriber_msgpack() {
    python_subscriber(Serializer::MsgPack).await;
}

#[tokio::test]
async fn rust_publishers_python_subscriber_cbor() {
    python_subscriber(Serializer::Cbor).await;
}
