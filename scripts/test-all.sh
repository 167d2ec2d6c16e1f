#!/usr/bin/env bash
# The one command that runs the whole test suite: scripts/test-all.sh [cargo test args...]
# Needs only cargo, python3 (3.11) with venv/pip, and node (20+) with npm on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# --- Python interop peer (autobahn-python) ---------------------------------
# A venv under target/ (git-ignored, gone with `cargo clean`), re-installed only
# when the pinned requirements change (the stamp holds their hash).
INTEROP="$ROOT/target/interop"
VENV="$INTEROP/venv"
REQS="$ROOT/tests/interop/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON_BIN="$(command -v python3.11 || command -v python3)" ||
    { echo "test-all: python3 not found on PATH" >&2; exit 1; }

if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "test-all: creating Python venv at $VENV" >&2
    rm -rf "$VENV"
    mkdir -p "$INTEROP"
    "$PYTHON_BIN" -m venv "$VENV"
fi
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]]; then
    echo "test-all: installing $REQS" >&2
    PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    echo "$want" >"$STAMP" # written only after a successful install
fi
export WAMP_INTEROP_PYTHON="$VENV/bin/python"

# --- JavaScript interop peer (autobahn-js) -----------------------------------
# tests/interop/js/node_modules from the committed lockfile (npm ci), re-installed only
# when package-lock.json changes (the stamp holds its hash). No node/npm: the JS interop
# tests are skipped with a notice, except under CI, where that is an error.
NODE_DIR="$ROOT/tests/interop/js"
NODE_STAMP="$NODE_DIR/node_modules/.package-lock.sha256"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    want="$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)"
    if [[ "$(cat "$NODE_STAMP" 2>/dev/null || true)" != "$want" ]]; then
        echo "test-all: installing $NODE_DIR/node_modules (npm ci)" >&2
        # --ignore-scripts: no install scripts run (the only ones are ws's optional native
        # speed-ups, bufferutil and utf-8-validate, which ship prebuilt or fall back to JS).
        (cd "$NODE_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
        echo "$want" >"$NODE_STAMP" # written only after a successful install
    fi
    export WAMP_INTEROP_NODE_DIR="$NODE_DIR"
    WAMP_INTEROP_NODE="$(command -v node)"
    export WAMP_INTEROP_NODE
elif [[ -n "${CI:-}" ]]; then
    echo "test-all: node and npm are needed for the autobahn-js interop tests (CI is set)" >&2
    exit 1
else
    echo "test-all: warning: node/npm not found on PATH: skipping the autobahn-js interop tests" >&2
fi

# --- Shared WAMP test vectors (optional: beside the repo, not in it) ---------
VECTORS="$ROOT/../shared/vectors/wamp-proto-testsuite"
if [[ -d "$VECTORS" ]]; then
    WAMP_TEST_VECTORS="$(cd "$VECTORS" && pwd)"
    export WAMP_TEST_VECTORS
fi

# --- NATS for the cluster tests ----------------------------------------------
# tests/tests/cluster.rs runs nats-server ($WAMP_NATS_SERVER, PATH or /usr/sbin). Under CI
# as root it is installed from Debian when missing (under CI otherwise, that is an error);
# elsewhere, without it, the cluster tests are skipped with a notice.
if [[ -z "${WAMP_NATS_SERVER:-}" ]] && ! command -v nats-server >/dev/null 2>&1 &&
    [[ ! -x /usr/sbin/nats-server ]]; then
    if [[ -n "${CI:-}" && "$(id -u)" -eq 0 ]]; then
        echo "test-all: installing nats-server (apt-get)" >&2
        apt-get update -qq && apt-get install -y -qq nats-server ||
            { echo "test-all: could not install nats-server" >&2; exit 1; }
    elif [[ -n "${CI:-}" ]]; then
        echo "test-all: nats-server is needed for the cluster tests (CI is set; not root)" >&2
        exit 1
    else
        echo "test-all: warning: nats-server not found: skipping the cluster tests" >&2
    fi
fi

# --- The tests ---------------------------------------------------------------
# Debug info is kept to line tables (Cargo.toml), and CI builds without incremental
# caches: the suite then needs about 3 GB of disk.
if [[ -n "${CI:-}" ]]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
# The cluster tests spawn the router binary: built here, so that they run this tree's.
cargo build -p wamp-router --bin wamp-router
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
export WAMP_ROUTER_BIN="$TARGET_DIR/debug/wamp-router"
# --- The parity run --------------------------------------------------------
# The single-node behaviour tests again, each TestRouter three cluster nodes with the peers
# spread over them (WAMP_TEST_TOPOLOGY=cluster3, tests/src/spread), minus the tests listed
# in tests/parity-skips.txt with their reasons. Modules: RawPeer-based routing behaviour
# (client_* use our client, which the harness's registration wait does not cover;
# transport, TLS, auth, limits, fuzz and long-poll tests are about one node's edge).
PARITY_MODULES="rpc rpc_advanced rpc_streaming pubsub pubsub_advanced meta session slow_consumers passthrough authz"
parity_run() {
    local skips="$ROOT/tests/parity-skips.txt" pattern names skipped
    pattern="^($(echo "$PARITY_MODULES" | tr ' ' '|'))::"
    names="$(cargo test -q -p wamp-tests --test integration -- --list --format=terse 2>/dev/null |
        sed -n 's/: test$//p' | grep -E "$pattern")"
    skipped="$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$skips")"
    local s
    for s in $skipped; do
        grep -qxF "$s" <<<"$names" ||
            { echo "test-all: $skips names $s, which is not a test of the parity run" >&2; return 1; }
    done
    names="$(grep -vxF -f <(echo "$skipped") <<<"$names")"
    echo "test-all: parity run: $(wc -l <<<"$names") tests, $(wc -l <<<"$skipped") skipped ($skips)" >&2
    local log failed
    log="$(mktemp)"
    # shellcheck disable=SC2086 # one argument per test name
    if WAMP_TEST_TOPOLOGY=cluster3 cargo test -p wamp-tests --test integration -- --exact $names \
        2>&1 | tee "$log"; then
        rm -f "$log"
        return 0
    fi
    # A test that failed is run once more, alone: three nodes on a loaded machine can still
    # hit a propagation window of docs/cluster.md (D3, D9). Failing twice is a failure.
    failed="$(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log")"
    rm -f "$log"
    if [[ -z "$failed" ]]; then
        echo "test-all: the parity run failed before its tests ran" >&2
        return 1
    fi
    echo "test-all: parity run: retrying once, alone: $(echo $failed)" >&2
    local t
    for t in $failed; do
        WAMP_TEST_TOPOLOGY=cluster3 cargo test -q -p wamp-tests --test integration -- --exact "$t" ||
            { echo "test-all: parity test $t failed twice" >&2; return 1; }
    done
    echo "test-all: parity run passed; retried once: $(echo $failed)" >&2
}

# `scripts/test-all.sh parity`: only the parity run. With other arguments, only what they
# select (`-p wamp-tests --test integration rpc::`); without, everything, the parity run
# included (WAMP_PARITY=0 leaves it out).
if [[ "${1:-}" == "parity" ]]; then
    parity_run
    exit
fi
if [[ $# -eq 0 ]]; then
    # An embedder's build without the NATS cluster (`default-features = false`) stays clean.
    cargo clippy -q -p wamp-router --no-default-features --lib -- -D warnings
    cargo test --workspace --all-targets
    if [[ "${WAMP_PARITY:-1}" != 0 ]]; then
        parity_run
    fi
    exit
fi
exec cargo test "$@"
