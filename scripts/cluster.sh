#!/bin/sh
# Runs a local qkv cluster in the foreground: a leader (REST 127.0.0.1:8000,
# zmq-native clients 7000) and five followers (REST 8001-8005, clients
# 7001-7005, replication 9001-9005), WRITE_QUORUM=3.
# Ctrl-C stops every node. Installs missing Debian packages when run as
# root, builds into build-release/, and passes the environment on: e.g.
#   WRITE_QUORUM=5 MAX_DELAY_MS=200 scripts/cluster.sh
set -eu
cd "$(dirname "$0")/.."

sh scripts/deps.sh build
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DQKV_TESTS=OFF \
    >/dev/null
cmake --build build-release -j"$(nproc)" --target qkv-node qkv >/dev/null
BIN=build-release/server/qkv-node

HOST=127.0.0.1
LEADER_PORT=8000
export WRITE_QUORUM="${WRITE_QUORUM:-3}"
pids=""

stop() {
    trap - INT TERM EXIT
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill $pids 2>/dev/null
    wait 2>/dev/null
    echo "qkv: cluster stopped" >&2
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

followers=""
for i in 1 2 3 4 5; do
    "$BIN" --role follower --node-id "follower$i" --bind "$HOST" \
        --port $((LEADER_PORT + i)) --repl-port $((9000 + i)) \
        --client-port $((7000 + i)) --leader-url "http://$HOST:$LEADER_PORT" \
        --leader-endpoint "tcp://$HOST:7000" &
    pids="$pids $!"
    followers="${followers:+$followers,}tcp://$HOST:$((9000 + i))"
done
"$BIN" --role leader --node-id leader --bind "$HOST" --port "$LEADER_PORT" \
    --client-port 7000 --followers "$followers" &
pids="$pids $!"

echo "qkv: leader http://$HOST:$LEADER_PORT (tcp://$HOST:7000), followers" \
    "http://$HOST:$((LEADER_PORT + 1))-$((LEADER_PORT + 5)) (7001-7005)," \
    "WRITE_QUORUM=$WRITE_QUORUM; client: build-release/client/qkv;" \
    "Ctrl-C stops" >&2
# Any node exiting stops the cluster, so a failure is never half-hidden.
while :; do
    for p in $pids; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "qkv: node (pid $p) exited" >&2
            exit 1
        fi
    done
    sleep 1
done
