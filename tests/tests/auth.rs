//! Authentication over real sockets, frame by frame (HELLO, CHALLENGE, AUTHENTICATE, WELCOME
//! or ABORT), with the signatures computed by `wamp_auth`: every method's success and WELCOME
//! details, the WAMP-CRA challenge's contents, salted WAMP-CRA, cryptosign found by public
//! key, hashed tickets, the choice among the offered methods, the transport's
//! `auth_methods`, every refusal (each followed by a healthy join on the same router), and the
//! growing delay of repeated failures. Secrets from the environment and files are in
//! `auth_secrets.rs`, authorization in `authz.rs`.
//!
//! Failed logins slow down the next ones from 127.0.0.1 (per router): each test has its own
//! router and at most two deliberate failures.

use std::time::{Duration, Instant};

use serde_json::Value as Json;
use wamp_auth::cryptosign::SigningKey;
use wamp_proto::message::{Authenticate, Challenge, Welcome};
use wamp_proto::{uris, Dict, Message, Serializer, Value};
use wamp_tests::auth::{assert_abort, auth_hello, detail, wampcra_key, Cred};
use wamp_tests::{RawPeer, TestRouter};

const REALM: &str = "realm1";
const ALICE_TICKET: &str = "alice-ticket";
const CAROL_SECRET: &str = "carol-secret";
const SALLY_SECRET: &str = "sally-secret";
/// The PBKDF2-SHA256 PHC string of `s3cr3t-ticket` (Python's hashlib; the auth crate's
/// known answer).
const PBKDF2_PHC: &str =
    "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$dCIKAH2GdkNZG/55nUlCzeJVHcXILgCqt7ciGQCR8Zw";

/// A fixed Ed25519 key per `n`.
fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

/// Two WebSocket transports: `urls()[0]` allows every method, `[1]` only `ticket`. Realms:
/// `open` (no users: anonymous), `mixed` (a user, and anonymous joins as `guest`), and
/// `realm1` (users, no anonymous, no roles) followed by `more_users`.
async fn router_with(more_users: &str) -> TestRouter {
    let (dev, multi2, multi3) = (key(1), key(2), key(3));
    let toml = format!(
        r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
auth_methods = ["ticket"]

[[realm]]
name = "open"

[[realm]]
name = "mixed"
anonymous = true
anonymous_role = "guest"
[[realm.user]]
authid = "alice"
role = "frontend"
ticket = "{ALICE_TICKET}"

[[realm]]
name = "{REALM}"
[[realm.user]]
authid = "alice"
role = "frontend"
ticket = "{ALICE_TICKET}"
[[realm.user]]
authid = "carol"
role = "backend"
wampcra = {{ secret = "{CAROL_SECRET}" }}
[[realm.user]]
authid = "sally"
role = "backend"
wampcra = {{ secret = "{SALLY_SECRET}", salt = "salt123", iterations = 100, keylen = 32 }}
[[realm.user]]
authid = "both"
role = "frontend"
ticket = "both-ticket"
wampcra = {{ secret = "both-secret" }}
[[realm.user]]
authid = "dev"
role = "device"
cryptosign_keys = ["{}"]
[[realm.user]]
authid = "multi"
role = "device"
cryptosign_keys = ["{}", "{}"]
{more_users}
"#,
        dev.public_key_hex(),
        multi2.public_key_hex(),
        // Upper case: the router compares keys case-insensitively.
        multi3.public_key_hex().to_ascii_uppercase(),
    );
    TestRouter::with_config(&toml).await
}

async fn router() -> TestRouter {
    router_with("").await
}

fn ticket_only_url(router: &TestRouter) -> &str {
    &router.server().urls()[1]
}

/// `authid` logs in to realm1 with `cred`; returns the WELCOME.
async fn joins(url: &str, authid: &str, cred: Cred<'_>) -> Welcome {
    let (_p, w) = RawPeer::join_as(url, REALM, Some(authid), cred).await;
    assert_eq!(detail(&w, "authid"), authid);
    w
}

/// A good login after a refusal: the router still serves new sessions.
async fn healthy(url: &str) {
    joins(url, "alice", Cred::Ticket(ALICE_TICKET)).await;
}

/// Each (realm, authid, credential) login is refused with `reason`.
async fn all_refused(url: &str, reason: &str, logins: &[(&str, Option<&str>, Cred<'_>)]) {
    for &(realm, authid, cred) in logins {
        RawPeer::refused(url, realm, authid, cred, reason).await;
    }
}

/// Sends `hello`; the router must answer with a CHALLENGE.
async fn challenged(url: &str, hello: &Message) -> (RawPeer, Challenge) {
    match RawPeer::greet(url, hello).await {
        (p, Message::Challenge(c)) => (p, c),
        (_, other) => panic!("expected CHALLENGE, got {other:?}"),
    }
}

/// WELCOME.Details names the identity: authid, authrole, authmethod and authprovider.
fn assert_identity(w: &Welcome, authid: &str, authrole: &str, method: &str) {
    assert_eq!(detail(w, "authid"), authid, "{w:?}");
    assert_eq!(detail(w, "authrole"), authrole, "{w:?}");
    assert_eq!(detail(w, "authmethod"), method, "{w:?}");
    assert_eq!(detail(w, "authprovider"), "static", "{w:?}");
}

// --- every method's success ---------------------------------------------------------------

#[tokio::test]
async fn anonymous_sessions_get_the_anonymous_role() {
    let router = router().await;
    let (_p, w) = RawPeer::join(router.url(), "open", Serializer::Json).await;
    assert_eq!(detail(&w, "authmethod"), "anonymous");
    assert_eq!(detail(&w, "authrole"), "anonymous");
    assert_eq!(detail(&w, "authprovider"), "static");
    assert!(!detail(&w, "authid").is_empty(), "{w:?}");
    assert_eq!(detail(&w, "realm"), "open");

    // A realm with users that still admits anonymous sessions, in its anonymous_role.
    let (_p, w) = RawPeer::join_as(router.url(), "mixed", None, Cred::Anonymous).await;
    assert_eq!(detail(&w, "authmethod"), "anonymous");
    assert_eq!(detail(&w, "authrole"), "guest");
    let (_p, w) = RawPeer::join_as(
        router.url(),
        "mixed",
        Some("alice"),
        Cred::Ticket(ALICE_TICKET),
    )
    .await;
    assert_identity(&w, "alice", "frontend", "ticket");
}

#[tokio::test]
async fn ticket_challenge_is_empty_and_welcome_names_the_user() {
    let router = router().await;
    let hello = auth_hello(REALM, &["ticket"], Some("alice"), None);
    let (mut p, c) = challenged(router.url(), &hello).await;
    assert_eq!(c.auth_method, "ticket");
    assert_eq!(
        c.extra,
        Dict::new(),
        "a ticket CHALLENGE has an empty extra"
    );
    let Message::Welcome(w) = p.authenticate(ALICE_TICKET).await else {
        panic!("the right ticket is welcome");
    };
    assert_identity(&w, "alice", "frontend", "ticket");
    assert_eq!(detail(&w, "realm"), REALM);
}

#[tokio::test]
async fn wampcra_challenge_names_identity_nonce_timestamp_and_the_welcome_session() {
    let router = router().await;
    let hello = auth_hello(REALM, &["wampcra"], Some("carol"), None);
    let (mut p, c) = challenged(router.url(), &hello).await;
    assert_eq!(c.auth_method, "wampcra");
    let keys: Vec<&str> = c.extra.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["challenge"],
        "an unsalted secret sends no salting: {c:?}"
    );
    let text = c.extra["challenge"]
        .as_str()
        .expect("challenge is a string");
    let ch: Json = serde_json::from_str(text).expect("the challenge is JSON");
    assert_eq!(ch["authid"], "carol", "{ch}");
    assert_eq!(ch["authrole"], "backend", "{ch}");
    assert_eq!(ch["authmethod"], "wampcra", "{ch}");
    assert_eq!(ch["authprovider"], "static", "{ch}");
    let nonce = ch["nonce"].as_str().expect("nonce is a string");
    assert!(nonce.len() >= 16, "nonce too short: {ch}");
    // UTC ISO-8601 with milliseconds: 2014-06-22T16:36:25.448Z
    let ts = ch["timestamp"]
        .as_str()
        .expect("timestamp is a string")
        .as_bytes();
    assert!(
        ts.len() == 24 && ts[4] == b'-' && ts[10] == b'T' && ts[19] == b'.' && ts[23] == b'Z',
        "timestamp: {ch}"
    );
    let session = ch["session"].as_u64().expect("session is an integer");

    let sig = Cred::WampCra(CAROL_SECRET).answer(&c);
    let Message::Welcome(w) = p.authenticate(&sig).await else {
        panic!("the right signature is welcome");
    };
    assert_eq!(
        w.session.get(),
        session,
        "the challenge names the WELCOME session"
    );
    assert_identity(&w, "carol", "backend", "wampcra");

    // A second login gets a fresh nonce and another session id.
    let (_p, c2) = challenged(router.url(), &hello).await;
    let ch2: Json = serde_json::from_str(c2.extra["challenge"].as_str().unwrap()).unwrap();
    assert_ne!(ch2["nonce"], ch["nonce"]);
    assert_ne!(ch2["session"], ch["session"]);
}

#[tokio::test]
async fn salted_wampcra_sends_salt_iterations_keylen_and_takes_the_derived_key() {
    let router = router().await;
    let hello = auth_hello(REALM, &["wampcra"], Some("sally"), None);
    let (mut p, c) = challenged(router.url(), &hello).await;
    assert_eq!(c.extra.get("salt"), Some(&Value::from("salt123")), "{c:?}");
    assert_eq!(c.extra.get("iterations").and_then(Value::as_u64), Some(100));
    assert_eq!(c.extra.get("keylen").and_then(Value::as_u64), Some(32));
    let key = wampcra_key(SALLY_SECRET, &c);
    let derived = wamp_auth::wampcra::derive_key(SALLY_SECRET, "salt123", 100, 32).unwrap();
    assert_eq!(
        key,
        derived.into_bytes(),
        "the key is the base64 text of PBKDF2"
    );
    let sig = wamp_auth::wampcra::sign(&key, c.extra["challenge"].as_str().unwrap());
    let Message::Welcome(w) = p.authenticate(&sig).await else {
        panic!("the salted signature is welcome");
    };
    assert_identity(&w, "sally", "backend", "wampcra");
}

#[tokio::test]
async fn cryptosign_with_authid_welcomes_with_the_public_key() {
    let router = router().await;
    let k = key(1);
    let hello = auth_hello(
        REALM,
        &["cryptosign"],
        Some("dev"),
        Cred::Cryptosign(&k).authextra(),
    );
    let (mut p, c) = challenged(router.url(), &hello).await;
    assert_eq!(c.auth_method, "cryptosign");
    let challenge = c.extra["challenge"]
        .as_str()
        .expect("challenge is hex text");
    assert!(
        challenge.len() == 64 && challenge.bytes().all(|b| b.is_ascii_hexdigit()),
        "{c:?}"
    );
    assert_eq!(c.extra.get("channel_binding"), Some(&Value::Null), "{c:?}");
    let Message::Welcome(w) = p.authenticate(&Cred::Cryptosign(&k).answer(&c)).await else {
        panic!("the right signature is welcome");
    };
    assert_identity(&w, "dev", "device", "cryptosign");
    let extra = w.details["authextra"]
        .as_dict()
        .expect("authextra is a dict");
    assert_eq!(extra["pubkey"], Value::from(k.public_key_hex()));
}

#[tokio::test]
async fn cryptosign_without_authid_finds_the_user_by_public_key() {
    let router = router().await;
    let (_p, w) = RawPeer::join_as(router.url(), REALM, None, Cred::Cryptosign(&key(1))).await;
    assert_identity(&w, "dev", "device", "cryptosign");
    // Either of a user's keys, whatever case the configuration wrote it in.
    for k in [key(2), key(3)] {
        let (_p, w) = RawPeer::join_as(router.url(), REALM, None, Cred::Cryptosign(&k)).await;
        assert_identity(&w, "multi", "device", "cryptosign");
        let extra = w.details["authextra"].as_dict().expect("authextra");
        assert_eq!(extra["pubkey"], Value::from(k.public_key_hex()));
    }
}

#[tokio::test]
async fn hashed_tickets_argon2id_and_pbkdf2_are_accepted() {
    let argon = wamp_router::hash_ticket("argon-ticket").expect("hashable");
    assert!(argon.starts_with("$argon2id$"), "{argon}");
    let router = router_with(&format!(
        "[[realm.user]]\nauthid = \"argon\"\nrole = \"frontend\"\nticket = \"{argon}\"\n\
         [[realm.user]]\nauthid = \"pbkdf\"\nrole = \"frontend\"\nticket = \"{PBKDF2_PHC}\"\n"
    ))
    .await;
    let url = router.url();
    let w = joins(url, "argon", Cred::Ticket("argon-ticket")).await;
    assert_identity(&w, "argon", "frontend", "ticket");
    let w = joins(url, "pbkdf", Cred::Ticket("s3cr3t-ticket")).await;
    assert_identity(&w, "pbkdf", "frontend", "ticket");
    // The hash itself is not the ticket.
    let wrong = [(REALM, Some("pbkdf"), Cred::Ticket(PBKDF2_PHC))];
    all_refused(url, uris::AUTHENTICATION_FAILED, &wrong).await;
    healthy(url).await;
}

// --- which method ----------------------------------------------------------------------------

#[tokio::test]
async fn the_first_offered_method_the_user_has_is_chosen() {
    let router = router().await;
    let url = router.url();
    for (methods, authid, want) in [
        (&["ticket", "wampcra"][..], "both", "ticket"),
        (&["wampcra", "ticket"][..], "both", "wampcra"),
        // alice has no WAMP-CRA secret: her ticket is asked for.
        (&["wampcra", "ticket"][..], "alice", "ticket"),
        // Unknown method names are skipped.
        (&["scram", "wampcra"][..], "carol", "wampcra"),
    ] {
        let (_p, c) = challenged(url, &auth_hello(REALM, methods, Some(authid), None)).await;
        assert_eq!(c.auth_method, want, "{methods:?} for {authid}");
    }
}

/// cryptosign first, for a user who has no key: the next offered method (ticket) is the one
/// the realm allows for that authid.
#[tokio::test]
async fn cryptosign_offered_first_falls_through_for_a_user_without_keys() {
    let router = router().await;
    let hello = auth_hello(REALM, &["cryptosign", "ticket"], Some("alice"), None);
    let (mut p, first) = RawPeer::greet(router.url(), &hello).await;
    let Message::Challenge(c) = first else {
        panic!("alice has a ticket, and no key: expected a ticket CHALLENGE, got {first:?}");
    };
    assert_eq!(c.auth_method, "ticket", "{c:?}");
    let Message::Welcome(w) = p.authenticate(ALICE_TICKET).await else {
        panic!("the right ticket is welcome");
    };
    assert_identity(&w, "alice", "frontend", "ticket");
}

#[tokio::test]
async fn the_transports_auth_methods_restrict_the_choice() {
    let router = router().await;
    let url = ticket_only_url(&router);
    let hello = auth_hello(REALM, &["wampcra", "ticket"], Some("both"), None);
    let (_p, c) = challenged(url, &hello).await;
    assert_eq!(c.auth_method, "ticket", "wampcra is not allowed here");
    let k = key(1);
    let logins = [
        (REALM, Some("carol"), Cred::WampCra(CAROL_SECRET)),
        (REALM, None, Cred::Cryptosign(&k)),
        ("open", None, Cred::Anonymous),
    ];
    all_refused(url, uris::NO_AUTH_METHOD, &logins).await;
    // The other transport allows them.
    joins(router.url(), "carol", Cred::WampCra(CAROL_SECRET)).await;
    healthy(url).await;
}

// --- refusals --------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_ticket_is_refused_then_the_right_one_joins() {
    let router = router().await;
    let wrong = [(REALM, Some("alice"), Cred::Ticket("nope"))];
    all_refused(router.url(), uris::AUTHENTICATION_FAILED, &wrong).await;
    healthy(router.url()).await;
}

#[tokio::test]
async fn a_wrong_wampcra_signature_is_refused() {
    let router = router().await;
    let wrong = [(REALM, Some("carol"), Cred::WampCra("guess"))];
    all_refused(router.url(), uris::AUTHENTICATION_FAILED, &wrong).await;
    // The salted user signing with the plain secret (no PBKDF2) fails too.
    let hello = auth_hello(REALM, &["wampcra"], Some("sally"), None);
    let (mut p, c) = challenged(router.url(), &hello).await;
    let text = c.extra["challenge"].as_str().unwrap();
    let plain = wamp_auth::wampcra::sign(SALLY_SECRET.as_bytes(), text);
    assert_abort(&p.authenticate(&plain).await, uris::AUTHENTICATION_FAILED);
    joins(router.url(), "carol", Cred::WampCra(CAROL_SECRET)).await;
}

#[tokio::test]
async fn a_signature_by_another_key_or_over_another_challenge_is_refused() {
    let router = router().await;
    let k = key(1);
    // HELLO announces dev's public key, the signature is made with another key.
    let extra = Cred::Cryptosign(&k).authextra();
    let hello = auth_hello(REALM, &["cryptosign"], Some("dev"), extra);
    let (mut p, c) = challenged(router.url(), &hello).await;
    let forged = Cred::Cryptosign(&key(9)).answer(&c);
    assert_abort(&p.authenticate(&forged).await, uris::AUTHENTICATION_FAILED);
    // The right key, signing a challenge the router did not send.
    let (mut p, _c) = challenged(router.url(), &hello).await;
    let replay = k.sign_challenge(&"00".repeat(32), None).unwrap();
    assert_abort(&p.authenticate(&replay).await, uris::AUTHENTICATION_FAILED);
    joins(router.url(), "dev", Cred::Cryptosign(&k)).await;
}

#[tokio::test]
async fn unknown_principals_are_refused() {
    let router = router().await;
    let (dev, stranger) = (key(1), key(8));
    let logins = [
        (REALM, Some("nobody"), Cred::Ticket("x")),
        (REALM, None, Cred::Ticket(ALICE_TICKET)),
        // carol exists, but has no ticket.
        (REALM, Some("carol"), Cred::Ticket(CAROL_SECRET)),
        // A public key nobody holds, with and without an authid; dev's key for another user.
        (REALM, None, Cred::Cryptosign(&stranger)),
        (REALM, Some("dev"), Cred::Cryptosign(&stranger)),
        (REALM, Some("multi"), Cred::Cryptosign(&dev)),
    ];
    all_refused(router.url(), uris::NO_SUCH_PRINCIPAL, &logins).await;
    healthy(router.url()).await;
}

#[tokio::test]
async fn methods_the_realm_does_not_offer_are_refused() {
    let router = router().await;
    let url = router.url();
    // realm1 has users and so no anonymous joins: neither by default nor when asked.
    let (mut p, first) = RawPeer::greet(url, &wamp_tests::hello(REALM)).await;
    assert_abort(&first, uris::NO_AUTH_METHOD);
    p.until_closed().await;
    let k = key(1);
    let logins = [
        (REALM, None, Cred::Anonymous),
        // The open realm has no users: ticket and cryptosign are not offered there.
        ("open", Some("alice"), Cred::Ticket(ALICE_TICKET)),
        ("open", None, Cred::Cryptosign(&k)),
    ];
    all_refused(url, uris::NO_AUTH_METHOD, &logins).await;
    // Names the router does not know, and an empty list.
    for methods in [&["scram", "tls"][..], &[]] {
        let hello = auth_hello(REALM, methods, Some("alice"), None);
        let (_p, m) = RawPeer::greet(url, &hello).await;
        assert_abort(&m, uris::NO_AUTH_METHOD);
    }
    healthy(url).await;
}

#[tokio::test]
async fn authenticate_before_hello_is_a_protocol_violation() {
    let router = router().await;
    let mut p = RawPeer::connect(router.url(), Serializer::Json).await;
    p.send(
        &Authenticate {
            signature: ALICE_TICKET.into(),
            extra: Dict::new(),
        }
        .into(),
    )
    .await;
    p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    healthy(router.url()).await;
}

#[tokio::test]
async fn a_second_hello_while_authenticating_is_a_protocol_violation() {
    let router = router().await;
    let hello = auth_hello(REALM, &["ticket"], Some("alice"), None);
    let (mut p, _c) = challenged(router.url(), &hello).await;
    p.send(&hello).await;
    p.expect_abort(uris::PROTOCOL_VIOLATION).await;
    assert_eq!(router.server().session_count(), 0, "nobody joined");
    healthy(router.url()).await;
}

// --- the failure delay -----------------------------------------------------------------------

/// How long the router takes to answer a wrong ticket with ABORT.
async fn failure_latency(url: &str) -> Duration {
    let hello = auth_hello(REALM, &["ticket"], Some("alice"), None);
    let (mut p, _c) = challenged(url, &hello).await;
    let start = Instant::now();
    let answer = p.authenticate("wrong").await;
    let took = start.elapsed();
    assert_abort(&answer, uris::AUTHENTICATION_FAILED);
    took
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_answered_ever_later() {
    let router = router().await;
    let first = failure_latency(router.url()).await;
    let second = failure_latency(router.url()).await;
    let floor = Duration::from_millis(150);
    assert!(first >= floor, "the first failure is delayed: {first:?}");
    assert!(second >= floor, "the second failure is delayed: {second:?}");
    assert!(
        second >= first,
        "the delay grows: {first:?} then {second:?}"
    );
    // A good login is not delayed (and resets the count).
    let start = Instant::now();
    healthy(router.url()).await;
    let good = start.elapsed();
    assert!(good < second, "a good login waits no penalty: {good:?}");
}
