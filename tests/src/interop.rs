//! The harness for interop tests: a peer script (autobahn-python or autobahn-js) run as a
//! child process, speaking JSON lines on stdout (see `tests/interop/python/peer.py`).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use wamp_client::Serializer;

use crate::{in_ci, WAIT};

/// The realm every peer joins.
pub const REALM: &str = "realm1";
/// The peer's own overall limit (`--timeout`); every wait here is bounded by [`WAIT`].
pub const PEER_TIMEOUT_SECS: &str = "30";

/// The value of `var`, or `None` (after a notice naming `test`) when it is unset outside CI;
/// under CI an unset `var` fails the test.
pub fn env_path(var: &str, test: &str, hint: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            assert!(
                !in_ci(),
                "{var} is not set, and CI is: run the suite with scripts/test-all.sh ({hint})"
            );
            eprintln!("notice: skipping the {test}: {var} is not set ({hint})");
            None
        }
    }
}

/// The Python to run `peer.py` with (`WAMP_INTEROP_PYTHON`), per [`env_path`].
pub fn python(test: &str) -> Option<PathBuf> {
    env_path(
        "WAMP_INTEROP_PYTHON",
        test,
        "scripts/test-all.sh creates target/interop/venv and sets it",
    )
}

/// `tests/interop/python/peer.py`.
pub fn python_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/python/peer.py")
}

/// `tests/interop/python/auth_peer.py` (peer.py's sessions, authenticating).
pub fn python_auth_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/python/auth_peer.py")
}

/// Where the JS peers live and which `node` runs them.
#[derive(Debug)]
pub struct NodeEnv {
    /// `tests/interop/js`, with its `node_modules` installed (`WAMP_INTEROP_NODE_DIR`).
    pub dir: PathBuf,
    /// `WAMP_INTEROP_NODE`, else `node` from `PATH`.
    pub node: PathBuf,
}

/// The JS peers' environment, or `None` (after a notice naming `test`) when it is not set up
/// outside CI (per [`env_path`]).
pub fn node_env(test: &str) -> Option<NodeEnv> {
    let dir = env_path(
        "WAMP_INTEROP_NODE_DIR",
        test,
        "scripts/test-all.sh installs tests/interop/js and sets it",
    )?;
    assert!(
        dir.join("node_modules/autobahn").is_dir(),
        "WAMP_INTEROP_NODE_DIR={} has no node_modules/autobahn (run npm ci there)",
        dir.display()
    );
    let node = std::env::var_os("WAMP_INTEROP_NODE")
        .filter(|n| !n.is_empty())
        .map_or_else(|| PathBuf::from("node"), PathBuf::from);
    Some(NodeEnv { dir, node })
}

/// The `--serializer` name of `s`.
pub fn ser_name(s: Serializer) -> &'static str {
    s.name()
}

/// One running `interpreter script ...`; killed if dropped before it finished.
#[derive(Debug)]
pub struct ScriptPeer {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
}

impl ScriptPeer {
    /// Starts `interpreter script` (in `dir`, if given) in `mode` (e.g. `["caller", "p"]`)
    /// against `url`; `stdin` piped (closed by [`ScriptPeer::succeed`]) or else null.
    pub fn spawn(
        interpreter: &Path,
        script: &Path,
        dir: Option<&Path>,
        url: &str,
        serializer: Serializer,
        mode: &[&str],
        piped_stdin: bool,
    ) -> ScriptPeer {
        let name = script.file_name().unwrap_or_default().to_string_lossy();
        let what = format!(
            "{name} --serializer {} {}",
            ser_name(serializer),
            mode.join(" ")
        );
        assert!(script.is_file(), "{} is missing", script.display());
        let mut cmd = Command::new(interpreter);
        cmd.arg(script)
            .args(["--url", url, "--realm", REALM])
            .args(["--serializer", ser_name(serializer)])
            .args(["--timeout", PEER_TIMEOUT_SECS])
            .args(mode);
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", interpreter.display()));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        ScriptPeer {
            what,
            child,
            stdin,
            stdout,
            stderr: Some(stderr),
        }
    }

    /// Starts `peer.py` with `python` and a piped stdin (see [`ScriptPeer::spawn`]).
    pub fn python(python: &Path, url: &str, serializer: Serializer, mode: &[&str]) -> ScriptPeer {
        ScriptPeer::spawn(python, &python_script(), None, url, serializer, mode, true)
    }

    /// Starts `auth_peer.py` with `python` and a piped stdin; `args` are its authentication
    /// options and mode.
    pub fn python_auth(
        python: &Path,
        url: &str,
        serializer: Serializer,
        args: &[&str],
    ) -> ScriptPeer {
        let script = python_auth_script();
        ScriptPeer::spawn(python, &script, None, url, serializer, args, true)
    }

    /// Starts the JS peer `script` (e.g. `peer.js`) of `env`, in its directory, with a
    /// piped stdin.
    pub fn node(
        env: &NodeEnv,
        script: &str,
        url: &str,
        serializer: Serializer,
        mode: &[&str],
    ) -> ScriptPeer {
        let script = env.dir.join(script);
        ScriptPeer::spawn(
            &env.node,
            &script,
            Some(&env.dir),
            url,
            serializer,
            mode,
            true,
        )
    }

    /// Kills the peer (if still running) and panics with `msg` and its stderr.
    pub async fn fail(&mut self, msg: &str) -> ! {
        let _ = self.child.start_kill();
        let stderr = self.take_stderr().await;
        panic!("{}: {msg}\n--- its stderr ---\n{stderr}", self.what);
    }

    async fn take_stderr(&mut self) -> String {
        match self.stderr.take() {
            Some(task) => match timeout(WAIT, task).await {
                Ok(Ok(s)) => s,
                _ => "<stderr not readable>".into(),
            },
            None => String::new(),
        }
    }

    /// The next JSON line on stdout, or `None` at its end.
    pub async fn next_line(&mut self) -> Option<Json> {
        let line = match timeout(WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => self.fail(&format!("reading stdout: {e}")).await,
            Err(_) => {
                self.fail(&format!("no line on stdout within {WAIT:?}"))
                    .await
            }
        };
        match serde_json::from_str(&line) {
            Ok(v) => Some(v),
            Err(e) => self.fail(&format!("not a JSON line ({e}): {line}")).await,
        }
    }

    /// The next line, which must exist.
    pub async fn line(&mut self) -> Json {
        match self.next_line().await {
            Some(l) => l,
            None => self.fail("stdout ended early").await,
        }
    }

    /// Expects `want` as the next line.
    pub async fn expect_line(&mut self, want: Json) {
        match self.next_line().await {
            Some(line) if line == want => {}
            Some(line) => self.fail(&format!("expected {want}, got {line}")).await,
            None => self.fail(&format!("stdout ended before {want}")).await,
        }
    }

    /// Waits for `{"ready": true}` (callee registered, subscriber subscribed).
    pub async fn ready(&mut self) {
        self.expect_line(json!({"ready": true})).await;
    }

    /// Writes one line on the peer's stdin (a go-ahead for modes that wait for one).
    pub async fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        let r = stdin.write_all(format!("{line}\n").as_bytes()).await;
        if let Err(e) = r.and(stdin.flush().await) {
            self.fail(&format!("writing stdin: {e}")).await;
        }
    }

    /// Takes the peer's stdin, so that [`ScriptPeer::finish`] does not close it.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Closes stdin (which stops a callee), reads stdout to its end and waits for the exit.
    /// Returns the exit status, the remaining stdout lines and stderr.
    pub async fn finish(mut self) -> (ExitStatus, Vec<Json>, String) {
        drop(self.stdin.take());
        let mut lines = Vec::new();
        while let Some(line) = self.next_line().await {
            lines.push(line);
        }
        let status = match timeout(WAIT, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => self.fail(&format!("wait: {e}")).await,
            Err(_) => self.fail(&format!("did not exit within {WAIT:?}")).await,
        };
        let stderr = self.take_stderr().await;
        (status, lines, stderr)
    }

    /// [`ScriptPeer::finish`], asserting exit 0; returns the remaining stdout lines.
    pub async fn succeed(self) -> Vec<Json> {
        let what = self.what.clone();
        let (status, lines, stderr) = self.finish().await;
        assert!(
            status.success(),
            "{what}: {status}\n--- stdout ---\n{lines:?}\n--- stderr ---\n{stderr}"
        );
        lines
    }
}
