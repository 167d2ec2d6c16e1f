//! The TOML configuration: schema, defaults, and validation that names file, key and line.
//!
//! `config/router.toml` documents every option; [`DEFAULT_CONFIG`] is embedded in the binary.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;
use wamp_proto::{MatchPolicy, Serializer, UriCheck};

mod cluster;
mod log;
mod realm;
mod transport;
mod transport_file;

pub use cluster::{ClusterConfig, NatsUrls, PubSubMode};
pub use log::{LogFormat, LogOptions};
pub(crate) use realm::TRUSTED_ROLE;
pub use realm::{
    AuthenticatorConfig, LimitsConfig, PermissionConfig, RealmConfig, RoleConfig, Secret,
    UserConfig, WampCraConfig,
};
pub use transport::{
    AuthMethod, ClientCertificates, Listen, LongPollConfig, RawSocketTransport, TlsConfig,
    TransportConfig, WebSocketTransport,
};
use transport_file::{Locator, TransportFile};

/// The configuration used when no file is given: WebSocket on 127.0.0.1:8080 path `/ws`,
/// json + msgpack, realm `realm1` with anonymous access.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// A configuration error, naming the file, the key and the line.
#[derive(Debug, Error)]
#[error("{file}:{line}: key `{key}`: {message}")]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// The line (1-based), or 0 if unknown.
    pub line: usize,
    /// The dotted path of the offending key, e.g. `transport[0].serializers[1]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The whole router configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Router-wide limits and timeouts.
    pub router: RouterOptions,
    /// Log format and level (`[log]`).
    pub log: LogOptions,
    /// The listening transports.
    pub transports: Vec<TransportConfig>,
    /// The realms clients may join.
    pub realms: Vec<RealmConfig>,
    /// Several router processes as one (`[cluster]`); `None`: a single node.
    pub cluster: Option<ClusterConfig>,
}

/// The file as written: transports are checked against their `type` after parsing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    router: RouterOptions,
    #[serde(default)]
    log: LogOptions,
    #[serde(default, rename = "transport")]
    transports: Vec<TransportFile>,
    #[serde(default, rename = "realm")]
    realms: Vec<RealmConfig>,
    #[serde(default)]
    cluster: Option<ClusterConfig>,
}

/// Router-wide options (`[router]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterOptions {
    /// What a session's outbound queue may hold (`[router.outbound]`).
    pub outbound: OutboundConfig,
    /// Replaced by `[router.outbound]`; kept only to say so.
    #[doc(hidden)]
    pub outbound_queue: Option<usize>,
    /// Milliseconds to wait for a client's GOODBYE reply during shutdown.
    pub goodbye_timeout_ms: u64,
    /// Milliseconds a connection may take to finish the WebSocket handshake and send HELLO.
    pub handshake_timeout_ms: u64,
    /// Sessions joined at once, router-wide; more get ABORT `wamp.error.limit_exceeded`.
    pub max_sessions: usize,
    /// Worker threads of the `wamp-router` binary's runtime; 0 (the default): one per CPU.
    /// Embedders run the router on their own runtime.
    pub worker_threads: usize,
}

/// What a session's outbound queue may hold, and what happens to a session that falls
/// behind (`[router.outbound]`). The routing path never waits on a queue.
///
/// A session over its soft bound (`soft_messages` or `soft_bytes`) is closed only when its
/// connection then writes nothing for `stall_timeout_ms`; one whose backlog reaches a hard
/// cap (`max_messages` or `max_bytes`) is closed at once. When the queues of all sessions
/// together hold `total_max_bytes`, the sessions with the largest backlogs are closed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Queued messages above which a session must keep draining its queue.
    pub soft_messages: usize,
    /// Queued bytes above which a session must keep draining its queue.
    pub soft_bytes: usize,
    /// Milliseconds a session over its soft bound may write nothing before it is closed.
    pub stall_timeout_ms: u64,
    /// Queued messages at which a session is closed at once.
    pub max_messages: usize,
    /// Queued bytes at which a session is closed at once (at most 4 GiB - 1).
    pub max_bytes: usize,
    /// Queued bytes across all sessions at which the largest backlogs are closed (0: no cap).
    pub total_max_bytes: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            soft_messages: 65_536,
            soft_bytes: 16 << 20,
            stall_timeout_ms: 10_000,
            max_messages: 1 << 20,
            max_bytes: 128 << 20,
            total_max_bytes: 1 << 30,
        }
    }
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            outbound: OutboundConfig::default(),
            outbound_queue: None,
            worker_threads: 0,
            max_sessions: 100_000,
            goodbye_timeout_ms: 2000,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// A serializer name in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerializerName(pub Serializer);

impl<'de> Deserialize<'de> for SerializerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Serializer::from_name(&s)
            .map(SerializerName)
            .ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "unknown serializer `{s}`, expected `json`, `msgpack` or `cbor`"
                ))
            })
    }
}

/// Retention and history for the topics matching a URI (`[[realm.topic]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicPolicyConfig {
    /// The topic URI or pattern.
    pub uri: String,
    /// How `uri` matches topics: `exact` (default), `prefix` or `wildcard`.
    #[serde(default, rename = "match")]
    pub match_policy: MatchName,
    /// Whether PUBLISH `retain` is honoured for these topics (default true).
    #[serde(default = "yes")]
    pub retain: bool,
    /// How many recent events to keep for `wamp.subscription.get_events` (default 0: none).
    #[serde(default)]
    pub history: usize,
}

impl TopicPolicyConfig {
    /// The match policy.
    pub fn match_policy(&self) -> MatchPolicy {
        self.match_policy.0
    }
}

/// A match policy name in the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchName(pub MatchPolicy);

impl<'de> Deserialize<'de> for MatchName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MatchPolicy::parse(&s).map(MatchName).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown match policy `{s}`, expected `exact`, `prefix` or `wildcard`"
            ))
        })
    }
}

fn yes() -> bool {
    true
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Config {
        // The embedded file is tested (`embedded_default_is_valid`), so this cannot fail.
        #[allow(clippy::expect_used)]
        Config::from_toml(DEFAULT_CONFIG, "<embedded default>")
            .expect("embedded default config is valid")
    }

    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::read(path).map(|(config, _)| config)
    }

    /// [`Config::from_file`], also returning the file's text (to locate later errors in it).
    pub(crate) fn read(path: &Path) -> Result<(Config, String), ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            line: 0,
            key: String::new(),
            message: format!("cannot read file: {e}"),
        })?;
        Config::from_toml(&text, &name).map(|c| (c, text))
    }

    /// Parses and validates a configuration from TOML text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let file_config: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigError {
                file: file.to_owned(),
                line: inner.span().map_or(0, |s| line_of(text, s.start)),
                key: if key == "." { String::new() } else { key },
                message: inner.message().to_owned(),
            }
        })?;
        let locate = Locator { text, file };
        if file_config.transports.is_empty() {
            return Err(locate.error(
                "transport".into(),
                0,
                "at least one [[transport]] is required".into(),
            ));
        }
        let transports = file_config
            .transports
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.check(i, &locate))
            .collect::<Result<Vec<_>, _>>()?;
        let mut config = Config {
            router: file_config.router,
            log: file_config.log,
            transports,
            realms: file_config.realms,
            cluster: file_config.cluster,
        };
        config.validate(text, file)?;
        Ok(config)
    }

    fn validate(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, needle: &str, message: String| ConfigError {
            file: file.to_owned(),
            line: find_line(text, needle),
            key,
            message,
        };
        if let Some((key, message)) = self.cluster.as_ref().and_then(|c| c.problem()) {
            return Err(err(format!("cluster.{key}"), key, message));
        }
        #[cfg(not(feature = "cluster-nats"))]
        if self.cluster.is_some() {
            return Err(err(
                "cluster".into(),
                "[cluster]",
                "this build has no cluster support (cargo feature `cluster-nats`)".into(),
            ));
        }
        if self.router.outbound_queue.is_some() {
            return Err(err(
                "router.outbound_queue".into(),
                "outbound_queue",
                "replaced by [router.outbound]: soft_messages, soft_bytes, stall_timeout_ms, \
                 max_messages, max_bytes, total_max_bytes (see config/router.toml)"
                    .into(),
            ));
        }
        let o = &self.router.outbound;
        let bounds = [
            ("soft_messages", o.soft_messages, 1, o.max_messages),
            ("soft_bytes", o.soft_bytes, 1, o.max_bytes),
            ("max_messages", o.max_messages, 1, u32::MAX as usize),
            ("max_bytes", o.max_bytes, 1, u32::MAX as usize),
            (
                "stall_timeout_ms",
                o.stall_timeout_ms as usize,
                1,
                3_600_000,
            ),
        ];
        for (key, value, min, max) in bounds {
            if !(min..=max).contains(&value) {
                return Err(err(
                    format!("router.outbound.{key}"),
                    key,
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        if self.router.worker_threads > 1024 {
            return Err(err(
                "router.worker_threads".into(),
                "worker_threads",
                "must be between 0 (one per CPU) and 1024".into(),
            ));
        }
        if let Some(level) = &self.log.level {
            log::check_level(level).map_err(|m| err("log.level".into(), "level", m))?;
        }
        if self.realms.is_empty() {
            return Err(err(
                "realm".into(),
                "",
                "at least one [[realm]] is required".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, r) in self.realms.iter().enumerate() {
            if !wamp_proto::uri::is_valid_uri(&r.name, UriCheck::Loose, MatchPolicy::Exact) {
                return Err(err(
                    format!("realm[{i}].name"),
                    &r.name,
                    format!("`{}` is not a valid realm URI", r.name),
                ));
            }
            for (k, t) in r.topics.iter().enumerate() {
                if !wamp_proto::uri::is_valid_uri(&t.uri, UriCheck::Loose, t.match_policy()) {
                    return Err(err(
                        format!("realm[{i}].topic[{k}].uri"),
                        &t.uri,
                        format!(
                            "`{}` is not a valid {} URI",
                            t.uri,
                            t.match_policy().as_str()
                        ),
                    ));
                }
                if t.history > 1_000_000 {
                    return Err(err(
                        format!("realm[{i}].topic[{k}].history"),
                        "history",
                        "at most 1000000 events per topic entry".into(),
                    ));
                }
            }
            if !seen.insert(r.name.clone()) {
                return Err(err(
                    format!("realm[{i}].name"),
                    &r.name,
                    format!("realm `{}` is defined twice", r.name),
                ));
            }
        }
        for (i, r) in self.realms.iter_mut().enumerate() {
            realm::check(r, i, &err)?;
        }
        Ok(())
    }
}

/// An error about `key` of the `index`-th `[[transport]]` of `text` (named `file`), at the
/// line where that section writes the key.
pub(crate) fn transport_error(
    text: &str,
    file: &str,
    index: usize,
    key: &str,
    message: String,
) -> ConfigError {
    Locator { text, file }.at(index, key, message)
}

/// The 1-based line of byte offset `pos` in `text`.
pub(crate) fn line_of(text: &str, pos: usize) -> usize {
    text.get(..pos).map_or(0, |t| t.matches('\n').count() + 1)
}

/// The line of the first occurrence of `needle` (used for semantic checks after parsing).
fn find_line(text: &str, needle: &str) -> usize {
    if needle.is_empty() {
        return 0;
    }
    text.find(needle).map_or(0, |p| line_of(text, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::from_toml(DEFAULT_CONFIG, "default").unwrap();
        let TransportConfig::WebSocket(ws) = &c.transports[0] else {
            panic!("the first transport is WebSocket");
        };
        assert_eq!(ws.listen, Listen::Tcp("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(ws.path, "/ws");
        let TransportConfig::RawSocket(rs) = &c.transports[1] else {
            panic!("the second transport is RawSocket");
        };
        assert_eq!(rs.listen, Listen::Tcp("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(c.realms[0].name, "realm1");
        // Every serializer on both: the router takes the client's first acceptable offer, so
        // a client that does not offer CBOR never gets it.
        let all = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];
        assert_eq!(ws.serializers.iter().map(|s| s.0).collect::<Vec<_>>(), all);
        assert_eq!(rs.serializers.iter().map(|s| s.0).collect::<Vec<_>>(), all);
    }

    #[test]
    fn documented_example_is_valid() {
        Config::from_toml(include_str!("../../../config/router.toml"), "router.toml").unwrap();
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[[transport]]\nbind = \"127.0.0.1:1\"\nbogus = 1\n[[realm]]\nname = \"r1\"\n";
        let e = Config::from_toml(text, "f.toml").unwrap_err();
        assert_eq!(e.file, "f.toml");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.key.starts_with("transport"), "{e}");
        assert!(e.message.contains("bogus"), "{e}");
    }

    #[test]
    fn bad_serializer_names_key() {
        let text = "[[transport]]\nbind = \"127.0.0.1:1\"\nserializers = [\"json\", \"xml\"]\n[[realm]]\nname = \"r1\"\n";
        let e = Config::from_toml(text, "f.toml").unwrap_err();
        assert_eq!(e.key, "transport[0].serializers[1]", "{e}");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn log_section() {
        let base = "[[transport]]\nbind = \"127.0.0.1:1\"\n[[realm]]\nname = \"r1\"\n";
        assert_eq!(
            Config::from_toml(base, "f").unwrap().log,
            LogOptions::default()
        );
        let json = format!("{base}[log]\nformat = \"json\"\nlevel = \"warn,wamp_router=debug\"\n");
        let c = Config::from_toml(&json, "f").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level.as_deref(), Some("warn,wamp_router=debug"));
        let e = Config::from_toml(&format!("{base}[log]\nformat = \"xml\"\n"), "f").unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("log.format", 6), "{e}");
        let e = Config::from_toml(&format!("{base}[log]\nlevel = \"r1=loud\"\n"), "f").unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("log.level", 6), "{e}");
    }

    #[test]
    fn semantic_errors() {
        let dup = "[[transport]]\nbind = \"127.0.0.1:1\"\n[[realm]]\nname = \"r1\"\n[[realm]]\nname = \"r1\"\n";
        let e = Config::from_toml(dup, "f").unwrap_err();
        assert_eq!(e.key, "realm[1].name");
        let path =
            "[[transport]]\nbind = \"127.0.0.1:1\"\npath = \"ws\"\n[[realm]]\nname = \"r1\"\n";
        let e = Config::from_toml(path, "f").unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("transport[0].path", 3));
        let addr = "[[transport]]\nbind = \"nonsense\"\n[[realm]]\nname = \"r1\"\n";
        let e = Config::from_toml(addr, "f").unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("transport[0].bind", 2), "{e}");
    }
}
