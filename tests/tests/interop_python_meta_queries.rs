//! The meta API with autobahn-python, through our router: an autobahn session querying what
//! our Rust sessions registered and subscribed, killing one and being killed by one, and
//! leaving testaments (destroyed on leave, detached only on a lost transport) that a Rust
//! subscriber receives. Helpers are `interop_python_meta.rs`'s and `wamp_tests::interop_meta`.
//!
//! Needs `WAMP_INTEROP_PYTHON`, a Python with autobahn installed: skipped with a notice
//! without it, failed under CI.

use std::future::IntoFuture;

use serde_json::{json, Value as Json};
use tokio::time::timeout;
use wamp_client::{Client, CloseKind, Serializer};
use wamp_proto::options::dict;
use wamp_proto::{Dict, Value};
use wamp_tests::client::{leave, rust_client};
use wamp_tests::interop::{python, REALM};
use wamp_tests::interop_meta::{left_normally, results, sort, sorted, MetaPeer};
use wamp_tests::{RawPeer, TestRouter, WAIT};

use crate::interop_python_meta::{
    assert_describes, assert_registration, assert_subscription, noop, other, raw_event, TEST,
};

// --- queries --------------------------------------------------------------------------------

/// A Python caller (`py`) asks the meta procedures about what our clients registered and
/// subscribed; then, after a Rust unsubscribe and unregister, asks again.
async fn python_caller_queries(py: Serializer) {
    let Some(python) = python(TEST) else { return };
    let router = TestRouter::start().await;
    let callee = rust_client(router.url(), Serializer::Json).await;
    let a = rust_client(router.url(), Serializer::Json).await;
    let b = rust_client(router.url(), Serializer::MsgPack).await;
    let register = |proc_: &'static str, policy: &'static str| {
        let builder = callee.register(proc_, noop);
        let builder = match policy {
            "prefix" => builder.prefix(),
            "wildcard" => builder.wildcard(),
            _ => builder,
        };
        async move {
            timeout(WAIT, builder.into_future())
                .await
                .expect("register in time")
                .unwrap_or_else(|e| panic!("register {proc_}: {e:?}"))
        }
    };
    let add = register("com.example.meta.q.add", "exact").await;
    let pfx = register("com.example.meta.q.", "prefix").await;
    let wild = register("com.example..mul", "wildcard").await;
    let subscribe = |c: &Client, topic: &'static str, prefix: bool| {
        let builder = c.subscribe(topic);
        let builder = if prefix { builder.prefix() } else { builder };
        async move {
            timeout(WAIT, builder.into_future())
                .await
                .expect("subscribe in time")
                .unwrap_or_else(|e| panic!("subscribe {topic}: {e:?}"))
        }
    };
    let tick_a = subscribe(&a, "com.example.meta.q.tick", false).await;
    let tick_b = subscribe(&b, "com.example.meta.q.tick", false).await;
    let under = subscribe(&b, "com.example.meta.q.", true).await;
    let tick = tick_a.id();
    assert_eq!(tick_b.id(), tick);

    let (c, ai, bi) = (
        callee.session_id().get(),
        a.session_id().get(),
        b.session_id().get(),
    );
    let (add_id, pfx_id, wild_id) = (add.id().get(), pfx.id().get(), wild.id().get());
    let (tick_id, under_id) = (tick.get(), under.id().get());
    let prefix = json!({"match": "prefix"});
    let spec = json!([
        {"call": "wamp.session.count"},
        {"call": "wamp.session.list"},
        {"call": "wamp.session.count", "args": [["anonymous"]]},
        {"call": "wamp.session.list", "args": [["nobody"]]},
        {"call": "wamp.session.get", "args": [b.session_id().get()]},
        {"call": "wamp.session.get", "args": [1]},
        {"call": "wamp.registration.list"},
        {"call": "wamp.registration.lookup", "args": ["com.example.meta.q.add"]},
        {"call": "wamp.registration.lookup", "args": ["com.example.meta.q.", prefix]},
        {"call": "wamp.registration.lookup", "args": ["com.example.meta.q."]},
        {"call": "wamp.registration.match", "args": ["com.example.meta.q.add"]},
        {"call": "wamp.registration.match", "args": ["com.example.meta.q.sub"]},
        {"call": "wamp.registration.match", "args": ["com.example.x.mul"]},
        {"call": "wamp.registration.match", "args": ["org.none"]},
        {"call": "wamp.registration.get", "args": [add_id]},
        {"call": "wamp.registration.get", "args": [wild_id]},
        {"call": "wamp.registration.list_callees", "args": [add_id]},
        {"call": "wamp.registration.count_callees", "args": [pfx_id]},
        {"call": "wamp.registration.get", "args": [1]},
        {"call": "wamp.subscription.list"},
        {"call": "wamp.subscription.lookup", "args": ["com.example.meta.q.tick"]},
        {"call": "wamp.subscription.lookup", "args": ["com.example.meta.q.", prefix]},
        {"call": "wamp.subscription.match", "args": ["com.example.meta.q.tick"]},
        {"call": "wamp.subscription.match", "args": ["org.none"]},
        {"call": "wamp.subscription.get", "args": [tick_id]},
        {"call": "wamp.subscription.list_subscribers", "args": [tick_id]},
        {"call": "wamp.subscription.count_subscribers", "args": [tick_id]},
        {"call": "wamp.subscription.count_subscribers", "args": [under_id]},
        {"call": "wamp.subscription.get", "args": [1]},
        {"call": "wamp.subscription.list_subscribers", "args": ["x"]},
    ])
    .to_string();
    let mut q = MetaPeer::start(&python, router.url(), py, &["call", &spec]).await;
    let me = q.session;
    let got = results(&q.until_ready().await);
    let procs: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    let want_procs: Vec<String> = serde_json::from_str::<Vec<Json>>(&spec)
        .unwrap()
        .iter()
        .map(|i| i["call"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(procs, want_procs, "one line per call, in order");
    let v: Vec<&Json> = got.iter().map(|(_, v)| v).collect();

    assert_eq!(v[0], &json!(4), "session.count");
    assert_eq!(sorted(v[1]), sort(vec![me, c, ai, bi]), "session.list");
    assert_eq!(v[2], &json!(4), "session.count [anonymous]");
    assert_eq!(v[3], &json!([]), "session.list [nobody]");
    assert_describes(v[4], bi, Some(&b), Serializer::MsgPack);
    assert_eq!(v[5], &json!({"error": "wamp.error.no_such_session"}));
    assert_eq!(
        v[6],
        &json!({"exact": [add_id], "prefix": [pfx_id], "wildcard": [wild_id]}),
        "registration.list"
    );
    assert_eq!(v[7], &json!(add_id), "lookup exact");
    assert_eq!(v[8], &json!(pfx_id), "lookup prefix");
    assert_eq!(v[9], &Json::Null, "lookup of the prefix URI as exact");
    assert_eq!(v[10], &json!(add_id), "match: exact first");
    assert_eq!(v[11], &json!(pfx_id), "match: the prefix");
    assert_eq!(v[12], &json!(wild_id), "match: the wildcard");
    assert_eq!(v[13], &Json::Null, "match: nothing");
    assert_registration(v[14], add.id(), "com.example.meta.q.add", "exact", "single");
    assert_registration(v[15], wild.id(), "com.example..mul", "wildcard", "single");
    assert_eq!(v[16], &json!([c]), "list_callees");
    assert_eq!(v[17], &json!(1), "count_callees");
    assert_eq!(v[18], &json!({"error": "wamp.error.no_such_registration"}));
    assert_eq!(
        v[19],
        &json!({"exact": [tick_id], "prefix": [under_id], "wildcard": []}),
        "subscription.list"
    );
    assert_eq!(v[20], &json!(tick_id), "subscription.lookup exact");
    assert_eq!(v[21], &json!(under_id), "subscription.lookup prefix");
    assert_eq!(sorted(v[22]), sort(vec![tick_id, under_id]), "match");
    assert_eq!(v[23], &Json::Null, "subscription.match: nothing");
    assert_subscription(v[24], tick, "com.example.meta.q.tick", "exact");
    assert_eq!(sorted(v[25]), sort(vec![ai, bi]), "list_subscribers");
    assert_eq!(v[26], &json!(2), "count_subscribers");
    assert_eq!(v[27], &json!(1), "count_subscribers of the prefix");
    assert_eq!(v[28], &json!({"error": "wamp.error.no_such_subscription"}));
    assert_eq!(v[29], &json!({"error": "wamp.error.invalid_argument"}));

    // Our side changes; the Python caller asks again (a `call` command).
    timeout(WAIT, tick_b.unsubscribe())
        .await
        .expect("unsubscribe in time")
        .expect("unsubscribe");
    timeout(WAIT, add.unregister())
        .await
        .expect("unregister in time")
        .expect("unregister");
    let again = json!([
        {"call": "wamp.subscription.list_subscribers", "args": [tick_id]},
        {"call": "wamp.registration.lookup", "args": ["com.example.meta.q.add"]},
        {"call": "wamp.registration.match", "args": ["com.example.meta.q.add"]},
        {"call": "wamp.registration.get", "args": [add_id]},
        {"call": "wamp.session.count", "args": [null]},
    ]);
    q.peer.write_line(&format!("call {again}")).await;
    let got = results(&q.until_ready().await);
    let want = [
        ("wamp.subscription.list_subscribers", json!([ai])),
        ("wamp.registration.lookup", Json::Null),
        ("wamp.registration.match", json!(pfx_id)),
        (
            "wamp.registration.get",
            json!({"error": "wamp.error.no_such_registration"}),
        ),
        ("wamp.session.count", json!(4)),
    ]
    .map(|(p, v)| (p.to_owned(), v));
    assert_eq!(got, want);

    assert_eq!(q.command_and_finish("leave").await, vec![left_normally()]);
    drop((tick_a, under, pfx, wild));
    for client in [callee, a, b] {
        leave(client).await;
    }
}

#[tokio::test]
async fn a_python_caller_json_queries_what_rust_registered_and_subscribed() {
    python_caller_queries(Serializer::Json).await;
}

#[tokio::test]
async fn a_python_caller_msgpack_queries_what_rust_registered_and_subscribed() {
    python_caller_queries(Serializer::MsgPack).await;
}

#[tokio::test]
async fn a_python_caller_cbor_queries_what_rust_registered_and_subscribed() {
    python_caller_queries(Serializer::Cbor).await;
}

// --- kills -----------------------------------------------------------------------------------

/// A Rust admin kills a Python session (with a reason and a message, then one without):
/// autobahn's onLeave reports the router's GOODBYE; a raw Rust watcher sees its on_leave.
#[tokio::test]
async fn a_rust_admin_kills_python_sessions() {
    let Some(python) = python(TEST) else { return };
    let router = TestRouter::start().await;
    let (mut watcher, _) = RawPeer::join(router.url(), REALM, Serializer::Json).await;
    let on_leave = watcher
        .subscribe("wamp.session.on_leave", Dict::new())
        .await;
    let admin = rust_client(router.url(), Serializer::MsgPack).await;

    for (py, reason, message) in [
        (Serializer::Json, Some("com.example.kicked"), Some("bye")),
        (Serializer::MsgPack, None, None),
    ] {
        let mut victim = MetaPeer::start(&python, router.url(), py, &["idle"]).await;
        assert_eq!(victim.until_ready().await, Vec::<Json>::new());
        let mut kill = admin.call("wamp.session.kill").arg(victim.session);
        if let Some(r) = reason {
            kill = kill.kwarg("reason", r);
        }
        if let Some(m) = message {
            kill = kill.kwarg("message", m);
        }
        let r = timeout(WAIT, kill)
            .await
            .expect("kill answered in time")
            .expect("kill succeeds");
        assert_eq!(r.args, vec![Value::Null], "kill's result");
        let left = json!({"left": {
            "reason": reason.unwrap_or("wamp.close.killed"),
            "message": message,
        }});
        assert_eq!(victim.peer.line().await, left, "autobahn's CloseDetails");

        let (sub, args, _) = raw_event(&mut watcher).await;
        assert_eq!(sub, on_leave);
        let authid = victim.joined["authid"].as_str().expect("an authid");
        let want = vec![
            Value::from(victim.session),
            Value::from(authid),
            Value::from("anonymous"),
        ];
        assert_eq!(args, want, "on_leave of the killed session");
        assert_eq!(victim.peer.succeed().await, Vec::<Json>::new());
    }
    leave(admin).await;
}

/// A Python session kills our client (which gets the GOODBYE with reason and message); it is
/// refused for an unknown session, and for a reason that is not a URI (its own session,
/// which stays joined).
#[tokio::test]
async fn a_python_session_kills_a_rust_session() {
    let Some(python) = python(TEST) else { return };
    let router = TestRouter::start().await;
    let victim = rust_client(router.url(), Serializer::Json).await;
    let id = victim.session_id().get().to_string();
    let mode = ["kill", &id, "com.example.kicked", "bye"];
    let mut killer = MetaPeer::start(&python, router.url(), Serializer::MsgPack, &mode).await;
    let lines = killer.until_ready().await;
    assert_eq!(lines, vec![json!({"killed": victim.session_id().get()})]);
    let closed = timeout(WAIT, victim.closed())
        .await
        .expect("our client is closed in time");
    assert_eq!(closed.kind, CloseKind::RouterGoodbye, "{closed}");
    assert_eq!(closed.reason, "com.example.kicked", "{closed}");
    assert_eq!(closed.message.as_deref(), Some("bye"), "{closed}");

    let unknown = json!([
        {"call": "wamp.session.kill", "args": [1]},
        {"call": "wamp.session.kill", "args": [killer.session], "kwargs": {"reason": "not a uri!"}},
    ]);
    killer.peer.write_line(&format!("call {unknown}")).await;
    let got = results(&killer.until_ready().await);
    let want = [
        (
            "wamp.session.kill",
            json!({"error": "wamp.error.no_such_session"}),
        ),
        (
            "wamp.session.kill",
            json!({"error": "wamp.error.invalid_uri"}),
        ),
    ]
    .map(|(p, v)| (p.to_owned(), v));
    assert_eq!(got, want);
    assert_eq!(
        killer.command_and_finish("leave").await,
        vec![left_normally()]
    );
}

// --- testaments ------------------------------------------------------------------------------

const GONE: &str = "com.example.meta.gone";
const LOST: &str = "com.example.meta.lost";

/// How the Python session with testaments ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// It leaves (GOODBYE).
    Leave,
    /// It drops its transport.
    Drop,
    /// A Rust admin kills it.
    Killed,
}

/// A Python session (`py`) adds testaments: a destroyed one it then flushes, a destroyed
/// one with bytes, a detached one, and a destroyed one whose publish options exclude our
/// raw subscriber; then ends by `end`. The raw subscriber receives what `end` publishes,
/// in order, before the session's on_leave.
async fn testaments(py: Serializer, end: End) {
    let Some(python) = python(TEST) else { return };
    let router = TestRouter::start().await;
    let (mut watcher, w) = RawPeer::join(router.url(), REALM, other(py)).await;
    let gone = watcher.subscribe(GONE, Dict::new()).await;
    let lost = watcher.subscribe(LOST, Dict::new()).await;
    let on_leave = watcher
        .subscribe("wamp.session.on_leave", Dict::new())
        .await;
    // Leaves only after the watcher saw the Python session's on_leave (an admin's own
    // on_leave has no order with it).
    let admin = rust_client(router.url(), py).await;

    let spec = json!([
        {"topic": GONE, "args": ["flushed"]},
        {"flush": "destroyed"},
        {"flush": "detached"},
        {"topic": GONE, "args": ["gone", {"$bytes": "0001ff"}], "kwargs": {"b": {"$bytes": "6869"}}},
        {"topic": LOST, "args": ["lost"], "scope": "detached"},
        {"topic": GONE, "args": ["excluded"], "publish_options": {"exclude": [w.session.get()]}},
        {"topic": LOST, "args": ["flushed too"], "scope": "detached"},
        {"topic": LOST, "args": ["lost last"], "kwargs": {}, "scope": "detached"},
    ]);
    let mut dying =
        MetaPeer::start(&python, router.url(), py, &["testament", &spec.to_string()]).await;
    let lines = dying.until_ready().await;
    let want = vec![
        json!({"added": GONE}),
        json!({"flushed": 1}),
        json!({"flushed": 0}),
        json!({"added": GONE}),
        json!({"added": LOST}),
        json!({"added": GONE}),
        json!({"added": LOST}),
        json!({"added": LOST}),
    ];
    assert_eq!(lines, want);
    // Flush the detached ones again, but keep the last: flush, then add it anew.
    let again = json!([
        {"call": "wamp.session.flush_testaments", "kwargs": {"scope": "detached"}},
        {"call": "wamp.session.add_testament", "args": [LOST, ["lost"]], "kwargs": {"scope": "detached"}},
        {"call": "wamp.session.add_testament", "args": [LOST, "not a list"]},
    ]);
    dying.peer.write_line(&format!("call {again}")).await;
    let got = results(&dying.until_ready().await);
    let want = [
        ("wamp.session.flush_testaments", json!(3)),
        ("wamp.session.add_testament", Json::Null),
        (
            "wamp.session.add_testament",
            json!({"error": "wamp.error.invalid_argument"}),
        ),
    ]
    .map(|(p, v)| (p.to_owned(), v));
    assert_eq!(got, want);

    let session = dying.session;
    let lines = match end {
        End::Leave => dying.command_and_finish("leave").await,
        End::Drop => dying.command_and_finish("drop").await,
        End::Killed => {
            timeout(WAIT, admin.call("wamp.session.kill").arg(session))
                .await
                .expect("kill answered in time")
                .expect("kill succeeds");
            dying.peer.succeed().await
        }
    };
    let want = match end {
        End::Leave => vec![left_normally()],
        End::Drop => vec![
            json!({"dropped": true}),
            json!({"left": {
                "reason": "wamp.close.transport_lost",
                "message": format!("WAMP transport was lost without closing the session {session} before"),
            }}),
        ],
        End::Killed => vec![json!({"left": {"reason": "wamp.close.killed", "message": null}})],
    };
    assert_eq!(lines, want, "{end:?}");

    // Lost: the detached testament first; always the destroyed one (bytes intact); never
    // the flushed or excluded ones; then on_leave.
    if end == End::Drop {
        let (sub, args, kwargs) = raw_event(&mut watcher).await;
        assert_eq!(
            (sub, args, kwargs),
            (lost, vec![Value::from("lost")], Dict::new())
        );
    }
    let (sub, args, kwargs) = raw_event(&mut watcher).await;
    assert_eq!(sub, gone, "{args:?}");
    assert_eq!(
        args,
        vec![Value::from("gone"), Value::Bytes(vec![0, 1, 0xff])]
    );
    assert_eq!(kwargs, dict([("b", Value::Bytes(b"hi".to_vec()))]));
    let (sub, args, _) = raw_event(&mut watcher).await;
    assert_eq!(sub, on_leave, "{args:?}");
    assert_eq!(args.first(), Some(&Value::from(session)));
    leave(admin).await;
}

#[tokio::test]
async fn a_python_session_json_leaving_publishes_its_destroyed_testaments() {
    testaments(Serializer::Json, End::Leave).await;
}

#[tokio::test]
async fn a_python_session_msgpack_leaving_publishes_its_destroyed_testaments() {
    testaments(Serializer::MsgPack, End::Leave).await;
}

#[tokio::test]
async fn a_python_session_json_dropping_its_transport_publishes_detached_then_destroyed() {
    testaments(Serializer::Json, End::Drop).await;
}

#[tokio::test]
async fn a_python_session_msgpack_dropping_its_transport_publishes_detached_then_destroyed() {
    testaments(Serializer::MsgPack, End::Drop).await;
}

#[tokio::test]
async fn a_python_session_cbor_dropping_its_transport_publishes_detached_then_destroyed() {
    testaments(Serializer::Cbor, End::Drop).await;
}

#[tokio::test]
async fn a_killed_python_session_publishes_its_destroyed_testaments() {
    testaments(Serializer::Json, End::Killed).await;
}
