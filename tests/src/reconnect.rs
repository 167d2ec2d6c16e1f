//! Helpers for the client reconnect tests: routers on fixed ports, quick reconnect policies,
//! and waiting for a client to come back.

use std::time::Duration;

use wamp_client::{Client, ClientBuilder, ConnectionState, Id, ReconnectPolicy};

use crate::within;

/// The realm of [`config`].
pub const REALM: &str = "realm1";

/// A free TCP port on 127.0.0.1 (bound once, then released for the router).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local address").port()
}

/// A WebSocket router on `port`, realm `realm1` open to anonymous clients and to `extra`
/// (users, roles).
pub fn config(port: u16, extra: &str) -> String {
    format!(
        r#"
[[transport]]
bind = "127.0.0.1:{port}"
path = "/ws"

[[realm]]
name = "{REALM}"
anonymous = true
anonymous_role = "app"

[[realm.role]]
name = "app"
  [[realm.role.permission]]
  uri = ""
  match = "prefix"
  call = true
  register = true
  publish = true
  subscribe = true
{extra}"#
    )
}

/// Quick retries, so a test does not wait for the default backoff.
pub fn quick() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
}

pub async fn join(b: ClientBuilder) -> Client {
    within("connect", b.connect()).await.expect("joins")
}

/// A second client for the test's own calls and publications (never reconnects).
pub async fn other(url: &str) -> Client {
    join(
        Client::builder(url)
            .realm(REALM)
            .reconnect(ReconnectPolicy::never()),
    )
    .await
}

/// Waits until `client` is connected again, with a session other than `old`.
pub async fn reconnected(client: &Client, old: Id) -> Id {
    let mut w = client.state_watcher();
    let state = within(
        "reconnect",
        w.wait_for(|s| matches!(s, ConnectionState::Connected { session } if *session != old)),
    )
    .await;
    let ConnectionState::Connected { session } = state else {
        panic!(
            "the client closed instead of reconnecting: {:?}",
            client.close_reason()
        )
    };
    assert_eq!(client.session_id(), session);
    session
}

/// Leaves within [`crate::WAIT`].
pub async fn leave(client: Client) {
    within("leave", client.leave()).await.expect("leave");
}
