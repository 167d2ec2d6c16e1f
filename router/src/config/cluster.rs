//! `[cluster]`: several router processes serving the same realms as one router, through NATS.

use serde::Deserialize;

/// How to join the cluster (`[cluster]`). Without it the router is a single node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server(s): one URL, or several for a NATS cluster.
    pub nats_url: NatsUrls,
    /// This node's name, unique in the cluster: letters, digits, `-` and `_` (default: the
    /// host name and the process id).
    #[serde(default)]
    pub node_id: Option<String>,
    /// The first token of every NATS subject and the prefix of the KV buckets, so that two
    /// clusters can share a NATS server (default `wamp`).
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Milliseconds between a node's heartbeats (default 1000).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// Milliseconds without a heartbeat after which a node is declared lost: its calls in
    /// flight fail, its registrations leave the others' tables (default 5000).
    #[serde(default = "default_node_timeout")]
    pub node_timeout_ms: u64,
    /// Milliseconds a node keeps its NATS interest in a topic after its last local
    /// subscriber left, so that churn does not reach NATS (default 1000).
    #[serde(default = "default_linger")]
    pub unsubscribe_linger_ms: u64,
    /// Messages each NATS subscription of the node may hold before the NATS client drops
    /// new ones (a slow consumer: counted in `wamp_cluster_slow_consumer_drops_total` and
    /// logged); default 65,536.
    #[serde(default = "default_subscription_capacity")]
    pub subscription_capacity: usize,
    /// Replicas of the JetStream KV buckets (registry, retained events) when this node is the
    /// first to create them: 1 for one nats-server, 3 for a NATS cluster of three or more, so
    /// the registry survives the loss of a NATS server (1 to 5; default 1).
    #[serde(default = "default_kv_replicas")]
    pub kv_replicas: usize,
}

/// One NATS URL or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum NatsUrls {
    /// `nats_url = "nats://host:4222"`.
    One(String),
    /// `nats_url = ["nats://a:4222", "nats://b:4222"]`.
    Many(Vec<String>),
}

impl NatsUrls {
    /// The URLs, in order.
    pub fn urls(&self) -> Vec<String> {
        match self {
            NatsUrls::One(u) => vec![u.clone()],
            NatsUrls::Many(v) => v.clone(),
        }
    }
}

/// How a clustered realm spreads events between nodes (`[[realm]] pubsub_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PubSubMode {
    /// A node receives only the events of topics its own clients subscribed to (default).
    /// Across topics, a remote publisher's events may arrive out of order.
    #[default]
    Interest,
    /// Every node receives every event of the realm: strict per-publisher order across
    /// topics, retained events and history on every node; for a few nodes.
    Broadcast,
}

fn default_prefix() -> String {
    "wamp".into()
}
fn default_heartbeat() -> u64 {
    1000
}
fn default_node_timeout() -> u64 {
    5000
}
fn default_linger() -> u64 {
    1000
}
fn default_subscription_capacity() -> usize {
    65_536
}
fn default_kv_replicas() -> usize {
    1
}

/// A NATS token or KV key part we accept in names: letters, digits, `-`, `_`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterConfig {
    /// This node's id: the configured one, or `<host>-<pid>`.
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| {
                h.trim()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into());
        format!("{host}-{}", std::process::id())
    }

    /// What is wrong with it: (key, message).
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        if self.nats_url.urls().is_empty() {
            return Some(("nats_url", "at least one NATS URL is required".into()));
        }
        if let Some(id) = &self.node_id {
            if !is_token(id) {
                return Some((
                    "node_id",
                    format!("`{id}`: 1 to 64 letters, digits, `-` or `_`"),
                ));
            }
        }
        if !is_token(&self.subject_prefix) {
            return Some((
                "subject_prefix",
                "1 to 64 letters, digits, `-` or `_`".into(),
            ));
        }
        if self.heartbeat_ms == 0 || self.node_timeout_ms < 2 * self.heartbeat_ms {
            return Some((
                "node_timeout_ms",
                format!(
                    "must be at least twice heartbeat_ms ({}), and heartbeat_ms above 0",
                    self.heartbeat_ms
                ),
            ));
        }
        if !(1..=5).contains(&self.kv_replicas) {
            return Some(("kv_replicas", "must be 1 to 5 (JetStream's limit)".into()));
        }
        if self.subscription_capacity == 0 {
            return Some(("subscription_capacity", "must be at least 1".into()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, NatsUrls, PubSubMode};

    const BASE: &str = "[[transport]]\nbind = \"127.0.0.1:0\"\n\n[[realm]]\nname = \"realm1\"\n";

    fn with(cluster: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(&format!("{BASE}\n[cluster]\n{cluster}\n"), "<test>")
    }

    #[test]
    fn defaults_and_both_url_forms_are_read() {
        let c = with("nats_url = \"nats://127.0.0.1:4222\"\nnode_id = \"n1\"").expect("valid");
        let cl = c.cluster.expect("a cluster");
        assert_eq!(cl.nats_url, NatsUrls::One("nats://127.0.0.1:4222".into()));
        assert_eq!(
            (
                cl.heartbeat_ms,
                cl.node_timeout_ms,
                cl.unsubscribe_linger_ms,
                cl.subscription_capacity
            ),
            (1000, 5000, 1000, 65_536)
        );
        assert_eq!(cl.subject_prefix, "wamp");
        assert_eq!(c.realms[0].pubsub_mode, PubSubMode::Interest);
        let c = with("nats_url = [\"nats://a:4222\", \"nats://b:4222\"]").expect("valid");
        assert_eq!(c.cluster.expect("a cluster").nats_url.urls().len(), 2);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("nats_url = []", "cluster.nats_url"),
            (
                "nats_url = \"nats://x\"\nnode_id = \"a.b\"",
                "cluster.node_id",
            ),
            (
                "nats_url = \"nats://x\"\nsubject_prefix = \"\"",
                "cluster.subject_prefix",
            ),
            (
                "nats_url = \"nats://x\"\nheartbeat_ms = 1000\nnode_timeout_ms = 1500",
                "cluster.node_timeout_ms",
            ),
            (
                "nats_url = \"nats://x\"\nheartbeat_ms = 0",
                "cluster.node_timeout_ms",
            ),
            (
                "nats_url = \"nats://x\"\nsubscription_capacity = 0",
                "cluster.subscription_capacity",
            ),
            (
                "nats_url = \"nats://x\"\nkv_replicas = 6",
                "cluster.kv_replicas",
            ),
        ] {
            let e = with(toml).expect_err(toml);
            assert_eq!(e.key, key, "{toml}: {e}");
        }
        let e = with("nats_url = \"nats://x\"\nnode = \"n1\"").expect_err("unknown key");
        assert!(e.to_string().contains("node"), "{e}");
    }
}
