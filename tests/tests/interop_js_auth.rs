//! Authentication interop with autobahn-js: ticket, WAMP-CRA (plain and salted, with
//! `autobahn.auth_cra.sign` / `derive_key` in Connection's `onchallenge`) and cryptosign
//! (`autobahn.auth_cryptosign`, found by its public key) against our router, its refusals,
//! and an authenticated JS callee and caller with the router's forced caller disclosure.
//!
//! Each test runs the router in-process and `tests/interop/js/auth_peer.js` (the command
//! line and lines of the Python `auth_peer.py`) as a child process, in the scenarios of
//! `wamp_tests::interop_auth` (shared with `interop_python_auth.rs`).
//!
//! Needs `WAMP_INTEROP_NODE_DIR` (see `interop_js.rs`): skipped with a notice without it,
//! failed under CI.

use wamp_client::Serializer;
use wamp_tests::interop_auth::{self as scenario, AuthPeer};

fn peer() -> Option<AuthPeer> {
    AuthPeer::node("autobahn-js auth interop test")
}

#[tokio::test]
async fn autobahn_js_logs_in_with_a_ticket() {
    let Some(peer) = peer() else { return };
    scenario::ticket(&peer, 0, Serializer::Json).await;
}

#[tokio::test]
async fn autobahn_js_logs_in_with_wampcra() {
    let Some(peer) = peer() else { return };
    scenario::wampcra(&peer, false, Serializer::MsgPack).await;
}

#[tokio::test]
async fn autobahn_js_logs_in_with_salted_wampcra() {
    let Some(peer) = peer() else { return };
    scenario::wampcra(&peer, true, Serializer::Json).await;
}

#[tokio::test]
async fn autobahn_js_logs_in_with_cryptosign_found_by_its_public_key() {
    let Some(peer) = peer() else { return };
    scenario::cryptosign(&peer, None).await;
}

#[tokio::test]
async fn autobahn_js_with_a_bad_secret_is_refused_then_joins() {
    let Some(peer) = peer() else { return };
    scenario::bad_secret(&peer).await;
}

#[tokio::test]
async fn autobahn_js_with_an_unknown_key_or_authid_is_refused() {
    let Some(peer) = peer() else { return };
    scenario::unknown_principals(&peer).await;
}

#[tokio::test]
async fn an_authenticated_js_callee_sees_the_disclosed_rust_caller() {
    let Some(peer) = peer() else { return };
    scenario::callee_sees_the_disclosed_caller(&peer).await;
}

#[tokio::test]
async fn an_authenticated_js_caller_is_disclosed_to_a_rust_callee() {
    let Some(peer) = peer() else { return };
    scenario::caller_is_disclosed_to_the_callee(&peer).await;
}
