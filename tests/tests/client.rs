//! The `wamp-client` API against the real router over real sockets: every Basic Profile
//! behaviour a Rust service relies on, from the service's point of view.
//!
//! Every wait is bounded ([`WAIT`], or [`AT_ONCE`] where the answer must not wait for any
//! timeout); nothing sleeps to synchronise.

use std::future::{pending, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;
use wamp_client::{
    uris, CallError, CallResult, Client, CloseKind, ConnectError, Invocation, LeaveError,
    PublishError, ReconnectPolicy, RegisterError, Registration, Serializer, SubscribeError, Value,
};
use wamp_tests::{TestRouter, WAIT};

pub(crate) const REALM: &str = "realm1";

/// Bound for an answer that must come at once (it depends on no timeout of the router or the
/// client), generous for a loaded machine.
pub(crate) const AT_ONCE: Duration = Duration::from_secs(3);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

pub(crate) async fn connect(url: &str, serializer: Serializer) -> Client {
    let c = within(
        "connect",
        // These tests see sessions end: no reconnecting (tests/tests/client_reconnect.rs).
        Client::builder(url)
            .realm(REALM)
            .serializer(serializer)
            .reconnect(ReconnectPolicy::never())
            .connect(),
    )
    .await
    .expect("client joins");
    assert_eq!(c.serializer(), serializer);
    c
}

pub(crate) async fn leave(c: Client) {
    let r = within("leave", c.leave()).await.expect("leave succeeds");
    assert_eq!(r.kind, CloseKind::Left, "{r:?}");
    assert_eq!(r.reason, uris::CLOSE_GOODBYE_AND_OUT, "{r:?}");
}

/// The URI of an application error (panics on other errors).
pub(crate) fn app_uri(e: &CallError) -> &str {
    match e {
        CallError::Application { uri, .. } => uri,
        other => panic!("expected an application error, got {other:?}"),
    }
}

/// Registers `procedure` with a handler that reports each invocation on the returned
/// channel and never answers.
pub(crate) async fn register_hanging(
    callee: &Client,
    procedure: &str,
) -> (Registration, mpsc::UnboundedReceiver<Invocation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let reg = within(
        "register",
        callee.register(procedure, move |inv: Invocation| {
            let _ = tx.send(inv);
            async move {
                pending::<()>().await;
                Ok::<_, CallError>(())
            }
        }),
    )
    .await
    .expect("register the hanging procedure");
    (reg, rx)
}

/// Registers an echo procedure (args and kwargs back unchanged).
pub(crate) async fn register_echo(callee: &Client, procedure: &str) -> Registration {
    within(
        "register",
        callee.register(procedure, |inv: Invocation| async move {
            Ok::<_, CallError>(
                CallResult::new()
                    .with_args(inv.args)
                    .with_kwargs(inv.kwargs),
            )
        }),
    )
    .await
    .expect("register echo")
}

/// Starts a call from `caller` to the hanging `procedure` and waits until the callee has
/// the invocation.
pub(crate) async fn pending_call(
    caller: &Client,
    procedure: &str,
    invoked: &mut mpsc::UnboundedReceiver<Invocation>,
) -> tokio::task::JoinHandle<Result<CallResult, CallError>> {
    let call = tokio::spawn(caller.call(procedure).arg("pending").into_future());
    let inv = within("invocation", invoked.recv())
        .await
        .expect("the callee got the invocation");
    assert_eq!(inv.args, vec![Value::from("pending")]);
    call
}

// --- joining ----------------------------------------------------------------------------

#[tokio::test]
async fn connect_json_msgpack_and_default() {
    let router = TestRouter::start().await;
    let json = connect(router.url(), Serializer::Json).await;
    let msgpack = connect(router.url(), Serializer::MsgPack).await;
    // The default offers msgpack first, and the router takes the client's first choice.
    let default = within("connect", Client::connect(router.url(), REALM))
        .await
        .expect("default client joins");
    assert_eq!(default.serializer(), Serializer::MsgPack);
    let prefers_json = within(
        "connect",
        Client::builder(router.url())
            .realm(REALM)
            .serializers([Serializer::Json, Serializer::MsgPack])
            .connect(),
    )
    .await
    .expect("client joins");
    assert_eq!(prefers_json.serializer(), Serializer::Json);

    let clients = [&json, &msgpack, &default, &prefers_json];
    let mut ids: Vec<u64> = clients.iter().map(|c| c.session_id().get()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "distinct session ids");
    for c in clients {
        assert_eq!(c.realm(), REALM);
        assert!(!c.is_closed());
        assert_eq!(c.close_reason(), None);
        let roles = c.welcome_details()["roles"]
            .as_dict()
            .expect("WELCOME.Details.roles is a dict");
        assert!(
            roles.contains_key("broker") && roles.contains_key("dealer"),
            "{roles:?}"
        );
    }
    assert_eq!(router.server().session_count(), 4);

    // They all talk to each other: a JSON callee, called over msgpack and both defaults.
    let _echo = register_echo(&json, "com.example.echo").await;
    for c in [&msgpack, &default, &prefers_json] {
        let r = within(
            "call",
            c.call("com.example.echo").arg(Value::Bytes(vec![0, 255])),
        )
        .await
        .expect("echo");
        assert_eq!(r.args, vec![Value::Bytes(vec![0, 255])]);
    }
    for c in [json, msgpack, default, prefers_json] {
        leave(c).await;
    }
}

#[tokio::test]
async fn default_client_falls_back_to_json() {
    let router = TestRouter::with_config(
        r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json"]

[[realm]]
name = "realm1"
"#,
    )
    .await;
    let c = within("connect", Client::connect(router.url(), REALM))
        .await
        .expect("joins with json");
    assert_eq!(c.serializer(), Serializer::Json);
    // Offering only msgpack to a JSON-only router is refused before any WAMP.
    let e = within(
        "connect",
        Client::builder(router.url())
            .realm(REALM)
            .serializer(Serializer::MsgPack)
            .connect(),
    )
    .await
    .expect_err("no common serializer");
    assert!(
        matches!(
            e,
            ConnectError::NoSerializer { .. } | ConnectError::WebSocket(_)
        ),
        "{e:?}"
    );
    leave(c).await;
}

#[tokio::test]
async fn abort_no_such_realm_is_a_connect_error() {
    let router = TestRouter::start().await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let e = within(
            "connect",
            Client::builder(router.url())
                .realm("com.example.no_such_realm")
                .serializer(ser)
                .connect(),
        )
        .await
        .expect_err("the realm does not exist");
        match e {
            ConnectError::Aborted { reason, .. } => assert_eq!(reason, uris::NO_SUCH_REALM),
            other => panic!("expected ConnectError::Aborted, got {other:?}"),
        }
    }
    assert_eq!(router.server().session_count(), 0);
}

// --- invalid URIs -----------------------------------------------------------------------

#[tokio::test]
async fn invalid_uris_are_rejected() {
    let router = TestRouter::start().await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let c = connect(router.url(), ser).await;
        let e = within("publish", c.publish("com..x").arg(1).acknowledge())
            .await
            .expect_err("empty URI component");
        match e {
            PublishError::Rejected(r) => assert_eq!(r.uri, uris::INVALID_URI, "{r:?}"),
            other => panic!("expected PublishError::Rejected, got {other:?}"),
        }
        let e = within(
            "register",
            c.register("wamp.x", |_inv: Invocation| async move {
                Ok::<_, CallError>(())
            }),
        )
        .await
        .expect_err("the wamp. prefix is reserved");
        match e {
            RegisterError::Rejected(r) => assert_eq!(r.uri, uris::INVALID_URI, "{r:?}"),
            other => panic!("expected RegisterError::Rejected, got {other:?}"),
        }
        let e = within(
            "register",
            c.register("com..x", |_inv: Invocation| async move {
                Ok::<_, CallError>(())
            }),
        )
        .await
        .expect_err("empty URI component");
        assert!(
            matches!(&e, RegisterError::Rejected(r) if r.uri == uris::INVALID_URI),
            "{e:?}"
        );
        let e = within("subscribe", c.subscribe("com..x"))
            .await
            .expect_err("empty URI component");
        assert!(
            matches!(&e, SubscribeError::Rejected(r) if r.uri == uris::INVALID_URI),
            "{e:?}"
        );
        let e = within("call", c.call("com..x"))
            .await
            .expect_err("empty URI component");
        assert_eq!(app_uri(&e), uris::INVALID_URI, "{e:?}");

        // None of that harmed the session.
        let _echo = register_echo(&c, "com.example.fine").await;
        let r = within("call", c.call("com.example.fine").arg("ok"))
            .await
            .expect("still works");
        assert_eq!(r.args, vec![Value::from("ok")]);
        leave(c).await;
    }
}

/// A handler may use its own client (nested calls, publications) while many invocations are
/// in flight: the connection task must keep reading while handlers wait on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_call_back_through_their_own_client() {
    const CALLS: u64 = 2_000;
    let router = TestRouter::start().await;
    let service = connect(router.url(), Serializer::MsgPack).await;
    let _inner = within(
        "register",
        service.register("com.example.inner", |inv: Invocation| async move {
            let x: u64 = inv.decode()?;
            Ok::<_, CallError>(Value::from(x * 2))
        }),
    )
    .await
    .expect("register inner");
    let me = service.clone();
    let _outer = within(
        "register",
        service.register("com.example.outer", move |inv: Invocation| {
            let me = me.clone();
            async move {
                let x: u64 = inv.decode()?;
                let doubled: u64 = me.call("com.example.inner").arg(x).result().await?;
                me.publish("com.example.progress")
                    .arg(x)
                    .await
                    .map_err(CallError::runtime)?;
                Ok::<_, CallError>(Value::from(doubled + 1))
            }
        }),
    )
    .await
    .expect("register outer");

    let caller = connect(router.url(), Serializer::Json).await;
    let mut progress = within(
        "subscribe",
        caller
            .subscribe("com.example.progress")
            .buffer(CALLS as usize),
    )
    .await
    .expect("subscribe");
    let calls = (0..CALLS).map(|i| {
        caller
            .call("com.example.outer")
            .arg(i)
            .result::<u64>()
            .into_future()
    });
    let results = timeout(Duration::from_secs(60), join_all(calls))
        .await
        .expect("all nested calls answered within 60 s");
    for (i, r) in (0..CALLS).zip(results) {
        assert_eq!(r.unwrap_or_else(|e| panic!("call {i}: {e:?}")), 2 * i + 1);
    }
    let mut seen = vec![false; CALLS as usize];
    for _ in 0..CALLS {
        let ev = within("progress event", progress.next())
            .await
            .expect("open");
        let i: u64 = ev.decode().expect("an index");
        assert!(
            !std::mem::replace(&mut seen[i as usize], true),
            "event {i} twice"
        );
    }
    assert_eq!(progress.dropped_events(), 0);
    drop(progress);
    leave(caller).await;
    leave(service).await;
}

// --- the router ending the session --------------------------------------------------------

#[tokio::test]
async fn router_shutdown_closes_clients_with_system_shutdown() {
    // A long GOODBYE timeout: shutdown finishes within WAIT only if both clients end their
    // sessions when the router says GOODBYE (rather than the router giving up on them).
    let router = TestRouter::with_config(
        r#"
[router]
goodbye_timeout_ms = 60000

[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json", "msgpack"]

[[realm]]
name = "realm1"
"#,
    )
    .await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let (reg, mut invoked) = register_hanging(&callee, "com.example.hang").await;
    let mut events = within("subscribe", caller.subscribe("com.example.t"))
        .await
        .expect("subscribe");
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    let shutdown = tokio::spawn(router.shutdown());
    for (who, c) in [("caller", &caller), ("callee", &callee)] {
        let r = within("closed", c.closed()).await;
        assert_eq!(r.kind, CloseKind::RouterGoodbye, "{who}: {r:?}");
        assert_eq!(r.reason, uris::CLOSE_SYSTEM_SHUTDOWN, "{who}: {r:?}");
        assert!(c.is_closed());
        assert_eq!(c.close_reason(), Some(r));
    }
    within("shutdown", shutdown).await.expect("shutdown task");

    // The pending call failed (the session ended, or the router canceled it first when the
    // callee's session ended).
    let r = timeout(AT_ONCE, call)
        .await
        .expect("the pending call was failed at once")
        .expect("call task");
    match r {
        Err(CallError::ConnectionClosed) => {}
        Err(CallError::Application { uri, .. }) if uri == uris::CANCELED => {}
        other => panic!("expected the pending call to fail, got {other:?}"),
    }
    assert!(
        within("stream end", events.next()).await.is_none(),
        "subscription streams end with the session"
    );

    // A closed client stays closed: every request fails at once.
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("closed");
    assert_eq!(e, CallError::ConnectionClosed);
    let e = within("publish", caller.publish("com.example.t"))
        .await
        .expect_err("closed");
    assert_eq!(e, PublishError::ConnectionClosed);
    let e = within("subscribe", caller.subscribe("com.example.t"))
        .await
        .expect_err("closed");
    assert_eq!(e, SubscribeError::ConnectionClosed);
    let e = within("unregister", reg.unregister())
        .await
        .expect_err("closed");
    assert_eq!(e, RegisterError::ConnectionClosed);
    match within("leave", caller.leave()).await {
        Err(LeaveError::Closed(r)) => assert_eq!(r.reason, uris::CLOSE_SYSTEM_SHUTDOWN),
        other => panic!("expected LeaveError::Closed, got {other:?}"),
    }
}

// --- load -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_concurrent_calls_from_several_clients() {
    const CALLERS: u64 = 8;
    const PER_CALLER: u64 = 1_250;
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let invoked = Arc::new(AtomicU64::new(0));
    let n = invoked.clone();
    let _reg = within(
        "register",
        callee.register("com.example.compute", move |inv: Invocation| {
            n.fetch_add(1, Ordering::Relaxed);
            async move {
                let (c, i): (u64, u64) = inv.decode_args()?;
                let tag = inv.kwargs.get("tag").cloned().unwrap_or_default();
                Ok::<_, CallError>(
                    CallResult::new()
                        .with_args([c * 1_000_000 + i])
                        .with_kwargs([("tag", tag)]),
                )
            }
        }),
    )
    .await
    .expect("register");

    let mut callers = JoinSet::new();
    for c in 0..CALLERS {
        let ser = if c % 2 == 0 {
            Serializer::Json
        } else {
            Serializer::MsgPack
        };
        let client = connect(router.url(), ser).await;
        callers.spawn(async move {
            let calls = (0..PER_CALLER).map(|i| {
                client
                    .call("com.example.compute")
                    .args([c, i])
                    .kwarg("tag", format!("{c}/{i}"))
                    .into_future()
            });
            let results = join_all(calls).await;
            for (i, r) in (0..PER_CALLER).zip(results) {
                let r = r.unwrap_or_else(|e| panic!("caller {c}, call {i}: {e:?}"));
                assert_eq!(r.args, vec![Value::UInt(c * 1_000_000 + i)], "{c}/{i}");
                assert_eq!(r.kwargs["tag"], Value::from(format!("{c}/{i}")), "{c}/{i}");
            }
            leave(client).await;
            PER_CALLER
        });
    }
    let total = timeout(Duration::from_secs(60), async {
        let mut total = 0;
        while let Some(r) = callers.join_next().await {
            total += r.expect("a caller failed");
        }
        total
    })
    .await
    .expect("all calls answered within 60 s");
    assert_eq!(total, CALLERS * PER_CALLER);
    assert!(total >= 10_000);
    assert_eq!(invoked.load(Ordering::Relaxed), total);
    leave(callee).await;
}
