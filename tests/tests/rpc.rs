//! Basic Profile dealer over real sockets, across serializers.

use wamp_proto::message::*;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{RawPeer, TestRouter};

async fn call(p: &mut RawPeer, procedure: &str, payload: Payload) -> Id {
    let r = p.request();
    p.send(
        &Call {
            request: r,
            options: Dict::new(),
            procedure: Uri::new(procedure),
            payload,
        }
        .into(),
    )
    .await;
    r
}

fn payload() -> Payload {
    Payload {
        args: Some(vec![
            1.into(),
            Value::Bytes(vec![0, 255]),
            Value::Float(-0.5),
            Value::List(vec![Value::Null]),
        ]),
        kwargs: Some(dict([("x", Value::Dict(dict([("y", true.into())])))])),
        raw: None,
    }
}

#[tokio::test]
async fn call_yield_result_across_serializers() {
    let router = TestRouter::start().await;
    for (caller_ser, callee_ser) in [
        (Serializer::Json, Serializer::MsgPack),
        (Serializer::MsgPack, Serializer::Json),
        (Serializer::Json, Serializer::Json),
        (Serializer::MsgPack, Serializer::MsgPack),
    ] {
        let (mut callee, _) = RawPeer::join(router.url(), "realm1", callee_ser).await;
        let (mut caller, _) = RawPeer::join(router.url(), "realm1", caller_ser).await;
        let name = format!("com.echo.{}", callee.session.unwrap());
        let reg = callee.register(&name, Dict::new()).await;
        let req = call(&mut caller, &name, payload()).await;
        let Message::Invocation(inv) = callee.recv().await else {
            panic!()
        };
        assert_eq!(inv.registration, reg);
        assert_eq!(inv.payload, payload());
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
            panic!()
        };
        assert_eq!(res.request, req);
        assert_eq!(res.payload, payload(), "{caller_ser:?} -> {callee_ser:?}");
    }
}

#[tokio::test]
async fn callee_error_reaches_caller_with_uri_and_payload() {
    let router = TestRouter::start().await;
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    callee.register("com.fail", Dict::new()).await;
    let req = call(&mut caller, "com.fail", Payload::default()).await;
    let Message::Invocation(inv) = callee.recv().await else {
        panic!()
    };
    callee
        .send(
            &Error {
                request_type: code::INVOCATION,
                request: inv.request,
                details: Dict::new(),
                error: Uri::new("com.app.error.failed"),
                payload: payload(),
            }
            .into(),
        )
        .await;
    let Message::Error(e) = caller.recv().await else {
        panic!()
    };
    assert_eq!(
        (e.request_type, e.request, e.error.as_str()),
        (code::CALL, req, "com.app.error.failed")
    );
    assert_eq!(e.payload, payload());
}

#[tokio::test]
async fn no_such_procedure_and_invalid_uri() {
    let router = TestRouter::start().await;
    let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let req = call(&mut caller, "com.nobody.home", Payload::default()).await;
    let Message::Error(e) = caller.recv().await else {
        panic!()
    };
    assert_eq!(
        (e.request, e.error.as_str()),
        (req, uris::NO_SUCH_PROCEDURE)
    );
    assert!(
        e.payload
            .args
            .as_ref()
            .and_then(|a| a[0].as_str())
            .is_some(),
        "human-readable text"
    );
    let req = call(&mut caller, "com..bad", Payload::default()).await;
    let Message::Error(e) = caller.recv().await else {
        panic!()
    };
    assert_eq!((e.request, e.error.as_str()), (req, uris::INVALID_URI));
    for bad in ["com..bad", "wamp.mine"] {
        let r = caller.request();
        caller
            .send(
                &Register {
                    request: r,
                    options: Dict::new(),
                    procedure: Uri::new(bad),
                }
                .into(),
            )
            .await;
        let Message::Error(e) = caller.recv().await else {
            panic!()
        };
        assert_eq!(
            (e.request_type, e.error.as_str()),
            (code::REGISTER, uris::INVALID_URI)
        );
    }
}

#[tokio::test]
async fn second_registration_is_refused() {
    let router = TestRouter::start().await;
    let (mut a, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut b, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    a.register("com.once", Dict::new()).await;
    let r = b.request();
    b.send(
        &Register {
            request: r,
            options: Dict::new(),
            procedure: Uri::new("com.once"),
        }
        .into(),
    )
    .await;
    let Message::Error(e) = b.recv().await else {
        panic!()
    };
    assert_eq!(
        (e.request_type, e.request, e.error.as_str()),
        (code::REGISTER, r, uris::PROCEDURE_ALREADY_EXISTS)
    );
}

#[tokio::test]
async fn unregister_and_unknown_registration() {
    let router = TestRouter::start().await;
    let (mut a, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut other, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let reg = a.register("com.unreg", Dict::new()).await;
    // Someone else cannot unregister it.
    let r = other.request();
    other
        .send(
            &Unregister {
                request: r,
                registration: reg,
                options: None,
            }
            .into(),
        )
        .await;
    let Message::Error(e) = other.recv().await else {
        panic!()
    };
    assert_eq!(
        (e.request_type, e.error.as_str()),
        (code::UNREGISTER, uris::NO_SUCH_REGISTRATION)
    );
    let r = a.request();
    a.send(
        &Unregister {
            request: r,
            registration: reg,
            options: None,
        }
        .into(),
    )
    .await;
    assert!(matches!(a.recv().await, Message::Unregistered(u) if u.request == r.get()));
    let req = call(&mut other, "com.unreg", Payload::default()).await;
    let Message::Error(e) = other.recv().await else {
        panic!()
    };
    assert_eq!(
        (e.request, e.error.as_str()),
        (req, uris::NO_SUCH_PROCEDURE)
    );
}

#[tokio::test]
async fn callee_leaving_fails_every_waiting_call_at_once() {
    let router = TestRouter::start().await;
    for goodbye in [false, true] {
        let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
        let (mut c1, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
        let (mut c2, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
        let name = format!("com.leaving.{goodbye}");
        callee.register(&name, Dict::new()).await;
        let r1 = call(&mut c1, &name, Payload::default()).await;
        let r2 = call(&mut c2, &name, Payload::default()).await;
        // Both invocations reached the callee: the calls are in flight.
        assert!(matches!(callee.recv().await, Message::Invocation(_)));
        assert!(matches!(callee.recv().await, Message::Invocation(_)));
        if goodbye {
            callee
                .send(
                    &Goodbye {
                        details: Dict::new(),
                        reason: Uri::new(uris::CLOSE_NORMAL),
                    }
                    .into(),
                )
                .await;
        }
        drop(callee);
        for (c, r) in [(&mut c1, r1), (&mut c2, r2)] {
            let Message::Error(e) = c.recv().await else {
                panic!()
            };
            assert_eq!(
                (e.request_type, e.request, e.error.as_str()),
                (code::CALL, r, uris::CANCELED)
            );
        }
    }
}

#[tokio::test]
async fn late_yield_after_caller_left_is_ignored() {
    let router = TestRouter::start().await;
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    callee.register("com.slow", Dict::new()).await;
    {
        let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
        call(&mut caller, "com.slow", Payload::default()).await;
        let Message::Invocation(inv) = callee.recv().await else {
            panic!()
        };
        caller
            .send(
                &Goodbye {
                    details: Dict::new(),
                    reason: Uri::new(uris::CLOSE_NORMAL),
                }
                .into(),
            )
            .await;
        assert!(matches!(caller.recv().await, Message::Goodbye(_)));
        drop(caller);
        // The caller is gone; the answer is dropped and the callee is not punished for it.
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
    }
    let (mut caller2, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let req = call(&mut caller2, "com.slow", Payload::args(vec![2.into()])).await;
    let Message::Invocation(inv) = callee.recv().await else {
        panic!()
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
    let Message::Result(res) = caller2.recv().await else {
        panic!()
    };
    assert_eq!((res.request, res.payload.args), (req, Some(vec![2.into()])));
}

#[tokio::test]
async fn many_concurrent_calls_all_answered_correctly() {
    let router = TestRouter::start().await;
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    callee.register("com.double", Dict::new()).await;
    let callee_task = tokio::spawn(async move {
        for _ in 0..3000 {
            let Message::Invocation(inv) = callee.recv().await else {
                panic!()
            };
            let n = inv.payload.args.as_ref().unwrap()[0].as_u64().unwrap();
            callee
                .send(
                    &Yield {
                        request: inv.request,
                        options: Dict::new(),
                        payload: Payload::args(vec![(n * 2).into()]),
                    }
                    .into(),
                )
                .await;
        }
        callee
    });
    let mut callers = Vec::new();
    for k in 0..3u64 {
        let url = router.url().to_owned();
        callers.push(tokio::spawn(async move {
            let ser = if k % 2 == 0 {
                Serializer::Json
            } else {
                Serializer::MsgPack
            };
            let (mut c, _) = RawPeer::join(&url, "realm1", ser).await;
            let mut expected = std::collections::HashMap::new();
            for i in 0..1000u64 {
                let n = k * 1_000_000 + i;
                let r = call(&mut c, "com.double", Payload::args(vec![n.into()])).await;
                expected.insert(r, n * 2);
            }
            for _ in 0..1000 {
                let Message::Result(res) = c.recv().await else {
                    panic!()
                };
                let want = expected.remove(&res.request).expect("one result per call");
                assert_eq!(res.payload.args, Some(vec![want.into()]));
            }
            assert!(expected.is_empty());
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    callee_task.await.unwrap();
}
