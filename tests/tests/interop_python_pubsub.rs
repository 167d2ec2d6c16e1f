//! Advanced PubSub interop with autobahn-python through our router: black/white listing and
//! retention from a Python publisher, prefix and wildcard Python subscribers, a Python
//! `get_retained` subscriber, publisher identification seen by Python, and Python reading
//! the event history with `wamp.subscription.get_events`.
//!
//! Each test runs the real router in-process and drives `tests/interop/python/peer.py` (its
//! `publish-options`, `subscribe-options` and `history` modes; see its docstring) as a child
//! process against our own `wamp_client`. The serializers vary between tests, and each test
//! mixes JSON and MessagePack sessions.
//!
//! autobahn-python cannot ask for publisher disclosure (its `PublishOptions` has no
//! `disclose_me`), so identification is tested with a Rust publisher only.
//!
//! Needs `WAMP_INTEROP_PYTHON`, a Python with autobahn installed: `scripts/test-all.sh`
//! creates the venv (`target/interop/venv`) and exports it. Without it the tests skip with a
//! notice, or fail when `CI` is set.

use std::path::Path;

use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use tokio::time::timeout;
use wamp_client::{Client, Event, Serializer, Subscription, Value};
use wamp_tests::client::rust_client;
use wamp_tests::interop::{python, python_script, ser_name, ScriptPeer};
use wamp_tests::{TestRouter, WAIT};

/// Starts `peer.py` in `mode` with a null stdin.
fn spawn_peer(python: &Path, url: &str, serializer: Serializer, mode: &[&str]) -> ScriptPeer {
    ScriptPeer::spawn(python, &python_script(), None, url, serializer, mode, false)
}

/// Reads `{"subscribed": ID}` then `{"ready": true}` (subscribe-options); returns ID.
async fn subscribed(peer: &mut ScriptPeer) -> u64 {
    let line = peer.line().await;
    let Some(id) = line["subscribed"].as_u64() else {
        peer.fail(&format!("expected {{\"subscribed\": ID}}, got {line}"))
            .await
    };
    peer.ready().await;
    id
}

// --- Rust side helpers -------------------------------------------------------------------

async fn subscribe(client: &Client, topic: &str) -> Subscription {
    timeout(WAIT, client.subscribe(topic))
        .await
        .expect("subscribe in time")
        .expect("subscribe")
}

async fn next(s: &mut Subscription) -> Event {
    timeout(WAIT, s.next())
        .await
        .unwrap_or_else(|_| panic!("an event on {} in time", s.topic()))
        .unwrap_or_else(|| panic!("the stream of {} ended", s.topic()))
}

/// The texts of the next `n` events of `s` (each event's only argument).
async fn texts(s: &mut Subscription, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = next(s).await;
        match e.args.as_slice() {
            [Value::Str(t)] => out.push(t.clone()),
            other => panic!("expected one text argument, got {other:?}"),
        }
    }
    out
}

fn authid(c: &Client) -> String {
    c.welcome_details()["authid"]
        .as_str()
        .expect("WELCOME has an authid")
        .to_owned()
}

/// Publishes `text` from Rust, acknowledged; returns the publication ID.
async fn rust_publish(c: &Client, topic: &str, text: &str) -> u64 {
    timeout(WAIT, c.publish(topic).arg(text).acknowledge())
        .await
        .expect("acknowledged in time")
        .expect("acknowledged")
        .get()
}

/// An event line of peer.py's subscribe-options mode with one text argument.
fn event_line(text: &str, details: Json) -> Json {
    json!({"args": [text], "kwargs": {}, "details": details})
}

// --- Python publisher with black/white lists and retain -> Rust subscribers ------------

/// A Python publisher (`py`) uses every list option (one given as a scalar, which autobahn
/// wraps in a list) and `retain`; three Rust subscribers get exactly the events meant for
/// them, and a late Rust subscriber gets the retained one.
async fn python_publisher_lists(py: Serializer) {
    let Some(python) = python("autobahn-python PubSub interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let topic = format!("com.example.py.lists.{}", ser_name(py));
    let a = rust_client(router.url(), Serializer::Json).await;
    let b = rust_client(router.url(), Serializer::MsgPack).await;
    let c = rust_client(router.url(), Serializer::Json).await;
    let (mut sa, mut sb, mut sc) = (
        subscribe(&a, &topic).await,
        subscribe(&b, &topic).await,
        subscribe(&c, &topic).await,
    );
    let (ia, ib) = (a.session_id().get(), b.session_id().get());
    let spec = json!([
        {"arg": "x", "options": {"exclude": ia}},
        {"arg": "y", "options": {"eligible": [ia, ib], "exclude": [ib]}},
        {"arg": "z", "options": {"eligible_authid": authid(&c)}},
        {"arg": "w", "options": {"exclude_authid": [authid(&a), authid(&b)]}},
        {"arg": "v", "options": {"eligible_authrole": "anonymous", "exclude_authrole": ["guest"]}},
        {"arg": "nobody", "options": {"exclude_authrole": "anonymous"}},
        {"arg": "kept", "options": {"retain": true}},
        {"arg": "marker", "options": {}},
    ])
    .to_string();
    let peer = spawn_peer(
        &python,
        router.url(),
        py,
        &["publish-options", &topic, &spec],
    );
    let lines = peer.succeed().await;
    let published: Vec<_> = lines
        .iter()
        .map(|l| (l["arg"].as_str().unwrap_or("?"), l["published"].as_u64()))
        .collect();
    assert_eq!(published.len(), 8, "publisher lines: {lines:#?}");
    assert!(published.iter().all(|(_, id)| id.is_some()), "{lines:#?}");

    assert_eq!(texts(&mut sa, 3).await, ["y", "v", "kept"], "a");
    assert_eq!(texts(&mut sb, 3).await, ["x", "v", "kept"], "b");
    assert_eq!(texts(&mut sc, 5).await, ["x", "z", "w", "v", "kept"], "c");
    for s in [&mut sa, &mut sb, &mut sc] {
        let e = next(s).await;
        assert_eq!(e.args, vec![Value::from("marker")], "nothing else first");
        assert_eq!(e.publisher(), None, "autobahn does not disclose");
    }

    // A late Rust subscriber asks for the event Python retained.
    let late = rust_client(router.url(), Serializer::MsgPack).await;
    let mut s = timeout(WAIT, late.subscribe(&topic).get_retained())
        .await
        .expect("subscribe in time")
        .expect("subscribe");
    let e = next(&mut s).await;
    assert!(e.retained(), "{e:?}");
    assert_eq!(e.args, vec![Value::from("kept")]);
    assert_eq!(
        Some(e.publication.get()),
        published[6].1,
        "its publication ID"
    );
}

#[tokio::test]
async fn python_publisher_json_lists_and_retain_reach_rust_subscribers() {
    python_publisher_lists(Serializer::Json).await;
}

#[tokio::test]
async fn python_publisher_msgpack_lists_and_retain_reach_rust_subscribers() {
    python_publisher_lists(Serializer::MsgPack).await;
}

// --- Python pattern subscribers <- Rust publisher --------------------------------------

/// A Python prefix subscriber (JSON) and a Python wildcard subscriber (MessagePack) hear a
/// Rust publisher; each event's `details.topic` is the concrete topic.
#[tokio::test]
async fn python_prefix_and_wildcard_subscribers_get_the_topic() {
    let Some(python) = python("autobahn-python PubSub interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let mut prefix = spawn_peer(
        &python,
        router.url(),
        Serializer::Json,
        &[
            "subscribe-options",
            "com.py.pat.",
            "3",
            r#"{"match": "prefix"}"#,
        ],
    );
    let prefix_id = subscribed(&mut prefix).await;
    let mut wild = spawn_peer(
        &python,
        router.url(),
        Serializer::MsgPack,
        &[
            "subscribe-options",
            "com.py.pat..update",
            "2",
            r#"{"match": "wildcard"}"#,
        ],
    );
    let wild_id = subscribed(&mut wild).await;
    assert_ne!(prefix_id, wild_id);

    let publisher = rust_client(router.url(), Serializer::MsgPack).await;
    let both = rust_publish(&publisher, "com.py.pat.user.update", "both").await;
    let long = rust_publish(&publisher, "com.py.pat.a.b.update", "prefix only").await;
    rust_publish(&publisher, "com.py.other.update", "neither").await;
    let end = rust_publish(&publisher, "com.py.pat.end.update", "end").await;

    let d = |sub: u64, publication: u64, topic: &str| json!({"subscription": sub, "publication": publication, "topic": topic});
    assert_eq!(
        prefix.succeed().await,
        vec![
            event_line("both", d(prefix_id, both, "com.py.pat.user.update")),
            event_line("prefix only", d(prefix_id, long, "com.py.pat.a.b.update")),
            event_line("end", d(prefix_id, end, "com.py.pat.end.update")),
        ]
    );
    assert_eq!(
        wild.succeed().await,
        vec![
            event_line("both", d(wild_id, both, "com.py.pat.user.update")),
            event_line("end", d(wild_id, end, "com.py.pat.end.update")),
        ]
    );
}

// --- Python get_retained <- Rust retain; publisher identification ----------------------

/// Rust retains an event; a Python subscriber (`py`) with `get_retained` receives it first
/// (`details.retained`), then a live one.
async fn python_get_retained(py: Serializer) {
    let Some(python) = python("autobahn-python PubSub interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let topic = format!("com.example.py.retained.{}", ser_name(py));
    let publisher = rust_client(router.url(), Serializer::Json).await;
    let retain = |text: &'static str| {
        timeout(
            WAIT,
            publisher.publish(&topic).arg(text).retain().acknowledge(),
        )
    };
    retain("old").await.expect("in time").expect("acknowledged");
    let kept = retain("current")
        .await
        .expect("in time")
        .expect("acknowledged")
        .get();
    rust_publish(&publisher, &topic, "not retained").await;

    let mut peer = spawn_peer(
        &python,
        router.url(),
        py,
        &[
            "subscribe-options",
            &topic,
            "2",
            r#"{"get_retained": true}"#,
        ],
    );
    let sub = subscribed(&mut peer).await;
    let live = rust_publish(&publisher, &topic, "live").await;
    let lines = peer.succeed().await;
    assert_eq!(
        lines,
        vec![
            event_line(
                "current",
                json!({"subscription": sub, "publication": kept, "retained": true, "topic": topic})
            ),
            event_line(
                "live",
                json!({"subscription": sub, "publication": live, "topic": topic})
            ),
        ]
    );
}

#[tokio::test]
async fn python_json_get_retained_receives_what_rust_retained() {
    python_get_retained(Serializer::Json).await;
}

#[tokio::test]
async fn python_msgpack_get_retained_receives_what_rust_retained() {
    python_get_retained(Serializer::MsgPack).await;
}

/// A Rust publisher (`rust`) discloses itself; a Python subscriber sees `details.publisher`,
/// `publisher_authid` and `publisher_authrole`, and none of them when not disclosed.
async fn python_sees_disclosed_publisher(py: Serializer, rust: Serializer) {
    let Some(python) = python("autobahn-python PubSub interop test") else {
        return;
    };
    let router = TestRouter::start().await;
    let topic = format!("com.example.py.disclosed.{}", ser_name(py));
    let mut peer = spawn_peer(
        &python,
        router.url(),
        py,
        &["subscribe-options", &topic, "2", "{}"],
    );
    let sub = subscribed(&mut peer).await;
    let publisher = rust_client(router.url(), rust).await;
    let disclosed = timeout(
        WAIT,
        publisher
            .publish(&topic)
            .arg("disclosed")
            .disclose_me()
            .acknowledge(),
    )
    .await
    .expect("in time")
    .expect("acknowledged")
    .get();
    let hidden = rust_publish(&publisher, &topic, "hidden").await;
    assert_eq!(
        peer.succeed().await,
        vec![
            event_line(
                "disclosed",
                json!({
                    "subscription": sub,
                    "publication": disclosed,
                    "publisher": publisher.session_id().get(),
                    "publisher_authid": authid(&publisher),
                    "publisher_authrole": "anonymous",
                    "topic": topic,
                })
            ),
            event_line(
                "hidden",
                json!({"subscription": sub, "publication": hidden, "topic": topic})
            ),
        ]
    );
}

#[tokio::test]
async fn python_json_sees_disclosed_rust_msgpack_publisher() {
    python_sees_disclosed_publisher(Serializer::Json, Serializer::MsgPack).await;
}

#[tokio::test]
async fn python_msgpack_sees_disclosed_rust_json_publisher() {
    python_sees_disclosed_publisher(Serializer::MsgPack, Serializer::Json).await;
}

// --- Python reads the event history -------------------------------------------------------

const HISTORY_CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json", "msgpack"]

[[realm]]
name = "realm1"

[[realm.topic]]
uri = "com.example.py.hist."
match = "prefix"
history = 3
"#;

/// Rust publishes five events (binary kwargs included, disclosed); a Python caller (`py`)
/// reads the last three with `wamp.subscription.get_events`, then two with `limit`, and gets
/// `no_such_subscription` for an unknown ID. Python's subscription to the topic is the one
/// the Rust subscriber has.
async fn python_reads_history(py: Serializer) {
    let Some(python) = python("autobahn-python PubSub interop test") else {
        return;
    };
    let router = TestRouter::with_config(HISTORY_CONFIG).await;
    let topic = "com.example.py.hist.a";
    let sub = rust_client(router.url(), Serializer::MsgPack).await;
    let events = subscribe(&sub, topic).await;
    let publisher = rust_client(router.url(), Serializer::Json).await;
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let id = timeout(
            WAIT,
            publisher
                .publish(topic)
                .arg(i)
                .kwarg("b", Value::Bytes(vec![0x00, 0x01, 0xff]))
                .disclose_me()
                .acknowledge(),
        )
        .await
        .expect("in time")
        .expect("acknowledged");
        ids.push(id.get());
    }

    let peer = spawn_peer(&python, router.url(), py, &["history", topic, "2"]);
    let lines = peer.succeed().await;
    assert_eq!(lines.len(), 4, "history lines: {lines:#?}");
    assert_eq!(lines[0], json!({"subscribed": events.id().get()}));
    let entries = |line: &Json| -> Vec<Json> {
        line["events"]
            .as_array()
            .unwrap_or_else(|| panic!("not an events line: {line}"))
            .clone()
    };
    let all = entries(&lines[1]);
    let seq: Vec<_> = all.iter().map(|e| e["args"][0].clone()).collect();
    assert_eq!(seq, [json!(2), json!(3), json!(4)], "{all:#?}");
    for (e, id) in all.iter().zip(&ids[2..]) {
        assert_eq!(e["subscription"], json!(events.id().get()), "{e}");
        assert_eq!(e["publication"], json!(id), "{e}");
        assert_eq!(e["topic"], json!(topic), "{e}");
        assert_eq!(e["kwargs"], json!({"b": {"$bytes": "0001ff"}}), "{e}");
        assert_eq!(
            e["details"]["publisher"],
            json!(publisher.session_id().get()),
            "{e}"
        );
        assert!(
            e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
    }
    assert_eq!(entries(&lines[2]), all[1..].to_vec(), "limit=2");
    assert_eq!(
        lines[3],
        json!({"error": "wamp.error.no_such_subscription"})
    );

    // The same history through our client.
    let mine = timeout(WAIT, sub.subscription_events(events.id(), Some(3)))
        .await
        .expect("in time")
        .expect("history");
    let mine: Vec<u64> = mine.iter().map(|e| e.publication.get()).collect();
    assert_eq!(mine, ids[2..]);
}

#[tokio::test]
async fn python_json_reads_event_history() {
    python_reads_history(Serializer::Json).await;
}

#[tokio::test]
async fn python_msgpack_reads_event_history() {
    python_reads_history(Serializer::MsgPack).await;
}
