//! `wamp-client` authentication against the real router: ticket (plain and hashed), WAMP-CRA
//! (plain and salted) and cryptosign (with and without authid) over WebSocket, RawSocket/TCP
//! and RawSocket/Unix; every refusal as a typed [`ConnectError`]; authenticated sessions
//! routing to each other under their role.
//!
//! Each test starts its own router, so the router's per-address delay of failed logins (200 ms,
//! doubling per failure within a minute) never adds up across tests; each test fails on
//! purpose at most twice over TCP. Every wait is bounded by [`WAIT`]; nothing sleeps to
//! synchronise.

use std::future::IntoFuture;
use std::sync::OnceLock;

use tokio::time::timeout;
use wamp_client::{
    uris, CallError, CallResult, Client, ClientBuilder, ConnectError, CryptosignKey, Invocation,
    Value,
};
use wamp_tests::rawsocket::TempDir;
use wamp_tests::{TestRouter, WAIT};

const SECURE: &str = "secure";
const MIXED: &str = "mixed";

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
async fn within<F: IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// A router with realm `secure` (users only: joe's plain ticket, jane's hashed one, peter's
/// WAMP-CRA secret, sally's salted one, dev's cryptosign key) and realm `mixed` (anonymous
/// allowed, and joe's ticket), on WebSocket, RawSocket/TCP and RawSocket/Unix.
struct Secure {
    router: TestRouter,
    /// dev's private key.
    dev: CryptosignKey,
    _dir: TempDir,
}

impl Secure {
    async fn start() -> Secure {
        let dev = CryptosignKey::generate();
        let dir = TempDir::new();
        let socket = dir.path().join("router.sock");
        // Hashing costs a deliberate amount of CPU: once per test process.
        static HASHED: OnceLock<String> = OnceLock::new();
        let hashed =
            HASHED.get_or_init(|| wamp_router::hash_ticket("secret1").expect("hash the ticket"));
        let app_role = r#"
[[realm.role]]
name = "app"
  [[realm.role.permission]]
  uri = "com.app."
  match = "prefix"
  call = true
  register = true
  publish = true
  subscribe = true
"#;
        let config = format!(
            r#"
[[transport]]
bind = "127.0.0.1:0"

[[transport]]
type = "rawsocket"
bind = "127.0.0.1:0"

[[transport]]
type = "rawsocket"
unix_socket = "{socket}"

[[realm]]
name = "{SECURE}"

[[realm.user]]
authid = "joe"
role = "app"
ticket = "secret1"

[[realm.user]]
authid = "jane"
role = "app"
ticket = "{hashed}"

[[realm.user]]
authid = "peter"
role = "app"
wampcra = {{ secret = "secret2" }}

[[realm.user]]
authid = "sally"
role = "app"
wampcra = {{ secret = "s3", salt = "salt123", iterations = 1000, keylen = 32 }}

[[realm.user]]
authid = "dev"
role = "app"
cryptosign_keys = ["{pubkey}"]
{app_role}
[[realm]]
name = "{MIXED}"
anonymous = true
anonymous_role = "app"

[[realm.user]]
authid = "joe"
role = "app"
ticket = "secret1"
{app_role}"#,
            socket = socket.display(),
            pubkey = dev.public_key_hex(),
        );
        let router = TestRouter::with_config(&config).await;
        assert_eq!(
            router.server().urls().len(),
            3,
            "{:?}",
            router.server().urls()
        );
        Secure {
            router,
            dev,
            _dir: dir,
        }
    }

    /// `ws://`, `rs://`, `unix://`.
    fn urls(&self) -> Vec<String> {
        self.router.server().urls().to_vec()
    }

    fn ws(&self) -> String {
        self.urls()[0].clone()
    }

    fn rs(&self) -> String {
        self.urls()[1].clone()
    }
}

async fn connect(builder: ClientBuilder) -> Result<Client, ConnectError> {
    within("connect", builder.connect()).await
}

/// Connects, expecting to join as `authid` with `authmethod` and role `app`.
async fn joins(builder: ClientBuilder, authid: &str, authmethod: &str) -> Client {
    let what = format!("{builder:?}");
    let client = connect(builder)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(client.authid(), Some(authid), "{what}");
    assert_eq!(client.authrole(), Some("app"), "{what}");
    assert_eq!(client.authmethod(), Some(authmethod), "{what}");
    assert_eq!(client.authprovider(), Some("static"), "{what}");
    client
}

async fn leave(client: Client) {
    within("leave", client.leave())
        .await
        .expect("leave is answered");
}

/// Connects, expecting an [`ConnectError::AuthenticationFailed`] with `reason`; returns its
/// message.
async fn refused(builder: ClientBuilder, reason: &str) -> String {
    let what = format!("{builder:?}");
    match connect(builder).await {
        Err(ConnectError::AuthenticationFailed { reason: r, message }) => {
            assert_eq!(r, reason, "{what}");
            message.unwrap_or_else(|| panic!("{what}: ABORT without Details.message"))
        }
        other => panic!("{what}: expected AuthenticationFailed({reason}), got {other:?}"),
    }
}

#[tokio::test]
async fn ticket_joins_over_every_transport() {
    let s = Secure::start().await;
    for url in s.urls() {
        // Plain in the configuration, and an argon2id hash of the same ticket.
        for authid in ["joe", "jane"] {
            let b = Client::builder(&url)
                .realm(SECURE)
                .authid(authid)
                .ticket("secret1");
            let c = joins(b, authid, "ticket").await;
            assert_eq!(c.realm(), SECURE);
            leave(c).await;
        }
    }
}

#[tokio::test]
async fn wampcra_joins_over_every_transport() {
    let s = Secure::start().await;
    for url in s.urls() {
        for (authid, secret) in [("peter", "secret2"), ("sally", "s3")] {
            let b = Client::builder(&url)
                .realm(SECURE)
                .authid(authid)
                .wampcra(secret);
            leave(joins(b, authid, "wampcra").await).await;
        }
    }
}

#[tokio::test]
async fn cryptosign_joins_with_and_without_authid() {
    let s = Secure::start().await;
    for url in s.urls() {
        let with_authid = Client::builder(&url)
            .realm(SECURE)
            .authid("dev")
            .cryptosign(s.dev.clone());
        leave(joins(with_authid, "dev", "cryptosign").await).await;
        // Without authid the router finds dev by the public key.
        let by_key = Client::builder(&url)
            .realm(SECURE)
            .cryptosign(s.dev.clone());
        let c = joins(by_key, "dev", "cryptosign").await;
        let pubkey = c.authextra().and_then(|x| x.get("pubkey")).cloned();
        assert_eq!(pubkey, Some(Value::from(s.dev.public_key_hex())));
        leave(c).await;
    }
    // The key from its stored seed is the same key.
    let stored = CryptosignKey::from_hex(&s.dev.seed_hex()).expect("seed round-trips");
    let b = Client::builder(s.rs()).realm(SECURE).cryptosign(stored);
    leave(joins(b, "dev", "cryptosign").await).await;
}

#[tokio::test]
async fn wrong_credentials_fail_and_a_healthy_client_still_joins() {
    let s = Secure::start().await;
    // Two deliberate failures over TCP (the router delays their ABORTs by 200 and 400 ms).
    let wrong_ticket = Client::builder(s.ws())
        .realm(SECURE)
        .authid("joe")
        .ticket("secret2");
    let m = refused(wrong_ticket, uris::AUTHENTICATION_FAILED).await;
    assert!(!m.is_empty());
    let wrong_secret = Client::builder(s.rs())
        .realm(SECURE)
        .authid("peter")
        .wampcra("secret1");
    refused(wrong_secret, uris::AUTHENTICATION_FAILED).await;
    // Over the Unix socket (no peer address, so not delayed): the hashed ticket, wrong.
    let unix = s.urls()[2].clone();
    let wrong_hashed = Client::builder(&unix)
        .realm(SECURE)
        .authid("jane")
        .ticket("secret1 ");
    refused(wrong_hashed, uris::AUTHENTICATION_FAILED).await;
    // A key dev does not hold: refused at HELLO, before any CHALLENGE.
    let wrong_key = Client::builder(s.ws())
        .realm(SECURE)
        .authid("dev")
        .cryptosign(CryptosignKey::generate());
    refused(wrong_key, uris::NO_SUCH_PRINCIPAL).await;

    // The failures are not a network problem: a healthy client joins from the same address.
    let healthy = Client::builder(s.ws())
        .realm(SECURE)
        .authid("joe")
        .ticket("secret1");
    let c = joins(healthy, "joe", "ticket").await;
    let r = within("call", c.call("com.app.nobody")).await;
    assert!(
        matches!(&r, Err(CallError::Application { uri, .. }) if uri == uris::NO_SUCH_PROCEDURE),
        "the session works: {r:?}"
    );
    leave(c).await;
}

#[tokio::test]
async fn unknown_users_are_no_such_principal() {
    let s = Secure::start().await;
    for url in [s.ws(), s.rs()] {
        let ticket = Client::builder(&url)
            .realm(SECURE)
            .authid("nobody")
            .ticket("secret1");
        let m = refused(ticket, uris::NO_SUCH_PRINCIPAL).await;
        assert!(m.contains("nobody"), "{m}");
        let cra = Client::builder(&url)
            .realm(SECURE)
            .authid("nobody")
            .wampcra("secret2");
        refused(cra, uris::NO_SUCH_PRINCIPAL).await;
        // Ticket needs an authid.
        let no_authid = Client::builder(&url).realm(SECURE).ticket("secret1");
        refused(no_authid, uris::NO_SUCH_PRINCIPAL).await;
        // A key nobody holds, without authid.
        let unknown_key = Client::builder(&url)
            .realm(SECURE)
            .cryptosign(CryptosignKey::generate());
        refused(unknown_key, uris::NO_SUCH_PRINCIPAL).await;
    }
}

#[tokio::test]
async fn anonymous_is_refused_where_the_realm_requires_credentials() {
    let s = Secure::start().await;
    for url in s.urls() {
        let m = refused(Client::builder(&url).realm(SECURE), uris::NO_AUTH_METHOD).await;
        assert!(m.contains("anonymous"), "{m}");
        // `Client::connect` is the anonymous join.
        match within("connect", Client::connect(&url, SECURE)).await {
            Err(ConnectError::AuthenticationFailed { reason, .. }) => {
                assert_eq!(reason, uris::NO_AUTH_METHOD)
            }
            other => panic!("{other:?}"),
        }
        // Realm `mixed` lets anonymous in.
        let c = within("connect", Client::connect(&url, MIXED))
            .await
            .expect("anonymous joins mixed");
        assert_eq!(c.authmethod(), Some("anonymous"));
        assert_eq!(c.authrole(), Some("app"));
        leave(c).await;
    }
    // A missing realm is not an authentication failure.
    let r = connect(
        Client::builder(s.ws())
            .realm("nope")
            .authid("joe")
            .ticket("secret1"),
    )
    .await;
    assert!(
        matches!(&r, Err(ConnectError::Aborted { reason, .. }) if reason == uris::NO_SUCH_REALM),
        "{r:?}"
    );
}

#[tokio::test]
async fn anonymous_fallback_follows_the_offered_order() {
    let s = Secure::start().await;
    let url = s.ws();
    // Ticket first, for an unknown authid: the router falls back to anonymous.
    let b = Client::builder(&url)
        .realm(MIXED)
        .authid("nobody")
        .ticket("x")
        .anonymous();
    let c = connect(b).await.expect("falls back to anonymous");
    assert_eq!(c.authmethod(), Some("anonymous"));
    leave(c).await;
    // Ticket first for a known user: ticket.
    let b = Client::builder(&url)
        .realm(MIXED)
        .authid("joe")
        .ticket("secret1")
        .anonymous();
    leave(joins(b, "joe", "ticket").await).await;
    // Anonymous first: anonymous, although the ticket would do.
    let b = Client::builder(&url)
        .realm(MIXED)
        .anonymous()
        .authid("joe")
        .ticket("secret1");
    let c = connect(b).await.expect("anonymous");
    assert_eq!(c.authmethod(), Some("anonymous"));
    leave(c).await;
    // On `secure` the fallback is no help: the ticket still decides.
    let b = Client::builder(&url)
        .realm(SECURE)
        .authid("joe")
        .ticket("secret1")
        .anonymous();
    leave(joins(b, "joe", "ticket").await).await;
}

#[tokio::test]
async fn authenticated_clients_call_each_other_under_their_role() {
    let s = Secure::start().await;
    let callee = joins(
        Client::builder(s.rs())
            .realm(SECURE)
            .cryptosign(s.dev.clone()),
        "dev",
        "cryptosign",
    )
    .await;
    let caller = joins(
        Client::builder(s.ws())
            .realm(SECURE)
            .authid("peter")
            .wampcra("secret2"),
        "peter",
        "wampcra",
    )
    .await;
    let _reg = within(
        "register",
        callee.register("com.app.whoami", |inv: Invocation| async move {
            let authid = inv.caller_authid().map_or(Value::Null, Value::from);
            let authrole = inv.caller_authrole().map_or(Value::Null, Value::from);
            Ok::<_, CallError>(CallResult::new().with_args([authid, authrole]))
        }),
    )
    .await
    .expect("role app may register com.app.");
    let r = within("call", caller.call("com.app.whoami").disclose_me())
        .await
        .expect("call");
    assert_eq!(r.args, vec![Value::from("peter"), Value::from("app")]);
    // Outside the role's prefix: not authorized.
    let r = within("call", caller.call("com.other.whoami")).await;
    assert!(
        matches!(&r, Err(CallError::Application { uri, .. }) if uri == uris::NOT_AUTHORIZED),
        "{r:?}"
    );
    let r = within(
        "register",
        callee.register("com.other.x", |_: Invocation| async {
            Ok::<_, CallError>(())
        }),
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    leave(caller).await;
    leave(callee).await;
}
