//! Advanced RPC over real sockets, the parts where a call is more than one request and one
//! answer: progressive results and invocations, canceling, timeouts, and either side leaving.

use crate::rpc_common::*;
use wamp_proto::message::*;
use wamp_proto::{uris, Dict, Id, Payload, Serializer, Value};
use wamp_tests::{RawPeer, TestRouter};

fn progress(on: bool) -> Dict {
    opts([("progress", on.into())])
}

#[tokio::test]
async fn progressive_results_stream_in_order_and_the_final_one_closes() {
    let router = TestRouter::start().await;
    let mut callee = join_with(&router, Serializer::MsgPack, PROGRESSIVE_CALLEE).await;
    let mut caller = join(&router, Serializer::Json).await;
    register(&mut callee, "com.stream", Dict::new()).await;
    let r = call(
        &mut caller,
        "com.stream",
        opts([("receive_progress", true.into())]),
        n(0),
    )
    .await;
    let inv = invocation(&mut callee).await;
    assert_eq!(
        inv.details.get("receive_progress"),
        Some(&Value::Bool(true))
    );
    for i in 1..=3 {
        yield_(&mut callee, inv.request, progress(true), n(i)).await;
    }
    yield_(&mut callee, inv.request, Dict::new(), n(4)).await;
    for i in 1..=4 {
        let res = result(&mut caller).await;
        assert_eq!((res.request, arg0(&res.payload)), (r, i));
        assert_eq!(
            res.details.get("progress"),
            (i < 4).then_some(&Value::Bool(true))
        );
    }
    // The call is closed: a late progressive YIELD is ignored, not forwarded.
    yield_(&mut callee, inv.request, progress(true), n(5)).await;
    sync(&mut callee).await;
    sync(&mut caller).await;
}

#[tokio::test]
async fn receive_progress_reaches_every_callee_and_only_when_the_caller_asked() {
    let router = TestRouter::start().await;
    let mut plain = join_with(&router, Serializer::Json, CANCELING).await;
    let mut streaming = join_with(&router, Serializer::Json, PROGRESSIVE_CALLEE).await;
    let mut caller = join(&router, Serializer::MsgPack).await;
    register(&mut plain, "com.plain", Dict::new()).await;
    register(&mut streaming, "com.streaming", Dict::new()).await;
    // Passed on even to a callee that announced no progressive_call_results (the spec
    // allows it; wampy.js callees announce no features and check only the flag).
    call(
        &mut caller,
        "com.plain",
        opts([("receive_progress", true.into())]),
        n(0),
    )
    .await;
    assert_eq!(
        invocation(&mut plain).await.details.get("receive_progress"),
        Some(&true.into())
    );
    // A caller that did not ask gets only the final result.
    let r = call(&mut caller, "com.streaming", Dict::new(), n(0)).await;
    let inv = invocation(&mut streaming).await;
    assert!(!inv.details.contains_key("receive_progress"));
    yield_(&mut streaming, inv.request, progress(true), n(1)).await;
    yield_(&mut streaming, inv.request, Dict::new(), n(2)).await;
    let res = result(&mut caller).await;
    assert_eq!((res.request, arg0(&res.payload)), (r, 2));
    assert!(res.details.is_empty());
}

#[tokio::test]
async fn progressive_invocations_reach_one_callee_under_one_invocation_id() {
    let router = TestRouter::start().await;
    let mut a = join_with(&router, Serializer::Json, PROGRESSIVE_CALLEE).await;
    let mut b = join_with(&router, Serializer::MsgPack, PROGRESSIVE_CALLEE).await;
    let mut caller = join_with(&router, Serializer::MsgPack, PROGRESSIVE_CALLER).await;
    let rr = || opts([("invoke", "roundrobin".into())]);
    let reg = register(&mut a, "com.upload", rr()).await;
    register(&mut b, "com.upload", rr()).await;
    let r = call(&mut caller, "com.upload", progress(true), n(1)).await;
    call_again(&mut caller, r, "com.upload", progress(true), n(2)).await;
    call_again(&mut caller, r, "com.upload", Dict::new(), n(3)).await;
    let first = invocation(&mut a).await;
    assert_eq!(first.registration, reg);
    for i in 1..=3 {
        let inv = if i == 1 {
            first.clone()
        } else {
            invocation(&mut a).await
        };
        assert_eq!((inv.request, arg0(&inv.payload)), (first.request, i));
        assert_eq!(
            inv.details.get("progress"),
            (i < 3).then_some(&Value::Bool(true))
        );
    }
    sync(&mut b).await; // no chunk went to the other callee
    yield_(&mut a, first.request, Dict::new(), n(6)).await;
    let res = result(&mut caller).await;
    assert_eq!((res.request, arg0(&res.payload)), (r, 6));
}

#[tokio::test]
async fn progressive_invocation_chunks_after_the_end_are_dropped() {
    let router = TestRouter::start().await;
    let mut callee = join_with(&router, Serializer::Json, PROGRESSIVE_CALLEE).await;
    let mut caller = join_with(&router, Serializer::Json, PROGRESSIVE_CALLER).await;
    register(&mut callee, "com.early", Dict::new()).await;
    let r = call(&mut caller, "com.early", progress(true), n(1)).await;
    let inv = invocation(&mut callee).await;
    // The callee answers before the caller's final chunk: the rest of the stream is dropped.
    yield_(&mut callee, inv.request, Dict::new(), n(9)).await;
    assert_eq!(result(&mut caller).await.request, r);
    call_again(&mut caller, r, "com.early", progress(true), n(2)).await;
    call_again(&mut caller, r, "com.early", Dict::new(), n(3)).await;
    sync(&mut caller).await;
    sync(&mut callee).await;
}

#[tokio::test]
async fn progressive_invocation_feature_checks() {
    let router = TestRouter::start().await;
    let mut callee = join_with(&router, Serializer::Json, CANCELING).await;
    let mut caller = join_with(&router, Serializer::Json, PROGRESSIVE_CALLER).await;
    register(&mut callee, "com.nostream", Dict::new()).await;
    // A callee without the feature: ERROR once, and the stream's later chunks are dropped.
    let r = call(&mut caller, "com.nostream", progress(true), n(1)).await;
    call_error(&mut caller, r, uris::FEATURE_NOT_SUPPORTED).await;
    call_again(&mut caller, r, "com.nostream", Dict::new(), n(2)).await;
    sync(&mut caller).await;
    sync(&mut callee).await;
    // A caller that did not announce it commits a protocol violation.
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let mut rude = join(&router, ser).await;
        call(&mut rude, "com.nostream", progress(true), n(1)).await;
        rude.expect_abort(uris::PROTOCOL_VIOLATION).await;
    }
    // So is reusing the request id of a call still in flight (not a stream).
    let mut rude = join(&router, Serializer::Json).await;
    let r = call(&mut rude, "com.nostream", Dict::new(), n(1)).await;
    invocation(&mut callee).await;
    call_again(&mut rude, r, "com.nostream", Dict::new(), n(2)).await;
    rude.expect_abort(uris::PROTOCOL_VIOLATION).await;
}

/// A callee with `call_canceling`, a caller, and one call in flight between them.
async fn call_in_flight(router: &TestRouter, procedure: &str) -> (RawPeer, RawPeer, Id, Id) {
    let mut callee = join_with(router, Serializer::MsgPack, CANCELING).await;
    let mut caller = join(router, Serializer::Json).await;
    register(&mut callee, procedure, Dict::new()).await;
    let r = call(&mut caller, procedure, Dict::new(), n(1)).await;
    let inv = invocation(&mut callee).await.request;
    (callee, caller, r, inv)
}

fn mode_of(i: &Interrupt) -> &str {
    i.options.get("mode").and_then(Value::as_str).unwrap_or("")
}

#[tokio::test]
async fn cancel_skip_answers_at_once_and_tells_the_callee_nothing() {
    let router = TestRouter::start().await;
    let (mut callee, mut caller, r, inv) = call_in_flight(&router, "com.skip").await;
    cancel(&mut caller, r, Some("skip")).await;
    call_error(&mut caller, r, uris::CANCELED).await;
    sync(&mut caller).await;
    sync(&mut callee).await; // no INTERRUPT
                             // The late answer is ignored, not a violation; repeated CANCELs are ignored too.
    yield_(&mut callee, inv, Dict::new(), n(1)).await;
    cancel(&mut caller, r, Some("skip")).await;
    sync(&mut callee).await;
    sync(&mut caller).await;
}

#[tokio::test]
async fn cancel_killnowait_is_the_default_mode() {
    let router = TestRouter::start().await;
    for mode in [Some("killnowait"), None] {
        let procedure = format!("com.knw.{mode:?}").replace(['(', ')', '"'], "");
        let (mut callee, mut caller, r, inv) = call_in_flight(&router, &procedure).await;
        cancel(&mut caller, r, mode).await;
        call_error(&mut caller, r, uris::CANCELED).await;
        let i = interrupt(&mut callee).await;
        assert_eq!((i.request, mode_of(&i)), (inv, "killnowait"));
        yield_error(&mut callee, inv, uris::CANCELED).await;
        sync(&mut callee).await;
        sync(&mut caller).await; // the callee's late ERROR was dropped
    }
}

#[tokio::test]
async fn cancel_kill_waits_for_the_callee_and_forwards_its_answer() {
    let router = TestRouter::start().await;
    for answer_with_result in [false, true] {
        let procedure = format!("com.kill.{answer_with_result}");
        let (mut callee, mut caller, r, inv) = call_in_flight(&router, &procedure).await;
        cancel(&mut caller, r, Some("kill")).await;
        let i = interrupt(&mut callee).await;
        assert_eq!((i.request, mode_of(&i)), (inv, "kill"));
        cancel(&mut caller, r, Some("kill")).await; // repeated: ignored
        sync(&mut caller).await; // nothing for the caller yet
        sync(&mut callee).await; // no second INTERRUPT
        if answer_with_result {
            // The result won the race: it is forwarded.
            yield_(&mut callee, inv, Dict::new(), n(5)).await;
            assert_eq!(arg0(&result(&mut caller).await.payload), 5);
        } else {
            yield_error(&mut callee, inv, uris::CANCELED).await;
            call_error(&mut caller, r, uris::CANCELED).await;
        }
    }
}

#[tokio::test]
async fn cancel_to_a_callee_without_canceling_is_skip() {
    let router = TestRouter::start().await;
    let mut callee = join(&router, Serializer::Json).await;
    let mut caller = join(&router, Serializer::Json).await;
    register(&mut callee, "com.deaf", Dict::new()).await;
    for mode in ["kill", "killnowait"] {
        let r = call(&mut caller, "com.deaf", Dict::new(), n(1)).await;
        invocation(&mut callee).await;
        cancel(&mut caller, r, Some(mode)).await;
        call_error(&mut caller, r, uris::CANCELED).await;
        sync(&mut caller).await;
        sync(&mut callee).await; // no INTERRUPT
    }
}

#[tokio::test]
async fn cancel_of_unknown_calls_is_ignored_and_a_bad_mode_is_a_violation() {
    let router = TestRouter::start().await;
    let (_callee, mut caller, r, _) = call_in_flight(&router, "com.bad.mode").await;
    cancel(&mut caller, Id::new(999).unwrap(), Some("kill")).await;
    sync(&mut caller).await;
    cancel(&mut caller, r, Some("later")).await;
    caller.expect_abort(uris::PROTOCOL_VIOLATION).await;
}

#[tokio::test]
async fn timeout_interrupts_the_callee_and_answers_timeout() {
    let router = TestRouter::start().await;
    let mut callee = join_with(&router, Serializer::Json, CANCELING).await;
    let mut deaf = join(&router, Serializer::MsgPack).await;
    let mut caller = join(&router, Serializer::MsgPack).await;
    register(&mut callee, "com.slow", Dict::new()).await;
    register(&mut deaf, "com.slow.deaf", Dict::new()).await;
    let t = |ms: u64| opts([("timeout", ms.into())]);
    // Answered in time: no timeout later (the next, later-firing timeout comes first).
    let r1 = call(&mut caller, "com.slow", t(5_000), n(1)).await;
    let inv = invocation(&mut callee).await;
    assert_eq!(inv.details.get("timeout"), Some(&Value::from(5_000u64)));
    yield_(&mut callee, inv.request, Dict::new(), n(1)).await;
    assert_eq!(result(&mut caller).await.request, r1);
    let r2 = call(&mut caller, "com.slow", t(30), n(2)).await;
    let inv = invocation(&mut callee).await;
    call_error(&mut caller, r2, uris::TIMEOUT).await;
    let i = interrupt(&mut callee).await;
    assert_eq!((i.request, mode_of(&i)), (inv.request, "killnowait"));
    yield_(&mut callee, inv.request, Dict::new(), n(2)).await; // late: dropped
    sync(&mut caller).await;
    // A callee that cannot be interrupted is not told.
    let r3 = call(&mut caller, "com.slow.deaf", t(30), n(3)).await;
    invocation(&mut deaf).await;
    call_error(&mut caller, r3, uris::TIMEOUT).await;
    sync(&mut deaf).await;
    // A bad timeout is refused; one too large for the clock is no timeout.
    let soon = opts([("timeout", "soon".into())]);
    let r4 = call(&mut caller, "com.slow", soon, n(4)).await;
    call_error(&mut caller, r4, uris::INVALID_ARGUMENT).await;
    let r5 = call(&mut caller, "com.slow", t(u64::MAX), n(5)).await;
    let inv = invocation(&mut callee).await;
    yield_(&mut callee, inv.request, Dict::new(), n(5)).await;
    assert_eq!(result(&mut caller).await.request, r5);
}

#[tokio::test]
async fn callee_leaving_ends_a_progressive_stream_with_canceled() {
    let router = TestRouter::start().await;
    let mut callee = join_with(&router, Serializer::Json, PROGRESSIVE_CALLEE).await;
    let mut caller = join(&router, Serializer::MsgPack).await;
    register(&mut callee, "com.dying", Dict::new()).await;
    let o = opts([
        ("receive_progress", true.into()),
        ("timeout", 60_000u64.into()),
    ]);
    let r = call(&mut caller, "com.dying", o, n(0)).await;
    let inv = invocation(&mut callee).await;
    yield_(&mut callee, inv.request, progress(true), n(1)).await;
    let res = result(&mut caller).await;
    assert_eq!(res.details.get("progress"), Some(&Value::Bool(true)));
    drop(callee);
    call_error(&mut caller, r, uris::CANCELED).await;
}

#[tokio::test]
async fn caller_leaving_interrupts_callees_that_can_cancel() {
    let router = TestRouter::start().await;
    let (mut callee, mut caller, _, inv) = call_in_flight(&router, "com.orphan").await;
    caller
        .send(
            &Goodbye {
                details: Dict::new(),
                reason: wamp_proto::Uri::new(uris::CLOSE_NORMAL),
            }
            .into(),
        )
        .await;
    // The GOODBYE reply; the transport stays open for a new session.
    assert!(matches!(caller.recv().await, Message::Goodbye(_)));
    let i = interrupt(&mut callee).await;
    assert_eq!((i.request, mode_of(&i)), (inv, "killnowait"));
    // Its late answer is ignored.
    yield_(&mut callee, inv, Dict::new(), Payload::default()).await;
    sync(&mut callee).await;
}
