//! The remote half of routing: what a realm tells other router processes, when it is part
//! of a cluster (`[cluster]`, `crate::cluster`). Local routing never goes through it; a
//! realm without a backplane (a single node) pays one `OnceLock` load per PUBLISH, SUBSCRIBE
//! and REGISTER for it, nothing per delivery.

use std::future::Future;
use std::pin::Pin;

use wamp_proto::{Id, MatchPolicy, Uri};

use crate::broker::Publication;
use crate::dealer::{InvokePolicy, Registration};
use crate::peer::SessionHandle;

/// Something to wait for before a reply goes out.
pub(crate) type Wait<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A realm's link to the other nodes.
pub(crate) trait Backplane: Send + Sync + std::fmt::Debug {
    /// After the local fan-out of `p`: send it to the nodes that want it. Never waits.
    fn publish(&self, p: &Publication);

    /// Before the first local subscription to `(uri, policy)`: `Some` while this node's
    /// interest in it is not yet registered with the other nodes (SUBSCRIBED waits for it).
    fn interest_pending(&self, uri: &Uri, policy: MatchPolicy) -> Option<Wait<()>>;

    /// The first local subscriber to `(uri, policy)` came (`true`) or the last one left.
    fn interest_changed(&self, uri: &Uri, policy: MatchPolicy, added: bool);

    /// After a retained PUBLISH that asked for an acknowledgement: `Some` while a retained
    /// event this node took is not yet stored for the other nodes (PUBLISHED waits for it).
    fn retained_stored(&self) -> Option<Wait<()>>;

    /// Before a `get_retained` replay: `Some` while this node may not yet have applied
    /// every retained event stored for the cluster (SUBSCRIBED waits for it).
    fn retained_caught_up(&self) -> Option<Wait<()>>;

    /// Before the first local callee of `(uri, policy)` (no other callee of it on this node):
    /// the registration's invoke policy must be claimed cluster-wide. `Err` is the
    /// refusal's text (it is registered with another policy, or `single`, elsewhere).
    fn claim(
        &self,
        uri: &Uri,
        policy: MatchPolicy,
        invoke: InvokePolicy,
    ) -> Wait<Result<(), String>>;

    /// Before a `force_reregister` REGISTER of `(uri, policy)` by local session `callee`
    /// (with invoke policy `invoke`, which it claims cluster-wide): `Some` while other nodes have callees of it; they
    /// evict them, and the wait is over once they did or a bound passed.
    fn force_evict(
        &self,
        uri: &Uri,
        policy: MatchPolicy,
        callee: Id,
        invoke: InvokePolicy,
    ) -> Option<Wait<()>>;

    /// How many claim shares this node gave back so far (read before a REGISTER is
    /// checked, for [`Backplane::callee_arrived`]).
    fn shares_given_back(&self) -> u64;

    /// A local callee of `(uri, policy)` with `invoke` was added; `since`: the
    /// [`Backplane::shares_given_back`] read before its REGISTER was checked. Should a
    /// share have been given back meanwhile (the node's last other callee of it left in
    /// between), the claim is joined again.
    fn callee_arrived(&self, uri: &Uri, policy: MatchPolicy, invoke: InvokePolicy, since: u64);

    /// Gives back a claim `claim` took, unused (no local callee of it came or is left).
    fn release_claim(&self, uri: &Uri, policy: MatchPolicy);

    /// A wait that is over once the registry changes this node made so far (callees
    /// removed, claims given back) are applied, or a bound passed.
    fn registry_applied(&self) -> Option<Wait<()>>;

    /// A local session became a callee of `reg` (other nodes learn of it).
    fn callee_added(&self, callee: &SessionHandle, reg: &Registration, disclose_caller: bool);

    /// A local session stopped being a callee of `reg` (`uri`, `policy`: its key).
    fn callee_removed(&self, callee: Id, reg: Id, uri: &Uri, policy: MatchPolicy);

    /// `session`'s testaments changed (empty: it has none, or it left and published them):
    /// should this node die, another publishes them. The wait is over once they are kept.
    fn testaments(
        &self,
        session: Id,
        testaments: Vec<crate::meta::PortableTestament>,
    ) -> Option<Wait<()>>;

    /// The nodes alive, this one included, sorted.
    fn nodes(&self) -> Vec<String>;

    /// Asks every other live node for its own part of a meta query (a list, get or kill);
    /// the wait yields the parts that came within a bound (a node that did not is left out,
    /// and logged).
    fn gather(&self, query: crate::meta::Query) -> Wait<Vec<crate::meta::Part>>;
}
