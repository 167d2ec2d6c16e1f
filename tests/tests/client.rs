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
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;
use wamp_client::{
    uris, CallError, CallResult, Client, CloseKind, ConnectError, Dict, Invocation, LeaveError,
    PublishError, ReconnectPolicy, RegisterError, Registration, Serializer, SubscribeError, Value,
};
use wamp_tests::{TestRouter, WAIT};

const REALM: &str = "realm1";

/// Bound for an answer that must come at once (it depends on no timeout of the router or the
/// client), generous for a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(3);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
async fn within<F: IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

async fn connect(url: &str, serializer: Serializer) -> Client {
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

async fn leave(c: Client) {
    let r = within("leave", c.leave()).await.expect("leave succeeds");
    assert_eq!(r.kind, CloseKind::Left, "{r:?}");
    assert_eq!(r.reason, uris::CLOSE_GOODBYE_AND_OUT, "{r:?}");
}

/// The URI of an application error (panics on other errors).
fn app_uri(e: &CallError) -> &str {
    match e {
        CallError::Application { uri, .. } => uri,
        other => panic!("expected an application error, got {other:?}"),
    }
}

/// Registers `procedure` with a handler that reports each invocation on the returned
/// channel and never answers.
async fn register_hanging(
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
async fn register_echo(callee: &Client, procedure: &str) -> Registration {
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

// --- RPC --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Options {
    discount_pct: u8,
    gift: bool,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    item: String,
    qty: u32,
    total: u64,
    delta: i64,
    gift: bool,
    note: Option<String>,
    lines: Vec<(String, f64)>,
}

/// A price beyond 2^53, which a float-based JSON path would round.
const BIG: u64 = 9_007_199_254_740_993;

fn quote(item: String, qty: u32, o: &Options) -> Quote {
    Quote {
        total: BIG - u64::from(o.discount_pct),
        delta: -i64::from(qty) * 1_000_000_000_000,
        lines: vec![(item.clone(), 0.5), ("tax".into(), -1.25)],
        item,
        qty,
        gift: o.gift,
        note: o.note.clone(),
    }
}

#[tokio::test]
async fn typed_call_and_register_via_serde() {
    let router = TestRouter::start().await;
    for (caller_ser, callee_ser) in [
        (Serializer::Json, Serializer::MsgPack),
        (Serializer::MsgPack, Serializer::Json),
        (Serializer::Json, Serializer::Json),
    ] {
        let callee = connect(router.url(), callee_ser).await;
        let caller = connect(router.url(), caller_ser).await;
        let invoked = Arc::new(AtomicU64::new(0));
        let n = invoked.clone();
        let _quote = within(
            "register",
            callee.register("com.example.shop.quote", move |inv: Invocation| {
                n.fetch_add(1, Ordering::SeqCst);
                async move {
                    // `?` answers wamp.error.invalid_argument on a bad payload.
                    let (item, qty): (String, u32) = inv.decode_args()?;
                    let o: Options = inv.decode_kwargs()?;
                    CallResult::from_ser(&quote(item, qty, &o))
                }
            }),
        )
        .await
        .expect("register quote");
        // Keyword results only: `decode` reads them as a struct.
        let _kw = within(
            "register",
            callee.register("com.example.shop.options", |inv: Invocation| async move {
                let o: Options = inv.decode()?;
                let mut out = Dict::new();
                out.insert("discount_pct".into(), Value::from(o.discount_pct * 2));
                out.insert("gift".into(), Value::from(!o.gift));
                out.insert("note".into(), Value::Null);
                Ok::<_, CallError>(CallResult::new().with_kwargs(out))
            }),
        )
        .await
        .expect("register options");
        let _unit = within(
            "register",
            callee.register("com.example.shop.nothing", |_inv: Invocation| async move {
                Ok::<_, CallError>(())
            }),
        )
        .await
        .expect("register nothing");

        let o = Options {
            discount_pct: 7,
            gift: true,
            note: Some("für dich ✓".into()),
        };
        let got: Quote = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("apple", 3u32))
                .kwargs_ser(&o)
                .result::<Quote>(),
        )
        .await
        .unwrap_or_else(|e| panic!("{caller_ser:?} -> {callee_ser:?}: {e:?}"));
        assert_eq!(
            got,
            quote("apple".into(), 3, &o),
            "{caller_ser:?} -> {callee_ser:?}"
        );

        // The raw result is one positional value: the struct as a dict.
        let raw = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("pear", 1u32))
                .kwargs_ser(&o),
        )
        .await
        .expect("raw quote");
        assert_eq!(raw.args.len(), 1, "{raw:?}");
        assert!(raw.kwargs.is_empty(), "{raw:?}");
        assert_eq!(
            raw.args[0].as_dict().unwrap()["total"],
            Value::UInt(BIG - 7)
        );
        assert_eq!(raw.decode::<Quote>().unwrap(), quote("pear".into(), 1, &o));

        let back: Options = within(
            "call",
            caller
                .call("com.example.shop.options")
                .kwargs_ser(&o)
                .result::<Options>(),
        )
        .await
        .expect("options");
        assert_eq!(
            back,
            Options {
                discount_pct: 14,
                gift: false,
                note: None
            }
        );
        within(
            "call",
            caller.call("com.example.shop.nothing").result::<()>(),
        )
        .await
        .expect("unit result");
        let none: Option<u32> = within(
            "call",
            caller
                .call("com.example.shop.nothing")
                .result::<Option<u32>>(),
        )
        .await
        .expect("empty result as None");
        assert_eq!(none, None);

        // The callee's decode error reaches the caller as invalid_argument.
        let before = invoked.load(Ordering::SeqCst);
        let e = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("apple", "three"))
                .kwargs_ser(&o),
        )
        .await
        .expect_err("wrong argument type");
        assert_eq!(app_uri(&e), uris::INVALID_ARGUMENT, "{e:?}");
        assert_eq!(invoked.load(Ordering::SeqCst), before + 1);

        // Arguments that do not serialize to a list fail locally: nothing is sent.
        let e = within("call", caller.call("com.example.shop.quote").args_ser(&5))
            .await
            .expect_err("args_ser of a number");
        assert!(matches!(e, CallError::InvalidPayload(_)), "{e:?}");
        let e = within(
            "call",
            caller.call("com.example.shop.quote").kwargs_ser(&(1, 2)),
        )
        .await
        .expect_err("kwargs_ser of a tuple");
        assert!(matches!(e, CallError::InvalidPayload(_)), "{e:?}");
        // A result of the wrong type fails at the caller, after a successful call.
        let e = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("apple", 3u32))
                .kwargs_ser(&o)
                .result::<String>(),
        )
        .await
        .expect_err("a Quote is not a String");
        assert!(matches!(e, CallError::InvalidPayload(_)), "{e:?}");
        assert_eq!(invoked.load(Ordering::SeqCst), before + 2);

        leave(caller).await;
        leave(callee).await;
    }
}

#[tokio::test]
async fn application_errors_carry_uri_args_and_kwargs() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let _fail = within(
        "register",
        callee.register("com.example.fail", |inv: Invocation| async move {
            Err::<(), _>(
                CallError::new("com.example.error.failed")
                    .with_args([Value::from("boom"), Value::from(42)])
                    .with_kwargs([
                        ("detail", Value::from("x")),
                        ("got", Value::List(inv.args)),
                        ("bin", Value::Bytes(vec![0, 1, 255])),
                    ]),
            )
        }),
    )
    .await
    .expect("register");
    let _bare = within(
        "register",
        callee.register("com.example.fail.bare", |_inv: Invocation| async move {
            Err::<(), _>(CallError::new("com.example.error.bare"))
        }),
    )
    .await
    .expect("register");
    let _panics = within(
        "register",
        callee.register("com.example.panics", |_inv: Invocation| async move {
            if true {
                panic!("handler bug");
            }
            Ok::<_, CallError>(())
        }),
    )
    .await
    .expect("register");

    for ser in [Serializer::Json, Serializer::MsgPack] {
        let caller = connect(router.url(), ser).await;
        let e = within("call", caller.call("com.example.fail").args([-1, 2]))
            .await
            .expect_err("fails");
        let want = CallError::Application {
            uri: "com.example.error.failed".into(),
            args: vec![Value::from("boom"), Value::UInt(42)],
            kwargs: Dict::from([
                ("detail".into(), Value::from("x")),
                (
                    "got".into(),
                    Value::List(vec![Value::Int(-1), Value::UInt(2)]),
                ),
                ("bin".into(), Value::Bytes(vec![0, 1, 255])),
            ]),
        };
        assert_eq!(e, want, "over {ser:?}");
        assert_eq!(e.uri(), Some("com.example.error.failed"));
        assert_eq!(e.to_string(), "com.example.error.failed: boom");

        let e = within("call", caller.call("com.example.fail.bare"))
            .await
            .expect_err("fails");
        assert_eq!(e, CallError::new("com.example.error.bare"), "over {ser:?}");

        let e = within("call", caller.call("com.example.panics"))
            .await
            .expect_err("a panicking handler answers an error");
        assert_eq!(app_uri(&e), uris::RUNTIME_ERROR, "{e:?}");
        // The callee survives its handler's panic.
        let e = within("call", caller.call("com.example.fail.bare"))
            .await
            .expect_err("fails");
        assert_eq!(app_uri(&e), "com.example.error.bare");
        leave(caller).await;
    }
    assert!(!callee.is_closed());
    leave(callee).await;
}

#[tokio::test]
async fn call_to_missing_procedure_is_no_such_procedure() {
    let router = TestRouter::start().await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let c = connect(router.url(), ser).await;
        let e = within("call", c.call("com.example.nobody.home").arg(1))
            .await
            .expect_err("nobody registered it");
        assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
        // The session is still fine.
        let _echo = register_echo(&c, "com.example.self").await;
        let r = within("call", c.call("com.example.self").arg(2))
            .await
            .expect("own procedure");
        assert_eq!(r.args, vec![Value::UInt(2)]);
        leave(c).await;
    }
}

#[tokio::test]
async fn registering_twice_is_procedure_already_exists() {
    let router = TestRouter::start().await;
    let a = connect(router.url(), Serializer::Json).await;
    let b = connect(router.url(), Serializer::MsgPack).await;
    let reg = within(
        "register",
        a.register("com.example.owned", |_inv: Invocation| async move {
            Ok::<_, CallError>(Value::from("a"))
        }),
    )
    .await
    .expect("first registration");
    assert_eq!(reg.procedure(), "com.example.owned");

    for (who, c) in [("another session", &b), ("the same session", &a)] {
        let e = within(
            "register",
            c.register("com.example.owned", |_inv: Invocation| async move {
                Ok::<_, CallError>(Value::from("b"))
            }),
        )
        .await
        .expect_err("already registered");
        match e {
            RegisterError::Rejected(r) => {
                assert_eq!(r.uri, uris::PROCEDURE_ALREADY_EXISTS, "{who}: {r:?}")
            }
            other => panic!("{who}: expected Rejected, got {other:?}"),
        }
    }
    // The first registration still answers.
    let r = within("call", b.call("com.example.owned"))
        .await
        .expect("call");
    assert_eq!(r.args, vec![Value::from("a")]);
    leave(a).await;
    leave(b).await;
}

#[tokio::test]
async fn unregister_then_call_is_no_such_procedure() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let reg = register_echo(&callee, "com.example.temp").await;
    let r = within("call", caller.call("com.example.temp").arg(1))
        .await
        .expect("registered");
    assert_eq!(r.args, vec![Value::UInt(1)]);

    within("unregister", reg.unregister())
        .await
        .expect("unregister");
    let e = within("call", caller.call("com.example.temp").arg(1))
        .await
        .expect_err("unregistered");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");

    // The procedure is free again: another session can register it.
    let again = register_echo(&caller, "com.example.temp").await;
    let r = within("call", callee.call("com.example.temp").arg(3))
        .await
        .expect("registered again");
    assert_eq!(r.args, vec![Value::UInt(3)]);
    drop(again);
    leave(caller).await;
    leave(callee).await;
}

// --- PubSub -----------------------------------------------------------------------------

/// Calls the router's `wamp.subscription.get_events` for `subscription` and returns the
/// error URI. With no event history configured the router answers `history_unavailable`
/// for a subscription that exists and `no_such_subscription` for one that does not, which
/// tells whether the router still holds it.
async fn router_subscription_state(c: &Client, subscription: u64) -> String {
    let e = within(
        "get_events",
        c.call("wamp.subscription.get_events").arg(subscription),
    )
    .await
    .expect_err("no history on this realm");
    app_uri(&e).to_owned()
}

#[tokio::test]
async fn subscription_streams_events_and_unsubscribe_stops_them() {
    let router = TestRouter::start().await;
    let sub = connect(router.url(), Serializer::Json).await;
    let publisher = connect(router.url(), Serializer::MsgPack).await;
    let topic = "com.example.ticks";
    let mut events = within("subscribe", sub.subscribe(topic))
        .await
        .expect("subscribe");
    assert_eq!(events.topic(), topic);
    let (tx, mut handled) = mpsc::unbounded_channel();
    let handler = within("subscribe", sub.subscribe("com.example.other"))
        .await
        .expect("subscribe")
        .spawn_handler(move |ev| {
            let _ = tx.send(ev);
            async {}
        });
    let mut sentinel = within("subscribe", sub.subscribe("com.example.sentinel"))
        .await
        .expect("subscribe");

    let mut ids = Vec::new();
    for i in 0..20u64 {
        let id = within(
            "publish",
            publisher
                .publish(topic)
                .arg(i)
                .kwarg("seq", i)
                .acknowledge(),
        )
        .await
        .expect("published");
        ids.push(id);
    }
    for (i, id) in (0..20u64).zip(&ids) {
        let ev = within("event", events.next()).await.expect("stream open");
        assert_eq!(ev.subscription, events.id());
        assert_eq!(ev.publication, *id, "event {i}");
        assert_eq!(ev.args, vec![Value::UInt(i)], "events arrive in order");
        assert_eq!(ev.kwargs["seq"], Value::UInt(i));
        assert_eq!(ev.decode::<u64>().unwrap(), i);
    }
    within(
        "publish",
        publisher
            .publish("com.example.other")
            .arg("h")
            .acknowledge(),
    )
    .await
    .expect("published");
    let ev = within("handler event", handled.recv())
        .await
        .expect("handler ran");
    assert_eq!(ev.args, vec![Value::from("h")]);

    // Unsubscribe both; the router forgets them.
    let (events_id, handler_id) = (events.id().get(), handler.id().get());
    for id in [events_id, handler_id] {
        assert_eq!(
            router_subscription_state(&sub, id).await,
            "wamp.error.history_unavailable",
            "subscription {id} exists before unsubscribing"
        );
    }
    within("unsubscribe", events.unsubscribe())
        .await
        .expect("unsubscribe stream");
    within("unsubscribe", handler.unsubscribe())
        .await
        .expect("unsubscribe handler");
    for id in [events_id, handler_id] {
        assert_eq!(
            router_subscription_state(&sub, id).await,
            uris::NO_SUCH_SUBSCRIPTION,
            "subscription {id} is gone at the router"
        );
    }

    // Later publications reach only the sentinel; the handler's task has ended.
    for t in [topic, "com.example.other"] {
        within("publish", publisher.publish(t).arg("late").acknowledge())
            .await
            .expect("published");
    }
    let last = within(
        "publish",
        publisher
            .publish("com.example.sentinel")
            .arg("s")
            .acknowledge(),
    )
    .await
    .expect("published");
    let ev = within("sentinel", sentinel.next())
        .await
        .expect("sentinel open");
    assert_eq!(ev.publication, last, "the sentinel's first and only event");
    assert!(
        within("handler channel", handled.recv()).await.is_none(),
        "the handler got an event after unsubscribing"
    );
    drop(sentinel);
    leave(sub).await;
    leave(publisher).await;
}

#[tokio::test]
async fn acknowledged_publish_returns_the_id_events_carry() {
    let router = TestRouter::start().await;
    let publisher = connect(router.url(), Serializer::Json).await;
    let subs = [
        connect(router.url(), Serializer::Json).await,
        connect(router.url(), Serializer::MsgPack).await,
    ];
    let mut streams = Vec::new();
    for s in &subs {
        streams.push(
            within("subscribe", s.subscribe("com.example.ids"))
                .await
                .expect("subscribe"),
        );
    }
    let a = within(
        "publish",
        publisher
            .publish("com.example.ids")
            .args([1, 2])
            .kwarg("k", Value::Bytes(vec![9]))
            .acknowledge(),
    )
    .await
    .expect("published");
    let b = within(
        "publish",
        publisher.publish("com.example.ids").acknowledge(),
    )
    .await
    .expect("published");
    assert_ne!(a, b, "publication ids are distinct");
    for s in &mut streams {
        let ev = within("event", s.next()).await.expect("open");
        assert_eq!(ev.publication, a);
        assert_eq!(ev.args, vec![Value::UInt(1), Value::UInt(2)]);
        assert_eq!(ev.kwargs["k"], Value::Bytes(vec![9]));
        let ev = within("event", s.next()).await.expect("open");
        assert_eq!(ev.publication, b);
        assert!(ev.args.is_empty() && ev.kwargs.is_empty(), "{ev:?}");
    }
    drop(streams);
    for s in subs {
        leave(s).await;
    }
    leave(publisher).await;
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes_and_local_subscriptions_share_one() {
    let router = TestRouter::start().await;
    let sub = connect(router.url(), Serializer::MsgPack).await;
    let publisher = connect(router.url(), Serializer::Json).await;
    let topic = "com.example.shared";
    let mut first = within("subscribe", sub.subscribe(topic))
        .await
        .expect("subscribe");
    let mut second = within("subscribe", sub.subscribe(topic))
        .await
        .expect("subscribe");
    assert_eq!(first.id(), second.id(), "one router subscription per topic");

    let a = within("publish", publisher.publish(topic).arg(1).acknowledge())
        .await
        .expect("published");
    for s in [&mut first, &mut second] {
        let ev = within("event", s.next()).await.expect("open");
        assert_eq!(
            ev.publication, a,
            "each local subscription gets every event"
        );
    }

    // Unsubscribing one local subscription keeps the other (and the router's).
    let id = first.id().get();
    within("unsubscribe", first.unsubscribe())
        .await
        .expect("unsubscribe");
    assert_eq!(
        router_subscription_state(&sub, id).await,
        "wamp.error.history_unavailable",
        "the router still has the subscription"
    );
    let b = within("publish", publisher.publish(topic).arg(2).acknowledge())
        .await
        .expect("published");
    let ev = within("event", second.next()).await.expect("open");
    assert_eq!(ev.publication, b);

    // Dropping the last one unsubscribes at the router. Requests on a session are handled
    // in order, so the check below comes after the UNSUBSCRIBE the drop queued.
    drop(second);
    assert_eq!(
        router_subscription_state(&sub, id).await,
        uris::NO_SUCH_SUBSCRIPTION,
        "dropping the last Subscription unsubscribes"
    );
    leave(sub).await;
    leave(publisher).await;
}

#[tokio::test]
async fn exclude_me_by_default_and_exclude_me_false() {
    let router = TestRouter::start().await;
    let me = connect(router.url(), Serializer::MsgPack).await;
    let other = connect(router.url(), Serializer::Json).await;
    let topic = "com.example.chat";
    let mut mine = within("subscribe", me.subscribe(topic)).await.expect("sub");
    let mut theirs = within("subscribe", other.subscribe(topic))
        .await
        .expect("sub");

    // Default: my own subscription is skipped; others get it.
    let first = within("publish", me.publish(topic).arg(1).acknowledge())
        .await
        .expect("published");
    // Fire-and-forget, also excluded by default.
    within("publish", me.publish(topic).arg(2))
        .await
        .expect("queued");
    let second = within(
        "publish",
        me.publish(topic).arg(3).exclude_me(false).acknowledge(),
    )
    .await
    .expect("published");
    for (want, arg) in [(Some(first), 1u64), (None, 2), (Some(second), 3)] {
        let ev = within("event", theirs.next()).await.expect("open");
        assert_eq!(ev.args, vec![Value::UInt(arg)]);
        if let Some(id) = want {
            assert_eq!(ev.publication, id);
        }
    }
    // The router delivers one session's events in publication order, so if either of the
    // first two had reached me, it would come before this one.
    let ev = within("own event", mine.next()).await.expect("open");
    assert_eq!(ev.publication, second, "got {ev:?}");
    assert_eq!(ev.args, vec![Value::UInt(3)]);

    // exclude_me(true) explicitly, then false again.
    within(
        "publish",
        me.publish(topic).arg(4).exclude_me(true).acknowledge(),
    )
    .await
    .expect("published");
    let fifth = within(
        "publish",
        me.publish(topic).arg(5).exclude_me(false).acknowledge(),
    )
    .await
    .expect("published");
    let ev = within("own event", mine.next()).await.expect("open");
    assert_eq!(ev.publication, fifth, "got {ev:?}");
    drop((mine, theirs));
    leave(me).await;
    leave(other).await;
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

// --- a callee leaving with a call pending ------------------------------------------------

/// Starts a call from `caller` to the hanging `procedure` and waits until the callee has
/// the invocation.
async fn pending_call(
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

/// The pending call fails at once with `wamp.error.canceled`.
async fn assert_canceled(call: tokio::task::JoinHandle<Result<CallResult, CallError>>) {
    let r = timeout(AT_ONCE, call)
        .await
        .unwrap_or_else(|_| panic!("the pending call was not failed within {AT_ONCE:?}"))
        .expect("call task");
    let e = r.expect_err("the callee left without answering");
    assert_eq!(app_uri(&e), uris::CANCELED, "{e:?}");
}

#[tokio::test]
async fn callee_leave_cancels_pending_call() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let (_reg, mut invoked) = register_hanging(&callee, "com.example.hang").await;
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    let r = within("leave", callee.leave()).await.expect("leave");
    assert_eq!(r.kind, CloseKind::Left);
    assert_canceled(call).await;
    // The procedure went with its callee.
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("gone");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
    leave(caller).await;
}

#[tokio::test]
async fn callee_dropped_cancels_pending_call() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    let (reg, mut invoked) = register_hanging(&callee, "com.example.hang").await;
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    // Dropping every handle ends the session (GOODBYE from the connection task).
    drop(reg);
    drop(callee);
    assert_canceled(call).await;
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("gone");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
    leave(caller).await;
}

#[tokio::test]
async fn callee_aborted_cancels_pending_call() {
    let router = TestRouter::start().await;
    let caller = connect(router.url(), Serializer::Json).await;

    // The callee runs on its own runtime, which is then dropped mid-session: its socket
    // closes without GOODBYE, as when a service process dies.
    let url = router.url().to_owned();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (inv_tx, mut invoked) = mpsc::unbounded_channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let kept = rt.block_on(async move {
            let callee = connect(&url, Serializer::MsgPack).await;
            let reg = within(
                "register",
                callee.register("com.example.hang", move |inv: Invocation| {
                    let _ = inv_tx.send(inv);
                    async move {
                        pending::<()>().await;
                        Ok::<_, CallError>(())
                    }
                }),
            )
            .await
            .expect("register");
            let _ = ready_tx.send(());
            let _ = stop_rx.await;
            (callee, reg)
        });
        // Every task of the callee (its connection task included) dies here, mid-session.
        drop(rt);
        drop(kept);
    });
    within("callee ready", ready_rx)
        .await
        .expect("callee thread registered");
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    stop_tx.send(()).expect("callee thread waits");
    assert_canceled(call).await;
    thread.join().expect("callee thread");
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("gone");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
    leave(caller).await;
}

#[tokio::test]
async fn caller_leave_fails_its_pending_calls() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    let (_reg, mut invoked) = register_hanging(&callee, "com.example.hang").await;
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    let r = within("leave", caller.leave()).await.expect("leave");
    assert_eq!(r.kind, CloseKind::Left);
    let r = timeout(AT_ONCE, call)
        .await
        .expect("the pending call was failed at once")
        .expect("call task");
    assert_eq!(r, Err(CallError::ConnectionClosed));
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("closed");
    assert_eq!(e, CallError::ConnectionClosed);

    // The callee is unaffected and still serves others.
    let other = connect(router.url(), Serializer::MsgPack).await;
    let call = pending_call(&other, "com.example.hang", &mut invoked).await;
    assert!(!callee.is_closed());
    leave(other).await;
    let r = within("call task", call).await.expect("call task");
    assert_eq!(r, Err(CallError::ConnectionClosed));
    leave(callee).await;
}

#[tokio::test]
async fn leave_concurrent_and_repeated() {
    let router = TestRouter::start().await;
    let c = connect(router.url(), Serializer::Json).await;
    let (a, b) = tokio::join!(c.leave(), c.leave());
    for r in [a, b] {
        let r = r.expect("concurrent leave succeeds");
        assert_eq!(r.kind, CloseKind::Left, "{r:?}");
        assert_eq!(r.reason, uris::CLOSE_GOODBYE_AND_OUT, "{r:?}");
    }
    let again = within("leave", c.leave())
        .await
        .expect("repeated leave succeeds");
    assert_eq!(again.kind, CloseKind::Left);
    let closed = within("closed", c.closed()).await;
    assert_eq!(closed, again);
    assert_eq!(c.close_reason(), Some(again));
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
