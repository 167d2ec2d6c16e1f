//! Test harness for wamp-router integration tests.
