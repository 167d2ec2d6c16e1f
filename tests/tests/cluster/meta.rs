//! The meta API across nodes: the session count, and the testaments of a node that dies.

use std::time::Duration;

use wamp_proto::{Dict, Message, Payload, Serializer, Value};
use wamp_tests::cluster::{poll, with_cluster, NODE_TIMEOUT, REALM};
use wamp_tests::RawPeer;

use crate::pubsub::{event, publish_acked};

/// `wamp.session.count` on `p`'s node.
async fn count(p: &mut RawPeer) -> u64 {
    let r = p.send_call("wamp.session.count", Payload::default()).await;
    match p.recv().await {
        Message::Result(mut res) if res.request == r => {
            res.payload.materialize().expect("a readable RESULT");
            let args = res.payload.args.unwrap_or_default();
            args.first().and_then(Value::as_u64).expect("a count")
        }
        other => panic!("expected the count, got {other:?}"),
    }
}

/// The count on n1 includes the sessions of n2 and n3 (each node counts its own), and
/// goes down when one of them leaves.
#[tokio::test]
async fn session_count_is_cluster_wide() {
    with_cluster(async |c| {
        let (mut asker, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        let bound = Duration::from_secs(3);
        // The harness's own sessions (its startup checks) may still be leaving.
        poll("only the asking session counted", bound, async || {
            (count(&mut asker).await == 1).then_some(())
        })
        .await;
        let before = 1;
        let (a, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let (_b, _) = RawPeer::join(&c.url(2), REALM, Serializer::MsgPack).await;
        let (_c, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        poll("three more sessions counted on n1", bound, async || {
            (count(&mut asker).await == before + 3).then_some(())
        })
        .await;
        drop(a);
        poll("a session that left no longer counted", bound, async || {
            (count(&mut asker).await == before + 2).then_some(())
        })
        .await;
    })
    .await;
}

/// A session on n2 leaves a testament; n2 is killed: a subscriber on n3 gets the testament
/// once (a later publication from n1 comes next, not a second copy).
#[tokio::test]
async fn a_killed_nodes_testaments_are_published_once() {
    with_cluster(async |c| {
        let (mut sub, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        sub.subscribe("cl.meta.will", Dict::new()).await;
        let (mut mortal, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let args = vec![
            Value::from("cl.meta.will"),
            Value::List(vec!["n2's session is gone".into()]),
        ];
        let r = mortal
            .send_call("wamp.session.add_testament", Payload::args(args))
            .await;
        match mortal.recv().await {
            Message::Result(res) if res.request == r => {}
            other => panic!("expected add_testament's RESULT, got {other:?}"),
        }
        c.node(2).kill();
        let will = tokio::time::timeout(NODE_TIMEOUT * 5, event(&mut sub))
            .await
            .expect("the testament within five node timeouts");
        let mut payload = will.payload;
        payload.materialize().expect("a readable EVENT");
        assert_eq!(
            payload.args,
            Some(vec![Value::from("n2's session is gone")]),
            "the testament's event"
        );
        let (mut publisher, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        publish_acked(
            &mut publisher,
            "cl.meta.will",
            Dict::new(),
            Payload::args(vec!["marker".into()]),
        )
        .await;
        let mut next = event(&mut sub).await.payload;
        next.materialize().expect("a readable EVENT");
        assert_eq!(
            next.args,
            Some(vec![Value::from("marker")]),
            "the next event is the marker, not the testament again"
        );
    })
    .await;
}
