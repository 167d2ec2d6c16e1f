//! wamp-router: a WAMP v2 router (routed RPC and PubSub) as an embeddable library.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let server = wamp_router::Server::start(wamp_router::Config::embedded()).await?;
//! println!("listening on {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: the TOML schema (transports as a tagged choice), validation that names
//!   file, key and line, and the embedded default.
//! - `server`: listeners (TCP, Unix sockets), accept loops, graceful shutdown ([`Server`]).
//! - `transport`: byte streams and framings (WebSocket upgrade and frames, RawSocket),
//!   nothing about WAMP state.
//! - `session`: the sans-I/O WAMP state machine and the one connection driver that runs it
//!   over any transport.
//! - `peer`: what the tables hold for a session (handle, bounded outbox, frame encoding).
//! - `realm`, `broker`, `dealer`: the routing tables; the dealer also owns the call
//!   lifecycle.
//! - `auth`: authentication methods (HELLO → CHALLENGE → AUTHENTICATE) and the compiled
//!   per-role permissions every CALL, REGISTER, PUBLISH and SUBSCRIBE is checked against.
//! - `meta`: the meta API (the router's own procedures and events in each realm).
//! - `check`: what a start would check of a file, without listening
//!   ([`check_config_file`]); `reload`: a new configuration put in force in a running
//!   router ([`Server::reload`], [`ReloadReport`]).
//! - `error`: the one routing-refusal type, mapped to ERROR or ABORT in one place.
//! - `backplane`: what a realm tells the other nodes of its cluster; `cluster` (cargo
//!   feature `cluster-nats`): that backplane on NATS (`docs/cluster.md`).
//!
//! Module dependencies point one way: `server` → `session` → `broker`/`dealer` → `peer`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod config;

mod auth;
mod backplane;
mod broker;
mod check;
mod close;
#[cfg(feature = "cluster-nats")]
mod cluster;
mod counters;
mod dealer;
mod error;
mod meta;
mod metrics;
pub(crate) mod patterns;
mod peer;
mod probe;
mod realm;
mod reload;
mod server;
mod session;
mod shared;
mod shed;
mod stable_ids;
mod stats;
mod transport;

pub use check::check_config_file;
pub use config::{Config, ConfigError};
pub use stats::TableSizes;

/// The argon2id PHC hash of `ticket`, for a user's `ticket = "..."` in the configuration
/// (`None` only for a ticket too long to hash).
pub fn hash_ticket(ticket: &str) -> Option<String> {
    wamp_auth::ticket::hash(ticket).ok()
}
pub use reload::ReloadReport;
pub use server::Server;

/// Internals exposed for `router/fuzz` and its seed-replay test only: not an API, no
/// stability promise.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::transport::fuzzing::{rawsocket_frames, rawsocket_handshake, websocket_frames};
}

/// Internals exposed for the tests' harness only: not an API, no stability promise.
#[doc(hidden)]
pub mod __testing {
    pub use crate::probe::RouteProbe;
}

/// Internals exposed for `router/benches` only: not an API, no stability promise.
#[doc(hidden)]
pub mod __bench {
    pub use crate::patterns::BenchIndex as PatternIndex;
}
