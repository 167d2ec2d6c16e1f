//! What sessions' outbound queues may hold: each queue's bounds, and the router-wide total.
//!
//! The total is kept in 64 KiB units and updated only when a queue crosses a unit
//! boundary, so a fan-out does not touch one shared counter per subscriber per event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::OutboundConfig;
use crate::counters::Metrics;

/// Looks per stall timeout at a stalled connection's progress: it is closed after writing
/// nothing for between one timeout and one timeout plus a quarter.
pub(crate) const STALL_LOOKS: u8 = 4;

/// Bytes per unit of the router-wide total.
const UNIT_SHIFT: u32 = 16;

/// The bounds every outbox of one router shares, and what all of them hold together.
#[derive(Debug)]
pub(crate) struct OutboundBudget {
    pub(crate) soft_messages: u32,
    pub(crate) soft_bytes: u32,
    pub(crate) max_messages: u32,
    pub(crate) max_bytes: u32,
    /// How often a stalled connection's progress is looked at: the stall timeout over
    /// [`STALL_LOOKS`] (computed once, not on every poll).
    pub(crate) stall_look: Duration,
    /// `total_max_bytes` in units (0: no cap).
    total_max_units: u64,
    /// Units held by all queues together.
    total_units: AtomicU64,
    /// Woken when the total reaches its cap.
    pub(crate) over_total: Notify,
    /// The router's counters (reached from every outbox, so sessions hold no pointer more).
    pub(crate) metrics: Arc<Metrics>,
}

/// A queue's size: messages and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Backlog {
    pub(crate) messages: u32,
    pub(crate) bytes: u32,
}

impl OutboundBudget {
    /// The budget for `config` (validated: every bound fits in a `u32`).
    pub(crate) fn new(config: &OutboundConfig, metrics: Arc<Metrics>) -> OutboundBudget {
        let u32_of = |v: usize| u32::try_from(v).unwrap_or(u32::MAX).max(1);
        OutboundBudget {
            soft_messages: u32_of(config.soft_messages),
            soft_bytes: u32_of(config.soft_bytes),
            max_messages: u32_of(config.max_messages),
            max_bytes: u32_of(config.max_bytes),
            stall_look: Duration::from_millis(config.stall_timeout_ms.max(1))
                / u32::from(STALL_LOOKS),
            total_max_units: config.total_max_bytes.div_ceil(1 << UNIT_SHIFT),
            total_units: AtomicU64::new(0),
            over_total: Notify::new(),
            metrics,
        }
    }

    /// Whether `backlog` is over the soft bound (the session must keep draining it).
    pub(crate) fn over_soft(&self, backlog: Backlog) -> bool {
        backlog.messages > self.soft_messages || backlog.bytes > self.soft_bytes
    }

    /// Whether `messages` more messages of `len` bytes in all would take `backlog` past a
    /// hard cap.
    pub(crate) fn over_cap(&self, backlog: Backlog, messages: u32, len: usize) -> bool {
        u64::from(backlog.messages) + u64::from(messages) > u64::from(self.max_messages)
            || backlog.bytes as usize + len > self.max_bytes as usize
    }

    /// Records that a queue went from `before` to `after` bytes.
    #[inline]
    pub(crate) fn moved(&self, before: u32, after: u32) {
        let (b, a) = (
            u64::from(before >> UNIT_SHIFT),
            u64::from(after >> UNIT_SHIFT),
        );
        if a > b {
            let total = self.total_units.fetch_add(a - b, Ordering::Relaxed) + (a - b);
            if self.total_max_units != 0 && total >= self.total_max_units {
                self.over_total.notify_one();
            }
        } else if b > a {
            self.total_units.fetch_sub(b - a, Ordering::Relaxed);
        }
    }

    /// Bytes held by all queues together (to 64 KiB per queue).
    pub(crate) fn total_bytes(&self) -> u64 {
        self.total_units.load(Ordering::Relaxed) << UNIT_SHIFT
    }

    /// The router-wide cap in bytes, if there is one.
    pub(crate) fn total_cap(&self) -> Option<u64> {
        (self.total_max_units != 0).then_some(self.total_max_units << UNIT_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_moves_by_whole_units_and_signals_its_cap() {
        let b = OutboundBudget::new(
            &OutboundConfig {
                total_max_bytes: 3 << UNIT_SHIFT,
                ..OutboundConfig::default()
            },
            Arc::default(),
        );
        b.moved(0, 100);
        assert_eq!(b.total_bytes(), 0, "under one unit");
        b.moved(100, (2 << UNIT_SHIFT) + 5);
        assert_eq!(b.total_bytes(), 2 << UNIT_SHIFT);
        b.moved((2 << UNIT_SHIFT) + 5, 3 << UNIT_SHIFT);
        assert_eq!(b.total_bytes(), 3 << UNIT_SHIFT);
        // The cap was reached: a permit is stored for the shedder.
        let notified = std::pin::pin!(b.over_total.notified());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(notified, &mut cx).is_ready());
        b.moved(3 << UNIT_SHIFT, 0);
        assert_eq!(b.total_bytes(), 0);
    }

    #[test]
    fn soft_bound_and_hard_cap() {
        let b = OutboundBudget::new(
            &OutboundConfig {
                soft_messages: 2,
                soft_bytes: 100,
                max_messages: 4,
                max_bytes: 200,
                ..OutboundConfig::default()
            },
            Arc::default(),
        );
        let q = |messages, bytes| Backlog { messages, bytes };
        assert!(!b.over_soft(q(2, 100)));
        assert!(b.over_soft(q(3, 10)));
        assert!(b.over_soft(q(1, 101)));
        assert!(!b.over_cap(q(3, 100), 1, 100));
        assert!(b.over_cap(q(3, 100), 1, 101));
        assert!(b.over_cap(q(4, 0), 1, 1));
        assert!(!b.over_cap(q(2, 0), 2, 10), "a batch of two fits");
        assert!(b.over_cap(q(2, 0), 3, 10), "a batch of three does not");
    }
}
