//! The `sessions` scenario: open N idle joined sessions; join rate and router memory each.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use futures_util::future::join_all;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::conn::{BufSize, Conn};
use crate::procfs::{raise_nofile, round3};
use crate::stats::{emit, latency_histogram, latency_json, latency_line, record, Ctx};

/// Parameters of a `sessions` run.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SessionsArgs {
    /// Sessions to open and keep joined.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) count: u32,
    /// Sessions connecting and joining at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) concurrency: u32,
    /// Seconds to wait after the last join before reading the router's memory.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) settle: f64,
    /// Seconds to keep the sessions open after the reading.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) hold: f64,
    /// Every session subscribes to this topic once joined.
    #[arg(long)]
    pub(crate) subscribe: Option<String>,
    /// After the memory reading, wait up to this many seconds for one event on every
    /// session (`--subscribe`; published by someone else, e.g. `wamp publish`), and report
    /// how many got it and over how long.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) await_event: f64,
}

pub(crate) async fn run(ctx: &Ctx, a: &SessionsArgs) -> anyhow::Result<()> {
    if !(0.0..=600.0).contains(&a.settle) || !(0.0..=3600.0).contains(&a.hold) {
        bail!("--settle must be in [0, 600] and --hold in [0, 3600] seconds");
    }
    let n = a.count as usize;
    let ser = ctx.target.serializer;
    let case = format!("sessions n{} {}", a.count, ser.name());
    eprintln!(
        "{case}: {} -> {}",
        ctx.label.as_deref().unwrap_or("router"),
        ctx.target.url
    );
    let (soft, hard) = raise_nofile();
    if (n as u64) + 64 > soft {
        eprintln!(
            "  warning: this process may open {soft} files (hard limit {hard}); {n} sessions need \
             about {} (and the router as many): expect failures past that",
            n + 64
        );
    }

    let rss_before = ctx.watched.rss_kib();
    let s0 = ctx.watched.sample();
    let start = Instant::now();
    let gate = Arc::new(Semaphore::new(a.concurrency as usize));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        // Spread over `--remote-url`s (cluster nodes) when given.
        let target = ctx.remote_target(i).clone();
        let timeout = ctx.connect_timeout;
        let topic = a.subscribe.as_deref().map(wamp_proto::Uri::new);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let t = Instant::now();
            let mut c = Conn::connect(&target, i, BufSize::Small, timeout).await?;
            if let Some(topic) = &topic {
                crate::subscriber::subscribe(&mut c, topic).await?;
            }
            anyhow::Ok((c, t.elapsed()))
        }));
    }
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0u64;
    let mut first_error = None;
    let mut hist = latency_histogram();
    for t in join_all(tasks).await {
        match t {
            Ok(Ok((c, d))) => {
                record(&mut hist, d);
                conns.push(c);
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("join task: {e}"));
            }
        }
    }
    let join_s = start.elapsed().as_secs_f64();
    let s1 = ctx.watched.sample();
    let cpu = s0.until(&s1);
    let joined = conns.len() as u64;
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let rss_after = ctx.watched.rss_kib();
    let bench_rss = crate::procfs::self_rss_kib();
    let received = if a.await_event > 0.0 {
        eprintln!(
            "  {joined} sessions waiting up to {} s for an event",
            a.await_event
        );
        Some(await_event(&mut conns, Duration::from_secs_f64(a.await_event)).await)
    } else {
        None
    };
    if a.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    }
    // Close abruptly (TCP FIN): a GOODBYE round trip each would only slow the teardown.
    drop(conns);

    let rate = joined as f64 / join_s;
    let rss_per = match (rss_before, rss_after) {
        (Some(b), Some(a)) if joined > 0 => Some((a as f64 - b as f64) / joined as f64),
        _ => None,
    };
    let per_cpu = cpu.per_router_cpu_s(joined as f64);
    let mut summary = format!(
        "  {joined} of {n} sessions joined in {join_s:.2} s: {rate:.0} joins/s; connect+join {}\n  {}",
        latency_line(&hist),
        cpu.describe()
    );
    if let Some(p) = per_cpu {
        summary.push_str(&format!("; {p:.0} joins per router-CPU-second"));
    }
    match (rss_before, rss_after, rss_per) {
        (Some(b), Some(a), Some(p)) => summary.push_str(&format!(
            "\n  router RSS {:.1} MiB -> {:.1} MiB: {:.2} KiB per idle session",
            b as f64 / 1024.0,
            a as f64 / 1024.0,
            p
        )),
        _ => summary.push_str("\n  router RSS unknown (no --router-pid)"),
    }
    if let Some((got, spread)) = received {
        summary.push_str(&format!(
            "\n  the event reached {got} of {joined} sessions, the last {spread:.3} s after the first"
        ));
    }
    if failed > 0 {
        summary.push_str(&format!(
            "\n  ERRORS: {failed} sessions failed to join (first: {})",
            first_error.as_deref().unwrap_or("?")
        ));
    }
    let mut line = ctx.header("sessions", &case);
    line.insert("count".into(), a.count.into());
    line.insert("concurrency".into(), a.concurrency.into());
    line.insert("joined".into(), joined.into());
    line.insert("errors".into(), failed.into());
    line.insert("first_error".into(), json!(first_error));
    line.insert("join_s".into(), round3(join_s).into());
    if let Some((got, spread)) = received {
        line.insert("event_received".into(), got.into());
        line.insert("event_spread_s".into(), round3(spread).into());
    }
    line.insert("joins_per_s".into(), round3(rate).into());
    line.insert("join_latency_us".into(), latency_json(&hist));
    line.insert("rss_before_kib".into(), json!(rss_before));
    line.insert("rss_after_kib".into(), json!(rss_after));
    line.insert("rss_per_session_kib".into(), json!(rss_per.map(round3)));
    line.insert("bench_rss_kib".into(), json!(bench_rss));
    line.insert("nofile_limit".into(), json!([soft, hard]));
    line.insert("cpu".into(), cpu.to_json());
    line.insert("joins_per_router_cpu_s".into(), json!(per_cpu.map(round3)));
    emit(&summary, line);
    Ok(())
}

/// Waits for one EVENT on each session (within `limit`): how many got one, and the time
/// from the first to the last.
async fn await_event(conns: &mut [Conn], limit: Duration) -> (u64, f64) {
    let deadline = Instant::now() + limit;
    let waits = conns.iter_mut().map(|c| async move {
        loop {
            match tokio::time::timeout_at(deadline, c.recv()).await {
                Ok(Ok(Some(wamp_proto::Message::Event(_)))) => return Some(Instant::now()),
                Ok(Ok(Some(_))) => continue,
                _ => return None,
            }
        }
    });
    let times: Vec<Instant> = join_all(waits).await.into_iter().flatten().collect();
    let spread = match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
        _ => 0.0,
    };
    (times.len() as u64, spread)
}
