//! wamp-bench: WAMP load generator.
fn main() {}
