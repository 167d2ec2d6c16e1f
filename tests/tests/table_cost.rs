//! Issue #13: one session fills the pattern tables (20,000 prefix subscriptions, 20,000
//! prefix and wildcard registrations) and then drops its connection. A healthy session's
//! round trips (a CALL and a PUBLISH) stay fast through both phases, and after the drop the
//! tables are empty again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use wamp_proto::message::{Call, Publish, Register, Subscribe, Yield};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri};
use wamp_tests::{RawPeer, TestRouter, WAIT};

const N: usize = 20_000;
/// Requests in flight at once (well under the router's outbound queue of 4096).
const BATCH: usize = 1_000;
/// The slowest round trip the healthy session may see (release; an unoptimised build gets
/// five times as long).
const MAX_ROUND_TRIP: Duration =
    Duration::from_millis(if cfg!(debug_assertions) { 1000 } else { 200 });

fn topic(i: usize) -> String {
    format!("com.abuse.topic{i}.")
}

fn procedure(i: usize) -> (String, &'static str) {
    if i < N / 2 {
        (format!("com.abuse.proc{i}."), "prefix")
    } else {
        (format!("com.abuse..w{i}"), "wildcard")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Fill,
    Cleanup,
    Done,
}

/// What the healthy session saw: round trips and the slowest one, per phase.
#[derive(Debug, Default)]
struct Seen {
    round_trips: [usize; 2],
    slowest: [Duration; 2],
}

/// Registers `com.healthy.echo`, subscribes `com.healthy.tick`, then calls and publishes to
/// itself until the phase is `Done`.
async fn healthy(
    url: String,
    ready: oneshot::Sender<()>,
    mut phase: watch::Receiver<Phase>,
) -> Seen {
    let (mut p, _) = RawPeer::join(&url, "realm1", Serializer::MsgPack).await;
    p.register("com.healthy.echo", Dict::new()).await;
    p.subscribe("com.healthy.tick", Dict::new()).await;
    let _ = ready.send(());
    let mut seen = Seen::default();
    loop {
        let now = *phase.borrow_and_update();
        let slot = match now {
            Phase::Fill => 0,
            Phase::Cleanup => 1,
            Phase::Done => return seen,
        };
        let start = Instant::now();
        let r = p.request();
        let call = Call {
            request: r,
            options: Dict::new(),
            procedure: Uri::new("com.healthy.echo"),
            payload: Payload::args(vec![1.into()]),
        };
        p.send(&call.into()).await;
        let Message::Invocation(inv) = p.recv().await else {
            panic!("expected INVOCATION")
        };
        let reply = Yield {
            request: inv.request,
            options: Dict::new(),
            payload: inv.payload,
        };
        p.send(&reply.into()).await;
        assert!(matches!(p.recv().await, Message::Result(m) if m.request == r));
        let publish = Publish {
            request: p.request(),
            options: dict([("exclude_me", false.into()), ("acknowledge", true.into())]),
            topic: Uri::new("com.healthy.tick"),
            payload: Payload::default(),
        };
        p.send(&publish.into()).await;
        for _ in 0..2 {
            let m = p.recv().await;
            assert!(
                matches!(m, Message::Event(_) | Message::Published(_)),
                "{m:?}"
            );
        }
        let took = start.elapsed();
        seen.round_trips[slot] += 1;
        seen.slowest[slot] = seen.slowest[slot].max(took);
    }
}

/// Sends `msgs` BATCH at a time, reading every reply; returns the replies in order.
async fn pipeline(p: &mut RawPeer, msgs: Vec<Message>) -> Vec<Message> {
    let mut replies = Vec::with_capacity(msgs.len());
    for chunk in msgs.chunks(BATCH) {
        for m in chunk {
            p.send(m).await;
        }
        for _ in chunk {
            replies.push(p.recv().await);
        }
    }
    replies
}

fn subscribes(p: &mut RawPeer) -> Vec<Message> {
    let options = dict([("match", "prefix".into())]);
    (0..N)
        .map(|i| {
            Subscribe {
                request: p.request(),
                options: options.clone(),
                topic: Uri::new(&topic(i)),
            }
            .into()
        })
        .collect()
}

fn registers(p: &mut RawPeer, which: &[usize]) -> Vec<Message> {
    which
        .iter()
        .map(|&i| {
            let (uri, policy) = procedure(i);
            Register {
                request: p.request(),
                options: dict([("match", policy.into())]),
                procedure: Uri::new(&uri),
            }
            .into()
        })
        .collect()
}

fn subscription_ids(replies: &[Message]) -> HashSet<Id> {
    replies
        .iter()
        .map(|m| match m {
            Message::Subscribed(s) => s.subscription,
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_and_its_cleanup_do_not_stall_others() {
    let router = TestRouter::start().await;
    let url = router.url().to_owned();
    let (phase_tx, phase) = watch::channel(Phase::Fill);
    let (ready_tx, ready) = oneshot::channel();
    let checker = tokio::spawn(healthy(url.clone(), ready_tx, phase));
    let body = async {
        ready.await.expect("the healthy session joined");
        let (mut abuser, _) = RawPeer::join(&url, "realm1", Serializer::MsgPack).await;
        let start = Instant::now();
        let msgs = subscribes(&mut abuser);
        let old_subs = subscription_ids(&pipeline(&mut abuser, msgs).await);
        assert_eq!(old_subs.len(), N, "distinct subscriptions");
        let subscribed = start.elapsed();
        eprintln!("subscribe {N}: {subscribed:?}");
        let all: Vec<usize> = (0..N).collect();
        let msgs = registers(&mut abuser, &all);
        for m in pipeline(&mut abuser, msgs).await {
            assert!(matches!(m, Message::Registered(_)), "{m:?}");
        }
        let registered = start.elapsed() - subscribed;
        eprintln!("register {N}: {registered:?}");

        // Drop the TCP connection; the router cleans up. A new session registers the same
        // procedures again, retrying those still taken, until every one succeeds.
        phase_tx.send_replace(Phase::Cleanup);
        drop(abuser);
        let dropped = Instant::now();
        let (mut next, _) = RawPeer::join(&url, "realm1", Serializer::Json).await;
        let mut pending = all;
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            let msgs = registers(&mut next, &pending);
            let replies = pipeline(&mut next, msgs).await;
            pending = pending
                .into_iter()
                .zip(replies)
                .filter_map(|(i, m)| match m {
                    Message::Registered(_) => None,
                    Message::Error(e) if e.error.as_str() == uris::PROCEDURE_ALREADY_EXISTS => {
                        Some(i)
                    }
                    other => panic!("expected REGISTERED, got {other:?}"),
                })
                .collect();
        }
        let cleaned = dropped.elapsed();
        // `Session::leave` removes the subscriptions before the registrations, so these are
        // gone too: the same prefixes give new subscriptions.
        let msgs = subscribes(&mut next);
        let new_subs = subscription_ids(&pipeline(&mut next, msgs).await);
        assert_eq!(new_subs.len(), N);
        assert!(new_subs.is_disjoint(&old_subs), "old subscriptions remain");
        phase_tx.send_replace(Phase::Done);
        eprintln!("cleanup after drop: {cleaned:?} ({rounds} rounds)");
    };
    tokio::time::timeout(6 * WAIT, body)
        .await
        .expect("the test finishes in time");
    let seen = tokio::time::timeout(WAIT, checker)
        .await
        .expect("the healthy session stops")
        .expect("the healthy session did not panic");
    eprintln!("healthy session: {seen:?}");
    for phase in 0..2 {
        assert!(seen.round_trips[phase] > 0, "{seen:?}");
        assert!(seen.slowest[phase] <= MAX_ROUND_TRIP, "{seen:?}");
    }
    router.shutdown().await;
}
