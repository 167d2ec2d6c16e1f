#!/usr/bin/env bash
# wamp-router and Crossbar.io side by side: the same wamp-bench scenarios against each
# router in turn, alternating A B A B, then medians and our/Crossbar ratios (markdown).
#
#   bench/compare.sh                       # 3 rounds, 10 s per measured run
#   ROUNDS=5 DURATION=20 bench/compare.sh
#   FANOUT="100 1000 10000" SESSIONS="1000 10000" bench/compare.sh
#   QUICK=1 bench/compare.sh              # 1 round, 3 s runs, into target/bench/quick-results
#   ROUTER_REV=HEAD bench/compare.sh      # the router from a clean export of a commit
#
# Writes bench/results/<date>-<machine>.{md,jsonl} (RESULTS_DIR to change), and keeps the
# routers' logs and the human summaries in target/bench/compare-<timestamp>/.
# Only loopback addresses are used: wamp-router on 127.0.0.1:8080, Crossbar on 127.0.0.1:8081.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

CROSSBAR_VERSION=26.10.1
VENV=$ROOT/target/bench/crossbar-venv
if [[ ${QUICK:-0} == 1 ]]; then
    # A smoke test: short runs, and never over the committed results.
    : "${ROUNDS:=1}" "${DURATION:=3}" "${WARMUP:=1}" "${RESULTS_DIR:=$ROOT/target/bench/quick-results}"
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SESSIONS=${SESSIONS:-"1000 10000"}
FANOUT=${FANOUT:-"100 1000"}
# Fan-out to 10,000 subscribers only in the first N rounds (Crossbar needs ~30 s for one).
FANOUT_10K_ROUNDS=${FANOUT_10K_ROUNDS:-1}
THREADS=${THREADS:-$(nproc)}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$ROOT/target/bench/compare-$STAMP
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
MODEL=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
MACHINE=${MACHINE:-$(nproc)core-$(echo "${MODEL:-cpu}" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')}
NAME=$(date -u +%Y-%m-%d)-$MACHINE
JSONL=$RESULTS_DIR/$NAME.jsonl
MD=$RESULTS_DIR/$NAME.md
mkdir -p "$WORK" "$RESULTS_DIR"
: > "$JSONL"
: > "$WORK/commands.txt"

log() { printf '\n== %s\n' "$*" | tee -a "$WORK/summary.log" >&2; }

# 1. Crossbar into its own virtualenv (numpy<2: bjdata, pulled in by autobahn, is built
#    against numpy 1.x and prints an import error at every worker start with numpy 2).
if [[ ! -x $VENV/bin/crossbar ]]; then
    log "installing crossbar==$CROSSBAR_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "crossbar==$CROSSBAR_VERSION" "numpy<2"
fi
CB_VERSION=$("$VENV/bin/pip" show crossbar 2>/dev/null | sed -n 's/^Version: //p')

# 2. Our router and the load generator, release builds. With ROUTER_REV=<commit>, the router
#    is built from a clean export of that commit (git archive), so what is measured is known
#    exactly even while the work tree changes; otherwise from the work tree as it is.
if [[ -n ${ROUTER_REV:-} ]]; then
    REV=$(git rev-parse --verify "$ROUTER_REV^{commit}")
    SRC=$ROOT/target/bench/router-src-${REV:0:12}
    if [[ ! -d $SRC ]]; then
        rm -rf "$SRC.tmp"
        mkdir -p "$SRC.tmp"
        git archive --format=tar "$REV" | tar -x -C "$SRC.tmp"
        mv "$SRC.tmp" "$SRC"
    fi
    log "building wamp-router $REV (clean export) and wamp-bench (release)"
    cargo build --release -p wamp-router --manifest-path "$SRC/Cargo.toml" \
        --target-dir "$ROOT/target/bench/router-target"
    cargo build --release -p wamp-bench
    ROUTER_BIN=$ROOT/target/bench/router-target/release/wamp-router
    ROUTER_DESC="commit $REV, built from a clean export (ROUTER_REV=$ROUTER_REV)"
else
    log "building wamp-router and wamp-bench (release) from the work tree"
    cargo build --release -p wamp-router -p wamp-bench
    ROUTER_BIN=$ROOT/target/release/wamp-router
    DIRTY=$(git status --porcelain -- router proto Cargo.toml Cargo.lock 2>/dev/null | awk '{print $NF}' | tr '\n' ' ')
    ROUTER_DESC="work tree at commit $(git rev-parse HEAD)${DIRTY:+ with uncommitted changes in: $DIRTY}"
fi
ROUTER_SHA=$(sha256sum "$ROUTER_BIN" | cut -c1-16)
BENCH_BIN=$ROOT/target/release/wamp-bench

# Both routers and the load generator need a file descriptor per session.
ulimit -n "$(ulimit -Hn)" || true

ROUTER_PID=
WATCH_PID=
URL=
LABEL=

wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "router did not listen on port $1 within $2 s" >&2
    return 1
}

port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        echo "port $1 is already in use: stop whatever listens there first" >&2
        return 1
    fi
}

start_router() { # wamp-router | crossbar
    LABEL=$1
    port_free 8080
    port_free 8081
    case $1 in
    wamp-router)
        RUST_LOG=warn "$ROUTER_BIN" >>"$WORK/wamp-router.log" 2>&1 &
        ROUTER_PID=$!
        URL=ws://127.0.0.1:8080/ws
        wait_port 8080 30
        WATCH_PID=$ROUTER_PID
        ;;
    crossbar)
        rm -rf "$WORK/cbnode"
        mkdir -p "$WORK/cbnode"
        cp bench/crossbar/config.json "$WORK/cbnode/config.json"
        "$VENV/bin/crossbar" start --cbdir "$WORK/cbnode" --loglevel warn >>"$WORK/crossbar.log" 2>&1 &
        ROUTER_PID=$!
        URL=ws://127.0.0.1:8081/ws
        wait_port 8081 90
        # The controller runs one router worker: that process routes, so that is measured.
        WATCH_PID=$(pgrep -P "$ROUTER_PID" | head -1)
        [[ -n $WATCH_PID ]] || { echo "no crossbar worker process" >&2; return 1; }
        ;;
    esac
    sleep 1
}

stop_router() {
    [[ -n $ROUTER_PID ]] || return 0
    kill -TERM "$ROUTER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$ROUTER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$ROUTER_PID" 2>/dev/null || true
    wait "$ROUTER_PID" 2>/dev/null || true
    # A Crossbar worker outliving its controller (it should not) is ours to end too.
    if [[ $WATCH_PID != "$ROUTER_PID" ]] && kill -0 "$WATCH_PID" 2>/dev/null; then
        kill -KILL "$WATCH_PID" 2>/dev/null || true
    fi
    ROUTER_PID=
    WATCH_PID=
}
trap 'busy_vcpus_stop; stop_router' EXIT
trap 'busy_vcpus_stop; stop_router; exit 130' INT TERM

bench() { # scenario args...
    local cmd=("$BENCH_BIN" --url "$URL" --router-pid "$WATCH_PID" --label "$LABEL"
        --threads "$THREADS" --warmup "$WARMUP" "$@")
    echo "${cmd[*]#"$ROOT/"}" >>"$WORK/commands.txt"
    "${cmd[@]}" >>"$JSONL" 2> >(tee -a "$WORK/summary.log" >&2) || echo "  (run failed: $*)" | tee -a "$WORK/summary.log" >&2
}

SPINNERS=()
busy_vcpus_start() {
    local i
    for ((i = 0; i < $(nproc); i++)); do
        nice -n 19 bash -c 'while :; do :; done' &
        SPINNERS+=($!)
    done
}
busy_vcpus_stop() {
    ((${#SPINNERS[@]})) || return 0
    kill "${SPINNERS[@]}" 2>/dev/null || true
    wait "${SPINNERS[@]}" 2>/dev/null || true
    SPINNERS=()
}

run_set() { # router
    # Memory per idle session is read on a freshly started router each time.
    for n in $SESSIONS; do
        start_router "$1"
        for ser in msgpack; do
            bench --serializer $ser sessions --count "$n" --concurrency 64 --settle 2
        done
        stop_router
    done
    start_router "$1"
    for ser in msgpack json; do
        bench --serializer $ser rpc --callers 4 --in-flight 64 --callees 1 --payload 100 --duration "$DURATION"
    done
    for ser in msgpack json; do
        bench --serializer $ser rpc --callers 1 --in-flight 1 --callees 1 --payload 100 --duration "$DURATION"
    done
    # The same 1x1 round trip with both vCPUs kept out of idle by two nice-19 busy loops
    # (they yield to any real work): on a VM, waking an idle vCPU dominates the 1x1 latency.
    busy_vcpus_start
    bench --serializer msgpack --tag busy-vcpus rpc --callers 1 --in-flight 1 --callees 1 --payload 100 --duration "$DURATION"
    busy_vcpus_stop
    for s in $FANOUT; do
        bench --serializer msgpack fanout --subscribers "$s" --payload 100 --duration "$DURATION"
    done
    bench --serializer json fanout --subscribers 1000 --payload 100 --duration "$DURATION"
    if ((r <= FANOUT_10K_ROUNDS)); then
        bench --serializer msgpack fanout --subscribers 10000 --payload 100 --duration "$DURATION" --concurrency 128
    fi
    bench --serializer msgpack pubsub --publishers 1 --subscribers 1 --payload 100 --rate 1000 --duration "$DURATION"
    stop_router
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((r = 1; r <= ROUNDS; r++)); do
    # The lowest 1x1 round trip any router could reach on this machine (no router involved).
    log "round $r/$ROUNDS: loopback floor"
    URL=ws://127.0.0.1:8080/ws WATCH_PID= LABEL=floor
    for tag in "" busy-vcpus; do
        cmd=("$BENCH_BIN" --label floor --warmup "$WARMUP" ${tag:+--tag "$tag"} floor --duration "$DURATION")
        [[ -z $tag ]] || busy_vcpus_start
        echo "${cmd[*]#"$ROOT/"}" >>"$WORK/commands.txt"
        "${cmd[@]}" >>"$JSONL" 2> >(tee -a "$WORK/summary.log" >&2) || echo "  (floor run failed)" | tee -a "$WORK/summary.log" >&2
        busy_vcpus_stop
    done
    for router in wamp-router crossbar; do
        log "round $r/$ROUNDS: $router"
        run_set "$router"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# 4. Medians and ratios.
TABLE=$("$BENCH_BIN" report --input "$JSONL" --ours wamp-router --baseline crossbar)

# 5. The commit-ready record.
{
    echo "# wamp-router vs Crossbar.io $CB_VERSION — $NAME"
    echo
    echo "Run from $START to $END (UTC), $ROUNDS rounds alternating wamp-router / crossbar,"
    echo "${DURATION} s measured after ${WARMUP} s warm-up per run. Medians over the rounds;"
    echo "ratios are wamp-router / Crossbar. Raw JSON lines: \`$NAME.jsonl\`."
    echo
    echo "## Machine"
    echo
    echo "- CPUs (nproc): $(nproc); model: ${MODEL:-unknown}"
    echo "- memory: $(free -h | awk '/^Mem:/ {print $2}') total"
    echo "- kernel: $(uname -srm)"
    echo "- clock ticks (getconf CLK_TCK): $(getconf CLK_TCK) (wamp-bench assumes 100)"
    echo "- open files limit (soft/hard): $(ulimit -n)/$(ulimit -Hn)"
    echo "- load average before: $LOAD_BEFORE; after: $LOAD_AFTER"
    echo "- rustc: $(rustc --version); Python: $("$VENV/bin/python" --version 2>&1); Crossbar: $CB_VERSION"
    echo "- wamp-router: $ROUTER_DESC; binary sha256 $ROUTER_SHA..."
    echo "- wamp-bench: work tree at commit $(git rev-parse --short HEAD)$(git status --porcelain -- bench/src bench/Cargo.toml | grep -q . && echo ' with uncommitted changes in bench/')"
    echo
    echo "The load generator (wamp-bench, $THREADS threads) runs on the same cores as the router:"
    echo "the per-router-CPU-second rows divide by the router process's own CPU time"
    echo "(/proc/PID/stat utime+stime; for Crossbar its router worker process)."
    echo "Cases tagged \`busy-vcpus\` ran with one nice-19 busy loop per CPU (they give way to any"
    echo "real work but keep the vCPUs from going idle, so no run pays for waking an idle vCPU)."
    echo
    echo "## Results"
    echo
    echo "$TABLE"
    echo
    echo "## Command lines"
    echo
    echo '```'
    echo "# compare:"
    echo "${ROUTER_REV:+ROUTER_REV=$ROUTER_REV }ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP SESSIONS=\"$SESSIONS\" FANOUT=\"$FANOUT\" FANOUT_10K_ROUNDS=$FANOUT_10K_ROUNDS THREADS=$THREADS bench/compare.sh"
    echo "# routers:"
    echo "RUST_LOG=warn ${ROUTER_BIN#"$ROOT/"}   # embedded default config: ws://127.0.0.1:8080/ws, realm1"
    echo "crossbar start --cbdir <copy of bench/crossbar/> --loglevel warn   # ws://127.0.0.1:8081/ws, realm1"
    echo "# each run (first round shown; PIDs vary):"
    awk '!seen[$0]++' "$WORK/commands.txt" | sed -E 's/--router-pid [0-9]+/--router-pid PID/' | awk '!seen[$0]++'
    echo '```'
} >"$MD"

log "results: ${MD#"$ROOT/"} and ${JSONL#"$ROOT/"} (logs in ${WORK#"$ROOT/"})"
echo
echo "$TABLE"
