#!/bin/sh
# Where the CPU goes, per write: starts a local leader and five followers,
# drives them with qkv-bench, and reads every thread's CPU time and context
# switches from /proc before and after the run. Prints one JSON line per
# process role and thread name (microseconds of CPU per operation,
# voluntary and involuntary switches per operation) and a table, and the
# leader's replication counters (entries per APPEND frame, APPENDs per ACK).
# With --redis, the same for a Redis master and five replicas under SET +
# WAIT q. With --reads, the clients read instead, from one follower (every
# key written first), against GET on one Redis replica; only that
# follower or replica (and the leader or master) is profiled.
# Results go to perf/results/NAME/profile.jsonl.
#
# Counts come from /proc, so nothing is sampled and nothing slows the run;
# the numbers include the load generator's own use, reported apart.
set -eu
. "$(dirname "$0")/lib.sh"

MODE=http CLIENTS=10 OPS=100000 KEYS=100 QUORUM=3 DEPTH=1 REDIS=0 NAME=""
READS=0

usage() {
    cat <<USAGE
usage: perf/profile.sh [options]
  --mode http|zmq       how qkv is driven (http)
  --clients N           concurrent writers (10)
  --ops N               writes (100000)
  --keys N              distinct keys (100)
  --quorum N            WRITE_QUORUM, and WAIT N for Redis (3)
  --depth N             zmq: requests in flight per client; Redis:
                        commands per round trip (1)
  --reads               reads from one follower (Redis: one replica)
  --redis               also profile Redis SET+WAIT
  --name NAME           results folder under perf/results (timestamp)
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
    --mode) MODE=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --quorum) QUORUM=$2; shift 2 ;;
    --depth) DEPTH=$2; shift 2 ;;
    --redis) REDIS=1; shift ;;
    --reads) READS=1; shift ;;
    --name) NAME=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

perf_begin profile "$NAME"
: >"$OUT/profile.jsonl"

# snapshot ROLE:PID... : one line per thread: role thread-name utime+stime
# (clock ticks) voluntary involuntary. Thread names may hold spaces
# (civetweb's "civetweb-worker" does not, but be safe): they are joined
# with '_'.
snapshot() {
    for rp in "$@"; do
        role=${rp%%:*} pid=${rp#*:}
        for task in /proc/"$pid"/task/*; do
            [ -r "$task/stat" ] || continue
            comm=$(tr ' ' '_' <"$task/comm")
            # fields 14 and 15 of stat, after the ")" that ends comm
            ticks=$(sed 's/.*) //' "$task/stat" | awk '{print $12 + $13}')
            sw=$(awk '/^voluntary_ctxt_switches/ {v=$2}
                      /^nonvoluntary_ctxt_switches/ {n=$2}
                      END {print v, n}' "$task/status")
            echo "$role ${task##*/} $comm $ticks $sw"
        done
    done
}

# report SYSTEM BEFORE AFTER BENCH_JSON: per role and thread name
report() {
    hz=$(getconf CLK_TCK)
    awk -v sys="$1" -v ops="$OPS" -v hz="$hz" -v bench="$4" '
        FNR == NR { t0[$1 " " $2] = $4; v0[$1 " " $2] = $5; n0[$1 " " $2] = $6; next }
        {
            k = $1 " " $3
            cpu[k] += $4 - t0[$1 " " $2]
            vol[k] += $5 - v0[$1 " " $2]
            inv[k] += $6 - n0[$1 " " $2]
            role[k] = $1; name[k] = $3
        }
        END {
            for (k in cpu) {
                if (cpu[k] == 0 && vol[k] < ops / 100)
                    continue
                printf "{\"system\":\"%s\",\"role\":\"%s\",\"thread\":\"%s\"," \
                       "\"ops\":%d,\"cpu_us_per_op\":%.2f," \
                       "\"switches_per_op\":%.3f,\"preempted_per_op\":%.3f}\n",
                       sys, role[k], name[k], ops, cpu[k] * 1e6 / hz / ops,
                       vol[k] / ops, inv[k] / ops
            }
            if (match(bench, /"bench_cpu_s":[0-9.]+/)) {
                s = substr(bench, RSTART + 14, RLENGTH - 14)
                printf "{\"system\":\"%s\",\"role\":\"bench\",\"thread\":\"qkv-bench\"," \
                       "\"ops\":%d,\"cpu_us_per_op\":%.2f}\n",
                       sys, ops, s * 1e6 / ops
            }
        }' "$2" "$3" | sort | tee -a "$OUT/profile.jsonl"
}

run() { # SYSTEM BENCH-ARGS... ; roles from ROLES
    system=$1
    shift
    # shellcheck disable=SC2086
    snapshot $ROLES >"$OUT/before.txt"
    line=$("$BENCH_BIN" --clients "$CLIENTS" --ops "$OPS" --keys "$KEYS" \
        --quorum "$QUORUM" --label "$system" "$@")
    # shellcheck disable=SC2086
    snapshot $ROLES >"$OUT/after.txt"
    echo "$line" | tee -a "$OUT/profile.jsonl"
    report "$system" "$OUT/before.txt" "$OUT/after.txt" "$line"
    rm -f "$OUT/before.txt" "$OUT/after.txt"
}

# follower_caught_up URL: waits until the follower applied everything
# the leader committed.
follower_caught_up() {
    fc_tries=0
    until curl -s -m 1 "$1/health" | grep -q '"behind":0[,}]'; do
        fc_tries=$((fc_tries + 1))
        [ $fc_tries -gt 100 ] && die "follower $1 did not catch up"
        sleep 0.05
    done
}

cluster_start "$QUORUM" 0 0
ROLES="" i=0
for pid in $PIDS; do # followers first, the leader last (lib.sh)
    i=$((i + 1))
    if [ $i -eq 6 ]; then
        ROLES="$ROLES leader:$pid"
    elif [ $READS -eq 0 ] || [ $i -eq 1 ]; then
        ROLES="$ROLES follower:$pid"
    fi
done
port=$PERF_BASE rw=""
if [ $READS -eq 1 ]; then
    "$BENCH_BIN" --clients 1 --ops "$KEYS" --keys "$KEYS" --sequential \
        --mode http --target "127.0.0.1:$PERF_BASE" >/dev/null
    follower_caught_up "http://127.0.0.1:$((PERF_BASE + 1))"
    port=$((PERF_BASE + 1)) rw="--read-ratio 1"
fi
# shellcheck disable=SC2086 # rw: split on purpose
if [ "$MODE" = zmq ]; then
    run qkv --mode zmq --depth "$DEPTH" $rw \
        --target "tcp://127.0.0.1:$((port - 1000))"
else
    run qkv --mode http $rw --target "127.0.0.1:$port"
fi
leader="http://127.0.0.1:$PERF_BASE" follower="http://127.0.0.1:$((PERF_BASE + 1))"
awk -v e="$(metric "$leader" qkv_repl_entries_sent_total)" \
    -v f="$(metric "$leader" qkv_repl_frames_sent_total)" \
    -v fr="$(metric "$follower" qkv_repl_frames_received_total)" \
    -v fs="$(metric "$follower" qkv_repl_frames_sent_total)" 'BEGIN {
    printf "{\"system\":\"qkv\",\"role\":\"replication\",\"entries_per_frame\":%.2f," \
           "\"follower1_frames_per_ack\":%.2f}\n", f ? e / f : 0, fs ? fr / fs : 0
}' | tee -a "$OUT/profile.jsonl"
stop_all

if [ $REDIS -eq 1 ]; then
    redis_start 5
    ROLES="" i=0
    for pid in $PIDS; do # the master first (lib.sh)
        i=$((i + 1))
        if [ $i -eq 1 ]; then
            ROLES="$ROLES master:$pid"
        elif [ $READS -eq 0 ] || [ $i -eq 2 ]; then
            ROLES="$ROLES replica:$pid"
        fi
    done
    port=$REDIS_BASE
    if [ $READS -eq 1 ]; then
        "$BENCH_BIN" --clients 1 --ops "$KEYS" --keys "$KEYS" --sequential \
            --mode redis --quorum 5 --target "127.0.0.1:$REDIS_BASE" >/dev/null
        port=$((REDIS_BASE + 1))
    fi
    # shellcheck disable=SC2086 # rw: split on purpose
    run redis --mode redis --depth "$DEPTH" $rw --target "127.0.0.1:$port"
    stop_all
fi

# the table: per system and role, summed over threads (replicas and
# followers: the mean of one)
echo
nf=5
[ $READS -eq 0 ] || nf=1
awk -v nf="$nf" '
    /"cpu_us_per_op"/ {
        match($0, /"system":"[^"]*"/); s = substr($0, RSTART + 10, RLENGTH - 11)
        match($0, /"role":"[^"]*"/); r = substr($0, RSTART + 8, RLENGTH - 9)
        match($0, /"thread":"[^"]*"/); t = substr($0, RSTART + 10, RLENGTH - 11)
        match($0, /"cpu_us_per_op":[0-9.]+/); c = substr($0, RSTART + 16, RLENGTH - 16)
        v = 0
        if (match($0, /"switches_per_op":[0-9.]+/)) v = substr($0, RSTART + 18, RLENGTH - 18)
        n = (r == "follower" || r == "replica") ? nf : 1
        printf "%-6s %-9s %-18s %8.1f %8.2f\n", s, r, t, c / n, v / n
    }' "$OUT/profile.jsonl" |
    sort | awk -v nf="$nf" 'BEGIN {
        printf "%-6s %-9s %-18s %8s %8s\n", "system", "role", "thread", "us/op", "sw/op"
        print (nf == 5 ? "       (follower and replica rows: one of five)" \
                       : "       (follower and replica: the one read from)")
    } { print }'
echo "results: $OUT/profile.jsonl"
