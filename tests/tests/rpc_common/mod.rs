//! Helpers shared by the advanced RPC test files: peers announcing features, and one-line
//! REGISTER / CALL / YIELD / CANCEL with their expected answers.
#![allow(dead_code)]

use wamp_proto::message::*;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{RawPeer, TestRouter};

/// The callee features most tests need.
pub(crate) const CANCELING: &[(&str, &str)] = &[("callee", "call_canceling")];
/// A callee that streams results (the spec requires `call_canceling` with it).
pub(crate) const PROGRESSIVE_CALLEE: &[(&str, &str)] = &[
    ("callee", "call_canceling"),
    ("callee", "progressive_call_results"),
    ("callee", "progressive_call_invocations"),
];
/// A caller that streams invocations.
pub(crate) const PROGRESSIVE_CALLER: &[(&str, &str)] =
    &[("caller", "progressive_call_invocations")];

/// Joins `realm1` with all four roles, announcing `features` as `(role, feature)` pairs.
pub(crate) async fn join_with(
    router: &TestRouter,
    ser: Serializer,
    features: &[(&str, &str)],
) -> RawPeer {
    RawPeer::join_with_features(router.url(), "realm1", ser, features).await
}

/// Joins announcing no features.
pub(crate) async fn join(router: &TestRouter, ser: Serializer) -> RawPeer {
    join_with(router, ser, &[]).await
}

/// Options from key/value pairs.
pub(crate) fn opts<const N: usize>(pairs: [(&str, Value); N]) -> Dict {
    dict(pairs)
}

/// Sends REGISTER and returns the reply (REGISTERED or ERROR).
pub(crate) async fn try_register(p: &mut RawPeer, procedure: &str, options: Dict) -> Message {
    let r = p.request();
    p.send(
        &Register {
            request: r,
            options,
            procedure: Uri::new(procedure),
        }
        .into(),
    )
    .await;
    let m = p.recv().await;
    match &m {
        Message::Registered(x) => assert_eq!(x.request, r),
        Message::Error(e) => assert_eq!((e.request_type, e.request), (code::REGISTER, r)),
        other => panic!("expected REGISTERED or ERROR, got {other:?}"),
    }
    m
}

/// Registers and returns the registration id.
pub(crate) async fn register(p: &mut RawPeer, procedure: &str, options: Dict) -> Id {
    match try_register(p, procedure, options).await {
        Message::Registered(r) => r.registration,
        other => panic!("expected REGISTERED for {procedure}, got {other:?}"),
    }
}

/// Registers and expects ERROR `uri`.
pub(crate) async fn register_fails(p: &mut RawPeer, procedure: &str, options: Dict, uri: &str) {
    match try_register(p, procedure, options).await {
        Message::Error(e) => assert_eq!(e.error.as_str(), uri, "{procedure}: {e:?}"),
        other => panic!("expected ERROR {uri} for {procedure}, got {other:?}"),
    }
}

/// Sends CALL with a fresh request id.
pub(crate) async fn call(p: &mut RawPeer, procedure: &str, options: Dict, payload: Payload) -> Id {
    p.send_call_with(procedure, options, payload).await
}

/// Sends CALL with a given request id (progressive chunks reuse it).
pub(crate) async fn call_again(
    p: &mut RawPeer,
    r: Id,
    procedure: &str,
    options: Dict,
    payload: Payload,
) {
    p.send(
        &Call {
            request: r,
            options,
            procedure: Uri::new(procedure),
            payload,
        }
        .into(),
    )
    .await;
}

pub(crate) async fn invocation(p: &mut RawPeer) -> Invocation {
    match p.recv().await {
        Message::Invocation(i) => i,
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

pub(crate) async fn interrupt(p: &mut RawPeer) -> Interrupt {
    match p.recv().await {
        Message::Interrupt(i) => i,
        other => panic!("expected INTERRUPT, got {other:?}"),
    }
}

pub(crate) async fn result(p: &mut RawPeer) -> wamp_proto::message::Result {
    match p.recv().await {
        Message::Result(r) => r,
        other => panic!("expected RESULT, got {other:?}"),
    }
}

/// Expects ERROR `uri` for CALL `request`.
pub(crate) async fn call_error(p: &mut RawPeer, request: Id, uri: &str) -> Error {
    match p.recv().await {
        Message::Error(e) => {
            assert_eq!(
                (e.request_type, e.request, e.error.as_str()),
                (code::CALL, request, uri),
                "{e:?}"
            );
            e
        }
        other => panic!("expected ERROR {uri}, got {other:?}"),
    }
}

pub(crate) async fn yield_(p: &mut RawPeer, invocation: Id, options: Dict, payload: Payload) {
    p.send(
        &Yield {
            request: invocation,
            options,
            payload,
        }
        .into(),
    )
    .await;
}

pub(crate) async fn yield_error(p: &mut RawPeer, invocation: Id, uri: &str) {
    p.send(
        &Error {
            request_type: code::INVOCATION,
            request: invocation,
            details: Dict::new(),
            error: Uri::new(uri),
            payload: Payload::default(),
        }
        .into(),
    )
    .await;
}

pub(crate) async fn cancel(p: &mut RawPeer, request: Id, mode: Option<&str>) {
    let options = match mode {
        Some(m) => dict([("mode", m.into())]),
        None => Dict::new(),
    };
    p.send(&Cancel { request, options }.into()).await;
}

/// Round trip through the router: everything queued to `p` before this call's reply was
/// already received, so the next `recv` proves what was (not) sent earlier.
pub(crate) async fn sync(p: &mut RawPeer) {
    let r = call(p, "com.sync.nobody", Dict::new(), Payload::default()).await;
    call_error(p, r, uris::NO_SUCH_PROCEDURE).await;
}

/// `args[0]` as a number.
pub(crate) fn arg0(p: &Payload) -> u64 {
    p.args
        .as_ref()
        .and_then(|a| a.first())
        .and_then(Value::as_u64)
        .expect("args[0] is a number")
}

pub(crate) fn n(v: u64) -> Payload {
    Payload::args(vec![v.into()])
}
