//! Limits (`router.max_sessions`, `[realm.limits]`): each, when hit, is refused with
//! `wamp.error.limit_exceeded` and a message naming it, and the session goes on.

use wamp_proto::message::{code, Call, Yield};
use wamp_proto::{Dict, Message, Payload, Serializer, Uri};
use wamp_tests::{hello, RawPeer, TestRouter};

const LIMIT_EXCEEDED: &str = "wamp.error.limit_exceeded";

const CONFIG: &str = r#"
[router]
max_sessions = 4
[[transport]]
bind = "127.0.0.1:0"
[[realm]]
name = "realm1"
  [realm.limits]
  max_sessions = 3
  max_subscriptions_per_session = 2
  max_registrations_per_session = 1
  max_calls_per_caller = 2
  max_invocations_per_callee = 3
[[realm]]
name = "realm2"
"#;

fn expect_error(m: Message, request_type: u64) -> String {
    match m {
        Message::Error(e) => {
            assert_eq!(e.request_type, request_type);
            assert_eq!(e.error.as_str(), LIMIT_EXCEEDED, "{e:?}");
            let text = e
                .payload
                .args
                .and_then(|a| a.first().and_then(|v| v.as_str().map(str::to_owned)));
            text.unwrap_or_default()
        }
        other => panic!("expected ERROR limit_exceeded, got {other:?}"),
    }
}

async fn call(p: &mut RawPeer, procedure: &str) -> wamp_proto::Id {
    let request = p.request();
    p.send(
        &Call {
            request,
            options: Dict::new(),
            procedure: Uri::new(procedure),
            payload: Payload::default(),
        }
        .into(),
    )
    .await;
    request
}

#[tokio::test]
async fn sessions_per_realm_and_router_wide() {
    let router = TestRouter::with_config(CONFIG).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            RawPeer::join(router.url(), "realm1", Serializer::Json)
                .await
                .0,
        );
    }
    let mut p = RawPeer::connect(router.url(), Serializer::Json).await;
    p.send(&hello("realm1")).await;
    let a = p.expect_abort(LIMIT_EXCEEDED).await;
    assert!(format!("{:?}", a.details).contains("realm"), "{a:?}");
    // Another realm still has room until the router-wide limit.
    held.push(
        RawPeer::join(router.url(), "realm2", Serializer::Json)
            .await
            .0,
    );
    let mut p = RawPeer::connect(router.url(), Serializer::Json).await;
    p.send(&hello("realm2")).await;
    p.expect_abort(LIMIT_EXCEEDED).await;
    // A session leaving makes room.
    drop(held.pop());
    wamp_tests::rawsocket::eventually("a session left", || router.server().session_count() == 3)
        .await;
    let (_again, _) = RawPeer::join(router.url(), "realm2", Serializer::Json).await;
    assert_limits_hit(&router, &[("max_sessions", 1), ("router.max_sessions", 1)]);
}

/// The metrics count each limit hit under its configuration key.
fn assert_limits_hit(router: &TestRouter, want: &[(&str, u64)]) {
    let text = router.server().metrics();
    for (limit, n) in want {
        let line = format!("wamp_limits_hit_total{{limit=\"{limit}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn subscriptions_and_registrations_per_session() {
    let router = TestRouter::with_config(CONFIG).await;
    let (mut p, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    p.subscribe("com.a", Dict::new()).await;
    p.subscribe("com.b", Dict::new()).await;
    let request = p.request();
    p.send(
        &wamp_proto::message::Subscribe {
            request,
            options: Dict::new(),
            topic: Uri::new("com.c"),
        }
        .into(),
    )
    .await;
    let text = expect_error(p.recv().await, code::SUBSCRIBE);
    assert!(text.contains("max_subscriptions_per_session"), "{text}");
    p.register("com.p1", Dict::new()).await;
    let request = p.request();
    p.send(
        &wamp_proto::message::Register {
            request,
            options: Dict::new(),
            procedure: Uri::new("com.p2"),
        }
        .into(),
    )
    .await;
    let text = expect_error(p.recv().await, code::REGISTER);
    assert!(text.contains("max_registrations_per_session"), "{text}");
    let hit = [
        ("max_subscriptions_per_session", 1),
        ("max_registrations_per_session", 1),
    ];
    assert_limits_hit(&router, &hit);
}

#[tokio::test]
async fn calls_in_flight_per_caller_and_per_callee() {
    let router = TestRouter::with_config(CONFIG).await;
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    callee.register("com.slow", Dict::new()).await;
    let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    call(&mut caller, "com.slow").await;
    call(&mut caller, "com.slow").await;
    call(&mut caller, "com.slow").await;
    let text = expect_error(caller.recv().await, code::CALL);
    assert!(text.contains("max_calls_per_caller"), "{text}");
    // Another caller fills the callee's third slot, then is refused.
    let (mut other, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    call(&mut other, "com.slow").await;
    call(&mut other, "com.slow").await;
    let text = expect_error(other.recv().await, code::CALL);
    assert!(text.contains("max_invocations_per_callee"), "{text}");
    let hit = [
        ("max_calls_per_caller", 1),
        ("max_invocations_per_callee", 1),
    ];
    assert_limits_hit(&router, &hit);
    // Answering one frees a slot for the first caller.
    let Message::Invocation(inv) = callee.recv().await else {
        panic!("INVOCATION");
    };
    callee
        .send(
            &Yield {
                request: inv.request,
                options: Dict::new(),
                payload: Payload::default(),
            }
            .into(),
        )
        .await;
    assert!(matches!(caller.recv().await, Message::Result(_)));
    let r = call(&mut caller, "com.slow").await;
    let _ = r;
    assert!(matches!(callee.recv().await, Message::Invocation(_)));
}
