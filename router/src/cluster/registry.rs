//! The registry: callees and registration claims in a JetStream KV bucket that every node
//! watches, and the reaping of a lost node's records.
//!
//! Keys (KV keys allow `[-/_=.a-zA-Z0-9]`, so URIs are never keys):
//! - `c.<realm>.<node>.<session>.<registration>`: a callee ([`CalleeRecord`]);
//! - `x.<realm>.<registration>`: its invoke policy and the nodes with callees of it
//!   ([`super::envelope::Claim`], `claims.rs`);
//! - `t.<realm>.<node>.<session>`: a session's testaments, published by the reaper;
//! - `f.<realm>.<registration>`: a `force_reregister` in progress: the other nodes evict
//!   their callees of it;
//! - `reap.<node>.<incarnation>`: that incarnation was declared lost and its records deleted.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::claims::{self, Claimed};
use super::envelope::{self, CalleeRecord};
use super::Core;

/// How long a registry operation may take before it counts as failed.
pub(crate) const KV_TIMEOUT: Duration = Duration::from_secs(3);

/// A change this node makes to the registry, applied in order by one task.
#[derive(Debug)]
pub(crate) enum KvOp {
    /// Put `key`; the answer (if asked for) once it is stored or failed.
    Put(String, Bytes, Option<oneshot::Sender<()>>),
    Delete(String),
    /// Takes or joins claim `key` for an invoke policy; the answer says how, or why not.
    Claim(
        String,
        &'static str,
        oneshot::Sender<Result<Claimed, String>>,
    ),
    /// This node leaves claim `key`.
    Release(String),
    /// Answered once every change queued before it was applied.
    Applied(oneshot::Sender<()>),
}

/// The bucket's name.
fn bucket(core: &Core) -> String {
    format!("{}_REG", core.prefix)
}

/// The callee key of `session`'s registration `reg` in realm `token`.
pub(crate) fn callee_key(token: &str, node: &str, session: u64, reg: u64) -> String {
    format!("c.{token}.{node}.{session}.{reg}")
}

/// The key of `session`'s testaments in realm `token`.
pub(crate) fn testament_key(token: &str, node: &str, session: u64) -> String {
    format!("t.{token}.{node}.{session}")
}

/// The key of a `force_reregister` of registration `reg` in realm `token` (a
/// [`super::force::ForceRecord`]).
pub(crate) fn force_key(token: &str, reg: u64) -> String {
    format!("f.{token}.{reg}")
}

/// The claim key of registration `reg` in realm `token`.
pub(crate) fn claim_key(token: &str, reg: u64) -> String {
    format!("x.{token}.{reg}")
}

/// Opens (or creates) the bucket, then applies this node's changes in order and watches
/// everyone's, until the router stops.
pub(crate) async fn open(core: Arc<Core>, ops: mpsc::UnboundedReceiver<KvOp>) {
    let store = open_bucket(&core, &bucket(&core), "registry").await;
    let _ = core.kv.set(store.clone());
    super::spawn(&core, apply(core.clone(), store.clone(), ops));
    let c = core.clone();
    follow(store, move |e| on_entry(&c, e)).await;
}

/// Opens (or creates) bucket `name` (the `what` of the logs), retrying until JetStream
/// answers.
pub(crate) async fn open_bucket(core: &Core, name: &str, what: &str) -> kv::Store {
    let js = jetstream::new(core.client.clone());
    loop {
        match tokio::time::timeout(KV_TIMEOUT, create_bucket(&js, name, core.kv_replicas)).await {
            Ok(Ok(s)) => {
                info!(bucket = %name, "cluster: {what} open");
                return s;
            }
            Ok(Err(e)) => {
                warn!(cause = %e, "cluster: cannot open the {what} (JetStream KV); retrying")
            }
            Err(_) => debug!("cluster: {what} not reachable yet; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Creates the bucket's stream as a KV bucket's (history 1), then opens it as one.
/// `Context::create_key_value` first reads the account's limits in a shape nats-server 2.9
/// (Debian's) does not send, so the stream is made directly.
async fn create_bucket(
    js: &jetstream::Context,
    name: &str,
    replicas: usize,
) -> Result<kv::Store, String> {
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: replicas,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| e.to_string())?;
    js.get_key_value(name).await.map_err(|e| e.to_string())
}

async fn apply(core: Arc<Core>, store: kv::Store, mut ops: mpsc::UnboundedReceiver<KvOp>) {
    while let Some(op) = ops.recv().await {
        match op {
            KvOp::Put(key, value, done) => {
                if let Err(e) = timed(store.put(&key, value)).await {
                    warn!(key, cause = %e, "cluster: registry write failed");
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            KvOp::Delete(key) => {
                if let Err(e) = timed(store.delete(&key)).await {
                    warn!(key, cause = %e, "cluster: registry delete failed");
                }
            }
            KvOp::Claim(key, invoke, answer) => {
                let _ = answer.send(claims::claim(&core, &store, &key, invoke).await);
            }
            KvOp::Release(key) => claims::release(&core, &store, &key).await,
            KvOp::Applied(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// `f`, failed after [`KV_TIMEOUT`]; the error as text.
pub(crate) async fn timed<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(KV_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Hands every change to `store` to `each` (all current values first), restarting after
/// the connection drops, until the router stops.
pub(crate) async fn follow(store: kv::Store, mut each: impl FnMut(&kv::Entry)) {
    let mut from: Option<u64> = None;
    loop {
        let w = match from {
            None => store.watch_with_history(">").await,
            Some(rev) => store.watch_all_from_revision(rev + 1).await,
        };
        match w {
            Ok(mut w) => {
                while let Some(entry) = w.next().await {
                    match entry {
                        Ok(e) => {
                            from = Some(e.revision);
                            each(&e);
                        }
                        Err(e) => {
                            debug!(cause = %e, "cluster: KV watch interrupted");
                            break;
                        }
                    }
                }
            }
            Err(e) => debug!(cause = %e, "cluster: cannot watch a KV bucket yet"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `c.<realm>.<node>.<session>.<registration>` split.
fn callee_key_parts(key: &str) -> Option<(&str, &str, u64, u64)> {
    let mut p = key.split('.');
    if p.next()? != "c" {
        return None;
    }
    let (token, node) = (p.next()?, p.next()?);
    let session = p.next()?.parse().ok()?;
    let reg = p.next()?.parse().ok()?;
    Some((token, node, session, reg))
}

fn on_entry(core: &Arc<Core>, e: &kv::Entry) {
    if let Some(token) = e.key.strip_prefix("f.").and_then(|k| k.split('.').next()) {
        if let Some(link) = core.links().into_iter().find(|l| l.token == token) {
            link.force_seen(e);
        }
        return;
    }
    let Some((token, node, session, reg)) = callee_key_parts(&e.key) else {
        return;
    };
    if node == core.node {
        return;
    }
    let Some(link) = core.links().into_iter().find(|l| l.token == token) else {
        return;
    };
    match e.operation {
        kv::Operation::Put => match envelope::decode::<CalleeRecord>(&e.value) {
            Ok(rec) => {
                super::nodes::heard(core, &rec.node, rec.incarnation);
                if !core.nodes.is_lost(&rec.node, rec.incarnation) {
                    link.remote_callee_added(&rec);
                }
            }
            Err(err) => warn!(key = %e.key, cause = %err, "cluster: unreadable registry record"),
        },
        kv::Operation::Delete | kv::Operation::Purge => {
            link.remote_callee_removed(node, session, reg);
        }
    }
}

/// Reads `node`'s records again (it joined, or came back after this node lost sight of it).
pub(crate) async fn resync(core: Arc<Core>, node: String, incarnation: u64) {
    let Some(store) = core.kv().cloned() else {
        return; // The watch will deliver them once the registry opens.
    };
    let Ok(mut keys) = store.keys().await else {
        return;
    };
    let infix = format!(".{node}.");
    while let Some(Ok(key)) = keys.next().await {
        if !key.starts_with("c.") || !key.contains(&infix) {
            continue;
        }
        let Ok(Some(v)) = timed(store.get(key.clone())).await else {
            continue;
        };
        let Ok(rec) = envelope::decode::<CalleeRecord>(&v) else {
            continue;
        };
        if rec.node != node || rec.incarnation != incarnation {
            continue;
        }
        if let Some(link) = core.links().into_iter().find(|l| l.name == rec.realm) {
            link.remote_callee_added(&rec);
        }
    }
}

/// Whether `(node, incarnation)` was declared lost and reaped.
pub(crate) async fn was_reaped(core: &Core, node: &str, incarnation: u64) -> bool {
    let Some(store) = core.kv() else {
        return false;
    };
    matches!(
        timed(store.get(format!("reap.{node}.{incarnation}"))).await,
        Ok(Some(_))
    )
}

/// Deletes a lost node's records, if this node wins the race to do it.
pub(crate) async fn reap(core: Arc<Core>, node: String, incarnation: u64) {
    let Some(store) = core.kv().cloned() else {
        return;
    };
    let marker = format!("reap.{node}.{incarnation}");
    match tokio::time::timeout(KV_TIMEOUT, store.create(&marker, Bytes::from_static(b"1"))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => return,
        Ok(Err(e)) => {
            warn!(node, cause = %e, "cluster: cannot mark a lost node reaped; its records stay");
            return;
        }
        Err(_) => {
            warn!(
                node,
                "cluster: registry timed out marking a lost node reaped; its records stay"
            );
            return;
        }
    }
    let mut keys = match store.keys().await {
        Ok(k) => k,
        Err(e) => {
            warn!(node, cause = %e, "cluster: cannot list the registry to reap a lost node");
            return;
        }
    };
    let mut doomed = Vec::new();
    while let Some(Ok(key)) = keys.next().await {
        if let Some((_, n, _, _)) = callee_key_parts(&key) {
            if n != node {
                continue;
            }
            let rec = timed(store.get(key.clone()))
                .await
                .ok()
                .flatten()
                .and_then(|v| envelope::decode::<CalleeRecord>(&v).ok());
            // A restarted node's new records stay.
            if rec.is_none_or(|r| r.incarnation == incarnation) {
                doomed.push(key);
            }
        } else if key.starts_with("t.") && key.split('.').nth(2) == Some(node.as_str()) {
            // The lost node's sessions' testaments: published here, once.
            let left = timed(store.get(key.clone())).await.ok().flatten();
            let token = key.split('.').nth(1).unwrap_or_default().to_owned();
            if let (Some(v), Some(link)) =
                (left, core.links().into_iter().find(|l| l.token == token))
            {
                match envelope::decode::<Vec<crate::meta::PortableTestament>>(&v) {
                    Ok(t) => {
                        if let Some(realm) = link.realm.upgrade() {
                            crate::meta::publish_portable(&realm, t);
                        }
                    }
                    Err(e) => warn!(key, cause = %e, "cluster: unreadable testaments"),
                }
            }
            doomed.push(key);
        } else if key.starts_with("x.") {
            claims::reap(&store, &key, &node, incarnation).await;
        }
    }
    let n = doomed.len();
    for key in doomed {
        let _ = timed(store.delete(&key)).await;
    }
    info!(
        node,
        records = n,
        "cluster: reaped a lost node's registry records"
    );
}
