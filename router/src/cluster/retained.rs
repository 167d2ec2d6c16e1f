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
//!
//! Read-your-writes across nodes (docs/cluster.md D9): an acknowledged retained PUBLISH
//! gets PUBLISHED once its event is in the bucket ([`written`]), and a `get_retained`
//! SUBSCRIBE is answered once this node applied everything the bucket held when it came
//! ([`caught_up`]); both are bounded by [`SYNC_BOUND`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};
use wamp_proto::message::Event;
use wamp_proto::{Message, Uri};

use super::envelope;
use super::pubsub::RealmLink;
use super::registry::{self, timed};
use super::Core;
use crate::backplane::Wait;
use crate::broker::{Filter, Publication, StoredEvent};
use crate::peer::lock;

/// Longest key written: its subject (`$KV.<bucket>.<key>`) must fit NATS's control line.
const MAX_KEY: usize = 3000;

/// How often a write is retried when another node wrote the key meanwhile.
const WRITE_ATTEMPTS: usize = 3;

/// How long a PUBLISHED or a `get_retained` SUBSCRIBE waits for the bucket at most.
const SYNC_BOUND: Duration = Duration::from_secs(2);

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

/// This node's writer: the events waiting to be written, newest per key, and how far this
/// node is in step with the bucket.
#[derive(Debug)]
pub(crate) struct Writer {
    /// By key: the stamp, the value, and the offer's ticket.
    pending: Mutex<Pending>,
    wake: Notify,
    /// The last stamp drawn: (ms, seq), never going back.
    last: Mutex<(u64, u64)>,
    /// The bucket's stream, once the bucket is open.
    stream: watch::Sender<Option<Stream>>,
    /// The highest ticket whose write is over (written, superseded, or given up).
    written: watch::Sender<u64>,
    /// The highest bucket revision this node applied.
    applied: watch::Sender<u64>,
}

/// The offers not written yet, and the last ticket given (one per offer, in order).
#[derive(Debug, Default)]
struct Pending {
    by_key: HashMap<String, (Stamp, Bytes, u64)>,
    ticket: u64,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer {
            pending: Mutex::default(),
            wake: Notify::new(),
            last: Mutex::default(),
            stream: watch::Sender::new(None),
            written: watch::Sender::new(0),
            applied: watch::Sender::new(0),
        }
    }
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
    let mut pending = lock(&core.retained.pending);
    pending.ticket += 1;
    let ticket = pending.ticket;
    pending.by_key.insert(key, (stamp, value, ticket));
    drop(pending);
    core.retained.wake.notify_one();
}

/// A wait that is over once every retained event this node offered so far is written to
/// the bucket (or its write was given up), at most [`SYNC_BOUND`]; `None`: nothing pending.
pub(crate) fn written(core: &Core) -> Option<Wait<()>> {
    let ticket = lock(&core.retained.pending).ticket;
    let mut done = core.retained.written.subscribe();
    if *done.borrow() >= ticket {
        return None;
    }
    Some(Box::pin(async move {
        let _ = tokio::time::timeout(SYNC_BOUND, done.wait_for(|t| *t >= ticket)).await;
    }))
}

/// A wait that is over once this node applied every retained event the bucket holds now
/// (one JetStream request for the bucket's last revision; first the bucket is opened, if it
/// is not yet), at most [`SYNC_BOUND`].
pub(crate) fn caught_up(core: &Core) -> Wait<()> {
    let mut stream = core.retained.stream.subscribe();
    let mut applied = core.retained.applied.subscribe();
    Box::pin(async move {
        let sync = async {
            let open = match stream.wait_for(Option::is_some).await {
                Ok(open) => open.clone(),
                Err(_) => return,
            };
            let Some(stream) = open else {
                return;
            };
            match stream.get_info().await {
                Ok(info) => {
                    let last = info.state.last_sequence;
                    let _ = applied.wait_for(|a| *a >= last).await;
                }
                Err(e) => {
                    debug!(cause = %e, "cluster: the retained bucket's state is unknown; replaying what this node has")
                }
            }
        };
        if tokio::time::timeout(SYNC_BOUND, sync).await.is_err() {
            debug!("cluster: the retained bucket was not caught up in time; replaying what this node has");
        }
    })
}

/// Opens the bucket, follows it into every realm's broker, and writes this node's retained
/// events, until the router stops.
pub(crate) async fn run(core: Arc<Core>) {
    let store = registry::open_bucket(&core, &bucket(&core), "retained events").await;
    core.retained
        .stream
        .send_replace(Some(store.stream.clone()));
    let (c, s) = (core.clone(), store.clone());
    super::spawn(&core, async move {
        registry::follow(s, move |e| {
            apply(&c, e);
            c.retained.applied.send_if_modified(|a| {
                let newer = e.revision > *a;
                *a = (*a).max(e.revision);
                newer
            });
        })
        .await;
    });
    loop {
        core.retained.wake.notified().await;
        let batch: Vec<_> = lock(&core.retained.pending).by_key.drain().collect();
        let mut last = 0;
        for (key, (stamp, value, ticket)) in batch {
            write_newest(&store, &key, stamp, value).await;
            last = last.max(ticket);
        }
        // Every earlier offer is in this batch or an earlier one (a newer offer of a key
        // replaces the older, with a higher ticket).
        core.retained.written.send_if_modified(|w| {
            let newer = last > *w;
            *w = (*w).max(last);
            newer
        });
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
