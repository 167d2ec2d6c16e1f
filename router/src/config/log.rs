//! `[log]`: the log format (text or JSON lines) and the level filter. The binary applies
//! them at startup (`--log-format` and `RUST_LOG` override them); a reload does not.

use serde::Deserialize;

/// How log lines are written (`[log] format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, with every field as a key.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`.
    pub fn from_name(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Logging (`[log]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogOptions {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A level filter in `RUST_LOG` syntax: `info` (default), `debug`, or per module,
    /// e.g. `info,wamp_router::auth=debug`.
    pub level: Option<String>,
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a level filter: comma-separated `LEVEL`, `TARGET` or `TARGET=LEVEL` directives
/// (the subset of `RUST_LOG` syntax without span filters). The error says what is wrong.
pub(super) fn check_level(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("the level filter is empty".into());
    }
    let is_level = |s: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s));
    let is_target = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
    };
    for d in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match d.split_once('=') {
            Some((target, level)) => is_target(target) && is_level(level),
            None => is_level(d) || is_target(d),
        };
        if !ok {
            return Err(format!(
                "`{d}` is not a level directive (expected LEVEL, TARGET or TARGET=LEVEL, \
                 LEVEL one of {})",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_filters() {
        for good in [
            "info",
            "WARN",
            "info,wamp_router::auth=debug",
            "wamp_router",
        ] {
            assert_eq!(check_level(good), Ok(()), "{good}");
        }
        for bad in ["", "wamp_router=loud", "a b", "x=info=debug"] {
            assert!(check_level(bad).is_err(), "{bad}");
        }
    }
}
