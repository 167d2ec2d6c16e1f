//! Registrations shared across nodes: `single` is cluster-wide, policies must agree, and
//! the invocation policies pick among callees on n2 and n3 for calls from n1.

use wamp_proto::message::{Goodbye, Unregister};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::cluster::{
    call_served, poll, serve, with_cluster, Cluster, Served, REALM, WAIT_ROUTED,
};
use wamp_tests::RawPeer;

use crate::rpc_common::{register_fails, try_register};

/// REGISTER options for an invocation policy.
pub(crate) fn invoke(policy: &str) -> Dict {
    dict([("invoke", policy.into())])
}

/// A callee on node `n` that registered `procedure` with `options`, served with tag `n<n>`.
pub(crate) async fn callee(c: &Cluster, n: usize, procedure: &str, options: Dict) -> Served {
    let (mut p, _) = RawPeer::join(&c.url(n), REALM, Serializer::Json).await;
    p.register(procedure, options).await;
    serve(p, &format!("n{n}"))
}

/// A caller on `n` once `procedure` is callable there (the answer discarded).
async fn caller_when_callable(c: &Cluster, n: usize, procedure: &str) -> RawPeer {
    let (mut p, _) = RawPeer::join(&c.url(n), REALM, Serializer::Json).await;
    let answer = call_served(&mut p, procedure, Payload::default()).await;
    assert!(matches!(answer, Message::Result(_)), "{answer:?}");
    p
}

/// Calls `procedure` once and returns the tag of the callee that answered.
pub(crate) async fn who_answers(caller: &mut RawPeer, procedure: &str) -> String {
    match call_served(caller, procedure, Payload::default()).await {
        Message::Result(r) => r
            .payload
            .args
            .as_ref()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .expect("the callee's tag")
            .to_owned(),
        other => panic!("expected RESULT from {procedure}, got {other:?}"),
    }
}

/// Calls until both n2's and n3's callees have answered (both registrations reached the
/// caller's node).
pub(crate) async fn until_both_answer(caller: &mut RawPeer, procedure: &str) {
    let mut seen = Vec::new();
    poll(
        &format!("both callees of {procedure}"),
        WAIT_ROUTED,
        async || {
            let tag = who_answers(caller, procedure).await;
            if !seen.contains(&tag) {
                seen.push(tag);
            }
            (seen.len() == 2).then_some(())
        },
    )
    .await;
}

/// `single` on n2 (visible on n3) makes a second REGISTER on n3 fail with
/// `procedure_already_exists`; a policy other than n2's is refused on n3 too.
#[tokio::test]
async fn registrations_are_checked_cluster_wide() {
    with_cluster(async |c| {
        let _single = callee(c, 2, "cl.shared.single", Dict::new()).await;
        let mut p3 = caller_when_callable(c, 3, "cl.shared.single").await;
        let single = invoke("single");
        let exists = uris::PROCEDURE_ALREADY_EXISTS;
        register_fails(&mut p3, "cl.shared.single", Dict::new(), exists).await;
        register_fails(&mut p3, "cl.shared.single", single, exists).await;

        let _rr = callee(c, 2, "cl.shared.mixed", invoke("roundrobin")).await;
        let mut p3 = caller_when_callable(c, 3, "cl.shared.mixed").await;
        let answer = try_register(&mut p3, "cl.shared.mixed", invoke("random")).await;
        assert!(
            matches!(answer, Message::Error(_)),
            "roundrobin then random: {answer:?}"
        );
    })
    .await;
}

/// REGISTER of one procedure on n2 and n3 at once, for 10 procedures: the KV decides, one
/// gets REGISTERED and the other `procedure_already_exists`; and a REGISTER on n3 right
/// after n2's REGISTERED (nothing waited for) is refused.
#[tokio::test]
async fn the_first_registration_wins_cluster_wide() {
    with_cluster(async |c| {
        let (mut p2, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let (mut p3, _) = RawPeer::join(&c.url(3), REALM, Serializer::MsgPack).await;
        for i in 0..10 {
            let procedure = format!("cl.shared.race{i}");
            let (a, b) = tokio::join!(
                try_register(&mut p2, &procedure, Dict::new()),
                try_register(&mut p3, &procedure, Dict::new()),
            );
            let refused = |m: &Message| {
                matches!(m, Message::Error(e) if e.error.as_str() == uris::PROCEDURE_ALREADY_EXISTS)
            };
            let won = |m: &Message| matches!(m, Message::Registered(_));
            assert!(
                (won(&a) && refused(&b)) || (refused(&a) && won(&b)),
                "{procedure}: n2 {a:?}, n3 {b:?}"
            );
        }
        p2.register("cl.shared.next", Dict::new()).await;
        let exists = uris::PROCEDURE_ALREADY_EXISTS;
        register_fails(&mut p3, "cl.shared.next", Dict::new(), exists).await;
    })
    .await;
}

/// Callees of `procedure` with `policy` on n2 and n3; `calls` calls from n1 once both
/// answer there: the tags of the callees that answered them.
async fn spread(c: &Cluster, procedure: &str, policy: &str, calls: usize) -> Vec<String> {
    let _a = callee(c, 2, procedure, invoke(policy)).await;
    let _b = callee(c, 3, procedure, invoke(policy)).await;
    let (mut caller, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
    until_both_answer(&mut caller, procedure).await;
    let mut tags = Vec::new();
    for _ in 0..calls {
        tags.push(who_answers(&mut caller, procedure).await);
    }
    tags
}

/// `roundrobin` over callees on n2 and n3, 300 calls from n1: 150 ± 30 each.
#[tokio::test]
async fn roundrobin_spreads_over_nodes() {
    with_cluster(async |c| {
        let tags = spread(c, "cl.shared.rr", "roundrobin", 300).await;
        let n2 = tags.iter().filter(|t| *t == "n2").count();
        assert!((120..=180).contains(&n2), "n2 got {n2} of 300: {tags:?}");
    })
    .await;
}

/// `random` over callees on n2 and n3: each answers at least once in 100 calls from n1.
#[tokio::test]
async fn random_reaches_every_node() {
    with_cluster(async |c| {
        let tags = spread(c, "cl.shared.random", "random", 100).await;
        for n in ["n2", "n3"] {
            assert!(tags.iter().any(|t| t == n), "{n} never answered: {tags:?}");
        }
    })
    .await;
}

/// `first` and `last` with n2's callee registered (and visible on n1) before n3's: `first`
/// always calls n2's, `last` n3's.
#[tokio::test]
async fn first_and_last_follow_registration_order() {
    with_cluster(async |c| {
        let _f2 = callee(c, 2, "cl.shared.first", invoke("first")).await;
        let _l2 = callee(c, 2, "cl.shared.last", invoke("last")).await;
        let mut caller = caller_when_callable(c, 1, "cl.shared.first").await;
        call_served(&mut caller, "cl.shared.last", Payload::default()).await;
        let _f3 = callee(c, 3, "cl.shared.first", invoke("first")).await;
        let _l3 = callee(c, 3, "cl.shared.last", invoke("last")).await;
        // n3's `last` callee reaching n1 is the sign that its registrations have.
        poll("n3's last callee on n1", WAIT_ROUTED, async || {
            (who_answers(&mut caller, "cl.shared.last").await == "n3").then_some(())
        })
        .await;
        for _ in 0..20 {
            assert_eq!(who_answers(&mut caller, "cl.shared.first").await, "n2");
            assert_eq!(who_answers(&mut caller, "cl.shared.last").await, "n3");
        }
    })
    .await;
}

/// REGISTERs of one procedure with two different invoke policies on n2 and n3 at once,
/// ten times for each pair: the claim in the KV decides, exactly one gets REGISTERED and the
/// other `procedure_already_exists`. The same shared policy on both is accepted on both.
#[tokio::test]
async fn conflicting_policies_registered_at_once_one_wins() {
    with_cluster(async |c| {
        let (mut p2, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let (mut p3, _) = RawPeer::join(&c.url(3), REALM, Serializer::MsgPack).await;
        let won = |m: &Message| matches!(m, Message::Registered(_));
        let refused = |m: &Message| {
            matches!(m, Message::Error(e) if e.error.as_str() == uris::PROCEDURE_ALREADY_EXISTS)
        };
        let pairs = [("roundrobin", "random"), ("single", "roundrobin"), ("first", "last")];
        for (x, y) in pairs {
            for i in 0..10 {
                let procedure = format!("cl.shared.conflict.{x}.{y}.{i}");
                let (a, b) = tokio::join!(
                    try_register(&mut p2, &procedure, invoke(x)),
                    try_register(&mut p3, &procedure, invoke(y)),
                );
                assert!(
                    (won(&a) && refused(&b)) || (refused(&a) && won(&b)),
                    "{procedure}: n2 ({x}) {a:?}, n3 ({y}) {b:?}"
                );
            }
        }
        for i in 0..10 {
            let procedure = format!("cl.shared.agree.{i}");
            let (a, b) = tokio::join!(
                try_register(&mut p2, &procedure, invoke("roundrobin")),
                try_register(&mut p3, &procedure, invoke("roundrobin")),
            );
            assert!(won(&a) && won(&b), "{procedure}: n2 {a:?}, n3 {b:?}");
        }
    })
    .await;
}

/// The claim of a shared registration outlives its callees on one node while another node
/// still has one (another policy stays refused on a third node), and is released once the
/// last callee in the cluster left (then another policy is accepted).
#[tokio::test]
async fn a_policy_is_released_when_the_last_callee_in_the_cluster_leaves() {
    with_cluster(async |c| {
        let procedure = "cl.shared.release";
        let n2 = callee(c, 2, procedure, invoke("roundrobin")).await;
        let n3 = callee(c, 3, procedure, invoke("roundrobin")).await;
        let mut caller = caller_when_callable(c, 1, procedure).await;
        until_both_answer(&mut caller, procedure).await;
        drop(n2);
        // n2's callee gone from n1's table: only n3's answers (until then a call routed to
        // n2's may fail, D3).
        poll("n2's callee gone on n1", WAIT_ROUTED, async || {
            let mut only_n3 = true;
            for _ in 0..4 {
                let answer = call_served(&mut caller, procedure, Payload::default()).await;
                let tag = match &answer {
                    Message::Result(r) => r.payload.args.as_ref().and_then(|a| a.first()),
                    _ => None,
                };
                only_n3 &= tag.and_then(Value::as_str) == Some("n3");
            }
            only_n3.then_some(())
        })
        .await;
        let exists = uris::PROCEDURE_ALREADY_EXISTS;
        register_fails(&mut caller, procedure, invoke("random"), exists).await;
        drop(n3);
        poll(
            "random accepted once the last callee left",
            WAIT_ROUTED,
            async || {
                let answer = try_register(&mut caller, procedure, invoke("random")).await;
                matches!(answer, Message::Registered(_)).then_some(())
            },
        )
        .await;
    })
    .await;
}

/// A registration ended on n2 (UNREGISTERED, or the GOODBYE reply, received) can be made
/// again on n3 at once, `single` or with another policy, ten times each: the claim was
/// given back before the answer.
#[tokio::test]
async fn a_procedure_given_up_can_be_registered_elsewhere_at_once() {
    with_cluster(async |c| {
        let (mut p3, _) = RawPeer::join(&c.url(3), REALM, Serializer::MsgPack).await;
        for i in 0..10 {
            let procedure = format!("cl.shared.given_up.unregister.{i}");
            let (mut p2, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
            let registration = p2.register(&procedure, Dict::new()).await;
            let request = p2.request();
            let unregister = Unregister {
                request,
                registration,
                options: None,
            };
            p2.send(&unregister.into()).await;
            let answer = p2.recv().await;
            assert!(matches!(answer, Message::Unregistered(_)), "{answer:?}");
            let answer = try_register(&mut p3, &procedure, invoke("roundrobin")).await;
            assert!(
                matches!(answer, Message::Registered(_)),
                "{procedure}: {answer:?}"
            );
        }
        for i in 0..10 {
            let procedure = format!("cl.shared.given_up.goodbye.{i}");
            let (mut p2, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
            p2.register(&procedure, invoke("random")).await;
            let goodbye = Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_NORMAL),
            };
            p2.send(&goodbye.into()).await;
            let answer = p2.recv().await;
            assert!(matches!(answer, Message::Goodbye(_)), "{answer:?}");
            let answer = try_register(&mut p3, &procedure, Dict::new()).await;
            assert!(
                matches!(answer, Message::Registered(_)),
                "{procedure}: {answer:?}"
            );
        }
    })
    .await;
}
