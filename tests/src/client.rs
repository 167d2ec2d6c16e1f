//! Our own `wamp_client` sessions for tests: joined and left within [`WAIT`].

use tokio::time::timeout;
use wamp_client::{Client, Serializer};

use crate::interop::REALM;
use crate::WAIT;

/// Joins [`REALM`] at `url` speaking `serializer` (anonymously); panics, naming both,
/// unless it joins within [`WAIT`].
pub async fn rust_client(url: &str, serializer: Serializer) -> Client {
    let client = timeout(
        WAIT,
        Client::builder(url)
            .realm(REALM)
            .serializer(serializer)
            .connect(),
    )
    .await
    .unwrap_or_else(|_| panic!("{url} {serializer:?}: no WELCOME within {WAIT:?}"))
    .unwrap_or_else(|e| panic!("rust client joins {url} over {serializer:?}: {e:?}"));
    assert_eq!(client.serializer(), serializer);
    client
}

/// Leaves (GOODBYE and its reply) within [`WAIT`].
pub async fn leave(client: Client) {
    timeout(WAIT, client.leave())
        .await
        .expect("leave in time")
        .expect("leave");
}
