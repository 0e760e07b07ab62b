#!/bin/sh
# The quorum sweep: for each WRITE_QUORUM, starts a local leader and five
# followers, drives them with qkv-bench, stops them; writes every run's
# JSON line and a CSV under perf/results/NAME/, and draws PNG plots with
# gnuplot. With --redis, a Redis master with five replicas is driven by
# the same load generator in the same run (SET + WAIT q), and the
# qkv/Redis ratios are printed per quorum. Defaults are the seed study's:
# 10 writers, 500 writes over 100 keys, quorum 1..5, no delay.
set -eu
. "$(dirname "$0")/lib.sh"

MODE=http CLIENTS=10 OPS=500 KEYS=100 VALUE_SIZE=10 QUORUMS="1 2 3 4 5"
MIN_DELAY=0 MAX_DELAY=0 DEPTH=1 REPEAT=1 REDIS=0 NAME="" READ_RATIO=0

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
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
    --mode) MODE=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --value-size) VALUE_SIZE=$2; shift 2 ;;
    --read-ratio) READ_RATIO=$2; shift 2 ;;
    --depth) DEPTH=$2; shift 2 ;;
    --quorums) QUORUMS=$2; shift 2 ;;
    --min-delay-ms) MIN_DELAY=$2; shift 2 ;;
    --max-delay-ms) MAX_DELAY=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --redis) REDIS=1; shift ;;
    --name) NAME=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

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
