//! Replays the committed seed corpora of the decoder fuzz targets (`proto/fuzz/seeds/<target>/`)
//! through the same check the targets run (`proto/fuzz/fuzz_targets/common.rs`), on stable
//! Rust. Add a file to a seed folder to add a case.

use wamp_proto::Serializer;

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;
mod support {
    pub(crate) mod seeds;
}

const HERE: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn decode_json_seeds() {
    support::seeds::replay(HERE, "decode_json", |d| common::check(Serializer::Json, d));
}

#[test]
fn decode_msgpack_seeds() {
    support::seeds::replay(HERE, "decode_msgpack", |d| {
        common::check(Serializer::MsgPack, d)
    });
}

#[test]
fn decode_cbor_seeds() {
    support::seeds::replay(HERE, "decode_cbor", |d| common::check(Serializer::Cbor, d));
}
