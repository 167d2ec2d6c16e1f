//! wamp-router library.
