//! What the NATS client reports about its connection: logged, and slow-consumer drops
//! counted (`wamp_cluster_slow_consumer_drops_total`) with a log line at most every
//! [`LOG_EVERY`], so a flood does not flood the log too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// The least time between two slow-consumer log lines.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The node's view of its NATS connection's events.
#[derive(Debug, Default)]
pub(crate) struct ConnectionEvents {
    /// Messages the NATS client dropped because a subscription's queue was full (at
    /// least: the client reports at most 128 events at a time).
    slow_drops: AtomicU64,
    /// When the last slow-consumer line was logged, and the count it reported.
    last_log: Mutex<Option<(Instant, u64)>>,
}

impl ConnectionEvents {
    /// Handles one event of the NATS client.
    pub(crate) fn on_event(&self, event: &async_nats::Event) {
        match event {
            async_nats::Event::Connected => info!(event = %event, "cluster: NATS connection"),
            async_nats::Event::SlowConsumer(_) => self.slow_consumer(),
            _ => warn!(event = %event, "cluster: NATS connection"),
        }
    }

    /// Messages dropped by slow NATS subscriptions so far.
    pub(crate) fn slow_drops(&self) -> u64 {
        self.slow_drops.load(Ordering::Relaxed)
    }

    fn slow_consumer(&self) {
        let total = self.slow_drops.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let since = match *last {
            Some((at, _)) if now.duration_since(at) < LOG_EVERY => return,
            Some((_, logged)) => total - logged,
            None => total,
        };
        *last = Some((now, total));
        warn!(
            dropped = since,
            total,
            "cluster: messages from NATS dropped: this node reads them slower than they \
             arrive (raise [cluster] subscription_capacity, or give the node more CPU)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slow_consumer_event_is_counted() {
        let events = ConnectionEvents::default();
        for _ in 0..1000 {
            events.on_event(&async_nats::Event::SlowConsumer(7));
        }
        events.on_event(&async_nats::Event::Connected);
        assert_eq!(events.slow_drops(), 1000);
        let logged = events.last_log.lock().map(|l| l.map(|(_, n)| n));
        assert_eq!(
            logged.ok().flatten(),
            Some(1),
            "one line for the first, then quiet"
        );
    }
}
