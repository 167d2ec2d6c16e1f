//! Registration claims: which invoke policy a procedure is registered with, cluster-wide.
//!
//! A claim (`x.<realm>.<registration>`, a [`Claim`]) names the invoke policy of a
//! registration and the nodes that have callees of it. A REGISTER on a node without a
//! callee of that (procedure, match) of its own asks the registry first (the local dealer
//! answers the rest, as on a single node): the claim is created (create: only if absent),
//! or joined by a shared registration of the same policy (compare-and-set on its
//! revision), or the REGISTER is refused with `procedure_already_exists` (`single`, or
//! another policy): of two conflicting REGISTERs on two nodes, exactly one wins. A node
//! leaves the claim once its last callee of the registration left, ordered before that
//! callee's record deletion (a node that saw the deletion finds the claim free); the last
//! node out deletes it. A lost node's share is ignored by
//! claimants and dropped by the reaper. A `force_reregister` replaces the claim.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv;
use tracing::{debug, warn};
use wamp_proto::{MatchPolicy, Uri};

use super::envelope::{self, Claim, Holder};
use super::registry::{timed, KvOp};
use super::{Core, RealmLink};
use crate::backplane::Wait;
use crate::dealer::InvokePolicy;
use crate::peer::lock;

/// How often a claim is read and written again after another node changed it meanwhile.
const CAS_ATTEMPTS: usize = 16;

/// This node's claim shares given back, and the lock that orders giving one back with a
/// callee's arrival: a REGISTER checked while the node's last other callee of it left is
/// followed by a claim again ([`RealmLink::rejoin_if_given_back`]).
#[derive(Debug, Default)]
pub(crate) struct Shares {
    order: Mutex<()>,
    given_back: AtomicU64,
}

impl Shares {
    /// How many shares were given back so far.
    pub(crate) fn given_back(&self) -> u64 {
        self.given_back.load(Ordering::Acquire)
    }
}

/// How a claim was won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// Nobody alive held it: any callee of it this node still routes to left already.
    Fresh,
    /// Other nodes have callees of the same shared policy: this node joined them.
    Joined,
}

fn me(core: &Core) -> Holder {
    Holder {
        node: core.node.clone(),
        incarnation: core.incarnation(),
    }
}

/// Takes or joins the claim `key` for invoke policy `invoke`; `Err` is the refusal's text.
pub(crate) async fn claim(
    core: &Core,
    store: &kv::Store,
    key: &str,
    invoke: &str,
) -> Result<Claimed, String> {
    let unreachable = || {
        "the cluster registry cannot be reached; registrations of new procedures are refused until it can"
            .to_owned()
    };
    for _ in 0..CAS_ATTEMPTS {
        let entry = timed(store.entry(key.to_owned()))
            .await
            .map_err(|_| unreachable())?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            let fresh = Claim {
                invoke: invoke.to_owned(),
                holders: vec![me(core)],
            };
            match tokio::time::timeout(
                super::registry::KV_TIMEOUT,
                store.create(key, envelope::encode(&fresh)),
            )
            .await
            {
                Ok(Ok(_)) => return Ok(Claimed::Fresh),
                Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Ok(Err(e)) => return Err(format!("the cluster registry refused the claim: {e}")),
                Err(_) => return Err(unreachable()),
            }
        };
        let held = envelope::decode::<Claim>(&entry.value)
            .inspect_err(|e| warn!(key, cause = %e, "cluster: unreadable claim; replaced"))
            .ok();
        let alive: Vec<Holder> = held
            .as_ref()
            .map(|c| {
                c.holders
                    .iter()
                    .filter(|h| !core.nodes.is_lost(&h.node, h.incarnation))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let (next, outcome) = match held {
            Some(c) if !alive.is_empty() => {
                if c.invoke != invoke || invoke == "single" {
                    return Err(format!(
                        "the procedure is registered with invoke policy `{}` on cluster node `{}`",
                        c.invoke, alive[0].node
                    ));
                }
                let mine = me(core);
                if alive.contains(&mine) && alive.len() == c.holders.len() {
                    return Ok(Claimed::Joined);
                }
                let mut holders = alive;
                if !holders.contains(&mine) {
                    holders.push(mine);
                }
                (
                    Claim {
                        invoke: c.invoke,
                        holders,
                    },
                    Claimed::Joined,
                )
            }
            // Held by lost nodes only (or unreadable): taken over.
            _ => (
                Claim {
                    invoke: invoke.to_owned(),
                    holders: vec![me(core)],
                },
                Claimed::Fresh,
            ),
        };
        match timed(store.update(key, envelope::encode(&next), entry.revision)).await {
            Ok(_) => return Ok(outcome),
            // Changed meanwhile (or the write failed): read it again.
            Err(e) => debug!(key, cause = %e, "cluster: claim changed meanwhile; again"),
        }
    }
    Err("the cluster registry's claim of this procedure keeps changing; try again".into())
}

/// This node leaves claim `key` (it has no callee of that registration any more); the last
/// node out deletes it.
pub(crate) async fn release(core: &Core, store: &kv::Store, key: &str) {
    let mine = me(core);
    if !drop_holders(store, key, |h| *h == mine).await {
        warn!(key, "cluster: could not leave a registration claim");
    }
}

/// Drops the share of `(node, incarnation)` (declared lost) from claim `key`, if it has one.
pub(crate) async fn reap(store: &kv::Store, key: &str, node: &str, incarnation: u64) {
    let lost = |h: &Holder| h.node == node && h.incarnation == incarnation;
    if !drop_holders(store, key, lost).await {
        warn!(
            key,
            node, "cluster: could not drop a lost node from a registration claim"
        );
    }
}

/// Removes the holders `gone` names from claim `key` (compare-and-set), deleting it once
/// none is left; false if the registry kept failing.
async fn drop_holders(store: &kv::Store, key: &str, gone: impl Fn(&Holder) -> bool) -> bool {
    for _ in 0..CAS_ATTEMPTS {
        let entry = match timed(store.entry(key.to_owned())).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => e,
            Ok(_) => return true,
            Err(_) => return false,
        };
        // Unreadable: the next claimant replaces it.
        let Ok(mut c) = envelope::decode::<Claim>(&entry.value) else {
            return true;
        };
        let before = c.holders.len();
        c.holders.retain(|h| !gone(h));
        if c.holders.len() == before {
            return true; // Not a holder (a force_reregister took it over, say).
        }
        let done = if c.holders.is_empty() {
            timed(store.delete_expect_revision(key, Some(entry.revision)))
                .await
                .map(drop)
        } else {
            timed(store.update(key, envelope::encode(&c), entry.revision))
                .await
                .map(drop)
        };
        match done {
            Ok(()) => return true,
            Err(e) => debug!(key, cause = %e, "cluster: claim changed meanwhile; again"),
        }
    }
    false
}

impl RealmLink {
    /// [`crate::backplane::Backplane::claim`].
    pub(crate) fn claim_registration(
        self: &Arc<Self>,
        uri: &Uri,
        policy: MatchPolicy,
        invoke: InvokePolicy,
    ) -> Wait<Result<(), String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op = KvOp::Claim(self.claim_key(uri, policy), invoke.as_str(), tx);
        let sent = self.core.kv_ops.send(op).is_ok();
        let (link, uri) = (self.clone(), uri.clone());
        Box::pin(async move {
            let stopped = || "the cluster registry is not running".to_owned();
            if !sent {
                return Err(stopped());
            }
            if rx.await.unwrap_or_else(|_| Err(stopped()))? == Claimed::Fresh {
                link.drop_departed(&uri, policy);
            }
            Ok(())
        })
    }

    /// After a fresh claim: the proxies of `(uri, policy)` still here are callees that left
    /// (their claim was released just before their records' deletion, which is on its way
    /// to this node): they leave the local registration now, so that it does not refuse or
    /// route to them.
    fn drop_departed(&self, uri: &Uri, policy: MatchPolicy) {
        let Some(realm) = self.realm.upgrade() else {
            return;
        };
        if let Some(reg) = realm.dealer.lookup_exactly(uri, policy) {
            self.proxies.drop_registration(&realm, reg.id);
        }
    }

    /// Whether this node has a callee of `(uri, policy)` of its own (a share of the claim).
    pub(crate) fn holds_share(&self, uri: &Uri, policy: MatchPolicy) -> bool {
        self.realm.upgrade().is_some_and(|realm| {
            realm
                .dealer
                .lookup_exactly(uri, policy)
                .is_some_and(|r| r.has_own_callees())
        })
    }

    /// This node leaves the claim of `(uri, policy)` unless it still has a callee of it
    /// (queued before the departed callee's record deletion).
    pub(crate) fn release_unless_held(&self, uri: &Uri, policy: MatchPolicy) {
        let shares = &self.core.shares;
        let _order = lock(&shares.order);
        if !self.holds_share(uri, policy) {
            shares.given_back.fetch_add(1, Ordering::AcqRel);
            let _ = self
                .core
                .kv_ops
                .send(KvOp::Release(self.claim_key(uri, policy)));
        }
    }

    /// [`crate::backplane::Backplane::callee_arrived`]: the claim is joined again (queued
    /// after the release) if a share was given back since `since`; rare, so the check is
    /// node-wide, not per claim.
    pub(crate) fn rejoin_if_given_back(
        &self,
        uri: &Uri,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        since: u64,
    ) {
        let shares = &self.core.shares;
        let _order = lock(&shares.order);
        if shares.given_back() == since {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let key = self.claim_key(uri, policy);
        if self
            .core
            .kv_ops
            .send(KvOp::Claim(key, invoke.as_str(), tx))
            .is_ok()
        {
            let uri = uri.clone();
            tokio::spawn(async move {
                if let Ok(Err(why)) = rx.await {
                    warn!(procedure = %uri, why, "cluster: a callee joined a registration whose claim was given back and taken elsewhere");
                }
            });
        }
    }

    /// [`crate::backplane::Backplane::registry_applied`].
    pub(crate) fn kv_applied(&self) -> Option<Wait<()>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.core.kv_ops.send(KvOp::Applied(tx)).ok()?;
        Some(Box::pin(async move {
            // Bounded: with the registry unreachable the answer still goes out.
            let _ = tokio::time::timeout(super::registry::KV_TIMEOUT, rx).await;
        }))
    }

    /// A `force_reregister` of `(uri, policy)` with `invoke` takes the claim over (queued
    /// before the new callee's record).
    pub(crate) fn take_over_claim(&self, uri: &Uri, policy: MatchPolicy, invoke: InvokePolicy) {
        let claim = Claim {
            invoke: invoke.as_str().to_owned(),
            holders: vec![me(&self.core)],
        };
        let op = KvOp::Put(self.claim_key(uri, policy), envelope::encode(&claim), None);
        let _ = self.core.kv_ops.send(op);
    }
}
