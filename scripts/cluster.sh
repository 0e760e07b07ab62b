#!/bin/sh
# Runs a local qkv cluster in the foreground: a leader (REST 127.0.0.1:8000,
# zmq-native clients 7000) and five followers (REST 8001-8005, clients
# 7001-7005, replication 9001-9005), WRITE_QUORUM=3.
# Ctrl-C stops every node. Installs missing Debian packages when run as
# root, builds into build-release/, and passes the environment on: e.g.
#   WRITE_QUORUM=5 MAX_DELAY_MS=200 scripts/cluster.sh
# Starting, waiting and stopping are scripts/launch.sh's, shared with perf/.
set -eu
cd "$(dirname "$0")/.."
. scripts/launch.sh

sh scripts/deps.sh build
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DQKV_TESTS=OFF \
    >/dev/null
cmake --build build-release -j"$(nproc)" --target qkv-node qkv >/dev/null
BIN=build-release/server/qkv-node

HOST=127.0.0.1
LEADER_PORT=8000
# The nodes read WRITE_QUORUM, MAX_DELAY_MS, ... from the environment:
# qkv_launch passes no quorum, delay or timeout flag here.
export WRITE_QUORUM="${WRITE_QUORUM:-3}"

stop() {
    trap - INT TERM EXIT
    qkv_stop
    echo "qkv: cluster stopped" >&2
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

qkv_launch "$BIN" "$HOST" "$LEADER_PORT" 7000 9000 5 "" "" "" "" "" ""
# Ready when every node answers and every follower is connected; a node
# that exits meanwhile stops the cluster, a slow start only warns.
wait_rc=0
qkv_wait 10 || wait_rc=$?
[ $wait_rc -ne 2 ] || exit 1
[ $wait_rc -eq 0 ] || echo "qkv: not ready yet; running anyway" >&2

echo "qkv: leader http://$HOST:$LEADER_PORT (tcp://$HOST:7000), followers" \
    "http://$HOST:$((LEADER_PORT + 1))-$((LEADER_PORT + 5)) (7001-7005)," \
    "WRITE_QUORUM=$WRITE_QUORUM; client: build-release/client/qkv;" \
    "Ctrl-C stops" >&2
# Any node exiting stops the cluster, so a failure is never half-hidden.
while qkv_alive; do
    sleep 1
done
exit 1
