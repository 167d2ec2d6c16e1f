//! The `pubsub` and `fanout` scenarios: P publishers, S subscribers on one topic.
//!
//! Each EVENT carries `[publisher, sequence, timestamp_ns, payload]`. Subscribers check the
//! per-publisher sequence (duplicates, reordering; losses are what never arrived) and record
//! the end-to-end latency from the timestamp (every session lives in this process, so one
//! monotonic clock serves all).
//!
//! `--rate max` is closed-loop: publishers stop publishing while more than `--window`
//! publications per publisher are not yet delivered to every subscriber, so the routers'
//! queues stay bounded and the figure is the sustainable delivery rate. A fixed `--rate` is
//! open-loop (events/s over all publishers).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures_util::future::join_all;
use serde_json::json;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use wamp_proto::message::Publish;
use wamp_proto::{Dict, Message, Payload, Uri, Value};

use crate::conn::{BufSize, Conn};
use crate::procfs::round3;
use crate::stats::{emit, latency_histogram, latency_json, latency_line, now_ns, Ctx};
use crate::subscriber::{run_subscriber, subscribe, Shared, SubOut, SHARDS};

/// Publish rate: a number of events per second (over all publishers) or `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rate {
    Max,
    PerSec(f64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r > 0.0 && r <= 10_000_000.0 => Ok(Rate::PerSec(r)),
            _ => Err("expected `max` or events per second in (0, 1e7]".into()),
        }
    }
}

/// Parameters of a `pubsub` run.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PubsubArgs {
    /// Publisher sessions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) publishers: u32,
    /// Subscriber sessions (all on one topic).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) subscribers: u32,
    /// Bytes of the string payload of each event.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=16_000_000))]
    pub(crate) payload: u32,
    /// Publications per second over all publishers, or `max` (closed loop, see --window).
    #[arg(long, default_value = "max")]
    pub(crate) rate: Rate,
    /// With `--rate max`: publications per publisher that may be undelivered at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) window: u32,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Subscriber sessions connecting at once during setup.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) concurrency: u32,
}

/// Parameters of a `fanout` run: one publisher, S subscribers, closed loop.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FanoutArgs {
    /// Subscriber sessions (100, 1000, 10000 ...).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) subscribers: u32,
    /// Bytes of the string payload of each event.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=16_000_000))]
    pub(crate) payload: u32,
    /// Publications that may be undelivered at once (closed loop).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) window: u32,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Subscriber sessions connecting at once during setup.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) concurrency: u32,
}

impl FanoutArgs {
    pub(crate) fn to_pubsub(&self) -> PubsubArgs {
        PubsubArgs {
            publishers: 1,
            subscribers: self.subscribers,
            payload: self.payload,
            rate: Rate::Max,
            window: self.window,
            duration: self.duration,
            concurrency: self.concurrency,
        }
    }
}

/// After the window, subscribers get this long without progress to receive what is still
/// queued (a slow router may hold a window's worth of fan-out) ...
const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// ... and this long at most.
const DRAIN_MAX: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct PubOut {
    published: u64,
    error: Option<String>,
}

pub(crate) async fn run(ctx: &Ctx, a: &PubsubArgs, scenario: &str) -> anyhow::Result<()> {
    if !(a.duration > 0.0 && a.duration <= 3600.0) {
        bail!("--duration must be in (0, 3600] seconds");
    }
    let duration = Duration::from_secs_f64(a.duration);
    let ser = ctx.target.serializer;
    let rate_name = match a.rate {
        Rate::Max => "max".to_owned(),
        Rate::PerSec(r) => format!("{r}"),
    };
    let case = if scenario == "fanout" {
        format!("fanout s{} b{} {}", a.subscribers, a.payload, ser.name())
    } else {
        format!(
            "pubsub p{} s{} b{} r{} {}",
            a.publishers,
            a.subscribers,
            a.payload,
            rate_name,
            ser.name()
        )
    };
    eprintln!(
        "{case}: {} -> {}",
        ctx.label.as_deref().unwrap_or("router"),
        ctx.target.url
    );
    let topic = Uri::new(&format!("bench.pubsub.r{}.topic", std::process::id()));

    // Subscribers first, each joined and subscribed before anything is published.
    let setup = Instant::now();
    let gate = Arc::new(Semaphore::new(a.concurrency as usize));
    let mut joins = Vec::with_capacity(a.subscribers as usize);
    for i in 0..a.subscribers as usize {
        let gate = gate.clone();
        let target = ctx.remote_target(i).clone();
        let topic = topic.clone();
        let timeout = ctx.connect_timeout;
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let mut c = Conn::connect(&target, i, BufSize::Small, timeout).await?;
            subscribe(&mut c, &topic).await?;
            anyhow::Ok(c)
        }));
    }
    let mut subs = Vec::with_capacity(joins.len());
    for (i, j) in join_all(joins).await.into_iter().enumerate() {
        subs.push(
            j.context("subscriber setup panicked")?
                .with_context(|| format!("subscriber {i}"))?,
        );
    }
    let setup_s = setup.elapsed().as_secs_f64();
    let pubs = join_all((0..a.publishers as usize).map(|i| {
        Conn::connect(
            &ctx.target,
            a.subscribers as usize + i,
            BufSize::Busy,
            ctx.connect_timeout,
        )
    }))
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()
    .context("connecting publishers")?;
    eprintln!(
        "  {} subscribers joined and subscribed in {:.2} s",
        a.subscribers, setup_s
    );

    let t_rec = Instant::now() + ctx.warmup;
    let t_end = t_rec + duration;
    let shared = Arc::new(Shared {
        subscribers: u64::from(a.subscribers),
        published: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        wake_at: AtomicU64::new(u64::MAX),
        notify: Notify::new(),
        failed: AtomicBool::new(false),
        lat: (0..SHARDS)
            .map(|_| Mutex::new(latency_histogram()))
            .collect(),
        t_rec,
        t_end,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(run_subscriber(
                c,
                i,
                a.publishers as usize,
                shared.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let payload = "x".repeat(a.payload as usize);
    let per_pub_rate = match a.rate {
        Rate::Max => None,
        Rate::PerSec(r) => Some(r / f64::from(a.publishers)),
    };
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(run_publisher(
                c,
                i,
                topic.clone(),
                payload.clone(),
                per_pub_rate,
                u64::from(a.window) * u64::from(a.publishers),
                shared.clone(),
            ))
        })
        .collect();

    tokio::time::sleep_until(t_rec).await;
    let s0 = ctx.watched.sample();
    let (p0, d0) = (
        shared.published.load(Ordering::Relaxed),
        shared.delivered.load(Ordering::Relaxed),
    );
    tokio::time::sleep_until(t_end).await;
    let s1 = ctx.watched.sample();
    let (p1, d1) = (
        shared.published.load(Ordering::Relaxed),
        shared.delivered.load(Ordering::Relaxed),
    );
    let cpu = s0.until(&s1);

    let mut pub_out = PubOut::default();
    for p in join_all(pub_tasks).await {
        let p = p.context("publisher task panicked")?;
        pub_out.published += p.published;
        if pub_out.error.is_none() {
            pub_out.error = p.error;
        }
    }
    // Drain: wait (bounded) until every subscriber has everything, then stop them.
    let expected = pub_out.published * u64::from(a.subscribers);
    let drain_end = Instant::now() + DRAIN_MAX;
    let mut last = (shared.delivered.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = Instant::now();
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if delivered >= expected
            || now >= drain_end
            || shared.failed.load(Ordering::Relaxed)
            || (delivered == last.0 && now - last.1 >= DRAIN_IDLE)
        {
            break;
        }
        if delivered != last.0 {
            last = (delivered, now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let mut sub_out = SubOut::default();
    let mut lost_sessions = 0u64;
    for s in join_all(sub_tasks).await {
        let s = s.context("subscriber task panicked")?;
        sub_out.received += s.received;
        sub_out.duplicated += s.duplicated;
        sub_out.reordered += s.reordered;
        sub_out.malformed += s.malformed;
        if s.error.is_some() {
            lost_sessions += 1;
            if sub_out.error.is_none() {
                sub_out.error = s.error;
            }
        }
    }
    let mut hist = latency_histogram();
    for shard in &shared.lat {
        let h = shard.lock().unwrap_or_else(|e| e.into_inner());
        let _ = hist.add(&*h);
    }

    let secs = duration.as_secs_f64();
    let published_rate = (p1 - p0) as f64 / secs;
    let delivered_rate = (d1 - d0) as f64 / secs;
    let unique = sub_out.received - sub_out.duplicated;
    let lost = expected.saturating_sub(unique);
    let per_cpu = cpu.per_router_cpu_s((d1 - d0) as f64);
    let mut summary = format!(
        "  published {:.0}/s, delivered {:.0} events/s over {:.1} s; end-to-end {}\n  lost {}, duplicated {}, reordered {} (of {} expected)\n  {}",
        published_rate,
        delivered_rate,
        secs,
        latency_line(&hist),
        lost,
        sub_out.duplicated,
        sub_out.reordered,
        expected,
        cpu.describe()
    );
    if let Some(p) = per_cpu {
        summary.push_str(&format!("; {p:.0} events delivered per router-CPU-second"));
    }
    let errors = lost_sessions + sub_out.malformed + u64::from(pub_out.error.is_some());
    if errors > 0 {
        summary.push_str(&format!(
            "\n  ERRORS: {lost_sessions} subscriber sessions lost, {} malformed events{}",
            sub_out.malformed,
            sub_out
                .error
                .as_deref()
                .or(pub_out.error.as_deref())
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ));
    }
    let mut line = ctx.header(scenario, &case);
    line.insert("publishers".into(), a.publishers.into());
    line.insert("subscribers".into(), a.subscribers.into());
    line.insert("payload_bytes".into(), a.payload.into());
    line.insert("rate".into(), rate_name.into());
    line.insert("window".into(), a.window.into());
    line.insert("duration_s".into(), round3(secs).into());
    line.insert("setup_s".into(), round3(setup_s).into());
    line.insert("published".into(), (p1 - p0).into());
    line.insert("published_per_s".into(), round3(published_rate).into());
    line.insert("delivered".into(), (d1 - d0).into());
    line.insert("delivered_per_s".into(), round3(delivered_rate).into());
    line.insert("latency_us".into(), latency_json(&hist));
    line.insert("published_total".into(), pub_out.published.into());
    line.insert("expected_total".into(), expected.into());
    line.insert("received_total".into(), sub_out.received.into());
    line.insert("lost".into(), lost.into());
    line.insert("duplicated".into(), sub_out.duplicated.into());
    line.insert("reordered".into(), sub_out.reordered.into());
    line.insert("errors".into(), errors.into());
    line.insert(
        "error_detail".into(),
        json!({
            "subscriber_sessions_lost": lost_sessions,
            "malformed": sub_out.malformed,
            "first": sub_out.error.or(pub_out.error),
        }),
    );
    line.insert("cpu".into(), cpu.to_json());
    line.insert(
        "delivered_per_router_cpu_s".into(),
        json!(per_cpu.map(round3)),
    );
    emit(&summary, line);
    Ok(())
}

async fn run_publisher(
    mut c: Conn,
    index: usize,
    topic: Uri,
    payload: String,
    rate: Option<f64>,
    window_total: u64,
    shared: Arc<Shared>,
) -> PubOut {
    let mut out = PubOut::default();
    let start = Instant::now();
    let shared = &*shared;
    let result: anyhow::Result<()> = async {
        while Instant::now() < shared.t_end && !shared.failed.load(Ordering::Relaxed) {
            // How many to send now.
            let burst = match rate {
                Some(r) => {
                    let due = (start.elapsed().as_secs_f64() * r) as u64;
                    if due <= out.published {
                        let next = start + Duration::from_secs_f64((out.published + 1) as f64 / r);
                        tokio::time::sleep_until(next.min(shared.t_end)).await;
                        continue;
                    }
                    (due - out.published).min(1024)
                }
                None => {
                    let room = wait_for_room(shared, window_total).await;
                    if room == 0 {
                        continue;
                    }
                    room.min(1024)
                }
            };
            for _ in 0..burst {
                out.published += 1;
                let seq = out.published;
                let request = c.request_id();
                c.feed(
                    &Publish {
                        request,
                        options: Dict::new(),
                        topic: topic.clone(),
                        payload: Payload::args(vec![
                            Value::UInt(index as u64),
                            Value::UInt(seq),
                            Value::UInt(now_ns()),
                            Value::Str(payload.clone()),
                        ]),
                    }
                    .into(),
                )
                .await?;
                shared.published.fetch_add(1, Ordering::Relaxed);
            }
            c.flush().await?;
            // Publishers expect nothing back; read whatever came (pings are answered).
            while let Some(m) = c.try_recv() {
                match m? {
                    Some(Message::Error(e)) => bail!("PUBLISH refused: {}", e.error),
                    Some(_) => {}
                    None => bail!("router closed the publisher's connection"),
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => c.close().await,
        Err(e) => {
            out.error = Some(format!("{e:#}"));
            shared.failed.store(true, Ordering::Relaxed);
        }
    }
    out
}

/// Closed loop: waits until fewer than `window_total` publications are undelivered (to every
/// subscriber); returns how many may be sent now (0 when the window ended meanwhile).
async fn wait_for_room(shared: &Shared, window_total: u64) -> u64 {
    let s = shared.subscribers;
    loop {
        let published = shared.published.load(Ordering::Relaxed);
        let delivered = shared.delivered.load(Ordering::Relaxed);
        // Publications fully delivered, counted in whole events over all subscribers.
        let outstanding = (published * s).saturating_sub(delivered).div_ceil(s);
        if outstanding < window_total {
            return window_total - outstanding;
        }
        if Instant::now() >= shared.t_end || shared.failed.load(Ordering::Relaxed) {
            return 0;
        }
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Wake when half the window has drained.
        let target = published * s - (window_total / 2) * s;
        shared.wake_at.fetch_min(target, Ordering::Relaxed);
        if shared.delivered.load(Ordering::Relaxed) >= target {
            continue;
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
        shared.wake_at.store(u64::MAX, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_parsing() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("1000".parse::<Rate>().unwrap(), Rate::PerSec(1000.0));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }
}
