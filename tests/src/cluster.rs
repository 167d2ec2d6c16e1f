//! A router cluster on one machine: a `nats-server` (JetStream, monitoring port) and
//! `wamp-router` processes joined through it, each on its own free ports and temp dir.
//!
//! Every process is killed when the [`Cluster`] is dropped, also when a test panics; then
//! the tail of each process's log is printed first.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::task::JoinHandle;
use wamp_proto::message::{code, Invocation, Yield};
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Value};

pub use crate::poll::{poll, try_poll};
pub use crate::procs::{free_port, nats_server_bin, Nats};
use crate::procs::{kill, print_tail, spawn_logged, temp_dir, wait_listening, START_BOUND};
use crate::{in_ci, RawPeer};

/// `[cluster] node_timeout_ms` of every node.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// The procedure that lists the nodes a node sees alive (itself included), sorted.
pub const NODES_PROCEDURE: &str = "wamp_router.cluster.nodes";

/// The realm of most tests (interest mode): anonymous sessions, and users `alice` (role
/// `ra`) and `bob` (role `rb`) with ticket [`TICKET`].
pub const REALM: &str = "realm1";

/// A realm in `pubsub_mode = "broadcast"`.
pub const BROADCAST_REALM: &str = "realm.broadcast";

/// The ticket of the users of [`REALM`].
pub const TICKET: &str = "t";

/// The routers' log filter, unless `$WAMP_CLUSTER_LOG` gives another.
const NODE_LOG: &str = "info,wamp_router::cluster=debug";

const REALMS: &str = r#"
[[realm]]
name = "realm1"
meta_api = true
anonymous = true
pubsub_mode = "interest"

[[realm.user]]
authid = "alice"
role = "ra"
ticket = "t"

[[realm.user]]
authid = "bob"
role = "rb"
ticket = "t"

# Event history on every node (`cluster/retained.rs`).
[[realm.topic]]
uri = "cl.hist."
match = "prefix"
history = 100

[[realm]]
name = "realm.broadcast"
meta_api = true
pubsub_mode = "broadcast"
"#;

/// Runs a test on a fresh cluster of nodes `n1`, `n2`, `n3` (see [`with_nodes`]).
pub async fn with_cluster(body: impl AsyncFnOnce(&mut Cluster)) {
    with_nodes(&["n1", "n2", "n3"], body).await;
}

/// Starts a cluster of one node per id and runs `body` on it, failing after 60 s; returns
/// at once (with a notice) when nats-server is missing outside CI. The cluster is dropped,
/// and its logs printed on failure, after `body`.
pub async fn with_nodes(ids: &[&str], body: impl AsyncFnOnce(&mut Cluster)) {
    let Some(mut c) = Cluster::start_nodes(ids).await else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(60), body(&mut c))
        .await
        .expect("the test ends within 60 s");
}

/// The router binary: `$WAMP_ROUTER_BIN`, else `target/debug/wamp-router`, built once when
/// it is missing.
pub fn router_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("WAMP_ROUTER_BIN") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bin = root.join("target/debug/wamp-router");
        if !bin.is_file() {
            let status = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
                .args(["build", "-p", "wamp-router", "--bin", "wamp-router"])
                .current_dir(&root)
                .env("CARGO_TARGET_DIR", root.join("target"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build of wamp-router failed");
        }
        bin
    })
}

/// Sends `signal` (`STOP`, `CONT`, ...) to `child`.
fn signal(child: &Option<Child>, signal: &str) {
    let pid = child.as_ref().expect("the process runs").id();
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// One `wamp-router` process.
#[derive(Debug)]
pub struct Node {
    /// Its `[cluster] node_id`.
    pub id: String,
    /// Its WebSocket port.
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// `ws://127.0.0.1:<port>/ws`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    async fn start(&mut self) {
        let log = std::env::var("WAMP_CLUSTER_LOG");
        let mut cmd = Command::new(router_bin());
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", log.as_deref().unwrap_or(NODE_LOG))
            .env("NO_COLOR", "1");
        let child = self.child.insert(spawn_logged(&mut cmd, &self.log));
        wait_listening(&format!("wamp-router {}", self.id), self.port, child).await;
    }

    /// Kills the process (SIGKILL).
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Counter `name` (without `_total`) of the node's `/metrics`, 0 when absent.
    pub async fn counter(&self, name: &str) -> u64 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let reply = crate::http::get_http10(addr, "/metrics").await;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        let key = format!("wamp_{name}_total ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Freezes the process (SIGSTOP).
    pub fn pause(&self) {
        signal(&self.child, "STOP");
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn resume(&self) {
        signal(&self.child, "CONT");
    }
}

/// A nats-server and three routers `n1`, `n2`, `n3` (or the ids given), each seeing all.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    /// The NATS server.
    pub nats: Nats,
    /// The routers, in the order of their ids as given.
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts one node per id and waits until each sees all of them; `None` (with a
    /// notice) when nats-server is missing outside CI.
    pub async fn start_nodes(ids: &[&str]) -> Option<Cluster> {
        let Some(bin) = nats_server_bin() else {
            assert!(
                !in_ci(),
                "nats-server is needed for the cluster tests (CI is set): install the \
                 Debian package nats-server or set WAMP_NATS_SERVER"
            );
            eprintln!("cluster test skipped: nats-server not found (set WAMP_NATS_SERVER)");
            return None;
        };
        let dir = temp_dir();
        let nats = Nats::new(bin, &dir);
        let nodes = ids
            .iter()
            .map(|id| Node {
                id: (*id).to_owned(),
                port: free_port(),
                config: dir.join(format!("{id}.toml")),
                log: dir.join(format!("{id}.log")),
                child: None,
            })
            .collect();
        // From here on, Drop kills whatever has started.
        let mut c = Cluster { dir, nats, nodes };
        c.nats.start().await;
        for node in &mut c.nodes {
            fs::write(&node.config, node_config(node, &c.nats.url())).expect("write config");
            node.start().await;
        }
        let mut all: Vec<&str> = ids.to_vec();
        all.sort_unstable();
        for node in &c.nodes {
            wait_view(&node.url(), &all, START_BOUND).await;
        }
        for node in &mut c.nodes {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                panic!("wamp-router {} exited: {status}", node.id);
            }
        }
        Some(c)
    }

    /// The URL of node `n`, counting from 1 (`url(2)` is `n2` with the default ids).
    pub fn url(&self, n: usize) -> String {
        self.nodes[n - 1].url()
    }

    /// Node `n`, counting from 1.
    pub fn node(&mut self, n: usize) -> &mut Node {
        &mut self.nodes[n - 1]
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        self.nats.kill();
        if std::thread::panicking() {
            for node in &self.nodes {
                print_tail(&format!("wamp-router {}", node.id), &node.log);
            }
            print_tail("nats-server", self.nats.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The `[cluster] subscription_capacity` of a node whose id starts with `slow`.
pub const SLOW_NODE_CAPACITY: usize = 64;

/// The configuration of `node`: a WebSocket transport with `/metrics`, `[cluster]` on `nats`
/// (`n2` names it in the array form; a node whose id starts with `slow` has a
/// [`SLOW_NODE_CAPACITY`]), [`REALMS`].
fn node_config(node: &Node, nats: &str) -> String {
    let nats = match node.id.as_str() {
        "n2" => format!("[\"{nats}\"]"),
        _ => format!("\"{nats}\""),
    };
    let capacity = if node.id.starts_with("slow") {
        format!("subscription_capacity = {SLOW_NODE_CAPACITY}")
    } else {
        String::new()
    };
    format!(
        r#"
[[transport]]
bind = "127.0.0.1:{port}"
path = "/ws"
serializers = ["json", "msgpack", "cbor"]
metrics = true

[cluster]
nats_url = {nats}
node_id = "{id}"
subject_prefix = "wamp"
heartbeat_ms = 200
node_timeout_ms = {timeout}
unsubscribe_linger_ms = 100
{capacity}
{REALMS}"#,
        port = node.port,
        id = node.id,
        timeout = NODE_TIMEOUT.as_millis(),
    )
}

/// The node ids the node at `url` sees alive: [`NODES_PROCEDURE`]'s first argument
/// (`None` if it answers an ERROR).
pub async fn seen_nodes(peer: &mut RawPeer) -> Option<Vec<String>> {
    let r = peer.send_call(NODES_PROCEDURE, Payload::default()).await;
    match peer.recv().await {
        Message::Result(res) if res.request == r => {
            let args = res.payload.args.unwrap_or_default();
            let list = args
                .first()
                .and_then(Value::as_list)
                .unwrap_or_else(|| panic!("{NODES_PROCEDURE}: args[0] is not a list: {args:?}"));
            let ids = list.iter().map(|v| v.as_str().map(str::to_owned));
            Some(ids.collect::<Option<_>>().expect("node ids are strings"))
        }
        Message::Error(e) if e.request == r => None,
        other => panic!("{NODES_PROCEDURE}: expected RESULT or ERROR, got {other:?}"),
    }
}

/// Waits until the node at `url` sees exactly `ids` (sorted) alive.
pub async fn wait_view(url: &str, ids: &[&str], bound: Duration) {
    let (mut peer, _) = RawPeer::join(url, REALM, Serializer::Json).await;
    let mut last = None;
    let seen = try_poll(bound, async || {
        last = seen_nodes(&mut peer).await;
        last.as_ref().filter(|seen| *seen == ids).map(drop)
    })
    .await;
    assert!(
        seen.is_some(),
        "{url}: {NODES_PROCEDURE} did not give {ids:?} within {bound:?}; last: {last:?}"
    );
}

/// A callee served by a task: each INVOCATION is answered with a YIELD of `[tag, args...]`
/// and the same kwargs. The task ends when this is dropped.
#[derive(Debug)]
pub struct Served(JoinHandle<()>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `peer`'s registrations (see [`Served`]).
pub fn serve(mut peer: RawPeer, tag: &str) -> Served {
    let tag = Value::from(tag);
    Served(tokio::spawn(async move {
        while let Ok(m) = peer.next_message().await {
            if let Message::Invocation(inv) = m {
                let mut args = vec![tag.clone()];
                args.extend(inv.payload.args.unwrap_or_default());
                let answer = Yield {
                    request: inv.request,
                    options: Dict::new(),
                    payload: Payload::new(Some(args), inv.payload.kwargs),
                };
                peer.send(&answer.into()).await;
            }
        }
    }))
}

/// Whether `m` is the ERROR `no_such_procedure` of a CALL: a registration made on another
/// node is not visible yet (a documented window of milliseconds).
fn not_routed_yet(m: &Message) -> bool {
    matches!(m, Message::Error(e)
        if e.request_type == code::CALL && e.error.as_str() == uris::NO_SUCH_PROCEDURE)
}

/// Calls `procedure` (a [`Served`] callee) until it is routed, and returns the answer: the
/// first that is not `no_such_procedure`.
pub async fn call_served(caller: &mut RawPeer, procedure: &str, payload: Payload) -> Message {
    let what = format!("{procedure} to be callable");
    poll(&what, WAIT_ROUTED, async || {
        let r = caller
            .send_call_with(procedure, Dict::new(), payload.clone())
            .await;
        let m = caller.recv().await;
        assert_eq!(m_request(&m), Some(r), "an answer to CALL {r:?}: {m:?}");
        (!not_routed_yet(&m)).then_some(m)
    })
    .await
}

/// How long a registration made on one node may take to be callable on another.
pub const WAIT_ROUTED: Duration = Duration::from_secs(5);

/// The request id a RESULT or ERROR answers.
fn m_request(m: &Message) -> Option<Id> {
    match m {
        Message::Result(r) => Some(r.request),
        Message::Error(e) => Some(e.request),
        _ => None,
    }
}

/// Calls `procedure` from `caller` until `callee` (an in-test peer) is invoked, and returns
/// the CALL's request id and the INVOCATION (for the test to answer).
pub async fn invoke_routed(
    caller: &mut RawPeer,
    callee: &mut RawPeer,
    procedure: &str,
    options: Dict,
    payload: Payload,
) -> (Id, Invocation) {
    let what = format!("{procedure} to be callable");
    poll(&what, WAIT_ROUTED, async || {
        let r = caller
            .send_call_with(procedure, options.clone(), payload.clone())
            .await;
        tokio::select! {
            m = caller.recv() => {
                assert!(not_routed_yet(&m), "CALL {r:?} answered before its invocation: {m:?}");
                None
            }
            m = callee.recv() => match m {
                Message::Invocation(inv) => Some((r, inv)),
                other => panic!("expected INVOCATION, got {other:?}"),
            },
        }
    })
    .await
}
