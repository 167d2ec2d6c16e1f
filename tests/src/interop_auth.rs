//! Authentication interop scenarios, shared by the autobahn-python and autobahn-js tests
//! (`interop_python_auth.rs`, `interop_js_auth.rs`): a router with a user per method, an
//! [`AuthPeer`] (`tests/interop/python/auth_peer.py` or `js/auth_peer.js`, the same command
//! line and lines) logging in, and authenticated calls with forced caller disclosure between
//! it and a [`RawPeer`].

use std::path::PathBuf;

use serde_json::{json, Value as Json};
use wamp_auth::cryptosign::SigningKey;
use wamp_client::Serializer;
use wamp_proto::message::Yield;
use wamp_proto::{uris, Dict, Message, Payload, Value};

use crate::auth::{assert_disclosed, Cred};
use crate::interop::{node_env, python, NodeEnv, ScriptPeer, REALM};
use crate::{RawPeer, TestRouter};

/// `peer-ticket`'s ticket.
pub const TICKET: &str = "peer-ticket-secret";
/// `peer-cra`'s WAMP-CRA secret.
pub const CRA: &str = "peer-cra-secret";
/// `peer-salted`'s WAMP-CRA secret (salted).
pub const SALTED: &str = "peer-salted-secret";
/// The ticket of `rust` and `rust-callee`, our raw peers.
pub const RUST_TICKET: &str = "rust-ticket";

/// `peer-key`'s Ed25519 key.
pub fn peer_key() -> SigningKey {
    SigningKey::from_seed(&[0x42; 32])
}

/// A WebSocket transport (`urls()[0]`) and a RawSocket one (`[1]`). Users: `peer-ticket`,
/// `peer-cra`, `peer-salted` (role `backend`), `peer-key` (cryptosign, role `device`), and
/// `rust` (`frontend`) and `rust-callee` (`backend`) with [`RUST_TICKET`]. Below
/// `com.example.`, `backend` may call and register and `frontend` call, both disclosing the
/// caller; `device` may only call below `com.example.device.`.
pub async fn router() -> TestRouter {
    TestRouter::with_config(&format!(
        r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
[[transport]]
type = "rawsocket"
bind = "127.0.0.1:0"

[[realm]]
name = "{REALM}"
[[realm.user]]
authid = "peer-ticket"
role = "backend"
ticket = "{TICKET}"
[[realm.user]]
authid = "peer-cra"
role = "backend"
wampcra = {{ secret = "{CRA}" }}
[[realm.user]]
authid = "peer-salted"
role = "backend"
wampcra = {{ secret = "{SALTED}", salt = "peer-salt", iterations = 1000, keylen = 32 }}
[[realm.user]]
authid = "peer-key"
role = "device"
cryptosign_keys = ["{}"]
[[realm.user]]
authid = "rust"
role = "frontend"
ticket = "{RUST_TICKET}"
[[realm.user]]
authid = "rust-callee"
role = "backend"
ticket = "{RUST_TICKET}"

[[realm.role]]
name = "backend"
  [[realm.role.permission]]
  uri = "com.example."
  match = "prefix"
  call = true
  register = true
  disclose_caller = true
[[realm.role]]
name = "frontend"
  [[realm.role.permission]]
  uri = "com.example."
  match = "prefix"
  call = true
  disclose_caller = true
[[realm.role]]
name = "device"
  [[realm.role.permission]]
  uri = "com.example.device."
  match = "prefix"
  call = true
"#,
        peer_key().public_key_hex()
    ))
    .await
}

/// The script that logs in: autobahn-python's or autobahn-js's `auth_peer`.
#[derive(Debug)]
pub enum AuthPeer {
    /// `auth_peer.py`, run by this Python.
    Python(PathBuf),
    /// `auth_peer.js` in this environment.
    Node(NodeEnv),
}

impl AuthPeer {
    /// autobahn-python's, or `None` (after a notice naming `test`) outside CI without it.
    pub fn python(test: &str) -> Option<AuthPeer> {
        python(test).map(AuthPeer::Python)
    }

    /// autobahn-js's, or `None` (after a notice naming `test`) outside CI without it.
    pub fn node(test: &str) -> Option<AuthPeer> {
        node_env(test).map(AuthPeer::Node)
    }

    /// Starts the script with `args` (its authentication options and mode).
    pub fn spawn(&self, url: &str, serializer: Serializer, args: &[&str]) -> ScriptPeer {
        match self {
            AuthPeer::Python(python) => ScriptPeer::python_auth(python, url, serializer, args),
            AuthPeer::Node(env) => ScriptPeer::node(env, "auth_peer.js", url, serializer, args),
        }
    }

    /// Runs the script with `args` to a successful exit; returns its lines.
    pub async fn run(&self, url: &str, serializer: Serializer, args: &[&str]) -> Vec<Json> {
        self.spawn(url, serializer, args).succeed().await
    }
}

/// The script's arguments for `method` with `authid` (if any) and `secret`, then `mode`.
pub fn login_args<'a>(
    method: &'a str,
    authid: Option<&'a str>,
    secret: &'a str,
    mode: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["--authmethod", method, "--secret", secret];
    if let Some(a) = authid {
        args.extend(["--authid", a]);
    }
    args.extend(mode);
    args
}

/// The lines of a login: the CHALLENGE's extra keys, then WELCOME's details.
pub fn assert_joined(lines: &[Json], method: &str, keys: &[&str], authid: &str, authrole: &str) {
    assert!(lines.len() >= 2, "lines: {lines:#?}");
    let challenge = json!({"challenge": {"method": method, "keys": keys}});
    assert_eq!(lines[0], challenge, "{lines:#?}");
    let w = &lines[1]["welcome"];
    assert_eq!(w["authid"], authid, "{w}");
    assert_eq!(w["authrole"], authrole, "{w}");
    assert_eq!(w["authmethod"], method, "{w}");
    assert_eq!(w["authprovider"], "static", "{w}");
    assert!(w["session"].as_u64().is_some(), "{w}");
}

/// The lines of a refused login: the CHALLENGE (if `challenged`), then the ABORT.
pub fn assert_refused(lines: &[Json], challenged: bool, reason: &str) {
    let abort = match (challenged, lines) {
        (true, [c, a]) if c.get("challenge").is_some() => &a["abort"],
        (false, [a]) => &a["abort"],
        _ => panic!("expected {reason} (challenged: {challenged}), got lines: {lines:#?}"),
    };
    assert_eq!(abort["reason"], reason, "{lines:#?}");
    let message = abort["message"].as_str();
    assert!(message.is_some_and(|m| !m.is_empty()), "{lines:#?}");
}

// --- the scenarios ---------------------------------------------------------------------------

/// Logs in with a ticket at the router's transport `transport` (0: WebSocket, 1: RawSocket).
pub async fn ticket(peer: &AuthPeer, transport: usize, serializer: Serializer) {
    let router = router().await;
    let args = login_args("ticket", Some("peer-ticket"), TICKET, &[]);
    let lines = peer
        .run(&router.server().urls()[transport], serializer, &args)
        .await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_joined(&lines, "ticket", &[], "peer-ticket", "backend");
}

/// Logs in with WAMP-CRA, `salted` or not (the key derived from the CHALLENGE's salting).
pub async fn wampcra(peer: &AuthPeer, salted: bool, serializer: Serializer) {
    let router = router().await;
    let (authid, secret, keys) = if salted {
        (
            "peer-salted",
            SALTED,
            &["challenge", "iterations", "keylen", "salt"][..],
        )
    } else {
        ("peer-cra", CRA, &["challenge"][..])
    };
    let lines = peer
        .run(
            router.url(),
            serializer,
            &login_args("wampcra", Some(authid), secret, &[]),
        )
        .await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_joined(&lines, "wampcra", keys, authid, "backend");
}

/// Logs in with cryptosign, with `authid` or found by the public key.
pub async fn cryptosign(peer: &AuthPeer, authid: Option<&str>) {
    let router = router().await;
    let seed = peer_key().seed_hex();
    let args = login_args("cryptosign", authid, &seed, &[]);
    let lines = peer.run(router.url(), Serializer::Json, &args).await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_joined(
        &lines,
        "cryptosign",
        &["challenge", "channel_binding"],
        "peer-key",
        "device",
    );
    let pubkey = &lines[1]["welcome"]["authextra"]["pubkey"];
    assert_eq!(pubkey, &json!(peer_key().public_key_hex()), "{lines:#?}");
}

/// A wrong WAMP-CRA secret is refused (`authentication_failed`); the right one then joins.
pub async fn bad_secret(peer: &AuthPeer) {
    let router = router().await;
    let args = login_args("wampcra", Some("peer-salted"), "guess", &[]);
    assert_refused(
        &peer.run(router.url(), Serializer::Json, &args).await,
        true,
        uris::AUTHENTICATION_FAILED,
    );
    let args = login_args("wampcra", Some("peer-salted"), SALTED, &[]);
    let lines = peer.run(router.url(), Serializer::MsgPack, &args).await;
    assert_joined(
        &lines,
        "wampcra",
        &["challenge", "iterations", "keylen", "salt"],
        "peer-salted",
        "backend",
    );
}

/// Unknown keys and authids (`no_such_principal`) and anonymous in a realm with users
/// (`no_auth_method`) are refused without a CHALLENGE.
pub async fn unknown_principals(peer: &AuthPeer) {
    let router = router().await;
    let stranger = SigningKey::from_seed(&[0x17; 32]).seed_hex();
    for (args, reason) in [
        (
            login_args("cryptosign", None, &stranger, &[]),
            uris::NO_SUCH_PRINCIPAL,
        ),
        (
            login_args("ticket", Some("nobody"), "x", &[]),
            uris::NO_SUCH_PRINCIPAL,
        ),
        (login_args("anonymous", None, "", &[]), uris::NO_AUTH_METHOD),
    ] {
        let lines = peer.run(router.url(), Serializer::Json, &args).await;
        assert_refused(&lines, false, reason);
    }
}

/// The peer, logged in with salted WAMP-CRA, registers `com.example.whoami`; our raw peer
/// `rust` calls it, and both see the router's forced disclosure of `rust`.
pub async fn callee_sees_the_disclosed_caller(peer: &AuthPeer) {
    let router = router().await;
    let proc_ = "com.example.whoami";
    let args = login_args("wampcra", Some("peer-salted"), SALTED, &["callee", proc_]);
    let mut callee = peer.spawn(router.url(), Serializer::MsgPack, &args);
    let login = [callee.line().await, callee.line().await];
    assert_joined(
        &login,
        "wampcra",
        &["challenge", "iterations", "keylen", "salt"],
        "peer-salted",
        "backend",
    );
    callee.ready().await;

    let (mut caller, _) =
        RawPeer::join_as(router.url(), REALM, Some("rust"), Cred::Ticket(RUST_TICKET)).await;
    let session = caller.session.expect("joined").get();
    let request = caller.send_call(proc_, Payload::default()).await;
    match caller.recv().await {
        Message::Result(r) if r.request == request => {
            let kwargs = r.payload.kwargs.expect("the callee returns kwargs");
            assert_disclosed(&kwargs, "caller", session, "rust", "frontend");
        }
        other => panic!("expected RESULT, got {other:?}"),
    }
    let seen = json!({"caller": session, "caller_authid": "rust", "caller_authrole": "frontend"});
    callee.expect_line(json!({"invoked": seen})).await;
    assert_eq!(callee.succeed().await, Vec::<Json>::new());
}

/// Our raw peer `rust-callee` registers `com.example.echo`; the peer, logged in with a
/// ticket, calls it: the INVOCATION discloses it, and its result comes back.
pub async fn caller_is_disclosed_to_the_callee(peer: &AuthPeer) {
    let router = router().await;
    let proc_ = "com.example.echo";
    let (mut callee, _) = RawPeer::join_as(
        router.url(),
        REALM,
        Some("rust-callee"),
        Cred::Ticket(RUST_TICKET),
    )
    .await;
    callee.register(proc_, Dict::new()).await;
    let args = login_args("ticket", Some("peer-ticket"), TICKET, &["call", proc_]);
    let caller = peer.spawn(router.url(), Serializer::Json, &args);
    let Message::Invocation(inv) = callee.recv().await else {
        panic!("expected the INVOCATION");
    };
    let session = inv
        .details
        .get("caller")
        .and_then(Value::as_u64)
        .expect("caller disclosed");
    assert_disclosed(&inv.details, "caller", session, "peer-ticket", "backend");
    assert_eq!(inv.payload.args, Some(vec![Value::from("hi")]), "{inv:?}");
    let reply = Yield {
        request: inv.request,
        options: Dict::new(),
        payload: Payload::args(vec!["hello".into()]),
    };
    callee.send(&reply.into()).await;
    let lines = caller.succeed().await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_joined(&lines, "ticket", &[], "peer-ticket", "backend");
    assert_eq!(
        lines[1]["welcome"]["session"],
        json!(session),
        "the disclosed session"
    );
    assert_eq!(
        lines[2],
        json!({"result": ["hello"], "kwargs": {}}),
        "{lines:#?}"
    );
}
