//! Reconnecting after a lost connection: the [`ReconnectPolicy`] (exponential backoff with
//! jitter), and the [`ConnectionState`] users can watch through a [`StateWatcher`].

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use wamp_proto::Id;

/// When and how often the client reconnects after losing its connection (see
/// [`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)).
///
/// Attempt `n` (from 1) waits `min(max_delay, initial_delay × multiplier^(n-1))`, shortened
/// by a random part of up to `jitter` of it (so clients restarted together do not all
/// reconnect at the same instant). The default: 200 ms, doubling, at most 30 s, jitter 0.5,
/// unlimited attempts. [`ReconnectPolicy::never`] turns reconnecting off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    jitter: f64,
    max_attempts: Option<u32>,
    enabled: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
            enabled: true,
        }
    }
}

impl ReconnectPolicy {
    /// No reconnecting: a lost connection ends the client, as [`Client::closed`] reports
    /// (for short-lived programs and tools that should fail fast).
    ///
    /// [`Client::closed`]: crate::Client::closed
    pub fn never() -> Self {
        ReconnectPolicy {
            enabled: false,
            ..ReconnectPolicy::default()
        }
    }

    /// The wait before the first attempt (default 200 ms).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest wait between attempts (default 30 s).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How much each wait grows over the previous one (default 2; at least 1).
    pub fn multiplier(mut self, factor: f64) -> Self {
        self.multiplier = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The fraction of each wait that is random (default 0.5: each wait is between half and
    /// all of the nominal one; 0 for none; at most 1).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Gives up after this many failed attempts in a row (default: never gives up); the
    /// client then closes with the last failure as its [`CloseReason`](crate::CloseReason).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Whether the client reconnects at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled && self.max_attempts != Some(0)
    }

    /// The wait before attempt `attempt` (from 1), before jitter.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_delay.as_secs_f64() * self.multiplier.powi(exp);
        let max = self.max_delay.as_secs_f64();
        if secs.is_finite() && secs < max {
            Duration::from_secs_f64(secs)
        } else {
            self.max_delay
        }
    }

    /// The wait before attempt `attempt` (from 1) with jitter, given `unit` in `[0, 1)`.
    pub(crate) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.nominal_delay(attempt)
            .mul_f64(1.0 - self.jitter * unit.clamp(0.0, 1.0))
    }

    /// Whether attempt `attempt` (from 1) may be made.
    pub(crate) fn allows(&self, attempt: u32) -> bool {
        self.enabled && self.max_attempts.is_none_or(|m| attempt <= m)
    }
}

/// A random number in `[0, 1)` for jitter (std's randomly keyed hasher: no dependency
/// needed for a number that only has to differ between processes and attempts).
pub(crate) fn random_unit() -> f64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    h.write_u32(nanos);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Where the client's connection stands (see [`Client::state`](crate::Client::state)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Joined, with every registration and subscription in place (restored ones included).
    Connected {
        /// The current session's ID (a new one after each reconnect).
        session: Id,
    },
    /// The connection was lost; the next attempt starts after a backoff wait. Requests fail
    /// with `NotConnected` meanwhile.
    Disconnected {
        /// The attempt that comes next (from 1).
        next_attempt: u32,
        /// What ended the last connection, or why the last attempt failed.
        reason: String,
    },
    /// Attempt `attempt` is connecting, joining, or restoring registrations and
    /// subscriptions.
    Reconnecting {
        /// The attempt (from 1).
        attempt: u32,
    },
    /// The client is closed for good ([`Client::closed`](crate::Client::closed) tells why).
    Closed,
}

/// Watches a client's [`ConnectionState`] (from [`Client::state_watcher`]). Only the
/// latest state is kept: quick successive changes may be seen as one.
///
/// [`Client::state_watcher`]: crate::Client::state_watcher
#[derive(Debug, Clone)]
pub struct StateWatcher {
    rx: watch::Receiver<ConnectionState>,
}

impl StateWatcher {
    pub(crate) fn new(rx: watch::Receiver<ConnectionState>) -> StateWatcher {
        StateWatcher { rx }
    }

    /// The current state.
    pub fn current(&self) -> ConnectionState {
        self.rx.borrow().clone()
    }

    /// Waits for the next change and returns the new state ([`ConnectionState::Closed`]
    /// once the client is closed, at once on every later call).
    pub async fn changed(&mut self) -> ConnectionState {
        match self.rx.changed().await {
            Ok(()) => self.rx.borrow_and_update().clone(),
            Err(_) => ConnectionState::Closed,
        }
    }

    /// Waits until the state satisfies `f` (checking the current one first) and returns it;
    /// [`ConnectionState::Closed`] if the client closes first and `Closed` does not satisfy
    /// `f`.
    pub async fn wait_for(
        &mut self,
        mut f: impl FnMut(&ConnectionState) -> bool,
    ) -> ConnectionState {
        match self
            .rx
            .wait_for(|s| f(s) || *s == ConnectionState::Closed)
            .await
        {
            Ok(s) => s.clone(),
            Err(_) => ConnectionState::Closed,
        }
    }

    /// Waits until the client is connected and returns the session ID; `None` if it closes
    /// first.
    pub async fn connected(&mut self) -> Option<Id> {
        match self
            .wait_for(|s| matches!(s, ConnectionState::Connected { .. }))
            .await
        {
            ConnectionState::Connected { session } => Some(session),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap_and_jitter_only_shortens() {
        let p = ReconnectPolicy::default()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(2))
            .multiplier(2.0)
            .jitter(0.5);
        let nominal: Vec<_> = (1..=7).map(|n| p.nominal_delay(n).as_millis()).collect();
        assert_eq!(nominal, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(p.nominal_delay(u32::MAX), Duration::from_secs(2));
        for n in 1..=7 {
            let full = p.nominal_delay(n);
            assert_eq!(p.delay(n, 0.0), full);
            let shortest = p.delay(n, 0.999_999);
            assert!(shortest >= full / 2 && shortest < full, "{n}: {shortest:?}");
        }
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }

    #[test]
    fn settings_are_kept_in_range() {
        let p = ReconnectPolicy::default().multiplier(0.1).jitter(7.0);
        assert_eq!(
            p.nominal_delay(5),
            p.nominal_delay(1),
            "multiplier at least 1"
        );
        assert_eq!(p.delay(1, 0.999_999).as_millis(), 0, "jitter at most 1");
        let p = ReconnectPolicy::default()
            .jitter(f64::NAN)
            .multiplier(f64::INFINITY);
        assert_eq!(p.delay(3, 0.5), p.nominal_delay(1));
    }

    #[test]
    fn attempts_are_bounded_only_when_asked() {
        let p = ReconnectPolicy::default();
        assert!(p.is_enabled() && p.allows(1) && p.allows(u32::MAX));
        let p = p.max_attempts(3);
        assert!(p.allows(3) && !p.allows(4));
        assert!(!ReconnectPolicy::default().max_attempts(0).is_enabled());
        let never = ReconnectPolicy::never();
        assert!(!never.is_enabled() && !never.allows(1));
    }
}
