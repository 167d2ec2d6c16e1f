//! Clients we did not write, across nodes: autobahn-python peers (`tests/interop/python/
//! peer.py`) on different nodes of one cluster, each with another serializer.
//!
//! Needs `WAMP_INTEROP_PYTHON` (`scripts/test-all.sh` sets it); without it the tests skip with
//! a notice, or fail when `CI` is set.

use wamp_proto::Serializer;
use wamp_proto::{Message, Payload};
use wamp_tests::cluster::{call_served, with_cluster, REALM};
use wamp_tests::interop::{python, ScriptPeer};
use wamp_tests::payloads::{assert_caller_lines, event_line};
use wamp_tests::RawPeer;

/// An autobahn-python callee (JSON) on n2, an autobahn-python caller (MessagePack) on n1:
/// the echo comes back exact, the callee's error with its URI and arguments, an unknown
/// procedure is `no_such_procedure`.
#[tokio::test]
async fn python_caller_and_callee_on_different_nodes() {
    let Some(python) = python("autobahn-python cluster interop test") else {
        return;
    };
    with_cluster(async |c| {
        let proc_ = "cl.interop.py_echo";
        let mut callee =
            ScriptPeer::python(&python, &c.url(2), Serializer::Json, &["callee", proc_]);
        callee.ready().await;
        // Both procedures visible on n1 before the Python caller starts (a documented window).
        let (mut probe, _) = RawPeer::join(&c.url(1), REALM, Serializer::Json).await;
        for p in [proc_.to_owned(), format!("{proc_}.fail")] {
            let m = call_served(&mut probe, &p, Payload::default()).await;
            assert!(
                matches!(m, Message::Result(_) | Message::Error(_)),
                "{p}: {m:?}"
            );
        }
        let caller =
            ScriptPeer::python(&python, &c.url(1), Serializer::MsgPack, &["caller", proc_]);
        assert_caller_lines(&caller.succeed().await);
        drop(callee);
    })
    .await;
}

/// An autobahn-python publisher (JSON) on n1, an autobahn-python subscriber (CBOR) on n3:
/// every event arrives, in order, with its exact payload (bytes included).
#[tokio::test]
async fn python_publisher_and_subscriber_on_different_nodes() {
    let Some(python) = python("autobahn-python cluster interop test") else {
        return;
    };
    with_cluster(async |c| {
        let topic = "cl.interop.py_events";
        let mut sub = ScriptPeer::python(
            &python,
            &c.url(3),
            Serializer::Cbor,
            &["subscriber", topic, "5"],
        );
        sub.ready().await;
        let publisher = ScriptPeer::python(
            &python,
            &c.url(1),
            Serializer::Json,
            &["publisher", topic, "5"],
        );
        publisher.succeed().await;
        let lines = sub.succeed().await;
        let want: Vec<_> = (0..5).map(event_line).collect();
        assert_eq!(lines, want, "the subscriber's events on n3");
    })
    .await;
}
