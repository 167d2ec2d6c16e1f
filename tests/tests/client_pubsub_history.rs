//! Event history and ordering through the `wamp-client` API against the real router, over
//! real sockets: `wamp.subscription.get_events` and 10,000 events reaching several
//! subscribers in order. Helpers are `client_pubsub_advanced.rs`'s.

use wamp_client::{uris, CallError, HistoryEvent, Id, Serializer, Value};
use wamp_tests::TestRouter;

use crate::client_pubsub_advanced::{connect, next, publish, within};

// --- event history --------------------------------------------------------------------

const HISTORY_CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"

[[realm]]
name = "realm1"

[[realm.topic]]
uri = "com.hist."
match = "prefix"
history = 3
"#;

fn seq(events: &[HistoryEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.decode::<u64>().expect("a number"))
        .collect()
}

#[tokio::test]
async fn event_history_is_read_with_subscription_events() {
    let router = TestRouter::with_config(HISTORY_CONFIG).await;
    let sub = connect(router.url(), Serializer::MsgPack).await;
    let publisher = connect(router.url(), Serializer::Json).await;
    let events = within("subscribe", sub.subscribe("com.hist.a"))
        .await
        .unwrap();

    let mut ids = Vec::new();
    for i in 0..5u64 {
        let p = publisher.publish("com.hist.a").arg(i).disclose_me();
        ids.push(within("publish", p.acknowledge()).await.unwrap());
    }
    // Publications with session lists are never kept.
    within(
        "publish",
        publisher
            .publish("com.hist.a")
            .arg(99u64)
            .exclude([publisher.session_id()])
            .acknowledge(),
    )
    .await
    .unwrap();

    let h = within("history", sub.subscription_events(events.id(), None))
        .await
        .expect("history");
    assert_eq!(seq(&h), [2, 3, 4], "the last 3 are kept");
    let first = &h[0];
    assert_eq!(first.subscription, events.id());
    assert_eq!(first.publication, ids[2]);
    assert_eq!(first.topic, "com.hist.a");
    assert!(first.timestamp.ends_with('Z'), "{}", first.timestamp);
    assert_eq!(
        first.details.get("publisher"),
        Some(&Value::UInt(publisher.session_id().get()))
    );
    let h = within("history", sub.subscription_events(events.id(), Some(2)))
        .await
        .unwrap();
    assert_eq!(seq(&h), [3, 4]);

    // The meta procedure itself, for its other options.
    let r = within(
        "get_events",
        sub.call("wamp.subscription.get_events")
            .arg(events.id().get())
            .kwarg("reverse", true),
    )
    .await
    .unwrap();
    let newest_first: Vec<_> = r.args[0]
        .as_list()
        .unwrap()
        .iter()
        .map(|e| e.as_dict().unwrap()["args"].as_list().unwrap()[0].clone())
        .collect();
    assert_eq!(newest_first, [4u64.into(), 3u64.into(), 2u64.into()]);

    // A prefix subscription reads the kept events of every matching topic.
    publish(&publisher, "com.hist.b", "b").await;
    let all = within("subscribe", sub.subscribe("com.hist.").prefix())
        .await
        .unwrap();
    let h = within("history", sub.subscription_events(all.id(), None))
        .await
        .unwrap();
    let topics: Vec<_> = h.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["com.hist.a", "com.hist.a", "com.hist.b"]);

    // An unknown subscription.
    let app_uri = |e: CallError| match e {
        CallError::Application { uri, .. } => uri,
        other => panic!("expected an application error, got {other:?}"),
    };
    let unknown = Id::new(12345).unwrap();
    let err = within("history", sub.subscription_events(unknown, None))
        .await
        .expect_err("unknown subscription");
    assert_eq!(app_uri(err), uris::NO_SUCH_SUBSCRIPTION);
}

#[tokio::test]
async fn history_is_unavailable_without_configuration() {
    let router = TestRouter::start().await;
    let c = connect(router.url(), Serializer::Json).await;
    let s = within("subscribe", c.subscribe("com.x")).await.unwrap();
    match within("history", c.subscription_events(s.id(), Some(1))).await {
        Err(CallError::Application { uri, .. }) => {
            assert_eq!(uri, "wamp.error.history_unavailable")
        }
        other => panic!("expected history_unavailable, got {other:?}"),
    }
}

// --- ordering -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_events_in_order_to_three_client_subscribers() {
    const N: u64 = 10_000;
    let router = TestRouter::start().await;
    let mut readers = Vec::new();
    for ser in [Serializer::Json, Serializer::MsgPack, Serializer::Json] {
        let c = connect(router.url(), ser).await;
        // A queue for every event: this test is about order, not the slow-subscriber policy.
        let mut s = within("subscribe", c.subscribe("com.seq").buffer(N as usize))
            .await
            .unwrap();
        readers.push(tokio::spawn(async move {
            for i in 0..N {
                let e = next(&mut s).await;
                assert_eq!(
                    e.args,
                    vec![Value::UInt(i)],
                    "{ser:?} subscriber: event {i} out of order or lost"
                );
            }
            assert_eq!(s.dropped_events(), 0);
            drop(s);
            c
        }));
    }
    let publisher = connect(router.url(), Serializer::MsgPack).await;
    for i in 0..N - 1 {
        within("publish", publisher.publish("com.seq").arg(i))
            .await
            .expect("queued");
    }
    within(
        "publish",
        publisher.publish("com.seq").arg(N - 1).acknowledge(),
    )
    .await
    .expect("the last one acknowledged");
    for r in readers {
        let c = within("reader", r).await.expect("reader saw every event");
        within("leave", c.leave()).await.expect("leave");
    }
}
