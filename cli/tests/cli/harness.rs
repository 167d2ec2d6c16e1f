//! Running the built `wamp` binary as a user would, against a router started in-process.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::timeout;
use wamp_tests::{TestRouter, WAIT};

/// The binary under test.
pub const WAMP: &str = env!("CARGO_BIN_EXE_wamp");

/// Environment variables the tool reads: none leaks in from the test's environment.
const TOOL_ENV: &[&str] = &[
    "WAMP_URL",
    "WAMP_REALM",
    "WAMP_AUTHID",
    "WAMP_TICKET",
    "WAMP_SECRET",
    "WAMP_META_PREFIX",
    "RUST_LOG",
];

/// A router on WebSocket, RawSocket/TCP and RawSocket/Unix, realm `realm1` plus whatever
/// `extra` configures (more realms).
#[derive(Debug)]
pub struct Router {
    router: TestRouter,
    _socket: SocketFile,
}

/// The Unix socket's path, removed when dropped.
#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Router {
    pub async fn start() -> Router {
        Router::with_realms("").await
    }

    pub async fn with_realms(extra: &str) -> Router {
        static N: AtomicU32 = AtomicU32::new(0);
        let socket = std::env::temp_dir().join(format!(
            "wamp-cli-test-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let config = format!(
            r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"

[[transport]]
type = "rawsocket"
bind = "127.0.0.1:0"

[[transport]]
type = "rawsocket"
unix_socket = "{}"

[[realm]]
name = "realm1"
{extra}"#,
            socket.display()
        );
        let router = TestRouter::with_config(&config).await;
        assert_eq!(router.server().urls().len(), 3);
        Router {
            router,
            _socket: SocketFile(socket),
        }
    }

    pub fn ws(&self) -> &str {
        &self.router.server().urls()[0]
    }

    pub fn rs(&self) -> &str {
        &self.router.server().urls()[1]
    }

    pub fn unix(&self) -> &str {
        &self.router.server().urls()[2]
    }

    /// Shuts the router down gracefully (GOODBYE to every session).
    pub async fn shutdown(self) {
        self.router.shutdown().await;
    }

    /// All three URLs.
    pub fn urls(&self) -> [&str; 3] {
        [self.ws(), self.rs(), self.unix()]
    }
}

/// `wamp ARGS...` with piped output and a clean environment.
pub fn wamp(args: &[&str]) -> Command {
    let mut cmd = Command::new(WAMP);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in TOOL_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// `wamp --url URL ARGS...`.
pub fn wamp_at(url: &str, args: &[&str]) -> Command {
    let mut cmd = wamp(&["--url", url]);
    cmd.args(args);
    cmd
}

/// A finished run.
#[derive(Debug)]
pub struct Done {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    /// Checks the exit code (and that no panic or backtrace reached the user).
    #[track_caller]
    pub fn expect(self, code: i32) -> Done {
        assert_eq!(self.code, Some(code), "exit code of {self:#?}");
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "a panic reached the user: {self:#?}"
        );
        self
    }

    /// Stdout as JSON lines.
    #[track_caller]
    pub fn json(&self) -> Vec<Json> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {self:#?}")))
            .collect()
    }

    /// The one JSON line on stdout.
    #[track_caller]
    pub fn line(&self) -> Json {
        let lines = self.json();
        assert_eq!(lines.len(), 1, "{self:#?}");
        lines.into_iter().next().unwrap_or_default()
    }
}

/// Runs `cmd` to its end (bounded by [`WAIT`]).
pub async fn run(mut cmd: Command) -> Done {
    let out = timeout(WAIT, cmd.output())
        .await
        .expect("wamp finished in time")
        .expect("wamp runs");
    Done {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `wamp` process that keeps running (subscribe, register).
#[derive(Debug)]
pub struct Running {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
    stderr_seen: Vec<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("wamp starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
        Running {
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `text` (the status line "subscribed to ...").
    pub async fn stderr_line(&mut self, text: &str) -> String {
        loop {
            let line = timeout(WAIT, self.stderr.next_line()).await;
            match line {
                Ok(Ok(Some(l))) if l.contains(text) => return l,
                Ok(Ok(Some(l))) => self.stderr_seen.push(l),
                other => panic!(
                    "no stderr line with {text:?} ({other:?}); stderr so far: {:#?}",
                    self.stderr_seen
                ),
            }
        }
    }

    /// The next JSON line on stdout.
    pub async fn json_line(&mut self) -> Json {
        let line = timeout(WAIT, self.stdout.next_line()).await;
        match line {
            Ok(Ok(Some(l))) => serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}")),
            other => panic!(
                "no stdout line ({other:?}); stderr: {:#?}",
                self.stderr_seen
            ),
        }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the exit; the rest of stdout and stderr.
    pub async fn finish(mut self) -> Done {
        let status = timeout(WAIT, self.child.wait())
            .await
            .expect("wamp exits in time")
            .expect("wait");
        let mut stdout = String::new();
        while let Ok(Some(l)) = self.stdout.next_line().await {
            stdout.push_str(&l);
            stdout.push('\n');
        }
        let mut stderr = self.stderr_seen.join("\n");
        while let Ok(Some(l)) = self.stderr.next_line().await {
            stderr.push('\n');
            stderr.push_str(&l);
        }
        Done {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}
