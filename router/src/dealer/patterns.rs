//! The dealer's pattern registrations: the shared [`crate::patterns::PatternIndex`] over
//! registrations, asked for the best match (longest prefix, then the spec's best wildcard).

use std::sync::Arc;

use wamp_proto::{MatchPolicy, Uri};

use super::Registration;

/// The most components a wildcard pattern may have: the best-match walk recurses, one level
/// per component.
pub(crate) const MAX_WILDCARD_COMPONENTS: usize = 64;

/// The prefix and wildcard registrations, changed in place.
#[derive(Debug, Default)]
pub(super) struct PatternIndex(crate::patterns::PatternIndex<Arc<Registration>>);

impl PatternIndex {
    /// Builds the index over `regs` (each a prefix or wildcard registration).
    #[cfg(test)]
    pub(super) fn build<'a>(regs: impl Iterator<Item = &'a Arc<Registration>>) -> PatternIndex {
        let items = regs.map(|r| (r.policy, r.uri.as_str(), r.clone()));
        PatternIndex(crate::patterns::PatternIndex::build(items))
    }

    /// Adds `reg` under its own (policy, URI), replacing any registration there.
    pub(super) fn insert(&mut self, reg: Arc<Registration>) {
        let key = reg.clone();
        self.0.insert(key.policy, key.uri.as_str(), reg);
    }

    /// Removes the registration for exactly this pattern.
    pub(super) fn remove(&mut self, policy: MatchPolicy, uri: &Uri) -> Option<Arc<Registration>> {
        self.0.remove(policy, uri.as_str())
    }

    /// The best pattern registration for a call to `procedure`: longest prefix, then best
    /// wildcard.
    pub(super) fn lookup(&self, procedure: &Uri) -> Option<Arc<Registration>> {
        self.0.best(procedure.as_str()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dealer::InvokePolicy;
    use wamp_proto::Id;

    fn reg(n: u64, policy: MatchPolicy, uri: &str) -> Arc<Registration> {
        Arc::new(Registration::new(
            Id::new(n).unwrap(),
            Uri::new(uri),
            policy,
            InvokePolicy::Single,
        ))
    }

    fn best(regs: &[Arc<Registration>], call: &str) -> Option<u64> {
        PatternIndex::build(regs.iter())
            .lookup(&Uri::new(call))
            .map(|r| r.id.get())
    }

    #[test]
    fn spec_wildcard_precedence_examples() {
        use MatchPolicy::Wildcard;
        let regs = [
            reg(1, Wildcard, "a1.b2..d4.e5"),
            reg(2, Wildcard, "a1.b2.c33..e5"),
        ];
        assert_eq!(best(&regs, "a1.b2.c33.d4.e5"), Some(2));
        assert_eq!(best(&regs, "a1.b2.c44.d4.e5"), Some(1));
        let regs = [
            reg(1, Wildcard, "a1.b2..d4.e5..g7"),
            reg(2, Wildcard, "a1.b2..d4..f6.g7"),
        ];
        assert_eq!(best(&regs, "a1.b2.c88.d4.e5.f6.g7"), Some(1));
        assert_eq!(best(&regs, "a1.b2.c88.d4.e6.f6.g7"), Some(2));
        assert_eq!(best(&regs, "a1.b2.c88.d4.e5.f6"), None, "component count");
    }

    #[test]
    fn longest_string_prefix_then_wildcard() {
        use MatchPolicy::{Prefix, Wildcard};
        let regs = [
            reg(1, Prefix, "com.app."),
            reg(2, Prefix, "com.app.obj"),
            reg(3, Wildcard, "com..obj"),
            reg(4, Prefix, ""),
            reg(5, Wildcard, "."),
        ];
        assert_eq!(best(&regs, "com.app.obj-sub.x"), Some(2));
        assert_eq!(best(&regs, "com.app.other"), Some(1));
        assert_eq!(
            best(&regs, "org.x"),
            Some(4),
            "the empty prefix matches all"
        );
        assert_eq!(
            best(&regs[2..4], "com.x.obj"),
            Some(4),
            "prefix before wildcard"
        );
        assert_eq!(
            best(&[regs[2].clone(), regs[4].clone()], "com.x.obj"),
            Some(3)
        );
        assert_eq!(best(&[regs[4].clone()], "a.b"), Some(5));
        assert_eq!(best(&[regs[4].clone()], "a.b.c"), None);
        assert_eq!(
            best(&[reg(6, Prefix, "com.a")], "com.äpp"),
            None,
            "no panic"
        );
    }

    #[test]
    fn removing_the_best_falls_back_to_the_next() {
        use MatchPolicy::{Prefix, Wildcard};
        let regs = [
            reg(1, Prefix, "com.app."),
            reg(2, Prefix, "com.app.obj"),
            reg(3, Wildcard, "com..obj"),
        ];
        let mut idx = PatternIndex::default();
        for r in &regs {
            idx.insert(r.clone());
        }
        let best = |idx: &PatternIndex, call| idx.lookup(&Uri::new(call)).map(|r| r.id.get());
        assert_eq!(best(&idx, "com.app.obj"), Some(2));
        assert_eq!(
            idx.remove(Prefix, &regs[1].uri).map(|r| r.id.get()),
            Some(2)
        );
        assert_eq!(best(&idx, "com.app.obj"), Some(1));
        assert!(idx.remove(Prefix, &regs[1].uri).is_none());
        idx.remove(Prefix, &regs[0].uri);
        assert_eq!(best(&idx, "com.app.obj"), Some(3));
        idx.remove(Wildcard, &regs[2].uri);
        assert_eq!(best(&idx, "com.app.obj"), None);
    }
}
