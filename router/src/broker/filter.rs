//! Subscriber black- and white-listing (`exclude*` / `eligible*` PUBLISH options).

use wamp_proto::{Dict, Value};

use crate::peer::SessionHandle;

/// Who may receive a publication, from its PUBLISH options.
///
/// A subscriber receives it only if it is in every `eligible*` list present and in no
/// `exclude*` list present.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Filter {
    exclude: Vec<u64>,
    eligible: Option<Vec<u64>>,
    exclude_authid: Vec<String>,
    eligible_authid: Option<Vec<String>>,
    exclude_authrole: Vec<String>,
    eligible_authrole: Option<Vec<String>>,
}

impl Filter {
    /// Reads the six list options; `Err(key)` names a malformed one.
    pub(crate) fn from_options(o: &Dict) -> Result<Filter, &'static str> {
        Ok(Filter {
            exclude: ids(o, "exclude")?.unwrap_or_default(),
            eligible: ids(o, "eligible")?,
            exclude_authid: strings(o, "exclude_authid")?.unwrap_or_default(),
            eligible_authid: strings(o, "eligible_authid")?,
            exclude_authrole: strings(o, "exclude_authrole")?.unwrap_or_default(),
            eligible_authrole: strings(o, "eligible_authrole")?,
        })
    }

    /// Whether the publication used session-id lists (such events are not kept in history).
    pub(crate) fn has_session_lists(&self) -> bool {
        !self.exclude.is_empty() || self.eligible.is_some()
    }

    /// Whether no list was given: every subscriber may receive the publication.
    pub(crate) fn is_empty(&self) -> bool {
        !self.has_session_lists()
            && self.exclude_authid.is_empty()
            && self.eligible_authid.is_none()
            && self.exclude_authrole.is_empty()
            && self.eligible_authrole.is_none()
    }

    /// Whether `s` may receive the publication.
    pub(crate) fn allows(&self, s: &SessionHandle) -> bool {
        let sh = s.shared();
        self.allows_identity(Some(s.id().get()), &sh.authid, &sh.authrole)
    }

    /// The same check for an identity (`session` is `None` when only authid/authrole count,
    /// as for history queries).
    pub(crate) fn allows_identity(
        &self,
        session: Option<u64>,
        authid: &str,
        authrole: &str,
    ) -> bool {
        if let Some(id) = session {
            if self.exclude.contains(&id)
                || self.eligible.as_ref().is_some_and(|e| !e.contains(&id))
            {
                return false;
            }
        }
        let listed = |list: &[String], v: &str| list.iter().any(|x| x == v);
        !(listed(&self.exclude_authid, authid)
            || listed(&self.exclude_authrole, authrole)
            || self
                .eligible_authid
                .as_ref()
                .is_some_and(|l| !listed(l, authid))
            || self
                .eligible_authrole
                .as_ref()
                .is_some_and(|l| !listed(l, authrole)))
    }
}

fn ids(o: &Dict, key: &'static str) -> Result<Option<Vec<u64>>, &'static str> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_u64().ok_or(key))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(key),
    }
}

fn strings(o: &Dict, key: &'static str) -> Result<Option<Vec<String>>, &'static str> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(key))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::options::dict;

    #[test]
    fn lists_combine() {
        let f = Filter::from_options(&dict([
            (
                "eligible_authrole",
                Value::List(vec!["a".into(), "b".into()]),
            ),
            ("exclude_authid", Value::List(vec!["joe".into()])),
            ("exclude", Value::List(vec![7.into()])),
        ]))
        .unwrap();
        assert!(f.allows_identity(Some(1), "ann", "a"));
        assert!(!f.allows_identity(Some(7), "ann", "a"));
        assert!(!f.allows_identity(Some(1), "joe", "a"));
        assert!(!f.allows_identity(Some(1), "ann", "c"));
        assert!(f.has_session_lists());
        assert!(Filter::from_options(&dict([("eligible", "x".into())])).is_err());
        assert!(
            Filter::from_options(&dict([("eligible", Value::List(vec!["x".into()]))])).is_err()
        );
    }
}
