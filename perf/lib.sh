# Shared by the perf/ scripts (sourced, POSIX sh): building, starting and
# stopping a local qkv cluster and a Redis master with replicas.
# Ports: qkv REST PERF_BASE+0..5, clients PERF_BASE-1000+0..5, replication
# PERF_BASE+1000+1..5; Redis REDIS_BASE+0..5. Defaults keep clear of the
# cluster scripts/cluster.sh runs.

PERF_BASE=${PERF_BASE:-18000}
REDIS_BASE=${REDIS_BASE:-16379}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-release}
NODE_BIN=$BUILD/server/qkv-node
BENCH_BIN=$BUILD/perf/qkv-bench
PIDS=""
RUN_DIR=""

die() {
    echo "perf: $*" >&2
    if [ -n "$RUN_DIR" ]; then
        for f in "$RUN_DIR"/*.log; do
            [ -f "$f" ] && tail -n 3 "$f" | sed "s|^|perf: $(basename "$f"): |" >&2
        done
    fi
    exit 2
}

perf_build() {
    sh "$ROOT/scripts/deps.sh" perf || die "missing packages"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DQKV_TESTS=OFF \
        >/dev/null || die "cmake failed"
    cmake --build "$BUILD" -j"$(nproc)" --target qkv-node qkv-bench \
        >/dev/null || die "build failed"
}

# perf_begin PREFIX NAME: the run's results folder OUT (perf/results/NAME,
# or PREFIX-timestamp), stopping every started server on exit, and the
# build.
perf_begin() {
    OUT=$ROOT/perf/results/${2:-$1-$(date -u +%Y%m%dT%H%M%SZ)}
    mkdir -p "$OUT"
    trap stop_all EXIT INT TERM
    perf_build
}

# metric URL NAME: the value of a node's /metrics sample NAME.
metric() {
    curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2; exit }'
}

# Waits until URL answers 200, at most 10 s. (POSIX sh has no local
# variables: each function here uses names of its own.)
wait_http() {
    wh_tries=0
    while ! curl -sf -o /dev/null "$1"; do
        wh_tries=$((wh_tries + 1))
        [ $wh_tries -gt 100 ] && die "no answer from $1"
        sleep 0.1
    done
}

# cluster_start QUORUM MIN_DELAY_MS MAX_DELAY_MS [FOLLOWERS]
cluster_start() {
    n=${4:-5}
    followers=""
    RUN_DIR=$(mktemp -d)
    i=1
    while [ $i -le "$n" ]; do
        "$NODE_BIN" --role follower --node-id "follower$i" \
            --port $((PERF_BASE + i)) --repl-port $((PERF_BASE + 1000 + i)) \
            --client-port $((PERF_BASE - 1000 + i)) \
            --leader-url "http://127.0.0.1:$PERF_BASE" \
            >"$RUN_DIR/follower$i.log" 2>&1 &
        PIDS="$PIDS $!"
        followers="${followers:+$followers,}tcp://127.0.0.1:$((PERF_BASE + 1000 + i))"
        i=$((i + 1))
    done
    "$NODE_BIN" --role leader --node-id leader --port "$PERF_BASE" \
        --client-port $((PERF_BASE - 1000)) --followers "$followers" \
        --write-quorum "$1" --min-delay-ms "$2" --max-delay-ms "$3" \
        --replication-timeout-ms "${REPLICATION_TIMEOUT_MS:-5000}" \
        >"$RUN_DIR/leader.log" 2>&1 &
    PIDS="$PIDS $!"
    i=0
    while [ $i -le "$n" ]; do
        wait_http "http://127.0.0.1:$((PERF_BASE + i))/health"
        i=$((i + 1))
    done
    # every follower acked the first heartbeat
    cs_tries=0
    while [ "$(curl -s "http://127.0.0.1:$PERF_BASE/health" |
        grep -o '"connected":true' | wc -l)" -lt "$n" ]; do
        cs_tries=$((cs_tries + 1))
        [ $cs_tries -gt 100 ] && die "followers did not connect"
        sleep 0.1
    done
}

# redis_start REPLICAS: a master on REDIS_BASE and replicas after it.
redis_start() {
    command -v redis-server >/dev/null || die "redis-server missing"
    RUN_DIR=${RUN_DIR:-$(mktemp -d)}
    i=0
    while [ $i -le "$1" ]; do
        port=$((REDIS_BASE + i))
        if [ $i -eq 0 ]; then
            redis-server --port $port --bind 127.0.0.1 --save '' --dir "$RUN_DIR" \
                --appendonly no --daemonize no \
                >"$RUN_DIR/redis$i.log" 2>&1 &
        else
            redis-server --port $port --bind 127.0.0.1 --save '' --dir "$RUN_DIR" \
                --appendonly no --daemonize no \
                --replicaof 127.0.0.1 "$REDIS_BASE" \
                >"$RUN_DIR/redis$i.log" 2>&1 &
        fi
        PIDS="$PIDS $!"
        i=$((i + 1))
    done
    rs_tries=0
    while [ "$(redis-cli -p "$REDIS_BASE" info replication 2>/dev/null |
        grep -c 'state=online')" -lt "$1" ]; do
        rs_tries=$((rs_tries + 1))
        [ $rs_tries -gt 100 ] && die "redis replicas did not come online"
        sleep 0.1
    done
    # Warm up: "online" comes before a replica answers GETACK promptly, and
    # a run started then stalls for up to a second on its first WAITs.
    # Measure steady state, as for qkv (cluster_start waits for ACKs).
    rs_tries=0
    while [ "$(printf 'SET perf:warmup 1\nWAIT %s 100\n' "$1" |
        redis-cli -p "$REDIS_BASE" 2>/dev/null | tail -n 1)" != "$1" ]; do
        rs_tries=$((rs_tries + 1))
        [ $rs_tries -gt 100 ] && die "redis replicas did not acknowledge a write"
    done
    redis-cli -p "$REDIS_BASE" DEL perf:warmup >/dev/null
}

stop_all() {
    # shellcheck disable=SC2086
    if [ -n "$PIDS" ]; then
        kill $PIDS 2>/dev/null || true
        wait $PIDS 2>/dev/null || true # killed: non-zero, expected
    fi
    PIDS=""
    if [ -n "$RUN_DIR" ]; then
        rm -rf "$RUN_DIR"
    fi
    RUN_DIR=""
}
