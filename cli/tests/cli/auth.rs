//! Authentication options: ticket, WAMP-CRA, cryptosign; a refusal exits 3.

use wamp_client::CryptosignKey;

use crate::harness::{run, wamp_at, Router};

/// Realm `secure`: users only (joe's ticket, peter's WAMP-CRA secret, dev's cryptosign key).
async fn secure(dev: &CryptosignKey) -> Router {
    Router::with_realms(&format!(
        r#"
[[realm]]
name = "secure"

[[realm.user]]
authid = "joe"
role = "app"
ticket = "secret1"

[[realm.user]]
authid = "peter"
role = "app"
wampcra = {{ secret = "secret2" }}

[[realm.user]]
authid = "dev"
role = "app"
cryptosign_keys = ["{}"]

[[realm.role]]
name = "app"
  [[realm.role.permission]]
  uri = "com.app."
  match = "prefix"
  publish = true
"#,
        dev.public_key_hex()
    ))
    .await
}

/// A seed file in the temp directory, removed when dropped.
struct SeedFile(std::path::PathBuf);

impl SeedFile {
    fn new(name: &str, content: &str) -> SeedFile {
        let path = std::env::temp_dir().join(format!("wamp-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("write the seed file");
        SeedFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for SeedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn credentials_join_and_a_bad_ticket_exits_3() {
    let dev = CryptosignKey::generate();
    let r = secure(&dev).await;
    let publish = ["--realm", "secure", "publish", "com.app.x", "--acknowledge"];
    for url in [r.ws(), r.rs()] {
        // The ticket from the environment (not on the command line).
        let mut cmd = wamp_at(url, &["--authid", "joe"]);
        cmd.args(publish).env("WAMP_TICKET", "secret1");
        let out = run(cmd).await.expect(0);
        assert!(out.line()["publication"].is_u64(), "{out:#?}");

        let mut cmd = wamp_at(url, &["--authid", "joe", "--ticket", "wrong-ticket"]);
        cmd.args(publish);
        let out = run(cmd).await.expect(3);
        assert!(out.stderr.contains("authentication failed"), "{out:#?}");
        assert!(
            !out.stderr.contains("wrong-ticket"),
            "the ticket is never echoed"
        );

        // WAMP-CRA, from WAMP_AUTHID and WAMP_SECRET.
        let mut cmd = wamp_at(url, &publish);
        cmd.env("WAMP_AUTHID", "peter")
            .env("WAMP_SECRET", "secret2");
        run(cmd).await.expect(0);
        let mut cmd = wamp_at(url, &publish);
        cmd.env("WAMP_AUTHID", "peter").env("WAMP_SECRET", "nope");
        run(cmd).await.expect(3);

        // Cryptosign from a seed file; a key the router does not know is refused.
        let good = SeedFile::new("good.seed", &format!("{}\n", dev.seed_hex()));
        let mut cmd = wamp_at(url, &["--cryptosign-seed-file", good.path()]);
        cmd.args(publish);
        run(cmd).await.expect(0);
        let stranger = SeedFile::new("stranger.seed", &CryptosignKey::generate().seed_hex());
        let mut cmd = wamp_at(url, &["--cryptosign-seed-file", stranger.path()]);
        cmd.args(publish);
        run(cmd).await.expect(3);

        // Anonymous on a realm of users only.
        run(wamp_at(url, &publish)).await.expect(3);
    }
}

#[tokio::test]
async fn unusable_credentials_are_usage_errors() {
    let dev = CryptosignKey::generate();
    let r = secure(&dev).await;
    let publish = ["--realm", "secure", "publish", "com.app.x"];
    // A ticket without an authid.
    let mut cmd = wamp_at(r.ws(), &publish);
    cmd.env("WAMP_TICKET", "secret1");
    let out = run(cmd).await.expect(1);
    assert!(out.stderr.contains("needs --authid"), "{out:#?}");
    assert!(!out.stderr.contains("secret1"));
    // A seed file that is not 64 hex characters, or not there: its content is not shown.
    let bad = SeedFile::new("bad.seed", "not-a-key-at-all");
    let out = run(wamp_at(
        r.ws(),
        &["--cryptosign-seed-file", bad.path(), "sessions"],
    ))
    .await
    .expect(1);
    assert!(out.stderr.contains("64 hex"), "{out:#?}");
    assert!(!out.stderr.contains("not-a-key"), "{out:#?}");
    let out = run(wamp_at(
        r.ws(),
        &["--cryptosign-seed-file", "/nonexistent/seed", "sessions"],
    ))
    .await
    .expect(1);
    assert!(out.stderr.contains("/nonexistent/seed"), "{out:#?}");
}
