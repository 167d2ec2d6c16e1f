//! Graceful shutdown: every session gets GOODBYE `wamp.close.system_shutdown`.

use wamp_proto::message::Goodbye;
use wamp_proto::{uris, Dict, Message, Serializer, Uri};
use wamp_tests::{RawPeer, TestRouter};

#[tokio::test]
async fn shutdown_says_goodbye_to_every_session() {
    let router = TestRouter::start().await;
    let (mut a, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut b, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut silent, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let shutdown = tokio::spawn(router.shutdown());
    for p in [&mut a, &mut b] {
        match p.recv().await {
            Message::Goodbye(g) => assert_eq!(g.reason.as_str(), uris::CLOSE_SYSTEM_SHUTDOWN),
            other => panic!("expected GOODBYE, got {other:?}"),
        }
        p.send(
            &Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
            }
            .into(),
        )
        .await;
        let (rest, _) = p.until_closed().await;
        assert!(rest.is_empty(), "{rest:?}");
    }
    // `silent` never answers: shutdown still completes (bounded by goodbye_timeout_ms).
    assert!(matches!(silent.recv().await, Message::Goodbye(_)));
    tokio::time::timeout(std::time::Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown completes")
        .unwrap();
    let (_, _) = silent.until_closed().await;
}

#[tokio::test]
async fn nothing_follows_the_routers_goodbye() {
    use wamp_proto::message::{Call, Register};
    use wamp_proto::Payload;
    let router = TestRouter::start().await;
    let (mut callee, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut caller, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let r = callee.request();
    callee
        .send(
            &Register {
                request: r,
                options: Dict::new(),
                procedure: Uri::new("com.pending"),
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
                procedure: Uri::new("com.pending"),
                payload: Payload::default(),
            }
            .into(),
        )
        .await;
    assert!(matches!(callee.recv().await, Message::Invocation(_)));
    let shutdown = tokio::spawn(router.shutdown());
    assert!(matches!(caller.recv().await, Message::Goodbye(_)));
    assert!(matches!(callee.recv().await, Message::Goodbye(_)));
    // The callee leaves while the call is pending: its caller has already been told GOODBYE,
    // so the router must not send it the call's ERROR any more.
    callee
        .send(
            &Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
            }
            .into(),
        )
        .await;
    callee.until_closed().await;
    caller
        .send(
            &Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
            }
            .into(),
        )
        .await;
    let (rest, _) = caller.until_closed().await;
    assert!(rest.is_empty(), "messages after GOODBYE: {rest:?}");
    shutdown.await.unwrap();
}
