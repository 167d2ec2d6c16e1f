//! Waiting for a condition with a bound (never a sleep as synchronisation).

use std::time::Duration;

use tokio::time::Instant;

/// The pause between two attempts of a [`poll`].
const POLL_PAUSE: Duration = Duration::from_millis(20);

/// Tries `attempt` until it gives `Some`, pausing 20 ms between attempts; panics
/// naming `what` once `bound` has passed.
pub async fn poll<T>(what: &str, bound: Duration, attempt: impl AsyncFnMut() -> Option<T>) -> T {
    try_poll(bound, attempt)
        .await
        .unwrap_or_else(|| panic!("{what}: not within {bound:?}"))
}

/// [`poll`], giving `None` once `bound` has passed.
pub async fn try_poll<T>(
    bound: Duration,
    mut attempt: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = attempt().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
}
