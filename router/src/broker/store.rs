//! What the broker keeps after a publish: retained events and event history.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use wamp_proto::uri::matches;
use wamp_proto::{Dict, Id, MatchPolicy, Payload, Uri};

use super::filter::Filter;
use crate::config::TopicPolicyConfig;
use crate::peer::lock;

/// A publication as stored for retention or history.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub(crate) topic: Uri,
    pub(crate) publication: Id,
    /// EVENT.Details common to all subscribers (publisher disclosure).
    pub(crate) details: Dict,
    pub(crate) payload: Payload,
    pub(crate) filter: Filter,
    pub(crate) timestamp: SystemTime,
    /// Realm-wide publish order, to merge histories.
    pub(crate) seq: u64,
}

/// The per-topic retention and history rules of a realm (`[[realm.topic]]`).
#[derive(Debug, Default)]
pub(crate) struct TopicPolicies {
    entries: Vec<TopicPolicy>,
}

#[derive(Debug)]
struct TopicPolicy {
    policy: MatchPolicy,
    uri: String,
    retain: bool,
    history: Option<Mutex<VecDeque<StoredEvent>>>,
    limit: usize,
}

impl TopicPolicies {
    pub(crate) fn new(config: &[TopicPolicyConfig]) -> TopicPolicies {
        TopicPolicies {
            entries: config
                .iter()
                .map(|c| TopicPolicy {
                    policy: c.match_policy(),
                    uri: c.uri.clone(),
                    retain: c.retain,
                    history: (c.history > 0)
                        .then(|| Mutex::new(VecDeque::with_capacity(c.history.min(1024)))),
                    limit: c.history,
                })
                .collect(),
        }
    }

    /// The first entry (in configuration order) whose URI matches `topic`.
    fn entry(&self, topic: &str) -> Option<&TopicPolicy> {
        self.entries
            .iter()
            .find(|e| matches(e.policy, &e.uri, topic))
    }

    /// Whether `retain` is honoured for `topic` (default: yes).
    pub(crate) fn retention_allowed(&self, topic: &str) -> bool {
        self.entry(topic).is_none_or(|e| e.retain)
    }

    /// Whether any history is configured.
    pub(crate) fn has_history(&self) -> bool {
        self.entries.iter().any(|e| e.history.is_some())
    }

    /// The history rules, as (policy, URI), in configuration order.
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn history_patterns(&self) -> Vec<(MatchPolicy, String)> {
        self.entries
            .iter()
            .filter(|e| e.history.is_some())
            .map(|e| (e.policy, e.uri.clone()))
            .collect()
    }

    /// The rule that keeps `topic`'s history, if any: the first matching entry (the one
    /// [`TopicPolicies::record`] uses).
    #[cfg(feature = "cluster-nats")]
    pub(crate) fn history_rule(&self, topic: &str) -> Option<(MatchPolicy, &str)> {
        self.entry(topic)
            .filter(|e| e.history.is_some())
            .map(|e| (e.policy, e.uri.as_str()))
    }

    /// Whether history is kept for `topic`.
    pub(crate) fn keeps_history(&self, topic: &str) -> bool {
        self.entry(topic).is_some_and(|e| e.history.is_some())
    }

    /// Records `ev` if its topic has history; the oldest event makes room.
    pub(crate) fn record(&self, ev: &StoredEvent) {
        if let Some(TopicPolicy {
            history: Some(h),
            limit,
            ..
        }) = self.entry(ev.topic.as_str())
        {
            let mut h = lock(h);
            if h.len() >= *limit {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
    }

    /// Every kept event whose topic matches `(policy, uri)`, in publish order.
    pub(crate) fn events_matching(&self, policy: MatchPolicy, uri: &str) -> Vec<StoredEvent> {
        let mut out: Vec<StoredEvent> = Vec::new();
        for e in &self.entries {
            if let Some(h) = &e.history {
                out.extend(
                    lock(h)
                        .iter()
                        .filter(|ev| matches(policy, uri, ev.topic.as_str()))
                        .cloned(),
                );
            }
        }
        out.sort_by_key(|ev| ev.seq);
        out.dedup_by_key(|ev| ev.seq);
        out
    }
}

/// Formats a time as RFC 3339 UTC with milliseconds (`2026-11-23T20:01:07.123Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_403_454_985_448);
        assert_eq!(rfc3339(t), "2014-06-22T16:36:25.448Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
