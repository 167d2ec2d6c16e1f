//! `Serializer::Cbor.decode` and `decode_shared` never panic and agree; what they accept survives a re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wamp_proto::Serializer;

mod common;

fuzz_target!(|data: &[u8]| common::check(Serializer::Cbor, data));
