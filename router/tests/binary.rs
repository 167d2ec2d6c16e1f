//! The `wamp-router` binary: config errors, signals, the embedded default.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::message::{Goodbye, Hello};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Message, Serializer, Uri, Value};

const BIN: &str = env!("CARGO_BIN_EXE_wamp-router");

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wamp-router-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Kills the router if the test fails before it exits by itself.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn bad_config_exits_nonzero_naming_file_key_and_line() {
    let path = temp_config(
        "bad.toml",
        "[[transport]]\nbind = \"127.0.0.1:0\"\nserializers = [\"json\", \"yaml\"]\n\n[[realm]]\nname = \"realm1\"\n",
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains(":3:"), "line 3: {err}");
    assert!(err.contains("transport[0].serializers[1]"), "{err}");
    assert!(err.contains("yaml"), "{err}");
}

#[test]
fn missing_config_file_is_reported() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/router.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/router.toml"));
}

#[test]
fn prints_the_embedded_default_config() {
    let out = Command::new(BIN)
        .arg("--print-default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("127.0.0.1:8080") && text.contains("realm1"),
        "{text}"
    );
}

#[tokio::test]
async fn sigterm_says_goodbye_and_exits_zero() {
    let path = temp_config(
        "ok.toml",
        "[router]\ngoodbye_timeout_ms = 5000\n[[transport]]\nbind = \"127.0.0.1:0\"\n[[realm]]\nname = \"realm1\"\n",
    );
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut child = KillOnDrop(Some(child));
    // The log line "listening ... addr=127.0.0.1:PORT" tells where it listens.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                if let Some(a) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                {
                    let _ = addr_tx.send(a.to_owned());
                }
            }
            lines.push(line);
        }
        lines
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("router logs its address");
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "wamp.2.json".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let send = |m: Message| {
        WsMessage::Text(
            Serializer::Json
                .encode(&m)
                .unwrap()
                .as_bytes()
                .to_vec()
                .try_into()
                .unwrap(),
        )
    };
    let roles = dict([("caller", Value::Dict(Dict::new()))]);
    ws.send(send(
        Hello {
            realm: Uri::new("realm1"),
            details: dict([("roles", Value::Dict(roles))]),
        }
        .into(),
    ))
    .await
    .unwrap();
    let mut recv = async || loop {
        match ws.next().await {
            Some(Ok(WsMessage::Text(t))) => {
                return Some(Serializer::Json.decode(t.as_bytes()).unwrap())
            }
            Some(Ok(_)) => continue,
            _ => return None,
        }
    };
    assert!(matches!(recv().await, Some(Message::Welcome(_))));
    let pid = child.0.as_ref().unwrap().id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    match tokio::time::timeout(Duration::from_secs(10), recv())
        .await
        .unwrap()
    {
        Some(Message::Goodbye(g)) => assert_eq!(g.reason.as_str(), uris::CLOSE_SYSTEM_SHUTDOWN),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    ws.send(send(
        Goodbye {
            details: Dict::new(),
            reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
        }
        .into(),
    ))
    .await
    .unwrap();
    let mut proc = child.0.take().unwrap();
    let exit = tokio::task::spawn_blocking(move || proc.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let lines = log.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("session joined")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("session left")),
        "{lines:?}"
    );
}
