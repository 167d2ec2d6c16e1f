//! `wamp call` against an autobahn-python callee (tests/interop/python/peer.py `callee`).
//! Skipped with a notice when WAMP_INTEROP_PYTHON is unset, except under CI.

use serde_json::json;
use wamp_client::Serializer;
use wamp_tests::interop::{python, ScriptPeer};

use crate::harness::{run, wamp_at, Router};

#[tokio::test]
async fn call_an_autobahn_python_callee() {
    let Some(python) = python("wamp CLI interop test") else {
        return;
    };
    let r = Router::start().await;
    let mut peer = ScriptPeer::python(&python, r.ws(), Serializer::Json, &["callee", "com.py"]);
    peer.ready().await;
    for (url, ser) in [(r.ws(), "json"), (r.ws(), "msgpack"), (r.rs(), "msgpack")] {
        let out = run(wamp_at(
            url,
            &[
                "--serializer",
                ser,
                "call",
                "com.py",
                "1",
                "two",
                r#"{"$bytes": "00ff"}"#,
                "--kw",
                "k=v",
            ],
        ))
        .await
        .expect(0);
        assert_eq!(
            out.line(),
            json!({"args": [1, "two", {"$bytes": "00ff"}], "kwargs": {"k": "v"}}),
            "{url} {ser}"
        );
        // peer.py's PROC.fail raises ApplicationError("com.example.error.failed", "boom", 42,
        // detail="x").
        let out = run(wamp_at(url, &["--serializer", ser, "call", "com.py.fail"]))
            .await
            .expect(4);
        assert_eq!(out.stderr, crate::FAILED_STDERR);
    }
    peer.succeed().await;
}
