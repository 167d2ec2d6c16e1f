//! Operating the `wamp-router` binary: `check-config`, `--log-format json`,
//! and a configuration reload on a real SIGHUP, with a WAMP client over a real socket.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as Ws;

const BIN: &str = env!("CARGO_BIN_EXE_wamp-router");
/// The upper bound of every wait (they end as soon as what they wait for happens).
const WAIT: Duration = Duration::from_secs(20);

/// A directory of its own for one test, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("wamp-bin-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(realms: &[&str]) -> String {
    let mut s = String::from("[[transport]]\nbind = \"127.0.0.1:0\"\npath = \"/ws\"\n");
    for r in realms {
        s += &format!("[[realm]]\nname = \"{r}\"\n");
    }
    s
}

fn check_config(file: &Path) -> std::process::Output {
    Command::new(BIN)
        .arg("check-config")
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn check_config_exits_0_or_prints_the_file_line_key_error() {
    let dir = Dir::new("check");
    let good = dir.write("good.toml", &config(&["realm1"]));
    let out = check_config(&good);
    assert!(out.status.success(), "{out:?}");

    let bad = dir.write(
        "bad.toml",
        "[[transport]]\nbind = \"127.0.0.1:0\"\n\n[[realm]]\nname = \"r\"\nanonymus = true\n",
    );
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:6: key `realm[0]", bad.display());
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("anonymus"), "{err}");

    let tls = dir.write(
        "tls.toml",
        &format!(
            "{}tls = {{ certificate = \"{}\", key = \"{}\" }}\n[[realm]]\nname = \"r\"\n",
            "[[transport]]\nbind = \"127.0.0.1:0\"\n",
            dir.0.join("absent.pem").display(),
            dir.0.join("absent-key.pem").display()
        ),
    );
    let out = check_config(&tls);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:3: key `transport[0].tls`", tls.display())),
        "{err}"
    );
    // The other flags still work next to the subcommand.
    let out = Command::new(BIN)
        .arg("--print-default-config")
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.starts_with(b"#"),
        "{out:?}"
    );
}

/// A running router binary and its JSON log lines.
struct Router {
    child: Option<Child>,
    /// Every stderr line, parsed (`Err`: a line that is not JSON).
    lines: mpsc::Receiver<Result<Value, String>>,
    url: String,
}

impl Router {
    fn start(config: &Path) -> Router {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("--log-format")
            .arg("json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut r = Router {
            child: Some(child),
            lines,
            url: String::new(),
        };
        let listening = r.wait_for("listening");
        r.url = listening["fields"]["url"].as_str().unwrap().to_owned();
        r
    }

    /// The next log line whose message is `message` (earlier lines are skipped).
    fn wait_for(&mut self, message: &str) -> Value {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Ok(v)) if v["fields"]["message"] == message => return v,
                Ok(Ok(_)) => continue,
                Ok(Err(line)) => panic!("not a JSON log line: {line}"),
                Err(e) => panic!("no log line `{message}`: {e}"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// SIGTERM, and the router exits cleanly in time.
    fn stop(mut self) {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match exited.recv_timeout(WAIT) {
            Ok(status) => assert!(status.as_ref().is_ok_and(|s| s.success()), "{status:?}"),
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                panic!("the router did not exit after SIGTERM");
            }
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WAMP JSON session over a real WebSocket.
struct Peer(Socket);

impl Peer {
    async fn connect(url: &str) -> Peer {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("wamp.2.json"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Peer(ws)
    }

    async fn send(&mut self, msg: Value) {
        self.0.send(Ws::Text(msg.to_string().into())).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(WAIT, self.0.next()).await;
            match next.expect("a message in time") {
                Some(Ok(Ws::Text(t))) => return serde_json::from_str(&t).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// HELLO for `realm`: the router's answer (WELCOME `[2, ...]` or ABORT `[3, ...]`).
    async fn hello(url: &str, realm: &str) -> (Peer, Value) {
        let mut p = Peer::connect(url).await;
        p.send(json!([1, realm, {"roles": {"caller": {}, "callee": {}}}]))
            .await;
        let answer = p.recv().await;
        (p, answer)
    }

    async fn join(url: &str, realm: &str) -> (Peer, u64) {
        let (p, w) = Peer::hello(url, realm).await;
        assert_eq!(w[0], 2, "expected WELCOME: {w}");
        (p, w[1].as_u64().unwrap())
    }

    /// A CALL nobody registered: the session is alive when `no_such_procedure` comes back.
    async fn assert_alive(&mut self, request: u64) {
        self.send(json!([48, request, {}, "com.nobody"])).await;
        let e = self.recv().await;
        let head = e.as_array().map(|a| &a[..a.len().min(5)]);
        let want = json!([8, 48, request, {}, "wamp.error.no_such_procedure"]);
        assert_eq!(head, want.as_array().map(Vec::as_slice), "{e}");
    }
}

#[tokio::test]
async fn json_logs_carry_session_realm_and_authid() {
    let dir = Dir::new("json");
    let mut router = Router::start(&dir.write("c.toml", &config(&["realm1"])));
    let (_peer, session) = Peer::join(&router.url, "realm1").await;
    let joined = router.wait_for("session joined");
    let f = &joined["fields"];
    assert_eq!(f["session"], session.to_string(), "{joined}");
    assert_eq!(f["realm"], "realm1", "{joined}");
    assert!(
        f["authid"].as_str().is_some_and(|a| !a.is_empty()),
        "{joined}"
    );
    assert_eq!(joined["level"], "INFO", "{joined}");
    router.stop();
}

#[tokio::test]
async fn sighup_reloads_the_configuration_file_and_refuses_a_bad_one() {
    let dir = Dir::new("hup");
    let file = dir.write("c.toml", &config(&["realm1", "old"]));
    let mut router = Router::start(&file);
    let url = router.url.clone();
    let (mut stays, _) = Peer::join(&url, "realm1").await;
    let (mut old, _) = Peer::join(&url, "old").await;
    let (_p, abort) = Peer::hello(&url, "realm2").await;
    assert_eq!(abort[2], "wamp.error.no_such_realm", "{abort}");

    std::fs::write(&file, config(&["realm1", "realm2"])).unwrap();
    router.signal("HUP");
    let reloaded = router.wait_for("configuration reloaded");
    assert_eq!(reloaded["fields"]["sessions_closed"], 1, "{reloaded}");
    let goodbye = old.recv().await;
    assert_eq!(goodbye[0], 6, "GOODBYE: {goodbye}");
    assert_eq!(goodbye[2], "wamp.close.close_realm", "{goodbye}");
    Peer::join(&url, "realm2").await;
    stays.assert_alive(1).await;

    // A bad file: refused with a log line, everything stays as it was.
    std::fs::write(&file, "[[realm]]\nname = \"realm1\"\n").unwrap();
    router.signal("HUP");
    let refused =
        router.wait_for("configuration reload refused; the current configuration stays in force");
    let error = refused["fields"]["error"].as_str().unwrap();
    assert!(error.starts_with(&file.display().to_string()), "{refused}");
    Peer::join(&url, "realm2").await;
    stays.assert_alive(2).await;
    router.stop();
}
