//! The router's metrics count what happened on the wire: sessions by realm and transport,
//! messages by type, refusals (limits), authentication failures, slow-consumer closes, and
//! sampled call latencies. One test per binary: the counters are exact only while no
//! other router shares the process's threads.

use wamp_proto::message::{Call, Yield};
use wamp_proto::uris;
use wamp_proto::{Dict, Message, Payload, Serializer, Uri};
use wamp_tests::auth::auth_hello;
use wamp_tests::http::request;
use wamp_tests::rawsocket::RsPeer;
use wamp_tests::{RawPeer, TestRouter};

const CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"

[[transport]]
type = "rawsocket"
bind = "127.0.0.1:0"

[[realm]]
name = "realm1"
  [realm.limits]
  max_registrations_per_session = 1

[[realm]]
name = "private"
anonymous = false
[[realm.user]]
authid = "alice"
role = "user"
ticket = "right"
"#;

/// The value of the sample line `name` (with its labels, exactly as written) in `text`.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn expect(text: &str, name: &str, want: f64) {
    assert_eq!(value(text, name), Some(want), "{name} in\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sessions_messages_refusals_auth_failures_and_latency() {
    let router = TestRouter::with_config(CONFIG).await;
    let server = router.server();
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    callee.register("com.m.echo", Dict::new()).await;
    // A second registration is over the session's limit of one.
    let r = callee.request();
    callee
        .send(
            &wamp_proto::message::Register {
                request: r,
                options: Dict::new(),
                procedure: Uri::new("com.m.other"),
            }
            .into(),
        )
        .await;
    match callee.recv().await {
        Message::Error(e) => assert_eq!(e.error.as_str(), "wamp.error.limit_exceeded"),
        other => panic!("expected ERROR, got {other:?}"),
    }
    // 32 calls (request ids 1..=32: ids 16 and 32 have their latency measured).
    for i in 1..=32u64 {
        let request = caller.request();
        assert_eq!(request.get(), i);
        caller
            .send(
                &Call {
                    request,
                    options: Dict::new(),
                    procedure: Uri::new("com.m.echo"),
                    payload: Payload::args(vec![i.into()]),
                }
                .into(),
            )
            .await;
        let Message::Invocation(inv) = callee.recv().await else {
            panic!("expected INVOCATION")
        };
        callee
            .send(
                &Yield {
                    request: inv.request,
                    options: Dict::new(),
                    payload: inv.payload,
                }
                .into(),
            )
            .await;
        assert!(matches!(caller.recv().await, Message::Result(_)));
    }
    // A wrong ticket.
    let hello = auth_hello("private", &["ticket"], Some("alice"), None);
    let (mut intruder, greeting) = RawPeer::greet(router.url(), &hello).await;
    assert!(matches!(greeting, Message::Challenge(_)), "{greeting:?}");
    match intruder.authenticate("wrong").await {
        Message::Abort(a) => assert_eq!(a.reason.as_str(), uris::AUTHENTICATION_FAILED),
        other => panic!("expected ABORT, got {other:?}"),
    }
    // A RawSocket session of the same realm.
    let (mut rs, _) = RsPeer::join(&server.urls()[1], "realm1", Serializer::MsgPack).await;
    let text = server.metrics();
    expect(
        &text,
        r#"wamp_sessions{realm="realm1",transport="websocket"}"#,
        2.0,
    );
    expect(
        &text,
        r#"wamp_sessions{realm="realm1",transport="rawsocket"}"#,
        1.0,
    );
    expect(&text, r#"wamp_messages_received_total{type="CALL"}"#, 32.0);
    expect(&text, r#"wamp_messages_received_total{type="YIELD"}"#, 32.0);
    expect(
        &text,
        r#"wamp_messages_sent_total{type="INVOCATION"}"#,
        32.0,
    );
    expect(&text, r#"wamp_messages_sent_total{type="RESULT"}"#, 32.0);
    expect(&text, r#"wamp_messages_sent_total{type="WELCOME"}"#, 3.0);
    expect(&text, r#"wamp_messages_sent_total{type="ABORT"}"#, 1.0);
    expect(
        &text,
        r#"wamp_refusals_total{uri="wamp.error.limit_exceeded"}"#,
        1.0,
    );
    expect(
        &text,
        r#"wamp_refusals_total{uri="wamp.error.authentication_failed"}"#,
        1.0,
    );
    expect(&text, "wamp_auth_failures_total", 1.0);
    expect(
        &text,
        r#"wamp_limits_hit_total{limit="max_registrations_per_session"}"#,
        1.0,
    );
    expect(&text, "wamp_call_latency_seconds_count", 2.0);
    expect(&text, r#"wamp_call_latency_seconds_bucket{le="+Inf"}"#, 2.0);
    expect(
        &text,
        r#"wamp_slow_consumer_closes_total{reason="stalled"}"#,
        0.0,
    );
    assert!(value(&text, "wamp_bytes_received_total").is_some_and(|b| b > 0.0));
    assert!(value(&text, "wamp_bytes_sent_total").is_some_and(|b| b > 0.0));
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    // The session has left once the router closed its end after ours.
    rs.shutdown().await;
    rs.expect_eof().await;
    let text = server.metrics();
    assert_eq!(
        value(
            &text,
            r#"wamp_sessions{realm="realm1",transport="rawsocket"}"#
        ),
        None,
        "no rawsocket session left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served_over_http_where_enabled() {
    let router = TestRouter::with_config(
        r#"
[[transport]]
bind = "127.0.0.1:0"
metrics = true
health = true

[[transport]]
bind = "127.0.0.1:0"

[[realm]]
name = "realm1"
"#,
    )
    .await;
    let addrs = router.server().local_addrs().to_vec();
    let (_peer, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let m = request(addrs[0], "GET", "/metrics", &[], b"").await;
    assert_eq!(m.status, 200, "{m:?}");
    assert!(m
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let text = String::from_utf8(m.body).expect("UTF-8");
    expect(
        &text,
        r#"wamp_sessions{realm="realm1",transport="websocket"}"#,
        1.0,
    );
    expect(&text, r#"wamp_messages_received_total{type="HELLO"}"#, 1.0);
    let h = request(addrs[0], "GET", "/health", &[], b"").await;
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.json()["sessions"], 1);
    let post = request(addrs[0], "POST", "/metrics", &[], b"x").await;
    assert_eq!(post.status, 405, "{post:?}");
    // Not enabled on the second transport: nothing there.
    for path in ["/metrics", "/health"] {
        let r = request(addrs[1], "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    // The router still routes after all that.
    let (_other, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
}
