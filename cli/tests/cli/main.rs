//! The `wamp` binary as a developer uses it: each test runs the built binary against the
//! real router started in-process, over WebSocket and RawSocket, with peers of our client
//! (and autobahn-python) on the other side.

#![allow(unreachable_pub)] // the harness's items are `pub` inside this test binary

mod auth;
mod harness;
mod interop;
mod meta;
mod pubsub;
mod rpc;

use wamp_client::{CallError, CallResult, Client, Invocation, Registration, Value};

/// What `wamp call` prints on stderr for `com.fail` (and peer.py's `PROC.fail`).
pub const FAILED_STDERR: &str =
    "com.example.error.failed: boom\n{\"args\":[42],\"kwargs\":{\"detail\":\"x\"}}\n";

/// Registers the procedures the `wamp call` tests call, on a session of our client:
/// `com.add` (sums its arguments), `com.echo` (returns args and kwargs as received) and
/// `com.fail` (the error `com.example.error.failed` with ["boom", 42] {"detail": "x"}).
pub async fn callee(url: &str) -> (Client, Vec<Registration>) {
    let client = Client::connect(url, "realm1").await.expect("callee joins");
    let add = client
        .register("com.add", |inv: Invocation| async move {
            let nums: Vec<i64> = inv.decode_args()?;
            Ok::<_, CallError>(Value::from(nums.iter().sum::<i64>()))
        })
        .await
        .expect("register com.add");
    let echo = client
        .register("com.echo", |inv: Invocation| async move {
            Ok::<_, CallError>(CallResult {
                args: inv.args,
                kwargs: inv.kwargs,
            })
        })
        .await
        .expect("register com.echo");
    let fail = client
        .register("com.fail", |_: Invocation| async move {
            Err::<(), _>(
                CallError::new("com.example.error.failed")
                    .with_args([Value::from("boom"), Value::UInt(42)])
                    .with_kwargs([("detail", "x")]),
            )
        })
        .await
        .expect("register com.fail");
    (client, vec![add, echo, fail])
}
