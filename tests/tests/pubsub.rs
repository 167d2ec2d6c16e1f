//! Basic Profile broker over real sockets, across serializers.

use wamp_proto::message::*;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{RawPeer, TestRouter};

fn sample_payload() -> Payload {
    Payload {
        args: Some(vec![
            1.into(),
            "two".into(),
            Value::Bytes(vec![0, 1, 255]),
            Value::Float(2.5),
            Value::Null,
            Value::Int(-7),
            Value::UInt(1 << 53),
        ]),
        kwargs: Some(dict([
            ("k", "v".into()),
            ("bin", Value::Bytes(b"hi".to_vec())),
        ])),
        raw: None,
    }
}

#[tokio::test]
async fn events_cross_serializers_unchanged() {
    let router = TestRouter::start().await;
    for (pub_ser, sub_ser) in [
        (Serializer::Json, Serializer::MsgPack),
        (Serializer::MsgPack, Serializer::Json),
        (Serializer::Json, Serializer::Json),
        (Serializer::MsgPack, Serializer::MsgPack),
    ] {
        let (mut sub, _) = RawPeer::join(router.url(), "realm1", sub_ser).await;
        let (mut publ, _) = RawPeer::join(router.url(), "realm1", pub_ser).await;
        let sid = sub.subscribe("com.x.topic", Dict::new()).await;
        let r = publ.request();
        publ.send(
            &Publish {
                request: r,
                options: dict([("acknowledge", true.into())]),
                topic: Uri::new("com.x.topic"),
                payload: sample_payload(),
            }
            .into(),
        )
        .await;
        let Message::Published(pb) = publ.recv().await else {
            panic!("expected PUBLISHED")
        };
        assert_eq!(pb.request, r);
        let Message::Event(ev) = sub.recv().await else {
            panic!("expected EVENT")
        };
        assert_eq!(ev.subscription, sid);
        assert_eq!(ev.publication, pb.publication);
        assert_eq!(ev.payload, sample_payload(), "{pub_ser:?} -> {sub_ser:?}");
    }
}

#[tokio::test]
async fn empty_args_with_kwargs_are_kept() {
    let router = TestRouter::start().await;
    let (mut sub, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut publ, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    sub.subscribe("com.kw", Dict::new()).await;
    let payload = Payload {
        args: Some(vec![]),
        kwargs: Some(dict([("a", 1.into())])),
        raw: None,
    };
    let r = publ.request();
    publ.send(
        &Publish {
            request: r,
            options: Dict::new(),
            topic: Uri::new("com.kw"),
            payload: payload.clone(),
        }
        .into(),
    )
    .await;
    let Message::Event(ev) = sub.recv().await else {
        panic!()
    };
    assert_eq!(ev.payload, payload);
}

#[tokio::test]
async fn subscription_is_shared_per_topic_and_idempotent() {
    let router = TestRouter::start().await;
    let (mut a, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut b, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let sa = a.subscribe("com.shared", Dict::new()).await;
    let sb = b.subscribe("com.shared", Dict::new()).await;
    assert_eq!(sa, sb);
    assert_eq!(
        a.subscribe("com.shared", Dict::new()).await,
        sa,
        "resubscribe returns the same id"
    );
    let (mut publ, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = publ.request();
    publ.send(
        &Publish {
            request: r,
            options: Dict::new(),
            topic: Uri::new("com.shared"),
            payload: Payload::args(vec![1.into()]),
        }
        .into(),
    )
    .await;
    let r2 = publ.request();
    publ.send(
        &Publish {
            request: r2,
            options: Dict::new(),
            topic: Uri::new("com.shared"),
            payload: Payload::args(vec![2.into()]),
        }
        .into(),
    )
    .await;
    for p in [&mut a, &mut b] {
        // exactly one EVENT per publish despite the double SUBSCRIBE, in order
        for n in [1u64, 2] {
            let Message::Event(ev) = p.recv().await else {
                panic!()
            };
            assert_eq!(ev.payload.args, Some(vec![Value::UInt(n)]));
        }
    }
}

#[tokio::test]
async fn publisher_is_excluded_by_default() {
    let router = TestRouter::start().await;
    let (mut p, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    p.subscribe("com.self", Dict::new()).await;
    let r = p.request();
    p.send(
        &Publish {
            request: r,
            options: Dict::new(),
            topic: Uri::new("com.self"),
            payload: Payload::args(vec!["not for me".into()]),
        }
        .into(),
    )
    .await;
    let r = p.request();
    p.send(
        &Publish {
            request: r,
            options: dict([("exclude_me", false.into())]),
            topic: Uri::new("com.self"),
            payload: Payload::args(vec!["for me".into()]),
        }
        .into(),
    )
    .await;
    // The first EVENT we get is the second publish: the first was not delivered to us.
    let Message::Event(ev) = p.recv().await else {
        panic!()
    };
    assert_eq!(ev.payload.args, Some(vec!["for me".into()]));
}

#[tokio::test]
async fn unsubscribe_stops_events_and_unknown_id_errors() {
    let router = TestRouter::start().await;
    let (mut sub, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let sid = sub.subscribe("com.unsub", Dict::new()).await;
    let r = sub.request();
    sub.send(
        &Unsubscribe {
            request: r,
            subscription: sid,
            options: None,
        }
        .into(),
    )
    .await;
    assert!(matches!(sub.recv().await, Message::Unsubscribed(u) if u.request == r.get()));
    let r = sub.request();
    sub.send(
        &Unsubscribe {
            request: r,
            subscription: sid,
            options: None,
        }
        .into(),
    )
    .await;
    let Message::Error(e) = sub.recv().await else {
        panic!()
    };
    assert_eq!(
        (e.request_type, e.request, e.error.as_str()),
        (code::UNSUBSCRIBE, r, uris::NO_SUCH_SUBSCRIPTION)
    );
    // A publish now reaches nobody: prove it by a later subscription receiving only its own event.
    let (mut publ, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = publ.request();
    publ.send(
        &Publish {
            request: r,
            options: Dict::new(),
            topic: Uri::new("com.unsub"),
            payload: Payload::args(vec![1.into()]),
        }
        .into(),
    )
    .await;
    sub.subscribe("com.unsub2", Dict::new()).await;
    let r = publ.request();
    publ.send(
        &Publish {
            request: r,
            options: Dict::new(),
            topic: Uri::new("com.unsub2"),
            payload: Payload::args(vec![2.into()]),
        }
        .into(),
    )
    .await;
    let Message::Event(ev) = sub.recv().await else {
        panic!()
    };
    assert_eq!(ev.payload.args, Some(vec![2.into()]));
}

#[tokio::test]
async fn invalid_topics_are_refused() {
    let router = TestRouter::start().await;
    let (mut p, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    for bad in ["com..x", "com.with space", "", "wamp.reserved"] {
        let r = p.request();
        p.send(
            &Publish {
                request: r,
                options: dict([("acknowledge", true.into())]),
                topic: Uri::new(bad),
                payload: Payload::default(),
            }
            .into(),
        )
        .await;
        let Message::Error(e) = p.recv().await else {
            panic!()
        };
        assert_eq!(
            (e.request, e.error.as_str()),
            (r, uris::INVALID_URI),
            "{bad}"
        );
    }
    let r = p.request();
    p.send(
        &Subscribe {
            request: r,
            options: Dict::new(),
            topic: Uri::new("com..x"),
        }
        .into(),
    )
    .await;
    let Message::Error(e) = p.recv().await else {
        panic!()
    };
    assert_eq!(
        (e.request_type, e.error.as_str()),
        (code::SUBSCRIBE, uris::INVALID_URI)
    );
}

#[tokio::test]
async fn unacknowledged_invalid_publish_is_dropped_silently() {
    let router = TestRouter::start().await;
    let (mut p, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = p.request();
    p.send(
        &Publish {
            request: r,
            options: Dict::new(),
            topic: Uri::new("bad..topic"),
            payload: Payload::default(),
        }
        .into(),
    )
    .await;
    let r2 = p.request();
    p.send(
        &Subscribe {
            request: r2,
            options: Dict::new(),
            topic: Uri::new("com.next"),
        }
        .into(),
    )
    .await;
    // The next thing we get is the SUBSCRIBED, nothing for the bad publish.
    assert!(matches!(p.recv().await, Message::Subscribed(s) if s.request == r2));
}

#[tokio::test]
async fn events_keep_publish_order() {
    let router = TestRouter::start().await;
    let (mut sub, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (mut publ, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    sub.subscribe("com.order", Dict::new()).await;
    for i in 0..2000u64 {
        let r = publ.request();
        publ.send(
            &Publish {
                request: r,
                options: Dict::new(),
                topic: Uri::new("com.order"),
                payload: Payload::args(vec![i.into()]),
            }
            .into(),
        )
        .await;
    }
    for i in 0..2000u64 {
        let Message::Event(ev) = sub.recv().await else {
            panic!()
        };
        assert_eq!(ev.payload.args, Some(vec![i.into()]));
    }
}
