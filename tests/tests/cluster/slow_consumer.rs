//! A node that reads NATS slower than events arrive: the NATS client drops what does not fit
//! its subscription's queue (`[cluster] subscription_capacity`), the node counts and logs
//! it, and stays up; calls through it go on (each NATS subscription has its own queue).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use wamp_proto::message::Publish;
use wamp_proto::{Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::cluster::{call_served, poll, seen_nodes, serve, with_nodes, NODE_TIMEOUT, REALM};
use wamp_tests::RawPeer;

/// Events published while the slow node is frozen (fewer if [`FREEZE`] passes first).
const FLOOD: u64 = 5_000;

/// At most this long frozen: well under the node timeout, so it is not declared lost.
const FREEZE: Duration = Duration::from_millis(300);

/// `slow3` (queue of 64 per NATS subscription) is frozen while n1 publishes a flood to its
/// subscriber, then resumes and reads a burst of thousands: it drops most of it, counts the
/// drops in `wamp_cluster_slow_consumer_drops_total`, keeps its sessions, delivers what it
/// kept in order without duplicates, and a call from n1 to a callee on it still answers.
#[tokio::test]
async fn a_slow_node_drops_counts_and_keeps_serving() {
    assert!(FREEZE < NODE_TIMEOUT / 2);
    with_nodes(&["n1", "n2", "slow3"], async |c| {
        let (mut sub, _) = RawPeer::join(&c.url(3), REALM, Serializer::MsgPack).await;
        sub.subscribe("cl.flood", Dict::new()).await;
        let (mut callee, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        callee.register("cl.slow.echo", Dict::new()).await;
        let _served = serve(callee, "slow3");
        let (mut publ, _) = RawPeer::join(&c.url(1), REALM, Serializer::MsgPack).await;
        // The subscriber reads all the time, so its own queue on slow3 never fills.
        let (got_tx, mut got) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Ok(m) = sub.next_message().await {
                if let Message::Event(e) = m {
                    let n = e
                        .payload
                        .args
                        .and_then(|a| a.first().and_then(Value::as_u64));
                    if got_tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });

        c.node(3).pause();
        let start = Instant::now();
        let mut published = 0;
        while published < FLOOD && start.elapsed() < FREEZE {
            let msg = Publish {
                request: publ.request(),
                options: Dict::new(),
                topic: Uri::new("cl.flood"),
                payload: Payload::new(Some(vec![published.into()]), None),
            };
            publ.send(&msg.into()).await;
            published += 1;
        }
        // Everything is with nats-server (or in slow3's socket) before slow3 goes on.
        assert!(
            seen_nodes(&mut publ).await.is_some(),
            "n1 answers after the flood"
        );
        c.node(3).resume();

        let drops = poll(
            "slow3 counts dropped messages",
            Duration::from_secs(10),
            async || {
                let n = c.nodes[2].counter("cluster_slow_consumer_drops").await;
                (n > 0).then_some(n)
            },
        )
        .await;

        // Wait until slow3 delivered what it kept: a marker published after the flood
        // arrives (published again until one does, since a full queue may drop it too).
        let mut kept = Vec::new();
        poll(
            "a marker after the flood arrives",
            Duration::from_secs(20),
            async || {
                let marker = Publish {
                    request: publ.request(),
                    options: Dict::new(),
                    topic: Uri::new("cl.flood"),
                    payload: Payload::new(Some(vec![u64::MAX.into()]), None),
                };
                publ.send(&marker.into()).await;
                let until = Instant::now() + Duration::from_millis(200);
                while let Ok(Some(n)) = tokio::time::timeout_at(until, got.recv()).await {
                    match n {
                        Some(u64::MAX) => return Some(()),
                        Some(n) => kept.push(n),
                        None => panic!("an event of the flood without its number"),
                    }
                }
                None
            },
        )
        .await;
        reader.abort();

        let n = kept.len() as u64;
        assert!(
            n < published,
            "{published} published, {n} delivered: nothing dropped"
        );
        assert!(
            kept.windows(2).all(|w| w[0] < w[1]),
            "what slow3 kept is delivered in order without duplicates"
        );
        assert!(drops >= 1, "{drops}");
        let drops = c.nodes[2].counter("cluster_slow_consumer_drops").await;
        eprintln!("flood: {published} published, {n} delivered, {drops} drops counted");

        // slow3 was not lost or fenced: still in the cluster, its callee still answers.
        let (mut caller, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        match call_served(
            &mut caller,
            "cl.slow.echo",
            Payload::new(Some(vec![7.into()]), None),
        )
        .await
        {
            Message::Result(r) => assert_eq!(r.payload.args, Some(vec!["slow3".into(), 7.into()])),
            other => panic!("expected RESULT from the callee on slow3, got {other:?}"),
        }
        let (mut p3, _) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        assert_eq!(
            seen_nodes(&mut p3).await.map(|v| v.len()),
            Some(3),
            "slow3 still sees the cluster"
        );
    })
    .await;
}
