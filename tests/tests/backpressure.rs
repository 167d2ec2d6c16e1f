//! A session that stops reading is closed as a slow consumer; nobody else is slowed down.

use wamp_proto::message::{Publish, Subscribe};
use wamp_proto::options::dict;
use wamp_proto::{Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{Closed, RawPeer, TestRouter};

const CONFIG: &str = r#"
[router]
outbound_queue = 64

[[transport]]
bind = "127.0.0.1:0"

[[realm]]
name = "realm1"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_dropped_and_does_not_slow_others() {
    let router = TestRouter::with_config(CONFIG).await;
    let (mut stalled, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut healthy, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut publisher, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    for p in [&mut stalled, &mut healthy] {
        let r = p.request();
        p.send(
            &Subscribe {
                request: r,
                options: Dict::new(),
                topic: Uri::new("com.flood"),
            }
            .into(),
        )
        .await;
        assert!(matches!(p.recv().await, Message::Subscribed(_)));
    }
    // `stalled` never reads from here on. 3000 x 16 KiB = 48 MiB: far more than the socket
    // buffers plus a 64-message queue can hold.
    const N: u64 = 3000;
    let blob = Value::Bytes(vec![7u8; 16 * 1024]);
    // The healthy subscriber reports its progress, and the publisher never runs more than
    // WINDOW events ahead of it: on a busy machine a reader that merely lags must not be
    // mistaken for a stalled one (its queue holds 64), while `stalled` falls behind forever.
    const WINDOW: u64 = 16;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        for i in 0..N {
            let Message::Event(ev) = healthy.recv().await else {
                panic!("expected EVENT")
            };
            assert_eq!(
                ev.payload.args.as_ref().unwrap()[0],
                Value::UInt(i),
                "in order, none lost"
            );
            let _ = progress_tx.send(i + 1);
        }
    });
    for i in 0..N {
        if i >= WINDOW {
            tokio::time::timeout(wamp_tests::WAIT, progress.wait_for(|&got| got + WINDOW > i))
                .await
                .expect("the healthy subscriber keeps receiving")
                .expect("reader alive");
        }
        let r = publisher.request();
        publisher
            .send(
                &Publish {
                    request: r,
                    options: Dict::new(),
                    topic: Uri::new("com.flood"),
                    payload: Payload::args(vec![i.into(), blob.clone()]),
                }
                .into(),
            )
            .await;
    }
    // The healthy subscriber gets every event although `stalled` reads nothing.
    reader.await.unwrap();
    // The publisher is still served normally.
    let r = publisher.request();
    publisher
        .send(
            &Publish {
                request: r,
                options: dict([("acknowledge", true.into())]),
                topic: Uri::new("com.other"),
                payload: Payload::default(),
            }
            .into(),
        )
        .await;
    assert!(matches!(publisher.recv().await, Message::Published(_)));
    // And the stalled session was closed by the router: reading now drains what was
    // buffered and then ends with a close (1008 slow consumer) or a dropped connection.
    let mut events = 0u64;
    let closed = loop {
        match stalled.try_recv().await {
            Ok(Message::Event(_)) => events += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(c) => break c,
        }
    };
    assert!(
        events < N,
        "the stalled session cannot have received everything"
    );
    assert!(
        matches!(closed, Closed::CloseFrame(Some(1008)) | Closed::Dropped),
        "{closed:?}"
    );
}
