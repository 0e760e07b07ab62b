#!/bin/sh
# Builds qkv with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-asan/ and runs every CUnit suite with ctest; then builds the
# libFuzzer targets with clang into build-fuzz/ and runs each for at most
# 10 s (ctest -L fuzz, about a minute in all; tests/fuzz/README.md).
# Installs missing Debian packages when run as root. Extra arguments go to
# the first ctest (e.g. -R proto), and then the fuzz step is skipped.
set -eu
cd "$(dirname "$0")/.."

sh scripts/deps.sh test
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQKV_SANITIZE=ON \
    -DQKV_FAILPOINTS=ON >/dev/null
cmake --build build-asan -j"$(nproc)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
cd build-asan
ctest --output-on-failure --timeout 900 "$@"
[ $# -eq 0 ] || exit 0

cd ..
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DQKV_FUZZ=ON \
    -DQKV_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz
cd build-fuzz
ctest -L fuzz --output-on-failure
