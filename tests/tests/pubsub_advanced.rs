//! Advanced PubSub over real sockets: identification, black/white listing, patterns,
//! retention, history, ordering.

use wamp_proto::message::*;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{RawPeer, TestRouter};

async fn join(router: &TestRouter, ser: Serializer) -> RawPeer {
    RawPeer::join(router.url(), "realm1", ser).await.0
}

/// Publishes with acknowledgement (so the events are routed when this returns).
async fn publish(p: &mut RawPeer, topic: &str, mut options: Dict, args: Vec<Value>) -> Id {
    options.insert("acknowledge".into(), true.into());
    let r = p.request();
    p.send(
        &Publish {
            request: r,
            options,
            topic: Uri::new(topic),
            payload: Payload::args(args),
        }
        .into(),
    )
    .await;
    match p.recv().await {
        Message::Published(pb) if pb.request == r => pb.publication,
        other => panic!("expected PUBLISHED, got {other:?}"),
    }
}

async fn event(p: &mut RawPeer) -> Event {
    match p.recv().await {
        Message::Event(e) => e,
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// Publishes a marker the peer must receive next: proves nothing else was queued before it.
async fn expect_next_is_marker(publisher: &mut RawPeer, p: &mut RawPeer, topic: &str) {
    publish(publisher, topic, Dict::new(), vec!["marker".into()]).await;
    let e = event(p).await;
    assert_eq!(
        e.payload.args,
        Some(vec!["marker".into()]),
        "an unexpected EVENT came first: {e:?}"
    );
}

fn ids(v: &[Id]) -> Value {
    Value::List(v.iter().map(|i| i.get().into()).collect())
}

#[tokio::test]
async fn welcome_announces_broker_features() {
    let router = TestRouter::start().await;
    let (_p, w) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let f = w.details["roles"].as_dict().unwrap()["broker"]
        .as_dict()
        .unwrap()["features"]
        .as_dict()
        .unwrap()
        .clone();
    for name in [
        "publisher_exclusion",
        "publisher_identification",
        "subscriber_blackwhite_listing",
        "pattern_based_subscription",
        "event_retention",
        "event_history",
    ] {
        assert_eq!(f.get(name), Some(&Value::Bool(true)), "{name}");
    }
}

#[tokio::test]
async fn publisher_identification_on_request() {
    let router = TestRouter::start().await;
    let mut sub = join(&router, Serializer::MsgPack).await;
    let mut publ = join(&router, Serializer::Json).await;
    sub.subscribe("com.id", Dict::new()).await;
    publish(&mut publ, "com.id", Dict::new(), vec![1.into()]).await;
    let e = event(&mut sub).await;
    assert!(
        !e.details.contains_key("publisher"),
        "not disclosed unless asked"
    );
    publish(
        &mut publ,
        "com.id",
        dict([("disclose_me", true.into())]),
        vec![2.into()],
    )
    .await;
    let e = event(&mut sub).await;
    assert_eq!(
        e.details["publisher"],
        Value::UInt(publ.session.unwrap().get())
    );
    assert_eq!(e.details["publisher_authrole"], Value::from("anonymous"));
    assert!(e.details["publisher_authid"].as_str().is_some());
}

#[tokio::test]
async fn black_and_white_listing() {
    let router = TestRouter::start().await;
    let mut a = join(&router, Serializer::Json).await;
    let mut b = join(&router, Serializer::MsgPack).await;
    let mut c = join(&router, Serializer::Json).await;
    let mut publ = join(&router, Serializer::Json).await;
    for p in [&mut a, &mut b, &mut c] {
        p.subscribe("com.bw", Dict::new()).await;
    }
    let (ia, ib, ic) = (a.session.unwrap(), b.session.unwrap(), c.session.unwrap());
    // exclude a: b and c get it
    publish(
        &mut publ,
        "com.bw",
        dict([("exclude", ids(&[ia]))]),
        vec!["x".into()],
    )
    .await;
    // eligible a, b but exclude b: only a
    publish(
        &mut publ,
        "com.bw",
        dict([("eligible", ids(&[ia, ib])), ("exclude", ids(&[ib]))]),
        vec!["y".into()],
    )
    .await;
    // eligible_authrole that nobody has: nobody
    publish(
        &mut publ,
        "com.bw",
        dict([("eligible_authrole", Value::List(vec!["admin".into()]))]),
        vec!["z".into()],
    )
    .await;
    // exclude_authrole anonymous: nobody
    publish(
        &mut publ,
        "com.bw",
        dict([("exclude_authrole", Value::List(vec!["anonymous".into()]))]),
        vec!["w".into()],
    )
    .await;
    // eligible c (session id) and eligible_authrole anonymous: only c
    publish(
        &mut publ,
        "com.bw",
        dict([
            ("eligible", ids(&[ic])),
            ("eligible_authrole", Value::List(vec!["anonymous".into()])),
        ]),
        vec!["v".into()],
    )
    .await;
    let got = |e: Event| e.payload.args.unwrap()[0].as_str().unwrap().to_owned();
    assert_eq!(got(event(&mut a).await), "y");
    assert_eq!(got(event(&mut b).await), "x");
    assert_eq!(got(event(&mut c).await), "x");
    assert_eq!(got(event(&mut c).await), "v");
    for p in [&mut a, &mut b, &mut c] {
        expect_next_is_marker(&mut publ, p, "com.bw").await;
    }
    // A malformed list is refused when acknowledged.
    let r = publ.request();
    publ.send(
        &Publish {
            request: r,
            options: dict([("acknowledge", true.into()), ("eligible", "all".into())]),
            topic: Uri::new("com.bw"),
            payload: Payload::default(),
        }
        .into(),
    )
    .await;
    let Message::Error(e) = publ.recv().await else {
        panic!()
    };
    assert_eq!((e.request, e.error.as_str()), (r, uris::INVALID_ARGUMENT));
}

#[tokio::test]
async fn prefix_and_wildcard_subscriptions() {
    let router = TestRouter::start().await;
    let mut s = join(&router, Serializer::Json).await;
    let mut publ = join(&router, Serializer::MsgPack).await;
    let exact = s.subscribe("com.app.user.update", Dict::new()).await;
    let prefix = s
        .subscribe("com.app.", dict([("match", "prefix".into())]))
        .await;
    let wild = s
        .subscribe("com.app..update", dict([("match", "wildcard".into())]))
        .await;
    assert_eq!(
        s.subscribe("com.app.", dict([("match", "prefix".into())]))
            .await,
        prefix,
        "same (uri, match) is the same subscription"
    );
    let pubid = publish(
        &mut publ,
        "com.app.user.update",
        Dict::new(),
        vec![1.into()],
    )
    .await;
    // One publication, three matching subscriptions: three EVENTs with the same publication.
    let mut seen = std::collections::HashMap::new();
    for _ in 0..3 {
        let e = event(&mut s).await;
        assert_eq!(e.publication, pubid);
        seen.insert(e.subscription, e.details.get("topic").cloned());
    }
    assert_eq!(seen[&exact], None, "exact subscriptions carry no topic");
    assert_eq!(seen[&prefix], Some(Value::from("com.app.user.update")));
    assert_eq!(seen[&wild], Some(Value::from("com.app.user.update")));
    // Wildcard needs the same number of components; prefix is a string prefix.
    publish(
        &mut publ,
        "com.app.user.x.update",
        Dict::new(),
        vec![2.into()],
    )
    .await;
    let e = event(&mut s).await;
    assert_eq!(
        (e.subscription, e.payload.args),
        (prefix, Some(vec![2.into()]))
    );
    publish(&mut publ, "com.other", Dict::new(), vec![3.into()]).await;
    // Unsubscribing the prefix subscription stops its events.
    let r = s.request();
    s.send(
        &Unsubscribe {
            request: r,
            subscription: prefix,
            options: None,
        }
        .into(),
    )
    .await;
    assert!(matches!(s.recv().await, Message::Unsubscribed(_)));
    publish(&mut publ, "com.app.z.update", Dict::new(), vec![4.into()]).await;
    let e = event(&mut s).await;
    assert_eq!(
        (e.subscription, e.payload.args),
        (wild, Some(vec![4.into()]))
    );
    // Invalid pattern URIs and unknown policies are refused.
    for (uri, policy, want) in [
        ("com..x", "prefix", uris::INVALID_URI),
        ("com.x", "regex", uris::INVALID_ARGUMENT),
    ] {
        let r = s.request();
        s.send(
            &Subscribe {
                request: r,
                options: dict([("match", policy.into())]),
                topic: Uri::new(uri),
            }
            .into(),
        )
        .await;
        let Message::Error(e) = s.recv().await else {
            panic!()
        };
        assert_eq!((e.request, e.error.as_str()), (r, want));
    }
}

#[tokio::test]
async fn retained_event_is_delivered_on_get_retained() {
    let router = TestRouter::start().await;
    let mut publ = join(&router, Serializer::Json).await;
    publish(
        &mut publ,
        "com.state",
        dict([("retain", true.into())]),
        vec!["old".into()],
    )
    .await;
    let latest = publish(
        &mut publ,
        "com.state",
        dict([("retain", true.into())]),
        vec!["new".into()],
    )
    .await;
    publish(
        &mut publ,
        "com.state",
        Dict::new(),
        vec!["not retained".into()],
    )
    .await;
    let mut late = join(&router, Serializer::MsgPack).await;
    let sid = late
        .subscribe("com.state", dict([("get_retained", true.into())]))
        .await;
    let e = event(&mut late).await;
    assert_eq!((e.subscription, e.publication), (sid, latest));
    assert_eq!(e.payload.args, Some(vec!["new".into()]));
    assert_eq!(e.details["retained"], Value::Bool(true));
    // Without get_retained nothing is replayed.
    let mut plain = join(&router, Serializer::Json).await;
    plain.subscribe("com.state", Dict::new()).await;
    expect_next_is_marker(&mut publ, &mut plain, "com.state").await;
    // Pattern subscriptions get the retained events of every matching topic.
    let mut pat = join(&router, Serializer::Json).await;
    pat.subscribe(
        "com.",
        dict([("match", "prefix".into()), ("get_retained", true.into())]),
    )
    .await;
    let e = event(&mut pat).await;
    assert_eq!(
        (e.details["topic"].as_str(), e.details["retained"].as_bool()),
        (Some("com.state"), Some(true))
    );
}

#[tokio::test]
async fn retained_event_respects_eligibility_and_config() {
    let router = TestRouter::with_config(
        "[[transport]]\nbind = \"127.0.0.1:0\"\n[[realm]]\nname = \"realm1\"\n[[realm.topic]]\nuri = \"com.volatile.\"\nmatch = \"prefix\"\nretain = false\n",
    )
    .await;
    let mut publ = join(&router, Serializer::Json).await;
    publish(
        &mut publ,
        "com.secret",
        dict([
            ("retain", true.into()),
            ("eligible_authrole", Value::List(vec!["admin".into()])),
        ]),
        vec![1.into()],
    )
    .await;
    publish(
        &mut publ,
        "com.volatile.x",
        dict([("retain", true.into())]),
        vec![2.into()],
    )
    .await;
    let mut s = join(&router, Serializer::Json).await;
    s.subscribe("com.secret", dict([("get_retained", true.into())]))
        .await;
    s.subscribe("com.volatile.x", dict([("get_retained", true.into())]))
        .await;
    expect_next_is_marker(&mut publ, &mut s, "com.volatile.x").await;
}

const HISTORY_CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"

[[realm]]
name = "realm1"

[[realm.topic]]
uri = "com.hist."
match = "prefix"
history = 3
"#;

async fn get_events(
    p: &mut RawPeer,
    args: Vec<Value>,
    kwargs: Option<Dict>,
) -> std::result::Result<Vec<Value>, String> {
    let r = p.request();
    p.send(
        &Call {
            request: r,
            options: Dict::new(),
            procedure: Uri::new("wamp.subscription.get_events"),
            payload: Payload {
                args: Some(args),
                kwargs,
                raw: None,
            },
        }
        .into(),
    )
    .await;
    match p.recv().await {
        Message::Result(res) if res.request == r => {
            Ok(res.payload.args.unwrap()[0].as_list().unwrap().to_vec())
        }
        Message::Error(e) if e.request == r => Err(e.error.as_str().to_owned()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn event_history_via_meta_procedure() {
    let router = TestRouter::with_config(HISTORY_CONFIG).await;
    let mut s = join(&router, Serializer::MsgPack).await;
    let mut publ = join(&router, Serializer::Json).await;
    // Queries come from a session that receives no events.
    let mut q = join(&router, Serializer::Json).await;
    let sid = s.subscribe("com.hist.a", Dict::new()).await;
    for i in 0..5u64 {
        publish(&mut publ, "com.hist.a", Dict::new(), vec![i.into()]).await;
    }
    // Publications with session-id lists are never stored.
    let me = publ.session.unwrap();
    publish(
        &mut publ,
        "com.hist.a",
        dict([("exclude", ids(&[me]))]),
        vec![99.into()],
    )
    .await;
    publish(&mut publ, "com.hist.b", Dict::new(), vec![100.into()]).await;
    let seq = |evs: &[Value]| -> Vec<u64> {
        evs.iter()
            .map(|e| {
                e.as_dict().unwrap()["args"].as_list().unwrap()[0]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    // The buffer of the prefix entry keeps the last 3 of all its topics; this
    // subscription sees those of com.hist.a.
    let evs = get_events(&mut q, vec![sid.get().into()], None)
        .await
        .unwrap();
    assert_eq!(seq(&evs), vec![3, 4]);
    let e0 = evs[0].as_dict().unwrap();
    assert_eq!(e0["subscription"], Value::UInt(sid.get()));
    assert_eq!(e0["topic"], Value::from("com.hist.a"));
    assert!(e0["timestamp"].as_str().unwrap().ends_with('Z'));
    let evs = get_events(
        &mut q,
        vec![sid.get().into()],
        Some(dict([("limit", 1.into())])),
    )
    .await
    .unwrap();
    assert_eq!(seq(&evs), vec![4]);
    let evs = get_events(
        &mut q,
        vec![sid.get().into()],
        Some(dict([("reverse", true.into())])),
    )
    .await
    .unwrap();
    assert_eq!(seq(&evs), vec![4, 3]);
    // A prefix subscription sees every matching topic's events.
    let psid = q
        .subscribe("com.hist.", dict([("match", "prefix".into())]))
        .await;
    let evs = get_events(&mut q, vec![psid.get().into()], None)
        .await
        .unwrap();
    assert_eq!(seq(&evs), vec![3, 4, 100]);
    let nohist = q.subscribe("com.nohist", Dict::new()).await;
    assert_eq!(
        get_events(&mut q, vec![nohist.get().into()], None)
            .await
            .unwrap_err(),
        "wamp.error.history_unavailable",
        "an exact topic without history"
    );
    assert_eq!(
        get_events(&mut q, vec![12345.into()], None)
            .await
            .unwrap_err(),
        uris::NO_SUCH_SUBSCRIPTION
    );
    assert_eq!(
        get_events(&mut q, vec!["x".into()], None)
            .await
            .unwrap_err(),
        uris::INVALID_ARGUMENT
    );
}

#[tokio::test]
async fn history_unavailable_without_configuration() {
    let router = TestRouter::start().await;
    let mut s = join(&router, Serializer::Json).await;
    let sid = s.subscribe("com.nohist", Dict::new()).await;
    assert_eq!(
        get_events(&mut s, vec![sid.get().into()], None)
            .await
            .unwrap_err(),
        "wamp.error.history_unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_in_order_to_several_subscribers() {
    const N: u64 = 10_000;
    let router = TestRouter::start().await;
    let mut subs = Vec::new();
    for ser in [Serializer::Json, Serializer::MsgPack, Serializer::Json] {
        let mut s = join(&router, ser).await;
        s.subscribe("com.seq", Dict::new()).await;
        subs.push(s);
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                for i in 0..N {
                    let e = event(&mut s).await;
                    assert_eq!(
                        e.payload.args,
                        Some(vec![i.into()]),
                        "event {i} out of order or lost"
                    );
                }
            })
        })
        .collect();
    let mut publ = join(&router, Serializer::MsgPack).await;
    for i in 0..N {
        let r = publ.request();
        publ.send(
            &Publish {
                request: r,
                options: Dict::new(),
                topic: Uri::new("com.seq"),
                payload: Payload::args(vec![i.into()]),
            }
            .into(),
        )
        .await;
    }
    for r in readers {
        r.await.unwrap();
    }
}
