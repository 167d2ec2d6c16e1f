//! The integration and interop tests, one module per area, in one test binary: 60-odd
//! binaries each linking the router took gigabytes of disk and most of the build time.
//! (`churn` and `fuzz_sessions` stay binaries of their own: their leak checks count the
//! session states of the whole process; so does `cluster`, which runs nats-server and
//! router processes.)
//!
//! Run one area with `cargo test -p wamp-tests --test integration rpc::`.

mod rpc_common;

mod auth;
mod auth_dynamic;
mod auth_secrets;
mod authz;
mod bad_frames;
mod cbor;
mod client;
mod client_auth;
mod client_pubsub;
mod client_pubsub_advanced;
mod client_pubsub_history;
mod client_reconnect;
mod client_reconnect_edges;
mod client_rpc;
mod client_rpc_advanced;
mod client_rpc_registrations;
mod client_tls;
mod fanout_batch;
mod interop_js;
mod interop_js_auth;
mod interop_js_longpoll;
mod interop_python;
mod interop_python_auth;
mod interop_python_meta;
mod interop_python_meta_queries;
mod interop_python_pubsub;
mod interop_python_rawsocket;
mod interop_python_rpc;
mod interop_python_tls;
mod keepalive;
mod limits;
mod longpoll;
mod meta;
mod metrics;
mod passthrough;
mod pubsub;
mod pubsub_advanced;
mod rawsocket;
mod rawsocket_limits;
mod rawsocket_routing;
mod reload;
mod rpc;
mod rpc_advanced;
mod rpc_streaming;
mod session;
mod shutdown;
mod slow_consumers;
mod table_cost;
mod tls;
mod transport;

/// With `autotests = false` a new file under `tests/` would compile into nothing: each is a
/// module here or a `[[test]]` of its own.
#[test]
fn every_test_file_is_compiled() {
    let root = include_str!("integration.rs");
    let manifest = include_str!("../Cargo.toml");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let entries = std::fs::read_dir(dir).expect("tests/ is readable");
    for entry in entries {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        assert!(
            stem == "integration"
                || root.contains(&format!("\nmod {stem};\n"))
                || manifest.contains(&format!("path = \"tests/{stem}.rs\"")),
            "tests/{name} is neither a module of integration.rs nor a [[test]] in Cargo.toml"
        );
    }
}
