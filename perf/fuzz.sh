#!/bin/sh
# Runs the libFuzzer targets of tests/fuzz longer than scripts/test.sh
# does: builds build-fuzz/ as the test command does (clang, -DQKV_FUZZ=ON),
# then fuzzes each target for FUZZ_SECONDS (default 600) on a fresh copy
# of its seed corpus in build-fuzz/tests/fuzz/long/TARGET/ (the
# repository's corpus is never written to) and prints one JSON line per
# target: {"target","seconds","execs","crashes"}, seconds as measured,
# execs from libFuzzer's final stats. A crash stops that target and
# leaves its input (crash-*, leak-*, timeout-*, oom-*) and the log in its
# folder; tests/fuzz/README.md says what to do with it. Exits 1 when any
# target crashed.
# Usage: perf/fuzz.sh [TARGET...]   (fuzz_msg fuzz_cmsg fuzz_rest
#        fuzz_config fuzz_wal fuzz_snap; the fuzz_ may be left out)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-fuzz
ALL="fuzz_msg fuzz_cmsg fuzz_rest fuzz_config fuzz_wal fuzz_snap"
SECS=${FUZZ_SECONDS:-600}
case $SECS in
'' | *[!0-9]*) echo "perf/fuzz.sh: FUZZ_SECONDS must be whole seconds" >&2
    exit 2 ;;
esac

# shellcheck disable=SC2086
[ $# -gt 0 ] || set -- $ALL
targets=""
for t in "$@"; do
    case " $ALL " in
    *" $t "*) targets="$targets $t" ;;
    *" fuzz_$t "*) targets="$targets fuzz_$t" ;;
    *) echo "perf/fuzz.sh: no target $t (one of: $ALL)" >&2
        exit 2 ;;
    esac
done

sh "$ROOT/scripts/deps.sh" test
CC=clang cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DQKV_FUZZ=ON \
    -DQKV_TESTS=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $targets >/dev/null

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
failed=0
for t in $targets; do
    work=$BUILD/tests/fuzz/long/$t
    rm -rf "$work"
    mkdir -p "$work/corpus"
    cp "$ROOT/tests/fuzz/corpus/$t/"* "$work/corpus/"
    dict=""
    [ -f "$ROOT/tests/fuzz/$t.dict" ] && dict="-dict=$ROOT/tests/fuzz/$t.dict"
    start=$(date +%s)
    rc=0
    # shellcheck disable=SC2086
    "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" \
        $dict "$work/corpus" >"$work/log" 2>&1 || rc=$?
    seconds=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" |
        tail -n 1)
    crashes=$(find "$work" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # it failed without leaving an input: see the log
    fi
    printf '{"target":"%s","seconds":%d,"execs":%d,"crashes":%d}\n' \
        "$t" "$seconds" "${execs:-0}" "$crashes"
    if [ "$crashes" -ne 0 ]; then
        echo "perf/fuzz.sh: $t failed: see $work/log" >&2
        failed=1
    fi
done
exit $failed
