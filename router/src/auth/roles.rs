//! Authorization: each role's permissions compiled into an index, asked for every CALL,
//! REGISTER, PUBLISH and SUBSCRIBE. The most specific rule wins (exact, then the longest
//! prefix, then the best wildcard), whatever their order in the file; no rule: denied.

use std::collections::HashMap;
use std::sync::Arc;

use wamp_proto::MatchPolicy;

use crate::config::{RealmConfig, RoleConfig};
use crate::patterns::PatternIndex;

/// What a session wants to do with a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

impl Action {
    /// The action's name in logs and refusals.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Call => "call",
            Action::Register => "register",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Call => 1,
            Action::Register => 2,
            Action::Publish => 4,
            Action::Subscribe => 8,
        }
    }
}

/// What one rule grants: the allowed actions and the disclosure it forces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Grant(u8);

const DISCLOSE_CALLER: u8 = 16;
const DISCLOSE_PUBLISHER: u8 = 32;

impl Grant {
    /// Every action, no forced disclosure.
    pub(crate) const ALL: Grant = Grant(1 | 2 | 4 | 8);

    /// Whether `action` is allowed.
    pub(crate) fn allows(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Callees see the caller's identity.
    pub(crate) fn disclose_caller(self) -> bool {
        self.0 & DISCLOSE_CALLER != 0
    }

    /// Subscribers see the publisher's identity.
    pub(crate) fn disclose_publisher(self) -> bool {
        self.0 & DISCLOSE_PUBLISHER != 0
    }

    fn from_config(p: &crate::config::PermissionConfig) -> Grant {
        let flags = [
            (p.call, Action::Call.bit()),
            (p.register, Action::Register.bit()),
            (p.publish, Action::Publish.bit()),
            (p.subscribe, Action::Subscribe.bit()),
            (p.disclose_caller, DISCLOSE_CALLER),
            (p.disclose_publisher, DISCLOSE_PUBLISHER),
        ];
        Grant(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .fold(0, |g, (_, b)| g | b),
        )
    }
}

/// One role's compiled permissions.
#[derive(Debug)]
pub(crate) struct Role {
    /// The epoch of the realm's roles this was compiled in (see `Realm::roles_epoch`).
    epoch: u32,
    /// A role that may do everything (the realm has no roles, or the built-in `trusted`).
    everything: Option<Grant>,
    exact: HashMap<Box<str>, Grant>,
    patterns: PatternIndex<Grant>,
}

impl Role {
    fn everything(grant: Grant, epoch: u32) -> Role {
        Role {
            epoch,
            everything: Some(grant),
            exact: HashMap::new(),
            patterns: PatternIndex::default(),
        }
    }

    fn compile(config: &RoleConfig, epoch: u32) -> Role {
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for p in &config.permissions {
            let grant = Grant::from_config(p);
            match p.match_policy() {
                MatchPolicy::Exact => {
                    exact.insert(p.uri.as_str().into(), grant);
                }
                policy => patterns.push((policy, p.uri.as_str(), grant)),
            }
        }
        Role {
            epoch,
            everything: None,
            exact,
            patterns: PatternIndex::build(patterns),
        }
    }

    /// The epoch of the roles this role belongs to.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// What this role may do with `uri` (nothing if no rule matches).
    pub(crate) fn grant(&self, uri: &str) -> Grant {
        if let Some(g) = self.everything {
            return g;
        }
        if let Some(g) = self.exact.get(uri) {
            return *g;
        }
        self.patterns.best(uri).copied().unwrap_or_default()
    }
}

/// A realm's roles by name.
#[derive(Debug)]
pub(crate) struct Roles {
    by_name: HashMap<Box<str>, Arc<Role>>,
    /// No roles configured: every role may do everything.
    open: bool,
    /// What a role nobody defined gets (everything in an open realm, else nothing), shared
    /// by all its sessions: one allocation per realm, not per session.
    undefined: Arc<Role>,
}

impl Roles {
    /// The realm's roles, compiled; `epoch` tells them from those of other reloads.
    pub(crate) fn new(realm: &RealmConfig, epoch: u32) -> Roles {
        let mut by_name: HashMap<Box<str>, Arc<Role>> = realm
            .roles
            .iter()
            .map(|r| (r.name.as_str().into(), Arc::new(Role::compile(r, epoch))))
            .collect();
        // Built in: `trusted` may do everything, and its calls and publications are disclosed.
        by_name.insert(
            crate::config::TRUSTED_ROLE.into(),
            Arc::new(Role::everything(
                Grant(Grant::ALL.0 | DISCLOSE_CALLER | DISCLOSE_PUBLISHER),
                epoch,
            )),
        );
        let open = realm.roles.is_empty();
        let other = if open { Grant::ALL } else { Grant::default() };
        Roles {
            by_name,
            open,
            undefined: Arc::new(Role::everything(other, epoch)),
        }
    }

    /// Whether sessions may have role `name` here (any role, in a realm without roles).
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.open || self.by_name.contains_key(name)
    }

    /// The compiled role `name` (a role nobody defined may do nothing).
    pub(crate) fn role(&self, name: &str) -> Arc<Role> {
        match self.by_name.get(name) {
            Some(r) => r.clone(),
            None => self.undefined.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn roles(rules: &str) -> Roles {
        let text = format!(
            "[[transport]]\nbind = \"127.0.0.1:0\"\n[[realm]]\nname = \"r\"\nanonymous = false\n\
             [[realm.role]]\nname = \"app\"\n{rules}"
        );
        let c = Config::from_toml(&text, "t").unwrap();
        Roles::new(&c.realms[0], 0)
    }

    #[test]
    fn the_most_specific_rule_wins_whatever_the_order() {
        let r = roles(
            "[[realm.role.permission]]\nuri = \"com.\"\nmatch = \"prefix\"\ncall = true\n\
             [[realm.role.permission]]\nuri = \"com..admin\"\nmatch = \"wildcard\"\nsubscribe = true\n\
             [[realm.role.permission]]\nuri = \"com.app.secret\"\n\
             [[realm.role.permission]]\nuri = \"com.app.\"\nmatch = \"prefix\"\ncall = true\npublish = true\ndisclose_caller = true\n",
        );
        let app = r.role("app");
        assert!(app.grant("com.x").allows(Action::Call));
        assert!(!app.grant("com.x").allows(Action::Publish));
        let g = app.grant("com.app.add");
        assert!(
            g.allows(Action::Publish) && g.disclose_caller(),
            "longest prefix"
        );
        assert_eq!(
            app.grant("com.app.secret"),
            Grant::default(),
            "exact beats prefix"
        );
        assert!(app.grant("org.x") == Grant::default(), "default deny");
        assert!(!app.grant("org.x.admin").allows(Action::Subscribe));
        assert!(r.role("nobody").grant("com.x") == Grant::default());
        assert!(r.role("trusted").grant("any.thing").disclose_publisher());
    }

    #[test]
    fn a_realm_without_roles_allows_everything() {
        let c = Config::embedded();
        let r = Roles::new(&c.realms[0], 0);
        assert_eq!(r.role("anonymous").grant("com.x"), Grant::ALL);
    }
}
