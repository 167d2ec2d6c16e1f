//! The harness for the meta API interop tests: `tests/interop/python/meta_peer.py` (an
//! autobahn-python session running one meta API mode, then commands on stdin; see its
//! docstring) and helpers to judge its lines.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use wamp_client::Serializer;

use crate::interop::ScriptPeer;

/// The router's reply to a GOODBYE, as autobahn reports it in `onLeave`.
pub fn left_normally() -> Json {
    json!({"left": {"reason": "wamp.close.goodbye_and_out", "message": null}})
}

/// A running `meta_peer.py` and its session.
#[derive(Debug)]
pub struct MetaPeer {
    /// The script's process and lines.
    pub peer: ScriptPeer,
    /// The session id it printed when joined.
    pub session: u64,
    /// Its `{"joined": ...}` details.
    pub joined: Json,
}

impl MetaPeer {
    /// Starts `meta_peer.py MODE...` with `python`; waits until it joined.
    pub async fn start(
        python: &Path,
        url: &str,
        serializer: Serializer,
        mode: &[&str],
    ) -> MetaPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/python/meta_peer.py");
        let mut peer = ScriptPeer::spawn(python, &script, None, url, serializer, mode, true);
        let first = peer.line().await;
        let joined = first["joined"].clone();
        let Some(session) = joined["session"].as_u64() else {
            peer.fail(&format!("expected {{\"joined\": ...}}, got {first}"))
                .await
        };
        assert_eq!(joined["authrole"], "anonymous", "{first}");
        MetaPeer {
            peer,
            session,
            joined,
        }
    }

    /// The lines up to `{"ready": true}` (which is not returned).
    pub async fn until_ready(&mut self) -> Vec<Json> {
        let mut lines = Vec::new();
        loop {
            let line = self.peer.line().await;
            if line == json!({"ready": true}) {
                return lines;
            }
            lines.push(line);
        }
    }

    /// The next line, which must be `{"event": TOPIC, "args", "kwargs": {}}` about another
    /// session than this one (the watcher's own subscriptions are skipped): (TOPIC, args).
    pub async fn event(&mut self) -> (String, Vec<Json>) {
        loop {
            let line = self.peer.line().await;
            let (Some(topic), Some(args)) = (line["event"].as_str(), line["args"].as_array())
            else {
                self.peer
                    .fail(&format!("expected an event, got {line}"))
                    .await
            };
            assert_eq!(line["kwargs"], json!({}), "{line}");
            let about = args
                .first()
                .and_then(|a| a.as_u64().or_else(|| a["session"].as_u64()));
            if about != Some(self.session) {
                return (topic.to_owned(), args.clone());
            }
        }
    }

    /// The next event, which must be on `topic` (`wamp.` is implied) with `args`.
    pub async fn expect_event(&mut self, topic: &str, args: Json) {
        let got = self.event().await;
        assert_eq!(got, (format!("wamp.{topic}"), as_vec(args)), "event");
    }

    /// Writes `command` on its stdin; returns its remaining lines once it exited (exit 0).
    pub async fn command_and_finish(mut self, command: &str) -> Vec<Json> {
        self.peer.write_line(command).await;
        self.peer.succeed().await
    }
}

/// `args` as a list (panics when it is not one).
fn as_vec(args: Json) -> Vec<Json> {
    match args {
        Json::Array(a) => a,
        other => panic!("args are a list, got {other}"),
    }
}

/// The `{"call": PROC, "result": VALUE}` lines of `lines`, as (PROC, VALUE or the error).
pub fn results(lines: &[Json]) -> Vec<(String, Json)> {
    lines
        .iter()
        .map(|l| {
            let proc_ = l["call"].as_str().unwrap_or_else(|| panic!("a call: {l}"));
            let value = match l.get("result") {
                Some(v) => v.clone(),
                None => json!({"error": l["error"]}),
            };
            (proc_.to_owned(), value)
        })
        .collect()
}

/// A JSON list of ids, sorted.
pub fn sorted(ids: &Json) -> Vec<u64> {
    let mut v: Vec<u64> = ids
        .as_array()
        .unwrap_or_else(|| panic!("a list of ids, got {ids}"))
        .iter()
        .map(|i| i.as_u64().unwrap_or_else(|| panic!("an id, got {i}")))
        .collect();
    v.sort_unstable();
    v
}

/// `ids`, sorted.
pub fn sort(mut ids: Vec<u64>) -> Vec<u64> {
    ids.sort_unstable();
    ids
}
