//! The `burst` scenario: one publisher sends N events as fast as it can to three
//! subscribers, one that never reads, one that reads at a set rate and one at full speed.
//! Reports what each got, when the stalled one was closed, and the router's peak memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::json;
use tokio::time::Instant;
use wamp_proto::message::{Publish, Subscribe};
use wamp_proto::{Dict, Id, Message, Payload, Uri, Value};

use crate::conn::{BufSize, Conn};
use crate::procfs::round3;
use crate::stats::{emit, Ctx};

/// Parameters of a `burst` run.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BurstArgs {
    /// Events to publish.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) events: u64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 1024)]
    pub(crate) payload: usize,
    /// Events per second the slow subscriber reads (0: no slow subscriber).
    #[arg(long, default_value_t = 5000)]
    pub(crate) slow_rate: u64,
    /// Seconds to wait, after the burst, for the readers to finish and the stalled
    /// subscriber to be closed.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) wait: f64,
}

const TOPIC: &str = "bench.burst";

/// How one reader did: events received in order, and whether the router closed it.
#[derive(Debug, Default)]
struct Outcome {
    received: u64,
    out_of_order: u64,
    closed_after_s: Option<f64>,
}

async fn subscriber(ctx: &Ctx, i: usize) -> anyhow::Result<Conn> {
    let mut c = Conn::connect(&ctx.target, i, BufSize::Small, ctx.connect_timeout).await?;
    c.acknowledged(|request| {
        Subscribe {
            request,
            options: Dict::new(),
            topic: Uri::new(TOPIC),
        }
        .into()
    })
    .await?;
    Ok(c)
}

/// Reads up to `n` events (at most `rate` per second, 0: as fast as they come).
async fn read(mut c: Conn, n: u64, rate: u64, start: Instant) -> Outcome {
    let mut o = Outcome::default();
    let pace = (rate > 0).then(|| Duration::from_secs_f64(100.0 / rate as f64));
    while o.received < n {
        match c.recv().await {
            Ok(Some(Message::Event(ev))) => {
                let seq = crate::conn::args::<(u64, serde::de::IgnoredAny)>(&ev.payload);
                if seq.map(|s| s.0) != Some(o.received) {
                    o.out_of_order += 1;
                }
                o.received += 1;
                if let (Some(p), true) = (pace, o.received % 100 == 0) {
                    tokio::time::sleep(p).await;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                o.closed_after_s = Some(start.elapsed().as_secs_f64());
                break;
            }
        }
    }
    o
}

/// A session subscribed to `wamp.session.on_leave`: reports when `session` left.
async fn leave_watcher(
    ctx: &Ctx,
    session: Id,
) -> anyhow::Result<tokio::task::JoinHandle<Option<Instant>>> {
    let mut c = Conn::connect(&ctx.target, 4, BufSize::Small, ctx.connect_timeout).await?;
    c.acknowledged(|request| {
        Subscribe {
            request,
            options: Dict::new(),
            topic: Uri::new("wamp.session.on_leave"),
        }
        .into()
    })
    .await
    .context("the burst scenario needs the meta API (wamp.session.on_leave)")?;
    Ok(tokio::spawn(async move {
        loop {
            match c.recv().await {
                Ok(Some(Message::Event(ev))) => {
                    // [session, authid, authrole]
                    type Left = (u64, serde::de::IgnoredAny, serde::de::IgnoredAny);
                    let id = crate::conn::args::<Left>(&ev.payload).map(|l| l.0);
                    if id == Some(session.get()) {
                        return Some(Instant::now());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }))
}

pub(crate) async fn run(ctx: &Ctx, a: &BurstArgs) -> anyhow::Result<()> {
    if !(0.0..=3600.0).contains(&a.wait) {
        bail!("--wait must be in [0, 3600] seconds");
    }
    let case = format!(
        "burst n{} b{} slow{} {}",
        a.events,
        a.payload,
        a.slow_rate,
        ctx.target.serializer.name()
    );
    eprintln!(
        "{case}: {} -> {}",
        ctx.label.as_deref().unwrap_or("router"),
        ctx.target.url
    );
    let stalled_conn = subscriber(ctx, 0).await.context("stalled subscriber")?;
    let stalled_left = leave_watcher(ctx, stalled_conn.session).await?;
    let fast_conn = subscriber(ctx, 1).await.context("fast subscriber")?;
    let slow_conn = if a.slow_rate > 0 {
        Some(subscriber(ctx, 2).await.context("slow subscriber")?)
    } else {
        None
    };
    let mut publisher = Conn::connect(&ctx.target, 3, BufSize::Busy, ctx.connect_timeout).await?;
    let rss_before = ctx.watched.rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_before.unwrap_or(0)));
    let watched = ctx.watched.clone();
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                if let Some(r) = watched.rss_kib() {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
            }
        })
    };
    let start = Instant::now();
    let n = a.events;
    let fast = tokio::spawn(read(fast_conn, n, 0, start));
    let slow = slow_conn.map(|c| tokio::spawn(read(c, n, a.slow_rate, start)));
    let blob = Value::Bytes(vec![0x5a; a.payload]);
    for i in 0..n {
        let request = publisher.request_id();
        publisher
            .feed(
                &Publish {
                    request,
                    options: Dict::new(),
                    topic: Uri::new(TOPIC),
                    payload: Payload::args(vec![i.into(), blob.clone()]),
                }
                .into(),
            )
            .await?;
        if i % 64 == 63 {
            publisher.flush().await?;
        }
    }
    publisher.flush().await?;
    let published_s = start.elapsed().as_secs_f64();
    let wait = Duration::from_secs_f64(a.wait);
    let fast = tokio::time::timeout(wait, fast)
        .await
        .ok()
        .and_then(Result::ok);
    let slow = match slow {
        Some(s) => tokio::time::timeout(wait, s)
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    let rest = wait.saturating_sub(start.elapsed());
    let stalled_closed = tokio::time::timeout(rest, stalled_left)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .map(|t| t.duration_since(start).as_secs_f64());
    // Read nothing from it until here; now let it go.
    drop(stalled_conn);
    sampler.abort();
    let rss_after = ctx.watched.rss_kib();
    let peak = peak.load(Ordering::Relaxed);
    let describe = |o: &Option<Outcome>| match o {
        Some(o) => format!(
            "{} of {n} in order{}{}",
            o.received - o.out_of_order,
            if o.out_of_order > 0 {
                format!(" ({} out of order)", o.out_of_order)
            } else {
                String::new()
            },
            o.closed_after_s
                .map_or(String::new(), |t| format!(", closed at {t:.2} s"))
        ),
        None => "did not finish".into(),
    };
    let summary = format!(
        "  published {n} x {} B in {published_s:.2} s ({:.0}/s)\n  fast reader: {}\n  slow reader ({}/s): {}\n  stalled reader: {}\n  router RSS {} KiB before, peak {} KiB, {} KiB after",
        a.payload,
        n as f64 / published_s,
        describe(&fast),
        a.slow_rate,
        describe(&slow),
        stalled_closed.map_or("not closed".into(), |t| format!("closed at {t:.2} s")),
        rss_before.map_or("?".into(), |r| r.to_string()),
        peak,
        rss_after.map_or("?".into(), |r| r.to_string()),
    );
    let outcome = |o: &Option<Outcome>| {
        o.as_ref().map(|o| {
            json!({"received": o.received, "out_of_order": o.out_of_order, "closed_after_s": o.closed_after_s.map(round3)})
        })
    };
    let mut line = ctx.header("burst", &case);
    line.insert("events".into(), n.into());
    line.insert("payload_bytes".into(), a.payload.into());
    line.insert("published_s".into(), round3(published_s).into());
    line.insert("fast".into(), json!(outcome(&fast)));
    line.insert("slow".into(), json!(outcome(&slow)));
    line.insert("slow_rate".into(), a.slow_rate.into());
    line.insert(
        "stalled_closed_after_s".into(),
        json!(stalled_closed.map(round3)),
    );
    line.insert("rss_before_kib".into(), json!(rss_before));
    line.insert("rss_peak_kib".into(), json!(peak));
    line.insert("rss_after_kib".into(), json!(rss_after));
    emit(&summary, line);
    Ok(())
}
