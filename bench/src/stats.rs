//! Latency histograms and the run context shared by every scenario.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value as Json};

use crate::conn::Target;
use crate::procfs::{load_average, round3, Watched};

/// Latencies in nanoseconds, 3 significant digits, up to 60 s (larger values are clamped).
pub(crate) type Latency = Histogram<u64>;

const MAX_NS: u64 = 60_000_000_000;

/// A fresh latency histogram.
pub(crate) fn latency_histogram() -> Latency {
    Histogram::new_with_bounds(1, MAX_NS, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// Records one latency (clamped to the histogram's range).
pub(crate) fn record(h: &mut Latency, d: Duration) {
    let ns = u64::try_from(d.as_nanos())
        .unwrap_or(MAX_NS)
        .clamp(1, MAX_NS);
    h.saturating_record(ns);
}

/// Records one latency given in nanoseconds.
pub(crate) fn record_ns(h: &mut Latency, ns: u64) {
    h.saturating_record(ns.clamp(1, MAX_NS));
}

/// Percentiles in microseconds, for the JSON line.
pub(crate) fn latency_json(h: &Latency) -> Json {
    if h.is_empty() {
        return Json::Null;
    }
    let us = |ns: u64| round3(ns as f64 / 1000.0);
    json!({
        "count": h.len(),
        "mean": round3(h.mean() / 1000.0),
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "p999": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
    })
}

/// A one-line human rendering of the percentiles.
pub(crate) fn latency_line(h: &Latency) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let f = |ns: u64| fmt_ns(ns);
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}",
        f(h.value_at_quantile(0.5)),
        f(h.value_at_quantile(0.99)),
        f(h.value_at_quantile(0.999)),
        f(h.max())
    )
}

fn fmt_ns(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

/// Nanoseconds since this process's time base (for timestamps carried in payloads; every
/// publisher and subscriber lives in this process, so one monotonic base serves all).
pub(crate) fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What every scenario needs besides its own parameters.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) target: Target,
    /// `--remote-url`: where callees and subscribers join instead (other cluster nodes).
    pub(crate) remote: Vec<Target>,
    pub(crate) watched: Watched,
    pub(crate) label: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) warmup: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) threads: usize,
}

impl Ctx {
    /// Where callee or subscriber `i` joins: `--remote-url`s in turn, else `--url`.
    pub(crate) fn remote_target(&self, i: usize) -> &Target {
        if self.remote.is_empty() {
            &self.target
        } else {
            &self.remote[i % self.remote.len()]
        }
    }

    /// The fields every JSON line starts with.
    pub(crate) fn header(&self, scenario: &str, case: &str) -> Map<String, Json> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut m = Map::new();
        m.insert("scenario".into(), scenario.into());
        let case = match &self.tag {
            Some(t) => format!("{case} {t}"),
            None => case.to_owned(),
        };
        m.insert("case".into(), case.into());
        m.insert("tag".into(), json!(self.tag));
        m.insert("label".into(), json!(self.label));
        m.insert("url".into(), self.target.url.clone().into());
        m.insert("transport".into(), self.target.transport().into());
        m.insert("realm".into(), self.target.realm.clone().into());
        m.insert("serializer".into(), self.target.serializer.name().into());
        m.insert("router_pids".into(), json!(self.watched.pids()));
        m.insert("bench_threads".into(), self.threads.into());
        m.insert("warmup_s".into(), round3(self.warmup.as_secs_f64()).into());
        m.insert("unix_time".into(), ts.into());
        m.insert("loadavg".into(), json!(load_average()));
        m
    }
}

/// Prints the human summary (stderr) and the one JSON line (stdout).
pub(crate) fn emit(summary: &str, line: Map<String, Json>) {
    eprintln!("{summary}");
    println!("{}", Json::Object(line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_clamps_and_reports_micros() {
        let mut h = latency_histogram();
        record(&mut h, Duration::from_micros(100));
        record(&mut h, Duration::from_secs(3600));
        record_ns(&mut h, 0);
        let j = latency_json(&h);
        assert_eq!(j["count"], 3);
        assert!((j["p50"].as_f64().unwrap() - 100.0).abs() < 0.2);
        assert!(j["max"].as_f64().unwrap() <= 60_100_000.0);
        assert!(latency_line(&h).contains("p99.9"));
        assert_eq!(latency_json(&latency_histogram()), Json::Null);
    }
}
