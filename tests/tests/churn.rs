//! No leaks: thousands of sessions join, register, subscribe, publish to and call each other
//! and leave, half with GOODBYE and half by dropping the TCP connection, a quarter of the
//! pairs with a call in flight (the callee or the caller gone before the answer, a call
//! timeout armed). Afterwards every table is empty (sessions, ids, subscriptions,
//! registrations, calls, timers, connections, session states), the router's tasks are back to
//! their count before the churn, and the meta API agrees.
//!
//! `CHURN_PAIRS=10000 cargo test --release -p wamp-tests --test churn -- --nocapture` runs a
//! large churn and prints the process's RSS before and after (the router runs in-process).
//!
//! One test in this binary: `session_states` counts every router of the process.

use std::time::Instant;

use wamp_proto::message::{Call, Goodbye, Publish};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Uri, Value};
use wamp_router::TableSizes;
use wamp_tests::rawsocket::eventually;
use wamp_tests::{RawPeer, TestRouter};

/// Pairs (two sessions each) by default: about 3 s in a debug build on 2 cores.
const PAIRS: usize = 1000;
/// Pairs running at once.
const CONCURRENT: usize = 50;

/// How a pair ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Both say GOODBYE.
    Goodbye,
    /// Both drop their TCP connection.
    Drop,
    /// A call is in flight when the callee drops; the caller gets an ERROR, says GOODBYE.
    CalleeGone,
    /// A call is in flight when the caller drops; the callee says GOODBYE.
    CallerGone,
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Says GOODBYE, waits for the reply and closes the connection (the client's job).
async fn goodbye(mut p: RawPeer) {
    p.send(
        &Goodbye {
            details: Dict::new(),
            reason: Uri::new(uris::CLOSE_REALM),
        }
        .into(),
    )
    .await;
    loop {
        match p.recv().await {
            Message::Goodbye(_) => return,
            // A callee may still get the INTERRUPT of a call whose caller left.
            Message::Interrupt(_) => continue,
            other => panic!("expected the GOODBYE reply, got {other:?}"),
        }
    }
}

/// A CALL of `procedure` with a 60 s timeout (a timer armed while it is in flight).
fn timed_call(p: &mut RawPeer, procedure: &str) -> Message {
    Call {
        request: p.request(),
        options: dict([("timeout", Value::UInt(60_000))]),
        procedure: Uri::new(procedure),
        payload: Payload::args(vec![Value::UInt(1)]),
    }
    .into()
}

async fn pair(url: String, i: usize) {
    let ser = Serializer::ALL[i % Serializer::ALL.len()];
    let procedure = format!("churn.p.{i}");
    let topic = format!("churn.t.{i}");
    let (mut callee, _) = RawPeer::join(&url, "realm1", ser).await;
    callee.register(&procedure, Dict::new()).await;
    let (mut caller, _) = RawPeer::join(&url, "realm1", Serializer::ALL[(i + 1) % 3]).await;
    caller.subscribe(&topic, Dict::new()).await;
    let publish = Publish {
        request: callee.request(),
        options: Dict::new(),
        topic: Uri::new(&topic),
        payload: Payload::args(vec![Value::UInt(i as u64)]),
    };
    callee.send(&publish.into()).await;
    assert!(matches!(caller.recv().await, Message::Event(_)));
    // One answered call.
    let request = caller
        .send_call(&procedure, Payload::args(vec![Value::UInt(2)]))
        .await;
    callee
        .answer_invocation(Payload::args(vec![Value::UInt(3)]))
        .await;
    assert!(matches!(caller.recv().await, Message::Result(r) if r.request == request));
    match [
        Ending::Goodbye,
        Ending::Drop,
        Ending::CalleeGone,
        Ending::CallerGone,
    ][i % 4]
    {
        Ending::Goodbye => {
            goodbye(caller).await;
            goodbye(callee).await;
        }
        Ending::Drop => {
            drop(caller);
            drop(callee);
        }
        Ending::CalleeGone => {
            let call = timed_call(&mut caller, &procedure);
            caller.send(&call).await;
            assert!(matches!(callee.recv().await, Message::Invocation(_)));
            drop(callee);
            match caller.recv().await {
                Message::Error(e) => assert_eq!(e.error.as_str(), uris::CANCELED),
                other => panic!("expected ERROR canceled, got {other:?}"),
            }
            goodbye(caller).await;
        }
        Ending::CallerGone => {
            let call = timed_call(&mut caller, &procedure);
            caller.send(&call).await;
            assert!(matches!(callee.recv().await, Message::Invocation(_)));
            drop(caller);
            goodbye(callee).await;
        }
    }
}

/// Waits (bounded) until the tables are as they were before any client came (`base`: one
/// session state, the router's internal caller; the listeners' tasks); panics with the
/// sizes left otherwise.
async fn until_empty(router: &TestRouter, base: &TableSizes) {
    let deadline = Instant::now() + wamp_tests::WAIT;
    loop {
        let t = router.server().table_sizes();
        if t == *base {
            return;
        }
        assert!(Instant::now() < deadline, "tables not empty: {t:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn meta(p: &mut RawPeer, procedure: &str) -> Value {
    let request = p.send_call(procedure, Payload::default()).await;
    match p.recv().await {
        Message::Result(mut r) if r.request == request => {
            r.payload.materialize().expect("payload");
            r.payload
                .args
                .and_then(|a| a.into_iter().next())
                .unwrap_or(Value::Null)
        }
        other => panic!("{procedure}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_every_table_empty() {
    let pairs: usize = std::env::var("CHURN_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(PAIRS);
    let router = TestRouter::start().await;
    let url = router.url().to_owned();
    let base = router.server().table_sizes();
    assert_eq!(
        base,
        TableSizes {
            session_states: 1,
            connections: base.connections,
            ..TableSizes::default()
        }
    );
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let rss_before = rss_kib();
    // More than one round (`CHURN_ROUNDS`) shows whether memory keeps growing.
    let rounds: usize = std::env::var("CHURN_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for round in 1..=rounds {
        let started = Instant::now();
        let mut running = tokio::task::JoinSet::new();
        for i in 0..pairs {
            if running.len() >= CONCURRENT {
                if let Some(r) = running.join_next().await {
                    r.expect("a pair failed");
                }
            }
            running.spawn(pair(url.clone(), i));
        }
        while let Some(r) = running.join_next().await {
            r.expect("a pair failed");
        }
        let churned = started.elapsed();
        until_empty(&router, &base).await;
        eventually("the router's tasks are back to their count", || {
            metrics.num_alive_tasks() <= tasks_before
        })
        .await;
        println!(
            "churn round {round}: {} sessions in {:.1} s; RSS before {:?} KiB, now {:?} KiB",
            pairs * 2,
            churned.as_secs_f64(),
            rss_before,
            rss_kib(),
        );
    }
    // The meta API says the same, over a real socket.
    let (mut p, _) = RawPeer::join(&url, "realm1", Serializer::Json).await;
    assert_eq!(meta(&mut p, "wamp.session.count").await, Value::UInt(1));
    for list in ["wamp.registration.list", "wamp.subscription.list"] {
        let Value::Dict(by_policy) = meta(&mut p, list).await else {
            panic!("{list} answers a dict")
        };
        for (policy, ids) in by_policy {
            assert_eq!(ids, Value::List(vec![]), "{list} {policy}");
        }
    }
    drop(p);
    until_empty(&router, &base).await;
}
