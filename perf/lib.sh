# Shared by the perf/ scripts (sourced, POSIX sh): building, starting and
# stopping a local qkv cluster and a Redis master with replicas.
# Ports: qkv REST PERF_BASE+0..5, clients PERF_BASE-1000+0..5, replication
# PERF_BASE+1000+1..5; Redis REDIS_BASE+0..5. Defaults keep clear of the
# cluster scripts/cluster.sh runs. qkv nodes are started, awaited and
# stopped by scripts/launch.sh, as for scripts/cluster.sh.
# Durability, chosen by the caller's environment:
#   FSYNC=always|everysec|never  every node's (the node's default: always)
#   DATA_DIR=none                memory only; any other DATA_DIR is refused
#   otherwise each cluster_start gives the nodes fresh data directories in
#   a temporary folder made in PERF_DATA_PARENT (default perf/results, on
#   the repository's disk: /tmp may be a tmpfs, where fsync costs nothing),
#   deleted by stop_all; never a cluster's qkv-data/.
#   Redis: REDIS_EXTRA (split on blanks) is appended to every redis-server's
#   options, so it wins over the defaults (--save '' --appendonly no); e.g.
#   REDIS_EXTRA="--appendonly yes --appendfsync always". Each Redis node
#   gets a fresh directory of its own in PERF_DATA_PARENT, deleted by
#   stop_all.

# Roles: the local cluster's default, PEERS with elections (node0 on
# PERF_BASE is asked to lead, and cluster_start waits until it does);
# QKV_ELECTIONS=0 gives the static leader and followers. With a
# simulated delay, ELECTION_TIMEOUT_MS defaults to 500 + 2 x MAX_DELAY_MS,
# so that delayed heartbeats never look like a dead leader.
QKV_ELECTIONS=${QKV_ELECTIONS:-1}
export QKV_ELECTIONS
# PERF_CPU_LIST (e.g. 0 or 0-1) pins the script and all it starts to
# those CPUs, qkv nodes (CPU_LIST), Redis and qkv-bench alike, so that
# both systems are measured pinned the same way. PERF_CPU_LAYOUT=spread
# instead gives each server a CPU of its own, in turn: the leader (node0)
# and the Redis master CPU 0, follower or replica i CPU i mod the CPUs
# there are (qkv through CPU_LIST, Redis through taskset); qkv-bench is
# not pinned.
PERF_BASE=${PERF_BASE:-18000}
REDIS_BASE=${REDIS_BASE:-16379}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/launch.sh"
BUILD=${BUILD:-$ROOT/build-release}
NODE_BIN=$BUILD/server/qkv-node
BENCH_BIN=$BUILD/perf/qkv-bench
PIDS=""       # every server started: qkv nodes and Redis
REDIS_PIDS="" # Redis's alone (qkv_stop stops the nodes)
RUN_DIR=""
DATA_RUN_DIR="" # the nodes' data directories, while a cluster runs
REDIS_DATA_RUN_DIR="" # Redis's, while Redis runs
PERF_DATA_PARENT=${PERF_DATA_PARENT:-$ROOT/perf/results}

die() {
    echo "perf: $*" >&2
    if [ -n "$RUN_DIR" ]; then
        for f in "$RUN_DIR"/*.log; do
            [ -f "$f" ] && tail -n 3 "$f" | sed "s|^|perf: $(basename "$f"): |" >&2
        done
    fi
    exit 2
}

case ${DATA_DIR:-} in
"" | none) ;;
*) die "DATA_DIR=$DATA_DIR: none (memory only) or unset (fresh directories" \
    "made in PERF_DATA_PARENT, $PERF_DATA_PARENT)" ;;
esac

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
    if [ -n "${PERF_CPU_LIST:-}" ]; then
        # everything this script starts inherits it: qkv nodes, Redis, the
        # load generator; the nodes also get it as CPU_LIST
        taskset -pc "$PERF_CPU_LIST" $$ >/dev/null ||
            die "PERF_CPU_LIST=$PERF_CPU_LIST: taskset refused it"
        CPU_LIST=$PERF_CPU_LIST
        export CPU_LIST
        echo "perf: pinned to CPUs $PERF_CPU_LIST (nodes, Redis, qkv-bench)" >&2
    fi
}

# metric URL NAME: the value of a node's /metrics sample NAME.
metric() {
    curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2; exit }'
}

# cluster_start QUORUM MIN_DELAY_MS MAX_DELAY_MS [FOLLOWERS (5)]: a leader
# and followers (scripts/launch.sh), logs in RUN_DIR, data in a fresh
# DATA_RUN_DIR (or memory only with DATA_DIR=none), waiting until every
# follower acked the first heartbeat. Their PIDs join PIDS, followers first,
# the leader last.
cluster_start() {
    RUN_DIR=$(mktemp -d)
    if [ "${DATA_DIR:-}" = none ]; then
        data_root=none
        echo "perf: qkv data in memory only (DATA_DIR=none)" >&2
    else
        if ! mkdir -p "$PERF_DATA_PARENT" || ! DATA_RUN_DIR=$(mktemp -d \
            "$PERF_DATA_PARENT/qkv-data.XXXXXX"); then
            die "cannot make a data directory in $PERF_DATA_PARENT"
        fi
        data_root=$DATA_RUN_DIR
        echo "perf: qkv data in $data_root, FSYNC=${FSYNC:-always}" >&2
    fi
    cs_extra=""
    if [ "$QKV_ELECTIONS" = 1 ] && [ -z "${ELECTION_TIMEOUT_MS:-}" ]; then
        cs_extra="--election-timeout-ms $((500 + 2 * ${3:-0}))"
    fi
    if [ "${PERF_CPU_LAYOUT:-}" = spread ]; then
        QKV_CPU_LISTS=$(spread_cpus "${4:-5}")
        export QKV_CPU_LISTS
    fi
    qkv_launch "$NODE_BIN" 127.0.0.1 "$PERF_BASE" $((PERF_BASE - 1000)) \
        $((PERF_BASE + 1000)) "${4:-5}" "$1" "$2" "$3" \
        "${REPLICATION_TIMEOUT_MS:-5000}" "$cs_extra" "$RUN_DIR" \
        "$data_root" || die "could not start the cluster"
    PIDS="$PIDS $QKV_PIDS"
    qkv_wait 20 || die "cluster did not come up"
    # the scripts drive node0 (PERF_BASE) as the leader
    cs_tries=0
    until curl -s -m 1 "http://127.0.0.1:$PERF_BASE/health" |
        grep -q '"role":"leader"'; do
        cs_tries=$((cs_tries + 1))
        [ $cs_tries -gt 100 ] && die "node0 did not become the leader"
        sleep 0.1
    done
}

# spread_cpus N: CPU lists for a leader and N followers, one CPU each,
# in turn over the CPUs there are.
spread_cpus() {
    sc_i=0 sc_out=""
    while [ $sc_i -le "$1" ]; do
        sc_out="$sc_out $((sc_i % $(nproc)))"
        sc_i=$((sc_i + 1))
    done
    echo "$sc_out"
}

# redis_start REPLICAS: a master on REDIS_BASE and replicas after it, each
# with REDIS_EXTRA's options last and a fresh data directory of its own in
# REDIS_DATA_RUN_DIR.
redis_start() {
    command -v redis-server >/dev/null || die "redis-server missing"
    RUN_DIR=${RUN_DIR:-$(mktemp -d)}
    if ! mkdir -p "$PERF_DATA_PARENT" || ! REDIS_DATA_RUN_DIR=$(mktemp -d \
        "$PERF_DATA_PARENT/redis-data.XXXXXX"); then
        die "cannot make a data directory in $PERF_DATA_PARENT"
    fi
    i=0
    while [ $i -le "$1" ]; do
        port=$((REDIS_BASE + i))
        mkdir "$REDIS_DATA_RUN_DIR/redis$i" || die "cannot make a Redis directory"
        rs_of=""
        [ $i -eq 0 ] || rs_of="--replicaof 127.0.0.1 $REDIS_BASE"
        rs_pin=""
        if [ "${PERF_CPU_LAYOUT:-}" = spread ]; then
            rs_pin="taskset -c $((i % $(nproc)))"
        fi
        # shellcheck disable=SC2086 # rs_pin, rs_of, REDIS_EXTRA: split on purpose
        $rs_pin redis-server --port $port --bind 127.0.0.1 --save '' \
            --dir "$REDIS_DATA_RUN_DIR/redis$i" --appendonly no \
            --daemonize no $rs_of ${REDIS_EXTRA:-} \
            >"$RUN_DIR/redis$i.log" 2>&1 &
        PIDS="$PIDS $!"
        REDIS_PIDS="$REDIS_PIDS $!"
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
    qkv_stop
    # shellcheck disable=SC2086
    if [ -n "$REDIS_PIDS" ]; then
        kill $REDIS_PIDS 2>/dev/null || true
        wait $REDIS_PIDS 2>/dev/null || true # killed: non-zero, expected
    fi
    PIDS=""
    REDIS_PIDS=""
    if [ -n "$RUN_DIR" ]; then
        rm -rf "$RUN_DIR"
    fi
    RUN_DIR=""
    if [ -n "$DATA_RUN_DIR" ]; then
        rm -rf "$DATA_RUN_DIR"
    fi
    DATA_RUN_DIR=""
    if [ -n "$REDIS_DATA_RUN_DIR" ]; then
        rm -rf "$REDIS_DATA_RUN_DIR"
    fi
    REDIS_DATA_RUN_DIR=""
}
