//! Credentials the configuration reads from the environment (`{ env = "VAR" }`) and from
//! files (`{ file = "/path" }`), plain and hashed, used for real logins.
//!
//! Its own test binary with a single test: the test sets an environment variable, which is
//! only safe while no other thread of the process reads the environment.

use wamp_proto::uris;
use wamp_tests::auth::{detail, Cred};
use wamp_tests::rawsocket::TempDir;
use wamp_tests::{RawPeer, TestRouter};

const REALM: &str = "realm1";
const VAR: &str = "WAMP_TESTS_AUTH_SECRETS_TICKET";

#[tokio::test]
async fn tickets_and_secrets_from_the_environment_and_files_authenticate() {
    std::env::set_var(VAR, "env-ticket");
    let dir = TempDir::new();
    let cra_file = dir.path().join("cra-secret");
    // A trailing newline (what `echo` writes) is not part of the secret.
    std::fs::write(&cra_file, "file-secret\n").expect("write the secret file");
    let hashed_file = dir.path().join("hashed-ticket");
    let hash = wamp_router::hash_ticket("hashed-file-ticket").expect("hashable");
    std::fs::write(&hashed_file, format!("{hash}\n")).expect("write the hash file");

    let router = TestRouter::with_config(&format!(
        r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
[[realm]]
name = "{REALM}"
[[realm.user]]
authid = "envy"
role = "user"
ticket = {{ env = "{VAR}" }}
[[realm.user]]
authid = "filed"
role = "user"
wampcra = {{ secret = {{ file = {:?} }}, salt = "pepper", iterations = 10, keylen = 16 }}
[[realm.user]]
authid = "hashed"
role = "user"
ticket = {{ file = {:?} }}
"#,
        cra_file.display().to_string(),
        hashed_file.display().to_string(),
    ))
    .await;
    let url = router.url();
    for (authid, cred) in [
        ("envy", Cred::Ticket("env-ticket")),
        ("filed", Cred::WampCra("file-secret")),
        ("hashed", Cred::Ticket("hashed-file-ticket")),
    ] {
        let (_p, w) = RawPeer::join_as(url, REALM, Some(authid), cred).await;
        assert_eq!(detail(&w, "authid"), authid);
        assert_eq!(detail(&w, "authmethod"), cred.method());
    }
    // The name of the variable is not the ticket, nor is the file's text with its newline
    // the secret.
    for (authid, cred) in [
        ("envy", Cred::Ticket(VAR)),
        ("filed", Cred::WampCra("file-secret\n")),
    ] {
        RawPeer::refused(url, REALM, Some(authid), cred, uris::AUTHENTICATION_FAILED).await;
    }
    router.shutdown().await;
}
