# Starting, waiting for and stopping a local qkv cluster: a leader and N
# followers, each a qkv-node process. Sourced (POSIX sh) by
# scripts/cluster.sh and perf/lib.sh.
#
# One cluster at a time: qkv_wait, qkv_alive and qkv_stop act on the nodes
# qkv_launch started since the last qkv_stop.
#
#   qkv_launch BIN HOST REST CLIENTS REPL N QUORUM MIN_DELAY_MS MAX_DELAY_MS \
#              REPL_TIMEOUT_MS EXTRA_FLAGS LOG_DIR DATA_ROOT
#       Starts N followers, then the leader, in the background. The leader
#       gets REST port REST and client port CLIENTS; follower i gets REST+i,
#       CLIENTS+i and replication port REPL+i. Every node binds HOST;
#       followers get --leader-url and --leader-endpoint. QUORUM, the delays
#       and REPL_TIMEOUT_MS go to the leader as flags; an empty one is left
#       out, so the environment's WRITE_QUORUM, MIN_DELAY_MS, ... (or the
#       default) applies. EXTRA_FLAGS (split on blanks) go to every node,
#       last, so they win over the flags set here.
#       With LOG_DIR, node NAME writes LOG_DIR/NAME.log; with an empty
#       LOG_DIR, the nodes share the caller's stdout and stderr.
#       With DATA_ROOT, node NAME (leader, follower1..N) keeps its data in
#       DATA_ROOT/NAME (--data-dir; the node creates it, and a node started
#       again on it keeps its data); DATA_ROOT "none" gives every node
#       --data-dir none (memory only); an empty DATA_ROOT passes no
#       --data-dir: the environment's DATA_DIR applies (one for every node,
#       so only none suits a cluster), else the node's default,
#       ./qkv-data/NODE_ID under the working directory.
#       Sets QKV_PIDS (followers first, the leader last) and QKV_NODES
#       (NAME:PID ...).
#       With QKV_CPU_LISTS in the environment (blank-separated CPU lists,
#       the first for the leader or node0, the I-th after it for
#       follower I or node I) each node gets its own --cpu-list.
#       With QKV_ELECTIONS=1 in the environment the same ports make N + 1
#       peers instead (PEERS: elections): node0 (REST, CLIENTS, REPL)
#       and nodeI (REST+I, CLIENTS+I, REPL+I); every node gets --peers,
#       the quorum, delay and timeout flags; node0 gets --role leader (it
#       leads a new cluster) and starts last; data in DATA_ROOT/nodeI.
#   qkv_peers HOST REST CLIENTS REPL N
#       Prints that PEERS list.
#   qkv_launch_peer I
#       Starts nodeI again as qkv_launch did (after it exited), in the
#       background; QKV_NODES gets it again.
#   qkv_wait [SECONDS (10)]
#       Waits until every node answers /health and the leader's /health
#       shows every follower "connected":true (with elections: whichever
#       node's /health says it leads). Says what is missing on
#       stderr and returns 1 on a timeout, 2 when a node exits meanwhile.
#   qkv_alive
#       Returns 0 if every node is running; otherwise names the first that
#       exited on stderr and returns 1.
#   qkv_stop
#       Stops every node (SIGTERM), waits for them, clears QKV_PIDS.
#
# POSIX sh has no local variables: everything here is named qkv_* / QKV_*
# so as not to clobber the caller's. The nodes inherit the environment and
# read their settings from it where no flag is given (flags win).

QKV_PIDS=""
QKV_NODES=""
qkv_host=""
qkv_rest=""
qkv_n=0

qkv_launch() {
    if [ $# -ne 13 ]; then
        echo "qkv_launch: 13 arguments expected, got $#" >&2
        return 2
    fi
    qkv_bin=$1 qkv_host=$2 qkv_rest=$3 qkv_clients=$4 qkv_repl=$5 qkv_n=$6
    qkv_lflags=""
    [ -z "$7" ] || qkv_lflags="$qkv_lflags --write-quorum $7"
    [ -z "$8" ] || qkv_lflags="$qkv_lflags --min-delay-ms $8"
    [ -z "$9" ] || qkv_lflags="$qkv_lflags --max-delay-ms $9"
    [ -z "${10}" ] || qkv_lflags="$qkv_lflags --replication-timeout-ms ${10}"
    qkv_extra=${11} qkv_logs=${12} qkv_data=${13}
    if [ ! -x "$qkv_bin" ]; then
        echo "qkv_launch: $qkv_bin: not an executable" >&2
        return 2
    fi
    if [ -n "$qkv_logs" ] && ! mkdir -p "$qkv_logs"; then
        return 2
    fi
    if [ "${QKV_ELECTIONS:-0}" = 1 ]; then
        QKV_PEERS=$(qkv_peers "$qkv_host" "$qkv_rest" "$qkv_clients" \
            "$qkv_repl" "$qkv_n")
        qkv_i=1
        while [ "$qkv_i" -le "$qkv_n" ]; do
            qkv_launch_peer "$qkv_i"
            qkv_i=$((qkv_i + 1))
        done
        qkv_launch_peer 0
        return 0
    fi
    qkv_followers=""
    qkv_i=1
    while [ "$qkv_i" -le "$qkv_n" ]; do
        # shellcheck disable=SC2086,SC2046 # flags: split on purpose
        qkv_launch_one "follower$qkv_i" --role follower \
            --node-id "follower$qkv_i" --bind "$qkv_host" \
            --port $((qkv_rest + qkv_i)) --repl-port $((qkv_repl + qkv_i)) \
            --client-port $((qkv_clients + qkv_i)) \
            --leader-url "http://$qkv_host:$qkv_rest" \
            --leader-endpoint "tcp://$qkv_host:$qkv_clients" $qkv_extra \
            $(qkv_cpu_flag "$qkv_i")
        qkv_followers="${qkv_followers:+$qkv_followers,}tcp://$qkv_host:$((qkv_repl + qkv_i))"
        qkv_i=$((qkv_i + 1))
    done
    # shellcheck disable=SC2086,SC2046 # flags: split on purpose
    qkv_launch_one leader --role leader --node-id leader --bind "$qkv_host" \
        --port "$qkv_rest" --client-port "$qkv_clients" \
        --followers "$qkv_followers" $qkv_lflags $qkv_extra \
        $(qkv_cpu_flag 0)
    return 0
}

# qkv_cpu_flag I: --cpu-list with the I-th (from 0) of QKV_CPU_LISTS, or
# nothing (internal).
qkv_cpu_flag() {
    [ -n "${QKV_CPU_LISTS:-}" ] || return 0
    echo "$QKV_CPU_LISTS" | awk -v i="$1" 'NF > i { print "--cpu-list", $(i + 1) }'
}

qkv_peers() {
    qkv_p=""
    qkv_j=0
    while [ "$qkv_j" -le "$5" ]; do
        qkv_p="${qkv_p:+$qkv_p,}node$qkv_j=tcp://$1:$(($4 + qkv_j))"
        qkv_p="$qkv_p|tcp://$1:$(($3 + qkv_j))|http://$1:$(($2 + qkv_j))"
        # CURVE: each node's public key, from qkv keygen's NODE.pub
        [ -z "${QKV_KEY_DIR:-}" ] ||
            qkv_p="$qkv_p|key=$(tail -n 1 "$QKV_KEY_DIR/node$qkv_j.pub")"
        qkv_j=$((qkv_j + 1))
    done
    echo "$qkv_p"
}

qkv_launch_peer() {
    # started again: its old entry (a process that exited) goes
    qkv_kept=""
    for qkv_node in $QKV_NODES; do
        [ "${qkv_node%%:*}" = "node$1" ] || qkv_kept="${qkv_kept:+$qkv_kept }$qkv_node"
    done
    QKV_NODES=$qkv_kept
    qkv_role=""
    [ "$1" != 0 ] || qkv_role="--role leader"
    # shellcheck disable=SC2086,SC2046 # flags: split on purpose
    qkv_launch_one "node$1" --node-id "node$1" --bind "$qkv_host" \
        --peers "$QKV_PEERS" $qkv_role $qkv_lflags $qkv_extra \
        $(qkv_cpu_flag "$1")
}

# qkv_launch_one NAME ARGS...: one node in the background (internal).
qkv_launch_one() {
    qkv_name=$1
    shift
    case $qkv_data in
    "") ;;
    none) set -- --data-dir none "$@" ;; # first: EXTRA_FLAGS win
    *) set -- --data-dir "$qkv_data/$qkv_name" "$@" ;;
    esac
    if [ -n "$qkv_logs" ]; then
        "$qkv_bin" "$@" >"$qkv_logs/$qkv_name.log" 2>&1 &
    else
        "$qkv_bin" "$@" &
    fi
    QKV_PIDS="${QKV_PIDS:+$QKV_PIDS }$!"
    QKV_NODES="${QKV_NODES:+$QKV_NODES }$qkv_name:$!"
}

qkv_alive() {
    for qkv_node in $QKV_NODES; do
        if ! kill -0 "${qkv_node#*:}" 2>/dev/null; then
            echo "qkv: ${qkv_node%%:*} (pid ${qkv_node#*:}) exited" >&2
            return 1
        fi
    done
    return 0
}

# The base URL of the node whose /health says it leads (internal);
# empty when none does.
qkv_find_leader() {
    qkv_j=0
    while [ "$qkv_j" -le "$qkv_n" ]; do
        if curl -s -m 1 "http://$qkv_host:$((qkv_rest + qkv_j))/health" |
            grep -q '"role":"leader"'; then
            echo "http://$qkv_host:$((qkv_rest + qkv_j))"
            return 0
        fi
        qkv_j=$((qkv_j + 1))
    done
}

qkv_wait() {
    qkv_deadline=$(($(date +%s) + ${1:-10}))
    qkv_leader="http://$qkv_host:$qkv_rest"
    while :; do
        [ "${QKV_ELECTIONS:-0}" != 1 ] || qkv_leader=$(qkv_find_leader)
        qkv_alive || return 2
        qkv_missing=""
        qkv_i=0
        while [ "$qkv_i" -le "$qkv_n" ]; do
            curl -sf -m 1 -o /dev/null \
                "http://$qkv_host:$((qkv_rest + qkv_i))/health" ||
                qkv_missing="$qkv_missing $((qkv_rest + qkv_i))"
            qkv_i=$((qkv_i + 1))
        done
        qkv_connected=0
        if [ -z "$qkv_missing" ] && [ -n "$qkv_leader" ]; then
            qkv_connected=$(curl -s -m 1 "$qkv_leader/health" |
                grep -o '"connected":true' | wc -l)
            [ "$qkv_connected" -lt "$qkv_n" ] || return 0
        fi
        if [ "$(date +%s)" -ge "$qkv_deadline" ]; then
            if [ -n "$qkv_missing" ]; then
                echo "qkv: no answer on /health from port(s)$qkv_missing" \
                    "of $qkv_host after ${1:-10} s" >&2
            elif [ -z "$qkv_leader" ]; then
                echo "qkv: no node leads after ${1:-10} s" >&2
            else
                echo "qkv: $qkv_connected of $qkv_n followers connected to" \
                    "$qkv_leader after ${1:-10} s" >&2
            fi
            return 1
        fi
        sleep 0.1
    done
}

qkv_stop() {
    if [ -n "$QKV_PIDS" ]; then
        # shellcheck disable=SC2086
        kill $QKV_PIDS 2>/dev/null || true
        # shellcheck disable=SC2086
        wait $QKV_PIDS 2>/dev/null || true # killed: non-zero, expected
    fi
    QKV_PIDS=""
    QKV_NODES=""
    return 0
}
