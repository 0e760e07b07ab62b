#!/bin/sh
# Runs a local qkv cluster of six nodes in the foreground, with elections
# (PEERS): node0 (REST 127.0.0.1:8000, zmq-native clients 7000,
# replication 9000) and node1-node5 (REST 8001-8005, clients 7001-7005,
# replication 9001-9005), WRITE_QUORUM=3. node0 leads a new cluster; when
# the leader dies the others elect a new one, and the cluster goes on
# while enough nodes are up for the quorum (the README's failover
# section). A node that exits is reported and the others keep running;
#   scripts/cluster.sh node 2       starts node2 again (foreground), with
#                                   the same settings and its data
# Ctrl-C stops every node. Installs missing Debian packages when run as
# root, builds into build-release/, and passes the environment on: e.g.
#   WRITE_QUORUM=5 MAX_DELAY_MS=200 scripts/cluster.sh
#   STATIC=1 scripts/cluster.sh     the static form: a fixed leader
#                                   (REST 8000) and follower1-follower5,
#                                   no elections, stops when a node dies
# Starting, waiting and stopping are scripts/launch.sh's, shared with perf/.
#
# Data: each node keeps its log and snapshots in qkv-data/NODE_ID at the
# repository root (qkv-data/node0 .. node5; STATIC=1: qkv-data/leader,
# follower1 .. follower5; git-ignored). A cluster stopped with Ctrl-C and
# started again has every key it had, under the same cluster_id.
#   FRESH=1 scripts/cluster.sh        starts fresh: deletes qkv-data/ first
#   DATA_DIR=none scripts/cluster.sh  memory only; qkv-data/ is left alone
#   FSYNC=everysec scripts/cluster.sh always (default), everysec or never,
#                                     for every node
# Any other DATA_DIR is refused: six nodes cannot share one directory.
#
# Security (the README's security section):
#   CURVE=on scripts/cluster.sh       CURVE on every ZeroMQ link: key pairs
#                                     for node0..node5 and a client are made
#                                     once in qkv-data/keys (qkv keygen);
#                                     qkv then needs -k qkv-data/keys/client.key
#                                     -s qkv-data/keys/node0.pub
#   HTTP_TOKENS_FILE=FILE, TLS_CERT_FILE=FILE ... pass on to every node.
set -eu
cd "$(dirname "$0")/.."
. scripts/launch.sh

usage() {
    echo "usage: [FRESH=1] [STATIC=1] [DATA_DIR=none] [SETTING=VALUE ...]" \
        "scripts/cluster.sh [node I] (see its header)" >&2
    exit 2
}
ONE=""
case $# in
0) ;;
2)
    [ "$1" = node ] || usage
    case $2 in
    [0-5]) ONE=$2 ;;
    *) usage ;;
    esac
    ;;
*) usage ;;
esac
case ${STATIC:-0} in
0) QKV_ELECTIONS=1 ;;
1) QKV_ELECTIONS=0 ;;
*)
    echo "qkv: STATIC=$STATIC: 1 runs a fixed leader without elections," \
        "0 (default) elections" >&2
    exit 2
    ;;
esac
export QKV_ELECTIONS
[ -z "$ONE" ] || [ "$QKV_ELECTIONS" = 1 ] || {
    echo "qkv: node I restarts one node of the default (elections)" \
        "cluster; with STATIC=1 restart the whole cluster" >&2
    exit 2
}
DATA_ROOT=$(pwd)/qkv-data
case ${DATA_DIR:-} in
"") ;;
none) DATA_ROOT=none ;;
*)
    echo "qkv: DATA_DIR=$DATA_DIR: each node keeps its own directory under" \
        "$DATA_ROOT; only DATA_DIR=none (memory only) is taken" >&2
    exit 2
    ;;
esac
case ${FRESH:-0} in
0 | 1) ;;
*)
    echo "qkv: FRESH=$FRESH: 1 deletes qkv-data/ first, 0 (default) keeps it" >&2
    exit 2
    ;;
esac

case ${CURVE:-off} in
off) ;;
on)
    [ "$QKV_ELECTIONS" = 1 ] || {
        echo "qkv: CURVE=on needs the elections cluster (PEERS), not" \
            "STATIC=1" >&2
        exit 2
    }
    ;;
*)
    echo "qkv: CURVE=$CURVE: on or off (default)" >&2
    exit 2
    ;;
esac

if [ "${FRESH:-0}" = 1 ] && [ -n "$ONE" ]; then
    echo "qkv: FRESH=1 deletes every node's data; not with node I" >&2
    exit 2
fi
if [ "${FRESH:-0}" = 1 ] && [ -d qkv-data ]; then
    # Not from under a cluster that still runs: its nodes hold their LOCKs.
    for lock in qkv-data/*/LOCK; do
        if [ -f "$lock" ] && command -v flock >/dev/null &&
            ! flock -n "$lock" true; then
            echo "qkv: $(dirname "$lock") is in use by a running qkv-node;" \
                "stop that cluster first" >&2
            exit 1
        fi
    done
    rm -rf qkv-data
    echo "qkv: FRESH=1: deleted qkv-data/" >&2
fi
had_data=0
[ "$DATA_ROOT" = none ] || [ ! -d qkv-data ] || had_data=1

sh scripts/deps.sh build
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DQKV_TESTS=OFF \
    >/dev/null
cmake --build build-release -j"$(nproc)" --target qkv-node qkv >/dev/null
BIN=build-release/server/qkv-node

if [ "${CURVE:-off}" = on ]; then
    # One key pair per node and one for the client, made once; the nodes
    # read CURVE_KEY_DIR/NODE_ID.key, PEERS gets each NODE.pub.
    QKV_KEY_DIR=$(pwd)/qkv-data/keys
    mkdir -p "$QKV_KEY_DIR"
    chmod 700 "$QKV_KEY_DIR"
    for name in node0 node1 node2 node3 node4 node5 client; do
        [ -f "$QKV_KEY_DIR/$name.key" ] ||
            build-release/client/qkv keygen "$QKV_KEY_DIR/$name" >/dev/null
    done
    CURVE_KEY_DIR=$QKV_KEY_DIR
    export QKV_KEY_DIR CURVE CURVE_KEY_DIR
fi

HOST=127.0.0.1
LEADER_PORT=8000
# The nodes read WRITE_QUORUM, MAX_DELAY_MS, ... from the environment:
# qkv_launch passes no quorum, delay or timeout flag here.
export WRITE_QUORUM="${WRITE_QUORUM:-3}"

if [ -n "$ONE" ]; then
    # one node again, in the foreground, as qkv_launch started it
    data=$DATA_ROOT
    [ "$data" = none ] || data="$DATA_ROOT/node$ONE"
    echo "qkv: node$ONE again: http://$HOST:$((LEADER_PORT + ONE))" \
        "(tcp://$HOST:$((7000 + ONE))); Ctrl-C stops it" >&2
    exec "$BIN" --data-dir "$data" --node-id "node$ONE" --bind "$HOST" \
        --peers "$(qkv_peers "$HOST" "$LEADER_PORT" 7000 9000 5)"
fi

stop() {
    trap - INT TERM EXIT
    qkv_stop
    echo "qkv: cluster stopped" >&2
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

qkv_launch "$BIN" "$HOST" "$LEADER_PORT" 7000 9000 5 "" "" "" "" "" "" \
    "$DATA_ROOT"
# Ready when every node answers and every follower is connected; a node
# that exits meanwhile stops the cluster, a slow start only warns.
wait_rc=0
qkv_wait 10 || wait_rc=$?
if [ $wait_rc -ne 0 ] && [ $had_data = 1 ]; then
    echo "qkv: if a node refuses its data in qkv-data/ (another cluster's," \
        "or damaged: see its output or /health)," \
        "FRESH=1 scripts/cluster.sh starts over" >&2
fi
[ $wait_rc -ne 2 ] || exit 1
[ $wait_rc -eq 0 ] || echo "qkv: not ready yet; running anyway" >&2

if [ "$QKV_ELECTIONS" = 1 ]; then
    echo "qkv: node0-node5 http://$HOST:$LEADER_PORT-$((LEADER_PORT + 5))" \
        "(tcp://$HOST:7000-7005), leader now: $(qkv_find_leader)," \
        "WRITE_QUORUM=$WRITE_QUORUM; client: build-release/client/qkv;" \
        "Ctrl-C stops" >&2
    [ "${CURVE:-off}" != on ] ||
        echo "qkv: CURVE on: build-release/client/qkv -k" \
            "qkv-data/keys/client.key -s qkv-data/keys/node0.pub ..." >&2
else
    echo "qkv: leader http://$HOST:$LEADER_PORT (tcp://$HOST:7000)," \
        "followers http://$HOST:$((LEADER_PORT + 1))-$((LEADER_PORT + 5))" \
        "(7001-7005), WRITE_QUORUM=$WRITE_QUORUM;" \
        "client: build-release/client/qkv; Ctrl-C stops" >&2
fi
if [ "$DATA_ROOT" = none ]; then
    echo "qkv: data in memory only (DATA_DIR=none)" >&2
else
    echo "qkv: data in $DATA_ROOT/NODE_ID (FSYNC=${FSYNC:-always});" \
        "FRESH=1 scripts/cluster.sh starts fresh" >&2
fi
if [ "$QKV_ELECTIONS" != 1 ]; then
    # Static: any node exiting stops the cluster, so a failure is never
    # half-hidden.
    while qkv_alive; do
        sleep 1
    done
    exit 1
fi
# Elections: a node that exits is said once; the others go on.
gone=""
while :; do
    for node in $QKV_NODES; do
        name=${node%%:*}
        case " $gone " in *" $name "*) continue ;; esac
        if ! kill -0 "${node#*:}" 2>/dev/null; then
            gone="$gone $name"
            echo "qkv: $name exited; the others go on (an election" \
                "follows if it led: see /health on any node);" \
                "scripts/cluster.sh node ${name#node} starts it again" >&2
        fi
    done
    sleep 1
done
