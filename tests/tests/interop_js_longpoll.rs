//! Interop with autobahn-js's `longpoll` transport (JSON over XHR, `xhr2` in Node) through
//! our router, with a WebSocket peer on the other side: RPC and PubSub in both directions,
//! binary payloads included, and the GOODBYE of a graceful shutdown answered over HTTP.
//!
//! Needs `WAMP_INTEROP_NODE_DIR` like `interop_js.rs` (else the tests skip with a notice,
//! or fail when `CI` is set).

use futures_util::StreamExt;
use serde_json::json;
use tokio::time::timeout;
use wamp_client::Serializer;
use wamp_tests::client::rust_client;
use wamp_tests::interop::{self, NodeEnv, ScriptPeer};
use wamp_tests::payloads::{
    call_args, call_kwargs, echo_line, event_args, event_kwargs, event_line, failed_error,
    failed_line, register_echo, register_failing,
};
use wamp_tests::{TestRouter, WAIT};

const CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json", "msgpack"]
longpoll = { path = "/lp" }

[[realm]]
name = "realm1"
"#;

/// The router, and the long-poll base URL for autobahn-js.
async fn router() -> (TestRouter, String) {
    let router = TestRouter::with_config(CONFIG).await;
    let lp = format!("http://{}/lp", router.server().local_addrs()[0]);
    (router, lp)
}

fn node_env() -> Option<NodeEnv> {
    interop::node_env("autobahn-js long-poll interop test")
}

/// `peer.js` in `mode` on the long-poll transport (an http:// URL selects it).
fn lp_peer(env: &NodeEnv, lp: &str, mode: &[&str]) -> ScriptPeer {
    ScriptPeer::node(env, "peer.js", lp, Serializer::Json, mode)
}

#[tokio::test]
async fn longpoll_caller_websocket_callee() {
    let Some(env) = node_env() else { return };
    let (router, lp) = router().await;
    let callee = rust_client(router.url(), Serializer::MsgPack).await;
    let (_echo, mut seen) = register_echo(&callee, "com.lp.echo").await;
    let _fail = register_failing(&callee, "com.lp.echo.fail", failed_error()).await;

    let lines = lp_peer(&env, &lp, &["caller", "com.lp.echo"])
        .succeed()
        .await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0], echo_line());
    assert_eq!(lines[1], failed_line());
    assert_eq!(lines[2]["error"], "wamp.error.no_such_procedure");
    let (args, kwargs) = seen.try_recv().expect("the echo was invoked");
    assert_eq!(
        (args, kwargs),
        (call_args(), call_kwargs()),
        "bytes arrive as bytes"
    );
    callee.leave().await.expect("leave");
}

#[tokio::test]
async fn websocket_caller_longpoll_callee() {
    let Some(env) = node_env() else { return };
    let (router, lp) = router().await;
    let mut peer = lp_peer(&env, &lp, &["callee", "com.lp.js_echo"]);
    peer.ready().await;
    let caller = rust_client(router.url(), Serializer::MsgPack).await;
    let r = timeout(
        WAIT,
        caller
            .call("com.lp.js_echo")
            .args(call_args())
            .kwargs(call_kwargs()),
    )
    .await
    .expect("answered in time")
    .expect("echo succeeds");
    assert_eq!((r.args, r.kwargs), (call_args(), call_kwargs()));
    let err = timeout(WAIT, caller.call("com.lp.js_echo.fail"))
        .await
        .expect("answered in time")
        .expect_err(".fail fails");
    assert_eq!(err, failed_error());
    caller.leave().await.expect("leave");
    assert!(peer.succeed().await.is_empty());
}

#[tokio::test]
async fn longpoll_publisher_websocket_subscriber() {
    let Some(env) = node_env() else { return };
    let (router, lp) = router().await;
    let subscriber = rust_client(router.url(), Serializer::Json).await;
    let mut events = subscriber
        .subscribe("com.lp.js_pub")
        .await
        .expect("subscribe");
    let peer = lp_peer(&env, &lp, &["publisher", "com.lp.js_pub", "3"]);
    assert_eq!(peer.succeed().await, vec![json!({"published": 3})]);
    for i in 0..3 {
        let ev = timeout(WAIT, events.next())
            .await
            .expect("in time")
            .expect("event");
        assert_eq!(
            (ev.args, ev.kwargs),
            (event_args(i), event_kwargs(i)),
            "event {i}"
        );
    }
    subscriber.leave().await.expect("leave");
}

#[tokio::test]
async fn websocket_publisher_longpoll_subscriber() {
    let Some(env) = node_env() else { return };
    let (router, lp) = router().await;
    let mut peer = lp_peer(&env, &lp, &["subscriber", "com.lp.rust_pub", "3"]);
    peer.ready().await;
    let publisher = rust_client(router.url(), Serializer::MsgPack).await;
    for i in 0..3 {
        let ack = publisher
            .publish("com.lp.rust_pub")
            .args(event_args(i))
            .kwargs(event_kwargs(i))
            .acknowledge();
        timeout(WAIT, ack)
            .await
            .expect("in time")
            .expect("acknowledged");
    }
    assert_eq!(
        peer.succeed().await,
        (0..3).map(event_line).collect::<Vec<_>>()
    );
    publisher.leave().await.expect("leave");
}

/// autobahn-js answers the router's GOODBYE over HTTP during a graceful shutdown: the
/// session leaves well before the GOODBYE timeout (the HTTP connections keep serving until
/// then) and the peer ends well.
#[tokio::test]
async fn longpoll_callee_leaves_when_the_router_shuts_down() {
    let Some(env) = node_env() else { return };
    let router =
        TestRouter::with_config(&format!("[router]\ngoodbye_timeout_ms = 8000\n{CONFIG}")).await;
    let lp = format!("http://{}/lp", router.server().local_addrs()[0]);
    let mut peer = lp_peer(&env, &lp, &["callee", "com.lp.p"]);
    peer.ready().await;
    assert_eq!(router.server().session_count(), 1);
    let stdin = peer.take_stdin(); // kept open: only the router may end the session
    let started = std::time::Instant::now();
    timeout(WAIT, router.shutdown())
        .await
        .expect("shutdown in time");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(4),
        "GOODBYE not answered: shutdown took {took:?}"
    );
    assert!(peer.succeed().await.is_empty());
    drop(stdin);
}
