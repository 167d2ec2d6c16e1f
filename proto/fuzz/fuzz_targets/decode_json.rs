//! `Serializer::Json.decode` never panics, and what it accepts survives a re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wamp_proto::Serializer;

mod common;

fuzz_target!(|data: &[u8]| common::check(Serializer::Json, data));
