//! Cross-node PubSub: the match policies, subscription and publication ids, order, the
//! NATS interest of a node, and the broadcast mode.

use std::collections::BTreeMap;
use std::time::Duration;

use wamp_proto::message::*;
use wamp_proto::options::dict;
use wamp_proto::{Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::cluster::{poll, with_cluster, BROADCAST_REALM, REALM};
use wamp_tests::{within, RawPeer};

use crate::rpc_common::sync;

/// Sends PUBLISH; returns its request id.
pub(crate) async fn publish(p: &mut RawPeer, topic: &str, options: Dict, payload: Payload) -> Id {
    let request = p.request();
    let msg = Publish {
        request,
        options,
        topic: Uri::new(topic),
        payload,
    };
    p.send(&msg.into()).await;
    request
}

/// Publishes with `acknowledge: true` (and `options`); returns the PUBLISHED id.
pub(crate) async fn publish_acked(
    p: &mut RawPeer,
    topic: &str,
    mut options: Dict,
    payload: Payload,
) -> Id {
    options.insert("acknowledge".into(), true.into());
    let r = publish(p, topic, options, payload).await;
    match p.recv().await {
        Message::Published(pb) if pb.request == r => pb.publication,
        other => panic!("expected PUBLISHED for {topic}, got {other:?}"),
    }
}

/// The next message, which must be an EVENT.
pub(crate) async fn event(p: &mut RawPeer) -> Event {
    match p.recv().await {
        Message::Event(e) => e,
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// UNSUBSCRIBEs `subscription`; panics unless UNSUBSCRIBED comes.
pub(crate) async fn unsubscribe(p: &mut RawPeer, subscription: Id) {
    let r = p.request();
    let msg = Unsubscribe {
        request: r,
        subscription,
        options: None,
    };
    p.send(&msg.into()).await;
    match p.recv().await {
        Message::Unsubscribed(u) if u.request == r.get() => {}
        other => panic!("expected UNSUBSCRIBED, got {other:?}"),
    }
}

/// SUBSCRIBE options for a match policy (`exact` sends none).
pub(crate) fn matching(policy: &str) -> Dict {
    match policy {
        "exact" => Dict::new(),
        p => dict([("match", p.into())]),
    }
}

/// `details.topic` of an EVENT.
fn topic(ev: &Event) -> Option<&str> {
    ev.details.get("topic").and_then(Value::as_str)
}

/// Subscribers on n2 and n3 (exact, prefix, wildcard, each matching `cl.ps.a.b`), publisher
/// on n1: every subscription gets the event once, with the publication id of PUBLISHED,
/// the same subscription ids on both nodes, and `details.topic` for the patterns.
async fn match_policies_deliver_across_nodes(realm: &str) {
    with_cluster(async |c| {
        let subscriptions = [
            ("cl.ps.a.b", "exact"),
            ("cl.ps.a", "prefix"),
            ("cl.ps..b", "wildcard"),
        ];
        let mut subs = Vec::new();
        for (n, ser) in [(2, Serializer::MsgPack), (3, Serializer::Cbor)] {
            let (mut s, _) = RawPeer::join(&c.url(n), realm, ser).await;
            let mut ids = Vec::new();
            for (uri, policy) in subscriptions {
                ids.push(s.subscribe(uri, matching(policy)).await);
            }
            subs.push((s, ids));
        }
        assert_eq!(
            subs[0].1, subs[1].1,
            "(uri, match) has one subscription id cluster-wide"
        );
        let (mut publ, _) = RawPeer::join(&c.url(1), realm, Serializer::Json).await;
        // Through the backplane and three serializers unchanged.
        let args = vec![
            "hi".into(),
            Value::Bytes(vec![0, 1, 255]),
            Value::Float(-2.5),
            Value::Int(-7),
            Value::UInt(1 << 53),
            Value::Null,
        ];
        let kwargs = dict([(
            "k",
            Value::List(vec![true.into(), Value::Dict(Dict::new())]),
        )]);
        let payload = Payload::new(Some(args), Some(kwargs));
        let publication = publish_acked(&mut publ, "cl.ps.a.b", Dict::new(), payload.clone()).await;
        for (s, ids) in &mut subs {
            let mut got = BTreeMap::new();
            for _ in 0..ids.len() {
                let ev = event(s).await;
                assert!(
                    got.insert(ev.subscription, ev).is_none(),
                    "one EVENT per subscription"
                );
            }
            for (id, (uri, policy)) in ids.iter().zip(subscriptions) {
                let ev = got
                    .get(id)
                    .unwrap_or_else(|| panic!("no EVENT for {policy} {uri}: {got:?}"));
                assert_eq!(ev.publication, publication, "{policy}: PUBLISHED's id");
                assert_eq!(ev.payload, payload, "{policy}");
                if policy != "exact" {
                    assert_eq!(topic(ev), Some("cl.ps.a.b"), "{policy}: details.topic");
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn match_policies_deliver_across_nodes_interest() {
    match_policies_deliver_across_nodes(REALM).await;
}

#[tokio::test]
async fn match_policies_deliver_across_nodes_broadcast() {
    match_policies_deliver_across_nodes(BROADCAST_REALM).await;
}

/// A prefix subscription on n2 is a string prefix: `cl.pfx.a.b` gets `cl.pfx.a.b`,
/// `cl.pfx.a.b.x` and `cl.pfx.a.bc` from n1, not `cl.pfx.a.x` (published first; in interest
/// mode events of different topics may be reordered, so the check that it never came is as
/// far as the last expected event).
async fn prefix_is_a_string_prefix(realm: &str) {
    with_cluster(async |c| {
        let (mut sub, _) = RawPeer::join(&c.url(2), realm, Serializer::Json).await;
        sub.subscribe("cl.pfx.a.b", matching("prefix")).await;
        let (mut publ, _) = RawPeer::join(&c.url(1), realm, Serializer::Json).await;
        let topics = ["cl.pfx.a.x", "cl.pfx.a.b.x", "cl.pfx.a.bc", "cl.pfx.a.b"];
        for t in topics {
            publish_acked(&mut publ, t, Dict::new(), Payload::default()).await;
        }
        let mut got = Vec::new();
        while got.len() < 3 {
            let ev = event(&mut sub).await;
            got.push(topic(&ev).expect("details.topic").to_owned());
        }
        got.sort();
        assert_eq!(got, ["cl.pfx.a.b", "cl.pfx.a.b.x", "cl.pfx.a.bc"]);
    })
    .await;
}

#[tokio::test]
async fn prefix_is_a_string_prefix_interest() {
    prefix_is_a_string_prefix(REALM).await;
}

#[tokio::test]
async fn prefix_is_a_string_prefix_broadcast() {
    prefix_is_a_string_prefix(BROADCAST_REALM).await;
}

/// 1000 numbered events of one publisher on n1 reach a subscriber on n2 in order.
#[tokio::test]
async fn one_publishers_events_arrive_in_order() {
    with_cluster(async |c| {
        let (mut sub, _) = RawPeer::join(&c.url(2), REALM, Serializer::MsgPack).await;
        sub.subscribe("cl.order", Dict::new()).await;
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::MsgPack).await;
        const N: u64 = 1000;
        for i in 0..N {
            publish(
                &mut publ,
                "cl.order",
                Dict::new(),
                Payload::args(vec![i.into()]),
            )
            .await;
        }
        for i in 0..N {
            let ev = event(&mut sub).await;
            let got = ev.payload.args.as_ref().and_then(|a| a[0].as_u64());
            assert_eq!(got, Some(i), "event {i} of {N}");
        }
    })
    .await;
}

/// An event published on n1 as soon as n2's subscriber has SUBSCRIBED reaches it (no
/// window on one NATS server), for 100 fresh topics; after UNSUBSCRIBE, n2 delivers no
/// more to that session (another session on n2 still gets the topic).
#[tokio::test]
async fn subscribed_means_delivered_and_unsubscribe_stops() {
    with_cluster(async |c| {
        let (mut sub, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        for i in 0..100 {
            let t = format!("cl.fresh.t{i}");
            let sid = sub.subscribe(&t, Dict::new()).await;
            let p = publish_acked(&mut publ, &t, Dict::new(), Payload::default()).await;
            let what = format!("the EVENT of {t} published on n1 right after SUBSCRIBED on n2");
            match within(&what, sub.next_message()).await {
                Ok(Message::Event(ev)) => {
                    assert_eq!((ev.subscription, ev.publication), (sid, p), "{t}");
                }
                other => panic!("{what}: got {other:?}"),
            }
        }
        let (mut other, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        other.subscribe("cl.fresh.t0", Dict::new()).await;
        let sid = sub.subscribe("cl.fresh.t0", Dict::new()).await;
        unsubscribe(&mut sub, sid).await;
        let p = publish_acked(&mut publ, "cl.fresh.t0", Dict::new(), Payload::default()).await;
        assert_eq!(event(&mut other).await.publication, p);
        // n2 has delivered it; a round trip shows `sub` was not given it.
        sync(&mut sub).await;
    })
    .await;
}

/// In interest mode a node subscribes NATS to a topic only while a local client does: none
/// before, one once SUBSCRIBED (for 20 fresh topics), none soon after the last UNSUBSCRIBE
/// (100 ms linger); a node without subscribers never holds it.
#[tokio::test]
async fn nats_interest_follows_local_subscribers() {
    with_cluster(async |c| {
        // `wamp.e.<realm token>.<topic components>`: one token per component.
        let holds = async |node: &str, topic: &str| {
            let suffix = format!(".{topic}");
            let is_topic = |s: &&String| {
                let rest = s
                    .strip_prefix("wamp.e.")
                    .and_then(|r| r.strip_suffix(&suffix));
                rest.is_some_and(|realm| !realm.is_empty() && !realm.contains('.'))
            };
            c.nats
                .subscriptions_of(node)
                .await
                .iter()
                .filter(is_topic)
                .count()
        };
        assert!(
            !c.nats.subscriptions_of("n3").await.is_empty(),
            "n3's connections are named"
        );
        let (mut a, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        for i in 0..20 {
            let topic = format!("cl.interest.t{i}");
            assert_eq!(
                holds("n3", &topic).await,
                0,
                "{topic} before any subscriber"
            );
            a.subscribe(&topic, Dict::new()).await;
            assert_eq!(holds("n3", &topic).await, 1, "{topic} once SUBSCRIBED");
        }
        let topic = "cl.interest.topic";
        let (mut b, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        let sa = a.subscribe(topic, Dict::new()).await;
        let sb = b.subscribe(topic, Dict::new()).await;
        let one = "one NATS subscription per (uri, match)";
        assert_eq!(holds("n3", topic).await, 1, "{one}");
        assert_eq!(holds("n2", topic).await, 0, "n2 has no subscriber");
        unsubscribe(&mut a, sa).await;
        unsubscribe(&mut b, sb).await;
        poll(
            "n3 to drop the interest",
            Duration::from_secs(3),
            async || (holds("n3", topic).await == 0).then_some(()),
        )
        .await;
    })
    .await;
}
