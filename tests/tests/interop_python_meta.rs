//! The meta API with autobahn-python, through our router: an autobahn session watching the
//! meta events of our Rust sessions (joins, leaves, registrations and subscriptions, in
//! order). Queries, kills and testaments: `interop_python_meta_queries.rs`.
//!
//! Each test runs the router in-process and `tests/interop/python/meta_peer.py` (peer.py's
//! session machinery; see its docstring for its modes, stdin commands and lines) as a child
//! process, against our own `wamp_client` or a [`RawPeer`] (one ordered stream of frames, for
//! the order of events; dropping it loses the transport without GOODBYE). Before a Rust
//! session acts, the test waits until the events of the previous step were printed: events
//! caused by two different sessions have no order of their own. Each scenario runs with a
//! JSON and a MessagePack Python session (its Rust peers speaking the other one, or both);
//! `wamp.2.cbor` runs the queries and the testaments of a lost transport (bytes included).
//!
//! Needs `WAMP_INTEROP_PYTHON`, a Python with autobahn installed: skipped with a notice
//! without it, failed under CI.

use std::future::IntoFuture;
use std::path::Path;

use serde_json::{json, Value as Json};
use tokio::time::timeout;
use wamp_client::{Client, Invocation, InvokePolicy, Serializer};
use wamp_proto::options::dict;
use wamp_proto::{Dict, Id, Message, Value};
use wamp_tests::client::{leave, rust_client};
use wamp_tests::interop::{python, ser_name, REALM};
use wamp_tests::interop_meta::{left_normally, sort, MetaPeer};
use wamp_tests::{RawPeer, TestRouter, WAIT};

pub(crate) const TEST: &str = "autobahn-python meta API interop test";

pub(crate) fn other(s: Serializer) -> Serializer {
    match s {
        Serializer::Json => Serializer::MsgPack,
        Serializer::MsgPack | Serializer::Cbor => Serializer::Json,
    }
}

/// Checks a session description (`on_join`'s argument, `wamp.session.get`'s result) of our
/// client `c`, joined over a WebSocket with `serializer`.
pub(crate) fn assert_describes(
    details: &Json,
    session: u64,
    c: Option<&Client>,
    serializer: Serializer,
) {
    assert_eq!(details["session"], session, "{details}");
    assert_eq!(details["authrole"], "anonymous", "{details}");
    assert_eq!(details["authmethod"], "anonymous", "{details}");
    assert!(details["authid"].as_str().is_some(), "{details}");
    assert!(details["authprovider"].as_str().is_some(), "{details}");
    if let Some(c) = c {
        assert_eq!(details["authid"].as_str(), c.authid(), "{details}");
        assert_eq!(
            details["authprovider"].as_str(),
            c.authprovider(),
            "{details}"
        );
    }
    assert_eq!(details["authextra"], json!({}), "{details}");
    let t = &details["transport"];
    assert_eq!(t["type"], "websocket", "{details}");
    assert_eq!(t["serializer"], ser_name(serializer), "{details}");
    let peer = t["peer"].as_str().unwrap_or_default();
    assert!(peer.starts_with("tcp:127.0.0.1:"), "{details}");
    let keys: Vec<&str> = details
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let want = [
        "authextra",
        "authid",
        "authmethod",
        "authprovider",
        "authrole",
        "session",
        "transport",
    ];
    assert_eq!(keys, want, "{details}");
}

/// Checks a registration (`on_create`'s second argument, `wamp.registration.get`'s result).
pub(crate) fn assert_registration(r: &Json, id: Id, uri: &str, policy: &str, invoke: &str) {
    assert_eq!(r["id"], id.get(), "{r}");
    assert_eq!(r["uri"], uri, "{r}");
    assert_eq!(r["match"], policy, "{r}");
    assert_eq!(r["invoke"], invoke, "{r}");
    assert!(r["created"].as_str().is_some_and(|c| !c.is_empty()), "{r}");
}

/// Checks a subscription (`on_create`'s second argument, `wamp.subscription.get`'s result).
pub(crate) fn assert_subscription(s: &Json, id: Id, uri: &str, policy: &str) {
    assert_eq!(s["id"], id.get(), "{s}");
    assert_eq!(s["uri"], uri, "{s}");
    assert_eq!(s["match"], policy, "{s}");
    assert!(s["created"].as_str().is_some_and(|c| !c.is_empty()), "{s}");
}

/// The next frame of a raw Rust subscriber: an EVENT's (subscription, args, kwargs).
pub(crate) async fn raw_event(p: &mut RawPeer) -> (Id, Vec<Value>, Dict) {
    match p.recv().await {
        Message::Event(mut e) => {
            e.payload.materialize().expect("a valid payload");
            let args = e.payload.args.unwrap_or_default();
            (e.subscription, args, e.payload.kwargs.unwrap_or_default())
        }
        other => panic!("expected an EVENT, got {other:?}"),
    }
}

pub(crate) async fn noop(_: Invocation) -> Result<wamp_client::CallResult, wamp_client::CallError> {
    Ok(wamp_client::CallResult::new())
}

// --- sessions ----------------------------------------------------------------------------

/// A Python watcher (`py`) sees our client (the other serializer) join with its details and
/// leave with GOODBYE, then a raw peer (`py`) join and drop its connection.
async fn watcher_sees_sessions(py: Serializer) {
    let Some(python) = python(TEST) else { return };
    let router = TestRouter::start().await;
    let topics = ["watch", "wamp.session.on_join", "wamp.session.on_leave"];
    let mut w = MetaPeer::start(&python, router.url(), py, &topics).await;
    let lines = w.until_ready().await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(
        lines[0]["watching"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "wamp.session.on_join".to_owned(),
            "wamp.session.on_leave".to_owned()
        ]),
        "{lines:#?}"
    );

    let client = rust_client(router.url(), other(py)).await;
    let id = client.session_id().get();
    let (topic, args) = w.event().await;
    assert_eq!(topic, "wamp.session.on_join");
    assert_eq!(args.len(), 1, "{args:?}");
    assert_describes(&args[0], id, Some(&client), other(py));
    let (authid, authrole) = (client.authid().map(str::to_owned), client.authrole());
    assert_eq!(authrole, Some("anonymous"));
    leave(client).await;
    w.expect_event("session.on_leave", json!([id, authid, "anonymous"]))
        .await;

    let (raw, welcome) = RawPeer::join(router.url(), REALM, py).await;
    let id = welcome.session.get();
    let (topic, args) = w.event().await;
    assert_eq!(topic, "wamp.session.on_join");
    assert_describes(&args[0], id, None, py);
    let authid = args[0]["authid"].clone();
    drop(raw); // no GOODBYE: the transport is lost
    w.expect_event("session.on_leave", json!([id, authid, "anonymous"]))
        .await;

    assert_eq!(w.command_and_finish("leave").await, vec![left_normally()]);
}

#[tokio::test]
async fn a_python_watcher_json_sees_rust_sessions_join_and_leave() {
    watcher_sees_sessions(Serializer::Json).await;
}

#[tokio::test]
async fn a_python_watcher_msgpack_sees_rust_sessions_join_and_leave() {
    watcher_sees_sessions(Serializer::MsgPack).await;
}

// --- registrations and subscriptions: events --------------------------------------------

/// The meta events of registrations or of subscriptions.
#[derive(Debug, Clone, Copy)]
struct Family {
    /// `registration` or `subscription`.
    name: &'static str,
    /// `register` or `subscribe`.
    join: &'static str,
}

const REGISTRATIONS: Family = Family {
    name: "registration",
    join: "register",
};
const SUBSCRIPTIONS: Family = Family {
    name: "subscription",
    join: "subscribe",
};

impl Family {
    /// `wamp.registration.on_create`, ...
    fn topic(self, event: &str) -> String {
        format!("wamp.{}.on_{event}", self.name)
    }

    /// `session` created `id`: on_create `[session, details]`, then on_register /
    /// on_subscribe `[session, id]`; returns the details.
    async fn created(self, w: &mut MetaPeer, session: u64, id: Id) -> Json {
        let (topic, args) = w.event().await;
        assert_eq!(topic, self.topic("create"), "{args:?}");
        assert_eq!((args.len(), &args[0]), (2, &json!(session)), "{args:?}");
        assert_eq!(args[1]["id"], id.get(), "{args:?}");
        self.joined(w, session, id).await;
        args[1].clone()
    }

    /// `session` joined the existing `id`: on_register / on_subscribe only.
    async fn joined(self, w: &mut MetaPeer, session: u64, id: Id) {
        let got = w.event().await;
        let want = (self.topic(self.join), vec![json!(session), json!(id.get())]);
        assert_eq!(got, want);
    }

    /// `session` left the still existing `id`: on_unregister / on_unsubscribe only.
    async fn quit(self, w: &mut MetaPeer, session: u64, id: Id) {
        let got = w.event().await;
        let want = (
            self.topic(&format!("un{}", self.join)),
            vec![json!(session), json!(id.get())],
        );
        assert_eq!(got, want);
    }

    /// `session` dropped its connection: for each of `ids` (in any order) on_unregister /
    /// on_unsubscribe, then on_delete; then the session's on_leave.
    async fn dropped(self, w: &mut MetaPeer, session: u64, ids: &[Id]) {
        let mut seen = Vec::new();
        for _ in ids {
            let (t1, a1) = w.event().await;
            let (t2, a2) = w.event().await;
            let unjoin = self.topic(&format!("un{}", self.join));
            assert_eq!((t1, t2), (unjoin, self.topic("delete")), "{a1:?} {a2:?}");
            assert_eq!(a1, a2, "the same session and {}", self.name);
            assert_eq!(a1[0], session, "{a1:?}");
            seen.push(a1[1].as_u64().unwrap_or_else(|| panic!("an id: {a1:?}")));
        }
        assert_eq!(sort(seen), sort(ids.iter().map(|i| i.get()).collect()));
        let (topic, args) = w.event().await;
        assert_eq!(topic, "wamp.session.on_leave", "{args:?}");
        assert_eq!(args[0], session, "{args:?}");
    }
}

/// Starts a Python watcher of all ten meta events (`py`).
async fn watch_everything(python: &Path, url: &str, py: Serializer) -> MetaPeer {
    let mut w = MetaPeer::start(python, url, py, &["watch"]).await;
    let lines = w.until_ready().await;
    let watching = lines
        .iter()
        .find_map(|l| l.get("watching"))
        .unwrap_or_else(|| panic!("no watching line: {lines:#?}"));
    assert_eq!(
        watching.as_object().map(|o| o.len()),
        Some(10),
        "{lines:#?}"
    );
    w
}

/// A Python watcher of all ten meta events (`py`): a raw callee registers an exact, a
/// prefix and a shared procedure, our client joins the shared one and leaves it; then the
/// raw callee drops its connection: each registration's on_unregister, on_delete, then
/// its on_leave.
async fn watcher_sees_registrations(py: Serializer) {
    let Some(python) = python(TEST) else { return };
    let router = TestRouter::start().await;
    let mut w = watch_everything(&python, router.url(), py).await;
    let (mut callee, welcome) = RawPeer::join(router.url(), REALM, other(py)).await;
    let c = welcome.session.get();
    assert_eq!(w.event().await.0, "wamp.session.on_join");

    let add = callee.register("com.example.meta.add", Dict::new()).await;
    let details = REGISTRATIONS.created(&mut w, c, add).await;
    assert_registration(&details, add, "com.example.meta.add", "exact", "single");
    let prefix = callee
        .register("com.example.meta.", dict([("match", "prefix".into())]))
        .await;
    let details = REGISTRATIONS.created(&mut w, c, prefix).await;
    assert_registration(&details, prefix, "com.example.meta.", "prefix", "single");
    let rr = dict([("invoke", "roundrobin".into())]);
    let shared = callee.register("com.example.meta.shared", rr).await;
    let details = REGISTRATIONS.created(&mut w, c, shared).await;
    let uri = "com.example.meta.shared";
    assert_registration(&details, shared, uri, "exact", "roundrobin");

    // A second callee of the shared procedure: on_register only; unregistering, only
    // on_unregister (the registration stays).
    let second = rust_client(router.url(), py).await;
    let s = second.session_id().get();
    assert_eq!(w.event().await.0, "wamp.session.on_join");
    let reg = timeout(
        WAIT,
        second
            .register(uri, noop)
            .invoke(InvokePolicy::RoundRobin)
            .into_future(),
    )
    .await
    .expect("register in time")
    .expect("register the shared procedure");
    assert_eq!(reg.id(), shared, "the same registration");
    REGISTRATIONS.joined(&mut w, s, shared).await;
    timeout(WAIT, reg.unregister())
        .await
        .expect("unregister in time")
        .expect("unregister");
    REGISTRATIONS.quit(&mut w, s, shared).await;
    let authid = second.authid().map(str::to_owned);
    leave(second).await;
    w.expect_event("session.on_leave", json!([s, authid, "anonymous"]))
        .await;

    drop(callee);
    REGISTRATIONS
        .dropped(&mut w, c, &[add, prefix, shared])
        .await;
    assert_eq!(w.command_and_finish("leave").await, vec![left_normally()]);
}

#[tokio::test]
async fn a_python_watcher_json_sees_registration_events_in_order() {
    watcher_sees_registrations(Serializer::Json).await;
}

#[tokio::test]
async fn a_python_watcher_msgpack_sees_registration_events_in_order() {
    watcher_sees_registrations(Serializer::MsgPack).await;
}

/// The same for subscriptions: a raw subscriber's exact and wildcard subscriptions, our
/// client subscribing to the exact one too and unsubscribing, the raw one dropping.
async fn watcher_sees_subscriptions(py: Serializer) {
    let Some(python) = python(TEST) else { return };
    let router = TestRouter::start().await;
    let mut w = watch_everything(&python, router.url(), py).await;
    let (mut raw, welcome) = RawPeer::join(router.url(), REALM, py).await;
    let r = welcome.session.get();
    assert_eq!(w.event().await.0, "wamp.session.on_join");

    let tick = raw.subscribe("com.example.meta.tick", Dict::new()).await;
    let details = SUBSCRIPTIONS.created(&mut w, r, tick).await;
    assert_subscription(&details, tick, "com.example.meta.tick", "exact");
    let wildcard = dict([("match", "wildcard".into())]);
    let wild = raw.subscribe("com.example..tick", wildcard).await;
    let details = SUBSCRIPTIONS.created(&mut w, r, wild).await;
    assert_subscription(&details, wild, "com.example..tick", "wildcard");

    let second = rust_client(router.url(), other(py)).await;
    let s = second.session_id().get();
    assert_eq!(w.event().await.0, "wamp.session.on_join");
    let sub = timeout(
        WAIT,
        second.subscribe("com.example.meta.tick").into_future(),
    )
    .await
    .expect("subscribe in time")
    .expect("subscribe");
    assert_eq!(sub.id(), tick, "the same subscription");
    SUBSCRIPTIONS.joined(&mut w, s, tick).await;
    timeout(WAIT, sub.unsubscribe())
        .await
        .expect("unsubscribe in time")
        .expect("unsubscribe");
    SUBSCRIPTIONS.quit(&mut w, s, tick).await;
    leave(second).await;
    assert_eq!(w.event().await.0, "wamp.session.on_leave");

    drop(raw);
    SUBSCRIPTIONS.dropped(&mut w, r, &[tick, wild]).await;
    assert_eq!(w.command_and_finish("leave").await, vec![left_normally()]);
}

#[tokio::test]
async fn a_python_watcher_json_sees_subscription_events_in_order() {
    watcher_sees_subscriptions(Serializer::Json).await;
}

#[tokio::test]
async fn a_python_watcher_msgpack_sees_subscription_events_in_order() {
    watcher_sees_subscriptions(Serializer::MsgPack).await;
}
