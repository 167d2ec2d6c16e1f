//! The meta API's lists, gets and kills across nodes: asked on one node, answered for the
//! whole cluster (every live node answers for its own sessions, subscriptions, callees).

use std::time::{Duration, Instant};

use wamp_proto::{uris, Dict, Message, Payload, Serializer, Value};
use wamp_tests::auth::Cred;
use wamp_tests::cluster::{poll, with_cluster, REALM, TICKET};
use wamp_tests::RawPeer;

use crate::pubsub::event;

/// Calls meta procedure `procedure` on `p`'s node: its first result, or the ERROR's URI.
async fn meta(
    p: &mut RawPeer,
    procedure: &str,
    args: Vec<Value>,
    kwargs: Dict,
) -> Result<Value, String> {
    let payload = Payload::new(Some(args), Some(kwargs));
    let r = p.send_call(procedure, payload).await;
    match p.recv().await {
        Message::Result(mut res) if res.request == r => {
            res.payload.materialize().expect("a readable RESULT");
            Ok(res
                .payload
                .args
                .unwrap_or_default()
                .into_iter()
                .next()
                .unwrap_or(Value::Null))
        }
        Message::Error(e) if e.request == r => Err(e.error.as_str().to_owned()),
        other => panic!("{procedure}: expected RESULT or ERROR, got {other:?}"),
    }
}

/// [`meta`] that must answer a RESULT.
async fn ask(p: &mut RawPeer, procedure: &str, args: Vec<Value>) -> Value {
    meta(p, procedure, args, Dict::new())
        .await
        .unwrap_or_else(|e| panic!("{procedure}: ERROR {e}"))
}

/// The ids in a list answer, sorted.
fn ids(v: &Value) -> Vec<u64> {
    let Value::List(l) = v else {
        panic!("expected a list of ids, got {v:?}");
    };
    let mut out: Vec<u64> = l.iter().map(|i| i.as_u64().expect("an id")).collect();
    out.sort_unstable();
    out
}

async fn join_as(url: &str, authid: &str) -> (RawPeer, u64) {
    let (p, w) = RawPeer::join_as(url, REALM, Some(authid), Cred::Ticket(TICKET)).await;
    (p, w.session.get())
}

/// Sessions on n2 and n3 are listed (also by authrole) and got on n1; an id no node has
/// is `no_such_session`.
#[tokio::test]
async fn sessions_of_every_node_are_listed_and_got_on_one() {
    with_cluster(async |c| {
        let (mut asker, w) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let (_alice, alice) = join_as(&c.url(2), "alice").await;
        let (_bob, bob) = join_as(&c.url(3), "bob").await;
        let all = ids(&ask(&mut asker, "wamp.session.list", vec![]).await);
        for id in [w.session.get(), alice, bob] {
            assert!(all.contains(&id), "{id} in {all:?}");
        }
        let ra = ask(
            &mut asker,
            "wamp.session.list",
            vec![Value::List(vec!["ra".into()])],
        )
        .await;
        assert_eq!(ids(&ra), vec![alice], "only alice has role ra");
        let got = ask(&mut asker, "wamp.session.get", vec![bob.into()]).await;
        let Value::Dict(d) = got else {
            panic!("a session's description, got {got:?}");
        };
        assert_eq!(d.get("authid"), Some(&Value::from("bob")));
        assert_eq!(d.get("session").and_then(Value::as_u64), Some(bob));
        let missing = meta(
            &mut asker,
            "wamp.session.get",
            vec![12345u64.into()],
            Dict::new(),
        )
        .await;
        assert_eq!(missing, Err("wamp.error.no_such_session".to_owned()));
    })
    .await;
}

/// A kill asked on n1 closes a session on n2 with the reason asked for, and
/// `wamp.session.on_leave` reaches a subscriber on n3; killing an id no node has is
/// `no_such_session`.
#[tokio::test]
async fn a_kill_on_one_node_closes_a_session_on_another() {
    with_cluster(async |c| {
        let (mut watcher, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        watcher
            .subscribe("wamp.session.on_leave", Dict::new())
            .await;
        let (mut victim, v) = RawPeer::join(&c.url(2), REALM, Serializer::MsgPack).await;
        let victim_id = v.session.get();
        let (mut killer, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let kwargs = Dict::from_iter([("reason".to_owned(), Value::from("com.example.begone"))]);
        let answer = meta(
            &mut killer,
            "wamp.session.kill",
            vec![victim_id.into()],
            kwargs,
        )
        .await;
        assert_eq!(answer, Ok(Value::Null));
        match victim.recv().await {
            Message::Goodbye(g) => assert_eq!(g.reason.as_str(), "com.example.begone"),
            other => panic!("the victim expected GOODBYE, got {other:?}"),
        }
        let left = event(&mut watcher).await;
        let mut payload = left.payload;
        payload.materialize().expect("a readable EVENT");
        let first = payload
            .args
            .unwrap_or_default()
            .first()
            .and_then(Value::as_u64);
        assert_eq!(first, Some(victim_id), "on_leave names the victim");
        let again = meta(
            &mut killer,
            "wamp.session.kill",
            vec![12345u64.into()],
            Dict::new(),
        )
        .await;
        assert_eq!(again, Err("wamp.error.no_such_session".to_owned()));
    })
    .await;
}

/// `kill_by_authid` and `kill_by_authrole` on n1 kill on every node, answer the cluster's
/// total, and spare the caller.
#[tokio::test]
async fn kills_by_authid_and_authrole_reach_every_node_but_spare_the_caller() {
    with_cluster(async |c| {
        let (mut caller, _) = join_as(&c.url(1), "alice").await;
        let (mut a2, a2_id) = join_as(&c.url(2), "alice").await;
        let (mut a3, a3_id) = join_as(&c.url(3), "alice").await;
        let (mut b2, _) = join_as(&c.url(2), "bob").await;
        let (mut b3, _) = join_as(&c.url(3), "bob").await;
        let killed = ask(
            &mut caller,
            "wamp.session.kill_by_authid",
            vec!["alice".into()],
        )
        .await;
        assert_eq!(ids(&killed), {
            let mut v = vec![a2_id, a3_id];
            v.sort_unstable();
            v
        });
        let count = ask(
            &mut caller,
            "wamp.session.kill_by_authrole",
            vec!["rb".into()],
        )
        .await;
        assert_eq!(count.as_u64(), Some(2), "both bobs");
        for p in [&mut a2, &mut a3, &mut b2, &mut b3] {
            match p.recv().await {
                Message::Goodbye(g) => assert_eq!(g.reason.as_str(), uris::CLOSE_KILLED),
                other => panic!("expected GOODBYE, got {other:?}"),
            }
        }
        // The caller is still in.
        ask(&mut caller, "wamp.session.list", vec![]).await;
    })
    .await;
}

/// Subscribers on all three nodes: n1 answers the subscription's lookup, match, list, get,
/// subscribers and count for all of them; one on n3 alone is got on n1.
#[tokio::test]
async fn subscriptions_are_merged_over_the_nodes() {
    with_cluster(async |c| {
        let mut subs = Vec::new();
        let mut sessions = Vec::new();
        for n in 1..=3 {
            let (mut p, w) = RawPeer::join(&c.url(n), REALM, Serializer::Json).await;
            p.subscribe("cl.ml.topic", Dict::new()).await;
            sessions.push(w.session.get());
            subs.push(p);
        }
        sessions.sort_unstable();
        let only = subs[2].subscribe("cl.ml.only3", Dict::new()).await.get();
        let asker = &mut subs[0];
        let id = ask(
            asker,
            "wamp.subscription.lookup",
            vec!["cl.ml.topic".into()],
        )
        .await;
        let id = id.as_u64().expect("the subscription's id");
        let listed = ask(asker, "wamp.subscription.list_subscribers", vec![id.into()]).await;
        assert_eq!(ids(&listed), sessions);
        let count = ask(
            asker,
            "wamp.subscription.count_subscribers",
            vec![id.into()],
        )
        .await;
        assert_eq!(count.as_u64(), Some(3));
        let matched = ask(asker, "wamp.subscription.match", vec!["cl.ml.only3".into()]).await;
        assert_eq!(ids(&matched), vec![only]);
        let list = ask(asker, "wamp.subscription.list", vec![]).await;
        let Value::Dict(d) = &list else {
            panic!("a dict of lists, got {list:?}");
        };
        let exact = ids(d.get("exact").expect("exact"));
        assert!(exact.contains(&id) && exact.contains(&only), "{exact:?}");
        let got = ask(asker, "wamp.subscription.get", vec![only.into()]).await;
        let Value::Dict(g) = got else {
            panic!("a description, got {got:?}");
        };
        assert_eq!(g.get("uri"), Some(&Value::from("cl.ml.only3")));
        let none = meta(
            asker,
            "wamp.subscription.get",
            vec![12345u64.into()],
            Dict::new(),
        )
        .await;
        assert_eq!(none, Err(uris::NO_SUCH_SUBSCRIPTION.to_owned()));
    })
    .await;
}

/// Callees of one shared registration on n2 and n3: n1 (no callee of its own) and n2 (one
/// of each kind) list and count the real callee sessions, each once.
#[tokio::test]
async fn callees_are_the_real_sessions_each_once() {
    with_cluster(async |c| {
        let shared = Dict::from_iter([("invoke".to_owned(), Value::from("roundrobin"))]);
        let (mut c2, w2) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let (mut c3, w3) = RawPeer::join(&c.url(3), REALM, Serializer::MsgPack).await;
        c2.register("cl.ml.proc", shared.clone()).await;
        c3.register("cl.ml.proc", shared).await;
        let mut callees = vec![w2.session.get(), w3.session.get()];
        callees.sort_unstable();
        let (mut asker, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let id = ask(
            &mut asker,
            "wamp.registration.lookup",
            vec!["cl.ml.proc".into()],
        )
        .await;
        let id = id.as_u64().expect("the registration's id");
        for p in [&mut asker, &mut c2] {
            // n2 learns of n3's callee through the registry: at most milliseconds (D3).
            poll("both callees listed", Duration::from_secs(3), async || {
                let listed = ask(p, "wamp.registration.list_callees", vec![id.into()]).await;
                (ids(&listed) == callees).then_some(())
            })
            .await;
            let count = ask(p, "wamp.registration.count_callees", vec![id.into()]).await;
            assert_eq!(count.as_u64(), Some(2));
            let got = ask(p, "wamp.registration.get", vec![id.into()]).await;
            let Value::Dict(g) = got else {
                panic!("a description, got {got:?}");
            };
            assert_eq!(g.get("invoke"), Some(&Value::from("roundrobin")));
            let list = ask(p, "wamp.registration.list", vec![]).await;
            let Value::Dict(d) = &list else {
                panic!("a dict of lists, got {list:?}");
            };
            assert_eq!(ids(d.get("exact").expect("exact")), vec![id]);
        }
    })
    .await;
}

/// With n3 frozen (SIGSTOP), a list on n1 answers within the gather bound (at most 1 s)
/// with the others' sessions, n3's left out.
#[tokio::test]
async fn a_frozen_node_does_not_make_a_list_hang() {
    with_cluster(async |c| {
        let (mut asker, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let (_on2, w2) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let (_on3, w3) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        c.node(3).pause();
        let started = Instant::now();
        let listed = ids(&ask(&mut asker, "wamp.session.list", vec![]).await);
        let took = started.elapsed();
        c.node(3).resume();
        assert!(took < Duration::from_millis(2500), "answered in {took:?}");
        assert!(
            listed.contains(&w2.session.get()),
            "n2's session in {listed:?}"
        );
        assert!(
            !listed.contains(&w3.session.get()),
            "frozen n3's session left out"
        );
    })
    .await;
}
