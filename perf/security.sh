#!/bin/sh
# The security study (issue 12, "Speed"): what CURVE, REST bearer tokens
# and TLS cost in throughput. Release build, on one machine, six nodes
# with elections (PEERS with every node's key=, WRITE_QUORUM=3, memory
# only); the bench drives whichever node leads. Each round starts these
# clusters in this order, so that every ratio compares runs of the same
# round, about a minute apart:
#   plain      CURVE off: REST (qkv-bench, 10 writers) and zmq-native (10
#              clients, 16 writes in flight each)
#   curve      CURVE=on on every ZeroMQ link (replication, client port;
#              CLIENT_KEYS any): the same two, the bench with a client key
#   token      HTTP_TOKENS_FILE: REST with a write token
#   tls        TLS_CERT_FILE/TLS_KEY_FILE (self-signed): REST over TLS
#   tls_token  both: REST over TLS with a token
# Target: CURVE on costs at most 15 % of the throughput of CURVE off, for
# REST and for zmq (curve_*_ratio >= 0.85); TLS and tokens are measured
# and reported. A cluster that refuses to start (TLS where civetweb cannot
# use the OpenSSL installed) is reported as skipped, with the node's
# reason, and the round goes on.
# Keys (six nodes and a client, qkv keygen), the tokens file and the
# certificate are made in a temporary folder (mode 700) in the results
# folder, deleted on exit. Writes runs.jsonl (one line per bench run or
# skipped cluster), rounds.jsonl (one line per round: throughputs and
# ratios), summary.json (the median ratios) and throughput.png under
# perf/results/NAME/ (default security-TIMESTAMP), and prints them. In a
# run's line, "config" is the cluster's setting; "tls" and "curve" are
# qkv-bench's own (REST against a CURVE cluster is "curve":false).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/json.sh"

DURATION=10 OPS=10000000 WRITERS=10 ZMQ_CLIENTS=10 DEPTH=16
NAME="" CONFIGS="plain curve token tls tls_token"

usage() {
    cat <<USAGE
usage: perf/security.sh [options]
  --rounds N       rounds, each every configuration in order (3)
  --duration S     seconds per bench run (10)
  --ops N          operations cap per bench run (10000000)
  --writers N      REST writers (10)
  --zmq-clients N  zmq-native clients (10)
  --depth N        zmq: writes in flight per client (16)
  --configs "C.."  the configurations, a subset of
                   "$CONFIGS" (plain is needed for ratios)
  --name NAME      results folder perf/results/NAME (default: a timestamp)
ROUNDS may also come from the environment.
USAGE
    exit 2
}

ROUNDS=${ROUNDS:-3}
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --writers) WRITERS=$2; shift 2 ;;
    --zmq-clients) ZMQ_CLIENTS=$2; shift 2 ;;
    --depth) DEPTH=$2; shift 2 ;;
    --configs) CONFIGS=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    *) usage ;;
    esac
done
for n in "$ROUNDS" "$DURATION" "$OPS" "$WRITERS" "$ZMQ_CLIENTS" "$DEPTH"; do
    case $n in '' | *[!0-9]* | 0) usage ;; esac
done
for c in $CONFIGS; do
    case $c in plain | curve | token | tls | tls_token) ;; *) usage ;; esac
done

perf_begin security "$NAME"
command -v openssl >/dev/null || die "openssl missing (scripts/deps.sh perf)"
cmake --build "$BUILD" -j"$(nproc)" --target qkv >/dev/null ||
    die "build failed (qkv)"
QKV_BIN=$BUILD/client/qkv
: >"$OUT/runs.jsonl"
: >"$OUT/rounds.jsonl"

# ---------------------------------------------------------------------
# secrets: node and client keys, a tokens file, a self-signed certificate

KEYS=$(mktemp -d "$OUT/keys.XXXXXX") || die "cannot make a key folder"
chmod 700 "$KEYS"
sec_cleanup() {
    stop_all
    rm -rf "$KEYS"
}
trap sec_cleanup EXIT
trap 'exit 2' INT TERM

i=0
while [ $i -le 5 ]; do
    "$QKV_BIN" keygen "$KEYS/node$i" >/dev/null || die "qkv keygen node$i failed"
    i=$((i + 1))
done
"$QKV_BIN" keygen "$KEYS/client" >/dev/null || die "qkv keygen client failed"
TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
(umask 077 && echo "write $TOKEN" >"$KEYS/tokens")
(umask 077 && echo "Authorization: Bearer $TOKEN" >"$KEYS/auth.header")
(umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -subj /CN=127.0.0.1 -keyout "$KEYS/tls.key" -out "$KEYS/tls.crt" \
    >/dev/null 2>&1) || die "openssl could not make a certificate"
QKV_KEY_DIR=$KEYS # every PEERS entry gets |key= (qkv_peers), CURVE or not
QKV_ELECTIONS=1
DATA_DIR=none
export QKV_KEY_DIR QKV_ELECTIONS DATA_DIR

# ---------------------------------------------------------------------
# clusters

# sec_env CONFIG: the nodes' security settings, and how to reach REST
# (SEC_SCHEME, SEC_TOKEN: 1 when REST needs the token).
sec_env() {
    unset CURVE_KEY_DIR HTTP_TOKENS_FILE TLS_CERT_FILE TLS_KEY_FILE
    CURVE=off SEC_SCHEME=http SEC_TOKEN=0
    case $1 in
    curve)
        CURVE=on CURVE_KEY_DIR=$KEYS
        export CURVE_KEY_DIR
        ;;
    token | tls_token)
        HTTP_TOKENS_FILE=$KEYS/tokens SEC_TOKEN=1
        export HTTP_TOKENS_FILE
        ;;
    esac
    case $1 in
    tls | tls_token)
        TLS_CERT_FILE=$KEYS/tls.crt TLS_KEY_FILE=$KEYS/tls.key SEC_SCHEME=https
        export TLS_CERT_FILE TLS_KEY_FILE
        ;;
    esac
    export CURVE
}

# sec_health I: node I's /health, asked as CONFIG needs (certificate not
# checked; the token from a header file, never on the command line).
sec_health() {
    if [ "$SEC_TOKEN" = 1 ]; then
        curl -sk -m 1 -H "@$KEYS/auth.header" \
            "$SEC_SCHEME://127.0.0.1:$((PERF_BASE + $1))/health" || true
    else
        curl -sk -m 1 "$SEC_SCHEME://127.0.0.1:$((PERF_BASE + $1))/health" ||
            true
    fi
}

# sec_wait SECONDS: until a node leads with its five followers connected
# (LEADER: its index). 1 on a timeout, 2 when a node exited (SEC_DEAD:
# its name).
sec_wait() {
    sw_deadline=$(($(date +%s) + $1))
    SEC_DEAD=""
    while :; do
        if ! sw_alive=$(qkv_alive 2>&1); then
            SEC_DEAD=$(printf '%s\n' "$sw_alive" | sed -n 's/^qkv: \([^ ]*\) .*/\1/p')
            return 2
        fi
        LEADER="" sw_health=""
        sw_i=0
        while [ $sw_i -le 5 ] && [ -z "$LEADER" ]; do
            sw_health=$(sec_health $sw_i)
            case $sw_health in *'"role":"leader"'*) LEADER=$sw_i ;; esac
            sw_i=$((sw_i + 1))
        done
        if [ -n "$LEADER" ] && [ "$(printf '%s\n' "$sw_health" |
            grep -o '"connected":true' | wc -l)" -ge 5 ]; then
            return 0
        fi
        [ "$(date +%s)" -lt "$sw_deadline" ] || return 1
        sleep 0.1
    done
}

# sec_start CONFIG: six nodes with CONFIG's settings (logs in RUN_DIR);
# 0 once one leads with every follower connected, else 1 with SEC_WHY: the
# last line the node that exited logged, or the timeout.
sec_start() {
    sec_env "$1"
    RUN_DIR=$(mktemp -d)
    qkv_launch "$NODE_BIN" 127.0.0.1 "$PERF_BASE" $((PERF_BASE - 1000)) \
        $((PERF_BASE + 1000)) 5 3 "" "" "${REPLICATION_TIMEOUT_MS:-5000}" \
        "" "$RUN_DIR" none || die "could not start the cluster ($1)"
    PIDS="$PIDS $QKV_PIDS"
    SEC_WHY=""
    sec_wait 30 && return 0
    # "TIME NODE error: MESSAGE": the message, quotes and backslashes out
    [ -z "$SEC_DEAD" ] || SEC_WHY="$SEC_DEAD exited: $(tail -n 1 \
        "$RUN_DIR/$SEC_DEAD.log" 2>/dev/null | sed 's/^[^ ]* [^ ]* [a-z]*: //' |
        tr -d '"\\' | cut -c 1-400)"
    SEC_WHY=${SEC_WHY:-no leader with every follower connected in 30 s}
    return 1
}

# ---------------------------------------------------------------------
# bench runs

# bench ROUND CONFIG KIND ARGS...: one qkv-bench run against the leader,
# its JSON line tagged and kept in runs.jsonl.
bench() {
    b_round=$1 b_config=$2 b_kind=$3
    shift 3
    "$BENCH_BIN" --ops "$OPS" --duration "$DURATION" --keys 100 \
        --value-size 10 --quorum 3 --label "$b_config-$b_kind" "$@" |
        sed "s/^{/{\"study\":\"security\",\"round\":$b_round,\"config\":\"$b_config\",\"kind\":\"$b_kind\",/" |
        tee -a "$OUT/runs.jsonl"
}

bench_rest() { # ROUND CONFIG
    set -- "$1" "$2" rest --mode http --clients "$WRITERS" \
        --target "127.0.0.1:$((PERF_BASE + LEADER))"
    [ "$SEC_TOKEN" = 0 ] || set -- "$@" --token "$TOKEN"
    [ "$SEC_SCHEME" = http ] || set -- "$@" --tls
    bench "$@"
}

bench_zmq() { # ROUND CONFIG
    set -- "$1" "$2" zmq --mode zmq --clients "$ZMQ_CLIENTS" --depth "$DEPTH" \
        --target "tcp://127.0.0.1:$((PERF_BASE - 1000 + LEADER))"
    [ "$CURVE" = off ] ||
        set -- "$@" --curve-key "$KEYS/client.key" \
            --server-key "$KEYS/node$LEADER.pub"
    bench "$@"
}

r=1
while [ "$r" -le "$ROUNDS" ]; do
    for config in $CONFIGS; do
        if ! sec_start "$config"; then
            case $config in
            tls | tls_token) ;; # guarded: reported, the round goes on
            *) die "the $config cluster did not come up: $SEC_WHY" ;;
            esac
            echo "perf: $config cluster skipped: $SEC_WHY" >&2
            echo "{\"study\":\"security\",\"round\":$r,\"config\":\"$config\",\"kind\":\"rest\",\"skipped\":\"$SEC_WHY\"}" |
                tee -a "$OUT/runs.jsonl"
            stop_all
            continue
        fi
        echo "perf: round $r, $config, node$LEADER leads" >&2
        bench_rest "$r" "$config"
        case $config in plain | curve) bench_zmq "$r" "$config" ;; esac
        stop_all
    done
    # the round's throughputs and ratios against plain
    awk "$JSON_FIELD"'
        field("round") == r && field("throughput") != "" {
            t[field("config") "_" field("kind")] = field("throughput")
        }
        function ratio(name, a, b) {
            if ((a in t) && (b in t) && t[b] > 0)
                printf ",\"%s\":%.3f", name, t[a] / t[b]
            else
                printf ",\"%s\":null", name
        }
        END {
            printf "{\"study\":\"security\",\"round\":%d", r
            n = split("plain_rest plain_zmq curve_rest curve_zmq token_rest tls_rest tls_token_rest", k, " ")
            for (i = 1; i <= n; i++)
                printf ",\"%s\":%s", k[i], (k[i] in t) ? t[k[i]] : "null"
            ratio("curve_rest_ratio", "curve_rest", "plain_rest")
            ratio("curve_zmq_ratio", "curve_zmq", "plain_zmq")
            ratio("token_rest_ratio", "token_rest", "plain_rest")
            ratio("tls_rest_ratio", "tls_rest", "plain_rest")
            ratio("tls_token_rest_ratio", "tls_token_rest", "plain_rest")
            printf "}\n"
        }' r="$r" "$OUT/runs.jsonl" | tee -a "$OUT/rounds.jsonl"
    r=$((r + 1))
done

# ---------------------------------------------------------------------
# summary: the median of each ratio over the rounds, and the target

median() { # NAME: the median of rounds.jsonl's NAME, or null
    awk "$JSON_FIELD"'{ v = field(n); if (v != "" && v != "null") print v }' \
        n="$1" "$OUT/rounds.jsonl" | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (!NR) { print "null"; exit }
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f\n", m
        }'
}
summary="{\"study\":\"security\",\"rounds\":$ROUNDS,\"duration_s\":$DURATION"
summary="$summary,\"writers\":$WRITERS,\"zmq_clients\":$ZMQ_CLIENTS,\"depth\":$DEPTH"
for name in curve_rest_ratio curve_zmq_ratio token_rest_ratio tls_rest_ratio \
    tls_token_rest_ratio; do
    summary="$summary,\"$name\":$(median "$name")"
done
for name in curve_rest_ratio curve_zmq_ratio; do
    m=$(median "$name")
    ok=null
    [ "$m" = null ] || ok=$(awk -v m="$m" 'BEGIN { print (m >= 0.85 ? "true" : "false") }')
    summary="$summary,\"${name%_ratio}_target_met\":$ok"
done
skipped=$(grep -c '"skipped"' "$OUT/runs.jsonl" || true)
summary="$summary,\"skipped_clusters\":$skipped}"
echo "$summary" | tee "$OUT/summary.json"

# ---------------------------------------------------------------------
# plot: mean throughput per configuration, REST and zmq side by side (own
# scales), with the CURVE target: 85 % of plain's

if command -v gnuplot >/dev/null; then
    for kind in rest zmq; do
        awk "$JSON_FIELD"'field("kind") == k && field("throughput") != "" {
                c = field("config")
                if (!(c in n)) order[++m] = c
                s[c] += field("throughput"); n[c]++
            }
            END { for (i = 1; i <= m; i++) print order[i], s[order[i]] / n[order[i]] }' \
            k="$kind" "$OUT/runs.jsonl" >"$OUT/$kind.dat"
    done
    plain_rest=$(awk '$1 == "plain" { print $2 }' "$OUT/rest.dat")
    plain_zmq=$(awk '$1 == "plain" { print $2 }' "$OUT/zmq.dat")
    gnuplot <<GP
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output "$OUT/throughput.png"
set multiplot layout 1,2 title "Throughput by security setting (6 nodes, WRITE_QUORUM=3, mean of $ROUNDS round(s))"
set ylabel "committed writes per second"
set yrange [0:*]
set xrange [-0.6:*]
set grid ytics
set style fill solid 0.8 border -1
set boxwidth 0.6
set key bottom right
set title "REST, $WRITERS writers"
plot "$OUT/rest.dat" using 0:2:xtic(1) with boxes lc 1 notitle, \
     0.85 * ${plain_rest:-0} with lines dt 2 lc 0 title "85 % of plain"
set title "zmq-native, $ZMQ_CLIENTS clients x $DEPTH in flight"
plot "$OUT/zmq.dat" using 0:2:xtic(1) with boxes lc 2 notitle, \
     0.85 * ${plain_zmq:-0} with lines dt 2 lc 0 title "85 % of plain"
unset multiplot
GP
    echo "perf: $OUT/throughput.png" >&2
fi
