//! The payloads the interop peers send (`tests/interop/python/peer.py`, `js/peer.js`) and
//! the JSON lines they print for them, as our client sees and writes them; and the echo and
//! failing procedures our client registers for their callers.

use std::future::IntoFuture;

use serde_json::{json, Value as Json};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::timeout;
use wamp_client::{CallError, CallResult, Client, Dict, Invocation, Registration, Value};

use crate::WAIT;

/// What the peers' callers send (`CALL_ARGS`), with the exact value types our side decodes.
pub fn call_args() -> Vec<Value> {
    vec![
        Value::UInt(1),
        Value::from("two"),
        Value::Dict(Dict::from([("three".into(), Value::Float(3.5))])),
        Value::Null,
        Value::Bool(true),
        Value::Bytes(vec![0x00, 0x01, 0xff]),
    ]
}

/// The peers' `CALL_KWARGS`.
pub fn call_kwargs() -> Dict {
    Dict::from([
        ("k".into(), Value::from("v")),
        ("n".into(), Value::Int(-7)),
        ("b".into(), Value::Bytes(b"hi".to_vec())),
    ])
}

/// Event `i` of a publisher: args `[i, "text", b"\x00\x01\xff"]`...
pub fn event_args(i: u64) -> Vec<Value> {
    vec![
        Value::UInt(i),
        Value::from("text"),
        Value::Bytes(vec![0x00, 0x01, 0xff]),
    ]
}

/// ...and kwargs `{"seq": i}`.
pub fn event_kwargs(i: u64) -> Dict {
    Dict::from([("seq".into(), Value::UInt(i))])
}

/// A peer subscriber's line for event `i`.
pub fn event_line(i: u64) -> Json {
    json!({"args": [i, "text", {"$bytes": "0001ff"}], "kwargs": {"seq": i}})
}

/// A peer caller's first line: the echoed call payload.
pub fn echo_line() -> Json {
    json!({
        "result_args": [1, "two", {"three": 3.5}, null, true, {"$bytes": "0001ff"}],
        "result_kwargs": {"b": {"$bytes": "6869"}, "k": "v", "n": -7},
    })
}

/// A peer caller's line for `PROC.fail` (the error the peers' callees raise, and ours
/// return: [`failed_error`]).
pub fn failed_line() -> Json {
    json!({
        "error": "com.example.error.failed",
        "error_args": ["boom", 42],
        "error_kwargs": {"detail": "x"},
    })
}

/// The application error of `PROC.fail`.
pub fn failed_error() -> CallError {
    CallError::new("com.example.error.failed")
        .with_args([Value::from("boom"), Value::UInt(42)])
        .with_kwargs([("detail", "x")])
}

/// Checks a peer caller's three lines: the echo, `PROC.fail`'s error, and the router's
/// `no_such_procedure` for `com.example.nonexistent` (one text argument, the router's own).
pub fn assert_caller_lines(lines: &[Json]) {
    assert_eq!(lines.len(), 3, "caller lines: {lines:#?}");
    assert_eq!(lines[0], echo_line(), "echo");
    assert_eq!(lines[1], failed_line(), "PROC.fail");
    let missing = &lines[2];
    assert_eq!(
        missing["error"], "wamp.error.no_such_procedure",
        "{missing}"
    );
    assert!(
        matches!(
            missing["error_args"].as_array().map(Vec::as_slice),
            Some([Json::String(_)])
        ),
        "one text argument expected: {missing}"
    );
    assert_eq!(missing["error_kwargs"], json!({}), "{missing}");
    assert_eq!(missing.as_object().map(|o| o.len()), Some(3), "{missing}");
}

/// What an echo procedure was invoked with: (args, kwargs) per call.
pub type Seen = UnboundedReceiver<(Vec<Value>, Dict)>;

/// Registers `procedure` on `callee`: it returns its arguments and reports each call's.
pub async fn register_echo(callee: &Client, procedure: &str) -> (Registration, Seen) {
    let (seen_tx, seen_rx) = unbounded_channel();
    let reg = callee.register(procedure, move |inv: Invocation| {
        let _ = seen_tx.send((inv.args.clone(), inv.kwargs.clone()));
        async move {
            Ok::<_, CallError>(
                CallResult::new()
                    .with_args(inv.args)
                    .with_kwargs(inv.kwargs),
            )
        }
    });
    let reg = timeout(WAIT, reg.into_future())
        .await
        .expect("register in time")
        .unwrap_or_else(|e| panic!("register {procedure}: {e:?}"));
    (reg, seen_rx)
}

/// Registers `procedure` on `callee`: it fails with `error`.
pub async fn register_failing(callee: &Client, procedure: &str, error: CallError) -> Registration {
    let reg = callee.register(procedure, move |_inv: Invocation| {
        let error = error.clone();
        async move { Err::<CallResult, _>(error) }
    });
    timeout(WAIT, reg.into_future())
        .await
        .expect("register in time")
        .unwrap_or_else(|e| panic!("register {procedure}: {e:?}"))
}
