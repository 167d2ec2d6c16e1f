//! The broker's pattern subscriptions: the shared [`crate::patterns::PatternIndex`] over
//! subscriptions, asked for every match (a PUBLISH reaches each matching subscription).

use std::sync::Arc;

use wamp_proto::MatchPolicy;

use super::Subscription;

/// The prefix and wildcard subscriptions of a realm, changed in place.
#[derive(Debug, Default)]
pub(super) struct PatternIndex(crate::patterns::PatternIndex<Arc<Subscription>>);

impl PatternIndex {
    /// Builds the index over `subs` (each a prefix or wildcard subscription).
    #[cfg(test)]
    pub(super) fn build<'a>(subs: impl Iterator<Item = &'a Arc<Subscription>>) -> PatternIndex {
        let items = subs.map(|s| (s.policy, s.uri.as_str(), s.clone()));
        PatternIndex(crate::patterns::PatternIndex::build(items))
    }

    /// The subscription for exactly this pattern.
    pub(super) fn get(&self, policy: MatchPolicy, uri: &str) -> Option<&Arc<Subscription>> {
        self.0.get(policy, uri)
    }

    /// Adds `sub` under its own (policy, URI).
    pub(super) fn insert(&mut self, sub: Arc<Subscription>) {
        let key = sub.clone();
        self.0.insert(key.policy, key.uri.as_str(), sub);
    }

    /// Removes the subscription for exactly this pattern.
    pub(super) fn remove(&mut self, policy: MatchPolicy, uri: &str) -> Option<Arc<Subscription>> {
        self.0.remove(policy, uri)
    }

    /// Whether there is no pattern subscription at all.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every pattern subscription matching `topic` to `out`.
    pub(super) fn collect_matches(&self, topic: &str, out: &mut Matches) {
        self.0.for_each_match(topic, |s| out.push(s.clone()));
    }

    /// Calls `f` for every pattern subscription matching `topic`.
    pub(super) fn for_each_match(&self, topic: &str, f: impl FnMut(&Arc<Subscription>)) {
        self.0.for_each_match(topic, f);
    }
}

/// The subscriptions a PUBLISH matched, collected under the index's read lock and
/// delivered after it: the first few inline, no allocation unless there are more.
#[derive(Debug, Default)]
pub(super) struct Matches {
    inline: [Option<Arc<Subscription>>; 4],
    more: Vec<Arc<Subscription>>,
}

impl Matches {
    fn push(&mut self, sub: Arc<Subscription>) {
        match self.inline.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(sub),
            None => self.more.push(sub),
        }
    }

    /// Whether nothing matched.
    pub(super) fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }

    /// The one match, if exactly one subscription matched.
    pub(super) fn only(&self) -> Option<&Arc<Subscription>> {
        match &self.inline {
            [Some(s), None, ..] => Some(s),
            _ => None,
        }
    }

    /// The matches, in the order they were found.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Subscription>> {
        self.inline.iter().flatten().chain(&self.more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use wamp_proto::uri::matches;
    use wamp_proto::{Id, Uri};

    fn sub(n: u64, policy: MatchPolicy, uri: &str) -> Arc<Subscription> {
        Arc::new(Subscription {
            id: Id::new(n).unwrap(),
            uri: Uri::new(uri),
            policy,
            created: std::time::SystemTime::now(),
            members: Default::default(),
        })
    }

    /// Every (pattern, topic) pair over a small alphabet: the index finds exactly the
    /// subscriptions `uri::matches` accepts, each once.
    #[test]
    fn finds_exactly_what_matches_accepts() {
        // Every URI of 1 to 3 components over {a, b, ab, ""} ("" is a wildcard slot).
        let words = ["a", "b", "ab", ""];
        let mut all: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut last = all.clone();
        for _ in 1..3 {
            last = last
                .iter()
                .flat_map(|u| words.iter().map(move |w| format!("{u}.{w}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        let mut subs = Vec::new();
        for (i, u) in all.iter().enumerate() {
            subs.push(sub(2 * i as u64 + 1, MatchPolicy::Wildcard, u));
            if !u.is_empty() {
                subs.push(sub(2 * i as u64 + 2, MatchPolicy::Prefix, u));
            }
        }
        let idx = PatternIndex::build(subs.iter());
        assert!(!idx.is_empty());
        let topics = all.iter().filter(|t| !t.split('.').any(str::is_empty));
        for topic in topics {
            let mut m = Matches::default();
            idx.collect_matches(topic, &mut m);
            let found: Vec<u64> = m.iter().map(|s| s.id.get()).collect();
            let unique: BTreeSet<u64> = found.iter().copied().collect();
            assert_eq!(unique.len(), found.len(), "duplicates for {topic}");
            let want: BTreeSet<u64> = subs
                .iter()
                .filter(|s| matches(s.policy, s.uri.as_str(), topic))
                .map(|s| s.id.get())
                .collect();
            assert_eq!(unique, want, "topic {topic}");
        }
    }

    #[test]
    fn an_empty_index_matches_nothing() {
        let idx = PatternIndex::build(std::iter::empty());
        assert!(idx.is_empty());
        let mut m = Matches::default();
        idx.collect_matches("a.b", &mut m);
        assert!(m.is_empty());
        assert_eq!(m.iter().count(), 0);
    }
}
