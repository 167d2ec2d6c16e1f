#!/usr/bin/env bash
# The one command that runs the whole test suite: scripts/test-all.sh [cargo test args...]
# Needs only cargo, python3 (3.11) with venv/pip, and (later) node/npm on PATH.
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

# --- JavaScript interop peer (autobahn-js): not yet --------------------------
# Hook for later: install tests/interop/js with its lockfile, e.g.
#   (cd "$ROOT/tests/interop/js" && npm ci --no-audit --no-fund --silent)
#   export WAMP_INTEROP_NODE="$(command -v node)"
# (stamp on package-lock.json the same way as requirements.txt above).

# --- Shared WAMP test vectors (optional: beside the repo, not in it) ---------
VECTORS="$ROOT/../shared/vectors/wamp-proto-testsuite"
if [[ -d "$VECTORS" ]]; then
    WAMP_TEST_VECTORS="$(cd "$VECTORS" && pwd)"
    export WAMP_TEST_VECTORS
fi

# --- The tests ---------------------------------------------------------------
# exec: this script's exit status is cargo test's.
exec cargo test --workspace --all-targets "$@"
