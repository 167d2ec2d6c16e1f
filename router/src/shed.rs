//! The router-wide cap on queued bytes: when all sessions' outbound queues together reach
//! `router.outbound.total_max_bytes`, the sessions with the largest backlogs are closed
//! first, until the total is back under nine tenths of the cap.

use std::sync::Arc;

use tracing::warn;

use crate::counters::SlowClose;
use crate::peer::SessionHandle;
use crate::shared::RouterShared;

/// Closes the largest backlogs whenever the router-wide total reaches its cap, until shutdown.
pub(crate) async fn run(shared: Arc<RouterShared>) {
    let budget = shared.outbound.clone();
    let Some(cap) = budget.total_cap() else {
        return;
    };
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = budget.over_total.notified() => {}
        }
        let total = budget.total_bytes();
        if total < cap {
            continue;
        }
        let mut largest: Vec<(u32, SessionHandle)> = shared
            .realms()
            .iter()
            .flat_map(|r| {
                r.sessions
                    .iter()
                    .map(|s| (s.backlog().bytes, s.value().clone()))
                    .collect::<Vec<_>>()
            })
            .filter(|(bytes, _)| *bytes > 0)
            .collect();
        largest.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let target = cap / 10 * 9;
        let mut left = total;
        for (bytes, session) in largest {
            if left < target {
                break;
            }
            if session.kill("router overloaded: closing the largest outbound backlogs") {
                shared.metrics.slow_close(SlowClose::RouterCap);
                warn!(session = %session.id(), bytes, total, cap, "router-wide outbound queue cap reached; closing the session with the largest backlog");
            }
            left = left.saturating_sub(u64::from(bytes));
        }
    }
}
