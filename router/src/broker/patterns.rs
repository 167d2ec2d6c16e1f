//! The broker's pattern subscriptions: the shared [`crate::patterns::PatternIndex`] over
//! subscriptions, asked for every match (a PUBLISH reaches each matching subscription).

use std::sync::Arc;

use super::Subscription;

/// An immutable index over the prefix and wildcard subscriptions of a realm.
#[derive(Debug, Default)]
pub(super) struct PatternIndex(crate::patterns::PatternIndex<Arc<Subscription>>);

impl PatternIndex {
    /// Builds the index over `subs` (each a prefix or wildcard subscription).
    pub(super) fn build<'a>(subs: impl Iterator<Item = &'a Arc<Subscription>>) -> PatternIndex {
        let items = subs.map(|s| (s.policy, s.uri.as_str(), s.clone()));
        PatternIndex(crate::patterns::PatternIndex::build(items))
    }

    /// Whether there is no pattern subscription at all.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls `f` once for every pattern subscription matching `topic`.
    pub(super) fn for_each_match(&self, topic: &str, f: impl FnMut(&Arc<Subscription>)) {
        self.0.for_each_match(topic, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use wamp_proto::uri::matches;
    use wamp_proto::MatchPolicy;
    use wamp_proto::{Id, Uri};

    fn sub(n: u64, policy: MatchPolicy, uri: &str) -> Arc<Subscription> {
        Arc::new(Subscription {
            id: Id::new(n).unwrap(),
            uri: Uri::new(uri),
            policy,
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
            let mut found = Vec::new();
            idx.for_each_match(topic, |s| found.push(s.id.get()));
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
        idx.for_each_match("a.b", |_| panic!("nothing to match"));
    }
}
