//! Slowing down repeated authentication failures from one peer address, so the router is no
//! password oracle: each failure within the window doubles the delay before the next
//! failure's ABORT goes out (capped), and a quiet window forgets the address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The delay of the first failure's answer.
const FIRST: Duration = Duration::from_millis(200);
/// The longest delay.
const CAP: Duration = Duration::from_secs(8);
/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (older ones are dropped first when full).
const MAX_ADDRESSES: usize = 100_000;

/// Failures per peer address.
#[derive(Debug, Default)]
pub(crate) struct Penalties {
    strikes: DashMap<IpAddr, (u32, Instant)>,
}

impl Penalties {
    /// Records a failure from `addr` (Unix-socket peers have none and are not delayed) and
    /// returns how long to hold its answer.
    pub(crate) fn fail(&self, addr: Option<IpAddr>) -> Duration {
        let Some(addr) = addr else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        if self.strikes.len() >= MAX_ADDRESSES {
            self.strikes
                .retain(|_, (_, at)| now.duration_since(*at) < WINDOW);
        }
        let mut e = self.strikes.entry(addr).or_insert((0, now));
        if now.duration_since(e.1) >= WINDOW {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        let n = e.0;
        drop(e);
        FIRST
            .checked_mul(1u32 << (n - 1).min(16))
            .unwrap_or(CAP)
            .min(CAP)
    }

    /// How long to hold a refusal that reveals no credential check (an unknown authid):
    /// as long as a first wrong credential's, or the address's current delay, without
    /// counting a failure, so the timing tells no authid that exists from one that does not.
    pub(crate) fn probe(&self, addr: Option<IpAddr>) -> Duration {
        let Some(addr) = addr else {
            return Duration::ZERO;
        };
        let n = self
            .strikes
            .get(&addr)
            .filter(|e| e.1.elapsed() < WINDOW)
            .map_or(0, |e| e.0);
        FIRST.checked_mul(1u32 << n.min(16)).unwrap_or(CAP).min(CAP)
    }

    /// A successful authentication from `addr` clears its record.
    pub(crate) fn succeed(&self, addr: Option<IpAddr>) {
        if let Some(a) = addr {
            self.strikes.remove(&a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_address_and_reset_on_success() {
        let p = Penalties::default();
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        assert_eq!(p.fail(a), FIRST);
        assert_eq!(p.fail(a), FIRST * 2);
        assert_eq!(p.fail(a), FIRST * 4);
        assert_eq!(
            p.probe(a),
            FIRST * 8,
            "the next failure's delay, not counted"
        );
        assert_eq!(p.fail(a), FIRST * 8);
        assert_eq!(
            p.probe(b),
            FIRST,
            "an unknown authid waits like a first failure"
        );
        assert_eq!(p.fail(b), FIRST, "another address is not slowed");
        p.succeed(b);
        for _ in 0..40 {
            p.fail(a);
        }
        assert_eq!(p.fail(a), CAP);
        p.succeed(a);
        assert_eq!(p.fail(a), FIRST);
        assert_eq!(p.fail(None), Duration::ZERO);
    }
}
