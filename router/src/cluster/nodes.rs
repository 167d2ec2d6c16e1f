//! Liveness: heartbeats, losing a silent node, reaping its records once, and fencing this
//! node when the others reaped it while it was cut off or frozen.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use tokio::time::Instant;
use tracing::{info, warn};

use super::envelope::{self, Heartbeat};
use super::{registry, Core};
use crate::peer::lock;
use crate::shared::RouterShared;

/// The GOODBYE reason of the sessions of a node the others declared lost.
pub(crate) const FENCED: &str = "wamp.close.node_fenced";

#[derive(Debug)]
struct Peer {
    incarnation: u64,
    last: Instant,
    alive: bool,
}

/// The other nodes as this one sees them.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    peers: Mutex<HashMap<String, Peer>>,
    /// Incarnations declared lost: whatever they still send is ignored.
    lost: Mutex<HashSet<(String, u64)>>,
}

/// What a message from a node means for its standing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// Known and alive.
    Alive,
    /// First heard of, or heard again after being lost (its records must be read again).
    Joined,
    /// A new incarnation: the old one is gone.
    Restarted(u64),
    /// An incarnation declared lost.
    Lost,
}

impl Nodes {
    /// The live nodes, `me` included, sorted.
    pub(crate) fn alive(&self, me: &str) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.peers)
            .iter()
            .filter(|(_, p)| p.alive)
            .map(|(n, _)| n.clone())
            .collect();
        v.push(me.to_owned());
        v.sort();
        v
    }

    /// Whether `(node, incarnation)` was declared lost.
    pub(crate) fn is_lost(&self, node: &str, incarnation: u64) -> bool {
        lock(&self.lost).contains(&(node.to_owned(), incarnation))
    }

    /// Records that `(node, incarnation)` spoke (a heartbeat, or a record in the registry).
    pub(crate) fn heard(&self, node: &str, incarnation: u64) -> Heard {
        if self.is_lost(node, incarnation) {
            return Heard::Lost;
        }
        let now = Instant::now();
        let mut peers = lock(&self.peers);
        match peers.get_mut(node) {
            Some(p) if p.incarnation == incarnation => {
                p.last = now;
                if p.alive {
                    Heard::Alive
                } else {
                    p.alive = true;
                    Heard::Joined
                }
            }
            Some(p) => {
                let old = p.incarnation;
                *p = Peer {
                    incarnation,
                    last: now,
                    alive: true,
                };
                Heard::Restarted(old)
            }
            None => {
                peers.insert(
                    node.to_owned(),
                    Peer {
                        incarnation,
                        last: now,
                        alive: true,
                    },
                );
                Heard::Joined
            }
        }
    }

    /// The live nodes silent for `timeout`, now marked not alive.
    fn silent(&self, timeout: std::time::Duration) -> Vec<(String, u64)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (n, p) in lock(&self.peers).iter_mut() {
            if p.alive && now.saturating_duration_since(p.last) >= timeout {
                p.alive = false;
                out.push((n.clone(), p.incarnation));
            }
        }
        out
    }

    /// After this node itself was frozen or cut off: nobody's silence counts from before,
    /// and the others get `grace` more to show up (they may reconnect later than this one).
    fn forgive(&self, grace: std::time::Duration) {
        let later = Instant::now() + grace;
        lock(&self.peers).values_mut().for_each(|p| p.last = later);
    }

    fn mark_lost(&self, node: &str, incarnation: u64) {
        lock(&self.lost).insert((node.to_owned(), incarnation));
    }
}

/// Heartbeats out, heartbeats in, and the checks between them.
pub(crate) async fn run(core: Arc<Core>, router: Weak<RouterShared>) {
    let hb_subject = format!("{}.hb", core.prefix);
    match core.client.subscribe(hb_subject.clone()).await {
        Ok(sub) => {
            let c = core.clone();
            super::spawn(
                &core,
                super::each_message(sub, move |m| {
                    let Ok(hb) = envelope::decode::<Heartbeat>(&m.payload) else {
                        warn!(subject = %m.subject, "cluster: unreadable heartbeat");
                        return;
                    };
                    if hb.node != c.node {
                        heard(&c, &hb.node, hb.incarnation);
                    }
                }),
            );
        }
        Err(e) => warn!(cause = %e, "cluster: cannot subscribe to heartbeats"),
    }
    let mut tick = tokio::time::interval(core.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    let mut was_connected = core.connected();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let gap = now.duration_since(last);
        let frozen = gap >= core.node_timeout;
        last = now;
        let connected = core.connected();
        if frozen {
            warn!(
                gap_ms = gap.as_millis() as u64,
                "cluster: this node was not running for longer than node_timeout_ms"
            );
            core.nodes.forgive(std::time::Duration::ZERO);
        }
        if connected && !was_connected {
            core.nodes.forgive(core.node_timeout);
        }
        if connected && (frozen || !was_connected) {
            // The others may have reaped this node meanwhile.
            super::spawn(&core, check_fenced(core.clone(), router.clone()));
        }
        was_connected = connected;
        let hb = Heartbeat {
            node: core.node.clone(),
            incarnation: core.incarnation(),
            sessions: Vec::new(),
        };
        core.send(hb_subject.clone(), envelope::encode(&hb));
        for (node, incarnation) in core.nodes.silent(core.node_timeout) {
            lose(&core, &node, incarnation);
        }
    }
}

/// A node spoke: a new or returning node's records are read (again).
pub(crate) fn heard(core: &Arc<Core>, node: &str, incarnation: u64) {
    match core.nodes.heard(node, incarnation) {
        Heard::Alive | Heard::Lost => {}
        Heard::Joined => {
            info!(node, "cluster: node joined");
            super::spawn(
                core,
                registry::resync(core.clone(), node.to_owned(), incarnation),
            );
        }
        Heard::Restarted(old) => {
            info!(node, "cluster: node restarted");
            lose(core, node, old);
            super::spawn(
                core,
                registry::resync(core.clone(), node.to_owned(), incarnation),
            );
        }
    }
}

/// Declares `(node, incarnation)` lost: its calls fail, its callees leave every table, and
/// one survivor deletes its records.
fn lose(core: &Arc<Core>, node: &str, incarnation: u64) {
    warn!(
        node,
        "cluster: node lost (no heartbeat within node_timeout_ms)"
    );
    if core.connected() {
        // Only a node that can still reach NATS judges: one that cannot would otherwise
        // condemn every other node during its own outage.
        core.nodes.mark_lost(node, incarnation);
    }
    for link in core.links() {
        link.node_lost(node);
    }
    if core.connected() {
        super::spawn(
            core,
            registry::reap(core.clone(), node.to_owned(), incarnation),
        );
    }
}

/// If the others reaped this incarnation, closes every session here (their calls already
/// failed and their testaments fired elsewhere) and starts a new incarnation.
async fn check_fenced(core: Arc<Core>, router: Weak<RouterShared>) {
    if !registry::was_reaped(&core, &core.node, core.incarnation()).await {
        return;
    }
    let fresh = rand::random::<u64>() | 1;
    core.incarnation.store(fresh, Ordering::Release);
    let Some(router) = router.upgrade() else {
        return;
    };
    let mut closed = 0;
    for realm in router.realms() {
        for s in realm.sessions.iter() {
            s.value().end(
                FENCED,
                Some("this router node was cut off from its cluster"),
            );
            closed += 1;
        }
    }
    warn!(
        sessions = closed,
        "cluster: this node was declared lost by the others; its sessions are closed (fenced)"
    );
}
