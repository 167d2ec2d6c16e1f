//! Retained events and event history cluster-wide (`interest` mode), and
//! `force_reregister` evicting the callees of every node.

use std::time::Duration;

use wamp_proto::message::*;
use wamp_proto::options::dict;
use wamp_proto::{Dict, Id, Message, Payload, Serializer, Value};
use wamp_tests::auth::Cred;
use wamp_tests::cluster::{invoke_routed, poll, with_cluster, REALM, TICKET};
use wamp_tests::RawPeer;

use crate::pubsub::{event, matching, publish_acked, unsubscribe};

/// How long a retained event or a history entry may take to reach another node.
const SPREAD: Duration = Duration::from_secs(5);

/// Subscribes `p` to `topic` (`policy`) with `get_retained`, and returns the events that
/// marked `retained` that came before the answer of a CALL sent after SUBSCRIBED (the
/// retained events are queued right after it), then unsubscribes.
async fn retained(p: &mut RawPeer, topic: &str, policy: &str) -> Vec<Event> {
    let mut options = matching(policy);
    options.insert("get_retained".into(), true.into());
    let sub = p.subscribe(topic, options).await;
    let r = p.send_call("cl.sync.nobody", Payload::default()).await;
    let mut got = Vec::new();
    loop {
        match p.recv().await {
            // A live event that raced the subscription is not a retained one.
            Message::Event(ev) if is_retained(&ev) => {
                assert_eq!(ev.subscription, sub, "{ev:?}");
                got.push(ev);
            }
            Message::Event(_) => {}
            Message::Error(e) if e.request == r => break,
            other => panic!("expected EVENT or the sync's ERROR, got {other:?}"),
        }
    }
    unsubscribe(p, sub).await;
    got
}

/// Polls `p`'s node until `get_retained` on `topic` gives publication `want`; returns
/// that one event (there is exactly one).
pub(crate) async fn retained_is(p: &mut RawPeer, topic: &str, policy: &str, want: Id) -> Event {
    let what = format!("{topic} ({policy}) retained {want:?}");
    let mut events = poll(&what, SPREAD, async || {
        let got = retained(p, topic, policy).await;
        got.iter().any(|e| e.publication == want).then_some(got)
    })
    .await;
    assert_eq!(events.len(), 1, "one retained event: {events:?}");
    events.remove(0)
}

fn is_retained(ev: &Event) -> bool {
    ev.details.get("retained") == Some(&Value::Bool(true))
}

fn retain() -> Dict {
    dict([("retain", true.into())])
}

/// A retained event published on n1 with nobody subscribed anywhere reaches `get_retained`
/// on n2 and n3 (exact, prefix, wildcard) with `retained: true`, its publication id and
/// payload; a newer one replaces it everywhere; it outlives n1 (`kill -9`).
#[tokio::test]
async fn a_retained_event_reaches_every_node_is_replaced_everywhere_and_outlives_its_node() {
    with_cluster(async |c| {
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let topic = "cl.ret.a.b";
        let first = publish_acked(&mut publ, topic, retain(), Payload::args(vec![1.into()])).await;
        let (mut p2, _) = RawPeer::join(&c.url(2), REALM, Serializer::MsgPack).await;
        let (mut p3, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        let ev = retained_is(&mut p2, topic, "exact", first).await;
        assert!(is_retained(&ev), "{ev:?}");
        assert_eq!(ev.payload.args, Some(vec![1.into()]));
        for (pattern, policy) in [("cl.ret.", "prefix"), ("cl.ret..b", "wildcard")] {
            let ev = retained_is(&mut p3, pattern, policy, first).await;
            assert!(is_retained(&ev), "{ev:?}");
            let t = ev.details.get("topic").and_then(Value::as_str);
            assert_eq!(t, Some(topic), "{policy}");
        }
        // A newer one from n2 replaces it on every node, n1 included.
        let (mut publ2, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let second =
            publish_acked(&mut publ2, topic, retain(), Payload::args(vec![2.into()])).await;
        for p in [&mut publ, &mut p2, &mut p3] {
            let ev = retained_is(p, topic, "exact", second).await;
            assert_eq!(ev.payload.args, Some(vec![2.into()]));
        }
        // A third from n1, then n1 dies: n3 (a new session) still gets it.
        let third = publish_acked(&mut publ, topic, retain(), Payload::args(vec![3.into()])).await;
        retained_is(&mut p3, topic, "exact", third).await;
        c.node(1).kill();
        let (mut late, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        let ev = retained_is(&mut late, topic, "prefix", third).await;
        assert!(is_retained(&ev));
        retained_is(&mut p2, topic, "exact", third).await;
    })
    .await;
}

/// Read-your-writes: once PUBLISHED of a retained event came, `get_retained` on another
/// node replays that event, without waiting or retrying (D9 needs neither for an
/// acknowledged publication), each of ten times in a row, exact and prefix.
#[tokio::test]
async fn an_acknowledged_retained_event_is_replayed_at_once_on_every_node() {
    with_cluster(async |c| {
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let (mut p2, _) = RawPeer::join(&c.url(2), REALM, Serializer::MsgPack).await;
        let (mut p3, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        let topic = "cl.ret.now";
        for i in 0..10u64 {
            let id = publish_acked(&mut publ, topic, retain(), Payload::args(vec![i.into()])).await;
            let got = retained(&mut p2, topic, "exact").await;
            let ids: Vec<Id> = got.iter().map(|e| e.publication).collect();
            assert_eq!(ids, vec![id], "n2, publication {i}");
            let got = retained(&mut p3, "cl.ret.", "prefix").await;
            let ids: Vec<Id> = got.iter().map(|e| e.publication).collect();
            assert_eq!(ids, vec![id], "n3, publication {i}");
        }
    })
    .await;
}

/// A retained event with `eligible_authid` and `exclude_authrole`, published on n1, is
/// replayed on n2 only to whom the lists allow.
#[tokio::test]
async fn retained_replay_on_another_node_honours_the_eligibility_lists() {
    with_cluster(async |c| {
        let login = async |n: usize, authid: &str| {
            let (p, _) =
                RawPeer::join_as(&c.url(n), REALM, Some(authid), Cred::Ticket(TICKET)).await;
            p
        };
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let topic = "cl.ret.lists";
        let options = dict([
            ("retain", true.into()),
            (
                "eligible_authid",
                vec![Value::from("alice"), "bob".into()].into(),
            ),
            ("exclude_authrole", vec![Value::from("rb")].into()),
        ]);
        let id = publish_acked(&mut publ, topic, options, Payload::default()).await;
        let mut alice = login(2, "alice").await;
        retained_is(&mut alice, topic, "exact", id).await;
        // Known on n2 by now: bob (excluded by role) and an anonymous session (not
        // eligible) get nothing.
        let mut bob = login(2, "bob").await;
        assert!(retained(&mut bob, topic, "exact").await.is_empty());
        let (mut anon, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        assert!(retained(&mut anon, topic, "prefix").await.is_empty());
    })
    .await;
}

/// `wamp.subscription.get_events(subscription)` on `p`: the publication ids, in order.
async fn history(p: &mut RawPeer, subscription: Id) -> Vec<u64> {
    let payload = Payload::args(vec![subscription.get().into()]);
    let r = p.send_call("wamp.subscription.get_events", payload).await;
    match p.recv().await {
        Message::Result(res) if res.request == r => {
            let args = res.payload.args.unwrap_or_default();
            let list = args
                .first()
                .and_then(Value::as_list)
                .expect("a list of events");
            list.iter()
                .map(|e| {
                    let d = e.as_dict().expect("an event is a dict");
                    d.get("publication")
                        .and_then(Value::as_u64)
                        .expect("its publication")
                })
                .collect()
        }
        other => panic!("expected the RESULT of get_events, got {other:?}"),
    }
}

/// Events published on n1 to a topic with history (`cl.hist.` prefix, 100), subscribed to
/// on n1 only, are in the history of n2 and n3 too, in order.
#[tokio::test]
async fn every_node_keeps_the_history_of_events_published_elsewhere() {
    with_cluster(async |c| {
        // Every node holds its history interest from the start.
        for node in ["n1", "n2", "n3"] {
            poll(&format!("{node}'s history interest"), SPREAD, async || {
                let subs = c.nats.subscriptions_of(node).await;
                subs.iter().any(|s| s.ends_with(".cl.hist.>")).then_some(())
            })
            .await;
        }
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let topic = "cl.hist.x";
        let local = publ.subscribe(topic, Dict::new()).await;
        let options = dict([("exclude_me", false.into())]);
        let mut ids = Vec::new();
        for i in 0..5u64 {
            let id = publish_acked(
                &mut publ,
                topic,
                options.clone(),
                Payload::args(vec![i.into()]),
            )
            .await;
            assert_eq!(event(&mut publ).await.publication, id);
            ids.push(id.get());
        }
        assert_eq!(history(&mut publ, local).await, ids, "n1");
        for n in [2, 3] {
            let (mut p, _) = RawPeer::join(&c.url(n), REALM, Serializer::MsgPack).await;
            let sub = p.subscribe("cl.hist.", matching("prefix")).await;
            let got = poll(&format!("n{n}'s history"), SPREAD, async || {
                let h = history(&mut p, sub).await;
                (h.len() >= ids.len()).then_some(h)
            })
            .await;
            assert_eq!(got, ids, "n{n}");
        }
    })
    .await;
}

/// Joins node `n` as a callee that announced `registration_revocation`.
async fn revocable_callee(url: &str) -> RawPeer {
    RawPeer::join_with_features(
        url,
        REALM,
        Serializer::Json,
        &[("callee", "registration_revocation")],
    )
    .await
}

/// The callees node `p` lists for registration `reg`.
async fn callees_listed(p: &mut RawPeer, reg: Id) -> usize {
    let payload = Payload::args(vec![reg.get().into()]);
    let r = p.send_call("wamp.registration.list_callees", payload).await;
    match p.recv().await {
        Message::Result(res) if res.request == r => {
            let args = res.payload.args.unwrap_or_default();
            args.first().and_then(Value::as_list).map_or(0, |l| l.len())
        }
        Message::Error(e) if e.request == r => 0,
        other => panic!("expected the RESULT of list_callees, got {other:?}"),
    }
}

/// Callees on n1 and n3 (roundrobin); a REGISTER with `force_reregister` on n2 evicts both
/// (each gets UNREGISTERED with the reason before n2's REGISTERED), and calls from every
/// node then reach the new callee.
#[tokio::test]
async fn force_reregister_evicts_the_callees_of_every_node() {
    with_cluster(async |c| {
        let procedure = "cl.force.p";
        let shared = dict([("invoke", "roundrobin".into())]);
        let mut old1 = revocable_callee(&c.url(1)).await;
        let reg = old1.register(procedure, shared.clone()).await;
        let mut old3 = revocable_callee(&c.url(3)).await;
        assert_eq!(old3.register(procedure, shared.clone()).await, reg);
        let mut new = revocable_callee(&c.url(2)).await;
        poll("n2 to know both callees", SPREAD, async || {
            (callees_listed(&mut new, reg).await == 2).then_some(())
        })
        .await;
        let mut forced = shared.clone();
        forced.insert("force_reregister".into(), true.into());
        assert_eq!(new.register(procedure, forced).await, reg);
        for old in [&mut old1, &mut old3] {
            match old.recv().await {
                Message::Unregistered(u) => {
                    let d = u.details.unwrap_or_default();
                    assert_eq!(
                        d.get("registration").and_then(Value::as_u64),
                        Some(reg.get())
                    );
                    assert_eq!(
                        d.get("reason").and_then(Value::as_str),
                        Some("wamp.error.unregistered")
                    );
                }
                other => panic!("expected UNREGISTERED, got {other:?}"),
            }
        }
        for n in [1, 2, 3] {
            let (mut caller, _) = RawPeer::join(&c.url(n), REALM, Serializer::Json).await;
            for _ in 0..3 {
                let (r, inv) = invoke_routed(
                    &mut caller,
                    &mut new,
                    procedure,
                    Dict::new(),
                    Payload::default(),
                )
                .await;
                new.send(
                    &Yield {
                        request: inv.request,
                        options: Dict::new(),
                        payload: Payload::default(),
                    }
                    .into(),
                )
                .await;
                match caller.recv().await {
                    Message::Result(res) => assert_eq!(res.request, r),
                    other => panic!("expected RESULT from n{n}, got {other:?}"),
                }
            }
        }
        // Only the new callee is left, on every node.
        for p in [&mut old1, &mut old3] {
            poll("one callee listed", SPREAD, async || {
                (callees_listed(p, reg).await == 1).then_some(())
            })
            .await;
        }
    })
    .await;
}
