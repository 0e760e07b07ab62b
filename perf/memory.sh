#!/bin/sh
# The memory study: a leader (WRITE_QUORUM=1) and one follower; qkv-bench
# writes KEYS distinct keys over the zmq-native protocol; once the
# follower has applied everything, prints one JSON line with the
# follower's key count, the store's own overhead beyond keys and values
# (qkv_store_overhead_bytes, counted from the allocator's block sizes),
# that overhead per key, and the follower's RSS.
# Usage: perf/memory.sh [KEYS (1000000)] [VALUE_SIZE (10)]
set -eu
. "$(dirname "$0")/lib.sh"
KEYS=${1:-1000000}
VALUE_SIZE=${2:-10}
trap stop_all EXIT INT TERM
perf_build
cluster_start 1 0 0 1
follower_pid=$(echo "$PIDS" | awk '{print $1}')
"$BENCH_BIN" --mode zmq --target "tcp://127.0.0.1:$((PERF_BASE - 1000))" \
    --clients 2 --depth 1000 --ops "$KEYS" --keys "$KEYS" --sequential \
    --value-size "$VALUE_SIZE" --label memory >&2

leader_last=$(metric "http://127.0.0.1:$PERF_BASE" qkv_last_index)
tries=0
while [ "$(metric "http://127.0.0.1:$((PERF_BASE + 1))" qkv_applied_index)" \
    != "$leader_last" ]; do
    tries=$((tries + 1))
    [ $tries -gt 600 ] && die "follower did not catch up"
    sleep 0.1
done
f="http://127.0.0.1:$((PERF_BASE + 1))"
keys=$(metric "$f" qkv_keys)
overhead=$(metric "$f" qkv_store_overhead_bytes)
rss_kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$follower_pid/status")
awk -v k="$keys" -v o="$overhead" -v r="$rss_kb" -v v="$VALUE_SIZE" 'BEGIN {
    printf "{\"study\":\"memory\",\"keys\":%d,\"value_size\":%d,\"store_overhead_bytes\":%d,\"overhead_per_key\":%.1f,\"follower_rss_bytes\":%d,\"rss_per_key\":%.1f}\n", k, v, o, o / k, r * 1024, r * 1024 / k
}'
