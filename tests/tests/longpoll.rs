//! The HTTP long-poll transport over real sockets: open, send, receive, close, batching,
//! expiry of an unpolled transport, CORS, and every bad request (a 4xx answer, the router
//! unharmed); plain HTTP on the WebSocket port (426 on the WebSocket path, 404 elsewhere).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::time::{sleep, timeout, Instant};
use wamp_client::Serializer;
use wamp_tests::client::{leave, rust_client};
use wamp_tests::http::{request, LongPollPeer};
use wamp_tests::{RawPeer, TestRouter, WAIT};

/// The test router with long-poll at `/lp`: short request and session timeouts, 4 KiB
/// messages.
fn config(extra: &str) -> String {
    format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\npath = \"/ws\"\nmax_message_size = 4096\n\
         allowed_origins = [\"https://app.example.com\"]\n\
         longpoll = {{ path = \"/lp\", request_timeout_ms = 400, session_timeout_ms = 1500 }}\n\
         {extra}[[realm]]\nname = \"realm1\"\n"
    )
}

async fn router() -> (TestRouter, SocketAddr) {
    let router = TestRouter::with_config(&config("")).await;
    let addr = router.server().local_addrs()[0];
    (router, addr)
}

/// Waits until the router has `n` sessions, within [`WAIT`].
async fn sessions(router: &TestRouter, n: usize) {
    let deadline = Instant::now() + WAIT;
    while router.server().session_count() != n {
        assert!(
            Instant::now() < deadline,
            "session count stays {}, not {n}",
            router.server().session_count()
        );
        // Polling a counter (no event to wait on from outside the router).
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rpc_and_pubsub_with_a_websocket_peer() {
    let (router, addr) = router().await;
    let lp = LongPollPeer::open(addr, "/lp", &["wamp.2.json"]).await;
    assert_eq!(lp.protocol, "wamp.2.json");
    lp.join("realm1").await;

    // The long-poll session registers and subscribes; a WebSocket client calls and publishes.
    lp.send(&json!([64, 1, {}, "com.lp.echo"])).await;
    let registered = lp.recv_json().await;
    assert_eq!(
        (registered[0].clone(), registered[1].clone()),
        (json!(65), json!(1))
    );
    lp.send(&json!([32, 2, {}, "com.lp.topic"])).await;
    assert_eq!(lp.recv_json().await[0], 33);

    let ws = rust_client(router.url(), Serializer::MsgPack).await;
    let call = tokio::spawn({
        let ws = ws.clone();
        async move { ws.call("com.lp.echo").args(["hi", "there"]).await }
    });
    let inv = lp.recv_json().await;
    assert_eq!(inv[0], 68, "INVOCATION expected: {inv}");
    assert_eq!(inv[4], json!(["hi", "there"]));
    lp.send(&json!([70, inv[1], {}, ["hi", "there", "back"]]))
        .await;
    let result = timeout(WAIT, call)
        .await
        .expect("call answered")
        .expect("task")
        .expect("call ok");
    assert_eq!(result.args.len(), 3);

    ws.publish("com.lp.topic")
        .args([42u64])
        .acknowledge()
        .await
        .expect("publish");
    let event = lp.recv_json().await;
    assert_eq!(
        (event[0].clone(), event[4].clone()),
        (json!(36), json!([42]))
    );

    // GOODBYE and its answer, then close: the session has left.
    lp.send(&json!([6, {}, "wamp.close.close_realm"])).await;
    assert_eq!(lp.recv_json().await[0], 6);
    assert_eq!(lp.post("close", b"").await.status, 204);
    assert_eq!(
        lp.post("receive", b"").await.status,
        404,
        "a closed transport is gone"
    );
    leave(ws).await;
    sessions(&router, 0).await;
}

#[tokio::test]
async fn batched_json_carries_several_messages_per_request() {
    let (_router, addr) = router().await;
    let lp = LongPollPeer::open(addr, "/lp", &["wamp.2.ubjson", "wamp.2.json.batched"]).await;
    assert_eq!(lp.protocol, "wamp.2.json.batched");
    let roles = json!({"subscriber": {}, "publisher": {}});
    let batch = format!(
        "{}\x1e{}\x1e{}\x1e",
        json!([1, "realm1", {"roles": roles}]),
        json!([32, 1, {}, "com.batch"]),
        json!([16, 2, {"acknowledge": true, "exclude_me": false}, "com.batch", [1]])
    );
    assert_eq!(lp.post("send", batch.as_bytes()).await.status, 204);
    let mut got: Vec<Json> = Vec::new();
    while got.len() < 4 {
        let body = lp.receive().await;
        assert_eq!(body.last(), Some(&0x1e), "a batch ends with the separator");
        for part in body.split(|b| *b == 0x1e).filter(|p| !p.is_empty()) {
            got.push(serde_json::from_slice(part).expect("JSON message"));
        }
    }
    let types: Vec<u64> = got.iter().filter_map(|m| m[0].as_u64()).collect();
    assert_eq!(types[..2], [2, 33]);
    assert!(
        types.contains(&17) && types.contains(&36),
        "PUBLISHED and EVENT: {types:?}"
    );
}

#[tokio::test]
async fn an_idle_receive_is_answered_empty_in_time() {
    let (_router, addr) = router().await;
    let lp = LongPollPeer::open(addr, "/lp", &["wamp.2.json"]).await;
    lp.join("realm1").await;
    let started = Instant::now();
    let r = lp.post("receive", b"").await;
    assert_eq!(r.status, 204, "{r:?}");
    assert!(r.body.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "held {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unpolled_transport_is_dropped_and_its_session_leaves() {
    let (router, addr) = router().await;
    let lp = LongPollPeer::open(addr, "/lp", &["wamp.2.json"]).await;
    lp.join("realm1").await;
    // A held receive keeps it alive past the session timeout.
    let held = LongPollPeer::open(addr, "/lp", &["wamp.2.json"]).await;
    held.join("realm1").await;
    sessions(&router, 2).await;
    let deadline = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < deadline {
        assert_eq!(held.post("receive", b"").await.status, 204);
    }
    // Only the unpolled one left (1.5 s without a request).
    sessions(&router, 1).await;
    assert_eq!(lp.post("receive", b"").await.status, 404);
    assert_eq!(held.post("receive", b"").await.status, 204);
}

#[tokio::test]
async fn bad_requests_get_4xx_and_the_router_is_unharmed() {
    let (router, addr) = router().await;
    let lp = LongPollPeer::open(addr, "/lp", &["wamp.2.json"]).await;
    lp.join("realm1").await;
    let post = |path: &'static str, body: &'static [u8]| request(addr, "POST", path, &[], body);

    let cases: Vec<(u16, wamp_tests::http::HttpReply)> = vec![
        (405, request(addr, "GET", "/lp/open", &[], b"").await),
        (400, post("/lp/open", b"\xff\xfe{}").await),
        (400, post("/lp/open", b"not json").await),
        (400, post("/lp/open", b"[\"wamp.2.json\"]").await),
        (
            400,
            post("/lp/open", b"{\"protocol\": [\"wamp.2.json\"]}").await,
        ),
        (
            400,
            post("/lp/open", b"{\"protocols\": [\"wamp.2.ubjson\"]}").await,
        ),
        (400, post("/lp/open", b"{\"protocols\": []}").await),
        (
            404,
            post("/lp/nosuchtransport0000000000/send", b"[1]").await,
        ),
        (
            404,
            post("/lp/nosuchtransport0000000000/receive", b"").await,
        ),
        (404, post("/lp/nosuchtransport0000000000/close", b"").await),
        (404, post("/lp/whatever", b"").await),
        (404, post("/lp", b"").await),
        (
            405,
            request(addr, "GET", &format!("{}/receive", lp.url), &[], b"").await,
        ),
        (400, lp.post("send", b"\xff\xfe").await),
        (400, lp.post("send", b"[16, 1, {}").await),
        (400, lp.post("send", b"").await),
        (413, lp.post("send", &vec![b' '; 5000]).await),
        (413, post("/lp/open", &[b' '; 5000]).await),
        (
            403,
            request(
                addr,
                "POST",
                "/lp/open",
                &[("Origin", "https://evil.example")],
                b"{\"protocols\":[\"wamp.2.json\"]}",
            )
            .await,
        ),
    ];
    for (i, (want, got)) in cases.iter().enumerate() {
        assert_eq!(got.status, *want, "case {i}: {got:?}");
        assert!(!got.body.is_empty(), "case {i}: a refusal says why");
    }

    // The transport and the router still work: the long-poll session and a WebSocket one.
    lp.send(&json!([32, 1, {}, "com.still"])).await;
    assert_eq!(lp.recv_json().await[0], 33);
    let (_ws, _) = RawPeer::join(router.url(), "realm1", wamp_proto::Serializer::Json).await;
    sessions(&router, 2).await;
}

#[tokio::test]
async fn cors_answers_as_crossbar_does() {
    let (_router, addr) = router().await;
    let origin = ("Origin", "https://app.example.com");
    let pre = request(
        addr,
        "OPTIONS",
        "/lp/open",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
    .await;
    assert_eq!(pre.status, 204, "{pre:?}");
    assert_eq!(pre.header("access-control-allow-origin"), Some(origin.1));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert!(pre
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let open = request(
        addr,
        "POST",
        "/lp/open",
        &[origin],
        b"{\"protocols\":[\"wamp.2.json\"]}",
    )
    .await;
    assert_eq!(open.status, 200);
    assert_eq!(open.header("access-control-allow-origin"), Some(origin.1));
    assert!(open
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store")));
}

#[tokio::test]
async fn opens_count_against_the_connection_limit() {
    // The open request's own connection holds the only place: no room for the transport.
    let router = TestRouter::with_config(&config("max_connections = 1\n")).await;
    let addr = router.server().local_addrs()[0];
    let r = request(
        addr,
        "POST",
        "/lp/open",
        &[],
        b"{\"protocols\":[\"wamp.2.json\"]}",
    )
    .await;
    assert_eq!(r.status, 503, "{r:?}");
}

#[tokio::test]
async fn plain_http_on_the_websocket_port() {
    let (router, addr) = router().await;
    let r = request(addr, "GET", "/ws", &[], b"").await;
    assert_eq!(r.status, 426, "{r:?}");
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert_eq!(request(addr, "GET", "/", &[], b"").await.status, 404);
    assert_eq!(
        request(addr, "POST", "/elsewhere", &[], b"x").await.status,
        404
    );
    // A keep-alive connection: the second request on it is answered too.
    let raw = format!(
        "GET /nothing HTTP/1.1\r\nHost: {addr}\r\n\r\nGET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, raw.as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    timeout(WAIT, tokio::io::AsyncReadExt::read_to_end(&mut s, &mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert!(text.contains("HTTP/1.1 426"), "{text}");
    // WebSocket sessions are unaffected.
    let (_ws, _) = RawPeer::join(router.url(), "realm1", wamp_proto::Serializer::Json).await;
    let ws = rust_client(router.url(), Serializer::Json).await;
    ws.subscribe("com.x").await.expect("subscribe");
}

/// `wamp.2.msgpack.batched`: each message behind its 4-byte length, both ways.
#[tokio::test]
async fn batched_msgpack_round_trip() {
    use wamp_proto::Serializer as Ser;
    let (_router, addr) = router().await;
    let lp = LongPollPeer::open(addr, "/lp", &["wamp.2.msgpack.batched"]).await;
    assert_eq!(lp.protocol, "wamp.2.msgpack.batched");
    let hello = Ser::MsgPack
        .encode(&wamp_tests::hello("realm1"))
        .expect("encode");
    let mut body = (hello.as_bytes().len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(hello.as_bytes());
    assert_eq!(lp.post("send", &body).await.status, 204);
    let answer = lp.receive().await;
    let (len, msg) = answer.split_at(4);
    assert_eq!(
        u32::from_be_bytes(len.try_into().unwrap()) as usize,
        msg.len()
    );
    let welcome = Ser::MsgPack.decode(msg).expect("a msgpack message");
    assert!(
        matches!(welcome, wamp_proto::Message::Welcome(_)),
        "{welcome:?}"
    );
}

/// A transport the router closed (a protocol violation: SUBSCRIBE before HELLO): its last
/// message (ABORT) is still received, then the id answers 410 until it is closed, and 404
/// after. (After GOODBYE the transport stays open for a new HELLO, as on WebSocket.)
#[tokio::test]
async fn an_ended_session_answers_gone_until_closed() {
    let (_router, addr) = router().await;
    let lp = LongPollPeer::open(addr, "/lp", &["wamp.2.json"]).await;
    lp.send(&json!([32, 1, {}, "com.early"])).await;
    let abort = lp.recv_json().await;
    assert_eq!(abort[0], 3, "ABORT: {abort}");
    assert_eq!(lp.post("receive", b"").await.status, 410);
    assert_eq!(lp.post("send", b"[1, \"realm1\", {}]").await.status, 410);
    assert_eq!(lp.post("close", b"").await.status, 204);
    assert_eq!(lp.post("receive", b"").await.status, 404);
}
