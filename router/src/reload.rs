//! Configuration reload (SIGHUP, or [`crate::Server::reload`]): realms added and removed,
//! users, roles and permissions replaced, without dropping the sessions they leave alone.
//!
//! What a running router cannot change (listeners, router options, logging, a realm's URI
//! checking, topic policies, meta API switch and limits) keeps its old value, and the report
//! names it: those take a restart.

use std::sync::Arc;

use tracing::{info, warn};
use wamp_proto::uris;

use crate::config::{Config, RealmConfig};
use crate::peer::SessionHandle;
use crate::realm::Realm;
use crate::shared::RouterShared;

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Realms that appeared.
    pub realms_added: Vec<String>,
    /// Realms that went away; their sessions got GOODBYE `wamp.close.close_realm`.
    pub realms_removed: Vec<String>,
    /// Realms whose users, roles or permissions changed.
    pub realms_changed: Vec<String>,
    /// Sessions closed: those of removed realms, and those whose role was removed (GOODBYE
    /// `wamp.close.killed`).
    pub sessions_closed: usize,
    /// What changed but needs a restart (e.g. `transport`, `realm realm1: limits`); the
    /// old values stay in force.
    pub restart_needed: Vec<String>,
}

impl ReloadReport {
    /// Whether the reload changed nothing.
    pub fn is_empty(&self) -> bool {
        *self == ReloadReport::default()
    }
}

/// Applies `new` over `old` (the configuration in force) and returns what changed, with
/// the configuration now in force: `new`, except what needs a restart.
pub(crate) fn apply(shared: &RouterShared, old: &Config, new: &Config) -> (ReloadReport, Config) {
    let mut report = ReloadReport::default();
    let mut effective = old.clone();
    for (key, changed) in [
        ("router", old.router != new.router),
        ("log", old.log != new.log),
        ("transport", old.transports != new.transports),
        ("cluster", old.cluster != new.cluster),
    ] {
        if changed {
            report.restart_needed.push(key.to_owned());
        }
    }
    effective.realms = Vec::with_capacity(new.realms.len());
    for r in &new.realms {
        let Some(before) = old.realms.iter().find(|o| o.name == r.name) else {
            let realm = Arc::new(Realm::new(r, new.cluster.is_some()));
            #[cfg(feature = "cluster-nats")]
            if let Some(c) = shared.cluster.get() {
                c.attach(&realm, r.pubsub_mode);
            }
            shared.change_realms(|m| m.insert(r.name.clone(), realm));
            report.realms_added.push(r.name.clone());
            effective.realms.push(r.clone());
            continue;
        };
        let mut now = before.clone();
        for key in fixed_changes(before, r) {
            report
                .restart_needed
                .push(format!("realm {}: {key}", r.name));
        }
        if !same_auth(before, r) {
            if let Some(realm) = shared.realm(&r.name) {
                realm.replace_auth(r);
                report.sessions_closed += close_removed_roles(&realm);
            }
            report.realms_changed.push(r.name.clone());
            copy_auth(&mut now, r);
        }
        effective.realms.push(now);
    }
    for gone in old
        .realms
        .iter()
        .filter(|o| !new.realms.iter().any(|r| r.name == o.name))
    {
        let Some(realm) = shared.change_realms(|m| m.remove(&gone.name)) else {
            continue;
        };
        let message = format!(
            "realm `{}` was removed from the router's configuration",
            gone.name
        );
        let sessions = sessions_of(&realm, |_| true);
        report.sessions_closed += sessions.len();
        for s in &sessions {
            close(&realm, s, uris::CLOSE_REALM, &message);
        }
        report.realms_removed.push(gone.name.clone());
    }
    (report, effective)
}

/// Closes the sessions of `realm` whose role no longer exists; how many.
fn close_removed_roles(realm: &Realm) -> usize {
    let roles = realm.roles();
    let sessions = sessions_of(realm, |s| !roles.exists(&s.shared().authrole));
    for s in &sessions {
        let message = format!(
            "role `{}` was removed from realm `{}`",
            s.shared().authrole,
            realm.name
        );
        close(realm, s, uris::CLOSE_KILLED, &message);
    }
    sessions.len()
}

fn sessions_of(realm: &Realm, keep: impl Fn(&SessionHandle) -> bool) -> Vec<SessionHandle> {
    realm
        .sessions
        .iter()
        .filter(|s| keep(s.value()))
        .map(|s| s.value().clone())
        .collect()
}

/// GOODBYE `reason` to `s`; its connection then waits for the reply and closes.
fn close(realm: &Realm, s: &SessionHandle, reason: &str, message: &str) {
    let who = s.shared();
    info!(session = %s.id(), realm = %realm.name, authid = %who.authid, authrole = %who.authrole, reason, why = message, "closing session (configuration reload)");
    s.end(reason, Some(message));
}

/// Whether who may join and what they may do are the same.
fn same_auth(a: &RealmConfig, b: &RealmConfig) -> bool {
    a.users == b.users
        && a.roles == b.roles
        && a.anonymous == b.anonymous
        && a.anonymous_role == b.anonymous_role
        && a.authenticator == b.authenticator
}

fn copy_auth(to: &mut RealmConfig, from: &RealmConfig) {
    to.users.clone_from(&from.users);
    to.roles.clone_from(&from.roles);
    to.anonymous = from.anonymous;
    to.anonymous_role.clone_from(&from.anonymous_role);
    to.authenticator.clone_from(&from.authenticator);
}

/// The realm keys that changed but stay as they are until a restart.
fn fixed_changes(a: &RealmConfig, b: &RealmConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if a.uri_check != b.uri_check {
        keys.push("uri_check");
    }
    if a.topics != b.topics {
        keys.push("topic");
    }
    if a.meta_api != b.meta_api {
        keys.push("meta_api");
    }
    if a.limits != b.limits {
        keys.push("limits");
    }
    keys
}

/// Logs a reload's outcome.
pub(crate) fn log(report: &ReloadReport) {
    info!(
        added = ?report.realms_added,
        removed = ?report.realms_removed,
        changed = ?report.realms_changed,
        sessions_closed = report.sessions_closed,
        "configuration reloaded"
    );
    for key in &report.restart_needed {
        warn!(%key, "this change needs a restart; the running router keeps the old value");
    }
}
