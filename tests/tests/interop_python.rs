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
use wamp_client::{CallError, CallResult, Dict, Serializer, Value};
use wamp_tests::client::{leave, rust_client};
use wamp_tests::interop::{python, ser_name, ScriptPeer};
use wamp_tests::payloads::{
    assert_caller_lines, call_args, call_kwargs, event_args, event_kwargs, event_line,
    failed_error, register_echo, register_failing,
};
use wamp_tests::{TestRouter, WAIT};

/// Events per publisher.
const COUNT: u64 = 5;

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

    let (_echo, mut seen_rx) = register_echo(&callee, &proc_).await;
    let _fail = register_failing(&callee, &format!("{proc_}.fail"), failed_error()).await;

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
