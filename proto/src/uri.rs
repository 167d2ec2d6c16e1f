//! WAMP URIs and their validation rules (strict and loose, exact and pattern).

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A URI as carried on the wire: cheap to clone and hash.
///
/// Decoding does not validate it (a bad URI earns an ERROR `wamp.error.invalid_uri`, not a
/// protocol violation); call [`Uri::is_valid`] with the realm's rules before routing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uri(Arc<str>);

/// How strictly URI components are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UriCheck {
    /// Components are any non-empty text without `.`, `#` or whitespace.
    #[default]
    Loose,
    /// Components are `[0-9a-z_]+`.
    Strict,
}

/// How a subscription or registration URI matches published topics or called procedures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MatchPolicy {
    /// The URI must be equal.
    #[default]
    Exact,
    /// The URI is a string prefix; its last component may be empty.
    Prefix,
    /// Empty components match any one component.
    Wildcard,
}

impl MatchPolicy {
    /// Parses the `match` option value.
    pub fn parse(s: &str) -> Option<MatchPolicy> {
        match s {
            "exact" => Some(MatchPolicy::Exact),
            "prefix" => Some(MatchPolicy::Prefix),
            "wildcard" => Some(MatchPolicy::Wildcard),
            _ => None,
        }
    }

    /// The `match` option value.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

impl Uri {
    /// Wraps a string without validating it.
    pub fn new(s: &str) -> Uri {
        Uri(Arc::from(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this URI is valid under `check` for use with `policy`.
    ///
    /// Exact URIs (and every PUBLISH topic and CALL procedure) need non-empty components;
    /// prefix patterns may leave the last component empty; wildcard patterns any component.
    pub fn is_valid(&self, check: UriCheck, policy: MatchPolicy) -> bool {
        is_valid_uri(&self.0, check, policy)
    }

    /// Whether the first component is `wamp` (reserved for the protocol's own meta API).
    pub fn is_reserved(&self) -> bool {
        &*self.0 == "wamp" || self.0.starts_with("wamp.")
    }
}

/// Checks `s` against the WAMP URI rules (see [`Uri::is_valid`]).
pub fn is_valid_uri(s: &str, check: UriCheck, policy: MatchPolicy) -> bool {
    if s.is_empty() {
        // Only a wildcard or prefix pattern may be empty as a whole (matches anything).
        return policy != MatchPolicy::Exact;
    }
    let count = s.split('.').count();
    s.split('.').enumerate().all(|(i, c)| {
        if c.is_empty() {
            match policy {
                MatchPolicy::Exact => false,
                MatchPolicy::Prefix => i + 1 == count,
                MatchPolicy::Wildcard => true,
            }
        } else {
            match check {
                UriCheck::Loose => !c.chars().any(|ch| ch == '#' || ch.is_whitespace()),
                UriCheck::Strict => c
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            }
        }
    })
}

/// Whether `topic` (or a called procedure) matches `pattern` under `policy`.
///
/// Exact: equal. Prefix: `topic` starts with `pattern` (a string prefix, as Crossbar and the
/// spec's example do). Wildcard: same number of components, and every non-empty pattern
/// component equal.
#[inline]
pub fn matches(policy: MatchPolicy, pattern: &str, topic: &str) -> bool {
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

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Uri {
    fn from(s: &str) -> Self {
        Uri::new(s)
    }
}

impl From<String> for Uri {
    fn from(s: String) -> Self {
        Uri(Arc::from(s))
    }
}

impl Borrow<str> for Uri {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Uri {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Uri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Uri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Uri(Arc::from(&*s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::*;
    use UriCheck::*;

    #[test]
    fn loose_rules() {
        assert!(is_valid_uri("com.myapp.topic1", Loose, Exact));
        assert!(is_valid_uri("com.MyApp.Ünïcode-ok", Loose, Exact));
        assert!(!is_valid_uri("com..topic", Loose, Exact));
        assert!(!is_valid_uri("com.my app", Loose, Exact));
        assert!(!is_valid_uri("com.a#b", Loose, Exact));
        assert!(!is_valid_uri("", Loose, Exact));
        assert!(!is_valid_uri("com.", Loose, Exact));
        assert!(!is_valid_uri(".com", Loose, Exact));
    }

    #[test]
    fn strict_rules() {
        assert!(is_valid_uri("com.myapp.topic_1", Strict, Exact));
        assert!(!is_valid_uri("com.MyApp", Strict, Exact));
        assert!(!is_valid_uri("com.my-app", Strict, Exact));
    }

    #[test]
    fn empty_components_only_in_patterns() {
        assert!(is_valid_uri("com.myapp.", Loose, Prefix));
        assert!(!is_valid_uri("com..x", Loose, Prefix));
        assert!(is_valid_uri("com..x", Loose, Wildcard));
        assert!(is_valid_uri("..", Strict, Wildcard));
    }

    #[test]
    fn prefix_and_wildcard_matching() {
        assert!(matches(Exact, "com.myapp.a", "com.myapp.a"));
        assert!(!matches(Exact, "com.myapp.a", "com.myapp.ab"));
        assert!(matches(Prefix, "com.myapp.", "com.myapp.a.b"));
        assert!(matches(Prefix, "com.myapp.topic1", "com.myapp.topic1-sub"));
        assert!(!matches(Prefix, "com.myapp.", "com.other"));
        assert!(matches(Wildcard, "com..update", "com.x.update"));
        assert!(!matches(Wildcard, "com..update", "com.x.y.update"));
        assert!(!matches(Wildcard, "com..update", "com.x.delete"));
        assert!(matches(Wildcard, "..", "a.b.c"));
        assert!(!matches(Wildcard, "..", "a.b"));
    }

    #[test]
    fn reserved_prefix() {
        assert!(Uri::new("wamp.session.count").is_reserved());
        assert!(!Uri::new("wampx.a").is_reserved());
    }
}
