//! The cluster tests: a nats-server and three `wamp-router` processes (`n1`, `n2`, `n3`)
//! per test, over real sockets, each test on its own ports (harness:
//! `wamp_tests::cluster`). A binary of its own: it spawns processes.
//!
//! Run one area with `cargo test -p wamp-tests --test cluster rpc::`.

#[path = "rpc_common/mod.rs"]
mod rpc_common;

#[path = "cluster/failures.rs"]
mod failures;
#[path = "cluster/interop.rs"]
mod interop;
#[path = "cluster/interop_meta.rs"]
mod interop_meta;
#[path = "cluster/meta.rs"]
mod meta;
#[path = "cluster/meta_lists.rs"]
mod meta_lists;
#[path = "cluster/pubsub.rs"]
mod pubsub;
#[path = "cluster/pubsub_filters.rs"]
mod pubsub_filters;
#[path = "cluster/retained.rs"]
mod retained;
#[path = "cluster/rpc.rs"]
mod rpc;
#[path = "cluster/shared.rs"]
mod shared;
#[path = "cluster/slow_consumer.rs"]
mod slow_consumer;

use wamp_proto::Serializer;
use wamp_tests::cluster::{seen_nodes, with_nodes, REALM};
use wamp_tests::RawPeer;

/// `wamp_router.cluster.nodes` lists every node, sorted, on every node (started in another
/// order), itself included.
#[tokio::test]
async fn every_node_lists_every_node_sorted() {
    with_nodes(&["nc", "na", "nb"], async |c| {
        for node in &c.nodes {
            let (mut p, _) = RawPeer::join(&node.url(), REALM, Serializer::Json).await;
            let seen = seen_nodes(&mut p).await;
            assert_eq!(
                seen.as_deref(),
                Some(&["na", "nb", "nc"].map(String::from)[..]),
                "{}",
                node.id
            );
        }
    })
    .await;
}
