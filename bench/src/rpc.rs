//! The `rpc` scenario: C callers keep W calls in flight each against K echo callees.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures_util::future::join_all;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use wamp_proto::message::{Call, Register, Yield};
use wamp_proto::{Dict, Message, Payload, Uri, Value};

use crate::conn::{BufSize, Conn};
use crate::procfs::round3;
use crate::stats::{emit, latency_histogram, latency_json, latency_line, record, Ctx, Latency};

/// Parameters of an `rpc` run.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RpcArgs {
    /// Caller sessions.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) callers: u32,
    /// Calls each caller keeps in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) in_flight: u32,
    /// Callee sessions, each registering its own procedure (the Basic Profile allows one
    /// callee per procedure); callers spread their calls over all of them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) callees: u32,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Bytes of the string argument each call carries (echoed back).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=16_000_000))]
    pub(crate) payload: u32,
}

/// How long callers wait for their last answers after the measured window.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct CallerOut {
    /// Calls completed (correctly) inside the measured window.
    in_window: u64,
    completed: u64,
    error_replies: u64,
    mismatches: u64,
    timeouts: u64,
    transport_errors: u64,
    first_error: Option<String>,
    hist: Option<Latency>,
}

#[derive(Debug, Default)]
struct CalleeOut {
    invocations: u64,
    unexpected: u64,
    error: Option<String>,
}

pub(crate) async fn run(ctx: &Ctx, a: &RpcArgs) -> anyhow::Result<()> {
    if !(a.duration > 0.0 && a.duration <= 3600.0) {
        bail!("--duration must be in (0, 3600] seconds");
    }
    let duration = Duration::from_secs_f64(a.duration);
    let ser = ctx.target.serializer;
    let case = format!(
        "rpc c{} w{} k{} b{} {}",
        a.callers,
        a.in_flight,
        a.callees,
        a.payload,
        ser.name()
    );
    eprintln!(
        "{case}: {} -> {}",
        ctx.label.as_deref().unwrap_or("router"),
        ctx.target.url
    );
    let run_id = std::process::id();
    let procedures: Vec<Uri> = (0..a.callees)
        .map(|k| Uri::new(&format!("bench.rpc.r{run_id}.echo{k}")))
        .collect();

    // Callees: join, register, serve until told to stop.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut callees = Vec::new();
    for (k, proc) in procedures.iter().enumerate() {
        let mut c = Conn::connect(ctx.remote_target(k), k, BufSize::Busy, ctx.connect_timeout)
            .await
            .with_context(|| format!("callee {k}"))?;
        register(&mut c, proc)
            .await
            .with_context(|| format!("callee {k} registering `{proc}`"))?;
        callees.push(tokio::spawn(serve_callee(c, stop_rx.clone())));
    }

    // Callers.
    let conns = join_all((0..a.callers as usize).map(|i| {
        Conn::connect(
            &ctx.target,
            a.callees as usize + i,
            BufSize::Busy,
            ctx.connect_timeout,
        )
    }))
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()
    .context("connecting callers")?;

    let payload = "x".repeat(a.payload as usize);
    let t_rec = Instant::now() + ctx.warmup;
    let t_end = t_rec + duration;
    let callers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(run_caller(
                c,
                i,
                procedures.clone(),
                a.in_flight as usize,
                payload.clone(),
                t_rec,
                t_end,
            ))
        })
        .collect();

    tokio::time::sleep_until(t_rec).await;
    let s0 = ctx.watched.sample();
    tokio::time::sleep_until(t_end).await;
    let s1 = ctx.watched.sample();
    let cpu = s0.until(&s1);

    let mut total = CallerOut::default();
    let mut hist = latency_histogram();
    for c in join_all(callers).await {
        let c = c.context("caller task panicked")?;
        total.in_window += c.in_window;
        total.completed += c.completed;
        total.error_replies += c.error_replies;
        total.mismatches += c.mismatches;
        total.timeouts += c.timeouts;
        total.transport_errors += c.transport_errors;
        if total.first_error.is_none() {
            total.first_error = c.first_error;
        }
        if let Some(h) = c.hist {
            let _ = hist.add(h);
        }
    }
    let _ = stop_tx.send(true);
    let mut served = CalleeOut::default();
    for c in join_all(callees).await {
        let c = c.context("callee task panicked")?;
        served.invocations += c.invocations;
        served.unexpected += c.unexpected;
        if served.error.is_none() {
            served.error = c.error;
        }
    }

    let secs = duration.as_secs_f64();
    let rate = total.in_window as f64 / secs;
    let errors = total.error_replies
        + total.mismatches
        + total.timeouts
        + total.transport_errors
        + served.unexpected;
    let per_cpu = cpu.per_router_cpu_s(total.in_window as f64);
    let mut summary = format!(
        "  {:.0} calls/s over {:.1} s ({} calls), round trip {}\n  {}",
        rate,
        secs,
        total.in_window,
        latency_line(&hist),
        cpu.describe()
    );
    if let Some(p) = per_cpu {
        summary.push_str(&format!("; {p:.0} calls per router-CPU-second"));
    }
    if errors > 0 {
        summary.push_str(&format!(
            "\n  ERRORS: {} error replies, {} mismatched results, {} unanswered, {} transport errors, {} unexpected at callees{}",
            total.error_replies,
            total.mismatches,
            total.timeouts,
            total.transport_errors,
            served.unexpected,
            total
                .first_error
                .as_deref()
                .or(served.error.as_deref())
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ));
    }
    let mut line = ctx.header("rpc", &case);
    line.insert("callers".into(), a.callers.into());
    line.insert("in_flight".into(), a.in_flight.into());
    line.insert("callees".into(), a.callees.into());
    line.insert("payload_bytes".into(), a.payload.into());
    line.insert("duration_s".into(), round3(secs).into());
    line.insert("calls".into(), total.in_window.into());
    line.insert("calls_total".into(), total.completed.into());
    line.insert("calls_per_s".into(), round3(rate).into());
    line.insert("latency_us".into(), latency_json(&hist));
    line.insert("errors".into(), errors.into());
    line.insert(
        "error_detail".into(),
        json!({
            "error_replies": total.error_replies,
            "mismatches": total.mismatches,
            "unanswered": total.timeouts,
            "transport": total.transport_errors,
            "unexpected_at_callees": served.unexpected,
            "first": total.first_error.or(served.error),
        }),
    );
    line.insert("invocations_served".into(), served.invocations.into());
    line.insert("cpu".into(), cpu.to_json());
    line.insert("calls_per_router_cpu_s".into(), json!(per_cpu.map(round3)));
    emit(&summary, line);
    Ok(())
}

async fn register(c: &mut Conn, procedure: &Uri) -> anyhow::Result<()> {
    c.acknowledged(|request| {
        Register {
            request,
            options: Dict::new(),
            procedure: procedure.clone(),
        }
        .into()
    })
    .await
}

async fn serve_callee(mut c: Conn, mut stop: watch::Receiver<bool>) -> CalleeOut {
    let mut out = CalleeOut::default();
    let result: anyhow::Result<()> = async {
        loop {
            let first = tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                    continue;
                }
                m = c.recv() => m?,
            };
            let Some(m) = first else {
                bail!("router closed the callee's connection");
            };
            callee_handle(&mut c, m, &mut out).await?;
            while let Some(m) = c.try_recv() {
                match m? {
                    Some(m) => callee_handle(&mut c, m, &mut out).await?,
                    None => bail!("router closed the callee's connection"),
                }
            }
            c.flush().await?;
        }
    }
    .await;
    if let Err(e) = result {
        out.error = Some(format!("{e:#}"));
        out.unexpected += 1;
        return out;
    }
    c.close().await;
    out
}

async fn callee_handle(c: &mut Conn, m: Message, out: &mut CalleeOut) -> anyhow::Result<()> {
    match m {
        Message::Invocation(inv) => {
            out.invocations += 1;
            c.feed(
                &Yield {
                    request: inv.request,
                    options: Dict::new(),
                    payload: inv.payload,
                }
                .into(),
            )
            .await
        }
        other => {
            out.unexpected += 1;
            if out.error.is_none() {
                out.error = Some(format!("callee received {}", other.name()));
            }
            Ok(())
        }
    }
}

/// Whether a RESULT's payload is exactly the `[request, payload]` the call sent.
fn is_echo(p: &Payload, request: u64, payload: &str) -> bool {
    crate::conn::args::<(u64, String)>(p).is_some_and(|(r, s)| r == request && s == payload)
}

async fn run_caller(
    mut c: Conn,
    index: usize,
    procedures: Vec<Uri>,
    window: usize,
    payload: String,
    t_rec: Instant,
    t_end: Instant,
) -> CallerOut {
    let mut out = CallerOut::default();
    let mut hist = latency_histogram();
    let mut pending: HashMap<u64, Instant> = HashMap::with_capacity(window * 2);
    let mut issued: usize = index;
    let hard_end = t_end + DRAIN;
    let result: anyhow::Result<()> = async {
        for _ in 0..window {
            issue(&mut c, &procedures, &mut issued, &payload, &mut pending).await?;
        }
        c.flush().await?;
        while !pending.is_empty() {
            let first = tokio::select! {
                m = c.recv() => m?,
                () = tokio::time::sleep_until(hard_end) => break,
            };
            let mut next = first;
            loop {
                let Some(m) = next else {
                    bail!("router closed the caller's connection");
                };
                let now = Instant::now();
                let again = on_reply(
                    m,
                    now,
                    &payload,
                    &mut pending,
                    &mut out,
                    &mut hist,
                    t_rec,
                    t_end,
                );
                if again && now < t_end {
                    issue(&mut c, &procedures, &mut issued, &payload, &mut pending).await?;
                }
                next = match c.try_recv() {
                    Some(m) => m?,
                    None => break,
                };
            }
            c.flush().await?;
        }
        Ok(())
    }
    .await;
    out.timeouts = pending.len() as u64;
    if let Err(e) = result {
        out.transport_errors += 1;
        out.first_error = Some(format!("{e:#}"));
    } else {
        c.close().await;
    }
    out.hist = Some(hist);
    out
}

async fn issue(
    c: &mut Conn,
    procedures: &[Uri],
    issued: &mut usize,
    payload: &str,
    pending: &mut HashMap<u64, Instant>,
) -> anyhow::Result<()> {
    let request = c.request_id();
    let procedure = procedures[*issued % procedures.len()].clone();
    *issued += 1;
    pending.insert(request.get(), Instant::now());
    c.feed(
        &Call {
            request,
            options: Dict::new(),
            procedure,
            payload: Payload::args(vec![
                Value::UInt(request.get()),
                Value::Str(payload.to_owned()),
            ]),
        }
        .into(),
    )
    .await
}

/// Accounts for one reply; returns whether a call completed (so another may be issued).
#[allow(clippy::too_many_arguments)]
fn on_reply(
    m: Message,
    now: Instant,
    payload: &str,
    pending: &mut HashMap<u64, Instant>,
    out: &mut CallerOut,
    hist: &mut Latency,
    t_rec: Instant,
    t_end: Instant,
) -> bool {
    let fail = |out: &mut CallerOut, why: String| {
        if out.first_error.is_none() {
            out.first_error = Some(why);
        }
    };
    match m {
        Message::Result(r) => {
            let Some(sent) = pending.remove(&r.request.get()) else {
                out.mismatches += 1;
                fail(out, format!("RESULT for unknown request {}", r.request));
                return false;
            };
            if !is_echo(&r.payload, r.request.get(), payload) {
                out.mismatches += 1;
                fail(out, format!("RESULT {} does not echo the call", r.request));
                return true;
            }
            out.completed += 1;
            if now >= t_rec && now < t_end {
                out.in_window += 1;
                record(hist, now - sent);
            }
            true
        }
        Message::Error(e) => {
            out.error_replies += 1;
            fail(out, format!("ERROR {} for call {}", e.error, e.request));
            pending.remove(&e.request.get()).is_some()
        }
        other => {
            out.mismatches += 1;
            fail(out, format!("caller received {}", other.name()));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::Serializer;

    /// A payload as the bench receives it: still encoded (`decode_shared`).
    fn received(ser: Serializer, payload: Payload) -> Payload {
        let msg: Message = Yield {
            request: wamp_proto::Id::new(1).unwrap(),
            options: Dict::new(),
            payload,
        }
        .into();
        let frame = ser.encode(&msg).unwrap().as_bytes().to_vec();
        match ser.decode_shared(&frame.into()).unwrap() {
            Message::Yield(y) => y.payload,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn echo_check() {
        for ser in Serializer::ALL {
            let sent = Payload::args(vec![Value::UInt(7), Value::Str("abc".into())]);
            let p = received(ser, sent.clone());
            assert!(is_echo(&p, 7, "abc"));
            assert!(!is_echo(&p, 8, "abc"));
            assert!(!is_echo(&p, 7, "abd"));
            let mut kw = sent.clone();
            kw.kwargs = Some(Dict::from([("k".into(), Value::Null)]));
            assert!(!is_echo(&received(ser, kw), 7, "abc"));
            let mut extra = sent;
            extra.args.as_mut().unwrap().push(Value::Null);
            assert!(!is_echo(&received(ser, extra), 7, "abc"));
            assert!(!is_echo(&Payload::default(), 7, "abc"));
        }
    }
}
