//! The metrics in the Prometheus / OpenMetrics text format (`prometheus-client`): a
//! snapshot of the counters and of the tables, taken when scraped.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use wamp_proto::message::code_name;

use crate::counters::shards::{Shard, CODES, LATENCY_BOUNDS_US};
use crate::counters::{sum, Metrics, SlowClose};
use crate::shared::RouterShared;

/// The content type of [`render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of the router, as text.
pub(crate) fn render(shared: &RouterShared) -> String {
    let mut registry = Registry::with_prefix("wamp");
    registry.register_collector(Box::new(Snapshot::take(shared)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The values of one scrape.
#[derive(Debug)]
struct Snapshot {
    /// (realm, transport) -> sessions.
    sessions: BTreeMap<(String, &'static str), i64>,
    queued_bytes: i64,
    queued_cap: Option<i64>,
    largest_backlog: i64,
    received: Vec<(&'static str, u64)>,
    sent: Vec<(&'static str, u64)>,
    bytes: [u64; 2],
    slow_closes: Vec<(&'static str, u64)>,
    auth_failures: u64,
    refusals: Vec<(&'static str, u64)>,
    limits: Vec<(&'static str, u64)>,
    /// Bucket counts (upper bound in seconds), count and sum (seconds).
    latency: (Vec<(f64, u64)>, u64, f64),
    /// With `[cluster]`: messages not sent to NATS, and dropped by slow NATS subscriptions.
    cluster_drops: Option<(u64, u64)>,
}

impl Snapshot {
    fn take(shared: &RouterShared) -> Snapshot {
        let m: &Metrics = &shared.metrics;
        let mut sessions = BTreeMap::new();
        let mut largest = 0u32;
        for realm in shared.realms() {
            for s in realm.sessions.iter() {
                *sessions
                    .entry((realm.name.clone(), s.shared().info.transport))
                    .or_default() += 1;
                largest = largest.max(s.backlog().bytes);
            }
        }
        let by_code = |pick: fn(&Shard, usize) -> &std::sync::atomic::AtomicU64| {
            (1..CODES)
                .filter_map(|c| {
                    let n = sum(&m.shards, |s| pick(s, c));
                    let name = code_name(c as u64)?;
                    (n > 0).then_some((name, n))
                })
                .collect::<Vec<_>>()
        };
        // Per bucket (the encoder makes them cumulative), the last one +Inf.
        let bounds = LATENCY_BOUNDS_US.iter().map(|b| *b as f64 / 1e6);
        let buckets: Vec<(f64, u64)> = bounds
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| (bound, sum(&m.shards, |s| &s.latency[i])))
            .collect();
        let count = buckets.iter().map(|b| b.1).sum();
        let latency_sum = sum(&m.shards, |s| &s.latency_sum_us) as f64 / 1e6;
        let pairs = |map: &std::sync::Mutex<std::collections::HashMap<&'static str, u64>>| {
            let mut v: Vec<_> = map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, n)| (*k, *n))
                .collect();
            v.sort_unstable();
            v
        };
        Snapshot {
            sessions,
            queued_bytes: shared.outbound.total_bytes() as i64,
            queued_cap: shared.outbound.total_cap().map(|c| c as i64),
            largest_backlog: i64::from(largest),
            received: by_code(|s, c| &s.received[c]),
            sent: by_code(|s, c| &s.sent[c]),
            bytes: [
                sum(&m.shards, |s| &s.bytes_received),
                sum(&m.shards, |s| &s.bytes_sent),
            ],
            slow_closes: SlowClose::ALL
                .iter()
                .map(|w| {
                    (
                        w.label(),
                        m.slow_closes[*w as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            auth_failures: m.auth_failures.load(Ordering::Relaxed),
            refusals: pairs(&m.refusals),
            limits: pairs(&m.limits),
            latency: (buckets, count, latency_sum),
            cluster_drops: cluster_drops(shared),
        }
    }
}

#[cfg(feature = "cluster-nats")]
fn cluster_drops(shared: &RouterShared) -> Option<(u64, u64)> {
    shared.cluster.get().map(crate::cluster::Cluster::drops)
}

#[cfg(not(feature = "cluster-nats"))]
fn cluster_drops(_: &RouterShared) -> Option<(u64, u64)> {
    None
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One counter per label value.
fn counters(
    e: &mut DescriptorEncoder,
    (name, help, label): (&str, &str, &'static str),
    values: &[(&'static str, u64)],
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        ConstCounter::new(*n).encode(family.encode_family(&[(label, *value)])?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        {
            let mut family = e.encode_descriptor(
                "sessions",
                "Sessions joined, by realm and transport.",
                None,
                MetricType::Gauge,
            )?;
            for ((realm, transport), n) in &self.sessions {
                let labels = [("realm", realm.as_str()), ("transport", transport)];
                ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        let types = (
            "messages_received",
            "WAMP messages received, by type.",
            "type",
        );
        counters(&mut e, types, &self.received)?;
        let types = (
            "messages_sent",
            "WAMP messages queued for peers, by type.",
            "type",
        );
        counters(&mut e, types, &self.sent)?;
        counter(
            &mut e,
            "bytes_received",
            "Bytes of WAMP messages received.",
            self.bytes[0],
        )?;
        counter(
            &mut e,
            "bytes_sent",
            "Bytes of WAMP messages queued for peers.",
            self.bytes[1],
        )?;
        gauge(
            &mut e,
            "outbound_queued_bytes",
            "Bytes waiting in all sessions' outbound queues (to 64 KiB per session).",
            self.queued_bytes,
        )?;
        if let Some(cap) = self.queued_cap {
            gauge(
                &mut e,
                "outbound_queued_bytes_cap",
                "router.outbound.total_max_bytes.",
                cap,
            )?;
        }
        gauge(
            &mut e,
            "outbound_largest_backlog_bytes",
            "The largest backlog of one session.",
            self.largest_backlog,
        )?;
        let why = (
            "slow_consumer_closes",
            "Sessions closed as slow consumers, by reason.",
            "reason",
        );
        counters(&mut e, why, &self.slow_closes)?;
        counter(
            &mut e,
            "auth_failures",
            "Failed authentications.",
            self.auth_failures,
        )?;
        let refused = ("refusals", "Requests answered with ERROR or ABORT, by URI (wamp.error.limit_exceeded: a limit was hit).", "uri");
        counters(&mut e, refused, &self.refusals)?;
        let limits = (
            "limits_hit",
            "Limits hit (the request or connection was refused), by configuration key.",
            "limit",
        );
        counters(&mut e, limits, &self.limits)?;
        if let Some((unsent, slow)) = self.cluster_drops {
            let help = "Messages for other nodes not sent: NATS was down or the queue full.";
            counter(&mut e, "cluster_unsent", help, unsent)?;
            let help = "Messages from NATS dropped because this node read them too slowly \
                        ([cluster] subscription_capacity).";
            counter(&mut e, "cluster_slow_consumer_drops", help, slow)?;
        }
        let (buckets, count, sum) = &self.latency;
        let help = "Call latency, CALL to final answer (one call in 16 by request id).";
        e.encode_descriptor("call_latency_seconds", help, None, MetricType::Histogram)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                *sum, *count, buckets, None,
            )
    }
}
