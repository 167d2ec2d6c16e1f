//! `wamp-bench report`: medians per case and router, and our/baseline ratios, as markdown.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::Value as Json;

/// Parameters of `report`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReportArgs {
    /// JSON lines written by the scenarios (other lines are skipped).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// The `--label` of our router's runs.
    #[arg(long, default_value = "wamp-router")]
    pub(crate) ours: String,
    /// The `--label` of the reference router's runs.
    #[arg(long, default_value = "crossbar")]
    pub(crate) baseline: String,
}

/// Whether a bigger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

struct Metric {
    name: &'static str,
    path: &'static [&'static str],
    better: Better,
}

const fn m(name: &'static str, path: &'static [&'static str], better: Better) -> Metric {
    Metric { name, path, better }
}

fn metrics(scenario: &str) -> &'static [Metric] {
    use Better::*;
    const RPC: &[Metric] = &[
        m("calls/s", &["calls_per_s"], Higher),
        m(
            "calls per router-CPU-s",
            &["calls_per_router_cpu_s"],
            Higher,
        ),
        m("router CPU (cores)", &["cpu", "router_cpu_util"], Lower),
        m("RTT p50 µs", &["latency_us", "p50"], Lower),
        m("RTT p99 µs", &["latency_us", "p99"], Lower),
        m("RTT p99.9 µs", &["latency_us", "p999"], Lower),
    ];
    const PUBSUB: &[Metric] = &[
        m("published/s", &["published_per_s"], Higher),
        m("delivered/s", &["delivered_per_s"], Higher),
        m(
            "delivered per router-CPU-s",
            &["delivered_per_router_cpu_s"],
            Higher,
        ),
        m("router CPU (cores)", &["cpu", "router_cpu_util"], Lower),
        m("end-to-end p50 µs", &["latency_us", "p50"], Lower),
        m("end-to-end p99 µs", &["latency_us", "p99"], Lower),
    ];
    const FANOUT: &[Metric] = &[
        m("events delivered/s", &["delivered_per_s"], Higher),
        m(
            "delivered per router-CPU-s",
            &["delivered_per_router_cpu_s"],
            Higher,
        ),
        m("router CPU (cores)", &["cpu", "router_cpu_util"], Lower),
        m("end-to-end p99 µs", &["latency_us", "p99"], Lower),
    ];
    const SESSIONS: &[Metric] = &[
        m("joins/s", &["joins_per_s"], Higher),
        m(
            "joins per router-CPU-s",
            &["joins_per_router_cpu_s"],
            Higher,
        ),
        m(
            "router KiB per idle session",
            &["rss_per_session_kib"],
            Lower,
        ),
    ];
    match scenario {
        "rpc" => RPC,
        "pubsub" => PUBSUB,
        "fanout" => FANOUT,
        "sessions" => SESSIONS,
        _ => &[],
    }
}

/// The issue's target for a (case, metric), as an our/baseline ratio bound.
fn target(rec: &Json, metric: &str) -> Option<(Better, f64)> {
    let num = |k: &str| rec.get(k).and_then(Json::as_u64);
    match (rec.get("scenario")?.as_str()?, metric) {
        ("rpc", "calls/s") if num("callers") == Some(4) && num("in_flight") == Some(64) => {
            Some((Better::Higher, 40.0))
        }
        ("rpc", "RTT p99 µs") if num("callers") == Some(1) && num("in_flight") == Some(1) => {
            Some((Better::Lower, 0.1))
        }
        ("fanout", "events delivered/s") if num("subscribers") == Some(1000) => {
            Some((Better::Higher, 20.0))
        }
        ("sessions", "router KiB per idle session") => Some((Better::Lower, 0.1)),
        _ => None,
    }
}

fn get<'a>(rec: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(rec, |v, k| v.get(*k))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        let s = format!("{:.0}", x);
        // Thousands separators for readability.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Scenario order in the table.
fn scenario_rank(s: &str) -> u8 {
    match s {
        "rpc" => 0,
        "fanout" => 1,
        "pubsub" => 2,
        "sessions" => 3,
        _ => 4,
    }
}

/// Renders the markdown table for the records of a JSON-lines text.
pub(crate) fn render(text: &str, ours: &str, baseline: &str) -> String {
    // case -> label -> records
    let mut cases: BTreeMap<(u8, String), BTreeMap<String, Vec<Json>>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(rec) = serde_json::from_str::<Json>(line.trim()) else {
            continue;
        };
        let (Some(scenario), Some(case)) = (
            rec.get("scenario").and_then(Json::as_str),
            rec.get("case").and_then(Json::as_str),
        ) else {
            continue;
        };
        let label = rec
            .get("label")
            .and_then(Json::as_str)
            .unwrap_or("unlabelled")
            .to_owned();
        cases
            .entry((scenario_rank(scenario), case.to_owned()))
            .or_default()
            .entry(label)
            .or_default()
            .push(rec);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "| case | metric | {ours} (median) | {baseline} (median) | {ours}/{baseline} | target | met |\n"
    ));
    out.push_str("|---|---|---:|---:|---:|---|---|\n");
    let mut notes = Vec::new();
    let mut floors = Vec::new();
    for ((_, case), by_label) in &cases {
        let sample = by_label.values().flatten().next();
        let Some(scenario) = sample
            .and_then(|r| r.get("scenario"))
            .and_then(Json::as_str)
        else {
            continue;
        };
        if scenario == "floor" {
            floors.push(floor_line(case, by_label.values().flatten()));
            continue;
        }
        let runs = |label: &str| by_label.get(label).map(Vec::as_slice).unwrap_or(&[]);
        for label in [ours, baseline] {
            let errs: u64 = runs(label)
                .iter()
                .filter_map(|r| r.get("errors").and_then(Json::as_u64))
                .sum();
            if errs > 0 {
                notes.push(format!(
                    "- `{case}` / {label}: {errs} errors over {} runs (see the .jsonl)",
                    runs(label).len()
                ));
            }
        }
        for metric in metrics(scenario) {
            let med = |label: &str| {
                median(
                    runs(label)
                        .iter()
                        .filter_map(|r| get(r, metric.path).and_then(Json::as_f64))
                        .collect(),
                )
                .map(|v| (v, runs(label).len()))
            };
            let (a, b) = (med(ours), med(baseline));
            if a.is_none() && b.is_none() {
                continue;
            }
            let cell = |x: Option<(f64, usize)>| {
                x.map_or("–".to_owned(), |(v, n)| format!("{} (n={n})", fmt_num(v)))
            };
            let ratio = match (a, b) {
                (Some((x, _)), Some((y, _))) if y != 0.0 => Some(x / y),
                _ => None,
            };
            let tgt = sample.and_then(|r| target(r, metric.name));
            let (tgt_s, met) = match (tgt, ratio) {
                (Some((Better::Higher, t)), r) => (
                    format!("≥ {t}x"),
                    r.map_or("", |r| if r >= t { "yes" } else { "**no**" }),
                ),
                (Some((Better::Lower, t)), r) => (
                    format!("≤ {t}x"),
                    r.map_or("", |r| if r <= t { "yes" } else { "**no**" }),
                ),
                (None, _) => (String::new(), ""),
            };
            let _ = metric.better;
            out.push_str(&format!(
                "| {case} | {} | {} | {} | {} | {tgt_s} | {met} |\n",
                metric.name,
                cell(a),
                cell(b),
                ratio.map_or("–".to_owned(), |r| format!("{}x", fmt_ratio(r))),
            ));
        }
    }
    if !floors.is_empty() {
        out.push_str(
            "\nLoopback floor, no router (`wamp-bench floor`: a relay thread that only copies \
             bytes, the four loopback crossings of a routed call; medians):\n",
        );
        for f in floors {
            out.push_str(&f);
            out.push('\n');
        }
    }
    if !notes.is_empty() {
        out.push_str("\nRuns with errors:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

/// `- case: RTT p50 X µs, p99 Y µs, p99.9 Z µs (n=N)` over the floor runs.
fn floor_line<'a>(case: &str, runs: impl Iterator<Item = &'a Json>) -> String {
    let runs: Vec<&Json> = runs.collect();
    let pct = |k: &str| {
        median(
            runs.iter()
                .filter_map(|r| get(r, &["latency_us", k]).and_then(Json::as_f64))
                .collect(),
        )
        .map_or("–".to_owned(), fmt_num)
    };
    format!(
        "- `{case}`: RTT p50 {} µs, p99 {} µs, p99.9 {} µs (n={})",
        pct("p50"),
        pct("p99"),
        pct("p999"),
        runs.len()
    )
}

fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.1}")
    } else if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.3}")
    }
}

pub(crate) fn run(a: &ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.input)
        .with_context(|| format!("reading {}", a.input.display()))?;
    print!("{}", render(&text, &a.ours, &a.baseline));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        let text = r#"
human text is skipped
{"scenario":"rpc","case":"rpc c4 w64 k1 b100 msgpack","label":"ours","callers":4,"in_flight":64,"calls_per_s":100000.0,"errors":0,"latency_us":{"p50":50.0,"p99":90.0,"p999":100.0}}
{"scenario":"rpc","case":"rpc c4 w64 k1 b100 msgpack","label":"ours","callers":4,"in_flight":64,"calls_per_s":120000.0,"errors":0,"latency_us":{"p50":50.0,"p99":90.0,"p999":100.0}}
{"scenario":"rpc","case":"rpc c4 w64 k1 b100 msgpack","label":"ours","callers":4,"in_flight":64,"calls_per_s":80000.0,"errors":2,"latency_us":{"p50":50.0,"p99":90.0,"p999":100.0}}
{"scenario":"rpc","case":"rpc c4 w64 k1 b100 msgpack","label":"cb","callers":4,"in_flight":64,"calls_per_s":2000.0,"errors":0,"latency_us":{"p50":1000.0,"p99":2000.0,"p999":3000.0}}
{"scenario":"sessions","case":"sessions n1000 json","label":"cb","rss_per_session_kib":23.0,"joins_per_s":300.0}
{"scenario":"floor","case":"floor relay b130","label":"floor","latency_us":{"p50":70.0,"p99":120.0,"p999":200.0}}
{"scenario":"floor","case":"floor relay b130","label":"floor","latency_us":{"p50":80.0,"p99":140.0,"p999":300.0}}
"#;
        let t = render(text, "ours", "cb");
        assert!(t.contains("| rpc c4 w64 k1 b100 msgpack | calls/s | 100,000 (n=3) | 2,000 (n=1) | 50.0x | ≥ 40x | yes |"), "{t}");
        assert!(
            t.contains("| RTT p50 µs | 50.0 (n=3) | 1,000 (n=1) | 0.050x |"),
            "{t}"
        );
        assert!(t.contains("| sessions n1000 json | router KiB per idle session | – | 23.0 (n=1) | – | ≤ 0.1x |  |"), "{t}");
        assert!(t.contains("2 errors over 3 runs"), "{t}");
        assert!(
            t.contains("- `floor relay b130`: RTT p50 75.0 µs, p99 130 µs, p99.9 250 µs (n=2)"),
            "{t}"
        );
        assert!(
            !t.contains("| floor relay"),
            "the floor is not a router row: {t}"
        );
    }

    #[test]
    fn median_of_even_count() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
