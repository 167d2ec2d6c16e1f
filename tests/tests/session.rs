//! Session lifecycle: HELLO/WELCOME, ABORT for unknown realms, GOODBYE both ways, and
//! ABORT `wamp.error.protocol_violation` for every message invalid in the session's state.

use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::message::*;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{hello, RawPeer, TestRouter};

fn id(n: u64) -> Id {
    Id::new(n).unwrap()
}

/// A peer that joined can still do a full call round trip (proves it was not disturbed).
async fn assert_routing_works(url: &str) {
    let (mut callee, _) = RawPeer::join(url, "realm1", Serializer::Json).await;
    let (mut caller, _) = RawPeer::join(url, "realm1", Serializer::MsgPack).await;
    let proc_name = format!("com.check.{}", callee.session.unwrap());
    let r = callee.request();
    callee
        .send(
            &Register {
                request: r,
                options: Dict::new(),
                procedure: Uri::new(&proc_name),
            }
            .into(),
        )
        .await;
    assert!(matches!(callee.recv().await, Message::Registered(_)));
    let r = caller.request();
    caller
        .send(
            &Call {
                request: r,
                options: Dict::new(),
                procedure: Uri::new(&proc_name),
                payload: Payload::args(vec![1.into()]),
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
    let Message::Result(res) = caller.recv().await else {
        panic!("expected RESULT")
    };
    assert_eq!(res.request, r);
    assert_eq!(res.payload.args, Some(vec![Value::UInt(1)]));
}

#[tokio::test]
async fn welcome_announces_roles_and_identity() {
    let router = TestRouter::start().await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let (_peer, w) = RawPeer::join(router.url(), "realm1", ser).await;
        let d = &w.details;
        assert_eq!(d["realm"], Value::from("realm1"));
        assert_eq!(d["authrole"], Value::from("anonymous"));
        assert_eq!(d["authmethod"], Value::from("anonymous"));
        let roles = d["roles"].as_dict().unwrap();
        assert!(roles.contains_key("broker") && roles.contains_key("dealer"));
        assert!(w.session.get() >= 1);
    }
}

#[tokio::test]
async fn session_ids_are_distinct() {
    let router = TestRouter::start().await;
    let mut ids = std::collections::HashSet::new();
    let mut peers = Vec::new();
    for _ in 0..20 {
        let (p, w) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
        assert!(ids.insert(w.session));
        peers.push(p);
    }
}

#[tokio::test]
async fn unknown_realm_is_aborted() {
    let router = TestRouter::start().await;
    let mut p = RawPeer::connect(router.url(), Serializer::Json).await;
    p.send(&hello("no.such.realm")).await;
    let a = p.expect_abort(uris::NO_SUCH_REALM).await;
    assert!(a.details["message"]
        .as_str()
        .unwrap()
        .contains("no.such.realm"));
    assert_routing_works(router.url()).await;
}

#[tokio::test]
async fn goodbye_from_client_is_answered() {
    let router = TestRouter::start().await;
    let (mut p, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    p.send(
        &Goodbye {
            details: Dict::new(),
            reason: Uri::new(uris::CLOSE_NORMAL),
        }
        .into(),
    )
    .await;
    match p.recv().await {
        Message::Goodbye(g) => assert_eq!(g.reason.as_str(), uris::CLOSE_GOODBYE_AND_OUT),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    // The transport stays open (the spec allows a new HELLO on it); closing it is fine too.
    p.send_frame(WsMessage::Close(None)).await;
    let (msgs, _) = p.until_closed().await;
    assert!(msgs.is_empty(), "nothing after GOODBYE: {msgs:?}");
}

#[tokio::test]
async fn client_goodbye_removes_its_registrations() {
    let router = TestRouter::start().await;
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = callee.request();
    callee
        .send(
            &Register {
                request: r,
                options: Dict::new(),
                procedure: Uri::new("com.gone"),
            }
            .into(),
        )
        .await;
    assert!(matches!(callee.recv().await, Message::Registered(_)));
    callee
        .send(
            &Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_NORMAL),
            }
            .into(),
        )
        .await;
    assert!(matches!(callee.recv().await, Message::Goodbye(_)));
    let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = caller.request();
    caller
        .send(
            &Call {
                request: r,
                options: Dict::new(),
                procedure: Uri::new("com.gone"),
                payload: Payload::default(),
            }
            .into(),
        )
        .await;
    let Message::Error(e) = caller.recv().await else {
        panic!()
    };
    assert_eq!(e.error.as_str(), uris::NO_SUCH_PROCEDURE);
    // and the procedure can be registered again by someone else
    let (mut callee2, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = callee2.request();
    callee2
        .send(
            &Register {
                request: r,
                options: Dict::new(),
                procedure: Uri::new("com.gone"),
            }
            .into(),
        )
        .await;
    assert!(matches!(callee2.recv().await, Message::Registered(_)));
}

/// Sends `msgs` on a fresh connection (joined first if `join`) and expects a protocol
/// violation ABORT, then checks other sessions still route.
async fn expect_violation(router: &TestRouter, join: bool, frames: Vec<WsMessage>) {
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let mut p = if join {
            RawPeer::join(router.url(), "realm1", ser).await.0
        } else {
            RawPeer::connect(router.url(), ser).await
        };
        for f in &frames {
            p.send_frame(f.clone()).await;
        }
        let a = p.expect_abort(uris::PROTOCOL_VIOLATION).await;
        assert!(a
            .details
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty()));
    }
    assert_routing_works(router.url()).await;
}

fn json(s: &str) -> WsMessage {
    WsMessage::Text(s.to_owned().into())
}

#[tokio::test]
async fn call_before_hello_is_a_violation() {
    let router = TestRouter::start().await;
    let mut p = RawPeer::connect(router.url(), Serializer::Json).await;
    p.send(
        &Call {
            request: id(1),
            options: Dict::new(),
            procedure: Uri::new("com.x"),
            payload: Payload::default(),
        }
        .into(),
    )
    .await;
    p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    let mut p = RawPeer::connect(router.url(), Serializer::MsgPack).await;
    p.send(
        &Goodbye {
            details: Dict::new(),
            reason: Uri::new(uris::CLOSE_NORMAL),
        }
        .into(),
    )
    .await;
    p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    assert_routing_works(router.url()).await;
}

#[tokio::test]
async fn second_hello_is_a_violation() {
    let router = TestRouter::start().await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let (mut p, _) = RawPeer::join(router.url(), "realm1", ser).await;
        p.send(&hello("realm1")).await;
        p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    }
    assert_routing_works(router.url()).await;
}

#[tokio::test]
async fn router_only_messages_from_a_client_are_violations() {
    let router = TestRouter::start().await;
    let msgs: Vec<Message> = vec![
        Welcome {
            session: id(1),
            details: Dict::new(),
        }
        .into(),
        Challenge {
            auth_method: "ticket".into(),
            extra: Dict::new(),
        }
        .into(),
        Published {
            request: id(1),
            publication: id(2),
        }
        .into(),
        Subscribed {
            request: id(1),
            subscription: id(2),
        }
        .into(),
        Unsubscribed {
            request: 1,
            details: None,
        }
        .into(),
        Event {
            subscription: id(1),
            publication: id(2),
            details: Dict::new(),
            payload: Payload::default(),
        }
        .into(),
        Result {
            request: id(1),
            details: Dict::new(),
            payload: Payload::default(),
        }
        .into(),
        Registered {
            request: id(1),
            registration: id(2),
        }
        .into(),
        Unregistered {
            request: 1,
            details: None,
        }
        .into(),
        Invocation {
            request: id(1),
            registration: id(2),
            details: Dict::new(),
            payload: Payload::default(),
        }
        .into(),
        Interrupt {
            request: id(1),
            options: Dict::new(),
        }
        .into(),
        Authenticate {
            signature: "x".into(),
            extra: Dict::new(),
        }
        .into(),
    ];
    for m in msgs {
        let (mut p, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
        p.send(&m).await;
        let a = p.expect_abort(uris::PROTOCOL_VIOLATION).await;
        assert!(
            !a.details["message"].as_str().unwrap().is_empty(),
            "{}",
            m.name()
        );
    }
    assert_routing_works(router.url()).await;
}

#[tokio::test]
async fn error_for_a_non_invocation_is_a_violation() {
    let router = TestRouter::start().await;
    expect_violation(
        &router,
        true,
        vec![json(r#"[8, 48, 1, {}, "wamp.error.x"]"#)],
    )
    .await;
}

#[tokio::test]
async fn yield_for_a_never_issued_invocation_is_a_violation() {
    let router = TestRouter::start().await;
    expect_violation(&router, true, vec![json(r#"[70, 12345, {}]"#)]).await;
}

#[tokio::test]
async fn malformed_frames_are_violations() {
    let router = TestRouter::start().await;
    for bad in [
        "not json",
        "[]",
        "{}",
        "[48]",
        "[999, 1, {}]",
        r#"[48, 0, {}, "com.x"]"#,
        r#"[48, 1, [], "com.x"]"#,
        r#"[48, 1, {}, 7]"#,
        r#"[1, "realm1", {"roles": {}}]"#,
        r#"[1, "realm1", {"roles": {"pilot": {}}}]"#,
        r#"[1, "realm1", {}]"#,
        r#"[48, 9007199254740993, {}, "com.x"]"#,
    ] {
        let mut p = RawPeer::connect(router.url(), Serializer::Json).await;
        p.send_frame(json(bad)).await;
        p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    }
    let mut p = RawPeer::connect(router.url(), Serializer::MsgPack).await;
    p.send_frame(WsMessage::Binary(vec![0xc1, 0xff, 0x00].into()))
        .await;
    p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    assert_routing_works(router.url()).await;
}

#[tokio::test]
async fn violations_after_join_also_abort() {
    let router = TestRouter::start().await;
    expect_violation(&router, true, vec![json("[48, \"x\"]")]).await;
}
