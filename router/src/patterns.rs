//! A lookup index over prefix and wildcard URI patterns, shared by the dealer (the best
//! match of a CALL) and the broker (every match of a PUBLISH). Changed in place: inserting
//! or removing a pattern costs O(pattern length), whatever the index holds.
//!
//! - **Prefix** patterns are string prefixes (as `uri::matches`, Crossbar and the spec's
//!   example): they sit in a hash map, and a lookup tries each distinct prefix length that
//!   fits the URI: O(distinct lengths) hash lookups. The lengths are kept sorted, each with
//!   how many prefixes have it.
//! - **Wildcard** patterns sit in a trie with one literal map and one wildcard slot per level
//!   (nats-server's sublist shape). Walking it depth first, literal child before wildcard
//!   child, the first full match is the spec's best wildcard: the pattern whose first
//!   wildcard (where patterns differ) comes latest. Removal prunes the nodes it empties.
//!
//! Depth: insert, remove, [`PatternIndex::for_each_match`] and drop are iterative, so any
//! pattern depth is safe; only [`PatternIndex::best`] recurses, one level per component (the
//! dealer caps wildcard registrations at `MAX_WILDCARD_COMPONENTS`).

use std::collections::HashMap;

use wamp_proto::MatchPolicy;

/// An index from prefix and wildcard patterns to values.
#[derive(Debug)]
pub(crate) struct PatternIndex<T> {
    prefix: HashMap<Box<str>, T>,
    /// Distinct prefix lengths in bytes, shortest first.
    prefix_lens: Vec<usize>,
    /// How many prefixes have each length of `prefix_lens`.
    prefix_counts: Vec<usize>,
    wildcard: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    literal: HashMap<Box<str>, Node<T>>,
    wild: Option<Box<Node<T>>>,
    value: Option<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            wild: None,
            value: None,
        }
    }
}

impl<T> Node<T> {
    fn children(&self) -> usize {
        self.literal.len() + usize::from(self.wild.is_some())
    }

    /// The child for component `c` (`""` is the wildcard slot).
    fn child(&self, c: &str) -> Option<&Node<T>> {
        if c.is_empty() {
            self.wild.as_deref()
        } else {
            self.literal.get(c)
        }
    }

    fn child_mut(&mut self, c: &str) -> Option<&mut Node<T>> {
        if c.is_empty() {
            self.wild.as_deref_mut()
        } else {
            self.literal.get_mut(c)
        }
    }

    /// Moves every child into `out`.
    fn take_children(&mut self, out: &mut Vec<Node<T>>) {
        out.extend(self.literal.drain().map(|(_, n)| n));
        if let Some(w) = self.wild.take() {
            out.push(*w);
        }
    }
}

/// Iterative, so a deep trie cannot overflow the stack: each node is dropped childless.
impl<T> Drop for Node<T> {
    fn drop(&mut self) {
        if self.children() == 0 {
            return;
        }
        let mut stack = Vec::new();
        self.take_children(&mut stack);
        while let Some(mut n) = stack.pop() {
            n.take_children(&mut stack);
        }
    }
}

impl<T> Default for PatternIndex<T> {
    fn default() -> Self {
        PatternIndex {
            prefix: HashMap::new(),
            prefix_lens: Vec::new(),
            prefix_counts: Vec::new(),
            wildcard: Node::default(),
            len: 0,
        }
    }
}

impl<T> PatternIndex<T> {
    /// Indexes `(policy, pattern, value)` triples; exact patterns are skipped.
    pub(crate) fn build<'a>(items: impl IntoIterator<Item = (MatchPolicy, &'a str, T)>) -> Self {
        let mut idx = PatternIndex::default();
        for (policy, pattern, value) in items {
            idx.insert(policy, pattern, value);
        }
        idx
    }

    /// Indexes `value` under `(policy, pattern)`; returns the value it replaces. Exact
    /// patterns are not indexed (the value is dropped).
    pub(crate) fn insert(&mut self, policy: MatchPolicy, pattern: &str, value: T) -> Option<T> {
        let old = match policy {
            MatchPolicy::Exact => return None,
            MatchPolicy::Prefix => match self.prefix.get_mut(pattern) {
                Some(v) => Some(std::mem::replace(v, value)),
                None => {
                    self.prefix.insert(pattern.into(), value);
                    match self.prefix_lens.binary_search(&pattern.len()) {
                        Ok(i) => self.prefix_counts[i] += 1,
                        Err(i) => {
                            self.prefix_lens.insert(i, pattern.len());
                            self.prefix_counts.insert(i, 1);
                        }
                    }
                    None
                }
            },
            MatchPolicy::Wildcard => {
                let mut node = &mut self.wildcard;
                for c in pattern.split('.') {
                    node = if c.is_empty() {
                        node.wild.get_or_insert_with(Box::default)
                    } else {
                        node.literal.entry(c.into()).or_default()
                    };
                }
                node.value.replace(value)
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes and returns the value under `(policy, pattern)`.
    pub(crate) fn remove(&mut self, policy: MatchPolicy, pattern: &str) -> Option<T> {
        let old = match policy {
            MatchPolicy::Exact => None,
            MatchPolicy::Prefix => {
                let old = self.prefix.remove(pattern)?;
                if let Ok(i) = self.prefix_lens.binary_search(&pattern.len()) {
                    self.prefix_counts[i] -= 1;
                    if self.prefix_counts[i] == 0 {
                        self.prefix_lens.remove(i);
                        self.prefix_counts.remove(i);
                    }
                }
                Some(old)
            }
            MatchPolicy::Wildcard => self.remove_wildcard(pattern),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Takes the pattern's value and cuts off the chain of nodes that only led to it.
    fn remove_wildcard(&mut self, pattern: &str) -> Option<T> {
        // First pass, read-only: the deepest node on the path that stays (the root, or one
        // with a value or another child); the edge below it is cut.
        let mut node = &self.wildcard;
        let mut keep = 0;
        for (depth, c) in pattern.split('.').enumerate() {
            if depth > 0 && (node.value.is_some() || node.children() > 1) {
                keep = depth;
            }
            node = node.child(c)?;
        }
        node.value.as_ref()?;
        let mut parts = pattern.split('.');
        if node.children() > 0 {
            // An inner node: only its value goes.
            let mut node = &mut self.wildcard;
            for c in parts {
                node = node.child_mut(c)?;
            }
            return node.value.take();
        }
        let mut node = &mut self.wildcard;
        for c in parts.by_ref().take(keep) {
            node = node.child_mut(c)?;
        }
        let c = parts.next()?;
        let mut cut = if c.is_empty() {
            *node.wild.take()?
        } else {
            node.literal.remove(c)?
        };
        let mut end = &mut cut;
        for c in parts {
            end = end.child_mut(c)?;
        }
        end.value.take()
    }

    /// The value under `(policy, pattern)` itself (no matching).
    pub(crate) fn get(&self, policy: MatchPolicy, pattern: &str) -> Option<&T> {
        match policy {
            MatchPolicy::Exact => None,
            MatchPolicy::Prefix => self.prefix.get(pattern),
            MatchPolicy::Wildcard => pattern
                .split('.')
                .try_fold(&self.wildcard, |n, c| n.child(c))?
                .value
                .as_ref(),
        }
    }

    /// Whether no pattern is indexed.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The best pattern for `uri`: the longest matching prefix, else the best wildcard.
    pub(crate) fn best(&self, uri: &str) -> Option<&T> {
        self.prefix_lens
            .iter()
            .rev()
            .find_map(|&len| uri.get(..len).and_then(|p| self.prefix.get(p)))
            .or_else(|| best_wildcard(&self.wildcard, uri.split('.')))
    }

    /// Calls `f` once for every pattern matching `uri`.
    pub(crate) fn for_each_match(&self, uri: &str, mut f: impl FnMut(&T)) {
        for &len in &self.prefix_lens {
            if len > uri.len() {
                break;
            }
            if let Some(v) = uri.get(..len).and_then(|p| self.prefix.get(p)) {
                f(v);
            }
        }
        if self.wildcard.children() == 0 {
            return;
        }
        // An explicit stack of (node, the URI's remaining components): no allocation per
        // component, and a long URI cannot deepen the call stack.
        let mut stack = vec![(&self.wildcard, uri.split('.'))];
        while let Some((node, mut rest)) = stack.pop() {
            let Some(part) = rest.next() else {
                if let Some(v) = &node.value {
                    f(v);
                }
                continue;
            };
            if let Some(w) = &node.wild {
                stack.push((w, rest.clone()));
            }
            if let Some(l) = node.literal.get(part) {
                stack.push((l, rest));
            }
        }
    }
}

/// The index over plain ids, for `router/benches/patterns.rs` (re-exported as
/// `wamp_router::__bench::PatternIndex`); not an API.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct BenchIndex(PatternIndex<u64>);

impl BenchIndex {
    /// Indexes `patterns` (prefix or wildcard), with ids 1, 2, ... in order.
    pub fn build(patterns: &[(MatchPolicy, &str)]) -> BenchIndex {
        let items = (1..)
            .zip(patterns)
            .map(|(n, &(policy, uri))| (policy, uri, n));
        BenchIndex(PatternIndex::build(items))
    }

    /// Adds (or replaces) one pattern.
    pub fn insert(&mut self, policy: MatchPolicy, pattern: &str, id: u64) -> Option<u64> {
        self.0.insert(policy, pattern, id)
    }

    /// Removes one pattern.
    pub fn remove(&mut self, policy: MatchPolicy, pattern: &str) -> Option<u64> {
        self.0.remove(policy, pattern)
    }

    /// The id of the best pattern for `uri`, as the dealer picks a registration.
    pub fn best(&self, uri: &str) -> Option<u64> {
        self.0.best(uri).copied()
    }

    /// How many patterns match `uri`, as the broker finds subscriptions.
    pub fn count_matches(&self, uri: &str) -> usize {
        let mut n = 0;
        self.0.for_each_match(uri, |_| n += 1);
        n
    }
}

/// Depth first, literal before wildcard: the first match found is the best one. Recursion
/// depth is bounded by the trie's depth (the dealer caps wildcard patterns' components).
fn best_wildcard<'a, T>(node: &'a Node<T>, mut rest: std::str::Split<'_, char>) -> Option<&'a T> {
    let Some(c) = rest.next() else {
        return node.value.as_ref();
    };
    node.literal
        .get(c)
        .and_then(|n| best_wildcard(n, rest.clone()))
        .or_else(|| node.wild.as_deref().and_then(|n| best_wildcard(n, rest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use wamp_proto::uri::matches;
    use MatchPolicy::{Prefix, Wildcard};

    /// Every URI of 1 to 3 components over {a, b, ab, ""} ("" is a wildcard slot).
    fn uris() -> Vec<String> {
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
        all
    }

    fn nodes<T>(n: &Node<T>) -> usize {
        1 + n.literal.values().map(nodes).sum::<usize>() + n.wild.as_deref().map_or(0, nodes)
    }

    /// What the index holds, beyond its answers: the same trie shape, lengths and counts.
    fn shape<T>(idx: &PatternIndex<T>) -> (usize, Vec<usize>, Vec<usize>, usize) {
        let lens = idx.prefix_lens.clone();
        (
            nodes(&idx.wildcard),
            lens,
            idx.prefix_counts.clone(),
            idx.len,
        )
    }

    /// Inserts and removes patterns in a random order; after every step the index answers
    /// as `uri::matches` says and has the shape of one freshly built from what it holds.
    #[test]
    fn insert_and_remove_in_any_order_match_a_fresh_build() {
        let all = uris();
        let mut pats: Vec<(MatchPolicy, &str)> = all.iter().map(|u| (Wildcard, &**u)).collect();
        pats.extend(all.iter().filter(|u| !u.is_empty()).map(|u| (Prefix, &**u)));
        let topics: Vec<&str> = all
            .iter()
            .filter(|t| !t.split('.').any(str::is_empty))
            .map(|t| &**t)
            .collect();
        let mut held: BTreeMap<(u8, &str), u64> = BTreeMap::new();
        let key = |p: MatchPolicy, s| (p as u8, s);
        let mut idx = PatternIndex::default();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for step in 1..=1000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let (policy, pat) = pats[(rng % pats.len() as u64) as usize];
            if let Some(id) = held.remove(&key(policy, pat)) {
                assert_eq!(idx.remove(policy, pat), Some(id), "remove {pat:?}");
                assert_eq!(idx.remove(policy, pat), None);
            } else {
                assert_eq!(idx.insert(policy, pat, step), None, "insert {pat:?}");
                held.insert(key(policy, pat), step);
            }
            let policy_of = |p: u8| if p == Prefix as u8 { Prefix } else { Wildcard };
            let fresh = PatternIndex::build(held.iter().map(|(&(p, s), &v)| (policy_of(p), s, v)));
            assert_eq!(shape(&idx), shape(&fresh), "step {step}");
            for &t in &topics {
                let mut found = Vec::new();
                idx.for_each_match(t, |&v| found.push(v));
                let unique: BTreeSet<u64> = found.iter().copied().collect();
                assert_eq!(unique.len(), found.len(), "duplicates for {t}");
                let want: BTreeSet<u64> = held
                    .iter()
                    .filter(|(&(p, s), _)| matches(policy_of(p), s, t))
                    .map(|(_, &v)| v)
                    .collect();
                assert_eq!(unique, want, "topic {t} at step {step}");
                assert_eq!(idx.best(t), fresh.best(t), "best for {t} at step {step}");
            }
        }
        for ((p, s), v) in std::mem::take(&mut held) {
            let policy = if p == Prefix as u8 { Prefix } else { Wildcard };
            assert_eq!(idx.remove(policy, s), Some(v));
        }
        assert!(idx.is_empty());
        assert_eq!(shape(&idx), (1, vec![], vec![], 0), "nothing left behind");
    }

    #[test]
    fn insert_replaces_and_get_finds_the_pattern_itself() {
        let mut idx = PatternIndex::default();
        assert_eq!(idx.insert(Wildcard, "a..c", 1), None);
        assert_eq!(idx.insert(Wildcard, "a..c", 2), Some(1));
        assert_eq!(idx.insert(Prefix, "a..c", 3), None);
        assert_eq!(idx.insert(MatchPolicy::Exact, "a.b.c", 4), None);
        assert_eq!(idx.get(Wildcard, "a..c"), Some(&2));
        assert_eq!(idx.get(Prefix, "a..c"), Some(&3));
        assert_eq!(idx.get(Wildcard, "a.b.c"), None, "no matching");
        assert_eq!(idx.get(Wildcard, "a."), None, "an inner node has no value");
        assert_eq!(idx.remove(MatchPolicy::Exact, "a.b.c"), None);
        assert_eq!(idx.len, 2);
    }

    /// A pattern of 100,000 components: insert, match, remove and drop use no recursion.
    #[test]
    fn a_very_deep_wildcard_pattern_is_safe() {
        let deep = ".".repeat(100_000);
        let mut idx = PatternIndex::default();
        idx.insert(Wildcard, &deep, 1);
        idx.insert(Wildcard, &format!("{deep}.x"), 2);
        let mut n = 0;
        idx.for_each_match("a.".repeat(100_000).trim_end_matches('.'), |_| n += 1);
        assert_eq!(n, 0, "one component short");
        assert_eq!(idx.remove(Wildcard, &format!("{deep}.x")), Some(2));
        assert_eq!(idx.get(Wildcard, &deep), Some(&1));
        drop(idx);
    }
}
