//! The features a client announced in `HELLO.Details.roles.<role>.features`.
//!
//! Kept as a bitset on the session handle, so routing decisions towards a peer (send it an
//! INTERRUPT? forward `receive_progress`?) cost one bit test.

use wamp_proto::{Dict, Value};

/// A set of (role, feature) flags a peer announced as `true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PeerFeatures(u32);

impl PeerFeatures {
    pub(crate) const CALLER_PROGRESSIVE_CALL_INVOCATIONS: u32 = 1 << 0;
    pub(crate) const CALLEE_CALL_CANCELING: u32 = 1 << 1;
    pub(crate) const CALLEE_PROGRESSIVE_CALL_RESULTS: u32 = 1 << 2;
    pub(crate) const CALLEE_PROGRESSIVE_CALL_INVOCATIONS: u32 = 1 << 3;
    pub(crate) const CALLEE_REGISTRATION_REVOCATION: u32 = 1 << 4;
    pub(crate) const SUBSCRIBER_SUBSCRIPTION_REVOCATION: u32 = 1 << 5;

    /// (role, feature, bit). `call_cancelling` is a spelling the spec also uses (Δ 18).
    const TABLE: &'static [(&'static str, &'static str, u32)] = &[
        (
            "caller",
            "progressive_call_invocations",
            Self::CALLER_PROGRESSIVE_CALL_INVOCATIONS,
        ),
        ("callee", "call_canceling", Self::CALLEE_CALL_CANCELING),
        ("callee", "call_cancelling", Self::CALLEE_CALL_CANCELING),
        (
            "callee",
            "progressive_call_results",
            Self::CALLEE_PROGRESSIVE_CALL_RESULTS,
        ),
        (
            "callee",
            "progressive_call_invocations",
            Self::CALLEE_PROGRESSIVE_CALL_INVOCATIONS,
        ),
        (
            "callee",
            "registration_revocation",
            Self::CALLEE_REGISTRATION_REVOCATION,
        ),
        (
            "subscriber",
            "subscription_revocation",
            Self::SUBSCRIBER_SUBSCRIPTION_REVOCATION,
        ),
    ];

    /// Reads the flags from HELLO.Details (roles already validated as dicts).
    pub(crate) fn from_hello(details: &Dict) -> PeerFeatures {
        let mut bits = 0;
        let Some(roles) = details.get("roles").and_then(Value::as_dict) else {
            return PeerFeatures(0);
        };
        for (role, spec) in roles {
            let Some(features) = spec
                .as_dict()
                .and_then(|d| d.get("features"))
                .and_then(Value::as_dict)
            else {
                continue;
            };
            for (name, on) in features {
                if on.as_bool() != Some(true) {
                    continue;
                }
                for (r, f, bit) in Self::TABLE {
                    if r == role && f == name {
                        bits |= bit;
                    }
                }
            }
        }
        PeerFeatures(bits)
    }

    /// The flags, to send to another node.
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn bits(self) -> u32 {
        self.0
    }

    /// Flags another node sent (unknown ones dropped).
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn from_bits(bits: u32) -> PeerFeatures {
        PeerFeatures(bits & 0x3f)
    }

    /// Whether every bit of `flags` was announced.
    pub(crate) fn has(self, flags: u32) -> bool {
        self.0 & flags == flags
    }

    /// The callee accepts INTERRUPT (call canceling).
    pub(crate) fn callee_cancels(self) -> bool {
        self.has(Self::CALLEE_CALL_CANCELING)
    }

    /// The callee accepts streamed invocations; `call_canceling` is required too (ADV-04).
    pub(crate) fn callee_progressive_invocations(self) -> bool {
        self.has(Self::CALLEE_PROGRESSIVE_CALL_INVOCATIONS | Self::CALLEE_CALL_CANCELING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::options::dict;

    fn hello(role: &str, features: &[(&str, Value)]) -> Dict {
        let f: Dict = features
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        dict([(
            "roles",
            Value::Dict(dict([(role, Value::Dict(dict([("features", f.into())])))])),
        )])
    }

    #[test]
    fn reads_true_flags_of_the_right_role_only() {
        let f = PeerFeatures::from_hello(&hello(
            "callee",
            &[
                ("call_cancelling", true.into()),
                ("progressive_call_results", true.into()),
                ("registration_revocation", false.into()),
                ("progressive_call_invocations", 1.into()),
            ],
        ));
        assert!(f.callee_cancels());
        assert!(!f.has(PeerFeatures::CALLEE_REGISTRATION_REVOCATION));
        assert!(!f.callee_progressive_invocations());
        let f = PeerFeatures::from_hello(&hello("caller", &[("call_canceling", true.into())]));
        assert!(!f.callee_cancels(), "a caller feature is not a callee one");
        assert_eq!(PeerFeatures::from_hello(&Dict::new()), PeerFeatures(0));
    }
}
