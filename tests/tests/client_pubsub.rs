//! The `wamp-client` PubSub API against the real router over real sockets: subscribing,
//! publishing, acknowledgements and unsubscribing (Basic Profile, from a service's point of
//! view). Helpers are `client.rs`'s.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use wamp_client::{uris, Client, Serializer, Value};
use wamp_tests::TestRouter;

use crate::client::{app_uri, connect, leave, within};

// --- PubSub -----------------------------------------------------------------------------

/// Calls the router's `wamp.subscription.get_events` for `subscription` and returns the
/// error URI. With no event history configured the router answers `history_unavailable`
/// for a subscription that exists and `no_such_subscription` for one that does not, which
/// tells whether the router still holds it.
async fn router_subscription_state(c: &Client, subscription: u64) -> String {
    let e = within(
        "get_events",
        c.call("wamp.subscription.get_events").arg(subscription),
    )
    .await
    .expect_err("no history on this realm");
    app_uri(&e).to_owned()
}

#[tokio::test]
async fn subscription_streams_events_and_unsubscribe_stops_them() {
    let router = TestRouter::start().await;
    let sub = connect(router.url(), Serializer::Json).await;
    let publisher = connect(router.url(), Serializer::MsgPack).await;
    let topic = "com.example.ticks";
    let mut events = within("subscribe", sub.subscribe(topic))
        .await
        .expect("subscribe");
    assert_eq!(events.topic(), topic);
    let (tx, mut handled) = mpsc::unbounded_channel();
    let handler = within("subscribe", sub.subscribe("com.example.other"))
        .await
        .expect("subscribe")
        .spawn_handler(move |ev| {
            let _ = tx.send(ev);
            async {}
        });
    let mut sentinel = within("subscribe", sub.subscribe("com.example.sentinel"))
        .await
        .expect("subscribe");

    let mut ids = Vec::new();
    for i in 0..20u64 {
        let id = within(
            "publish",
            publisher
                .publish(topic)
                .arg(i)
                .kwarg("seq", i)
                .acknowledge(),
        )
        .await
        .expect("published");
        ids.push(id);
    }
    for (i, id) in (0..20u64).zip(&ids) {
        let ev = within("event", events.next()).await.expect("stream open");
        assert_eq!(ev.subscription, events.id());
        assert_eq!(ev.publication, *id, "event {i}");
        assert_eq!(ev.args, vec![Value::UInt(i)], "events arrive in order");
        assert_eq!(ev.kwargs["seq"], Value::UInt(i));
        assert_eq!(ev.decode::<u64>().unwrap(), i);
    }
    within(
        "publish",
        publisher
            .publish("com.example.other")
            .arg("h")
            .acknowledge(),
    )
    .await
    .expect("published");
    let ev = within("handler event", handled.recv())
        .await
        .expect("handler ran");
    assert_eq!(ev.args, vec![Value::from("h")]);

    // Unsubscribe both; the router forgets them.
    let (events_id, handler_id) = (events.id().get(), handler.id().get());
    for id in [events_id, handler_id] {
        assert_eq!(
            router_subscription_state(&sub, id).await,
            "wamp.error.history_unavailable",
            "subscription {id} exists before unsubscribing"
        );
    }
    within("unsubscribe", events.unsubscribe())
        .await
        .expect("unsubscribe stream");
    within("unsubscribe", handler.unsubscribe())
        .await
        .expect("unsubscribe handler");
    for id in [events_id, handler_id] {
        assert_eq!(
            router_subscription_state(&sub, id).await,
            uris::NO_SUCH_SUBSCRIPTION,
            "subscription {id} is gone at the router"
        );
    }

    // Later publications reach only the sentinel; the handler's task has ended.
    for t in [topic, "com.example.other"] {
        within("publish", publisher.publish(t).arg("late").acknowledge())
            .await
            .expect("published");
    }
    let last = within(
        "publish",
        publisher
            .publish("com.example.sentinel")
            .arg("s")
            .acknowledge(),
    )
    .await
    .expect("published");
    let ev = within("sentinel", sentinel.next())
        .await
        .expect("sentinel open");
    assert_eq!(ev.publication, last, "the sentinel's first and only event");
    assert!(
        within("handler channel", handled.recv()).await.is_none(),
        "the handler got an event after unsubscribing"
    );
    drop(sentinel);
    leave(sub).await;
    leave(publisher).await;
}

#[tokio::test]
async fn acknowledged_publish_returns_the_id_events_carry() {
    let router = TestRouter::start().await;
    let publisher = connect(router.url(), Serializer::Json).await;
    let subs = [
        connect(router.url(), Serializer::Json).await,
        connect(router.url(), Serializer::MsgPack).await,
    ];
    let mut streams = Vec::new();
    for s in &subs {
        streams.push(
            within("subscribe", s.subscribe("com.example.ids"))
                .await
                .expect("subscribe"),
        );
    }
    let a = within(
        "publish",
        publisher
            .publish("com.example.ids")
            .args([1, 2])
            .kwarg("k", Value::Bytes(vec![9]))
            .acknowledge(),
    )
    .await
    .expect("published");
    let b = within(
        "publish",
        publisher.publish("com.example.ids").acknowledge(),
    )
    .await
    .expect("published");
    assert_ne!(a, b, "publication ids are distinct");
    for s in &mut streams {
        let ev = within("event", s.next()).await.expect("open");
        assert_eq!(ev.publication, a);
        assert_eq!(ev.args, vec![Value::UInt(1), Value::UInt(2)]);
        assert_eq!(ev.kwargs["k"], Value::Bytes(vec![9]));
        let ev = within("event", s.next()).await.expect("open");
        assert_eq!(ev.publication, b);
        assert!(ev.args.is_empty() && ev.kwargs.is_empty(), "{ev:?}");
    }
    drop(streams);
    for s in subs {
        leave(s).await;
    }
    leave(publisher).await;
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes_and_local_subscriptions_share_one() {
    let router = TestRouter::start().await;
    let sub = connect(router.url(), Serializer::MsgPack).await;
    let publisher = connect(router.url(), Serializer::Json).await;
    let topic = "com.example.shared";
    let mut first = within("subscribe", sub.subscribe(topic))
        .await
        .expect("subscribe");
    let mut second = within("subscribe", sub.subscribe(topic))
        .await
        .expect("subscribe");
    assert_eq!(first.id(), second.id(), "one router subscription per topic");

    let a = within("publish", publisher.publish(topic).arg(1).acknowledge())
        .await
        .expect("published");
    for s in [&mut first, &mut second] {
        let ev = within("event", s.next()).await.expect("open");
        assert_eq!(
            ev.publication, a,
            "each local subscription gets every event"
        );
    }

    // Unsubscribing one local subscription keeps the other (and the router's).
    let id = first.id().get();
    within("unsubscribe", first.unsubscribe())
        .await
        .expect("unsubscribe");
    assert_eq!(
        router_subscription_state(&sub, id).await,
        "wamp.error.history_unavailable",
        "the router still has the subscription"
    );
    let b = within("publish", publisher.publish(topic).arg(2).acknowledge())
        .await
        .expect("published");
    let ev = within("event", second.next()).await.expect("open");
    assert_eq!(ev.publication, b);

    // Dropping the last one unsubscribes at the router. Requests on a session are handled
    // in order, so the check below comes after the UNSUBSCRIBE the drop queued.
    drop(second);
    assert_eq!(
        router_subscription_state(&sub, id).await,
        uris::NO_SUCH_SUBSCRIPTION,
        "dropping the last Subscription unsubscribes"
    );
    leave(sub).await;
    leave(publisher).await;
}

#[tokio::test]
async fn exclude_me_by_default_and_exclude_me_false() {
    let router = TestRouter::start().await;
    let me = connect(router.url(), Serializer::MsgPack).await;
    let other = connect(router.url(), Serializer::Json).await;
    let topic = "com.example.chat";
    let mut mine = within("subscribe", me.subscribe(topic)).await.expect("sub");
    let mut theirs = within("subscribe", other.subscribe(topic))
        .await
        .expect("sub");

    // Default: my own subscription is skipped; others get it.
    let first = within("publish", me.publish(topic).arg(1).acknowledge())
        .await
        .expect("published");
    // Fire-and-forget, also excluded by default.
    within("publish", me.publish(topic).arg(2))
        .await
        .expect("queued");
    let second = within(
        "publish",
        me.publish(topic).arg(3).exclude_me(false).acknowledge(),
    )
    .await
    .expect("published");
    for (want, arg) in [(Some(first), 1u64), (None, 2), (Some(second), 3)] {
        let ev = within("event", theirs.next()).await.expect("open");
        assert_eq!(ev.args, vec![Value::UInt(arg)]);
        if let Some(id) = want {
            assert_eq!(ev.publication, id);
        }
    }
    // The router delivers one session's events in publication order, so if either of the
    // first two had reached me, it would come before this one.
    let ev = within("own event", mine.next()).await.expect("open");
    assert_eq!(ev.publication, second, "got {ev:?}");
    assert_eq!(ev.args, vec![Value::UInt(3)]);

    // exclude_me(true) explicitly, then false again.
    within(
        "publish",
        me.publish(topic).arg(4).exclude_me(true).acknowledge(),
    )
    .await
    .expect("published");
    let fifth = within(
        "publish",
        me.publish(topic).arg(5).exclude_me(false).acknowledge(),
    )
    .await
    .expect("published");
    let ev = within("own event", mine.next()).await.expect("open");
    assert_eq!(ev.publication, fifth, "got {ev:?}");
    drop((mine, theirs));
    leave(me).await;
    leave(other).await;
}
