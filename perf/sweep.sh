#!/bin/sh
# The quorum sweep: for each WRITE_QUORUM, starts a local leader and five
# followers, drives them with qkv-bench, stops them; writes every run's
# JSON line and a CSV under perf/results/NAME/, and draws PNG plots with
# gnuplot. With --redis, a Redis master with five replicas is driven by
# the same load generator in the same run (SET + WAIT q), and the
# qkv/Redis ratios are printed per quorum. Defaults are the seed study's:
# 10 writers, 500 writes over 100 keys, quorum 1..5, no delay.
#
# With --points, instead, the comparison points of issue 13 at one quorum
# (3), each a qkv run and (with --redis) a Redis run in the same sweep:
#   1   REST writes, 10 keep-alive writers, to the leader | SET + WAIT 3
#   2   REST writes, 1 writer (its p50)                   | the same, 1 client
#   3   zmq-native writes, depth 1                        | SET + WAIT 3
#   4   zmq-native writes, depth 16                       | 16 SETs + one WAIT 3
#                                                           per round trip
#   5a  REST reads on one follower                        | GET on one replica
#   5b  zmq-native reads, depth 16, on one follower       | 16 GETs per round
#                                                           trip on one replica
#   6   REST reads on the leader                          | (none)
#   7   REST writes, FSYNC=always on every node (on disk) | SET + WAIT 3 with
#                                                           appendfsync always
# Points 1-6 run qkv memory-only (DATA_DIR=none, as Redis runs without
# persistence) unless --durability says otherwise. Reads follow a write of
# every key (point "preload"), so that none misses. Every run's line, with
# its "point", goes to results.jsonl; at the end one JSON line per point
# (qkv, redis and ratio: qkv / Redis) goes to summary.jsonl and standard
# output, and a table to table.txt. The leader and a follower are found by
# asking each node's /health, so this works with and without elections
# (QKV_ELECTIONS=1).
set -eu
. "$(dirname "$0")/lib.sh"

MODE=http CLIENTS=10 OPS=500 KEYS=100 VALUE_SIZE=10 QUORUMS="1 2 3 4 5"
MIN_DELAY=0 MAX_DELAY=0 DEPTH=1 REPEAT=1 REDIS=0 NAME="" READ_RATIO=0
POINTS="" DURABILITY=none PIPE=16 OPS_SET="" QUORUMS_SET=""
OPS_WRITES=100000 OPS_ONE=10000 OPS_PIPELINED=500000 OPS_READS=500000
OPS_PIPELINED_READS=2000000 OPS_FSYNC=20000

usage() {
    cat <<USAGE
usage: perf/sweep.sh [options]
  --mode http|zmq       how qkv is driven (http)
  --clients N           concurrent writers (10)
  --ops N               operations per run (500)
  --keys N              distinct keys (100)
  --value-size N        value bytes (10)
  --read-ratio F        share of reads (0)
  --depth N             zmq: requests in flight per client (1)
  --quorums "Q..."      WRITE_QUORUM levels ("1 2 3 4 5")
  --min-delay-ms N      simulated delay, low bound (0)
  --max-delay-ms N      simulated delay, high bound (0)
  --repeat N            runs per level; plots use the mean (1)
  --redis               also drive Redis SET+WAIT q, print qkv/Redis
  --name NAME           results folder under perf/results (timestamp)
 issue 13's points instead of the quorum sweep (see the head of this file):
  --points all|"P..."   run these points (1..7, e.g. "1 3 5"); the quorum is
                        --quorums' one value (3); --mode, --depth and
                        --read-ratio do not apply
  --durability D        qkv in points 1-6: none (DATA_DIR=none) or an FSYNC
                        policy on disk: always|everysec|never (none)
  --pipeline-depth N    depth of points 4 and 5b (16)
  --ops-writes N        points 1, 3 ($OPS_WRITES)
  --ops-one N           point 2, one writer ($OPS_ONE)
  --ops-pipelined N     point 4 ($OPS_PIPELINED)
  --ops-reads N         points 5a, 6 ($OPS_READS)
  --ops-pipelined-reads N  point 5b ($OPS_PIPELINED_READS)
  --ops-fsync N         point 7 ($OPS_FSYNC)
  --ops N               with --points: every point's operations
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
    --mode) MODE=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --ops) OPS=$2 OPS_SET=1; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --value-size) VALUE_SIZE=$2; shift 2 ;;
    --read-ratio) READ_RATIO=$2; shift 2 ;;
    --depth) DEPTH=$2; shift 2 ;;
    --quorums) QUORUMS=$2 QUORUMS_SET=1; shift 2 ;;
    --min-delay-ms) MIN_DELAY=$2; shift 2 ;;
    --max-delay-ms) MAX_DELAY=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --redis) REDIS=1; shift ;;
    --name) NAME=$2; shift 2 ;;
    --points) POINTS=$2; shift 2 ;;
    --durability) DURABILITY=$2; shift 2 ;;
    --pipeline-depth) PIPE=$2; shift 2 ;;
    --ops-writes) OPS_WRITES=$2; shift 2 ;;
    --ops-one) OPS_ONE=$2; shift 2 ;;
    --ops-pipelined) OPS_PIPELINED=$2; shift 2 ;;
    --ops-reads) OPS_READS=$2; shift 2 ;;
    --ops-pipelined-reads) OPS_PIPELINED_READS=$2; shift 2 ;;
    --ops-fsync) OPS_FSYNC=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

if [ -n "$POINTS" ]; then
    [ "$POINTS" != all ] || POINTS="1 2 3 4 5 6 7"
    POINTS=$(echo "$POINTS" | tr ',' ' ')
    for p in $POINTS; do
        case $p in
        [1-7]) ;;
        *) echo "sweep: --points: '$p' is not 1..7 or all" >&2; exit 2 ;;
        esac
    done
    case $DURABILITY in
    none | always | everysec | never) ;;
    *) echo "sweep: --durability: none, always, everysec or never" >&2; exit 2 ;;
    esac
    [ -n "$QUORUMS_SET" ] || QUORUMS=3
    # shellcheck disable=SC2086 # split on purpose
    set -- $QUORUMS
    [ $# -eq 1 ] || { echo "sweep: --points takes one quorum" >&2; exit 2; }
    Q=$1
    if [ -n "$OPS_SET" ]; then
        OPS_WRITES=$OPS OPS_ONE=$OPS OPS_PIPELINED=$OPS OPS_READS=$OPS
        OPS_PIPELINED_READS=$OPS OPS_FSYNC=$OPS
    fi
fi

perf_begin sweep "$NAME"
: >"$OUT/results.jsonl"

bench() { # SYSTEM QUORUM REPEAT ARGS...
    system=$1 q=$2 r=$3
    shift 3
    "$BENCH_BIN" --clients "$CLIENTS" --ops "$OPS" --keys "$KEYS" \
        --value-size "$VALUE_SIZE" --read-ratio "$READ_RATIO" \
        --quorum "$q" --label "$system" "$@" |
        sed "s/^{/{\"system\":\"$system\",\"repeat\":$r,\"min_delay_ms\":$MIN_DELAY,\"max_delay_ms\":$MAX_DELAY,/" |
        tee -a "$OUT/results.jsonl"
}

if [ -n "$POINTS" ]; then
    # has P: whether point P was asked for
    has() {
        case " $POINTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
    }

    # prun POINT SYSTEM DURABILITY OPS ARGS...: one qkv-bench run; its line,
    # the point, system, repeat and durability in front, goes to
    # results.jsonl and standard output.
    prun() {
        pr_point=$1 pr_sys=$2 pr_dur=$3 pr_ops=$4
        shift 4
        pr_line=$("$BENCH_BIN" --clients "$CLIENTS" --ops "$pr_ops" \
            --keys "$KEYS" --value-size "$VALUE_SIZE" --quorum "$Q" \
            --label "$pr_sys" "$@") || true # no operation ok: exit 1
        [ -n "$pr_line" ] || die "qkv-bench gave no result (point $pr_point, $pr_sys)"
        echo "$pr_line" |
            sed "s/^{/{\"point\":\"$pr_point\",\"system\":\"$pr_sys\",\"repeat\":$r,\"durability\":\"$pr_dur\",/" |
            tee -a "$OUT/results.jsonl"
    }

    # caught_up REST_PORT: waits (up to 5 s) until that follower has
    # applied everything the leader committed ("behind":0, not syncing).
    caught_up() {
        cu_tries=0
        while :; do
            cu_h=$(curl -s -m 1 "http://127.0.0.1:$1/health")
            case $cu_h in
            *'"syncing":true'*) ;;
            *'"behind":0,'* | *'"behind":0}'*) return 0 ;;
            esac
            cu_tries=$((cu_tries + 1))
            if [ $cu_tries -gt 50 ]; then
                echo "sweep: follower on port $1 still behind after 5 s" >&2
                return 0
            fi
            sleep 0.1
        done
    }

    # aof_ready: every Redis node has its AOF on with appendfsync always
    # and no rewrite running (a replica rewrites its AOF after its first
    # sync): steady state, as perf/durability.sh measures it.
    aof_ready() {
        ar_tries=0
        while :; do
            ar_ok=1 ar_i=0
            while [ $ar_i -le 5 ]; do
                ar_info=$(redis-cli -p $((REDIS_BASE + ar_i)) info persistence 2>/dev/null | tr -d '\r')
                case $ar_info in *aof_enabled:1*) ;; *) ar_ok=0 ;; esac
                case $ar_info in *aof_rewrite_in_progress:0*) ;; *) ar_ok=0 ;; esac
                case $ar_info in *aof_rewrite_scheduled:0*) ;; *) ar_ok=0 ;; esac
                ar_i=$((ar_i + 1))
            done
            [ $ar_ok -eq 0 ] || return 0
            ar_tries=$((ar_tries + 1))
            [ $ar_tries -le 200 ] || die "redis AOF not ready"
            sleep 0.1
        done
    }

    case $DURABILITY in
    none) QKV_DUR="DATA_DIR=none" ;;
    *) QKV_DUR="FSYNC=$DURABILITY" ;;
    esac
    READS=0
    if has 5 || has 6; then READS=1; fi
    r=1
    while [ $r -le "$REPEAT" ]; do
        # points 1-6: one qkv cluster, then one Redis master and replicas
        if has 1 || has 2 || has 3 || has 4 || has 5 || has 6; then
            if [ "$DURABILITY" = none ]; then
                DATA_DIR=none
                export DATA_DIR
                unset FSYNC
            else
                unset DATA_DIR
                FSYNC=$DURABILITY
                export FSYNC
            fi
            cluster_start "$Q" "$MIN_DELAY" "$MAX_DELAY"
            # cluster_start: the leader on PERF_BASE, a follower after it
            L_REST=127.0.0.1:$PERF_BASE
            L_ZMQ=tcp://127.0.0.1:$((PERF_BASE - 1000))
            F_REST=127.0.0.1:$((PERF_BASE + 1))
            F_ZMQ=tcp://127.0.0.1:$((PERF_BASE - 1000 + 1))
            ! has 1 || prun 1 qkv "$QKV_DUR" "$OPS_WRITES" --mode http --target "$L_REST"
            ! has 2 || prun 2 qkv "$QKV_DUR" "$OPS_ONE" --mode http --clients 1 --target "$L_REST"
            ! has 3 || prun 3 qkv "$QKV_DUR" "$OPS_WRITES" --mode zmq --depth 1 --target "$L_ZMQ"
            ! has 4 || prun 4 qkv "$QKV_DUR" "$OPS_PIPELINED" --mode zmq --depth "$PIPE" --target "$L_ZMQ"
            if [ $READS -eq 1 ]; then
                # every key written once, then the follower caught up
                prun preload qkv "$QKV_DUR" "$KEYS" --mode http --clients 1 --sequential --target "$L_REST"
                caught_up $((PERF_BASE + 1))
            fi
            ! has 5 || prun 5a qkv "$QKV_DUR" "$OPS_READS" --mode http --read-ratio 1 --target "$F_REST"
            ! has 5 || prun 5b qkv "$QKV_DUR" "$OPS_PIPELINED_READS" --mode zmq --read-ratio 1 --depth "$PIPE" --target "$F_ZMQ"
            ! has 6 || prun 6 qkv "$QKV_DUR" "$OPS_READS" --mode http --read-ratio 1 --target "$L_REST"
            stop_all
            unset DATA_DIR FSYNC
            if [ $REDIS -eq 1 ] && { has 1 || has 2 || has 3 || has 4 || has 5; }; then
                redis_start 5
                M=127.0.0.1:$REDIS_BASE R1=127.0.0.1:$((REDIS_BASE + 1))
                ! has 1 || prun 1 redis "appendonly no" "$OPS_WRITES" --mode redis --target "$M"
                ! has 2 || prun 2 redis "appendonly no" "$OPS_ONE" --mode redis --clients 1 --target "$M"
                ! has 3 || prun 3 redis "appendonly no" "$OPS_WRITES" --mode redis --target "$M"
                ! has 4 || prun 4 redis "appendonly no" "$OPS_PIPELINED" --mode redis --depth "$PIPE" --target "$M"
                if has 5; then
                    # every key on every replica (WAIT 5), then GETs on one
                    prun preload redis "appendonly no" "$KEYS" --mode redis --clients 1 --sequential --quorum 5 --target "$M"
                    prun 5a redis "appendonly no" "$OPS_READS" --mode redis --read-ratio 1 --target "$R1"
                    prun 5b redis "appendonly no" "$OPS_PIPELINED_READS" --mode redis --read-ratio 1 --depth "$PIPE" --target "$R1"
                fi
                stop_all
            fi
        fi
        # point 7: every node FSYNC=always on fresh data directories on
        # disk; Redis with its AOF, appendfsync always
        if has 7; then
            unset DATA_DIR
            FSYNC=always
            export FSYNC
            cluster_start "$Q" "$MIN_DELAY" "$MAX_DELAY"
            prun 7 qkv "FSYNC=always" "$OPS_FSYNC" --mode http --target "127.0.0.1:$PERF_BASE"
            stop_all
            unset FSYNC
            if [ $REDIS -eq 1 ]; then
                # shellcheck disable=SC2034 # read by lib.sh's redis_start
                REDIS_EXTRA="--appendonly yes --appendfsync always"
                redis_start 5
                aof_ready
                prun 7 redis "appendfsync always" "$OPS_FSYNC" --mode redis --target "127.0.0.1:$REDIS_BASE"
                stop_all
                # shellcheck disable=SC2034
                REDIS_EXTRA=""
            fi
        fi
        r=$((r + 1))
    done

    # One line per point: the mean of its runs (over --repeat) for each
    # system; ratios are qkv / Redis (throughput: above 1 is qkv ahead;
    # latency: below 1 is).
    . "$(dirname "$0")/json.sh"
    awk -v clients="$CLIENTS" -v q="$Q" -v pipe="$PIPE" "$JSON_FIELD"'
    {
        p = field("point"); s = field("system")
        if (p == "preload") next
        k = p SUBSEP s
        n[k]++
        tput[k] += field("throughput"); p50[k] += field("p50_ms")
        p99[k] += field("p99_ms"); failed[k] += field("failed")
        dur[k] = field("durability")
        if (!(p in seen)) { seen[p] = 1 }
    }
    function side(p, s,   k) {
        k = p SUBSEP s
        if (!(k in n)) return "null"
        return sprintf("{\"durability\":\"%s\",\"throughput\":%.1f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"failed\":%d,\"runs\":%d}",
            dur[k], tput[k] / n[k], p50[k] / n[k], p99[k] / n[k], failed[k], n[k])
    }
    function ratio(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "null" }
    END {
        what["1"] = "REST writes, " clients " keep-alive writers, leader / Redis SET+WAIT " q
        what["2"] = "REST writes, 1 writer (p50) / Redis SET+WAIT " q ", 1 client"
        what["3"] = "zmq-native writes, " clients " clients, depth 1 / Redis SET+WAIT " q
        what["4"] = "zmq-native writes, " clients " clients, depth " pipe " / Redis " pipe " SETs + one WAIT " q " per round trip"
        what["5a"] = "REST reads, " clients " readers, one follower / Redis GET on one replica"
        what["5b"] = "zmq-native reads, " clients " clients, depth " pipe ", one follower / Redis " pipe " GETs per round trip on one replica"
        what["6"] = "REST reads, " clients " readers, leader (no Redis counterpart)"
        what["7"] = "REST writes, " clients " writers, FSYNC=always on every node / Redis appendfsync always + WAIT " q
        note7 = "Redis WAIT counts replicas that received the write, not replicas that fsynced it: WAIT does not wait for replica fsync (appendfsync always fsyncs the master only before it answers; WAITAOF came in Redis 7.2); qkv FSYNC=always counts a follower only once it fsynced the entry"
        m = split("1 2 3 4 5a 5b 6 7", order, " ")
        for (i = 1; i <= m; i++) {
            p = order[i]
            if (!(p in seen)) continue
            kq = p SUBSEP "qkv"; kr = p SUBSEP "redis"
            rat = "null"
            if ((kq in n) && (kr in n))
                rat = sprintf("{\"throughput\":%s,\"p50\":%s,\"p99\":%s}",
                    ratio(tput[kq], tput[kr]), ratio(p50[kq], p50[kr]), ratio(p99[kq], p99[kr]))
            printf "{\"point\":\"%s\",\"what\":\"%s\",\"quorum\":%d,\"qkv\":%s,\"redis\":%s,\"ratio\":%s%s}\n",
                p, what[p], q, side(p, "qkv"), side(p, "redis"), rat,
                p == "7" ? ",\"note\":\"" note7 "\"" : ""
        }
    }' "$OUT/results.jsonl" >"$OUT/summary.jsonl"
    echo
    cat "$OUT/summary.jsonl"
    echo
    awk "$JSON_FIELD"'
    function num(obj, name,   m) {
        if (match(obj, "\"" name "\":[0-9.e+-]+")) {
            m = substr(obj, RSTART, RLENGTH); sub(/^"[^"]*":/, "", m); return m
        }
        return ""
    }
    function str(obj, name,   m) { # a string member, commas and all
        if (match(obj, "\"" name "\":\"[^\"]*\"")) {
            m = substr(obj, RSTART, RLENGTH); sub(/^"[^"]*":"/, "", m); sub(/"$/, "", m); return m
        }
        return ""
    }
    function obj(name,   m) { # the {...} after "name": (flat), or ""
        if (match($0, "\"" name "\":\\{[^}]*\\}")) return substr($0, RSTART, RLENGTH)
        return ""
    }
    BEGIN {
        printf "%-5s %-6s %11s %9s %9s %7s  %s\n", "point", "system", "ops/s", "p50 ms", "p99 ms", "failed", "durability"
    }
    {
        p = field("point"); qo = obj("qkv"); ro = obj("redis"); ra = obj("ratio")
        printf "%-5s %s\n", p, str($0, "what")
        if (qo != "") printf "%-5s %-6s %11.0f %9.3f %9.3f %7d  %s\n", "", "qkv", num(qo, "throughput"), num(qo, "p50_ms"), num(qo, "p99_ms"), num(qo, "failed"), str(qo, "durability")
        if (ro != "") printf "%-5s %-6s %11.0f %9.3f %9.3f %7d  %s\n", "", "redis", num(ro, "throughput"), num(ro, "p50_ms"), num(ro, "p99_ms"), num(ro, "failed"), str(ro, "durability")
        if (ra != "") printf "%-5s %-6s %10.2fx %8.2fx %8.2fx\n", "", "ratio", num(ra, "throughput"), num(ra, "p50"), num(ra, "p99")
        if (p == "7" && ro != "") print "      note: Redis WAIT does not wait for replica fsync (only the master fsyncs before it answers)"
    }
    END { print "ratio = qkv / Redis: throughput above 1 and latency below 1 favour qkv" }
    ' "$OUT/summary.jsonl" | tee "$OUT/table.txt"
    echo "results: $OUT/results.jsonl $OUT/summary.jsonl $OUT/table.txt" >&2
    exit 0
fi

r=1
while [ $r -le "$REPEAT" ]; do
    for q in $QUORUMS; do
        cluster_start "$q" "$MIN_DELAY" "$MAX_DELAY"
        if [ "$MODE" = zmq ]; then
            bench qkv "$q" "$r" --mode zmq --depth "$DEPTH" \
                --target "tcp://127.0.0.1:$((PERF_BASE - 1000))"
        else
            bench qkv "$q" "$r" --mode http --target "127.0.0.1:$PERF_BASE"
        fi
        stop_all
        if [ $REDIS -eq 1 ]; then
            redis_start 5
            bench redis "$q" "$r" --mode redis \
                --target "127.0.0.1:$REDIS_BASE"
            stop_all
        fi
    done
    r=$((r + 1))
done

sh "$ROOT/perf/plot.sh" "$OUT"
