//! Names in NATS: the realm token, event subjects for topics and patterns, the stable ids
//! every node computes alike, and KV keys.
//!
//! WAMP URI components never contain `.`, so each becomes one NATS token: as it is when it
//! is plain (printable ASCII other than the wildcards, or UTF-8), else `~` and its bytes in
//! hex. Exact topics and wildcard patterns map one to one; a prefix pattern maps to a
//! superset (`a.b` → `a.>`) that the receiving node filters again.

use std::fmt::Write;

use wamp_proto::MatchPolicy;

/// Longest subject we publish: NATS's control line (`PUB <subject> <size>`) is 4096 bytes.
pub(crate) const MAX_SUBJECT: usize = 3500;

/// A realm's name as one NATS token and KV key part.
pub(crate) fn realm_token(realm: &str) -> String {
    format!(
        "{:016x}",
        crate::stable_ids::stable_hash(&[realm.as_bytes()])
    )
}

fn plain(c: &str) -> bool {
    !c.is_empty()
        && c != "*"
        && c != ">"
        && !c.starts_with('~')
        && c.chars()
            .all(|ch| !ch.is_ascii() || ('!'..='~').contains(&ch))
}

fn push_component(out: &mut String, c: &str) {
    out.push('.');
    if plain(c) {
        out.push_str(c);
    } else {
        out.push('~');
        for b in c.bytes() {
            let _ = write!(out, "{b:02x}");
        }
    }
}

/// `<prefix>.e.<realm token>`: the root of a realm's event subjects.
pub(crate) fn event_root(prefix: &str, realm_token: &str) -> String {
    format!("{prefix}.e.{realm_token}")
}

/// The subject a publication to `topic` goes to (`None`: too long for NATS).
pub(crate) fn topic_subject(root: &str, topic: &str) -> Option<String> {
    let mut s = String::with_capacity(root.len() + topic.len() + 8);
    s.push_str(root);
    for c in topic.split('.') {
        push_component(&mut s, c);
    }
    (s.len() <= MAX_SUBJECT).then_some(s)
}

/// The subject a node subscribes to for a local subscription `(uri, policy)`: every
/// publication the subscription matches is published to a subject it matches.
pub(crate) fn interest_subject(root: &str, uri: &str, policy: MatchPolicy) -> String {
    let mut s = String::with_capacity(root.len() + uri.len() + 8);
    s.push_str(root);
    let parts: Vec<&str> = uri.split('.').collect();
    match policy {
        MatchPolicy::Exact => parts.iter().for_each(|c| push_component(&mut s, c)),
        MatchPolicy::Wildcard => {
            for c in &parts {
                if c.is_empty() {
                    s.push_str(".*");
                } else {
                    push_component(&mut s, c);
                }
            }
        }
        // A string prefix: the last component may be partial, so it is left to `>`.
        MatchPolicy::Prefix => {
            for c in &parts[..parts.len().saturating_sub(1)] {
                push_component(&mut s, c);
            }
            s.push_str(".>");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stable_ids::stable_id;

    const ROOT: &str = "wamp.e.r";

    /// NATS's own matching of a literal subject against a subscription subject.
    fn nats_matches(sub: &str, subject: &str) -> bool {
        let (s, t): (Vec<&str>, Vec<&str>) =
            (sub.split('.').collect(), subject.split('.').collect());
        for (i, tok) in s.iter().enumerate() {
            match *tok {
                ">" => return t.len() > i,
                "*" if i < t.len() => {}
                x if t.get(i) == Some(&x) => {}
                _ => return false,
            }
        }
        s.len() == t.len()
    }

    #[test]
    fn components_map_to_tokens_and_odd_ones_are_escaped() {
        assert_eq!(
            topic_subject(ROOT, "com.app.x").as_deref(),
            Some("wamp.e.r.com.app.x")
        );
        assert_eq!(
            topic_subject(ROOT, "a.*.>").as_deref(),
            Some("wamp.e.r.a.~2a.~3e")
        );
        assert_eq!(
            topic_subject(ROOT, "a.~b").as_deref(),
            Some("wamp.e.r.a.~7e62")
        );
        assert_eq!(
            topic_subject(ROOT, "a.b c").as_deref(),
            Some("wamp.e.r.a.~622063")
        );
        assert_eq!(
            topic_subject(ROOT, "café.ü").as_deref(),
            Some("wamp.e.r.café.ü")
        );
        assert!(topic_subject(ROOT, &"x".repeat(MAX_SUBJECT)).is_none());
    }

    #[test]
    fn each_pattern_subject_matches_every_topic_the_pattern_matches() {
        let topics = [
            "a.b", "a.bc", "a.b.x", "a.x", "a.b.c.d", "b.b", "a.*.c", "a.q.c",
        ];
        let patterns = [
            ("a.b", MatchPolicy::Exact),
            ("a.b", MatchPolicy::Prefix),
            ("a", MatchPolicy::Prefix),
            ("a.b.", MatchPolicy::Prefix),
            ("a..c", MatchPolicy::Wildcard),
            ("..", MatchPolicy::Wildcard),
        ];
        for (uri, policy) in patterns {
            let sub = interest_subject(ROOT, uri, policy);
            for t in topics {
                if wamp_proto::uri::matches(policy, uri, t) {
                    let subject = topic_subject(ROOT, t).unwrap_or_default();
                    assert!(
                        nats_matches(&sub, &subject),
                        "{uri} {policy:?}: {sub} vs {subject}"
                    );
                }
            }
        }
        // Exact and wildcard are exact: nothing else reaches them.
        assert!(!nats_matches(
            &interest_subject(ROOT, "a.b", MatchPolicy::Exact),
            "wamp.e.r.a.bc"
        ));
        assert!(!nats_matches(
            &interest_subject(ROOT, "a..c", MatchPolicy::Wildcard),
            "wamp.e.r.a.b.d"
        ));
    }

    #[test]
    fn stable_ids_are_in_range_and_differ_by_kind_policy_and_attempt() {
        let a = stable_id("realm1", b"s", MatchPolicy::Exact, "a.b", 0);
        assert_eq!(a, stable_id("realm1", b"s", MatchPolicy::Exact, "a.b", 0));
        assert_ne!(a, stable_id("realm1", b"r", MatchPolicy::Exact, "a.b", 0));
        assert_ne!(a, stable_id("realm1", b"s", MatchPolicy::Prefix, "a.b", 0));
        assert_ne!(a, stable_id("realm1", b"s", MatchPolicy::Exact, "a.b", 1));
        assert_ne!(a, stable_id("realm2", b"s", MatchPolicy::Exact, "a.b", 0));
        assert!(a.get() >= 1 && a.get() <= 1 << 53);
        assert_eq!(realm_token("realm1").len(), 16);
    }
}
