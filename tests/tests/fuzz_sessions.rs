//! A protocol fuzz test over real sockets: sessions over WebSocket and RawSocket, in every
//! serializer, send random and mutated message sequences (every message type, wrong types and
//! arities, huge numbers, deep nesting, long URIs, out-of-state and router-only messages,
//! unknown request ids, random options). The router must answer every request that needs an
//! answer, abort on every protocol violation, never panic, and meanwhile keep serving a
//! well-behaved caller, whose call every 100 ms must come back within [`LATENCY_BOUND`].
//! Afterwards no session, subscription, registration, call or task is left behind.
//!
//! Seeded: the seed is printed; `FUZZ_SEED=<n>` replays it, `FUZZ_SECS=<n>` runs longer.
//! One test in this binary: it counts every panic of the process.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::message::{Goodbye, Yield};
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::fuzz::{self, encode_value, Expect, Rng};
use wamp_tests::rawsocket::{RsPeer, MESSAGE};
use wamp_tests::{RawPeer, TestRouter};

/// How long the fuzzers run by default.
const SECS: u64 = 8;
/// Fuzzing sessions at once.
const WORKERS: usize = 6;
/// The longest a well-behaved call may take while the fuzzers run (a debug build on 2 busy
/// cores; typically a few ms).
const LATENCY_BOUND: Duration = Duration::from_millis(1500);

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// A connection of either transport, sending raw frames.
enum Conn {
    Ws(Box<RawPeer>),
    Rs(RsPeer),
}

impl Conn {
    async fn open(urls: &[String], rng: &mut Rng, ser: Serializer) -> Conn {
        if rng.chance(50) {
            Conn::Ws(Box::new(RawPeer::connect(&urls[0], ser).await))
        } else {
            Conn::Rs(RsPeer::open(&urls[1], ser).await)
        }
    }

    fn serializer(&self) -> Serializer {
        match self {
            Conn::Ws(p) => p.serializer,
            Conn::Rs(p) => p.serializer,
        }
    }

    /// Sends one frame; false once the router has closed.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        match self {
            Conn::Ws(p) if p.serializer.is_binary() => {
                p.try_send_frame(WsMessage::Binary(bytes.to_vec().into()))
                    .await
            }
            Conn::Ws(p) => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                p.try_send_frame(WsMessage::Text(text.into())).await
            }
            Conn::Rs(p) => p.try_send_frame(MESSAGE, bytes).await,
        }
    }

    async fn send_msg(&mut self, msg: &Message) -> bool {
        let bytes = self.serializer().encode(msg).expect("encodes");
        self.send(bytes.as_bytes()).await
    }

    /// The next message, or `None` once the connection has ended (bounded by `WAIT`).
    async fn recv(&mut self) -> Option<Message> {
        match self {
            Conn::Ws(p) => p.try_recv().await.ok(),
            Conn::Rs(p) => loop {
                match p.try_recv_frame().await {
                    Ok((MESSAGE, b)) => {
                        return Some(
                            p.serializer
                                .decode(&b)
                                .expect("router sent a valid message"),
                        )
                    }
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            },
        }
    }
}

/// The (type, request) a message answers, if it answers a request.
fn answers(m: &Message) -> Option<(u64, u64)> {
    Some(match m {
        Message::Result(r) => (48, r.request.get()),
        Message::Subscribed(s) => (32, s.request.get()),
        Message::Unsubscribed(u) if u.request != 0 => (34, u.request),
        Message::Registered(r) => (64, r.request.get()),
        Message::Unregistered(u) if u.request != 0 => (66, u.request),
        Message::Published(p) => (16, p.request.get()),
        Message::Error(e) => (e.request_type, e.request.get()),
        _ => return None,
    })
}

/// Totals over all fuzzing sessions.
#[derive(Default)]
struct Counts {
    sessions: AtomicUsize,
    messages: AtomicUsize,
    answered: AtomicUsize,
    aborted: AtomicUsize,
}

/// Sends `batch` and checks the router's reaction; false once the session has ended.
async fn run_batch(c: &mut Conn, batch: &[(Vec<u8>, Expect)], counts: &Counts) -> bool {
    let mut outstanding: HashSet<(u64, u64)> = HashSet::new();
    let violation = batch.iter().any(|(_, e)| *e == Expect::Violation);
    let maybe = batch.iter().any(|(_, e)| matches!(e, Expect::Maybe(_)));
    for (bytes, expect) in batch {
        counts.messages.fetch_add(1, Ordering::Relaxed);
        match expect {
            Expect::Answer(t, r) | Expect::Maybe(Some((t, r))) => {
                outstanding.insert((*t, *r));
            }
            _ => {}
        }
        if !c.send(bytes).await {
            break;
        }
    }
    loop {
        if !violation && outstanding.is_empty() {
            return true;
        }
        match c.recv().await {
            Some(Message::Abort(a)) => {
                assert_eq!(a.reason.as_str(), uris::PROTOCOL_VIOLATION, "{a:?}");
                assert!(violation || maybe, "a clean batch was aborted: {a:?}");
                counts.aborted.fetch_add(1, Ordering::Relaxed);
                while c.recv().await.is_some() {}
                return false;
            }
            Some(Message::Invocation(inv)) => {
                let answer = Yield {
                    request: inv.request,
                    options: Dict::new(),
                    payload: Payload::default(),
                };
                c.send_msg(&answer.into()).await;
            }
            Some(m) => {
                if answers(&m).is_some_and(|a| outstanding.remove(&a)) {
                    counts.answered.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                // Closed without the ABORT reaching us: only after a message that may abort
                // (later frames of ours may have reset the connection first).
                assert!(
                    maybe || violation,
                    "the router closed a clean session; unanswered {outstanding:?}"
                );
                return false;
            }
        }
    }
}

/// One fuzzing session: connect, maybe join, a few batches, leave one way or another.
async fn fuzz_session(urls: Arc<Vec<String>>, seed: u64, counts: Arc<Counts>) {
    let mut rng = Rng::new(seed);
    let ser = *rng.pick(&Serializer::ALL);
    let mut c = Conn::open(&urls, &mut rng, ser).await;
    counts.sessions.fetch_add(1, Ordering::Relaxed);
    let encode = |v: &Value| encode_value(ser, v).expect("the fuzzer's values encode");
    if rng.chance(10) {
        let (m, e) = fuzz::before_hello(&mut rng);
        run_batch(&mut c, &[(encode(&m), e)], &counts).await;
        return;
    }
    if !c.send_msg(&wamp_tests::hello("realm1")).await {
        return;
    }
    assert!(matches!(c.recv().await, Some(Message::Welcome(_))));
    let own = format!("fuzz.own.{seed}");
    let mut next = 0u64;
    for _ in 0..1 + rng.below(4) {
        let mut batch = Vec::new();
        for _ in 0..1 + rng.below(12) {
            let (m, e) = if rng.chance(4) {
                next += 1;
                fuzz::violation(&mut rng, next)
            } else {
                fuzz::joined_message(&mut rng, &mut next, &own)
            };
            if rng.chance(8) {
                batch.push((fuzz::mutate(&mut rng, &encode(&m)), Expect::Maybe(None)));
                continue;
            }
            batch.push((encode(&m), e));
            if e == Expect::Violation {
                break; // nothing after it: unread frames would reset the connection
            }
        }
        if batch.last().is_some_and(|(_, e)| *e != Expect::Violation) {
            // A last request, so that the batch ends with something to wait for.
            next += 1;
            let sentinel = Value::List(vec![
                Value::UInt(32),
                Value::UInt(next),
                Value::Dict(Dict::new()),
                Value::Str("fuzz.sentinel".into()),
            ]);
            batch.push((encode(&sentinel), Expect::Answer(32, next)));
        }
        if !run_batch(&mut c, &batch, &counts).await {
            return;
        }
    }
    if rng.chance(50) {
        let bye = Goodbye {
            details: Dict::new(),
            reason: Uri::new(uris::CLOSE_REALM),
        };
        if c.send_msg(&bye.into()).await {
            loop {
                match c.recv().await {
                    Some(Message::Goodbye(_)) | None => break,
                    Some(_) => continue,
                }
            }
        }
    }
}

/// The well-behaved pair, joined: a callee that registered `fuzz.echo` (before any fuzzer
/// can take the name), and a caller.
async fn well_behaved_pair(url: &str) -> (RawPeer, RawPeer) {
    let (mut callee, _) = RawPeer::join(url, "realm1", Serializer::MsgPack).await;
    callee.register("fuzz.echo", Dict::new()).await;
    let (caller, _) = RawPeer::join(url, "realm1", Serializer::Json).await;
    (callee, caller)
}

/// The callee echoes `fuzz.echo` while the caller calls it every 100 ms, until `stop`.
async fn well_behaved(
    (mut callee, mut caller): (RawPeer, RawPeer),
    stop: Arc<AtomicBool>,
) -> (usize, Duration) {
    let stop_callee = stop.clone();
    let echo = tokio::spawn(async move {
        while !stop_callee.load(Ordering::Relaxed) {
            let next = tokio::time::timeout(Duration::from_millis(200), callee.try_recv()).await;
            match next {
                Ok(Ok(Message::Invocation(inv))) => {
                    let answer = Yield {
                        request: inv.request,
                        options: Dict::new(),
                        payload: inv.payload,
                    };
                    callee.send(&answer.into()).await;
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(closed)) => panic!("the well-behaved callee was closed: {closed:?}"),
            }
        }
        callee
    });
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let (mut calls, mut worst) = (0, Duration::ZERO);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let started = Instant::now();
        let request = caller
            .send_call("fuzz.echo", Payload::args(vec![Value::UInt(calls as u64)]))
            .await;
        match caller.recv().await {
            Message::Result(r) if r.request == request => {}
            other => panic!("the well-behaved call failed: {other:?}"),
        }
        let took = started.elapsed();
        assert!(took < LATENCY_BOUND, "a well-behaved call took {took:?}");
        worst = worst.max(took);
        calls += 1;
    }
    let callee = echo.await.expect("the echo task");
    drop((caller, callee));
    (calls, worst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_sessions_never_break_the_router() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        previous(info);
    }));
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<u64>().ok());
    let seed = env("FUZZ_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        t.map_or(1, |d| d.as_nanos() as u64)
    });
    println!("fuzz_sessions: FUZZ_SEED={seed}");
    let secs = env("FUZZ_SECS").unwrap_or(SECS);
    let router = TestRouter::with_config(wamp_tests::BOTH_TRANSPORTS_CONFIG).await;
    let base = router.server().table_sizes();
    let urls = Arc::new(router.server().urls().to_vec());
    let stop = Arc::new(AtomicBool::new(false));
    let pair = well_behaved_pair(&urls[0]).await;
    let probe = tokio::spawn(well_behaved(pair, stop.clone()));
    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seeds = Rng::new(seed);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (urls, counts) = (urls.clone(), counts.clone());
        let first = seeds.next_u64();
        workers.spawn(async move {
            let mut rng = Rng::new(first);
            while Instant::now() < deadline {
                let seed = rng.next_u64();
                fuzz_session(urls.clone(), seed, counts.clone()).await;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap_or_else(|e| panic!("FUZZ_SEED={seed}: a fuzzing session failed: {e}"));
    }
    stop.store(true, Ordering::Relaxed);
    let (calls, worst) = probe
        .await
        .unwrap_or_else(|e| panic!("FUZZ_SEED={seed}: the well-behaved pair failed: {e}"));
    println!(
        "fuzz_sessions: {} sessions, {} messages, {} requests answered, {} aborted; \
         {calls} well-behaved calls, the slowest {worst:?}",
        counts.sessions.load(Ordering::Relaxed),
        counts.messages.load(Ordering::Relaxed),
        counts.answered.load(Ordering::Relaxed),
        counts.aborted.load(Ordering::Relaxed),
    );
    assert!(calls as u64 >= secs * 5, "only {calls} well-behaved calls");
    assert!(
        counts.aborted.load(Ordering::Relaxed) > 0,
        "no violation was tried"
    );
    assert!(
        counts.answered.load(Ordering::Relaxed) > 0,
        "no request was answered"
    );
    // Nothing left behind: sessions, subscriptions, registrations, calls, timers.
    let deadline = Instant::now() + wamp_tests::WAIT;
    loop {
        let t = router.server().table_sizes();
        if t == base {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "FUZZ_SEED={seed}: left behind {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        PANICS.load(Ordering::Relaxed),
        0,
        "FUZZ_SEED={seed}: something panicked"
    );
}
