//! wamp-bench: a WAMP load generator that measures any WAMP router over WebSocket or
//! RawSocket (TCP or Unix socket).
//!
//! Every scenario prints a short human summary on stderr and exactly one JSON line on stdout
//! with all its figures, so `wamp-bench ... >> runs.jsonl` collects results and
//! `wamp-bench report --input runs.jsonl` tabulates them. With `--router-pid`, each figure
//! also comes per second of the router's CPU time (the load generator shares the machine).
//!
//! Only loopback targets are accepted; every loop is bounded in count and time.

mod burst;
mod conn;
mod floor;
mod procfs;
mod pubsub;
mod rawsocket;
mod report;
mod rpc;
mod sessions;
mod stats;
mod subscriber;

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use wamp_proto::Serializer;

use crate::conn::Target;
use crate::procfs::Watched;
use crate::stats::Ctx;

/// A WAMP v2 load generator (WebSocket or RawSocket, json or msgpack) for any router on this
/// machine.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options every scenario takes.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Router URL: `ws://HOST:PORT/PATH` (WebSocket), `rs://HOST:PORT` or `tcp://HOST:PORT`
    /// (RawSocket over TCP), `unix:///PATH` (RawSocket over a Unix socket). Hosts must be
    /// loopback addresses.
    #[arg(long, global = true, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Realm to join.
    #[arg(long, global = true, default_value = "realm1")]
    realm: String,
    /// WAMP serializer: json, msgpack or cbor.
    #[arg(long, global = true, default_value = "msgpack", value_parser = parse_serializer)]
    serializer: Serializer,
    /// The router's process id(s), comma-separated: CPU time (and memory) are read from
    /// /proc and summed.
    #[arg(long, global = true, value_delimiter = ',')]
    router_pid: Vec<u32>,
    /// In a cluster: callees (rpc) and subscribers (fanout, pubsub) join these URLs, in
    /// turn, instead of `--url` (comma-separated), so every call and event crosses nodes.
    #[arg(long, global = true, value_delimiter = ',')]
    remote_url: Vec<String>,
    /// A name for the router under test, copied into the JSON line (e.g. `crossbar`).
    #[arg(long, global = true)]
    label: Option<String>,
    /// Appended to the case name in the JSON line, to tell runs of one scenario under
    /// different conditions apart (e.g. `busy-vcpus`).
    #[arg(long, global = true)]
    tag: Option<String>,
    /// Seconds of load before the measured window.
    #[arg(long, global = true, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds one session may take to connect and join.
    #[arg(long, global = true, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Worker threads of the load generator (default: one per CPU).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Authenticate every session as this authid (with one of the secrets below).
    #[arg(long, global = true)]
    authid: Option<String>,
    /// Authenticate with this ticket (method `ticket`).
    #[arg(long, global = true)]
    ticket: Option<String>,
    /// Authenticate with this WAMP-CRA secret (method `wampcra`, salted if the router says).
    #[arg(long, global = true)]
    wampcra_secret: Option<String>,
    /// Authenticate with this Ed25519 seed, 64 hex characters (method `cryptosign`).
    #[arg(long, global = true)]
    cryptosign_seed: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// C callers keep W calls in flight each against K echo callees: calls/s, round trip.
    Rpc(rpc::RpcArgs),
    /// P publishers, S subscribers on one topic: published/s, delivered/s, end-to-end
    /// latency, lost / duplicated / reordered events.
    Pubsub(pubsub::PubsubArgs),
    /// One publisher, S subscribers, closed loop: events delivered per second.
    Fanout(pubsub::FanoutArgs),
    /// One publisher's burst to a stalled, a slow and a full-speed subscriber: what each
    /// got, when the stalled one was closed, the router's peak memory.
    Burst(burst::BurstArgs),
    /// Open N idle joined sessions: join rate, router memory per session.
    Sessions(sessions::SessionsArgs),
    /// No router: a byte-copying relay on loopback, the lowest RPC round trip possible here.
    Floor(floor::FloorArgs),
    /// Tabulate JSON lines: medians per case and router, our/baseline ratios (markdown).
    Report(report::ReportArgs),
}

fn parse_serializer(s: &str) -> Result<Serializer, String> {
    Serializer::from_name(s)
        .ok_or_else(|| format!("unknown serializer `{s}` (json, msgpack, cbor)"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wamp-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Report(a) = &cli.cmd {
        return report::run(a);
    }
    let c = &cli.common;
    if !(0.0..=600.0).contains(&c.warmup) {
        bail!("--warmup must be in [0, 600] seconds");
    }
    if !(c.connect_timeout > 0.0 && c.connect_timeout <= 600.0) {
        bail!("--connect-timeout must be in (0, 600] seconds");
    }
    let mut target = Target::new(&c.url, &c.realm, c.serializer)?;
    let method = match (&c.ticket, &c.wampcra_secret, &c.cryptosign_seed) {
        (Some(t), None, None) => Some(conn::AuthMethod::Ticket(t.clone())),
        (None, Some(s), None) => Some(conn::AuthMethod::WampCra(s.clone())),
        (None, None, Some(seed)) => Some(conn::AuthMethod::Cryptosign(
            wamp_auth::cryptosign::SigningKey::from_hex(seed)
                .map_err(|e| anyhow::anyhow!("--cryptosign-seed: {e}"))?,
        )),
        (None, None, None) => None,
        _ => anyhow::bail!("give at most one of --ticket, --wampcra-secret, --cryptosign-seed"),
    };
    target.auth = method.map(|method| conn::Auth {
        authid: c.authid.clone(),
        method,
    });
    let watched = Watched::new(c.router_pid.clone());
    if !watched.is_empty() {
        watched.check()?;
    }
    procfs::raise_nofile();
    let threads = c
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 256);
    let remote = c
        .remote_url
        .iter()
        .map(|u| {
            let mut t = Target::new(u, &c.realm, c.serializer)?;
            t.auth = target.auth.clone();
            Ok(t)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ctx = Ctx {
        remote,
        target,
        watched,
        label: c.label.clone(),
        tag: c.tag.clone(),
        warmup: Duration::from_secs_f64(c.warmup),
        connect_timeout: Duration::from_secs_f64(c.connect_timeout),
        threads,
    };
    if let Cmd::Floor(a) = &cli.cmd {
        return floor::run(&ctx, a);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async {
        match &cli.cmd {
            Cmd::Rpc(a) => rpc::run(&ctx, a).await,
            Cmd::Pubsub(a) => pubsub::run(&ctx, a, "pubsub").await,
            Cmd::Fanout(a) => pubsub::run(&ctx, &a.to_pubsub(), "fanout").await,
            Cmd::Sessions(a) => sessions::run(&ctx, a).await,
            Cmd::Burst(a) => burst::run(&ctx, a).await,
            Cmd::Report(_) | Cmd::Floor(_) => Ok(()),
        }
    });
    // Sessions still being torn down must not hold the process.
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

#[cfg(test)]
mod tests;
