#!/bin/sh
# The failover study (Release build, default settings: ELECTION_TIMEOUT_MS
# 500, HEARTBEAT_MS 100), on one machine:
#   kills      six nodes with elections (PEERS, WRITE_QUORUM=3, FSYNC
#              always, fresh data directories); KILLS times: the leader
#              is killed with SIGKILL and a writer that never stops
#              (curl, POST /put to a surviving node, following the 307 to
#              whoever leads) times from the kill to the first write the
#              new leader commits; the killed node is started again on its
#              data and the cluster settles before the next kill. Targets:
#              median < 1 s, maximum < 2 s over 20 kills.
#   idle       the same six nodes, idle for IDLE seconds: CPU each node
#              used (utime + stime from /proc), as a share of one core -
#              heartbeats and leases (target: at most 2 %).
#   steady     qkv-bench over REST (10 writers, 100 keys, 10-byte values,
#              WRITE_QUORUM=3, memory only), the static form (a fixed
#              leader, no elections) against six nodes with elections,
#              interleaved, REPEAT pairs: elections must cost no
#              throughput or latency (same-run ratio).
# Writes kills.jsonl (one line per kill: milliseconds to the first commit,
# old and new leader), idle.jsonl, steady.jsonl and summary.json, and
# kills.png (the milliseconds of each kill, sorted), under
# perf/results/NAME/, and prints the summary.
set -eu
. "$(dirname "$0")/lib.sh"

KILLS=20 IDLE=10 REPEAT=2 NAME="" DO_KILLS=1 DO_IDLE=1 DO_STEADY=1
DURATION=6

usage() {
    cat <<USAGE
usage: perf/failover.sh [options]
  --kills N        leader kills (20)
  --idle S         seconds of the idle CPU measurement (10)
  --repeat N       steady-state pairs (2)
  --duration S     seconds per steady-state run (6)
  --no-kills | --no-idle | --no-steady   leave a part out
  --name NAME      results folder perf/results/NAME (default: a timestamp)
USAGE
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --kills) KILLS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --no-kills) DO_KILLS=0; shift ;;
    --no-idle) DO_IDLE=0; shift ;;
    --no-steady) DO_STEADY=0; shift ;;
    --name) NAME=$2; shift 2 ;;
    *) usage ;;
    esac
done
for n in "$KILLS" "$IDLE" "$REPEAT" "$DURATION"; do
    case $n in '' | *[!0-9]*) usage ;; esac
done

perf_begin failover "$NAME"
command -v gnuplot >/dev/null || die "gnuplot missing"
: >"$OUT/kills.jsonl"
: >"$OUT/idle.jsonl"
: >"$OUT/steady.jsonl"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# pid_of NAME: the newest PID qkv_launch gave node NAME.
pid_of() {
    po=""
    for node in $QKV_NODES; do
        [ "${node%%:*}" != "$1" ] || po=${node#*:}
    done
    echo "$po"
}

# leader_index: the node that leads now (from /health), or "".
leader_index() {
    li_url=$(qkv_find_leader)
    [ -z "$li_url" ] || echo $((${li_url##*:} - PERF_BASE))
}

elections_start() {
    QKV_ELECTIONS=1
    export QKV_ELECTIONS
    cluster_start 3 "" "" 5
}

# ---------------------------------------------------------------------
# kills

if [ "$DO_KILLS" = 1 ]; then
    elections_start
    k=1
    while [ "$k" -le "$KILLS" ]; do
        old=$(leader_index)
        [ -n "$old" ] || die "no leader before kill $k"
        # a write first: the leader serves
        curl -s -m 2 -o /dev/null -XPOST "http://127.0.0.1:$((PERF_BASE + old))/put" \
            -d '{"key":"warm","value":"1"}'
        via=$(((old + 1) % 6))
        t0=$(now_ms)
        kill -9 "$(pid_of "node$old")"
        code=0 tries=0
        while [ "$code" != 200 ]; do
            code=$(curl -s -m 1 -L -o /dev/null -w '%{http_code}' -XPOST \
                "http://127.0.0.1:$((PERF_BASE + via))/put" \
                -d "{\"key\":\"kill$k\",\"value\":\"$k\"}" || true)
            tries=$((tries + 1))
            [ $(($(now_ms) - t0)) -lt 30000 ] || die "no new leader 30 s after kill $k"
            [ "$code" = 200 ] || sleep 0.005
        done
        ms=$(($(now_ms) - t0))
        new=$(leader_index)
        echo "{\"study\":\"failover\",\"kill\":$k,\"ms\":$ms,\"old\":$old,\"new\":\"${new:-?}\",\"tries\":$tries}" |
            tee -a "$OUT/kills.jsonl"
        qkv_launch_peer "$old"
        PIDS="$PIDS $(pid_of "node$old")"
        qkv_wait 20 || die "node$old did not rejoin after kill $k"
        k=$((k + 1))
    done
    stop_all
fi

# ---------------------------------------------------------------------
# idle CPU

# cpu_ticks PID: utime + stime in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

if [ "$DO_IDLE" = 1 ]; then
    elections_start
    sleep 2
    hz=$(getconf CLK_TCK)
    before=""
    for node in $QKV_NODES; do
        before="$before ${node%%:*}:$(cpu_ticks "${node#*:}")"
    done
    sleep "$IDLE"
    for entry in $before; do
        name=${entry%%:*}
        t1=$(cpu_ticks "$(pid_of "$name")")
        echo "$name ${entry#*:} $t1" | awk -v hz="$hz" -v s="$IDLE" '{
            printf "{\"study\":\"failover\",\"idle\":\"%s\",\"cpu_pct\":%.2f}\n",
                $1, ($3 - $2) / hz / s * 100 }'
    done | tee -a "$OUT/idle.jsonl"
    stop_all
fi
QKV_ELECTIONS=0

# ---------------------------------------------------------------------
# steady state: static against elections, interleaved

steady_run() {
    DATA_DIR=none
    export DATA_DIR
    if [ "$1" = elections ]; then
        elections_start
        target=$(qkv_find_leader)
    else
        QKV_ELECTIONS=0
        export QKV_ELECTIONS
        cluster_start 3 0 0
        target=http://127.0.0.1:$PERF_BASE
    fi
    "$BENCH_BIN" --mode http --target "${target#http://}" --clients 10 \
        --ops 1000000 --duration "$DURATION" --keys 100 --value-size 10 \
        --quorum 3 --label "$1" |
        sed "s/^{/{\"study\":\"failover\",\"form\":\"$1\",\"repeat\":$2,/" |
        tee -a "$OUT/steady.jsonl"
    stop_all
    unset DATA_DIR
}

if [ "$DO_STEADY" = 1 ]; then
    r=1
    while [ "$r" -le "$REPEAT" ]; do
        steady_run static "$r"
        steady_run elections "$r"
        r=$((r + 1))
    done
fi

# ---------------------------------------------------------------------
# summary and plot

. "$(dirname "$0")/json.sh"
json_field() { awk "$JSON_FIELD"'{ print field("'"$1"'") }'; }
summary=$(
    {
        if [ -s "$OUT/kills.jsonl" ]; then
            json_field ms <"$OUT/kills.jsonl" | sort -n | awk '
                { v[NR] = $1 }
                END { printf "\"kills\":%d,\"median_ms\":%d,\"p90_ms\":%d,\"max_ms\":%d,",
                      NR, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }'
        fi
        if [ -s "$OUT/idle.jsonl" ]; then
            json_field cpu_pct <"$OUT/idle.jsonl" | sort -n | awk '
                { v = $1 } END { printf "\"idle_cpu_pct_max\":%.2f,", v }'
        fi
        if [ -s "$OUT/steady.jsonl" ]; then
            for form in static elections; do
                grep "\"form\":\"$form\"" "$OUT/steady.jsonl" | json_field throughput |
                    awk -v f="$form" '{ s += $1; n++ }
                        END { if (n) printf "\"%s_writes_per_s\":%.0f,", f, s / n }'
                grep "\"form\":\"$form\"" "$OUT/steady.jsonl" | json_field p99_ms |
                    awk -v f="$form" '{ s += $1; n++ }
                        END { if (n) printf "\"%s_p99_ms\":%.3f,", f, s / n }'
            done
        fi
    } | sed 's/,$//'
)
echo "{\"study\":\"failover\",$summary}" | tee "$OUT/summary.json"

if [ -s "$OUT/kills.jsonl" ]; then
    json_field ms <"$OUT/kills.jsonl" | sort -n | awk '{ print NR, $1 }' \
        >"$OUT/kills.dat"
    gnuplot <<GP
set terminal pngcairo size 800,450
set output "$OUT/kills.png"
set title "leader kill -9 to the first write the new leader commits"
set xlabel "kill (sorted)"
set ylabel "milliseconds"
set yrange [0:*]
set grid ytics
plot "$OUT/kills.dat" using 1:2 with linespoints title "qkv, 6 nodes, q=3", \
     1000 with lines dt 2 title "1 s (median target)", \
     2000 with lines dt 3 title "2 s (maximum target)"
GP
    echo "perf: $OUT/kills.png" >&2
fi
