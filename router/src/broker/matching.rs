//! URI pattern matching for prefix and wildcard subscriptions.

use wamp_proto::MatchPolicy;

/// Whether `topic` matches `pattern` under `policy`.
///
/// Prefix: `topic` starts with `pattern` (a string prefix, as Crossbar and the spec's example
/// do). Wildcard: same number of components, and every non-empty pattern component equal.
pub(crate) fn matches(policy: MatchPolicy, pattern: &str, topic: &str) -> bool {
    match policy {
        MatchPolicy::Exact => pattern == topic,
        MatchPolicy::Prefix => topic.starts_with(pattern),
        MatchPolicy::Wildcard => {
            let mut p = pattern.split('.');
            let mut t = topic.split('.');
            loop {
                match (p.next(), t.next()) {
                    (None, None) => return true,
                    (Some(pc), Some(tc)) if pc.is_empty() || pc == tc => {}
                    _ => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::*;

    #[test]
    fn prefix_and_wildcard() {
        assert!(matches(Prefix, "com.myapp.", "com.myapp.a.b"));
        assert!(matches(Prefix, "com.myapp.topic1", "com.myapp.topic1-sub"));
        assert!(!matches(Prefix, "com.myapp.", "com.other"));
        assert!(matches(Wildcard, "com..update", "com.x.update"));
        assert!(!matches(Wildcard, "com..update", "com.x.y.update"));
        assert!(!matches(Wildcard, "com..update", "com.x.delete"));
        assert!(matches(Wildcard, "..", "a.b.c"));
        assert!(!matches(Wildcard, "..", "a.b"));
    }
}
