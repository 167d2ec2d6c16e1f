//! `floor`: the lowest round trip any router can reach on this machine.
//!
//! A routed call crosses loopback four times (caller → router → callee → router → caller).
//! This scenario times exactly that path with a relay that does nothing: three threads on
//! blocking sockets (client, relay, echo), the relay copying B bytes one way, then back. No
//! WebSocket, no WAMP, no event loop: what remains is the kernel's loopback and the thread
//! wake-ups, which bound every router's 1-caller-1-in-flight RPC latency from below.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use crate::stats::{emit, latency_histogram, latency_json, latency_line, record, Ctx};

/// Arguments of `floor`.
#[derive(Debug, Args)]
pub(crate) struct FloorArgs {
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Bytes per message (about what a 100-byte-payload CALL weighs on the wire).
    #[arg(long, default_value_t = 130)]
    bytes: usize,
}

fn listener() -> anyhow::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    let a = l.local_addr()?;
    Ok((l, a))
}

fn accept(l: &TcpListener) -> std::io::Result<TcpStream> {
    let (s, _) = l.accept()?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn connect(a: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(a)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Echoes `n`-byte messages until the peer closes.
fn echo(l: TcpListener, n: usize) -> std::io::Result<()> {
    let mut s = accept(&l)?;
    let mut buf = vec![0; n];
    loop {
        if s.read_exact(&mut buf).is_err() {
            return Ok(());
        }
        s.write_all(&buf)?;
    }
}

/// Forwards each `n`-byte message from the client to the echo and the answer back.
fn relay(l: TcpListener, echo_at: SocketAddr, n: usize) -> std::io::Result<()> {
    let mut client = accept(&l)?;
    let mut upstream = connect(echo_at)?;
    let mut buf = vec![0; n];
    loop {
        if client.read_exact(&mut buf).is_err() {
            return Ok(());
        }
        upstream.write_all(&buf)?;
        upstream.read_exact(&mut buf)?;
        client.write_all(&buf)?;
    }
}

pub(crate) fn run(ctx: &Ctx, a: &FloorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.duration > 0.0 && a.duration <= 3600.0,
        "--duration must be in (0, 3600] seconds"
    );
    anyhow::ensure!(
        (1..=1 << 20).contains(&a.bytes),
        "--bytes must be in [1, 1 MiB]"
    );
    let n = a.bytes;
    let (echo_l, echo_at) = listener()?;
    let (relay_l, relay_at) = listener()?;
    let echo_t = std::thread::spawn(move || echo(echo_l, n));
    let relay_t = std::thread::spawn(move || relay(relay_l, echo_at, n));
    let mut s = connect(relay_at).context("connecting to the relay")?;
    let mut buf = vec![0x5a; n];
    let mut h = latency_histogram();
    let warm_until = Instant::now() + ctx.warmup;
    let mut started = Instant::now();
    let mut measuring = false;
    let duration = Duration::from_secs_f64(a.duration);
    loop {
        let t = Instant::now();
        if !measuring && t >= warm_until {
            measuring = true;
            started = t;
        }
        if measuring && t.duration_since(started) >= duration {
            break;
        }
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        if measuring {
            record(&mut h, t.elapsed());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(s);
    for t in [relay_t, echo_t] {
        t.join()
            .map_err(|_| anyhow::anyhow!("a relay thread panicked"))??;
    }
    let case = format!("floor relay b{n}");
    let rate = h.len() as f64 / elapsed;
    let summary = format!(
        "{case}: {rate:.0} round trips/s over {elapsed:.1} s, round trip {}",
        latency_line(&h)
    );
    let mut line = ctx.header("floor", &case);
    line.insert("duration_s".into(), json!(elapsed));
    line.insert("round_trips_per_s".into(), json!(rate));
    line.insert("latency_us".into(), latency_json(&h));
    emit(&summary, line);
    Ok(())
}
