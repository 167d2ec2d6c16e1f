//! Interop with autobahn-python over RawSocket (TCP `rs://` and Unix `unix://`), mixed with
//! WebSocket peers, through our router.
//!
//! Like `interop_python.rs`: each test runs the real router in-process and drives
//! `tests/interop/python/peer.py` (autobahn's asyncio `WampRawSocketClientFactory` for
//! `rs://` and `unix://` URLs) against our `wamp_client` or a second Python peer. Every
//! payload carries binary data; JSON and MessagePack both appear on each side, on each
//! transport, and autobahn's CBOR (RawSocket serializer 3) as a callee and a caller. The
//! router has three transports, each with every serializer: RawSocket on TCP, WebSocket, and
//! RawSocket on a Unix socket in a fresh temp dir.
//!
//! Needs `WAMP_INTEROP_PYTHON` (see `interop_python.rs`): skipped with a notice without it,
//! failed under CI.

use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use tokio::time::timeout;
use wamp_client::Serializer;
use wamp_tests::client::{leave, rust_client};
use wamp_tests::interop::{python, ser_name, ScriptPeer, REALM};
use wamp_tests::payloads::{
    assert_caller_lines, call_args, call_kwargs, event_args, event_kwargs, event_line,
    failed_error, register_echo, register_failing,
};
use wamp_tests::rawsocket::TempDir;
use wamp_tests::{TestRouter, WAIT};

use Serializer::{Cbor as C, Json as J, MsgPack as M};

/// Events per publisher.
const COUNT: u64 = 5;

/// The router's transports.
#[derive(Debug, Clone, Copy)]
enum Via {
    Rs,
    Ws,
    Unix,
}

struct Router {
    router: TestRouter,
    _dir: TempDir,
}

impl Router {
    async fn start() -> Router {
        let dir = TempDir::new();
        let all = "serializers = [\"json\", \"msgpack\", \"cbor\"]";
        let router = TestRouter::with_config(&format!(
            "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n{all}\n\
             [[transport]]\ntype = \"websocket\"\nbind = \"127.0.0.1:0\"\n{all}\n\
             [[transport]]\ntype = \"rawsocket\"\nunix_socket = \"{}\"\n{all}\n\
             [[realm]]\nname = \"{REALM}\"\n",
            dir.path().join("router.sock").display()
        ))
        .await;
        Router { router, _dir: dir }
    }

    fn url(&self, via: Via) -> &str {
        let urls = self.router.server().urls();
        let url = &urls[via as usize];
        let scheme = match via {
            Via::Rs => "rs://",
            Via::Ws => "ws://",
            Via::Unix => "unix:///",
        };
        assert!(url.starts_with(scheme), "{via:?}: {url}");
        url
    }
}

// --- Python callee (RawSocket) <- Rust callers and a Python caller ------------------------------

/// Our client calls the Python callee: the echo with payload, and the application error.
async fn rust_calls(url: &str, rust: Serializer, proc_: &str) {
    let caller = rust_client(url, rust).await;
    let r = timeout(
        WAIT,
        caller.call(proc_).args(call_args()).kwargs(call_kwargs()),
    )
    .await
    .expect("echo answered in time")
    .unwrap_or_else(|e| panic!("echo over {url} {rust:?} fails: {e:?}"));
    assert_eq!(
        (r.args, r.kwargs),
        (call_args(), call_kwargs()),
        "{url} {rust:?}"
    );
    let err = timeout(WAIT, caller.call(&format!("{proc_}.fail")))
        .await
        .expect(".fail answered in time")
        .expect_err(".fail fails");
    assert_eq!(err, failed_error(), "{url} {rust:?}");
    leave(caller).await;
}

/// A Python callee over RawSocket (`py` on `via`) serves Rust callers on every transport at
/// once, then a Python caller speaking the other serializer on `caller_via`.
async fn python_callee(py: Serializer, via: Via, caller_via: Via) {
    let Some(python) = python("autobahn-python RawSocket interop test") else {
        return;
    };
    let r = Router::start().await;
    let proc_ = format!("com.example.rs.py_echo.{}.{via:?}", ser_name(py));
    let mut callee = ScriptPeer::python(&python, r.url(via), py, &["callee", &proc_]);
    callee.ready().await;
    tokio::join!(
        rust_calls(r.url(Via::Ws), J, &proc_),
        rust_calls(r.url(Via::Rs), M, &proc_),
        rust_calls(r.url(Via::Unix), J, &proc_),
    );
    let other = if py == J { M } else { J };
    let caller = ScriptPeer::python(&python, r.url(caller_via), other, &["caller", &proc_]);
    assert_caller_lines(&caller.succeed().await);
    assert_eq!(callee.succeed().await, Vec::<Json>::new(), "callee lines");
}

#[tokio::test]
async fn python_callee_json_over_rawsocket_tcp_serves_all_transports_and_a_websocket_caller() {
    python_callee(J, Via::Rs, Via::Ws).await;
}

#[tokio::test]
async fn python_callee_msgpack_over_unix_socket_serves_all_transports_and_a_rawsocket_caller() {
    python_callee(M, Via::Unix, Via::Rs).await;
}

#[tokio::test]
async fn python_callee_cbor_over_rawsocket_tcp_serves_all_transports_and_a_unix_socket_caller() {
    python_callee(C, Via::Rs, Via::Unix).await;
}

// --- Python caller (RawSocket) -> Rust callee ---------------------------------------------------

/// A Python caller (`py` on `via`) calls a Rust callee (`rust` on `rust_via`): the echo, an
/// application error and `no_such_procedure`; our callee sees autobahn's exact payload.
async fn python_caller(py: Serializer, via: Via, rust: Serializer, rust_via: Via) {
    let Some(python) = python("autobahn-python RawSocket interop test") else {
        return;
    };
    let r = Router::start().await;
    let proc_ = format!("com.example.rs.rust_echo.{}.{via:?}", ser_name(py));
    let callee = rust_client(r.url(rust_via), rust).await;
    let (_echo, mut seen_rx) = register_echo(&callee, &proc_).await;
    let _fail = register_failing(&callee, &format!("{proc_}.fail"), failed_error()).await;

    let peer = ScriptPeer::python(&python, r.url(via), py, &["caller", &proc_]);
    assert_caller_lines(&peer.succeed().await);
    let (args, kwargs) = seen_rx.try_recv().expect("the echo procedure was invoked");
    assert_eq!((args, kwargs), (call_args(), call_kwargs()));
    assert!(seen_rx.try_recv().is_err(), "echo invoked more than once");
    leave(callee).await;
}

#[tokio::test]
async fn python_caller_json_over_rawsocket_rust_callee_over_rawsocket() {
    python_caller(J, Via::Rs, J, Via::Rs).await;
}

#[tokio::test]
async fn python_caller_msgpack_over_rawsocket_rust_callee_over_rawsocket() {
    python_caller(M, Via::Rs, M, Via::Rs).await;
}

#[tokio::test]
async fn python_caller_json_over_unix_socket_rust_callee_msgpack_over_websocket() {
    python_caller(J, Via::Unix, M, Via::Ws).await;
}

#[tokio::test]
async fn python_caller_msgpack_over_rawsocket_rust_callee_json_over_unix_socket() {
    python_caller(M, Via::Rs, J, Via::Unix).await;
}

#[tokio::test]
async fn python_caller_cbor_over_rawsocket_rust_callee_json_over_websocket() {
    python_caller(C, Via::Rs, J, Via::Ws).await;
}

// --- PubSub ----------------------------------------------------------------------------------

/// A Python subscriber (`py` on `via`) hears COUNT events from a JSON Rust publisher over
/// WebSocket and COUNT from a MessagePack one over RawSocket, each publisher's in order.
async fn python_subscriber(py: Serializer, via: Via) {
    let Some(python) = python("autobahn-python RawSocket interop test") else {
        return;
    };
    let r = Router::start().await;
    let topic = format!("com.example.rs.rust_pub.{}.{via:?}", ser_name(py));
    let total = (2 * COUNT).to_string();
    let mut peer = ScriptPeer::python(&python, r.url(via), py, &["subscriber", &topic, &total]);
    peer.ready().await;
    for (n, (url, ser)) in (0u64..).zip([(r.url(Via::Ws), J), (r.url(Via::Rs), M)]) {
        let publisher = rust_client(url, ser).await;
        for i in n * COUNT..(n + 1) * COUNT {
            let publish = publisher
                .publish(&topic)
                .args(event_args(i))
                .kwargs(event_kwargs(i))
                .acknowledge();
            timeout(WAIT, publish)
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
async fn rust_publishers_python_subscriber_json_over_rawsocket() {
    python_subscriber(J, Via::Rs).await;
}

#[tokio::test]
async fn rust_publishers_python_subscriber_msgpack_over_unix_socket() {
    python_subscriber(M, Via::Unix).await;
}

/// A Python publisher (`py` on `via`) reaches Rust subscribers on all three transports.
async fn python_publisher(py: Serializer, via: Via) {
    let Some(python) = python("autobahn-python RawSocket interop test") else {
        return;
    };
    let r = Router::start().await;
    let topic = format!("com.example.rs.py_pub.{}.{via:?}", ser_name(py));
    let mut subscribers = Vec::new();
    for (url, ser) in [
        (r.url(Via::Ws), J),
        (r.url(Via::Rs), M),
        (r.url(Via::Unix), J),
    ] {
        let client = rust_client(url, ser).await;
        let events = timeout(WAIT, client.subscribe(&topic))
            .await
            .expect("subscribe in time")
            .expect("subscribe");
        subscribers.push((format!("{url} {ser:?}"), client, events));
    }
    let count = COUNT.to_string();
    let peer = ScriptPeer::python(&python, r.url(via), py, &["publisher", &topic, &count]);
    assert_eq!(peer.succeed().await, vec![json!({"published": COUNT})]);
    for (what, client, mut events) in subscribers {
        for i in 0..COUNT {
            let ev = timeout(WAIT, events.next())
                .await
                .unwrap_or_else(|_| panic!("{what}: event {i} in time"))
                .unwrap_or_else(|| panic!("{what}: stream ended before event {i}"));
            assert_eq!(
                (ev.args, ev.kwargs),
                (event_args(i), event_kwargs(i)),
                "{what} {i}"
            );
        }
        assert_eq!(events.dropped_events(), 0);
        drop(events);
        leave(client).await;
    }
}

#[tokio::test]
async fn python_publisher_msgpack_over_rawsocket_rust_subscribers_on_all_transports() {
    python_publisher(M, Via::Rs).await;
}

#[tokio::test]
async fn python_publisher_json_over_unix_socket_rust_subscribers_on_all_transports() {
    python_publisher(J, Via::Unix).await;
}

// --- a refused handshake ---------------------------------------------------------------------

/// autobahn-python offered a serializer the transport does not enable: the router's error
/// reply makes the peer fail (it does not hang or report success).
#[tokio::test]
async fn a_refused_rawsocket_handshake_fails_the_python_peer() {
    let Some(python) = python("autobahn-python RawSocket interop test") else {
        return;
    };
    let router = TestRouter::with_config(&format!(
        "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\nserializers = [\"json\"]\n\
         [[realm]]\nname = \"{REALM}\"\n"
    ))
    .await;
    let peer = ScriptPeer::python(&python, router.url(), M, &["publisher", "com.t", "1"]);
    let (status, lines, stderr) = peer.finish().await;
    assert!(!status.success(), "peer succeeded: {lines:?}\n{stderr}");
    assert!(lines.is_empty(), "{lines:?}");
    assert!(stderr.contains("RawSocket connection lost"), "{stderr}");
    // The same peer in JSON joins.
    let peer = ScriptPeer::python(&python, router.url(), J, &["publisher", "com.t", "1"]);
    assert_eq!(peer.succeed().await, vec![json!({"published": 1})]);
}
