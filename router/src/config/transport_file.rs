//! `[[transport]]` as written (one flat table, so serde reports unknown keys and bad values
//! with their line), and its check against its type into a [`TransportConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use wamp_proto::Serializer;

use super::transport::{
    AuthMethod, Listen, LongPollConfig, RawSocketTransport, TlsConfig, TransportConfig,
    WebSocketTransport,
};
use super::{ConfigError, SerializerName};

/// Smallest and largest accepted `max_message_size` (as Crossbar: 1 B to 64 MiB).
const MESSAGE_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1..=64 * 1024 * 1024;
/// The default `max_message_size`: 16 MiB.
const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The default `min_client_max_message_size`: a WELCOME must fit (about 650 bytes in JSON).
const DEFAULT_MIN_CLIENT_MAX: usize = 4096;
/// The default `max_connections` of a transport.
const DEFAULT_MAX_CONNECTIONS: usize = 100_000;

/// The kinds of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Websocket,
    Rawsocket,
}

/// `[[transport]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransportFile {
    #[serde(rename = "type")]
    kind: Option<Kind>,
    bind: Option<SocketAddr>,
    unix_socket: Option<PathBuf>,
    unix_socket_mode: Option<u32>,
    path: Option<String>,
    serializers: Option<Vec<SerializerName>>,
    max_message_size: Option<usize>,
    allowed_origins: Option<Vec<String>>,
    max_connections: Option<usize>,
    min_client_max_message_size: Option<usize>,
    auth_methods: Option<Vec<AuthMethod>>,
    tls: Option<TlsConfig>,
    keepalive_interval_ms: Option<u64>,
    keepalive_timeout_ms: Option<u64>,
    longpoll: Option<LongPollConfig>,
    metrics: Option<bool>,
    health: Option<bool>,
}

/// Builds errors that name the file and the line of a key in one `[[transport]]` section.
#[derive(Debug, Clone, Copy)]
pub(super) struct Locator<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a str,
}

impl Locator<'_> {
    pub(super) fn error(&self, key: String, line: usize, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line,
            key,
            message,
        }
    }

    /// The line of `key` inside the `index`-th `[[transport]]` section (its header line when
    /// the key is not written there; 0 if there is no such section).
    fn transport_line(&self, index: usize, key: &str) -> usize {
        let mut section = None;
        let mut header = 0;
        for (n, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
                if compact.starts_with("[[transport]]") {
                    section = Some(section.map_or(0, |s| s + 1));
                    if section == Some(index) {
                        header = n + 1;
                    }
                    continue;
                }
                let subtable =
                    compact.starts_with("[transport.") || compact.starts_with("[[transport.");
                if !subtable && section == Some(index) {
                    break;
                }
                continue;
            }
            if section == Some(index) {
                if let Some(rest) = t.strip_prefix(key) {
                    if rest.trim_start().starts_with('=') {
                        return n + 1;
                    }
                }
            }
        }
        header
    }

    pub(super) fn at(&self, index: usize, key: &str, message: String) -> ConfigError {
        let line = self.transport_line(index, key);
        self.error(format!("transport[{index}].{key}"), line, message)
    }
}

impl TransportFile {
    /// Checks the options against the transport's type.
    pub(super) fn check(self, i: usize, at: &Locator<'_>) -> Result<TransportConfig, ConfigError> {
        let kind = self.kind.unwrap_or(Kind::Websocket);
        let name = match kind {
            Kind::Websocket => "websocket",
            Kind::Rawsocket => "rawsocket",
        };
        let not_for = |key: &str| {
            at.at(
                i,
                key,
                format!("`{key}` is not an option of a {name} transport"),
            )
        };
        let listen = match (self.bind, self.unix_socket) {
            (Some(_), Some(_)) => {
                return Err(at.at(
                    i,
                    "unix_socket",
                    "give either `bind` (TCP) or `unix_socket`, not both".into(),
                ))
            }
            (Some(addr), None) => {
                if self.unix_socket_mode.is_some() {
                    return Err(at.at(
                        i,
                        "unix_socket_mode",
                        "`unix_socket_mode` needs `unix_socket`".into(),
                    ));
                }
                Listen::Tcp(addr)
            }
            (None, Some(path)) => {
                if kind == Kind::Websocket {
                    return Err(not_for("unix_socket"));
                }
                if let Some(mode) = self.unix_socket_mode.filter(|m| *m > 0o777) {
                    return Err(at.at(
                        i,
                        "unix_socket_mode",
                        format!("{mode:#o} is not a file mode (0o000 to 0o777)"),
                    ));
                }
                Listen::Unix {
                    path,
                    mode: self.unix_socket_mode,
                }
            }
            (None, None) => {
                return Err(at.error(
                    format!("transport[{i}].bind"),
                    at.transport_line(i, "bind"),
                    "missing `bind` (a TCP address such as \"127.0.0.1:8080\")".into(),
                ))
            }
        };
        let serializers = self.serializers.unwrap_or_else(|| {
            vec![
                SerializerName(Serializer::Json),
                SerializerName(Serializer::MsgPack),
            ]
        });
        if serializers.is_empty() {
            return Err(at.at(
                i,
                "serializers",
                "at least one serializer is required".into(),
            ));
        }
        let max_message_size = self.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE);
        if !MESSAGE_SIZE_RANGE.contains(&max_message_size) {
            return Err(at.at(
                i,
                "max_message_size",
                format!("{max_message_size} is out of range 1..=67108864 bytes"),
            ));
        }
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        // WebSocket: every 30 s, which keeps proxies from cutting an idle connection.
        // RawSocket: off (autobahn's Twisted client cannot answer PINGs, WAMP.md TRN-11).
        let keepalive_interval_ms = self.keepalive_interval_ms.unwrap_or(match kind {
            Kind::Websocket => 30_000,
            Kind::Rawsocket => 0,
        });
        let keepalive_timeout_ms = self.keepalive_timeout_ms.unwrap_or(20_000);
        if keepalive_interval_ms > 0 && keepalive_timeout_ms == 0 {
            return Err(at.at(
                i,
                "keepalive_timeout_ms",
                "must be at least 1 when keepalive_interval_ms is set".into(),
            ));
        }
        if max_connections == 0 {
            return Err(at.at(i, "max_connections", "must be at least 1".into()));
        }
        Ok(match kind {
            Kind::Websocket => {
                if self.min_client_max_message_size.is_some() {
                    return Err(not_for("min_client_max_message_size"));
                }
                let path = self.path.unwrap_or_else(|| "/ws".to_owned());
                if !path.starts_with('/') {
                    return Err(at.at(i, "path", format!("`{path}` must start with `/`")));
                }
                if let Some(lp) = &self.longpoll {
                    check_longpoll(lp, &path).map_err(|m| at.at(i, "longpoll", m))?;
                }
                TransportConfig::WebSocket(WebSocketTransport {
                    listen,
                    path,
                    serializers,
                    max_message_size,
                    allowed_origins: self.allowed_origins.unwrap_or_default(),
                    max_connections,
                    auth_methods: self.auth_methods,
                    tls: self.tls,
                    keepalive_interval_ms,
                    keepalive_timeout_ms,
                    longpoll: self.longpoll,
                    metrics: self.metrics.unwrap_or(false),
                    health: self.health.unwrap_or(false),
                })
            }
            Kind::Rawsocket => {
                if self.metrics.is_some() {
                    return Err(not_for("metrics"));
                }
                if self.health.is_some() {
                    return Err(not_for("health"));
                }
                if self.longpoll.is_some() {
                    return Err(not_for("longpoll"));
                }
                if self.path.is_some() {
                    return Err(not_for("path"));
                }
                if self.allowed_origins.is_some() {
                    return Err(not_for("allowed_origins"));
                }
                if max_message_size < 512 {
                    return Err(at.at(
                        i,
                        "max_message_size",
                        format!(
                            "{max_message_size} is below RawSocket's smallest length (512 bytes)"
                        ),
                    ));
                }
                let min = self
                    .min_client_max_message_size
                    .unwrap_or(DEFAULT_MIN_CLIENT_MAX);
                if !(512..=1 << 24).contains(&min) {
                    return Err(at.at(
                        i,
                        "min_client_max_message_size",
                        format!("{min} is out of range 512..=16777216 bytes"),
                    ));
                }
                TransportConfig::RawSocket(RawSocketTransport {
                    listen,
                    serializers,
                    max_message_size,
                    min_client_max_message_size: min,
                    max_connections,
                    auth_methods: self.auth_methods,
                    tls: self.tls,
                    keepalive_interval_ms,
                    keepalive_timeout_ms,
                })
            }
        })
    }
}

/// Checks a long-poll section against its WebSocket transport's path.
fn check_longpoll(lp: &LongPollConfig, ws_path: &str) -> Result<(), String> {
    let path = lp.path.trim_end_matches('/');
    if !path.starts_with('/') || path.len() < 2 {
        return Err(format!(
            "long-poll path `{}` must start with `/` and not be `/`",
            lp.path
        ));
    }
    if path == ws_path.trim_end_matches('/') {
        return Err(format!(
            "long-poll path `{path}` is the WebSocket path; give it its own"
        ));
    }
    if lp.request_timeout_ms == 0 || lp.session_timeout_ms <= lp.request_timeout_ms {
        return Err(
            "request_timeout_ms must be at least 1 and session_timeout_ms longer than it".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    const REALM: &str = "[[realm]]\nname = \"r1\"\n";

    fn err(text: &str) -> ConfigError {
        Config::from_toml(&format!("{text}{REALM}"), "f.toml").unwrap_err()
    }

    #[test]
    fn an_error_in_the_second_transport_names_its_own_line() {
        let e = err(
            "[[transport]]\nbind = \"127.0.0.1:1\"\nmax_message_size = 1024\n\n\
             [[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:2\"\nmax_message_size = 0\n",
        );
        assert_eq!(
            (e.key.as_str(), e.line),
            ("transport[1].max_message_size", 8),
            "{e}"
        );
    }

    #[test]
    fn options_of_the_other_type_and_unknown_types() {
        let e =
            err("[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:1\"\npath = \"/ws\"\n");
        assert_eq!((e.key.as_str(), e.line), ("transport[0].path", 4), "{e}");
        let e = err("[[transport]]\nbind = \"127.0.0.1:1\"\nunix_socket = \"/tmp/x\"\n");
        assert_eq!(e.key, "transport[0].unix_socket", "{e}");
        let e = err("[[transport]]\ntype = \"udp\"\nbind = \"127.0.0.1:1\"\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.key.starts_with("transport[0]"), "{e}");
        assert!(e.message.contains("udp"), "{e}");
        let e = err("[[transport]]\ntype = \"rawsocket\"\nunix_socket = \"/tmp/x\"\nunix_socket_mode = 0o1777\n");
        assert_eq!(
            (e.key.as_str(), e.line),
            ("transport[0].unix_socket_mode", 4),
            "{e}"
        );
        let e = err("[[transport]]\ntype = \"rawsocket\"\n");
        assert_eq!((e.key.as_str(), e.line), ("transport[0].bind", 1), "{e}");
    }

    #[test]
    fn longpoll_options_are_checked() {
        let c = Config::from_toml(
            &format!(
                "[[transport]]\nbind = \"127.0.0.1:0\"\nlongpoll = {{ path = \"/lp\" }}\n{REALM}"
            ),
            "f",
        )
        .unwrap();
        let TransportConfig::WebSocket(w) = &c.transports[0] else {
            panic!("websocket expected");
        };
        let lp = w.longpoll.as_ref().unwrap();
        assert_eq!((lp.path.as_str(), lp.request_timeout_ms), ("/lp", 9_000));
        for bad in [
            "path = \"/ws\"",
            "path = \"lp\"",
            "path = \"/lp\", request_timeout_ms = 0",
            "path = \"/lp\", session_timeout_ms = 1000",
        ] {
            let e = err(&format!(
                "[[transport]]\nbind = \"127.0.0.1:0\"\nlongpoll = {{ {bad} }}\n"
            ));
            assert_eq!(
                (e.key.as_str(), e.line),
                ("transport[0].longpoll", 3),
                "{e}"
            );
        }
        let e =
            err("[[transport]]\nbind = \"127.0.0.1:0\"\nlongpoll = { path = \"/lp\", x = 1 }\n");
        assert!(e.message.contains('x'), "{e}");
        let e = err("[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\nlongpoll = { path = \"/lp\" }\n");
        assert_eq!(e.key, "transport[0].longpoll", "{e}");
    }

    #[test]
    fn rawsocket_over_unix_and_tcp() {
        let c = Config::from_toml(
            &format!(
                "[[transport]]\ntype = \"rawsocket\"\nunix_socket = \"/tmp/w.sock\"\n\
                 unix_socket_mode = 0o660\n[[transport]]\ntype = \"rawsocket\"\n\
                 bind = \"127.0.0.1:0\"\nserializers = [\"json\"]\n{REALM}"
            ),
            "f",
        )
        .unwrap();
        let TransportConfig::RawSocket(unix) = &c.transports[0] else {
            panic!("rawsocket expected");
        };
        assert_eq!(
            unix.listen,
            Listen::Unix {
                path: "/tmp/w.sock".into(),
                mode: Some(0o660)
            }
        );
        assert_eq!(c.transports[1].max_connections(), DEFAULT_MAX_CONNECTIONS);
    }
}
