//! A lookup index over prefix and wildcard URI patterns, shared by the dealer (the best
//! match of a CALL) and the broker (every match of a PUBLISH). Immutable: rebuilt on change.
//!
//! - **Prefix** patterns are string prefixes (as `uri::matches`, Crossbar and the spec's
//!   example): they sit in a hash map, and a lookup tries each distinct prefix length that
//!   fits the URI: O(distinct lengths) hash lookups.
//! - **Wildcard** patterns sit in a trie with one literal map and one wildcard slot per level
//!   (nats-server's sublist shape). Walking it depth first, literal child before wildcard
//!   child, the first full match is the spec's best wildcard: the pattern whose first
//!   wildcard (where patterns differ) comes latest.

use std::collections::HashMap;

use wamp_proto::MatchPolicy;

/// An immutable index from prefix and wildcard patterns to values.
#[derive(Debug)]
pub(crate) struct PatternIndex<T> {
    prefix: HashMap<Box<str>, T>,
    /// Distinct prefix lengths in bytes, shortest first.
    prefix_lens: Vec<usize>,
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

impl<T> Default for PatternIndex<T> {
    fn default() -> Self {
        PatternIndex {
            prefix: HashMap::new(),
            prefix_lens: Vec::new(),
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
            match policy {
                MatchPolicy::Exact => continue,
                MatchPolicy::Prefix => {
                    idx.prefix.insert(pattern.into(), value);
                }
                MatchPolicy::Wildcard => {
                    let mut node = &mut idx.wildcard;
                    for c in pattern.split('.') {
                        node = if c.is_empty() {
                            node.wild.get_or_insert_with(Box::default)
                        } else {
                            node.literal.entry(c.into()).or_default()
                        };
                    }
                    node.value = Some(value);
                }
            }
            idx.len += 1;
        }
        idx.prefix_lens = idx.prefix.keys().map(|k| k.len()).collect();
        idx.prefix_lens.sort_unstable();
        idx.prefix_lens.dedup();
        idx
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
        if self.wildcard.literal.is_empty() && self.wildcard.wild.is_none() {
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
#[derive(Debug)]
pub struct BenchIndex(PatternIndex<u64>);

impl BenchIndex {
    /// Indexes `patterns` (prefix or wildcard), with ids 1, 2, ... in order.
    pub fn build(patterns: &[(MatchPolicy, &str)]) -> BenchIndex {
        let items = (1..)
            .zip(patterns)
            .map(|(n, &(policy, uri))| (policy, uri, n));
        BenchIndex(PatternIndex::build(items))
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
