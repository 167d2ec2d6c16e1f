//! Ids every node of a cluster derives alike: the same subscription id and registration id
//! for the same (URI, match policy) of a realm on every node, with no coordination.

use wamp_proto::{Id, MatchPolicy};

/// FNV-1a, 64 bits: stable across processes and builds (every node must agree).
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn policy_tag(p: MatchPolicy) -> &'static [u8] {
    match p {
        MatchPolicy::Exact => b"e",
        MatchPolicy::Prefix => b"p",
        MatchPolicy::Wildcard => b"w",
    }
}

/// The id every node gives the subscription (`kind` b"s") or registration (b"r") of
/// `(uri, policy)` in `realm`: in [1, 2^53], `attempt` 0 first, further attempts after a
/// local collision.
pub(crate) fn stable_id(
    realm: &str,
    kind: &[u8],
    policy: MatchPolicy,
    uri: &str,
    attempt: u32,
) -> Id {
    let h = stable_hash(&[
        realm.as_bytes(),
        kind,
        policy_tag(policy),
        uri.as_bytes(),
        &attempt.to_le_bytes(),
    ]);
    // In range by construction: 1 + (h mod 2^53).
    Id::new(1 + (h & ((1 << 53) - 1))).unwrap_or_else(Id::random)
}
