//! WebSocket framing never panics; fed whole or in pieces it gives the same messages and end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wamp_router::__fuzz::websocket_frames(data));
