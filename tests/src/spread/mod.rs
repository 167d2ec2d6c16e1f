//! The parity topology: with `WAMP_TEST_TOPOLOGY=cluster3` every [`crate::TestRouter`] is
//! three in-process routers of one cluster, so that the single-node behaviour tests run
//! with their peers spread over three nodes (issue #15's parity run, `tests/parity-skips.txt`
//! and `scripts/test-all.sh parity`).
//!
//! - The nodes share one nats-server per test process (started at the first TestRouter,
//!   killed when the process exits), or the one `$WAMP_TEST_NATS_URL` names. Each
//!   TestRouter has its own `subject_prefix` (and so its own registry bucket): concurrent
//!   tests do not see each other.
//! - Each node gets the test's TOML plus `[cluster]` (short timers) and a realm
//!   [`HARNESS_REALM`] with the meta API, through which the harness waits, before the
//!   TestRouter is handed out, until every node sees the other two.
//! - Each [`crate::RawPeer`] connection to any node of a TestRouter goes to the next node in
//!   turn (1, 2, 3, 1, ...), whatever node URL it was given; [`crate::TestRouter::url`]
//!   rotates too, for other clients. `TestRouter::server()` is node 1: tests that inspect
//!   the server in-process are not part of the parity run.
//! - Guard: a TestRouter whose peers (two or more) all landed on one node fails when it is
//!   dropped: such a test would prove nothing about the cluster.
//! - Registrations and their ends (D3) are waited for before each CALL, those of the same
//!   procedure before each REGISTER (D6; see [`sync`]).

pub(crate) mod sync;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OnceCell;
use wamp_proto::Serializer;
use wamp_router::__testing::RouteProbe;
use wamp_router::{Config, Server};

use crate::cluster::seen_nodes;
use crate::poll::try_poll;
use crate::procs::{nats_server_bin, temp_dir, Nats, START_BOUND};
use crate::RawPeer;

/// The environment variable that selects the topology; `cluster3` is the only other one.
pub const TOPOLOGY_VAR: &str = "WAMP_TEST_TOPOLOGY";

/// A running nats-server (with JetStream) to use instead of starting one.
pub const NATS_URL_VAR: &str = "WAMP_TEST_NATS_URL";

/// The realm the harness adds to each node's configuration for its own checks.
pub const HARNESS_REALM: &str = "parity.harness";

/// How many nodes a TestRouter has in the parity topology.
pub(crate) const NODES: usize = 3;

/// Whether TestRouters are three-node clusters (`WAMP_TEST_TOPOLOGY=cluster3`).
pub fn enabled() -> bool {
    std::env::var(TOPOLOGY_VAR).is_ok_and(|v| v == "cluster3")
}

/// Nodes 2 and 3 of a TestRouter (node 1 is its `server`), and how peers are spread.
#[derive(Debug)]
pub(crate) struct Spread {
    others: Vec<Server>,
    urls: Vec<String>,
    next_url: AtomicUsize,
    group: Arc<Group>,
}

/// What the peers of one TestRouter share: where they connect and what they registered.
#[derive(Debug)]
pub(crate) struct Group {
    /// Each node's WebSocket URL, node 1 first.
    urls: Vec<String>,
    /// The next node a connection goes to.
    next_peer: AtomicUsize,
    /// Connections made to each node.
    peers: [AtomicUsize; NODES],
    /// Registrations made through the group's peers (see [`sync`]).
    pub(crate) registrations: Mutex<Vec<sync::Registration>>,
    /// Each node's routing table, node 1 first (see [`sync`]).
    pub(crate) tables: Vec<RouteProbe>,
}

/// Every live group, by the `host:port` of each of its nodes.
static GROUPS: Mutex<Vec<(String, Weak<Group>)>> = Mutex::new(Vec::new());

/// `host:port` of a `ws://host:port/path` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Where a new connection to `url` goes: if `url` is a node of a group, the group's next
/// node (same path), with the peer's link to the group.
pub(crate) fn route(url: &str) -> Option<(String, sync::PeerLink)> {
    let key = authority(url);
    let group = {
        let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
        groups.retain(|(_, g)| g.strong_count() > 0);
        groups
            .iter()
            .find(|(a, _)| a == key)
            .and_then(|(_, g)| g.upgrade())?
    };
    let node = group.next_peer.fetch_add(1, Ordering::Relaxed) % NODES;
    group.peers[node].fetch_add(1, Ordering::Relaxed);
    let path = url
        .strip_prefix("ws://")
        .and_then(|r| r.find('/').map(|i| &r[i..]));
    let base = &group.urls[node];
    let routed = match path {
        Some(p) => format!("ws://{}{p}", authority(base)),
        None => base.clone(),
    };
    Some((routed, sync::PeerLink::new(group, node)))
}

/// The nats-server of this process: `$WAMP_TEST_NATS_URL`, else one started at first use
/// that lives as long as the process.
async fn nats_url() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(async || {
        if let Ok(url) = std::env::var(NATS_URL_VAR) {
            return url;
        }
        let bin = nats_server_bin()
            .expect("the parity topology needs nats-server (PATH, or set WAMP_NATS_SERVER)");
        let dir = temp_dir();
        let mut nats = Nats::new(bin, &dir);
        nats.start_for_process(&dir).await;
        let url = nats.url();
        // Never dropped: the server ends with the process (see `start_for_process`).
        std::mem::forget(nats);
        url
    })
    .await
}

/// A `subject_prefix` no other TestRouter of any process on this machine uses.
fn unique_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("parity{}x{n}", std::process::id())
}

/// What each node adds to the test's configuration.
fn cluster_section(node: usize, nats: &str, prefix: &str) -> String {
    format!(
        r#"

[[realm]]
name = "{HARNESS_REALM}"
meta_api = true
anonymous = true

[cluster]
nats_url = "{nats}"
node_id = "p{node}"
subject_prefix = "{prefix}"
heartbeat_ms = 200
node_timeout_ms = 5000
unsubscribe_linger_ms = 100
"#
    )
}

/// Starts the three nodes of a TestRouter from `toml` (node 1 returned apart) and waits
/// until each sees all three.
pub(crate) async fn start(toml: &str) -> (Server, Spread) {
    let nats = nats_url().await;
    let prefix = unique_prefix();
    let mut servers = Vec::with_capacity(NODES);
    for node in 1..=NODES {
        let text = format!("{toml}{}", cluster_section(node, nats, &prefix));
        let config = Config::from_toml(&text, "<test>").expect("test config is valid");
        servers.push(Server::start(config).await.expect("router starts"));
    }
    let urls: Vec<String> = servers.iter().map(ws_url).collect();
    let ids: Vec<String> = (1..=NODES).map(|n| format!("p{n}")).collect();
    for url in &urls {
        let (mut peer, _) = RawPeer::join(url, HARNESS_REALM, Serializer::Json).await;
        let seen = try_poll(START_BOUND, async || {
            seen_nodes(&mut peer).await.filter(|s| *s == ids).map(drop)
        })
        .await;
        assert!(
            seen.is_some(),
            "{url}: the nodes did not see {ids:?} in time"
        );
    }
    let group = Arc::new(Group {
        urls: urls.clone(),
        next_peer: AtomicUsize::new(0),
        peers: Default::default(),
        registrations: Mutex::new(Vec::new()),
        tables: servers.iter().map(Server::route_probe).collect(),
    });
    {
        let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
        for url in &urls {
            groups.push((authority(url).to_owned(), Arc::downgrade(&group)));
        }
    }
    let mut servers = servers.into_iter();
    let first = servers.next().expect("three nodes");
    let spread = Spread {
        others: servers.collect(),
        urls,
        next_url: AtomicUsize::new(0),
        group,
    };
    (first, spread)
}

/// A node's first WebSocket URL (the parity run covers WebSocket tests only).
fn ws_url(server: &Server) -> String {
    server
        .urls()
        .iter()
        .find(|u| u.starts_with("ws://"))
        .cloned()
        .expect("the parity topology needs a plain WebSocket transport")
}

impl Spread {
    /// The next node's URL, in turn.
    pub(crate) fn next_url(&self) -> &str {
        let n = self.next_url.fetch_add(1, Ordering::Relaxed) % NODES;
        &self.urls[n]
    }

    /// Shuts nodes 2 and 3 down (node 1 is the TestRouter's).
    pub(crate) async fn shutdown(mut self) {
        for s in std::mem::take(&mut self.others) {
            s.shutdown().await;
        }
    }
}

impl Drop for Spread {
    /// The guard: two or more peers that all used one node fail the test.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let counts: Vec<usize> = self
            .group
            .peers
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: usize = counts.iter().sum();
        let used = counts.iter().filter(|&&c| c > 0).count();
        assert!(
            total < 2 || used >= 2,
            "parity: all {total} peers of this TestRouter connected to one node \
             (connections per node: {counts:?}); the test proves nothing across nodes"
        );
    }
}
