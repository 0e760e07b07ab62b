#!/bin/sh
# The durability study, in one run on one machine, interleaved:
#   throughput  for each WRITE_QUORUM (1 and 3) a local leader and five
#               followers driven over REST by qkv-bench (10 writers, 100
#               keys, 10-byte values), once per durability setting:
#               FSYNC=always, everysec and never (fresh data directories
#               in perf/results, on the repository's disk) and
#               DATA_DIR=none (memory only); beside it a Redis master with
#               five replicas driven by the same qkv-bench (SET + WAIT q),
#               with "appendonly yes" and "appendfsync always", then
#               "everysec", on every Redis node (fresh directories too).
#               After each FSYNC=always run the leader's /metrics give
#               entries per fsync (qkv_fsync_entries_total /
#               qkv_fsyncs_total: group commit).
#   recovery    a lone leader (WRITE_QUORUM=0, FSYNC=never to load fast,
#               SNAPSHOT_ENTRIES=its key count) gets 1 000 000 distinct
#               keys, a snapshot, and 100 000 log entries after it; it is killed
#               (kill -9) and started again on its data directory: the time
#               from its start until /health says "serving":true with
#               applied_index == last_index, and its qkv_recovery_seconds.
#   catch-up    a leader and one follower (WRITE_QUORUM=0, FSYNC=always,
#               SNAPSHOT_ENTRIES=1000000 so that the follower catches up by
#               the log, not a snapshot); the follower is killed (kill -9),
#               100 000 entries are written, it is started again: the time
#               from its start until its applied_index reaches the leader's
#               commit_index.
#   snapshot    a leader and two followers (WRITE_QUORUM=1, FSYNC=never)
#               with 300 000 keys, REST writers over them: write p99 with
#               no snapshot against a snapshot every 50 000 entries (each
#               node takes one or two in the window), in pairs of runs.
# Writes results.jsonl (throughput runs), recovery.jsonl, catchup.jsonl,
# snapshot.jsonl,
# results.csv (every run), summary.csv (mean per setting and quorum),
# table.txt, ratios.txt and two plots, throughput.png and latency_p99.png
# (a bar per quorum for each setting, qkv beside Redis), under
# perf/results/NAME/, and prints the ratios: qkv FSYNC=always / Redis
# appendfsync always at each quorum (the target: >= 1.0x at q=3) and qkv
# FSYNC=never / DATA_DIR=none (the target: within 10 %).
set -eu
# The static roles, as this study has always been measured (and as its
# recovery times mean: a restarted leader serves without an election).
QKV_ELECTIONS=${QKV_ELECTIONS:-0}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/json.sh"

CLIENTS=10 OPS=1000000 DURATION=8 KEYS=100 VALUE_SIZE=10 QUORUMS="1 3"
SETTINGS="always everysec never none" REDIS_SETTINGS="always everysec"
REPEAT=1 NAME="" THROUGHPUT=1 RECOVERY=1 CATCHUP=1 REPLOT=""
RECOVERY_KEYS=1000000 RECOVERY_LOG=100000 CATCHUP_ENTRIES=100000
SNAPSHOT=1 SNAP_KEYS=300000 SNAP_EVERY=50000 SNAP_REPEAT=2
CATCHUP_FSYNC=always

usage() {
    cat <<USAGE
usage: perf/durability.sh [options]
  --clients N           concurrent REST writers (10)
  --ops N               writes per throughput run, at most (1000000)
  --duration S          seconds per throughput run, at most (8)
  --keys N              distinct keys (100)
  --value-size N        value bytes (10)
  --quorums "Q..."      WRITE_QUORUM levels ("1 3")
  --settings "S..."     qkv settings, of always everysec never none
                        ("always everysec never none")
  --redis-settings "S..." Redis appendfsync values ("always everysec");
                        "" leaves Redis out
  --repeat N            throughput runs per point; the summary is the mean (1)
  --no-throughput       skip the throughput runs
  --no-recovery         skip the recovery measurement
  --no-catchup          skip the catch-up measurement
  --no-snapshot         skip the write p99 during snapshots
  --snap-keys N         keys the snapshot runs write over (300000)
  --snap-every N        SNAPSHOT_ENTRIES of the runs with snapshots (50000)
  --snap-repeat N       pairs of runs, without and with snapshots (2)
  --recovery-keys N     distinct keys before the restart (1000000)
  --recovery-log N      log entries after the snapshot (100000)
  --catchup-entries N   entries the stopped follower misses (100000)
  --catchup-fsync F     FSYNC of the catch-up pair (always)
  --name NAME           results folder under perf/results (timestamp)
  --replot DIR          only redraw DIR's CSV, table, ratios and plots
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
    --clients) CLIENTS=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --value-size) VALUE_SIZE=$2; shift 2 ;;
    --quorums) QUORUMS=$2; shift 2 ;;
    --settings) SETTINGS=$2; shift 2 ;;
    --redis-settings) REDIS_SETTINGS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --no-throughput) THROUGHPUT=0; shift ;;
    --no-recovery) RECOVERY=0; shift ;;
    --no-catchup) CATCHUP=0; shift ;;
    --no-snapshot) SNAPSHOT=0; shift ;;
    --snap-keys) SNAP_KEYS=$2; shift 2 ;;
    --snap-every) SNAP_EVERY=$2; shift 2 ;;
    --snap-repeat) SNAP_REPEAT=$2; shift 2 ;;
    --recovery-keys) RECOVERY_KEYS=$2; shift 2 ;;
    --recovery-log) RECOVERY_LOG=$2; shift 2 ;;
    --catchup-entries) CATCHUP_ENTRIES=$2; shift 2 ;;
    --catchup-fsync) CATCHUP_FSYNC=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --replot) REPLOT=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for s in $SETTINGS; do
    case $s in always | everysec | never | none) ;;
    *) die "--settings: $s is none of always everysec never none" ;; esac
done
for s in $REDIS_SETTINGS; do
    case $s in always | everysec | no) ;;
    *) die "--redis-settings: $s is none of always everysec no" ;; esac
done

LEADER=http://127.0.0.1:$PERF_BASE
FOLLOWER1=http://127.0.0.1:$((PERF_BASE + 1))
ZMQ_TARGET=tcp://127.0.0.1:$((PERF_BASE - 1000))

now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
# health_u64 URL FIELD: a number from the node's /health ("" if none).
health_u64() {
    curl -s -m 1 "$1/health" 2>/dev/null |
        sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

# ---------------------------------------------------------------------
# throughput runs

# bench_run SYSTEM SETTING QUORUM REPEAT ARGS...: one qkv-bench line, the
# study's fields in front.
bench_run() {
    br_sys=$1 br_set=$2 br_q=$3 br_r=$4
    shift 4
    "$BENCH_BIN" --clients "$CLIENTS" --ops "$OPS" --duration "$DURATION" \
        --keys "$KEYS" --value-size "$VALUE_SIZE" --quorum "$br_q" \
        --label "$br_sys-$br_set" "$@" |
        sed "s/^{/{\"study\":\"durability\",\"system\":\"$br_sys\",\"setting\":\"$br_set\",\"repeat\":$br_r,/"
}

# qkv_run SETTING QUORUM REPEAT
qkv_run() {
    case $1 in
    none) DATA_DIR=none; export DATA_DIR; unset FSYNC ;;
    *) unset DATA_DIR; FSYNC=$1; export FSYNC ;;
    esac
    cluster_start "$2" 0 0
    qr_line=$(bench_run qkv "$1" "$2" "$3" --mode http --target "127.0.0.1:$PERF_BASE")
    if [ "$1" != none ]; then
        qr_fs=$(metric "$LEADER" qkv_fsyncs_total)
        qr_fe=$(metric "$LEADER" qkv_fsync_entries_total)
        qr_line=$(echo "$qr_line" | awk -v fs="${qr_fs:-0}" -v fe="${qr_fe:-0}" '{
            sub(/}$/, sprintf(",\"leader_fsyncs\":%d,\"leader_fsync_entries\":%d,\"entries_per_fsync\":%.2f}",
                fs, fe, fs > 0 ? fe / fs : 0)); print }')
    fi
    stop_all
    unset DATA_DIR FSYNC
    echo "$qr_line" | tee -a "$OUT/results.jsonl"
}

# redis_aof_ready REPLICAS APPENDFSYNC: every node has its AOF on, the
# setting asked for, and no rewrite running (a replica rewrites its AOF
# after its first sync; measure after that, in steady state).
redis_aof_ready() {
    ra_tries=0
    while :; do
        ra_ok=1
        ra_i=0
        while [ $ra_i -le "$1" ]; do
            ra_p=$((REDIS_BASE + ra_i))
            ra_info=$(redis-cli -p $ra_p info persistence 2>/dev/null | tr -d '\r')
            echo "$ra_info" | grep -q '^aof_enabled:1$' || ra_ok=0
            echo "$ra_info" | grep -q '^aof_rewrite_in_progress:0$' || ra_ok=0
            echo "$ra_info" | grep -q '^aof_rewrite_scheduled:0$' || ra_ok=0
            [ "$(redis-cli -p $ra_p config get appendfsync 2>/dev/null | tail -n 1)" = "$2" ] || ra_ok=0
            ra_i=$((ra_i + 1))
        done
        [ $ra_ok -eq 1 ] && return 0
        ra_tries=$((ra_tries + 1))
        [ $ra_tries -gt 200 ] && die "redis AOF not ready (appendfsync $2)"
        sleep 0.1
    done
}

# redis_run APPENDFSYNC QUORUM REPEAT
redis_run() {
    REDIS_EXTRA="--appendonly yes --appendfsync $1"
    redis_start 5
    redis_aof_ready 5 "$1"
    rr_line=$(bench_run redis "$1" "$2" "$3" --mode redis --target "127.0.0.1:$REDIS_BASE")
    stop_all
    # shellcheck disable=SC2034 # read by lib.sh's redis_start
    REDIS_EXTRA=""
    echo "$rr_line" | tee -a "$OUT/results.jsonl"
}

# ---------------------------------------------------------------------
# recovery

recovery_run() {
    unset DATA_DIR
    FSYNC=never SNAPSHOT_ENTRIES=$RECOVERY_KEYS
    export FSYNC SNAPSHOT_ENTRIES
    cluster_start 0 0 0 0
    echo "perf: recovery: loading $RECOVERY_KEYS keys" >&2
    "$BENCH_BIN" --mode zmq --target "$ZMQ_TARGET" --clients 4 --depth 64 \
        --sequential --keys "$RECOVERY_KEYS" --ops "$RECOVERY_KEYS" \
        --value-size "$VALUE_SIZE" --label recovery-load >>"$OUT/load.jsonl"
    # a snapshot (SNAPSHOT_ENTRIES +-10 % per node): wait for it, writing
    # more while the threshold is not reached
    rv_tries=0
    while [ "$(health_u64 "$LEADER" snapshot_index)" = 0 ]; do
        rv_tries=$((rv_tries + 1))
        [ $rv_tries -gt 300 ] && die "recovery: no snapshot"
        if [ $((rv_tries % 10)) -eq 0 ]; then
            "$BENCH_BIN" --mode zmq --target "$ZMQ_TARGET" --clients 4 \
                --depth 64 --keys "$RECOVERY_KEYS" \
                --ops $((RECOVERY_KEYS / 40 + 1)) \
                --value-size "$VALUE_SIZE" --label recovery-more >>"$OUT/load.jsonl"
        fi
        sleep 0.1
    done
    # then about RECOVERY_LOG entries of log after it
    rv_tail=$(($(health_u64 "$LEADER" last_index) - $(health_u64 "$LEADER" snapshot_index)))
    if [ $rv_tail -lt "$RECOVERY_LOG" ]; then
        "$BENCH_BIN" --mode zmq --target "$ZMQ_TARGET" --clients 4 --depth 64 \
            --keys "$RECOVERY_KEYS" --ops $((RECOVERY_LOG - rv_tail)) \
            --value-size "$VALUE_SIZE" --label recovery-log >>"$OUT/load.jsonl"
    fi
    rv_tries=0
    while [ "$(health_u64 "$LEADER" applied_index)" != "$(health_u64 "$LEADER" last_index)" ]; do
        rv_tries=$((rv_tries + 1))
        [ $rv_tries -gt 300 ] && die "recovery: the leader did not apply its log"
        sleep 0.1
    done
    rv_keys=$(metric "$LEADER" qkv_keys)
    rv_last=$(health_u64 "$LEADER" last_index)
    rv_snap=$(health_u64 "$LEADER" snapshot_index)
    rv_logb=$(metric "$LEADER" qkv_log_disk_bytes)
    rv_snapb=$(metric "$LEADER" qkv_snapshot_bytes)

    rv_pid=$QKV_PIDS
    kill -9 "$rv_pid"
    wait "$rv_pid" 2>/dev/null || true
    QKV_PIDS="" QKV_NODES=""
    echo "perf: recovery: leader killed (kill -9) at index $rv_last," \
        "snapshot at $rv_snap; starting it again" >&2

    rv_t0=$(now)
    qkv_launch "$NODE_BIN" 127.0.0.1 "$PERF_BASE" $((PERF_BASE - 1000)) \
        $((PERF_BASE + 1000)) 0 0 "" "" "" "" "$RUN_DIR" "$DATA_RUN_DIR" ||
        die "recovery: could not start the leader again"
    rv_first="" # first answer on /health
    while :; do
        rv_h=$(curl -s -m 1 "$LEADER/health" 2>/dev/null || true)
        if [ -n "$rv_h" ]; then
            [ -n "$rv_first" ] || rv_first=$(ms_since "$rv_t0")
            rv_a=$(echo "$rv_h" | sed -n 's/.*"applied_index":\([0-9]*\).*/\1/p')
            rv_l=$(echo "$rv_h" | sed -n 's/.*"last_index":\([0-9]*\).*/\1/p')
            if echo "$rv_h" | grep -q '"serving":true' && [ "$rv_a" = "$rv_l" ]; then
                break
            fi
        fi
        qkv_alive || die "recovery: the leader exited"
        [ "$(ms_since "$rv_t0" | cut -d. -f1)" -lt 60000 ] ||
            die "recovery: not serving after 60 s"
    done
    rv_ms=$(ms_since "$rv_t0")
    rv_rec=$(metric "$LEADER" qkv_recovery_seconds)
    rv_keys2=$(metric "$LEADER" qkv_keys)
    rv_last2=$(health_u64 "$LEADER" last_index)
    stop_all
    unset FSYNC SNAPSHOT_ENTRIES
    printf '{"study":"recovery","keys":%s,"last_index":%s,"snapshot_index":%s,"log_entries_after_snapshot":%s,"log_disk_bytes":%s,"snapshot_bytes":%s,"start_to_serving_ms":%s,"start_to_first_health_ms":%s,"qkv_recovery_seconds":%s,"keys_after":%s,"last_index_after":%s}\n' \
        "$rv_keys" "$rv_last" "$rv_snap" $((rv_last - rv_snap)) "$rv_logb" \
        "$rv_snapb" "$rv_ms" "$rv_first" "$rv_rec" "$rv_keys2" "$rv_last2" |
        tee "$OUT/recovery.jsonl"
}

# ---------------------------------------------------------------------
# catch-up

catchup_run() {
    unset DATA_DIR
    FSYNC=$CATCHUP_FSYNC SNAPSHOT_ENTRIES=1000000
    export FSYNC SNAPSHOT_ENTRIES
    cluster_start 0 0 0 1
    # a few writes first, so that the follower holds some log of its own
    "$BENCH_BIN" --mode zmq --target "$ZMQ_TARGET" --clients 4 --depth 64 \
        --keys 100000 --ops 1000 --value-size "$VALUE_SIZE" \
        --label catchup-warm >>"$OUT/load.jsonl"
    cu_tries=0
    while [ "$(health_u64 "$FOLLOWER1" applied_index)" != "$(health_u64 "$LEADER" commit_index)" ]; do
        cu_tries=$((cu_tries + 1))
        [ $cu_tries -gt 100 ] && die "catch-up: the follower did not keep up"
        sleep 0.1
    done
    cu_before=$(health_u64 "$FOLLOWER1" applied_index)
    cu_fpid=${QKV_PIDS%% *}
    cu_lpid=${QKV_PIDS##* }
    kill -9 "$cu_fpid"
    wait "$cu_fpid" 2>/dev/null || true
    QKV_PIDS=$cu_lpid QKV_NODES=leader:$cu_lpid
    echo "perf: catch-up: follower killed (kill -9) at index $cu_before;" \
        "writing $CATCHUP_ENTRIES entries" >&2
    "$BENCH_BIN" --mode zmq --target "$ZMQ_TARGET" --clients 4 --depth 64 \
        --keys 100000 --ops "$CATCHUP_ENTRIES" --value-size "$VALUE_SIZE" \
        --label catchup-load >>"$OUT/load.jsonl"
    cu_commit=$(health_u64 "$LEADER" commit_index)
    cu_snap=$(health_u64 "$LEADER" snapshot_index)

    # the follower again, as scripts/launch.sh started it, on its data
    cu_t0=$(now)
    "$NODE_BIN" --data-dir "$DATA_RUN_DIR/follower1" --role follower \
        --node-id follower1 --bind 127.0.0.1 --port $((PERF_BASE + 1)) \
        --repl-port $((PERF_BASE + 1000 + 1)) \
        --client-port $((PERF_BASE - 1000 + 1)) --leader-url "$LEADER" \
        --leader-endpoint "$ZMQ_TARGET" >"$RUN_DIR/follower1-again.log" 2>&1 &
    cu_pid=$!
    QKV_PIDS="$QKV_PIDS $cu_pid" QKV_NODES="$QKV_NODES follower1:$cu_pid"
    cu_first=""
    while :; do
        cu_a=$(health_u64 "$FOLLOWER1" applied_index)
        if [ -n "$cu_a" ]; then
            [ -n "$cu_first" ] || cu_first=$(ms_since "$cu_t0")
            [ "$cu_a" -lt "$cu_commit" ] || break
        fi
        qkv_alive || die "catch-up: a node exited"
        [ "$(ms_since "$cu_t0" | cut -d. -f1)" -lt 60000 ] ||
            die "catch-up: not caught up after 60 s"
    done
    cu_ms=$(ms_since "$cu_t0")
    cu_inst=$(metric "$FOLLOWER1" qkv_snapshots_installed_total)
    cu_sent=$(metric "$LEADER" qkv_snapshots_sent_total)
    cu_rec=$(metric "$FOLLOWER1" qkv_recovery_seconds)
    stop_all
    unset FSYNC SNAPSHOT_ENTRIES
    printf '{"study":"catchup","fsync":"%s","follower_index_before":%s,"leader_commit_index":%s,"leader_snapshot_index":%s,"entries_missed":%s,"start_to_caught_up_ms":%s,"start_to_first_health_ms":%s,"follower_recovery_seconds":%s,"snapshots_installed":%s,"snapshots_sent":%s}\n' \
        "$CATCHUP_FSYNC" "$cu_before" "$cu_commit" "$cu_snap" \
        $((cu_commit - cu_before)) "$cu_ms" "$cu_first" "$cu_rec" \
        "${cu_inst:-0}" "${cu_sent:-0}" | tee "$OUT/catchup.jsonl"
}

# ---------------------------------------------------------------------
# write p99 while snapshots are taken

# snapshot_run SNAPSHOT_ENTRIES REPEAT: a leader and two followers
# (WRITE_QUORUM=1, FSYNC=never, to see the snapshot and not the disk) get
# SNAP_KEYS keys, then REST writers over them for DURATION seconds; one
# JSON line with the snapshots the three nodes took meanwhile.
snapshot_run() {
    unset DATA_DIR
    FSYNC=never SNAPSHOT_ENTRIES=$1
    export FSYNC SNAPSHOT_ENTRIES
    cluster_start 1 0 0 2
    "$BENCH_BIN" --mode zmq --target "$ZMQ_TARGET" --clients 4 --depth 64 \
        --sequential --keys "$SNAP_KEYS" --ops "$SNAP_KEYS" \
        --value-size "$VALUE_SIZE" --label snapshot-load >>"$OUT/load.jsonl"
    sn_before=0
    for n in 0 1 2; do
        sn_before=$((sn_before + $(metric "http://127.0.0.1:$((PERF_BASE + n))" qkv_snapshots_total)))
    done
    sn_line=$("$BENCH_BIN" --mode http --target "127.0.0.1:$PERF_BASE" \
        --clients "$CLIENTS" --ops 100000000 --duration "$DURATION" \
        --keys "$SNAP_KEYS" --value-size "$VALUE_SIZE" --quorum 1 \
        --label "snapshot-every-$1")
    sn_after=0
    for n in 0 1 2; do
        sn_after=$((sn_after + $(metric "http://127.0.0.1:$((PERF_BASE + n))" qkv_snapshots_total)))
    done
    stop_all
    unset FSYNC SNAPSHOT_ENTRIES
    echo "$sn_line" | sed "s/^{/{\"study\":\"snapshot\",\"snapshot_entries\":$1,\"repeat\":$2,\"snapshots_during\":$((sn_after - sn_before)),/" |
        tee -a "$OUT/snapshot.jsonl"
}

# ---------------------------------------------------------------------
# CSV, table, ratios, plots

# report DIR: results.csv, summary.csv, table.txt, ratios.txt and the plots
# from DIR's results.jsonl, recovery.jsonl, catchup.jsonl and
# snapshot.jsonl.
report() {
    rp=$1
    if [ -s "$rp/results.jsonl" ]; then
        awk "$JSON_FIELD"'
BEGIN { print "system,setting,quorum,repeat,throughput,avg_ms,p50_ms,p95_ms,p99_ms,p999_ms,max_ms,ok,failed,duration_s,entries_per_fsync,bench_cpu_pct,leader_fsyncs" }
{
    print field("system") "," field("setting") "," field("quorum") "," \
          field("repeat") "," field("throughput") "," field("avg_ms") "," \
          field("p50_ms") "," field("p95_ms") "," field("p99_ms") "," \
          field("p999_ms") "," field("max_ms") "," field("ok") "," \
          field("failed") "," field("duration_s") "," \
          field("entries_per_fsync") "," field("bench_cpu_pct") "," \
          field("leader_fsyncs")
}' "$rp/results.jsonl" >"$rp/results.csv"

        # mean per system, setting and quorum, in the plots' order
        awk -F, 'NR > 1 {
    k = $1 "," $2 "," $3; n[k]++
    for (i = 5; i <= 11; i++) s[k, i] += $i
    if ($15 != "") { e[k] += $15; f[k] += $17 / $14; ne[k]++ }
    if (!(k in seen)) { seen[k] = 1; keys[++m] = k }
}
function rank(k,   f) {
    split(k, f, ",")
    return (f[1] == "qkv" ? 0 : 10) + (f[2] == "always" ? 1 : f[2] == "everysec" ? 2 : f[2] == "never" ? 3 : f[2] == "none" ? 4 : 5) + f[3] / 1000
}
END {
    for (i = 1; i <= m; i++)
        for (j = i + 1; j <= m; j++)
            if (rank(keys[j]) < rank(keys[i])) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
    print "system,setting,quorum,runs,throughput,avg_ms,p50_ms,p95_ms,p99_ms,p999_ms,max_ms,entries_per_fsync,fsyncs_per_s"
    for (j = 1; j <= m; j++) {
        k = keys[j]
        printf "%s,%d", k, n[k]
        for (i = 5; i <= 11; i++) printf ",%.4f", s[k, i] / n[k]
        if (ne[k]) printf ",%.2f,%.0f\n", e[k] / ne[k], f[k] / ne[k]; else printf ",,\n"
    }
}' "$rp/results.csv" >"$rp/summary.csv"

        awk -F, 'NR > 1 {
    name = ($1 == "qkv" ? ($2 == "none" ? "qkv DATA_DIR=none" : "qkv FSYNC=" $2) : "Redis appendfsync " $2)
    printf "%-27s %3s %10.0f %9.3f %9.3f %9.3f %10s %9s\n", name, $3, $5, $6, $7, $9, ($12 == "" ? "-" : $12), ($13 == "" ? "-" : $13)
}
BEGIN { printf "%-27s %3s %10s %9s %9s %9s %10s %9s\n", "setting", "q", "writes/s", "avg ms", "p50 ms", "p99 ms", "ent/fsync", "fsyncs/s" }' \
            "$rp/summary.csv" | tee "$rp/table.txt"

        # ratios
        awk -F, 'NR > 1 { t[$1, $2, $3] = $5; p[$1, $2, $3] = $9; e[$1, $2, $3] = $12
    if (!($3 in qs)) { qs[$3] = 1; ql[++nq] = $3 } }
END {
    print ""
    print "ratios (throughput; p99 beside it)"
    for (i = 1; i <= nq; i++) {
        q = ql[i]
        if (("qkv", "always", q) in t && ("redis", "always", q) in t)
            printf "(1) q=%s  qkv FSYNC=always / Redis appendfsync always + WAIT %s: %.2fx throughput (%.0f / %.0f writes/s), p99 %.3f / %.3f ms%s\n",
                q, q, t["qkv", "always", q] / t["redis", "always", q], t["qkv", "always", q], t["redis", "always", q],
                p["qkv", "always", q], p["redis", "always", q], (q == 3 ? "   [target >= 1.0x: " (t["qkv", "always", q] >= t["redis", "always", q] ? "met" : "NOT met") "]" : "")
    }
    for (i = 1; i <= nq; i++) {
        q = ql[i]
        if (("qkv", "everysec", q) in t && ("redis", "everysec", q) in t)
            printf "    q=%s  qkv FSYNC=everysec / Redis appendfsync everysec + WAIT %s: %.2fx throughput (%.0f / %.0f writes/s)\n",
                q, q, t["qkv", "everysec", q] / t["redis", "everysec", q], t["qkv", "everysec", q], t["redis", "everysec", q]
    }
    for (i = 1; i <= nq; i++) {
        q = ql[i]
        if (("qkv", "never", q) in t && ("qkv", "none", q) in t) {
            r = t["qkv", "never", q] / t["qkv", "none", q]
            printf "(2) q=%s  qkv FSYNC=never / qkv DATA_DIR=none: %.2fx throughput (%.0f / %.0f writes/s), p99 %.3f / %.3f ms   [target within 10%%: %s]\n",
                q, r, t["qkv", "never", q], t["qkv", "none", q], p["qkv", "never", q], p["qkv", "none", q], (r >= 0.9 ? "met" : "NOT met")
        }
    }
    for (i = 1; i <= nq; i++) {
        q = ql[i]
        if (("qkv", "always", q) in e && e["qkv", "always", q] != "")
            printf "    q=%s  qkv FSYNC=always: %s entries per fsync on the leader (qkv_fsync_entries_total / qkv_fsyncs_total)\n", q, e["qkv", "always", q]
    }
}' "$rp/summary.csv" | tee "$rp/ratios.txt"
        plot_bars "$rp"
    fi
    if [ -s "$rp/recovery.jsonl" ]; then
        awk "$JSON_FIELD"'
{ printf "recovery: %s keys, snapshot at %s + %s log entries: %s ms from start to serving (first /health answer at %s ms), qkv_recovery_seconds %s   [target < 2 s: %s]\n",
    field("keys"), field("snapshot_index"), field("log_entries_after_snapshot"), field("start_to_serving_ms"),
    field("start_to_first_health_ms"), field("qkv_recovery_seconds"), field("start_to_serving_ms") + 0 < 2000 ? "met" : "NOT met" }' \
            "$rp/recovery.jsonl" | tee -a "$rp/ratios.txt"
    fi
    if [ -s "$rp/catchup.jsonl" ]; then
        awk "$JSON_FIELD"'
{ printf "catch-up: %s entries missed (FSYNC=%s): %s ms from the follower'"'"'s start to the leader'"'"'s commit index (first /health answer at %s ms), snapshots installed %s   [target < 1 s: %s]\n",
    field("entries_missed"), field("fsync"), field("start_to_caught_up_ms"), field("start_to_first_health_ms"),
    field("snapshots_installed"), field("start_to_caught_up_ms") + 0 < 1000 ? "met" : "NOT met" }' \
            "$rp/catchup.jsonl" | tee -a "$rp/ratios.txt"
    fi
    if [ -s "$rp/snapshot.jsonl" ]; then
        awk "$JSON_FIELD"'
{ k = field("snapshots_during") + 0 > 0 ? "with" : "without"
  n[k]++; p99[k] += field("p99_ms"); tp[k] += field("throughput")
  if (k == "with") snaps += field("snapshots_during") }
END {
    if (!n["with"] || !n["without"]) { print "snapshots: no pair of runs to compare"; exit }
    a = p99["without"] / n["without"]; b = p99["with"] / n["with"]
    printf "snapshots: REST writes, p99 %.3f ms without snapshots, %.3f ms with (%d snapshots in %d runs), %.2fx; throughput %.0f against %.0f writes/s   [target p99 within 2x: %s]\n",
        a, b, snaps, n["with"], b / a, tp["without"] / n["without"], tp["with"] / n["with"], b / a <= 2 ? "met" : "NOT met"
}' "$rp/snapshot.jsonl" | tee -a "$rp/ratios.txt"
    fi
}

# plot_bars DIR: throughput.png and latency_p99.png, a bar per quorum for
# each setting.
plot_bars() {
    command -v gnuplot >/dev/null || die "gnuplot missing (scripts/deps.sh perf)"
    for pb in throughput:5 p99:9; do
        awk -F, -v col="${pb#*:}" 'NR > 1 {
    name = ($1 == "qkv" ? ($2 == "none" ? "qkv memory" : "qkv " $2) : "Redis " $2)
    if (!(name in seen)) { seen[name] = 1; names[++n] = name }
    if (!($3 in qs)) { qs[$3] = 1; ql[++nq] = $3 }
    v[name, $3] = $col
}
END {
    printf "setting"; for (j = 1; j <= nq; j++) printf ",WRITE_QUORUM=%s", ql[j]; printf "\n"
    for (i = 1; i <= n; i++) {
        printf "%s", names[i]
        for (j = 1; j <= nq; j++) printf ",%s", ((names[i], ql[j]) in v) ? v[names[i], ql[j]] : "NaN"
        printf "\n"
    }
}' "$1/summary.csv" >"$1/${pb%%:*}.dat"
    done
    pb_cols=$(head -n 1 "$1/throughput.dat" | awk -F, '{ print NF }')
    pb_clients=$(sed -n '1s/.*"clients":\([0-9]*\).*/\1/p' "$1/results.jsonl")
    gnuplot <<GNUPLOT
set terminal pngcairo size 1000,560 font "sans,11" noenhanced
set datafile separator ","
set datafile missing "NaN"
set grid ytics
set key top left autotitle columnhead
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:*]
set xtics nomirror
set xlabel "qkv: leader + 5 followers over REST, FSYNC (memory: DATA_DIR=none)   Redis: master + 5 replicas, AOF, appendfsync"
set output "$1/throughput.png"
set title "Committed writes per second by durability setting ($pb_clients writers; Redis: SET + WAIT q)"
set ylabel "writes per second"
plot for [i=2:$pb_cols] '$1/throughput.dat' using i:xtic(1)
set output "$1/latency_p99.png"
set title "p99 write latency by durability setting ($pb_clients writers; Redis: SET + WAIT q)"
set ylabel "p99 latency (ms)"
plot for [i=2:$pb_cols] '$1/p99.dat' using i:xtic(1)
GNUPLOT
    echo "plots: $1/throughput.png $1/latency_p99.png" >&2
}

# ---------------------------------------------------------------------

if [ -n "$REPLOT" ]; then
    report "$REPLOT"
    exit 0
fi

unset DATA_DIR FSYNC
perf_begin durability "$NAME"
if [ $THROUGHPUT -eq 1 ]; then
    : >"$OUT/results.jsonl"
    r=1
    while [ $r -le "$REPEAT" ]; do
        for q in $QUORUMS; do
            for s in $SETTINGS; do
                qkv_run "$s" "$q" "$r"
                case " $REDIS_SETTINGS " in
                *" $s "*) redis_run "$s" "$q" "$r" ;;
                esac
            done
            for s in $REDIS_SETTINGS; do
                case " $SETTINGS " in
                *" $s "*) ;;
                *) redis_run "$s" "$q" "$r" ;;
                esac
            done
        done
        r=$((r + 1))
    done
fi
[ $RECOVERY -eq 0 ] || recovery_run
[ $CATCHUP -eq 0 ] || catchup_run
if [ $SNAPSHOT -eq 1 ]; then
    : >"$OUT/snapshot.jsonl"
    r=1
    while [ $r -le "$SNAP_REPEAT" ]; do
        snapshot_run 1000000000 "$r"
        snapshot_run "$SNAP_EVERY" "$r"
        r=$((r + 1))
    done
fi
echo >&2
report "$OUT"
