//! The client against a scripted fake router, for the session endings and protocol corners a
//! real router rarely produces on demand (ABORT after join, GOODBYE first, garbage, silence).
// Test helpers outside `#[test]` fns: a failed unwrap is a failed test. The handshake callback's
// error type is tungstenite's.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::time::Duration;

use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_client::{
    CallError, Client, CloseKind, ConnectError, CryptosignKey, LeaveError, PublishError,
    ReconnectPolicy, Serializer, Value,
};
use wamp_proto::message::{Abort, Authenticate, Challenge, Goodbye, Result as ResultMsg, Welcome};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Uri};

use futures_util::{SinkExt, StreamExt};

mod fake;
use fake::{accept, listen, Peer, WAIT};

/// A client joined to a fake router speaking JSON.
async fn joined(builder: impl FnOnce(&str) -> wamp_client::ClientBuilder) -> (Client, Peer) {
    let (l, url) = listen().await;
    let router = async {
        let mut p = accept(&l, Some("wamp.2.json")).await;
        let Message::Hello(h) = p.recv().await else {
            panic!("expected HELLO")
        };
        assert_eq!(h.realm.as_str(), "realm1");
        assert_eq!(
            h.details.get("authmethods"),
            Some(&Value::List(vec!["anonymous".into()]))
        );
        p.send(Welcome {
            session: Id::new(77).unwrap(),
            details: dict([("authrole", "anonymous".into())]),
        })
        .await;
        p
    };
    let (peer, client) = tokio::join!(router, builder(&url).connect());
    let client = client.unwrap();
    assert_eq!(client.session_id().get(), 77);
    assert_eq!(client.serializer(), Serializer::Json);
    assert_eq!(
        client.welcome_details().get("authrole"),
        Some(&Value::from("anonymous"))
    );
    (client, peer)
}

/// These tests script how sessions end, so the client does not reconnect.
fn default_builder(url: &str) -> wamp_client::ClientBuilder {
    Client::builder(url)
        .realm("realm1")
        .reconnect(ReconnectPolicy::never())
}

#[tokio::test]
async fn request_ids_are_sequential_and_replies_reach_their_caller() {
    let (client, mut peer) = joined(default_builder).await;
    let c1 = client.clone();
    let first = tokio::spawn(async move { c1.call("com.first").await });
    let Message::Call(a) = peer.recv().await else {
        panic!("expected CALL")
    };
    let c2 = client.clone();
    let second = tokio::spawn(async move { c2.call("com.second").await });
    let Message::Call(b) = peer.recv().await else {
        panic!("expected CALL")
    };
    assert_eq!((a.request.get(), b.request.get()), (1, 2));
    // Answer out of order.
    for call in [&b, &a] {
        peer.send(ResultMsg {
            request: call.request,
            details: Dict::new(),
            payload: Payload::args(vec![Value::from(call.procedure.as_str())]),
        })
        .await;
    }
    let r1 = first.await.unwrap().unwrap();
    let r2 = second.await.unwrap().unwrap();
    assert_eq!(r1.args, vec![Value::from("com.first")]);
    assert_eq!(r2.args, vec![Value::from("com.second")]);
}

#[tokio::test]
async fn router_goodbye_is_answered_and_fails_pending_calls() {
    let (client, mut peer) = joined(default_builder).await;
    let c = client.clone();
    let pending = tokio::spawn(async move { c.call("com.slow").await });
    let Message::Call(_) = peer.recv().await else {
        panic!("expected CALL")
    };
    peer.send(Goodbye {
        details: dict([("message", "maintenance".into())]),
        reason: Uri::new(uris::CLOSE_SYSTEM_SHUTDOWN),
    })
    .await;
    let Message::Goodbye(reply) = peer.recv().await else {
        panic!("expected GOODBYE reply")
    };
    assert_eq!(reply.reason.as_str(), uris::CLOSE_GOODBYE_AND_OUT);
    let r = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(r, Err(CallError::ConnectionClosed));
    let closed = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(closed.kind, CloseKind::RouterGoodbye);
    assert_eq!(closed.reason, uris::CLOSE_SYSTEM_SHUTDOWN);
    assert_eq!(closed.message.as_deref(), Some("maintenance"));
}

#[tokio::test]
async fn abort_after_join_fails_pending_publish_ack() {
    let (client, mut peer) = joined(default_builder).await;
    let c = client.clone();
    let pending = tokio::spawn(async move { c.publish("com.t").arg(1).acknowledge().await });
    let Message::Publish(p) = peer.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(p.options.get("acknowledge"), Some(&Value::Bool(true)));
    peer.send(Abort {
        details: Dict::new(),
        reason: Uri::new("wamp.error.kicked"),
        payload: Payload::default(),
    })
    .await;
    let r = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(r, Err(PublishError::ConnectionClosed));
    let closed = client.closed().await;
    assert_eq!(
        (closed.kind, closed.reason.as_str()),
        (CloseKind::Aborted, "wamp.error.kicked")
    );
}

#[tokio::test]
async fn garbage_is_answered_with_protocol_violation() {
    let (client, mut peer) = joined(default_builder).await;
    peer.ws.send(WsMessage::text("[999]")).await.unwrap();
    let Message::Abort(a) = peer.recv().await else {
        panic!("expected ABORT")
    };
    assert_eq!(a.reason.as_str(), uris::PROTOCOL_VIOLATION);
    assert_eq!(client.closed().await.kind, CloseKind::ProtocolViolation);
}

#[tokio::test]
async fn leave_is_bounded_when_the_router_stays_silent() {
    let (client, mut peer) =
        joined(|url| default_builder(url).leave_timeout(Duration::from_millis(200))).await;
    let leave = tokio::spawn(async move { client.leave().await });
    let Message::Goodbye(g) = peer.recv().await else {
        panic!("expected GOODBYE")
    };
    assert_eq!(g.reason.as_str(), uris::CLOSE_NORMAL);
    let r = tokio::time::timeout(WAIT, leave).await.unwrap().unwrap();
    assert_eq!(r, Err(LeaveError::Timeout));
}

#[tokio::test]
async fn hello_abort_and_missing_subprotocol_fail_connect() {
    let (l, url) = listen().await;
    let router = async {
        let mut p = accept(&l, Some("wamp.2.json")).await;
        let _hello = p.recv().await;
        p.send(Abort {
            details: dict([("message", "no such realm".into())]),
            reason: Uri::new(uris::NO_SUCH_REALM),
            payload: Payload::default(),
        })
        .await;
        p
    };
    let (_p, r) = tokio::join!(router, Client::connect(&url, "realm1"));
    match r {
        Err(ConnectError::Aborted { reason, message }) => {
            assert_eq!(reason, uris::NO_SUCH_REALM);
            assert_eq!(message.as_deref(), Some("no such realm"));
        }
        other => panic!("{other:?}"),
    }

    let router = async { accept(&l, None).await };
    let (_p, r) = tokio::join!(router, Client::connect(&url, "realm1"));
    assert!(matches!(r, Err(ConnectError::NoSerializer { .. })), "{r:?}");
}

#[tokio::test]
async fn leave_waits_for_the_reply_and_is_idempotent() {
    let (client, mut peer) = joined(default_builder).await;
    let c = client.clone();
    let leave = tokio::spawn(async move { c.leave().await });
    let Message::Goodbye(_) = peer.recv().await else {
        panic!("expected GOODBYE")
    };
    peer.send(Goodbye {
        details: Dict::new(),
        reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
    })
    .await;
    // Keep reading, so the peer answers the client's WebSocket close.
    tokio::spawn(async move { while peer.ws.next().await.is_some() {} });
    let left = tokio::time::timeout(WAIT, leave)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(left.kind, CloseKind::Left);
    assert_eq!(left.reason, uris::CLOSE_GOODBYE_AND_OUT);
    assert_eq!(client.leave().await, Ok(left));
    assert_eq!(
        client.call("com.x").await.unwrap_err(),
        CallError::ConnectionClosed
    );
}

// --- authentication -------------------------------------------------------------------------

/// The WAMP-CRA challenge of autobahn's and our known-answer tests (wamp-auth), whose
/// signatures autobahn-python computed.
const CHALLENGE_PETER: &str = r#"{"authid": "peter", "authrole": "user", "authmethod": "wampcra", "authprovider": "static", "nonce": "LHRTC9zeOIrt_9U3", "timestamp": "2014-06-22T16:36:25.448Z", "session": 3251278072152162}"#;
/// The WAMP spec's cryptosign test vector: seed, challenge, AUTHENTICATE signature.
const SPEC_SEED: &str = "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510";
const SPEC_SIGNATURE: &str = "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

fn challenge(method: &str, extra: Dict) -> Challenge {
    Challenge {
        auth_method: method.into(),
        extra,
    }
}

fn list(names: &[&str]) -> Value {
    Value::List(names.iter().map(|n| Value::from(*n)).collect())
}

/// WELCOME as a router that authenticated `authid` with `authmethod` sends it.
fn welcome_as(authid: &str, authmethod: &str) -> Welcome {
    Welcome {
        session: Id::new(78).unwrap(),
        details: dict([
            ("authid", authid.into()),
            ("authrole", "app".into()),
            ("authmethod", authmethod.into()),
            ("authprovider", "static".into()),
        ]),
    }
}

async fn recv_hello(p: &mut Peer) -> Dict {
    match p.recv().await {
        Message::Hello(h) => h.details,
        other => panic!("expected HELLO, got {other:?}"),
    }
}

async fn recv_authenticate(p: &mut Peer) -> Authenticate {
    match p.recv().await {
        Message::Authenticate(a) => a,
        other => panic!("expected AUTHENTICATE, got {other:?}"),
    }
}

async fn recv_abort(p: &mut Peer) -> Abort {
    match p.recv().await {
        Message::Abort(a) => a,
        other => panic!("expected ABORT, got {other:?}"),
    }
}

/// One challenge-response against a fake router: it reads HELLO, sends `challenge`, reads the
/// AUTHENTICATE and welcomes the client as `authid` (HELLO's, or `found` without one).
/// Returns HELLO.Details, the AUTHENTICATE and the client.
async fn authenticate_once(
    builder: impl FnOnce(&str) -> wamp_client::ClientBuilder,
    challenge: Challenge,
) -> (Dict, Authenticate, Client) {
    let (l, url) = listen().await;
    let router = async {
        let mut p = accept(&l, Some("wamp.2.json")).await;
        let hello = recv_hello(&mut p).await;
        let method = challenge.auth_method.clone();
        p.send(challenge).await;
        let auth = recv_authenticate(&mut p).await;
        let authid = hello
            .get("authid")
            .and_then(Value::as_str)
            .unwrap_or("found");
        p.send(welcome_as(authid, &method)).await;
        (hello, auth, p)
    };
    let ((hello, auth, _p), client) = tokio::join!(router, builder(&url).connect());
    let client = client.unwrap();
    (hello, auth, client)
}

#[tokio::test]
async fn ticket_is_sent_as_the_signature() {
    let (hello, auth, client) = authenticate_once(
        |url| {
            default_builder(url)
                .authid("joe")
                .authrole("app")
                .ticket("secret1")
        },
        challenge("ticket", Dict::new()),
    )
    .await;
    assert_eq!(hello["authmethods"], list(&["ticket"]));
    assert_eq!(hello["authid"], Value::from("joe"));
    assert_eq!(hello["authrole"], Value::from("app"));
    assert!(!hello.contains_key("authextra"), "{hello:?}");
    assert!(hello.contains_key("roles") && hello.contains_key("agent"));
    assert_eq!(auth.signature, "secret1");
    assert_eq!(auth.extra, Dict::new());
    assert_eq!(client.session_id().get(), 78);
    assert_eq!(client.authid(), Some("joe"));
    assert_eq!(client.authrole(), Some("app"));
    assert_eq!(client.authmethod(), Some("ticket"));
    assert_eq!(client.authprovider(), Some("static"));
    assert_eq!(client.authextra(), None);
}

#[tokio::test]
async fn wampcra_signs_the_challenge_with_the_secret() {
    let (hello, auth, client) = authenticate_once(
        |url| default_builder(url).authid("peter").wampcra("secret1"),
        challenge("wampcra", dict([("challenge", CHALLENGE_PETER.into())])),
    )
    .await;
    assert_eq!(hello["authmethods"], list(&["wampcra"]));
    assert_eq!(hello["authid"], Value::from("peter"));
    assert!(!hello.contains_key("authrole") && !hello.contains_key("authextra"));
    // autobahn: compute_wcs(b"secret1", CHALLENGE_PETER)
    assert_eq!(
        auth.signature,
        "MCxaM9uCp1n9arPWK6eZa/FXI45WGn6YBR7fuAWVAuY="
    );
    let key = wamp_auth::wampcra::key("secret1", None).unwrap();
    assert!(wamp_auth::wampcra::verify(
        &key,
        CHALLENGE_PETER,
        &auth.signature
    ));
    assert_eq!(auth.extra, Dict::new());
    assert_eq!(client.authmethod(), Some("wampcra"));
}

#[tokio::test]
async fn salted_wampcra_signs_with_the_derived_key() {
    let extra = dict([
        ("challenge", CHALLENGE_PETER.into()),
        ("salt", "salt123".into()),
        ("iterations", 1000u64.into()),
        ("keylen", 32u64.into()),
    ]);
    let (_, auth, _client) = authenticate_once(
        |url| default_builder(url).authid("peter").wampcra("secret123"),
        challenge("wampcra", extra),
    )
    .await;
    // autobahn: compute_wcs(derive_key("secret123", "salt123", 1000, 32), CHALLENGE_PETER)
    assert_eq!(
        auth.signature,
        "q3lfFraPoc8Q5G9Ta0RWPDY/NGa9ZuMxoHrlq7lAsPE="
    );
}

#[tokio::test]
async fn cryptosign_sends_the_public_key_and_signs_the_challenge() {
    let key = CryptosignKey::from_hex(SPEC_SEED).unwrap();
    let pubkey = wamp_auth::cryptosign::SigningKey::from_hex(SPEC_SEED)
        .unwrap()
        .public_key_hex();
    assert_eq!(key.public_key_hex(), pubkey);
    let extra = dict([
        ("challenge", "ff".repeat(32).into()),
        ("channel_binding", Value::Null),
    ]);
    let (hello, auth, client) = authenticate_once(
        |url| default_builder(url).cryptosign(key),
        challenge("cryptosign", extra),
    )
    .await;
    assert_eq!(hello["authmethods"], list(&["cryptosign"]));
    assert!(
        !hello.contains_key("authid"),
        "the router finds the user by key"
    );
    assert_eq!(
        hello["authextra"],
        Value::Dict(dict([("pubkey", pubkey.as_str().into())]))
    );
    assert_eq!(auth.signature, SPEC_SIGNATURE);
    assert_eq!(
        wamp_auth::cryptosign::verify(&pubkey, &[0xff; 32], None, &auth.signature),
        Ok(())
    );
    assert_eq!(client.authid(), Some("found"));
    assert_eq!(client.authmethod(), Some("cryptosign"));

    // From the raw seed, with an authid: the same key.
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&SPEC_SEED[2 * i..2 * i + 2], 16).unwrap();
    }
    let extra = dict([("challenge", "ff".repeat(32).into())]);
    let (hello, auth, _client) = authenticate_once(
        |url| default_builder(url).authid("dev").cryptosign(seed),
        challenge("cryptosign", extra),
    )
    .await;
    assert_eq!(hello["authid"], Value::from("dev"));
    assert_eq!(auth.signature, SPEC_SIGNATURE);
}

#[tokio::test]
async fn every_offered_method_is_announced_in_order_and_answered() {
    let builder = |url: &str| {
        default_builder(url)
            .authid("joe")
            .wampcra("s")
            .cryptosign(CryptosignKey::from_seed([3; 32]))
            .anonymous()
            .ticket("t")
    };
    let (hello, auth, _) = authenticate_once(builder, challenge("ticket", Dict::new())).await;
    assert_eq!(
        hello["authmethods"],
        list(&["wampcra", "cryptosign", "anonymous", "ticket"])
    );
    assert!(hello["authextra"].as_dict().unwrap().contains_key("pubkey"));
    assert_eq!(auth.signature, "t");
    let c = challenge("wampcra", dict([("challenge", "x".into())]));
    let (_, auth, _) = authenticate_once(builder, c).await;
    assert_eq!(
        auth.signature,
        wamp_auth::wampcra::sign(b"s", "x"),
        "the router picked wampcra"
    );
}

#[tokio::test]
async fn anonymous_is_offered_alone_by_default_and_welcomed_at_once() {
    for builder in [
        default_builder as fn(&str) -> wamp_client::ClientBuilder,
        |url| default_builder(url).anonymous(),
    ] {
        let (l, url) = listen().await;
        let router = async {
            let mut p = accept(&l, Some("wamp.2.json")).await;
            let hello = recv_hello(&mut p).await;
            p.send(welcome_as("anonymous-1", "anonymous")).await;
            (hello, p)
        };
        let ((hello, _p), client) = tokio::join!(router, builder(&url).connect());
        assert_eq!(hello["authmethods"], list(&["anonymous"]));
        for absent in ["authid", "authrole", "authextra"] {
            assert!(!hello.contains_key(absent), "{absent}: {hello:?}");
        }
        assert_eq!(client.unwrap().authmethod(), Some("anonymous"));
    }
}

#[tokio::test]
async fn authentication_aborts_are_authentication_failures() {
    // (reason, after AUTHENTICATE or right after HELLO)
    for (reason, challenged) in [
        (uris::AUTHENTICATION_FAILED, true),
        (uris::NOT_AUTHORIZED, true),
        (uris::NO_SUCH_PRINCIPAL, false),
        (uris::NO_AUTH_METHOD, false),
        ("wamp.error.authentication_denied", true),
    ] {
        let (l, url) = listen().await;
        let router = async {
            let mut p = accept(&l, Some("wamp.2.json")).await;
            recv_hello(&mut p).await;
            if challenged {
                p.send(challenge("ticket", Dict::new())).await;
                recv_authenticate(&mut p).await;
            }
            p.send(Abort {
                details: dict([("message", "go away".into())]),
                reason: Uri::new(reason),
                payload: Payload::default(),
            })
            .await;
            p
        };
        let connect = default_builder(&url).authid("joe").ticket("t").connect();
        let (_p, r) = tokio::join!(router, connect);
        match r {
            Err(ConnectError::AuthenticationFailed { reason: r, message }) => {
                assert_eq!(r, reason);
                assert_eq!(message.as_deref(), Some("go away"));
            }
            other => panic!("{reason}: {other:?}"),
        }
    }
    // Not an authentication failure: the realm is missing.
    let (l, url) = listen().await;
    let router = async {
        let mut p = accept(&l, Some("wamp.2.json")).await;
        recv_hello(&mut p).await;
        p.send(Abort {
            details: Dict::new(),
            reason: Uri::new(uris::NO_SUCH_ROLE),
            payload: Payload::default(),
        })
        .await;
        p
    };
    let (_p, r) = tokio::join!(router, default_builder(&url).ticket("t").connect());
    assert!(
        matches!(&r, Err(ConnectError::Aborted { reason, message: None }) if reason == uris::NO_SUCH_ROLE),
        "{r:?}"
    );
}

#[tokio::test]
async fn unexpected_challenges_are_protocol_errors() {
    // (the client's builder, the CHALLENGE sent first, a second CHALLENGE after AUTHENTICATE)
    type Build = fn(&str) -> wamp_client::ClientBuilder;
    let cases: [(Build, &str, bool); 4] = [
        (default_builder, "ticket", false),
        (|u| default_builder(u).anonymous(), "anonymous", false),
        (
            |u| default_builder(u).authid("joe").ticket("t"),
            "wampcra",
            false,
        ),
        (
            |u| default_builder(u).authid("joe").ticket("t"),
            "ticket",
            true,
        ),
    ];
    for (builder, method, twice) in cases {
        let (l, url) = listen().await;
        let router = async {
            let mut p = accept(&l, Some("wamp.2.json")).await;
            recv_hello(&mut p).await;
            p.send(challenge(method, Dict::new())).await;
            if twice {
                assert_eq!(recv_authenticate(&mut p).await.signature, "t");
                p.send(challenge(method, Dict::new())).await;
            }
            recv_abort(&mut p).await
        };
        let (abort, r) = tokio::join!(router, builder(&url).connect());
        assert_eq!(abort.reason.as_str(), uris::PROTOCOL_VIOLATION, "{method}");
        let message = abort.details["message"].as_str().unwrap().to_owned();
        match r {
            Err(ConnectError::Protocol(m)) => {
                assert_eq!(m, message);
                let want = if twice {
                    "second CHALLENGE"
                } else {
                    "did not offer"
                };
                assert!(m.contains(want), "{m}");
            }
            other => panic!("{method} {twice}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn hostile_challenges_are_refused_without_computing() {
    let salted = |iterations: u64, keylen: u64| {
        dict([
            ("challenge", CHALLENGE_PETER.into()),
            ("salt", "salt123".into()),
            ("iterations", iterations.into()),
            ("keylen", keylen.into()),
        ])
    };
    let cases = [
        ("wampcra", salted(4_000_000_000, 32), "PBKDF2 iterations"),
        ("wampcra", salted(1000, 1 << 40), "byte key"),
        ("wampcra", Dict::new(), "no `challenge`"),
        (
            "cryptosign",
            dict([
                ("challenge", "ff".repeat(32).into()),
                ("channel_binding", "tls-unique".into()),
            ]),
            "channel binding",
        ),
        (
            "cryptosign",
            dict([("challenge", "ff".into())]),
            "challenge",
        ),
    ];
    for (method, extra, why) in cases {
        let (l, url) = listen().await;
        let router = async {
            let mut p = accept(&l, Some("wamp.2.json")).await;
            recv_hello(&mut p).await;
            p.send(challenge(method, extra)).await;
            // ABORT instead of AUTHENTICATE (4e9 iterations would take many minutes).
            recv_abort(&mut p).await
        };
        let connect = default_builder(&url)
            .authid("peter")
            .wampcra("secret123")
            .cryptosign(CryptosignKey::from_seed([5; 32]))
            .connect();
        let (abort, r) = tokio::join!(router, connect);
        assert_eq!(abort.reason.as_str(), "wamp.error.cannot_authenticate");
        match r {
            Err(ConnectError::ChallengeRefused { method: m, reason }) => {
                assert_eq!(m, method);
                assert!(reason.contains(why), "{reason} (wanted {why})");
                assert_eq!(abort.details["message"].as_str(), Some(reason.as_str()));
            }
            other => panic!("{method} {why}: {other:?}"),
        }
    }
}

#[test]
fn builder_debug_hides_the_credentials() {
    let key = CryptosignKey::from_hex(SPEC_SEED).unwrap();
    let b = Client::builder("ws://x/ws")
        .authid("joe")
        .ticket("hunter2-ticket")
        .wampcra("hunter2-secret")
        .cryptosign(key.clone());
    let debug = format!("{b:?}");
    for secret in ["hunter2", SPEC_SEED] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(
        debug.contains(&key.public_key_hex()) && debug.contains("joe"),
        "{debug}"
    );
}
