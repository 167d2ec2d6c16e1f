//! The TOML configuration: schema, defaults, and validation that names file, key and line.
//!
//! `config/router.toml` documents every option; [`DEFAULT_CONFIG`] is embedded in the binary.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;
use wamp_proto::{MatchPolicy, Serializer, UriCheck};

/// The configuration used when no file is given: WebSocket on 127.0.0.1:8080 path `/ws`,
/// json + msgpack, realm `realm1` with anonymous access.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Router-wide limits and timeouts.
    #[serde(default)]
    pub router: RouterOptions,
    /// The listening transports.
    #[serde(default, rename = "transport")]
    pub transports: Vec<TransportConfig>,
    /// The realms clients may join.
    #[serde(default, rename = "realm")]
    pub realms: Vec<RealmConfig>,
}

/// Router-wide options (`[router]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterOptions {
    /// Messages a session's outbound queue holds before the session is closed as a slow
    /// consumer. The routing path never waits on a full queue.
    pub outbound_queue: usize,
    /// Milliseconds to wait for a client's GOODBYE reply during shutdown.
    pub goodbye_timeout_ms: u64,
    /// Milliseconds a connection may take to finish the WebSocket handshake and send HELLO.
    pub handshake_timeout_ms: u64,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            outbound_queue: 4096,
            goodbye_timeout_ms: 2000,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// The kind of a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// WebSocket (RFC 6455) with WAMP subprotocols.
    Websocket,
}

/// One listening transport (`[[transport]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// The transport kind.
    #[serde(rename = "type", default = "default_kind")]
    pub kind: TransportKind,
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub bind: SocketAddr,
    /// The HTTP path of the WebSocket endpoint.
    #[serde(default = "default_path")]
    pub path: String,
    /// Serializers offered, as `json` / `msgpack`.
    #[serde(default = "default_serializers")]
    pub serializers: Vec<SerializerName>,
    /// The largest WAMP message accepted, in bytes.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Allowed `Origin` header values; `*` wildcards are allowed. Empty or absent allows all.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
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
                    "unknown serializer `{s}`, expected `json` or `msgpack`"
                ))
            })
    }
}

/// One realm (`[[realm]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmConfig {
    /// The realm name (a URI).
    pub name: String,
    /// URI checking for topics and procedures: `loose` (default) or `strict`.
    #[serde(default)]
    pub uri_check: UriCheck,
    /// Whether clients may join without authentication (the only method for now).
    #[serde(default = "yes")]
    pub anonymous: bool,
    /// Per-topic retention and history rules; the first matching entry applies.
    #[serde(default, rename = "topic")]
    pub topics: Vec<TopicPolicyConfig>,
}

/// Retention and history for the topics matching a URI (`[[realm.topic]]`).
#[derive(Debug, Clone, Deserialize)]
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

fn default_kind() -> TransportKind {
    TransportKind::Websocket
}
fn default_path() -> String {
    "/ws".to_owned()
}
fn default_serializers() -> Vec<SerializerName> {
    vec![
        SerializerName(Serializer::Json),
        SerializerName(Serializer::MsgPack),
    ]
}
fn default_max_message_size() -> usize {
    16 * 1024 * 1024
}
fn yes() -> bool {
    true
}

/// Smallest and largest accepted `max_message_size` (as Crossbar: 1 B to 64 MiB).
const MESSAGE_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1..=64 * 1024 * 1024;

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
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            line: 0,
            key: String::new(),
            message: format!("cannot read file: {e}"),
        })?;
        Config::from_toml(&text, &name)
    }

    /// Parses and validates a configuration from TOML text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigError {
                file: file.to_owned(),
                line: inner.span().map_or(0, |s| line_of(text, s.start)),
                key: if key == "." { String::new() } else { key },
                message: inner.message().to_owned(),
            }
        })?;
        config.validate(text, file)?;
        Ok(config)
    }

    fn validate(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, needle: &str, message: String| ConfigError {
            file: file.to_owned(),
            line: find_line(text, needle),
            key,
            message,
        };
        if self.router.outbound_queue == 0 {
            return Err(err(
                "router.outbound_queue".into(),
                "outbound_queue",
                "must be at least 1".into(),
            ));
        }
        if self.transports.is_empty() {
            return Err(err(
                "transport".into(),
                "",
                "at least one [[transport]] is required".into(),
            ));
        }
        for (i, t) in self.transports.iter().enumerate() {
            if !t.path.starts_with('/') {
                return Err(err(
                    format!("transport[{i}].path"),
                    &t.path,
                    format!("`{}` must start with `/`", t.path),
                ));
            }
            if t.serializers.is_empty() {
                return Err(err(
                    format!("transport[{i}].serializers"),
                    "serializers",
                    "at least one serializer is required".into(),
                ));
            }
            if !MESSAGE_SIZE_RANGE.contains(&t.max_message_size) {
                return Err(err(
                    format!("transport[{i}].max_message_size"),
                    "max_message_size",
                    format!("{} is out of range 1..=67108864 bytes", t.max_message_size),
                ));
            }
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
            if !seen.insert(&r.name) {
                return Err(err(
                    format!("realm[{i}].name"),
                    &r.name,
                    format!("realm `{}` is defined twice", r.name),
                ));
            }
        }
        Ok(())
    }
}

/// The 1-based line of byte offset `pos` in `text`.
fn line_of(text: &str, pos: usize) -> usize {
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
        assert_eq!(c.transports[0].bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.transports[0].path, "/ws");
        assert_eq!(c.realms[0].name, "realm1");
    }

    #[test]
    fn documented_example_is_valid() {
        Config::from_toml(include_str!("../../config/router.toml"), "router.toml").unwrap();
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
