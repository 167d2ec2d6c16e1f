//! Child processes of the tests: free ports, temp dirs, logged spawns, and a nats-server
//! (per cluster test, or one per test process for the parity run).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::net::TcpStream;

use crate::poll::poll;

/// How long a process has to start listening (debug builds on a loaded machine).
pub(crate) const START_BOUND: Duration = Duration::from_secs(30);

/// A port that was free a moment ago (bound on 127.0.0.1, then released), and never given
/// before in this process: the kernel may hand a released port out again at once, and two
/// processes of one cluster, or of two tests, must not be given the same.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if GIVEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// The nats-server binary: `$WAMP_NATS_SERVER`, else on PATH, else `/usr/sbin/nats-server`.
pub fn nats_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WAMP_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
}

/// A unique directory under the system temp dir.
pub(crate) fn temp_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wamp-cluster-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Waits until `port` on 127.0.0.1 accepts TCP, or panics (with `what`) after [`START_BOUND`]
/// or when `child` exits.
pub(crate) async fn wait_listening(what: &str, port: u16, child: &mut Child) {
    poll(what, START_BOUND, async || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;
}

/// Kills `child` (SIGKILL) and reaps it.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Spawns `cmd` with stdout and stderr appended to `log`.
pub(crate) fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Prints the last 60 lines of `log` under a heading.
pub(crate) fn print_tail(name: &str, log: &Path) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(60)..];
    eprintln!(
        "----- {name} ({}) -----\n{}",
        log.display(),
        tail.join("\n")
    );
}

/// A nats-server with JetStream (its store in the cluster's temp dir) and monitoring.
#[derive(Debug)]
pub struct Nats {
    bin: PathBuf,
    /// The client port.
    pub port: u16,
    /// The HTTP monitoring port (`/connz`).
    pub monitor_port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Nats {
    /// A server (not started) on fresh ports, its store and log in `dir`.
    pub(crate) fn new(bin: PathBuf, dir: &Path) -> Nats {
        Nats {
            bin,
            port: free_port(),
            monitor_port: free_port(),
            store: dir.join("js"),
            log: dir.join("nats-server.log"),
            child: None,
        }
    }

    /// Its log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again: same ports and store) and waits until it accepts TCP.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "nats-server already runs");
        let mut cmd = Command::new(&self.bin);
        self.add_args(&mut cmd);
        let child = self.child.insert(spawn_logged(&mut cmd, &self.log));
        wait_listening("nats-server", self.port, child).await;
    }

    /// Starts the server for the rest of this process: a shell runs it and kills it (and
    /// removes `dir`) when its stdin, a pipe from this process, closes, which the kernel
    /// does when the process exits however it ends (the test harness never drops statics).
    pub(crate) async fn start_for_process(&mut self, dir: &Path) {
        assert!(self.child.is_none(), "nats-server already runs");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"d="$1"; shift; "$@" & p=$!; read -r _; kill -9 "$p"; wait "$p"; rm -rf "$d""#)
            .arg("sh")
            .arg(dir)
            .arg(&self.bin);
        self.add_args(&mut cmd);
        let out = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let child = self.child.insert(child);
        wait_listening("nats-server", self.port, child).await;
    }

    fn add_args(&self, cmd: &mut Command) {
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(&self.store)
        .args(["-m", &self.monitor_port.to_string()]);
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// `GET /connz?subs=1`: every client connection with its `name` and
    /// `subscriptions_list`.
    pub async fn connz(&self) -> Json {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.monitor_port));
        let reply = crate::http::get_http10(addr, "/connz?subs=1").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()
    }

    /// The subjects that the NATS connections of node `node_id` subscribe to (a router
    /// names its connections `wamp-router <node id>`: the id is a word of the name).
    pub async fn subscriptions_of(&self, node_id: &str) -> Vec<String> {
        let connz = self.connz().await;
        let conns = connz["connections"].as_array().cloned().unwrap_or_default();
        conns
            .iter()
            .filter(|c| {
                let name = c["name"].as_str().unwrap_or_default();
                name.split(|ch: char| ch.is_whitespace())
                    .any(|t| t == node_id)
            })
            .flat_map(|c| {
                c["subscriptions_list"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    }
}
