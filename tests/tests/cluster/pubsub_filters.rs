//! Cross-node PUBLISH options: `exclude_me`, black- and whitelisting by session, authid and
//! authrole (applied at the subscribers' node), publisher disclosure.

use wamp_proto::options::dict;
use wamp_proto::{Dict, Message, Payload, Serializer, Value};
use wamp_tests::auth::Cred;
use wamp_tests::cluster::{with_cluster, REALM, TICKET};
use wamp_tests::RawPeer;

use crate::pubsub::{event, publish, publish_acked};

/// The publisher's own subscription on n1 gets nothing by default (`exclude_me`) while n2's
/// does; with `exclude_me: false` both do.
#[tokio::test]
async fn exclude_me_is_settled_at_the_publisher() {
    with_cluster(async |c| {
        let (mut remote, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        remote.subscribe("cl.me", Dict::new()).await;
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        publ.subscribe("cl.me", Dict::new()).await;
        let first = publish_acked(&mut publ, "cl.me", Dict::new(), Payload::default()).await;
        assert_eq!(event(&mut remote).await.publication, first);
        let options = dict([("exclude_me", false.into()), ("acknowledge", true.into())]);
        let r = publish(&mut publ, "cl.me", options, Payload::default()).await;
        // PUBLISHED and the publisher's own EVENT, in either order: never the first event.
        let (mut acked, mut own) = (None, None);
        while acked.is_none() || own.is_none() {
            match publ.recv().await {
                Message::Published(pb) if pb.request == r => acked = Some(pb.publication),
                Message::Event(ev) => {
                    assert_ne!(ev.publication, first, "excluded by exclude_me");
                    own = Some(ev.publication);
                }
                other => panic!("expected PUBLISHED or EVENT, got {other:?}"),
            }
        }
        assert_eq!(acked, own);
        assert_eq!(Some(event(&mut remote).await.publication), acked);
    })
    .await;
}

/// Subscribers `alice` (role `ra`) on n2, `bob` (role `rb`) and an anonymous session on
/// n3; each publication from n1 reaches exactly those its options allow.
#[tokio::test]
async fn black_and_white_lists_apply_on_other_nodes() {
    with_cluster(async |c| {
        let login = async |n: usize, authid: &str| {
            let (p, _) =
                RawPeer::join_as(&c.url(n), REALM, Some(authid), Cred::Ticket(TICKET)).await;
            p
        };
        let mut alice = login(2, "alice").await;
        let mut bob = login(3, "bob").await;
        let (mut anon, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        for p in [&mut alice, &mut bob, &mut anon] {
            p.subscribe("cl.lists", Dict::new()).await;
        }
        let id = |p: &RawPeer| Value::from(p.session.expect("joined").get());
        let (a, b, x) = (id(&alice), id(&bob), id(&anon));
        let list = Value::List;
        let s = |t: &str| Value::from(t);
        // (options, who gets it: alice, bob, anonymous)
        let cases: Vec<(Dict, [bool; 3])> = vec![
            (
                dict([("exclude", list(vec![a.clone()]))]),
                [false, true, true],
            ),
            (
                dict([("eligible", list(vec![b.clone()]))]),
                [false, true, false],
            ),
            (
                dict([("exclude_authid", list(vec![s("alice")]))]),
                [false, true, true],
            ),
            (
                dict([("eligible_authid", list(vec![s("bob")]))]),
                [false, true, false],
            ),
            (
                dict([("exclude_authrole", list(vec![s("rb")]))]),
                [true, false, true],
            ),
            (
                dict([("eligible_authrole", list(vec![s("ra")]))]),
                [true, false, false],
            ),
            (
                dict([
                    ("eligible", list(vec![a, x.clone()])),
                    ("exclude", list(vec![x])),
                ]),
                [true, false, false],
            ),
            (Dict::new(), [true, true, true]),
        ];
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        for (i, (options, _)) in cases.iter().enumerate() {
            let payload = Payload::args(vec![(i as u64).into()]);
            publish_acked(&mut publ, "cl.lists", options.clone(), payload).await;
        }
        // One topic, one publisher: in order, and the last case reaches everyone.
        let last = cases.len() as u64 - 1;
        for (k, p) in [&mut alice, &mut bob, &mut anon].into_iter().enumerate() {
            let mut got = Vec::new();
            loop {
                let ev = event(p).await;
                let i = ev
                    .payload
                    .args
                    .as_ref()
                    .and_then(|a| a[0].as_u64())
                    .expect("index");
                got.push(i);
                if i == last {
                    break;
                }
            }
            let want: Vec<u64> = (0..=last).filter(|&i| cases[i as usize].1[k]).collect();
            assert_eq!(got, want, "subscriber {k} (alice, bob, anonymous)");
        }
    })
    .await;
}

/// `disclose_me: true` gives the remote EVENT `publisher` (the session on n1); without it
/// the EVENT has none.
#[tokio::test]
async fn publisher_disclosure_reaches_other_nodes() {
    with_cluster(async |c| {
        let (mut sub, _) = RawPeer::join(&c.url(2), REALM, Serializer::MsgPack).await;
        sub.subscribe("cl.disclose", Dict::new()).await;
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let me = publ.session.expect("joined").get();
        let disclose = dict([("disclose_me", true.into())]);
        publish_acked(&mut publ, "cl.disclose", disclose, Payload::default()).await;
        let ev = event(&mut sub).await;
        assert_eq!(
            ev.details.get("publisher"),
            Some(&Value::UInt(me)),
            "{ev:?}"
        );
        publish_acked(&mut publ, "cl.disclose", Dict::new(), Payload::default()).await;
        let ev = event(&mut sub).await;
        assert!(!ev.details.contains_key("publisher"), "{ev:?}");
    })
    .await;
}
