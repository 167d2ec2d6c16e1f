//! Async WAMP v2 client.
