//! `force_reregister` cluster-wide. A forced REGISTER on a node whose registration has
//! callees on other nodes puts a [`ForceRecord`] in the registry (`f.<realm>.<registration>`);
//! every other node's registry watch evicts its own callees of that registration (they get
//! UNREGISTERED, their records leave the registry). The forcing node answers REGISTERED
//! once no remote callee is left in its dealer (their records' deletion arrived) or
//! [`FORCE_WAIT`] passed, then deletes the record.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use wamp_proto::{Id, MatchPolicy, Uri};

use super::envelope;
use super::proxy::Proxies;
use super::pubsub::RealmLink;
use super::registry::{self, KvOp};
use crate::backplane::Wait;
use crate::dealer::InvokePolicy;

/// How long a forced REGISTER waits for the other nodes to evict their callees at most.
const FORCE_WAIT: Duration = Duration::from_secs(2);

/// A `force_reregister` in progress (KV value).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ForceRecord {
    uri: String,
    /// `exact`, `prefix` or `wildcard`.
    policy: String,
    node: String,
    session: u64,
    /// When it was written (ms since the Unix epoch): a leftover record (its node died
    /// before deleting it) older than the node timeout evicts nobody.
    sent_ms: u64,
}

impl RealmLink {
    /// Whether `(uri, policy)`'s registration here has callees on other nodes.
    fn has_remote_callees(&self, uri: &Uri, policy: MatchPolicy) -> bool {
        let Some(realm) = self.realm.upgrade() else {
            return false;
        };
        realm
            .dealer
            .lookup_exactly(uri, policy)
            .is_some_and(|r| r.callee_sessions().iter().any(Proxies::is_proxy))
    }

    /// [`crate::backplane::Backplane::force_evict`].
    pub(crate) fn evict_remote(
        self: &Arc<Self>,
        uri: &Uri,
        policy: MatchPolicy,
        callee: Id,
        invoke: InvokePolicy,
    ) -> Option<Wait<()>> {
        // The forced registration's policy is the procedure's now, whatever it was.
        self.take_over_claim(uri, policy, invoke);
        if !self.has_remote_callees(uri, policy) {
            return None;
        }
        let key = registry::force_key(&self.token, self.registration_id(uri, policy));
        let record = ForceRecord {
            uri: uri.as_str().to_owned(),
            policy: policy.as_str().to_owned(),
            node: self.core.node.clone(),
            session: callee.get(),
            sent_ms: envelope::now_ms(),
        };
        let (written, rx) = tokio::sync::oneshot::channel();
        let op = KvOp::Put(key.clone(), envelope::encode(&record), Some(written));
        self.core.kv_ops.send(op).ok()?;
        let (link, uri) = (self.clone(), uri.clone());
        Some(Box::pin(async move {
            let deadline = tokio::time::Instant::now() + FORCE_WAIT;
            let mut changed = link.callees_changed.subscribe();
            let _ = tokio::time::timeout_at(deadline, rx).await;
            while link.has_remote_callees(&uri, policy) {
                tokio::select! {
                    _ = changed.changed() => {}
                    () = tokio::time::sleep_until(deadline) => {
                        debug!(procedure = %uri, "cluster: force_reregister: not every node evicted its callees in time");
                        break;
                    }
                }
            }
            let _ = link.core.kv_ops.send(KvOp::Delete(key));
        }))
    }

    /// Another node's force record: this node's own callees of the registration are
    /// evicted (UNREGISTERED, as on a single node) and leave the registry.
    pub(crate) fn force_seen(&self, e: &kv::Entry) {
        if e.operation != kv::Operation::Put {
            return;
        }
        let rec = match envelope::decode::<ForceRecord>(&e.value) {
            Ok(r) => r,
            Err(err) => {
                warn!(key = %e.key, cause = %err, "cluster: unreadable force_reregister record");
                return;
            }
        };
        if rec.node == self.core.node
            || envelope::is_stale(rec.sent_ms, self.core.node_timeout_ms())
        {
            return;
        }
        let (Some(policy), Some(realm)) = (MatchPolicy::parse(&rec.policy), self.realm.upgrade())
        else {
            return;
        };
        let uri = Uri::from(rec.uri);
        let Some(reg) = realm.dealer.lookup_exactly(&uri, policy) else {
            return;
        };
        let mut evicted = 0;
        for callee in reg.callee_sessions() {
            if Proxies::is_proxy(&callee) {
                continue;
            }
            if realm.unregister(callee.id(), reg.id).is_ok() {
                crate::dealer::revoke(&callee, reg.id);
                evicted += 1;
            }
        }
        if evicted > 0 {
            info!(procedure = %uri, by = %rec.node, evicted, "cluster: callees evicted by a force_reregister on another node");
        }
    }
}
