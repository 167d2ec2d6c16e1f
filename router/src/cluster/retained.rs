//! Retained events cluster-wide: a JetStream KV bucket `<prefix>_RET`, one value per realm
//! and topic, written by the node that received the retained PUBLISH and followed by every
//! node into its broker's retained map. `get_retained` stays a local lookup, and a retained
//! event outlives the node it was published on (as it outlives its publisher).
//!
//! The newest event wins by [`Stamp`] (publish time, then a per-node counter), whatever
//! order the bucket delivers in: a node keeps an incoming event only if it is newer than
//! the one it holds, and a write never replaces a newer stored value (compare-and-set on
//! the key's revision). Writes are coalesced per key: only a topic's latest pending event
//! is written. With JetStream unreachable, each node keeps what it has (as a single node
//! does) and the writes are logged and dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{debug, warn};
use wamp_proto::message::Event;
use wamp_proto::{Message, Uri};

use super::envelope;
use super::pubsub::RealmLink;
use super::registry::{self, timed};
use super::Core;
use crate::broker::{Filter, Publication, StoredEvent};
use crate::peer::lock;

/// Longest key written: its subject (`$KV.<bucket>.<key>`) must fit NATS's control line.
const MAX_KEY: usize = 3000;

/// How often a write is retried when another node wrote the key meanwhile.
const WRITE_ATTEMPTS: usize = 3;

/// The order of retained events of one topic: later publish time first, then the
/// publishing node's counter, then the node (a tie-break that every node computes alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Stamp {
    ms: u64,
    seq: u64,
    node: u64,
}

/// A retained event as the bucket holds it (the WAMP part is the EVENT).
#[derive(Debug, Serialize, Deserialize)]
struct RetainedHeader {
    origin: String,
    incarnation: u64,
    topic: String,
    filter: Filter,
    stamp: Stamp,
}

/// This node's writer: the events waiting to be written, newest per key.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pending: Mutex<HashMap<String, (Stamp, Bytes)>>,
    wake: Notify,
    /// The last stamp drawn: (ms, seq), never going back.
    last: Mutex<(u64, u64)>,
}

impl Writer {
    fn stamp(&self, node: &str) -> Stamp {
        let mut last = lock(&self.last);
        let now = envelope::now_ms().max(last.0);
        *last = (now, if now == last.0 { last.1 + 1 } else { 0 });
        Stamp {
            ms: last.0,
            seq: last.1,
            node: crate::stable_ids::stable_hash(&[node.as_bytes()]),
        }
    }
}

/// The newest retained event's stamp per topic of one realm, as this node holds it.
#[derive(Debug, Default)]
pub(crate) struct Held(Mutex<HashMap<String, Stamp>>);

/// The bucket's name.
fn bucket(core: &Core) -> String {
    format!("{}_RET", core.prefix)
}

/// `<realm token>.<topic>`: each URI component as it is when it is made of
/// `[A-Za-z0-9_-]`, else `=` and its bytes in hex (KV keys allow `[-/_=.a-zA-Z0-9]` only,
/// so the subject tokens of `names.rs` do not fit). `None`: too long.
pub(crate) fn key(token: &str, topic: &str) -> Option<String> {
    use std::fmt::Write;
    let mut k = String::with_capacity(token.len() + topic.len() + 8);
    k.push_str(token);
    for c in topic.split('.') {
        k.push('.');
        let plain = !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if plain {
            k.push_str(c);
        } else {
            k.push('=');
            for b in c.bytes() {
                let _ = write!(k, "{b:02x}");
            }
        }
    }
    (k.len() <= MAX_KEY).then_some(k)
}

/// A local retained PUBLISH (retention allowed for its topic): held as the newest here,
/// and queued for the bucket. Runs before the broker stores it.
pub(crate) fn offer(link: &RealmLink, p: &Publication) {
    let core = &link.core;
    let Some(key) = key(&link.token, p.topic.as_str()) else {
        debug!(topic = %p.topic, "cluster: topic too long for a KV key; retained on this node only");
        return;
    };
    let stamp = core.retained.stamp(&core.node);
    lock(&link.held.0).insert(p.topic.as_str().to_owned(), stamp);
    let header = RetainedHeader {
        origin: core.node.clone(),
        incarnation: core.incarnation(),
        topic: p.topic.as_str().to_owned(),
        filter: p.filter.clone(),
        stamp,
    };
    let event = Message::Event(Event {
        subscription: p.id,
        publication: p.id,
        details: p.details.clone(),
        payload: p.payload.clone(),
    });
    let Some(value) = envelope::encode_message(&header, &event) else {
        warn!(topic = %p.topic, "cluster: cannot encode a retained event for the other nodes");
        return;
    };
    lock(&core.retained.pending).insert(key, (stamp, value));
    core.retained.wake.notify_one();
}

/// Opens the bucket, follows it into every realm's broker, and writes this node's retained
/// events, until the router stops.
pub(crate) async fn run(core: Arc<Core>) {
    let store = registry::open_bucket(&core, &bucket(&core), "retained events").await;
    let (c, s) = (core.clone(), store.clone());
    super::spawn(&core, async move {
        registry::follow(s, move |e| apply(&c, e)).await;
    });
    loop {
        core.retained.wake.notified().await;
        let batch: Vec<_> = lock(&core.retained.pending).drain().collect();
        for (key, (stamp, value)) in batch {
            write_newest(&store, &key, stamp, value).await;
        }
    }
}

/// The stamp of a stored value (`None`: unreadable).
fn stamp_of(value: &Bytes) -> Option<Stamp> {
    envelope::decode_with::<RetainedHeader>(value)
        .ok()
        .map(|(h, _)| h.stamp)
}

/// Writes `value` at `key` unless a newer event is stored there already.
async fn write_newest(store: &kv::Store, key: &str, stamp: Stamp, value: Bytes) {
    let mut last_error = String::new();
    for _ in 0..WRITE_ATTEMPTS {
        let written = match timed(store.entry(key.to_owned())).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => {
                if stamp_of(&e.value).is_some_and(|s| s > stamp) {
                    return;
                }
                timed(store.update(key, value.clone(), e.revision)).await
            }
            Ok(_) => timed(store.create(key, value.clone())).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => return,
            // Another node wrote it meanwhile (or JetStream is away): read it again.
            Err(e) => last_error = e,
        }
    }
    warn!(key, cause = %last_error, "cluster: retained event not written to the cluster; kept on this node");
}

/// A bucket entry: the event becomes the topic's retained one on this node, if newer.
fn apply(core: &Core, e: &kv::Entry) {
    if e.operation != kv::Operation::Put {
        return;
    }
    let Some(token) = e.key.split('.').next() else {
        return;
    };
    let Some(link) = core.links().into_iter().find(|l| l.token == token) else {
        return;
    };
    let (h, ev) = match envelope::decode_with::<RetainedHeader>(&e.value) {
        Ok((h, Message::Event(ev))) => (h, ev),
        Ok(_) => return,
        Err(err) => {
            warn!(key = %e.key, cause = %err, "cluster: unreadable retained event");
            return;
        }
    };
    // This incarnation's own: held already (or a newer one is).
    if h.origin == core.node && h.incarnation == core.incarnation() {
        return;
    }
    let Some(realm) = link.realm.upgrade() else {
        return;
    };
    if !realm.broker.topics().retention_allowed(&h.topic) {
        return;
    }
    // Held across the broker's insert: a local publish's newer stamp lands before its
    // event, so an older incoming event never replaces it.
    let mut held = lock(&link.held.0);
    if held.get(&h.topic).is_some_and(|s| *s >= h.stamp) {
        return;
    }
    held.insert(h.topic.clone(), h.stamp);
    realm.broker.keep_retained(StoredEvent {
        topic: Uri::from(h.topic),
        publication: ev.publication,
        details: ev.details,
        payload: ev.payload,
        filter: h.filter,
        timestamp: SystemTime::UNIX_EPOCH + Duration::from_millis(h.stamp.ms),
        seq: 0,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_plain_components_and_escape_the_others_injectively() {
        assert_eq!(key("r", "com.app.x_1").as_deref(), Some("r.com.app.x_1"));
        assert_eq!(key("r", "a.b c").as_deref(), Some("r.a.=622063"));
        assert_eq!(key("r", "a.=62").as_deref(), Some("r.a.=3d3632"));
        assert_eq!(key("r", "café").as_deref(), Some("r.=636166c3a9"));
        assert_ne!(key("r", "a.b"), key("r", "a.=62"));
        assert!(key("r", &"x".repeat(MAX_KEY)).is_none());
    }

    #[test]
    fn stamps_grow_within_a_millisecond_and_order_by_time_first() {
        let w = Writer::default();
        let (a, b) = (w.stamp("n1"), w.stamp("n1"));
        assert!(b > a);
        let later = Stamp {
            ms: a.ms + 1,
            seq: 0,
            node: 0,
        };
        assert!(later > b);
    }
}
