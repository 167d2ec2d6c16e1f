//! The RawSocket handshake never panics, and answers as documented for every outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wamp_router::__fuzz::rawsocket_handshake(data));
