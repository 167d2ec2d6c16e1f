//! wamp-router binary.
fn main() {}
