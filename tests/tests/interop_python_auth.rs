//! Authentication interop with autobahn-python: its own ticket, WAMP-CRA (plain and salted:
//! `auth.compute_wcs`, `auth.derive_key`) and cryptosign (`CryptosignKey`, with and without
//! an authid) against our router, over WebSocket and RawSocket, its refusals, and an
//! authenticated autobahn callee and caller with the router's forced caller disclosure.
//!
//! Each test runs the router in-process and `tests/interop/python/auth_peer.py` (peer.py's
//! session machinery, authenticating; see its docstring for its lines) as a child process,
//! in the scenarios of `wamp_tests::interop_auth` (shared with `interop_js_auth.rs`).
//!
//! Needs `WAMP_INTEROP_PYTHON` with autobahn's cryptosign dependencies (PyNaCl; see
//! `requirements.txt`): skipped with a notice without it, failed under CI.

use wamp_client::Serializer;
use wamp_tests::interop_auth::{self as scenario, AuthPeer};

fn peer() -> Option<AuthPeer> {
    AuthPeer::python("autobahn-python auth interop test")
}

#[tokio::test]
async fn autobahn_python_logs_in_with_a_ticket() {
    let Some(peer) = peer() else { return };
    scenario::ticket(&peer, 0, Serializer::Json).await;
}

#[tokio::test]
async fn autobahn_python_logs_in_with_a_ticket_over_rawsocket_msgpack() {
    let Some(peer) = peer() else { return };
    scenario::ticket(&peer, 1, Serializer::MsgPack).await;
}

#[tokio::test]
async fn autobahn_python_logs_in_with_wampcra() {
    let Some(peer) = peer() else { return };
    scenario::wampcra(&peer, false, Serializer::MsgPack).await;
}

#[tokio::test]
async fn autobahn_python_logs_in_with_salted_wampcra() {
    let Some(peer) = peer() else { return };
    scenario::wampcra(&peer, true, Serializer::Json).await;
}

#[tokio::test]
async fn autobahn_python_logs_in_with_cryptosign_and_an_authid() {
    let Some(peer) = peer() else { return };
    scenario::cryptosign(&peer, Some("peer-key")).await;
}

#[tokio::test]
async fn autobahn_python_logs_in_with_cryptosign_found_by_its_public_key() {
    let Some(peer) = peer() else { return };
    scenario::cryptosign(&peer, None).await;
}

#[tokio::test]
async fn autobahn_python_with_a_bad_secret_is_refused_then_joins() {
    let Some(peer) = peer() else { return };
    scenario::bad_secret(&peer).await;
}

#[tokio::test]
async fn autobahn_python_with_an_unknown_key_or_authid_is_refused() {
    let Some(peer) = peer() else { return };
    scenario::unknown_principals(&peer).await;
}

#[tokio::test]
async fn an_authenticated_python_callee_sees_the_disclosed_rust_caller() {
    let Some(peer) = peer() else { return };
    scenario::callee_sees_the_disclosed_caller(&peer).await;
}

#[tokio::test]
async fn an_authenticated_python_caller_is_disclosed_to_a_rust_callee() {
    let Some(peer) = peer() else { return };
    scenario::caller_is_disclosed_to_the_callee(&peer).await;
}
