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
