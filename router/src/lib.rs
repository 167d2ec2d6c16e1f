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
//! - [`config`]: the TOML schema, validation and the embedded default.
//! - `server`: listeners, accept loops, graceful shutdown ([`Server`]).
//! - `transport`: the WebSocket handshake (path, Origin, subprotocol).
//! - `session`: per-connection state machine (reader routes inline), the session handle the
//!   tables store, and the bounded outbound queue with its batching writer.
//! - `realm`, `broker`, `dealer`: the routing tables.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod config;

mod broker;
mod dealer;
pub(crate) mod patterns;
mod realm;
mod server;
mod session;
mod transport;

pub use config::{Config, ConfigError};
pub use server::Server;

/// Internals exposed for `router/benches` only: not an API, no stability promise.
#[doc(hidden)]
pub mod __bench {
    pub use crate::patterns::BenchIndex as PatternIndex;
}
