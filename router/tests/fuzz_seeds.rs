//! Replays the committed seed corpora of the cargo-fuzz targets (`router/fuzz/seeds/<target>/`)
//! through the same functions the targets call, on stable Rust: a seed that once broke a
//! property stays a regression test. Add a file to a seed folder to add a case.

#[path = "../../proto/tests/support/seeds.rs"]
mod seeds;

const HERE: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn rawsocket_handshake_seeds() {
    seeds::replay(
        HERE,
        "rawsocket_handshake",
        wamp_router::__fuzz::rawsocket_handshake,
    );
}

#[test]
fn rawsocket_frames_seeds() {
    seeds::replay(
        HERE,
        "rawsocket_frames",
        wamp_router::__fuzz::rawsocket_frames,
    );
}

#[test]
fn websocket_frames_seeds() {
    seeds::replay(
        HERE,
        "websocket_frames",
        wamp_router::__fuzz::websocket_frames,
    );
}
