//! WAMP v2 authentication algorithms, sans-I/O: the router verifies with them and the client
//! answers with them. Nothing here reads a socket, a clock or a config file; the caller passes
//! in what it has (the CHALLENGE extra, the AUTHENTICATE signature, the configured secret).
//!
//! | module | `authmethod` | spec | router side | client side |
//! |---|---|---|---|---|
//! | [`ticket`] | `ticket` | WAMP.md 6.2 AUTH-02 | [`ticket::verify`] against a plain or PHC-hashed ticket | sends the ticket as is |
//! | [`wampcra`] | `wampcra` | WAMP.md 6.2 AUTH-03 | [`wampcra::challenge`], [`wampcra::verify`] | [`wampcra::key`], [`wampcra::sign`] |
//! | [`cryptosign`] | `cryptosign` | WAMP.md 6.2 AUTH-04 | [`cryptosign::new_challenge`], [`cryptosign::verify`] | [`cryptosign::SigningKey::sign_challenge`] |
//!
//! The common flow (HELLO → CHALLENGE → AUTHENTICATE → WELCOME or ABORT, WAMP.md 6.1) and the
//! ABORT reasons (6.3, e.g. `wamp.error.not_authorized` for a wrong signature) belong to the
//! router; this crate only answers "is this credential right?".
//!
//! Every function that takes something received from the peer returns `false` or an error for
//! malformed input and never panics (the property tests in `tests/never_panics.rs` check it).
//! The byte layouts follow autobahn-python (`autobahn/wamp/auth.py`, `cryptosign.py`), which
//! the known-answer tests pin.
//!
//! Verifying a hashed ticket costs a deliberate amount of CPU and memory (tens of
//! milliseconds and 19 MiB with the defaults of [`ticket::hash`]): run it off the async
//! executor (e.g. `tokio::task::spawn_blocking`).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

pub mod cryptosign;
pub mod ticket;
pub mod wampcra;

pub use cryptosign::CryptosignError;
pub use ticket::TicketError;
pub use wampcra::WampCraError;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Compares two byte strings in time that depends on neither their contents nor their lengths:
/// both are hashed to 32 bytes first, and the digests are compared in constant time.
fn ct_eq_hashed(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    bool::from(da.as_slice().ct_eq(db.as_slice()))
}
