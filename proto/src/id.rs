//! WAMP IDs: integers in `1..=2^53`, and their generators.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The largest valid ID: 2^53, the largest integer a double represents exactly.
pub const MAX_ID: u64 = 1 << 53;

/// A WAMP ID, guaranteed to be in `1..=2^53`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    /// Checks that `n` is a valid ID.
    pub const fn new(n: u64) -> Option<Id> {
        if n >= 1 && n <= MAX_ID {
            Some(Id(n))
        } else {
            None
        }
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// A fresh global-scope ID, drawn uniformly at random from `1..=2^53`.
    pub fn random() -> Id {
        Id(rand::random_range(1..=MAX_ID))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<u64> for Id {
    type Error = u64;
    fn try_from(n: u64) -> Result<Self, u64> {
        Id::new(n).ok_or(n)
    }
}

impl From<Id> for u64 {
    fn from(id: Id) -> u64 {
        id.0
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        Id::new(n).ok_or_else(|| de::Error::custom(format_args!("id {n} out of range 1..=2^53")))
    }
}

/// Session-scope sequential IDs: 1, 2, 3, ... wrapping from 2^53 back to 1.
///
/// Lock-free, so both a session's reader and other sessions' routing paths can draw from it.
#[derive(Debug)]
pub struct SequentialIds(AtomicU64);

impl Default for SequentialIds {
    fn default() -> Self {
        SequentialIds(AtomicU64::new(0))
    }
}

impl SequentialIds {
    /// A generator whose first ID is 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next ID.
    pub fn next(&self) -> Id {
        let prev = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(if n >= MAX_ID { 1 } else { n + 1 })
            })
            .unwrap_or(0);
        Id(if prev >= MAX_ID { 1 } else { prev + 1 })
    }

    /// The last ID handed out (0 if none yet).
    pub fn last(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_checked() {
        assert!(Id::new(0).is_none());
        assert!(Id::new(MAX_ID).is_some());
        assert!(Id::new(MAX_ID + 1).is_none());
        assert!(serde_json::from_str::<Id>("0").is_err());
        assert!(serde_json::from_str::<Id>("-1").is_err());
        assert!(serde_json::from_str::<Id>("1.5").is_err());
        assert_eq!(serde_json::from_str::<Id>("7").unwrap().get(), 7);
    }

    #[test]
    fn random_ids_are_in_range() {
        for _ in 0..1000 {
            let id = Id::random();
            assert!((1..=MAX_ID).contains(&id.get()));
        }
    }

    #[test]
    fn sequential_wraps() {
        let g = SequentialIds(AtomicU64::new(MAX_ID - 1));
        assert_eq!(g.next().get(), MAX_ID);
        assert_eq!(g.next().get(), 1);
        assert_eq!(g.next().get(), 2);
        assert_eq!(SequentialIds::new().next().get(), 1);
    }
}
