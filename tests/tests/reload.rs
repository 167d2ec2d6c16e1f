//! Configuration reload over real sockets (`Server::reload` and `Server::reload_file`):
//! realms added and removed, permissions, roles and users replaced, while the sessions a
//! change leaves alone keep working; a bad file changes nothing.

use std::path::PathBuf;

use wamp_proto::message::{Goodbye, Yield};
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Uri, Value};
use wamp_router::{Config, ReloadReport};
use wamp_tests::auth::{assert_abort, Cred};
use wamp_tests::{hello, Closed, RawPeer, TestRouter};

const TRANSPORT: &str =
    "[[transport]]\nbind = \"127.0.0.1:0\"\npath = \"/ws\"\nserializers = [\"json\"]\n";

/// Realm `app`: alice (role `worker`) and bob (role `temp`), ticket logins. `worker` gets
/// `worker_rules`.
fn app_realm(worker_rules: &str, more_users: &str, temp_role: bool) -> String {
    let user = |authid: &str, role: &str, ticket: &str| {
        format!("[[realm.user]]\nauthid = \"{authid}\"\nrole = \"{role}\"\nticket = \"{ticket}\"\n")
    };
    let mut s = String::from("[[realm]]\nname = \"app\"\n");
    s += &user("alice", "worker", "a");
    if temp_role {
        s += &user("bob", "temp", "b");
    }
    s += more_users;
    s += "[[realm.role]]\nname = \"worker\"\n";
    s += worker_rules;
    if temp_role {
        s += "[[realm.role]]\nname = \"temp\"\n[[realm.role.permission]]\nuri = \"com.app.\"\nmatch = \"prefix\"\ncall = true\n";
    }
    s
}

const WORKER_ALL: &str = "[[realm.role.permission]]\nuri = \"com.app.\"\nmatch = \"prefix\"\ncall = true\nregister = true\n";
const WORKER_NO_SECRET: &str = "[[realm.role.permission]]\nuri = \"com.app.\"\nmatch = \"prefix\"\ncall = true\nregister = true\n[[realm.role.permission]]\nuri = \"com.app.secret\"\n";

fn realm(name: &str) -> String {
    format!("[[realm]]\nname = \"{name}\"\n")
}

fn before() -> String {
    format!(
        "{TRANSPORT}{}{}{}",
        realm("stays"),
        realm("goes"),
        app_realm(WORKER_ALL, "", true)
    )
}

fn parse(text: &str) -> Config {
    Config::from_toml(text, "<reload test>").expect("test config is valid")
}

/// Calls `procedure` and returns the ERROR's URI, or `None` for a RESULT.
async fn call_error(p: &mut RawPeer, procedure: &str) -> Option<String> {
    let request = p.send_call(procedure, Payload::args(vec![1.into()])).await;
    match p.recv().await {
        Message::Result(r) if r.request == request => None,
        Message::Error(e) if e.request == request => Some(e.error.as_str().to_owned()),
        other => panic!("expected RESULT or ERROR for {procedure}, got {other:?}"),
    }
}

/// A full call through the router: `caller` calls, `callee` answers, the RESULT comes back.
async fn round_trip(caller: &mut RawPeer, callee: &mut RawPeer, procedure: &str) {
    let request = caller
        .send_call(procedure, Payload::args(vec![7.into()]))
        .await;
    let Message::Invocation(inv) = callee.recv().await else {
        panic!("the callee got no INVOCATION of {procedure}");
    };
    callee
        .send(
            &Yield {
                request: inv.request,
                options: Dict::new(),
                payload: Payload::args(vec![8.into()]),
            }
            .into(),
        )
        .await;
    match caller.recv().await {
        Message::Result(r) if r.request == request => {}
        other => panic!("expected RESULT of {procedure}, got {other:?}"),
    }
}

/// The router closes `p` with GOODBYE `reason` (with a message); `p` answers and the
/// connection ends.
async fn expect_goodbye(p: &mut RawPeer, reason: &str) -> String {
    let Message::Goodbye(g) = p.recv().await else {
        panic!("expected GOODBYE {reason}");
    };
    assert_eq!(g.reason.as_str(), reason, "{g:?}");
    let message = g.details.get("message").and_then(Value::as_str);
    let message = message.unwrap_or_else(|| panic!("GOODBYE without a message: {g:?}"));
    let reply = Goodbye {
        details: Dict::new(),
        reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
    };
    p.send(&reply.into()).await;
    let (rest, closed) = p.until_closed().await;
    assert!(rest.is_empty(), "after GOODBYE: {rest:?}");
    assert_ne!(closed, Closed::Dropped, "no close frame after GOODBYE");
    message.to_owned()
}

async fn refused_join(url: &str, realm: &str, reason: &str) {
    let (_p, answer) = RawPeer::greet(url, &hello(realm)).await;
    assert_abort(&answer, reason);
}

#[tokio::test]
async fn realms_come_and_go_and_the_other_sessions_keep_working() {
    let router = TestRouter::with_config(&before()).await;
    let url = router.url().to_owned();
    let (mut callee, _) = RawPeer::join(&url, "stays", Serializer::Json).await;
    callee.register("com.stays.echo", Dict::new()).await;
    let (mut caller, _) = RawPeer::join(&url, "stays", Serializer::Json).await;
    let (mut leaving, _) = RawPeer::join(&url, "goes", Serializer::Json).await;
    refused_join(&url, "fresh", uris::NO_SUCH_REALM).await;

    let after = format!(
        "{TRANSPORT}{}{}{}",
        realm("stays"),
        realm("fresh"),
        app_realm(WORKER_ALL, "", true)
    );
    let report = router.server().reload(parse(&after));
    assert_eq!(report.realms_added, ["fresh"], "{report:?}");
    assert_eq!(report.realms_removed, ["goes"], "{report:?}");
    assert!(report.realms_changed.is_empty(), "{report:?}");
    assert_eq!(report.sessions_closed, 1, "{report:?}");
    assert!(report.restart_needed.is_empty(), "{report:?}");

    let why = expect_goodbye(&mut leaving, uris::CLOSE_REALM).await;
    assert!(why.contains("goes"), "{why}");
    refused_join(&url, "goes", uris::NO_SUCH_REALM).await;
    // The unaffected realm: same sessions, same registration, calls still routed.
    round_trip(&mut caller, &mut callee, "com.stays.echo").await;
    assert_eq!(router.server().session_count(), 2);
    let (mut newcomer, w) = RawPeer::join(&url, "fresh", Serializer::Json).await;
    assert_eq!(
        w.details.get("realm").and_then(Value::as_str),
        Some("fresh")
    );
    assert_eq!(
        call_error(&mut newcomer, "com.fresh.nobody")
            .await
            .as_deref(),
        Some(uris::NO_SUCH_PROCEDURE)
    );
    // The same configuration again changes nothing.
    assert!(router.server().reload(parse(&after)).is_empty());
    router.shutdown().await;
}

#[tokio::test]
async fn permissions_roles_and_users_change_for_running_sessions() {
    let router = TestRouter::with_config(&before()).await;
    let url = router.url().to_owned();
    let login = |authid: &'static str, ticket: &'static str| {
        let url = url.clone();
        async move {
            RawPeer::join_as(&url, "app", Some(authid), Cred::Ticket(ticket))
                .await
                .0
        }
    };
    let mut alice = login("alice", "a").await;
    let mut bob = login("bob", "b").await;
    let (mut stays, _) = RawPeer::join(&url, "stays", Serializer::Json).await;
    assert_eq!(
        call_error(&mut alice, "com.app.secret").await.as_deref(),
        Some(uris::NO_SUCH_PROCEDURE),
        "allowed before the reload"
    );
    RawPeer::refused(
        &url,
        "app",
        Some("carol"),
        Cred::Ticket("c"),
        uris::NO_SUCH_PRINCIPAL,
    )
    .await;

    let carol = "[[realm.user]]\nauthid = \"carol\"\nrole = \"worker\"\nticket = \"c\"\n";
    let after = format!(
        "{TRANSPORT}{}{}{}",
        realm("stays"),
        realm("goes"),
        app_realm(WORKER_NO_SECRET, carol, false)
    );
    let report = router.server().reload(parse(&after));
    assert_eq!(report.realms_changed, ["app"], "{report:?}");
    assert!(report.realms_added.is_empty() && report.realms_removed.is_empty());
    assert_eq!(report.sessions_closed, 1, "bob's role is gone: {report:?}");

    // alice's session stays, with the new permissions from its next call on.
    assert_eq!(
        call_error(&mut alice, "com.app.secret").await.as_deref(),
        Some(uris::NOT_AUTHORIZED)
    );
    assert_eq!(
        call_error(&mut alice, "com.app.open").await.as_deref(),
        Some(uris::NO_SUCH_PROCEDURE),
        "what is still allowed"
    );
    let why = expect_goodbye(&mut bob, uris::CLOSE_KILLED).await;
    assert!(why.contains("temp"), "{why}");
    // The next authentications use the new users.
    let mut carol = login("carol", "c").await;
    assert_eq!(
        call_error(&mut carol, "com.app.secret").await.as_deref(),
        Some(uris::NOT_AUTHORIZED)
    );
    RawPeer::refused(
        &url,
        "app",
        Some("bob"),
        Cred::Ticket("b"),
        uris::NO_SUCH_PRINCIPAL,
    )
    .await;
    // Another realm's session was not touched.
    assert_eq!(
        call_error(&mut stays, "com.x").await.as_deref(),
        Some(uris::NO_SUCH_PROCEDURE)
    );
    router.shutdown().await;
}

/// A file in a fresh directory of its own, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!(
            "wamp-reload-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write config");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test]
async fn a_bad_file_is_refused_and_changes_nothing() {
    let router = TestRouter::with_config(&before()).await;
    let url = router.url().to_owned();
    let (mut alice, _) = RawPeer::join_as(&url, "app", Some("alice"), Cred::Ticket("a")).await;
    let (mut goes, _) = RawPeer::join(&url, "goes", Serializer::Json).await;

    // Valid TOML that removes realm `goes` and the secret, but with a typo at line 3.
    let typo = format!(
        "{TRANSPORT}serialisers = [\"json\"]\n{}{}",
        realm("stays"),
        app_realm(WORKER_NO_SECRET, "", true)
    );
    let bad = TempFile::new("typo.toml", &typo);
    let e = router.server().reload_file(&bad.0).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(e.key.starts_with("transport[0]"), "{e}");
    assert!(e.message.contains("serialisers"), "{e}");

    // A file that parses but names a certificate that is not there.
    let tls = format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\ntls = {{ certificate = \"/nonexistent/cert.pem\", key = \"/nonexistent/key.pem\" }}\n{}",
        realm("stays")
    );
    let missing = TempFile::new("tls.toml", &tls);
    let e = router.server().reload_file(&missing.0).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("transport[0].tls", 3), "{e}");
    assert!(e.message.contains("/nonexistent/cert.pem"), "{e}");

    // Everything as it was: realm `goes` and its session, alice's permission, bob's login.
    assert_eq!(
        call_error(&mut goes, "com.x").await.as_deref(),
        Some(uris::NO_SUCH_PROCEDURE)
    );
    assert_eq!(
        call_error(&mut alice, "com.app.secret").await.as_deref(),
        Some(uris::NO_SUCH_PROCEDURE)
    );
    RawPeer::join_as(&url, "app", Some("bob"), Cred::Ticket("b")).await;
    RawPeer::join(&url, "goes", Serializer::Json).await;

    // And a good file after the bad ones is applied.
    let good = TempFile::new("good.toml", &format!("{TRANSPORT}{}", realm("stays")));
    let report = router.server().reload_file(&good.0).expect("a good file");
    assert_eq!(report.realms_removed.len(), 2, "{report:?}");
    router.shutdown().await;
}

#[tokio::test]
async fn changes_that_need_a_restart_are_reported_and_kept_as_they_were() {
    let text = format!(
        "{TRANSPORT}{}[realm.limits]\nmax_sessions = 1\n",
        realm("stays")
    );
    let router = TestRouter::with_config(&text).await;
    let url = router.url().to_owned();
    let (_first, _) = RawPeer::join(&url, "stays", Serializer::Json).await;
    let after = format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\npath = \"/wamp\"\n{}[realm.limits]\nmax_sessions = 5\n[router]\nmax_sessions = 10\n",
        realm("stays")
    );
    let report: ReloadReport = router.server().reload(parse(&after));
    assert_eq!(
        report.restart_needed,
        ["router", "transport", "realm stays: limits"],
        "{report:?}"
    );
    // The old limit and the old listener are still in force.
    refused_join(&url, "stays", "wamp.error.limit_exceeded").await;
    assert_eq!(router.server().url(), url);
    // Still reported the next time: the running router has not taken them.
    let again = router.server().reload(parse(&after));
    assert_eq!(again.restart_needed.len(), 3, "{again:?}");
    router.shutdown().await;
}

#[tokio::test]
async fn an_authentication_under_way_when_its_realm_or_role_goes_is_refused() {
    let router = TestRouter::with_config(&before()).await;
    let url = router.url().to_owned();
    let challenged = |authid: &'static str| {
        let url = url.clone();
        async move {
            let hello = wamp_tests::auth::auth_hello("app", &["ticket"], Some(authid), None);
            let (p, first) = RawPeer::greet(&url, &hello).await;
            assert!(matches!(first, Message::Challenge(_)), "{first:?}");
            p
        }
    };
    // bob's role goes (and bob with it): his CHALLENGE was sent under the old users.
    let mut bob = challenged("bob").await;
    let no_temp = format!(
        "{TRANSPORT}{}{}{}",
        realm("stays"),
        realm("goes"),
        app_realm(WORKER_ALL, "", false)
    );
    assert_eq!(router.server().reload(parse(&no_temp)).sessions_closed, 0);
    let answer = bob.authenticate("b").await;
    assert_abort(&answer, uris::NO_SUCH_ROLE);

    // The whole realm goes while alice is being authenticated.
    let mut alice = challenged("alice").await;
    let no_app = format!("{TRANSPORT}{}{}", realm("stays"), realm("goes"));
    let report = router.server().reload(parse(&no_app));
    assert_eq!(report.realms_removed, ["app"], "{report:?}");
    let answer = alice.authenticate("a").await;
    assert_abort(&answer, uris::NO_SUCH_REALM);
    assert_eq!(router.server().session_count(), 0);
    router.shutdown().await;
}
