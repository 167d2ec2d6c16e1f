//! Requests between nodes that are not calls or events: the meta API's scatter-gather.
//!
//! Each node listens on `<prefix>.n.<node>.ctl`. The asking node sends a query to every
//! other live node (NATS request-reply) and waits at most [`bound`] for the answers; a node
//! that does not answer in time is left out of the answer, with a warning. A query carries
//! its deadline, so a node that was frozen meanwhile does not act on it (a kill) late.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::envelope;
use super::Core;
use crate::backplane::Wait;
use crate::meta::{Part, Query};

/// The longest an asking node waits for the others' parts.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// A meta query for another node.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    realm: String,
    /// The asking node.
    from: String,
    /// When the asking node stops waiting (ms since the Unix epoch).
    deadline_ms: u64,
    query: Query,
}

/// How long the asking node waits: the node timeout, at most [`MAX_WAIT`].
fn bound(core: &Core) -> Duration {
    core.node_timeout.min(MAX_WAIT)
}

/// Asks every other live node for its part of `query` in `realm`.
pub(crate) fn gather(core: &Arc<Core>, realm: &str, query: Query) -> Wait<Vec<Part>> {
    let others: Vec<String> = core
        .nodes
        .alive(&core.node)
        .into_iter()
        .filter(|n| *n != core.node)
        .collect();
    let wait = bound(core);
    let request = Request {
        realm: realm.to_owned(),
        from: core.node.clone(),
        deadline_ms: envelope::now_ms()
            .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        query,
    };
    let payload = envelope::encode(&request);
    let core = core.clone();
    Box::pin(async move {
        if others.is_empty() {
            return Vec::new();
        }
        if !core.connected() {
            warn!(nodes = ?others, procedure = %request.query.procedure, "cluster: NATS is down; the meta API answers for this node only");
            return Vec::new();
        }
        let asks = others.into_iter().map(|node| {
            let subject = core.node_subject(&node, "ctl");
            let (client, payload) = (core.client.clone(), payload.clone());
            async move {
                let answer = tokio::time::timeout(wait, client.request(subject, payload)).await;
                (node, answer)
            }
        });
        let mut parts = Vec::new();
        for (node, answer) in join_all(asks).await {
            match answer {
                Ok(Ok(m)) => match envelope::decode::<Part>(&m.payload) {
                    Ok(p) => parts.push(p),
                    Err(e) => warn!(node, cause = %e, "cluster: unreadable meta answer; left out"),
                },
                Ok(Err(e)) => {
                    warn!(node, cause = %e, procedure = %request.query.procedure, "cluster: a node did not answer a meta query; left out")
                }
                Err(_) => {
                    warn!(node, bound_ms = wait.as_millis() as u64, procedure = %request.query.procedure, "cluster: a node did not answer a meta query in time; left out")
                }
            }
        }
        parts
    })
}

/// Answers the other nodes' queries, until the router stops.
pub(crate) async fn serve(core: Arc<Core>) {
    let subject = core.node_subject(&core.node, "ctl");
    match core.client.subscribe(subject.clone()).await {
        Ok(sub) => {
            let c = core.clone();
            super::each_message(sub, move |m| answer(&c, &m)).await;
        }
        Err(e) => {
            warn!(subject, cause = %e, "cluster: cannot subscribe; the meta API will not see this node's sessions from other nodes")
        }
    }
}

/// Answers one query with this node's part (dropped when unreadable or too late).
fn answer(core: &Core, m: &async_nats::Message) {
    let Some(reply) = m.reply.as_ref() else {
        debug!("cluster: a meta query without a reply subject; dropped");
        return;
    };
    let request = match envelope::decode::<Request>(&m.payload) {
        Ok(r) => r,
        Err(e) => {
            warn!(cause = %e, "cluster: unreadable meta query from another node; dropped");
            return;
        }
    };
    if envelope::now_ms() > request.deadline_ms {
        debug!(node = %request.from, procedure = %request.query.procedure, "cluster: a meta query past its deadline; dropped");
        return;
    }
    let part = match core.link(&request.realm).and_then(|l| l.realm.upgrade()) {
        Some(realm) => crate::meta::answer_query(&realm, request.query),
        None => Part::Nothing,
    };
    core.send(reply.to_string(), envelope::encode(&part));
}
