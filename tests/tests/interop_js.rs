//! Interop with autobahn-js, a WAMP client we did not write, through our router.
//!
//! Each test runs the real router in-process and drives `tests/interop/js/peer.js` (an
//! autobahn-js session scripted by its command line, the same contract as the Python peer)
//! as a child process, against our own `wamp_client` or a second JS peer. Every payload
//! carries binary data, so the JSON `"\u0000" + base64` convention and MessagePack `bin`
//! both cross the router in each direction.
//!
//! Needs `WAMP_INTEROP_NODE_DIR`, the `tests/interop/js` directory with its `node_modules`
//! installed: `scripts/test-all.sh` runs `npm ci` there and exports it (and
//! `WAMP_INTEROP_NODE`, the `node` to run; else `node` from `PATH`). Without it the tests
//! skip with a notice, or fail when `CI` is set.

use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use tokio::time::timeout;
use wamp_client::{CallResult, Serializer};
use wamp_tests::client::rust_client;
use wamp_tests::interop::{self, ser_name, NodeEnv, ScriptPeer};
use wamp_tests::payloads::{
    call_args, call_kwargs, echo_line, event_args, event_kwargs, event_line, failed_error,
    failed_line, register_echo, register_failing,
};
use wamp_tests::{TestRouter, WAIT};

/// The JS peer's environment, or `None` (after a notice) when it is not set up outside CI.
fn node_env() -> Option<NodeEnv> {
    interop::node_env("autobahn-js interop test")
}

/// Starts `peer.js` in `mode`.
fn spawn_peer(env: &NodeEnv, url: &str, serializer: Serializer, mode: &[&str]) -> ScriptPeer {
    ScriptPeer::node(env, "peer.js", url, serializer, mode)
}

/// Checks a JS caller's three lines: the echo, PROC.fail's error, and the router's
/// `no_such_procedure` (whose message text is the router's own).
fn assert_caller_lines(lines: &[Json]) {
    assert_eq!(lines.len(), 3, "caller lines: {lines:#?}");
    assert_eq!(lines[0], echo_line());
    assert_eq!(lines[1], failed_line());
    assert_eq!(
        lines[2]["error"], "wamp.error.no_such_procedure",
        "{}",
        lines[2]
    );
    assert!(lines[2]["error_args"].is_array(), "{}", lines[2]);
    assert!(lines[2]["error_kwargs"].is_object(), "{}", lines[2]);
}

// --- the scenarios -------------------------------------------------------------------

/// JS caller -> Rust callee: an echo procedure and a failing one, the JS side's rendering
/// of results and errors, and what our client received from autobahn-js.
async fn js_caller_rust_callee(serializer: Serializer) {
    let Some(env) = node_env() else { return };
    let router = TestRouter::start().await;
    let proc_ = format!("com.example.js.rust_echo.{}", ser_name(serializer));
    let callee = rust_client(router.url(), serializer).await;

    let (_echo, mut seen_rx) = register_echo(&callee, &proc_).await;
    let _fail = register_failing(&callee, &format!("{proc_}.fail"), failed_error()).await;

    let peer = spawn_peer(&env, router.url(), serializer, &["caller", &proc_]);
    assert_caller_lines(&peer.succeed().await);

    // What autobahn-js sent, as our client decoded it: the exact types, bytes included.
    let (args, kwargs) = seen_rx.try_recv().expect("the echo procedure was invoked");
    assert_eq!(args, call_args());
    assert_eq!(kwargs, call_kwargs());
    callee.leave().await.expect("leave");
}

/// Rust caller -> JS callee: autobahn-js echoes our payload exactly, and its error
/// (`autobahn.Error` thrown in the endpoint) arrives with URI, args and kwargs.
async fn rust_caller_js_callee(serializer: Serializer) {
    let Some(env) = node_env() else { return };
    let router = TestRouter::start().await;
    let proc_ = format!("com.example.js.js_echo.{}", ser_name(serializer));
    let mut peer = spawn_peer(&env, router.url(), serializer, &["callee", &proc_]);
    peer.ready().await;
    let caller = rust_client(router.url(), serializer).await;

    let r = timeout(
        WAIT,
        caller.call(&proc_).args(call_args()).kwargs(call_kwargs()),
    )
    .await
    .expect("echo answered in time")
    .expect("echo succeeds");
    assert_eq!(r.args, call_args());
    assert_eq!(r.kwargs, call_kwargs());

    // No payload: autobahn.Result([], {}) yields a YIELD without args.
    let r = timeout(WAIT, caller.call(&proc_))
        .await
        .expect("empty echo answered in time")
        .expect("empty echo succeeds");
    assert_eq!(r, CallResult::new());

    let err = timeout(WAIT, caller.call(&format!("{proc_}.fail")))
        .await
        .expect(".fail answered in time")
        .expect_err(".fail fails");
    assert_eq!(err, failed_error());

    caller.leave().await.expect("leave");
    assert!(peer.succeed().await.is_empty(), "callee printed more lines");
}

/// JS publisher -> Rust subscriber: acknowledged publications, bytes included.
async fn js_publisher_rust_subscriber(serializer: Serializer) {
    let Some(env) = node_env() else { return };
    let router = TestRouter::start().await;
    let topic = format!("com.example.js.js_pub.{}", ser_name(serializer));
    let subscriber = rust_client(router.url(), serializer).await;
    let mut events = subscriber.subscribe(&topic).await.expect("subscribe");

    let peer = spawn_peer(&env, router.url(), serializer, &["publisher", &topic, "3"]);
    assert_eq!(peer.succeed().await, vec![json!({"published": 3})]);
    for i in 0..3 {
        let ev = timeout(WAIT, events.next())
            .await
            .unwrap_or_else(|_| panic!("event {i} in time"))
            .unwrap_or_else(|| panic!("subscription ended before event {i}"));
        assert_eq!(ev.args, event_args(i), "event {i}");
        assert_eq!(ev.kwargs, event_kwargs(i), "event {i}");
    }
    subscriber.leave().await.expect("leave");
}

/// Rust publisher -> JS subscriber.
async fn rust_publisher_js_subscriber(serializer: Serializer) {
    let Some(env) = node_env() else { return };
    let router = TestRouter::start().await;
    let topic = format!("com.example.js.rust_pub.{}", ser_name(serializer));
    let mut peer = spawn_peer(&env, router.url(), serializer, &["subscriber", &topic, "3"]);
    peer.ready().await;
    let publisher = rust_client(router.url(), serializer).await;
    for i in 0..3 {
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
    let lines = peer.succeed().await;
    assert_eq!(lines, (0..3).map(event_line).collect::<Vec<_>>());
    publisher.leave().await.expect("leave");
}

#[tokio::test]
async fn js_caller_rust_callee_json() {
    js_caller_rust_callee(Serializer::Json).await;
}

#[tokio::test]
async fn js_caller_rust_callee_msgpack() {
    js_caller_rust_callee(Serializer::MsgPack).await;
}

#[tokio::test]
async fn rust_caller_js_callee_json() {
    rust_caller_js_callee(Serializer::Json).await;
}

#[tokio::test]
async fn rust_caller_js_callee_msgpack() {
    rust_caller_js_callee(Serializer::MsgPack).await;
}

#[tokio::test]
async fn js_publisher_rust_subscriber_json() {
    js_publisher_rust_subscriber(Serializer::Json).await;
}

#[tokio::test]
async fn js_publisher_rust_subscriber_msgpack() {
    js_publisher_rust_subscriber(Serializer::MsgPack).await;
}

#[tokio::test]
async fn rust_publisher_js_subscriber_json() {
    rust_publisher_js_subscriber(Serializer::Json).await;
}

#[tokio::test]
async fn rust_publisher_js_subscriber_msgpack() {
    rust_publisher_js_subscriber(Serializer::MsgPack).await;
}

/// JS caller (JSON) -> JS callee (MessagePack): the router translates between the two
/// serializers, bytes included, with neither end written by us.
#[tokio::test]
async fn js_caller_json_js_callee_msgpack() {
    let Some(env) = node_env() else { return };
    let router = TestRouter::start().await;
    let proc_ = "com.example.js.cross";
    let mut callee = spawn_peer(&env, router.url(), Serializer::MsgPack, &["callee", proc_]);
    callee.ready().await;
    let caller = spawn_peer(&env, router.url(), Serializer::Json, &["caller", proc_]);
    assert_caller_lines(&caller.succeed().await);
    assert!(
        callee.succeed().await.is_empty(),
        "callee printed more lines"
    );
}

/// `--serializer` really selects what the peer offers: a MessagePack peer cannot join a
/// router that speaks only JSON (it fails rather than falling back to JSON).
#[tokio::test]
async fn js_peer_offers_only_the_chosen_serializer() {
    let Some(env) = node_env() else { return };
    let router = TestRouter::with_config(
        r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json"]

[[realm]]
name = "realm1"
"#,
    )
    .await;
    let peer = spawn_peer(&env, router.url(), Serializer::MsgPack, &["caller", "p"]);
    let (status, lines, stderr) = peer.finish().await;
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(lines.is_empty(), "{lines:?}");
    assert!(stderr.contains("before the session was joined"), "{stderr}");

    // The same peer with JSON joins that router (and finds no procedure).
    let peer = spawn_peer(&env, router.url(), Serializer::Json, &["caller", "p"]);
    let (status, lines, stderr) = peer.finish().await;
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(lines.len(), 0, "{lines:?}");
    assert!(stderr.contains("wamp.error.no_such_procedure"), "{stderr}");
}

/// A callee also ends well (exit 0) when the router closes the session: autobahn-js
/// answers the router's GOODBYE during a graceful shutdown.
#[tokio::test]
async fn js_callee_leaves_when_the_router_shuts_down() {
    let Some(env) = node_env() else { return };
    let router = TestRouter::start().await;
    let mut peer = spawn_peer(&env, router.url(), Serializer::Json, &["callee", "p"]);
    peer.ready().await;
    assert_eq!(router.server().session_count(), 1);
    let stdin = peer.take_stdin(); // kept open: only the router may end the session
    timeout(WAIT, router.shutdown())
        .await
        .expect("shutdown in time");
    assert!(peer.succeed().await.is_empty(), "callee printed more lines");
    drop(stdin);
}
