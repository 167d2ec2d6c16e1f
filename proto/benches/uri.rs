//! URI validation and pattern matching: `uri::is_valid_uri` (strict/loose) and
//! `uri::matches`, the broker's per-subscription test.
//!
//! `cargo bench -p wamp-proto --bench uri`. Under `cargo test --all-targets` each benchmark
//! runs once, as a smoke test.
//!
//! `broker_scan/N` is what a PUBLISH costs the broker when the realm has N pattern
//! subscriptions: it tests each one with `matches` (a linear scan; exact subscriptions are a
//! hash lookup and not measured here). The dealer's pattern index is in
//! `router/benches/patterns.rs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wamp_proto::uri::{is_valid_uri, matches};
use wamp_proto::{MatchPolicy, UriCheck};

fn validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("is_valid_uri");
    let cases = [
        (
            "exact",
            "com.example.inventory.update_item",
            MatchPolicy::Exact,
        ),
        ("prefix", "com.example.inventory.", MatchPolicy::Prefix),
        (
            "wildcard",
            "com.example..update_item",
            MatchPolicy::Wildcard,
        ),
    ];
    for check in [UriCheck::Loose, UriCheck::Strict] {
        let check_name = match check {
            UriCheck::Loose => "loose",
            UriCheck::Strict => "strict",
        };
        for (name, uri, policy) in cases {
            assert!(is_valid_uri(uri, check, policy), "{uri}");
            g.bench_function(format!("{check_name}/{name}"), |b| {
                b.iter(|| is_valid_uri(black_box(uri), check, policy))
            });
        }
    }
    g.finish();
}

fn matching(c: &mut Criterion) {
    let topic = "com.example.sensors.rack7.temperature";
    let mut g = c.benchmark_group("matches");
    let cases = [
        ("exact/hit", MatchPolicy::Exact, topic, true),
        (
            "exact/miss",
            MatchPolicy::Exact,
            "com.example.sensors.rack7.humidity",
            false,
        ),
        (
            "prefix/hit",
            MatchPolicy::Prefix,
            "com.example.sensors.",
            true,
        ),
        (
            "prefix/miss",
            MatchPolicy::Prefix,
            "com.example.actuators.",
            false,
        ),
        (
            "wildcard/hit",
            MatchPolicy::Wildcard,
            "com.example.sensors..temperature",
            true,
        ),
        (
            "wildcard/miss",
            MatchPolicy::Wildcard,
            "com.example.sensors..humidity",
            false,
        ),
    ];
    for (name, policy, pattern, hit) in cases {
        assert_eq!(matches(policy, pattern, topic), hit, "{name}");
        g.bench_function(name, |b| {
            b.iter(|| matches(policy, black_box(pattern), black_box(topic)))
        });
    }
    g.finish();
}

/// N pattern subscriptions, half prefix and half wildcard, sharing the first components
/// with the topic (so rejections are not decided by the first byte).
fn subscriptions(n: usize) -> Vec<(MatchPolicy, String)> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                (MatchPolicy::Prefix, format!("com.example.app{i}."))
            } else {
                (
                    MatchPolicy::Wildcard,
                    format!("com.example..device{i}.state"),
                )
            }
        })
        .collect()
}

fn broker_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("broker_scan");
    for n in [10, 1_000, 10_000] {
        let subs = subscriptions(n);
        // Matches exactly one wildcard subscription, in the middle of the list.
        let topic = format!("com.example.rack7.device{}.state", (n / 2) | 1);
        let hits = |subs: &[(MatchPolicy, String)]| {
            subs.iter()
                .filter(|(p, pat)| matches(*p, pat, black_box(&topic)))
                .count()
        };
        assert_eq!(hits(&subs), 1);
        // Elements: subscriptions tested per second.
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &subs, |b, subs| {
            b.iter(|| hits(subs))
        });
    }
    g.finish();
}

criterion_group!(benches, validation, matching, broker_scan);
criterion_main!(benches);
