//! The pattern indexes: the dealer's lookup a CALL pays when it hits no exact registration,
//! and the broker's lookup every PUBLISH pays when the realm has pattern subscriptions, with
//! 10 / 1,000 / 10,000 prefix or wildcard patterns; and the cost of adding and removing one
//! pattern (a SUBSCRIBE then UNSUBSCRIBE, or REGISTER then UNREGISTER) in an index of
//! 100 / 10,000 / 100,000, which must not grow with the index.
//!
//! `cargo bench -p wamp-router --bench patterns`. Under `cargo test --all-targets` each
//! benchmark runs once, as a smoke test. The index is crate-private; it is reached through
//! `wamp_router::__bench`, which exists for this file only.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use wamp_proto::{MatchPolicy, Uri};
use wamp_router::__bench::PatternIndex;

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// `com.app{i}.`: as many distinct prefixes as registrations, few distinct lengths.
fn prefixes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("com.app{i}.")).collect()
}

/// Wildcards at the third (`com.svc{i}..get`) or second (`com..obj{i}.set`) component, so a
/// lookup walks literal branches and backtracks to wildcard ones.
fn wildcards(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("com.svc{i}..get")
            } else {
                format!("com..obj{i}.set")
            }
        })
        .collect()
}

fn bench_index(
    c: &mut Criterion,
    kind: &str,
    policy: MatchPolicy,
    patterns: fn(usize) -> Vec<String>,
    calls: fn(usize) -> [(&'static str, String, bool); 2],
) {
    let mut g = c.benchmark_group(format!("dealer_lookup/{kind}"));
    for n in SIZES {
        let pats = patterns(n);
        let pairs: Vec<_> = pats.iter().map(|p| (policy, p.as_str())).collect();
        let index = PatternIndex::build(&pairs);
        for (case, procedure, hit) in calls(n) {
            let procedure = Uri::new(&procedure);
            assert_eq!(
                index.best(procedure.as_str()).is_some(),
                hit,
                "{kind} {case} {n}"
            );
            g.bench_with_input(BenchmarkId::new(case, n), &procedure, |b, p| {
                b.iter(|| index.best(black_box(p.as_str())))
            });
        }
    }
    g.finish();
}

fn lookups(c: &mut Criterion) {
    bench_index(c, "prefix", MatchPolicy::Prefix, prefixes, |n| {
        [
            ("hit", format!("com.app{}.orders.create", n / 2), true),
            ("miss", "com.other.orders.create".to_owned(), false),
        ]
    });
    bench_index(c, "wildcard", MatchPolicy::Wildcard, wildcards, |n| {
        // k is odd: `com..obj{k}.set` matches, found only after the walk down the literal
        // `com.svc{k-1}` branch fails at the last component. The miss backtracks the same way.
        let k = (n / 2) | 1;
        [
            ("hit", format!("com.svc{}.obj{k}.set", k - 1), true),
            ("miss", format!("com.svc{}.item.delete", k - 1), false),
        ]
    });
}

/// The broker's index over N pattern subscriptions, half prefix and half wildcard, sharing
/// the first components with the topic (the same set as `wamp-proto`'s `broker_scan`, which
/// measures the linear scan this index replaced).
fn broker_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("broker_lookup");
    for n in SIZES {
        let subs: Vec<(MatchPolicy, String)> = (0..n)
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
            .collect();
        let pairs: Vec<_> = subs.iter().map(|(p, s)| (*p, s.as_str())).collect();
        let index = PatternIndex::build(&pairs);
        let topic = format!("com.example.rack7.device{}.state", (n / 2) | 1);
        assert_eq!(index.count_matches(&topic), 1);
        g.bench_with_input(BenchmarkId::from_parameter(n), &topic, |b, t| {
            b.iter(|| index.count_matches(black_box(t)))
        });
    }
    g.finish();
}

/// One insert and one remove of a pattern not in the index, next to N similar ones.
fn insert_remove(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert_remove");
    for (kind, policy) in [
        ("prefix", MatchPolicy::Prefix),
        ("wildcard", MatchPolicy::Wildcard),
    ] {
        let patterns = if policy == MatchPolicy::Prefix {
            prefixes
        } else {
            wildcards
        };
        for n in [100, 10_000, 100_000] {
            let pats = patterns(n + 1);
            let pairs: Vec<_> = pats[..n].iter().map(|p| (policy, p.as_str())).collect();
            let mut index = PatternIndex::build(&pairs);
            let extra = pats[n].as_str();
            g.bench_with_input(BenchmarkId::new(kind, n), &extra, |b, &p| {
                b.iter(|| {
                    index.insert(policy, black_box(p), 0);
                    index.remove(policy, black_box(p))
                })
            });
            assert_eq!(
                index.remove(policy, extra),
                None,
                "each remove undid its insert"
            );
        }
    }
    g.finish();
}

criterion_group!(benches, lookups, broker_lookup, insert_remove);
criterion_main!(benches);
