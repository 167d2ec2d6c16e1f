//! Cross-node RPC: callee on n2, caller on n1. Each test's first call is retried while it
//! answers `no_such_procedure` (a registration takes milliseconds to reach other nodes).

use std::time::Duration;

use tokio::time::{timeout, Instant};
use wamp_proto::message::*;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::cluster::{invoke_routed, with_cluster, Cluster, REALM};
use wamp_tests::RawPeer;

use crate::rpc_common::{
    arg0, call, call_again, call_error, cancel, interrupt, invocation, n, result, yield_,
    CANCELING, PROGRESSIVE_CALLEE, PROGRESSIVE_CALLER,
};

/// A caller on n1 and a callee on n2 that registered `procedure`, each announcing its
/// features.
async fn pair(
    c: &Cluster,
    procedure: &str,
    caller_features: &[(&str, &str)],
    callee_features: &[(&str, &str)],
) -> (RawPeer, RawPeer) {
    let mut callee =
        RawPeer::join_with_features(&c.url(2), REALM, Serializer::MsgPack, callee_features).await;
    callee.register(procedure, Dict::new()).await;
    let caller =
        RawPeer::join_with_features(&c.url(1), REALM, Serializer::Json, caller_features).await;
    (caller, callee)
}

/// A registration on n2 is callable on n1 within a second (retried while it is not); CALL
/// with args and kwargs, then RESULT; a callee's ERROR with its URI and args; caller
/// disclosure gives the callee the caller's session id (on n1).
#[tokio::test]
async fn call_result_error_and_caller_disclosure() {
    with_cluster(async |c| {
        let (mut caller, mut callee) = pair(c, "cl.rpc.echo", &[], &[]).await;
        let registered = Instant::now();
        let payload = Payload::new(
            Some(vec![1.into(), "two".into(), Value::Bytes(vec![0, 255])]),
            Some(dict([("k", Value::List(vec![true.into()]))])),
        );
        let (r, inv) = invoke_routed(
            &mut caller,
            &mut callee,
            "cl.rpc.echo",
            Dict::new(),
            payload.clone(),
        )
        .await;
        let window = registered.elapsed();
        assert!(
            window < Duration::from_secs(1),
            "callable on n1 only after {window:?}"
        );
        assert_eq!(inv.payload, payload);
        assert!(
            !inv.details.contains_key("caller"),
            "not disclosed: {inv:?}"
        );
        yield_(&mut callee, inv.request, Dict::new(), inv.payload).await;
        let res = result(&mut caller).await;
        assert_eq!((res.request, &res.payload), (r, &payload));

        let r = call(&mut caller, "cl.rpc.echo", Dict::new(), Payload::default()).await;
        let inv = invocation(&mut callee).await;
        let error = Error {
            request_type: code::INVOCATION,
            request: inv.request,
            details: Dict::new(),
            error: Uri::new("com.app.failed"),
            payload: Payload::args(vec!["why".into()]),
        };
        callee.send(&error.into()).await;
        let e = call_error(&mut caller, r, "com.app.failed").await;
        assert_eq!(e.payload.args, Some(vec!["why".into()]));

        let me = caller.session.expect("joined").get();
        let disclose = dict([("disclose_me", true.into())]);
        call(&mut caller, "cl.rpc.echo", disclose, Payload::default()).await;
        let inv = invocation(&mut callee).await;
        assert_eq!(inv.details.get("caller"), Some(&Value::UInt(me)), "{inv:?}");
    })
    .await;
}

/// Progressive results: three `progress: true` RESULTs then the final one, in order.
#[tokio::test]
async fn progressive_results_cross_nodes_in_order() {
    with_cluster(async |c| {
        let (mut caller, mut callee) = pair(c, "cl.rpc.stream", &[], PROGRESSIVE_CALLEE).await;
        let options = dict([("receive_progress", true.into())]);
        let (r, inv) =
            invoke_routed(&mut caller, &mut callee, "cl.rpc.stream", options, n(0)).await;
        for i in 1..=4 {
            let options = match i {
                4 => Dict::new(),
                _ => dict([("progress", true.into())]),
            };
            yield_(&mut callee, inv.request, options, n(i)).await;
        }
        for i in 1..=4 {
            let res = result(&mut caller).await;
            assert_eq!((res.request, arg0(&res.payload)), (r, i));
            let progress = res.details.get("progress").and_then(Value::as_bool);
            assert_eq!(progress.unwrap_or(false), i < 4, "result {i}: {res:?}");
        }
    })
    .await;
}

/// Progressive invocations: CALL chunks of one request id reach the callee in order as
/// INVOCATIONs of one id, the last without `progress`.
#[tokio::test]
async fn progressive_invocations_cross_nodes_in_order() {
    with_cluster(async |c| {
        let (mut caller, mut callee) =
            pair(c, "cl.rpc.upload", PROGRESSIVE_CALLER, PROGRESSIVE_CALLEE).await;
        let progress = || dict([("progress", true.into())]);
        let (r, first) =
            invoke_routed(&mut caller, &mut callee, "cl.rpc.upload", progress(), n(0)).await;
        for i in 1..=5 {
            let options = if i < 5 { progress() } else { Dict::new() };
            call_again(&mut caller, r, "cl.rpc.upload", options, n(i)).await;
        }
        for i in 1..=5 {
            let inv = invocation(&mut callee).await;
            assert_eq!((inv.request, arg0(&inv.payload)), (first.request, i));
            let p = inv.details.get("progress").and_then(Value::as_bool);
            assert_eq!(p.unwrap_or(false), i < 5, "chunk {i}: {inv:?}");
        }
        yield_(&mut callee, first.request, Dict::new(), n(99)).await;
        let res = result(&mut caller).await;
        assert_eq!((res.request, arg0(&res.payload)), (r, 99));
    })
    .await;
}

/// CANCEL across nodes in each mode: `skip` answers at once and sends no INTERRUPT,
/// `kill` waits for the callee's answer to its INTERRUPT, `killnowait` does both at once.
#[tokio::test]
async fn cancel_modes_across_nodes() {
    with_cluster(async |c| {
        let (mut caller, mut callee) = pair(c, "cl.rpc.slow", &[], CANCELING).await;
        let (r, _inv) =
            invoke_routed(&mut caller, &mut callee, "cl.rpc.slow", Dict::new(), n(1)).await;
        cancel(&mut caller, r, Some("skip")).await;
        call_error(&mut caller, r, uris::CANCELED).await;
        // CANCEL and the next CALL travel in order: an INTERRUPT would come first.
        call(&mut caller, "cl.rpc.slow", Dict::new(), n(2)).await;
        let inv = invocation(&mut callee).await;
        assert_eq!(arg0(&inv.payload), 2, "no INTERRUPT in skip mode");

        let r = call(&mut caller, "cl.rpc.slow", Dict::new(), n(3)).await;
        let inv = invocation(&mut callee).await;
        assert_eq!(arg0(&inv.payload), 3);
        cancel(&mut caller, r, Some("kill")).await;
        let int = interrupt(&mut callee).await;
        assert_eq!(int.request, inv.request);
        let error = Error {
            request_type: code::INVOCATION,
            request: inv.request,
            details: Dict::new(),
            error: Uri::new(uris::CANCELED),
            payload: Payload::args(vec!["by the callee".into()]),
        };
        callee.send(&error.into()).await;
        let e = call_error(&mut caller, r, uris::CANCELED).await;
        assert_eq!(
            e.payload.args,
            Some(vec!["by the callee".into()]),
            "the callee's ERROR"
        );

        let r = call(&mut caller, "cl.rpc.slow", Dict::new(), n(4)).await;
        let inv = invocation(&mut callee).await;
        assert_eq!(arg0(&inv.payload), 4);
        cancel(&mut caller, r, Some("killnowait")).await;
        call_error(&mut caller, r, uris::CANCELED).await;
        assert_eq!(interrupt(&mut callee).await.request, inv.request);
    })
    .await;
}

/// `timeout: 500` to a callee that never answers: `wamp.error.timeout` within 1.5 s.
#[tokio::test]
async fn call_timeout_across_nodes() {
    with_cluster(async |c| {
        let (mut caller, mut callee) = pair(c, "cl.rpc.mute", &[], CANCELING).await;
        // Routed first, so that the timed call's clock starts with a reachable callee.
        let (_, inv) =
            invoke_routed(&mut caller, &mut callee, "cl.rpc.mute", Dict::new(), n(0)).await;
        yield_(&mut callee, inv.request, Dict::new(), n(0)).await;
        result(&mut caller).await;
        let start = Instant::now();
        let options = dict([("timeout", 500.into())]);
        let r = call(&mut caller, "cl.rpc.mute", options, n(1)).await;
        assert_eq!(arg0(&invocation(&mut callee).await.payload), 1);
        let answer = timeout(Duration::from_millis(1500), caller.recv()).await;
        let elapsed = start.elapsed();
        match answer {
            Ok(Message::Error(e)) => assert_eq!(
                (e.request, e.error.as_str()),
                (r, uris::TIMEOUT),
                "after {elapsed:?}"
            ),
            Ok(other) => panic!("expected ERROR timeout, got {other:?}"),
            Err(_) => panic!("no ERROR within 1.5 s of a call with timeout 500 ms"),
        }
    })
    .await;
}

/// A callee that closes its connection with a call in flight: the caller on n1 gets ERROR
/// `wamp.error.canceled`.
#[tokio::test]
async fn callee_leaving_cancels_its_calls() {
    with_cluster(async |c| {
        let (mut caller, mut callee) = pair(c, "cl.rpc.gone", &[], &[]).await;
        let (r, _) =
            invoke_routed(&mut caller, &mut callee, "cl.rpc.gone", Dict::new(), n(0)).await;
        drop(callee);
        call_error(&mut caller, r, uris::CANCELED).await;
    })
    .await;
}
