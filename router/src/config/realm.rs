//! `[[realm]]`: name, URI checking, topic policies, and who may join and do what: users
//! (`[[realm.user]]`, each with its credentials and role) and roles (`[[realm.role]]`, each a
//! list of `[[realm.role.permission]]`).

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;
use wamp_proto::{MatchPolicy, UriCheck};

use super::{ConfigError, MatchName, TopicPolicyConfig};

/// One realm (`[[realm]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmConfig {
    /// The realm name (a URI).
    pub name: String,
    /// URI checking for topics and procedures: `loose` (default) or `strict`.
    #[serde(default)]
    pub uri_check: UriCheck,
    /// Whether clients may join with `anonymous` authentication. Default: true for a realm
    /// without users, false once it has any.
    #[serde(default)]
    pub anonymous: Option<bool>,
    /// The role of anonymous sessions (default `anonymous`).
    #[serde(default = "anonymous_role")]
    pub anonymous_role: String,
    /// Users and their credentials.
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    /// A WAMP procedure that decides `ticket` logins for authids that are not `[[realm.user]]`s.
    #[serde(default)]
    pub authenticator: Option<AuthenticatorConfig>,
    /// Roles and their permissions. A realm without roles lets every session do everything;
    /// with roles, everything not permitted is denied.
    #[serde(default, rename = "role")]
    pub roles: Vec<RoleConfig>,
    /// Per-topic retention and history rules; the first matching entry applies.
    #[serde(default, rename = "topic")]
    pub topics: Vec<TopicPolicyConfig>,
    /// The meta API (`wamp.session.*`, `wamp.registration.*`, `wamp.subscription.*` and
    /// their events); default on. With roles, it is authorized like any URI.
    #[serde(default = "yes")]
    pub meta_api: bool,
    /// While a subscriber's outbound queue is over its soft bound, stop reading from the
    /// publishers that feed it (until it drains, or is closed for making no progress):
    /// completeness over the publishers' speed. Default false: publishers are never slowed.
    #[serde(default)]
    pub pause_publishers: bool,
    /// Per-realm and per-session limits; each, when hit, is refused with
    /// `wamp.error.limit_exceeded` and a message naming it.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// With `[cluster]`: how events reach the other nodes (`interest`, the default, or
    /// `broadcast`).
    #[serde(default)]
    pub pubsub_mode: crate::config::PubSubMode,
}

/// `[realm.limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sessions joined to this realm at once (ABORT on HELLO).
    pub max_sessions: usize,
    /// Subscriptions one session holds (ERROR on SUBSCRIBE).
    pub max_subscriptions_per_session: usize,
    /// Registrations one session holds (ERROR on REGISTER).
    pub max_registrations_per_session: usize,
    /// Calls one caller has in flight (ERROR on CALL).
    pub max_calls_per_caller: usize,
    /// Invocations one callee has unanswered (the caller gets ERROR).
    pub max_invocations_per_callee: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_sessions: 100_000,
            max_subscriptions_per_session: 100_000,
            max_registrations_per_session: 100_000,
            max_calls_per_caller: 10_000,
            max_invocations_per_callee: 10_000,
        }
    }
}

fn yes() -> bool {
    true
}

fn anonymous_role() -> String {
    "anonymous".to_owned()
}

impl RealmConfig {
    /// Whether anonymous joins are allowed.
    pub fn allows_anonymous(&self) -> bool {
        self.anonymous
            .unwrap_or(self.users.is_empty() && self.authenticator.is_none())
    }
}

/// A secret in the configuration: inline text, an environment variable, or a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// The secret itself (a ticket may also be an argon2id or PBKDF2 PHC hash).
    Inline(String),
    /// `{ env = "NAME" }`: read from this environment variable at startup.
    Env {
        /// The variable's name.
        env: String,
    },
    /// `{ file = "/run/secrets/x" }`: read from this file at startup (one trailing newline
    /// is dropped).
    File {
        /// The file's path.
        file: PathBuf,
    },
}

impl Secret {
    /// The secret's text (resolved at load time, so always inline after a successful load).
    pub fn text(&self) -> &str {
        match self {
            Secret::Inline(s) => s,
            Secret::Env { .. } | Secret::File { .. } => "",
        }
    }

    fn resolve(&mut self) -> Result<(), String> {
        let text = match self {
            Secret::Inline(_) => return Ok(()),
            Secret::Env { env } => std::env::var(&*env)
                .map_err(|_| format!("environment variable `{env}` is not set"))?,
            Secret::File { file } => {
                let mut t = std::fs::read_to_string(&*file)
                    .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
                if t.ends_with('\n') {
                    t.pop();
                    if t.ends_with('\r') {
                        t.pop();
                    }
                }
                t
            }
        };
        if text.is_empty() {
            return Err("the secret is empty".into());
        }
        *self = Secret::Inline(text);
        Ok(())
    }
}

/// One user (`[[realm.user]]`): an authid, its role, and the credentials of each method it
/// may use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The authid clients send in HELLO.
    pub authid: String,
    /// The role the session gets.
    pub role: String,
    /// `ticket`: the ticket, plain or as an argon2id / PBKDF2 PHC hash.
    #[serde(default)]
    pub ticket: Option<Secret>,
    /// `wampcra`: the secret, optionally salted.
    #[serde(default)]
    pub wampcra: Option<WampCraConfig>,
    /// `cryptosign`: the Ed25519 public keys (64 hex characters each) this user signs with.
    #[serde(default)]
    pub cryptosign_keys: Vec<String>,
    /// `tls`: a verified TLS client certificate whose subject CN is this authid logs in.
    #[serde(default)]
    pub tls: bool,
}

/// WAMP-CRA credentials: the secret and, for the salted form, salt, iterations and key length.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraConfig {
    /// The shared secret.
    pub secret: Secret,
    /// The salt (all three of salt, iterations and keylen, or none).
    #[serde(default)]
    pub salt: Option<String>,
    /// PBKDF2 iterations.
    #[serde(default)]
    pub iterations: Option<u32>,
    /// The derived key's length in bytes.
    #[serde(default)]
    pub keylen: Option<u32>,
}

/// A dynamic authenticator (`[realm.authenticator]`): a procedure, registered by a session
/// of role `trusted`, called as `procedure(realm, authid, details)` with `details.ticket`; it
/// answers a role, or `{role, authid?, extra?}`, or an ERROR that refuses the session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticatorConfig {
    /// The procedure's URI.
    pub procedure: String,
    /// How long a login waits for its answer (default 5000 ms); then it is refused.
    #[serde(default = "authenticator_timeout")]
    pub timeout_ms: u64,
}

fn authenticator_timeout() -> u64 {
    5000
}

/// One role (`[[realm.role]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The role name (`authrole`).
    pub name: String,
    /// What the role may do; the most specific matching rule wins, the order does not matter.
    #[serde(default, rename = "permission")]
    pub permissions: Vec<PermissionConfig>,
}

/// One rule (`[[realm.role.permission]]`): the actions allowed on matching URIs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    /// The URI or pattern.
    pub uri: String,
    /// How `uri` matches: `exact` (default), `prefix` or `wildcard`.
    #[serde(default, rename = "match")]
    pub match_policy: MatchName,
    /// CALL allowed.
    #[serde(default)]
    pub call: bool,
    /// REGISTER allowed.
    #[serde(default)]
    pub register: bool,
    /// PUBLISH allowed.
    #[serde(default)]
    pub publish: bool,
    /// SUBSCRIBE allowed.
    #[serde(default)]
    pub subscribe: bool,
    /// Callees learn the caller's identity even when it did not ask for disclosure.
    #[serde(default)]
    pub disclose_caller: bool,
    /// Subscribers learn the publisher's identity even when it did not ask for disclosure.
    #[serde(default)]
    pub disclose_publisher: bool,
}

impl PermissionConfig {
    /// The match policy.
    pub fn match_policy(&self) -> MatchPolicy {
        self.match_policy.0
    }
}

/// Roles every realm has: `trusted` may do everything.
pub(crate) const TRUSTED_ROLE: &str = "trusted";

/// Checks realm `i`'s users and roles and resolves their secrets.
pub(super) fn check(
    r: &mut RealmConfig,
    i: usize,
    err: &dyn Fn(String, &str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut roles = HashSet::new();
    let quoted = |s: &str| format!("\"{s}\"");
    for (k, role) in r.roles.iter().enumerate() {
        if !roles.insert(role.name.as_str()) {
            return Err(err(
                format!("realm[{i}].role[{k}].name"),
                &quoted(&role.name),
                format!("role `{}` is defined twice", role.name),
            ));
        }
        for (n, p) in role.permissions.iter().enumerate() {
            let match_all = p.uri.is_empty() && p.match_policy() == MatchPolicy::Prefix;
            if !match_all
                && !wamp_proto::uri::is_valid_uri(&p.uri, UriCheck::Loose, p.match_policy())
            {
                return Err(err(
                    format!("realm[{i}].role[{k}].permission[{n}].uri"),
                    &quoted(&p.uri),
                    format!(
                        "`{}` is not a valid {} URI",
                        p.uri,
                        p.match_policy().as_str()
                    ),
                ));
            }
        }
    }
    let known = |name: &str| name == TRUSTED_ROLE || roles.is_empty() || roles.contains(name);
    if r.allows_anonymous() && !known(&r.anonymous_role) {
        return Err(err(
            format!("realm[{i}].anonymous_role"),
            "anonymous_role",
            format!("role `{}` is not defined in this realm", r.anonymous_role),
        ));
    }
    if let Some(a) = &r.authenticator {
        if !wamp_proto::uri::is_valid_uri(&a.procedure, UriCheck::Loose, MatchPolicy::Exact) {
            return Err(err(
                format!("realm[{i}].authenticator.procedure"),
                &quoted(&a.procedure),
                format!("`{}` is not a valid procedure URI", a.procedure),
            ));
        }
        if a.timeout_ms == 0 {
            return Err(err(
                format!("realm[{i}].authenticator.timeout_ms"),
                "timeout_ms",
                "must be at least 1".into(),
            ));
        }
    }
    let mut authids = HashSet::new();
    for (k, u) in r.users.iter_mut().enumerate() {
        let key = |field: &str| format!("realm[{i}].user[{k}].{field}");
        let at = quoted(&u.authid);
        if !authids.insert(u.authid.clone()) {
            return Err(err(
                key("authid"),
                &at,
                format!("user `{}` is defined twice", u.authid),
            ));
        }
        if !known(&u.role) {
            return Err(err(
                key("role"),
                &at,
                format!("role `{}` is not defined in this realm", u.role),
            ));
        }
        if u.ticket.is_none() && u.wampcra.is_none() && u.cryptosign_keys.is_empty() && !u.tls {
            return Err(err(
                key("authid"),
                &at,
                "give the user at least one credential: ticket, wampcra, cryptosign_keys or tls"
                    .into(),
            ));
        }
        if let Some(t) = &mut u.ticket {
            t.resolve().map_err(|m| err(key("ticket"), &at, m))?;
            wamp_auth::ticket::validate(t.text())
                .map_err(|e| err(key("ticket"), &at, format!("not a usable ticket hash: {e}")))?;
        }
        if let Some(c) = &mut u.wampcra {
            c.secret
                .resolve()
                .map_err(|m| err(key("wampcra.secret"), &at, m))?;
            let salted = [c.salt.is_some(), c.iterations.is_some(), c.keylen.is_some()];
            if salted.iter().any(|s| *s) && !salted.iter().all(|s| *s) {
                return Err(err(
                    key("wampcra"),
                    &at,
                    "a salted secret needs all of salt, iterations and keylen".into(),
                ));
            }
            if c.iterations == Some(0) || c.keylen.is_some_and(|l| l == 0 || l > 1024) {
                return Err(err(
                    key("wampcra"),
                    &at,
                    "iterations must be at least 1 and keylen 1 to 1024".into(),
                ));
            }
        }
        for (n, pk) in u.cryptosign_keys.iter().enumerate() {
            if pk.len() != 64 || !pk.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(
                    key(&format!("cryptosign_keys[{n}]")),
                    &at,
                    "an Ed25519 public key is 64 hex characters".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn load(realm: &str) -> Result<Config, ConfigError> {
        let text =
            format!("[[transport]]\nbind = \"127.0.0.1:0\"\n[[realm]]\nname = \"r\"\n{realm}");
        Config::from_toml(&text, "f.toml")
    }

    #[test]
    fn users_close_anonymous_access_unless_asked() {
        let c = load("").unwrap();
        assert!(c.realms[0].allows_anonymous());
        let c = load("[[realm.user]]\nauthid = \"joe\"\nrole = \"x\"\nticket = \"t\"\n").unwrap();
        assert!(!c.realms[0].allows_anonymous());
        let c = load(
            "anonymous = true\n[[realm.user]]\nauthid = \"joe\"\nrole = \"x\"\nticket = \"t\"\n",
        )
        .unwrap();
        assert!(c.realms[0].allows_anonymous());
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        std::env::set_var("WAMP_ROUTER_TEST_TICKET", "from-env");
        let dir = std::env::temp_dir().join(format!("wamp-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = load(&format!(
            "[[realm.user]]\nauthid = \"a\"\nrole = \"x\"\nticket = {{ env = \"WAMP_ROUTER_TEST_TICKET\" }}\n\
             [[realm.user]]\nauthid = \"b\"\nrole = \"x\"\nwampcra = {{ secret = {{ file = {:?} }} }}\n",
            file.display().to_string()
        ))
        .unwrap();
        let users = &c.realms[0].users;
        assert_eq!(users[0].ticket.as_ref().unwrap().text(), "from-env");
        assert_eq!(
            users[1].wampcra.as_ref().unwrap().secret.text(),
            "from-file"
        );
        let e = load("[[realm.user]]\nauthid = \"a\"\nrole = \"x\"\nticket = { env = \"WAMP_ROUTER_NO_SUCH_VAR\" }\n")
            .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.line),
            ("realm[0].user[0].ticket", 6),
            "{e}"
        );
        assert!(e.message.contains("WAMP_ROUTER_NO_SUCH_VAR"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn roles_and_credentials_are_checked() {
        let roles = "[[realm.role]]\nname = \"app\"\n";
        let e = load(&format!(
            "{roles}[[realm.user]]\nauthid = \"a\"\nrole = \"nope\"\nticket = \"t\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "realm[0].user[0].role", "{e}");
        let e = load(&format!("anonymous = true\n{roles}")).unwrap_err();
        assert_eq!(e.key, "realm[0].anonymous_role", "{e}");
        let e = load("[[realm.user]]\nauthid = \"a\"\nrole = \"x\"\n").unwrap_err();
        assert!(e.message.contains("credential"), "{e}");
        let e = load("[[realm.user]]\nauthid = \"a\"\nrole = \"x\"\nwampcra = { secret = \"s\", salt = \"x\" }\n")
            .unwrap_err();
        assert!(e.message.contains("salt, iterations and keylen"), "{e}");
        let e = load("[[realm.user]]\nauthid = \"a\"\nrole = \"x\"\ncryptosign_keys = [\"abc\"]\n")
            .unwrap_err();
        assert_eq!(e.key, "realm[0].user[0].cryptosign_keys[0]", "{e}");
    }
}
