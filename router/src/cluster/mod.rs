//! The cluster: several router processes serving the same realms as one router, through
//! NATS (`[cluster]`; see `docs/cluster.md`).
//!
//! Local routing runs first and never waits on NATS; each realm's [`RealmLink`] (its
//! [`crate::backplane::Backplane`]) tells the other nodes what they need:
//! - PubSub (`pubsub.rs`): one NATS subscription per topic or pattern with local
//!   subscribers (or one per realm in `broadcast` mode); a publication goes to NATS once and
//!   each receiving node fans it out to its own subscribers.
//! - RPC (`registry.rs`, `proxy.rs`): callees are records in a JetStream KV bucket that every
//!   node watches; a remote callee is a proxy session in the local dealer, so every call
//!   feature (policies, progress, cancel, timeouts) runs unchanged, and the proxy forwards
//!   the INVOCATION to the callee's node, where a proxy caller issues it to the callee.
//! - Retained events (`retained.rs`): a KV bucket every node follows into its broker;
//!   `force_reregister` (`force.rs`): a registry record that makes the other nodes evict.
//! - Liveness (`nodes.rs`): heartbeats; a silent node is declared lost (its calls fail, its
//!   callees leave every table) and one survivor reaps its KV records; a node that comes
//!   back reaped closes its sessions (fencing).
//! - Meta API (`control.rs`): lists, gets and kills asked of every live node, each
//!   answering for its own sessions (`crate::meta`'s gather merges the parts).

mod claims;
mod control;
mod envelope;
mod events;
mod force;
mod names;
mod nodes;
mod proxy;
mod pubsub;
mod registry;
mod retained;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use dashmap::DashMap;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ClusterConfig, PubSubMode, RealmConfig};
use crate::peer::OutboundBudget;
use crate::realm::Realm;
use crate::shared::RouterShared;

pub(crate) use pubsub::RealmLink;

/// Messages waiting for the NATS connection (at most once: dropped when full or down).
const OUTGOING: usize = 65_536;

/// A message for NATS: subject, reply subject, payload.
type Outgoing = (String, Option<String>, Bytes);

/// What every part of the cluster shares.
#[derive(Debug)]
pub(crate) struct Core {
    /// This node's id.
    pub(crate) node: String,
    /// Drawn at each start (and after fencing): messages of a lost incarnation are ignored.
    incarnation: AtomicU64,
    pub(crate) prefix: String,
    pub(crate) client: async_nats::Client,
    /// The registry (callees, registration claims, reap markers), once JetStream answered.
    kv: OnceLock<kv::Store>,
    out: mpsc::Sender<Outgoing>,
    /// This node's registry changes, applied in order.
    pub(crate) kv_ops: mpsc::UnboundedSender<registry::KvOp>,
    pub(crate) heartbeat: Duration,
    pub(crate) node_timeout: Duration,
    pub(crate) linger: Duration,
    /// Each clustered realm's link, by realm name.
    links: DashMap<String, Arc<RealmLink>>,
    pub(crate) nodes: nodes::Nodes,
    /// The proxies' outboxes draw on the router's budget like any session's.
    pub(crate) budget: Arc<OutboundBudget>,
    pub(crate) shutdown: CancellationToken,
    /// Messages not sent because NATS was down or the queue full.
    pub(crate) dropped: AtomicU64,
    /// The NATS connection's events (slow-consumer drops).
    events: Arc<events::ConnectionEvents>,
    /// This node's retained events on their way to the cluster (`retained.rs`).
    pub(crate) retained: retained::Writer,
    /// Replicas of the KV buckets this node creates (`[cluster] kv_replicas`).
    pub(crate) kv_replicas: usize,
    /// This node's claim shares given back (`claims.rs`).
    pub(crate) shares: claims::Shares,
}

impl Core {
    /// The current incarnation.
    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Acquire)
    }

    /// Whether the NATS connection is up now.
    pub(crate) fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Queues a message for NATS; never waits. While NATS is down it is dropped, not kept
    /// for later (no stale burst after a reconnect).
    pub(crate) fn send(&self, subject: String, payload: Bytes) -> bool {
        self.send_with_reply(subject, None, payload)
    }

    /// [`Core::send`] with a reply subject: nats-server answers there at once ("no
    /// responders") when nobody subscribes to `subject`.
    pub(crate) fn send_with_reply(
        &self,
        subject: String,
        reply: Option<String>,
        payload: Bytes,
    ) -> bool {
        if !self.connected() || self.out.try_send((subject, reply, payload)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The node timeout in ms.
    pub(crate) fn node_timeout_ms(&self) -> u64 {
        u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// The registry, if JetStream is reachable yet.
    pub(crate) fn kv(&self) -> Option<&kv::Store> {
        self.kv.get()
    }

    /// The link of realm `name`.
    pub(crate) fn link(&self, name: &str) -> Option<Arc<RealmLink>> {
        self.links.get(name).map(|l| l.clone())
    }

    /// Every realm's link.
    pub(crate) fn links(&self) -> Vec<Arc<RealmLink>> {
        self.links.iter().map(|l| l.value().clone()).collect()
    }

    /// `<prefix>.n.<node>.<what>`: a node's own subjects.
    pub(crate) fn node_subject(&self, node: &str, what: &str) -> String {
        format!("{}.n.{node}.{what}", self.prefix)
    }
}

/// A running cluster membership.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    core: Arc<Core>,
}

impl Cluster {
    /// Connects to NATS (retrying in the background if it is not up yet: the router serves
    /// its local clients meanwhile) and starts the node's tasks.
    pub(crate) async fn start(
        config: &ClusterConfig,
        realms: &[RealmConfig],
        router: &Arc<RouterShared>,
    ) -> std::io::Result<Cluster> {
        let node = config.node_id();
        let urls = config.nats_url.urls();
        let events = Arc::new(events::ConnectionEvents::default());
        let on_event = events.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("wamp-router {node}"))
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .subscription_capacity(config.subscription_capacity)
            .connection_timeout(Duration::from_secs(2))
            // Back soon after NATS is: the others wait one node timeout (and as long again
            // after their own reconnect) before they declare this node lost.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64).saturating_mul(100).min(1000))
            })
            .event_callback(move |e| {
                on_event.on_event(&e);
                async {}
            })
            .connect(urls.as_slice())
            .await
            .map_err(|e| {
                std::io::Error::other(format!("cluster: cannot use NATS at {urls:?}: {e}"))
            })?;
        let (tx, rx) = mpsc::channel(OUTGOING);
        let (kv_tx, kv_rx) = mpsc::unbounded_channel();
        let core = Arc::new(Core {
            nodes: nodes::Nodes::default(),
            node: node.clone(),
            incarnation: AtomicU64::new(rand::random::<u64>() | 1),
            prefix: config.subject_prefix.clone(),
            client,
            kv: OnceLock::new(),
            out: tx,
            kv_ops: kv_tx,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            node_timeout: Duration::from_millis(config.node_timeout_ms),
            linger: Duration::from_millis(config.unsubscribe_linger_ms),
            links: DashMap::new(),
            budget: router.outbound.clone(),
            shutdown: router.shutdown.clone(),
            dropped: AtomicU64::new(0),
            events,
            retained: retained::Writer::default(),
            kv_replicas: config.kv_replicas,
            shares: claims::Shares::default(),
        });
        for realm in router.realms() {
            let mode = realms
                .iter()
                .find(|r| r.name == realm.name)
                .map_or(PubSubMode::default(), |r| r.pubsub_mode);
            attach(&core, &realm, mode);
        }
        spawn(&core, publisher(core.clone(), rx));
        spawn(&core, registry::open(core.clone(), kv_rx));
        spawn(&core, retained::run(core.clone()));
        spawn(&core, proxy::serve(core.clone()));
        spawn(&core, control::serve(core.clone()));
        spawn(&core, nodes::run(core.clone(), Arc::downgrade(router)));
        info!(node = %node, nats = ?urls, "cluster: node started");
        Ok(Cluster { core })
    }

    /// Messages this node did not send to NATS (down, or its queue full), and messages the
    /// NATS client dropped because this node read them too slowly.
    pub(crate) fn drops(&self) -> (u64, u64) {
        let core = &self.core;
        (
            core.dropped.load(Ordering::Relaxed),
            core.events.slow_drops(),
        )
    }

    /// Links a realm added by a reload.
    pub(crate) fn attach(&self, realm: &Arc<Realm>, mode: PubSubMode) {
        attach(&self.core, realm, mode);
    }
}

fn attach(core: &Arc<Core>, realm: &Arc<Realm>, mode: PubSubMode) {
    let link = RealmLink::new(core.clone(), realm, mode);
    core.links.insert(realm.name.clone(), link.clone());
    realm.set_backplane(Arc::new(link));
}

/// Runs `task` until the router shuts down.
pub(crate) fn spawn<F>(core: &Core, task: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let stop = core.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = task => {}
        }
    });
}

/// Writes queued messages to NATS, in order.
async fn publisher(core: Arc<Core>, mut rx: mpsc::Receiver<Outgoing>) {
    while let Some((subject, reply, payload)) = rx.recv().await {
        if !core.connected() {
            core.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let sent = match reply {
            None => core.client.publish(subject, payload).await,
            Some(r) => core.client.publish_with_reply(subject, r, payload).await,
        };
        if let Err(e) = sent {
            core.dropped.fetch_add(1, Ordering::Relaxed);
            warn!(cause = %e, "cluster: publish failed");
        }
    }
}

/// Reads a NATS subscription's messages into `each`, one at a time, until it ends.
pub(crate) async fn each_message<F>(mut sub: async_nats::Subscriber, mut each: F)
where
    F: FnMut(async_nats::Message),
{
    while let Some(m) = sub.next().await {
        each(m);
    }
}
