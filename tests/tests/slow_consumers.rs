//! Slow consumers are judged by progress, not by one full moment: a subscriber that reads,
//! even slowly, gets every event of a burst; one that reads nothing is closed once it made
//! no progress for the stall timeout; one that falls behind a sustained rate is closed at
//! its hard cap; and the router-wide cap closes the largest backlog first. Nobody else is
//! slowed down.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wamp_proto::message::Publish;
use wamp_proto::options::dict;
use wamp_proto::{Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{Closed, RawPeer, TestRouter, WAIT};

fn config(outbound: &str) -> String {
    config_with(outbound, "")
}

fn config_with(outbound: &str, realm: &str) -> String {
    format!(
        r#"
[router.outbound]
{outbound}

[[transport]]
bind = "127.0.0.1:0"

[[realm]]
name = "realm1"
{realm}
"#
    )
}

/// A session that reports every session leaving the realm (meta API), with when it left.
async fn leave_watcher(router: &TestRouter) -> mpsc::UnboundedReceiver<(Id, Instant)> {
    let (mut meta, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    meta.subscribe("wamp.session.on_leave", Dict::new()).await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Message::Event(ev)) = meta.next_message().await {
            let id = ev.payload.args.as_ref().and_then(|a| a.first()).cloned();
            if let Some(Value::UInt(id)) = id {
                let _ = tx.send((Id::new(id).expect("session id"), Instant::now()));
            }
        }
    });
    rx
}

async fn subscriber(router: &TestRouter, topics: &[&str]) -> (RawPeer, Id) {
    let (mut p, w) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    for t in topics {
        p.subscribe(t, Dict::new()).await;
    }
    (p, w.session)
}

fn event(request: Id, topic: &str, i: u64, blob: &Value) -> Message {
    Publish {
        request,
        options: Dict::new(),
        topic: Uri::new(topic),
        payload: Payload::args(vec![i.into(), blob.clone()]),
    }
    .into()
}

/// Reads `n` events in order, pausing `pause` after every 10 (a slow reader); returns how
/// the reading went: `Ok(n)` or how many arrived before the connection ended, and how;
/// and the peer (its session stays).
async fn read_events(p: RawPeer, n: u64, pause: Duration) -> (RawPeer, Result<u64, (u64, Closed)>) {
    let mut p = p;
    let got = read_into(&mut p, n, pause).await;
    (p, got)
}

async fn read_into(p: &mut RawPeer, n: u64, pause: Duration) -> Result<u64, (u64, Closed)> {
    for i in 0..n {
        match p.next_message().await {
            Ok(Message::Event(ev)) => assert_eq!(
                ev.payload.args.as_ref().expect("args")[0],
                Value::UInt(i),
                "in order, none lost"
            ),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(closed) => return Err((i, closed)),
        }
        if !pause.is_zero() && i % 10 == 9 {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(n)
}

/// The publisher is still served: an acknowledged PUBLISH gets PUBLISHED.
async fn still_served(publisher: &mut RawPeer) {
    let r = publisher.request();
    publisher
        .send(
            &Publish {
                request: r,
                options: dict([("acknowledge", true.into())]),
                topic: Uri::new("com.other"),
                payload: Payload::default(),
            }
            .into(),
        )
        .await;
    assert!(matches!(publisher.recv().await, Message::Published(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reaches_every_reader_and_only_the_stalled_one_is_closed() {
    // Soft bound 1 MiB, so the stalled subscriber's backlog (beyond what the socket
    // buffers hold) is over it; the default hard cap (128 MiB) is far away. The kernel
    // takes more bytes from a slowly read socket in bursts (a few hundred ms apart here):
    // the stall timeout must be longer than that.
    let stall = Duration::from_millis(3000);
    let router =
        TestRouter::with_config(&config("soft_bytes = 1048576\nstall_timeout_ms = 3000")).await;
    let mut left = leave_watcher(&router).await;
    let (stalled, stalled_id) = subscriber(&router, &["com.burst"]).await;
    let (fast, fast_id) = subscriber(&router, &["com.burst"]).await;
    let (slow, slow_id) = subscriber(&router, &["com.burst"]).await;
    let (mut publisher, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    const N: u64 = 20_000;
    let fast = tokio::spawn(read_events(fast, N, Duration::ZERO));
    // 10 events per millisecond at most: a tenth of what the publisher sends, or less.
    let slow = tokio::spawn(read_events(slow, N, Duration::from_millis(1)));
    let blob = Value::Bytes(vec![7u8; 1024]);
    let started = Instant::now();
    for i in 0..N {
        let r = publisher.request();
        publisher.send(&event(r, "com.burst", i, &blob)).await;
    }
    let published = started.elapsed();
    still_served(&mut publisher).await;
    // The stalled session is closed once it has written nothing for the stall timeout
    // (looked at four times per timeout: at most a quarter later), counted from when its
    // socket filled, which is before the burst ended.
    let (gone, at) = tokio::time::timeout(WAIT, left.recv())
        .await
        .expect("the stalled session is closed")
        .expect("watcher alive");
    assert_eq!(
        gone, stalled_id,
        "only the stalled session leaves; fast {fast_id} slow {slow_id}"
    );
    assert!(
        at.duration_since(started) < published + stall * 5 / 4 + Duration::from_secs(2),
        "closed {:?} after the burst began (the burst took {published:?})",
        at.duration_since(started)
    );
    let (_fast, fast_got) = fast.await.unwrap();
    assert_eq!(fast_got, Ok(N), "the full-speed reader gets everything");
    let (_slow, slow_got) = slow.await.unwrap();
    assert_eq!(slow_got, Ok(N), "the slow reader gets everything");
    assert!(left.try_recv().is_err(), "nobody else left");
    // What reached the stalled session before its close, and then the close.
    let mut stalled = stalled;
    let (events, closed) = stalled.until_closed().await;
    assert!(
        (events.len() as u64) < N,
        "it cannot have been sent everything"
    );
    assert!(
        matches!(closed, Closed::CloseFrame(Some(1008)) | Closed::Dropped),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sustained_overload_the_slow_reader_is_closed_at_its_cap() {
    // A small hard cap (2 MiB) stands in for a long overload; the stall timeout is long,
    // so only the cap can close anyone here.
    let router = TestRouter::with_config(&config(
        "soft_bytes = 1048576\nmax_bytes = 2097152\nstall_timeout_ms = 60000",
    ))
    .await;
    let mut left = leave_watcher(&router).await;
    let (fast, _) = subscriber(&router, &["com.flood"]).await;
    let (slow, slow_id) = subscriber(&router, &["com.flood"]).await;
    let (mut publisher, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    const N: u64 = 40_000;
    let fast = tokio::spawn(read_events(fast, N, Duration::ZERO));
    let slow = tokio::spawn(read_events(slow, N, Duration::from_millis(10)));
    let blob = Value::Bytes(vec![1u8; 1024]);
    for i in 0..N {
        let r = publisher.request();
        publisher.send(&event(r, "com.flood", i, &blob)).await;
    }
    still_served(&mut publisher).await;
    let (gone, _) = tokio::time::timeout(WAIT, left.recv())
        .await
        .expect("the slow reader is closed")
        .expect("watcher alive");
    assert_eq!(gone, slow_id);
    let (_fast, fast_got) = fast.await.unwrap();
    assert_eq!(fast_got, Ok(N), "the full-speed reader is unharmed");
    match slow.await.unwrap().1 {
        Err((got, closed)) => {
            assert!(got < N, "{got}");
            assert!(
                matches!(closed, Closed::CloseFrame(Some(1008)) | Closed::Dropped),
                "{closed:?}"
            );
        }
        Ok(n) => panic!("the slow reader got all {n} events although it was closed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_wide_cap_closes_the_largest_backlog_first() {
    // Two subscribers that never read: `big` gets every event of two topics, `small` one
    // topic's. Per session nothing is near a cap; together they reach the router's 16 MiB.
    let router = TestRouter::with_config(&config(
        "soft_bytes = 1048576\nstall_timeout_ms = 60000\ntotal_max_bytes = 16777216",
    ))
    .await;
    let mut left = leave_watcher(&router).await;
    let (mut big, big_id) = subscriber(&router, &["com.a", "com.b"]).await;
    let (mut small, _) = subscriber(&router, &["com.a"]).await;
    let (mut publisher, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let blob = Value::Bytes(vec![2u8; 16 * 1024]);
    // Publish until someone is closed (at most 100 MiB per topic).
    let mut gone = None;
    for i in 0..6400u64 {
        for topic in ["com.a", "com.b"] {
            let r = publisher.request();
            publisher.send(&event(r, topic, i, &blob)).await;
        }
        if let Ok(g) = left.try_recv() {
            gone = Some(g.0);
            break;
        }
    }
    let gone = match gone {
        Some(g) => g,
        None => {
            tokio::time::timeout(WAIT, left.recv())
                .await
                .expect("the router-wide cap closes a session")
                .expect("watcher alive")
                .0
        }
    };
    assert_eq!(gone, big_id, "the largest backlog goes first");
    let (_, closed) = big.until_closed().await;
    assert!(
        matches!(closed, Closed::CloseFrame(Some(1008)) | Closed::Dropped),
        "{closed:?}"
    );
    still_served(&mut publisher).await;
    // The smaller one is still there: past its backlog, it is answered as usual.
    let r = small.request();
    small
        .send(
            &wamp_proto::message::Subscribe {
                request: r,
                options: Dict::new(),
                topic: Uri::new("com.probe"),
            }
            .into(),
        )
        .await;
    loop {
        match small.recv().await {
            Message::Event(_) => {}
            Message::Subscribed(s) => {
                assert_eq!(s.request, r);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(left.try_recv().is_err(), "only the largest was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_publishers_holds_the_publisher_instead_of_dropping_a_slow_reader() {
    // A 20 MiB burst against a 4 MiB hard cap: without pausing, the slow reader would be
    // closed at its cap (as above). With `pause_publishers` the router stops reading the
    // publisher while a subscriber is over its 1 MiB soft bound, so the slow reader gets
    // everything; the stalled one is closed after the stall timeout, and then the
    // publisher goes on.
    let router = TestRouter::with_config(&config_with(
        "soft_bytes = 1048576\nmax_bytes = 4194304\nstall_timeout_ms = 3000",
        "pause_publishers = true",
    ))
    .await;
    let mut left = leave_watcher(&router).await;
    let (stalled, stalled_id) = subscriber(&router, &["com.burst"]).await;
    let (fast, _) = subscriber(&router, &["com.burst"]).await;
    let (slow, _) = subscriber(&router, &["com.burst"]).await;
    let (mut publisher, _) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    const N: u64 = 20_000;
    let fast = tokio::spawn(read_events(fast, N, Duration::ZERO));
    let slow = tokio::spawn(read_events(slow, N, Duration::from_millis(1)));
    let blob = Value::Bytes(vec![3u8; 1024]);
    for i in 0..N {
        let r = publisher.request();
        publisher.send(&event(r, "com.burst", i, &blob)).await;
    }
    still_served(&mut publisher).await;
    let (_fast, fast_got) = fast.await.unwrap();
    assert_eq!(fast_got, Ok(N), "the full-speed reader gets everything");
    let (_slow, slow_got) = slow.await.unwrap();
    assert_eq!(
        slow_got,
        Ok(N),
        "the slow reader gets everything, under its cap"
    );
    let (gone, _) = tokio::time::timeout(WAIT, left.recv())
        .await
        .expect("the stalled session is closed")
        .expect("watcher alive");
    assert_eq!(gone, stalled_id, "only the stalled session leaves");
    assert!(left.try_recv().is_err(), "nobody else left");
    drop(stalled);
}
