//! Clients we did not write, asking the cluster: an autobahn-python session on one node
//! queries (`tests/interop/python/meta_peer.py`) and kills sessions, subscriptions and
//! registrations of other nodes; an autobahn-python subscriber on one node gets the event
//! an autobahn-python publisher retained on another.
//!
//! Needs `WAMP_INTEROP_PYTHON` (`scripts/test-all.sh` sets it); without it the tests skip with
//! a notice, or fail when `CI` is set.

use serde_json::{json, Value as Json};
use wamp_proto::{Dict, Serializer};
use wamp_tests::cluster::{with_cluster, REALM};
use wamp_tests::interop::{python, python_script, ScriptPeer};
use wamp_tests::interop_meta::{results, sorted, MetaPeer};
use wamp_tests::RawPeer;

use crate::retained::retained_is;

const TEST: &str = "autobahn-python cluster meta API interop test";

/// An autobahn-python session (msgpack) on n1 lists and gets a Python session (JSON) on n3
/// and our raw sessions on n2 and n3, looks up and lists the subscription of n3 and the
/// registration of n2, then kills the session on n3, which autobahn sees as the router's
/// GOODBYE with the reason and message given.
#[tokio::test]
async fn a_python_session_on_one_node_queries_and_kills_sessions_of_others() {
    let Some(python) = python(TEST) else { return };
    with_cluster(async |c| {
        let (topic, procedure) = ("cl.imeta.tick", "cl.imeta.add");
        let (mut subscriber, sw) = RawPeer::join(&c.url(3), REALM, Serializer::Json).await;
        let subscription = subscriber.subscribe(topic, Dict::new()).await.get();
        let (mut callee, cw) = RawPeer::join(&c.url(2), REALM, Serializer::MsgPack).await;
        let registration = callee.register(procedure, Dict::new()).await.get();
        let (sub_session, callee_session) = (sw.session.get(), cw.session.get());
        let mut victim = MetaPeer::start(&python, &c.url(3), Serializer::Json, &["idle"]).await;
        assert_eq!(victim.until_ready().await, Vec::<Json>::new());

        let spec = json!([
            {"call": "wamp.session.list"},
            {"call": "wamp.session.get", "args": [victim.session]},
            {"call": "wamp.session.get", "args": [callee_session]},
            {"call": "wamp.session.get", "args": [1]},
            {"call": "wamp.subscription.lookup", "args": [topic]},
            {"call": "wamp.subscription.list_subscribers", "args": [subscription]},
            {"call": "wamp.subscription.count_subscribers", "args": [subscription]},
            {"call": "wamp.registration.lookup", "args": [procedure]},
            {"call": "wamp.registration.list_callees", "args": [registration]},
            {"call": "wamp.registration.get", "args": [registration]},
        ])
        .to_string();
        let mut asker =
            MetaPeer::start(&python, &c.url(1), Serializer::MsgPack, &["call", &spec]).await;
        let got = results(&asker.until_ready().await);
        assert_eq!(got.len(), 10, "one line per call: {got:#?}");
        let v: Vec<&Json> = got.iter().map(|(_, v)| v).collect();

        let listed = sorted(v[0]);
        for id in [asker.session, victim.session, sub_session, callee_session] {
            assert!(listed.contains(&id), "session.list has {id}: {listed:?}");
        }
        assert_eq!(v[1]["session"], victim.session, "session.get: {}", v[1]);
        assert_eq!(v[1]["authid"], victim.joined["authid"], "{}", v[1]);
        assert_eq!(v[1]["transport"]["serializer"], "json", "{}", v[1]);
        assert_eq!(v[2]["session"], callee_session, "session.get: {}", v[2]);
        assert_eq!(v[2]["transport"]["serializer"], "msgpack", "{}", v[2]);
        assert_eq!(v[3], &json!({"error": "wamp.error.no_such_session"}));
        assert_eq!(v[4], &json!(subscription), "subscription.lookup");
        assert_eq!(v[5], &json!([sub_session]), "list_subscribers");
        assert_eq!(v[6], &json!(1), "count_subscribers");
        assert_eq!(v[7], &json!(registration), "registration.lookup");
        assert_eq!(v[8], &json!([callee_session]), "list_callees");
        assert_eq!(v[9]["uri"], procedure, "registration.get: {}", v[9]);
        assert_eq!(v[9]["match"], "exact", "{}", v[9]);

        let kill = json!([{
            "call": "wamp.session.kill",
            "args": [victim.session],
            "kwargs": {"reason": "com.example.kicked", "message": "bye"},
        }]);
        asker.peer.write_line(&format!("call {kill}")).await;
        let got = results(&asker.until_ready().await);
        assert_eq!(got, vec![("wamp.session.kill".to_owned(), Json::Null)]);
        let left = json!({"left": {"reason": "com.example.kicked", "message": "bye"}});
        assert_eq!(
            victim.peer.line().await,
            left,
            "autobahn's CloseDetails on n3"
        );
        assert_eq!(victim.peer.succeed().await, Vec::<Json>::new());
        drop((subscriber, callee, asker));
    })
    .await;
}

/// An autobahn-python publisher (JSON) on n1 retains an event; once n2 has it, an
/// autobahn-python subscriber (CBOR) on n2 with `get_retained` receives it first, marked
/// `retained`, with the publication id the publisher was given.
#[tokio::test]
async fn a_python_subscriber_gets_what_a_python_publisher_retained_on_another_node() {
    let Some(python) = python(TEST) else { return };
    with_cluster(async |c| {
        let topic = "cl.imeta.retained";
        let spec = json!([{"arg": "kept", "options": {"retain": true}}]).to_string();
        let publisher = spawn(
            &python,
            &c.url(1),
            Serializer::Json,
            &["publish-options", topic, &spec],
        );
        let lines = publisher.succeed().await;
        let [line] = &lines[..] else {
            panic!("one publisher line: {lines:#?}")
        };
        assert_eq!(line["arg"], "kept", "{line}");
        let Some(publication) = line["published"].as_u64() else {
            panic!("a publication id: {line}")
        };

        // The bucket reaches n2 within milliseconds (docs/cluster.md D9): wait for it there.
        let (mut probe, _) = RawPeer::join(&c.url(2), REALM, Serializer::Json).await;
        let want = wamp_proto::Id::new(publication).expect("a valid id");
        retained_is(&mut probe, topic, "exact", want).await;

        let options = r#"{"get_retained": true}"#;
        let mut sub = spawn(
            &python,
            &c.url(2),
            Serializer::Cbor,
            &["subscribe-options", topic, "1", options],
        );
        let first = sub.line().await;
        let Some(subscription) = first["subscribed"].as_u64() else {
            panic!("expected {{\"subscribed\": ID}}, got {first}")
        };
        sub.ready().await;
        let details = json!({
            "subscription": subscription,
            "publication": publication,
            "retained": true,
            "topic": topic,
        });
        let want = vec![json!({"args": ["kept"], "kwargs": {}, "details": details})];
        assert_eq!(sub.succeed().await, want, "the retained event on n2");
        drop(probe);
    })
    .await;
}

/// `peer.py MODE...` against `url`.
fn spawn(python: &std::path::Path, url: &str, serializer: Serializer, mode: &[&str]) -> ScriptPeer {
    ScriptPeer::spawn(python, &python_script(), None, url, serializer, mode, false)
}
