#!/bin/sh
# Builds qkv with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-asan/ and runs every CUnit suite with ctest. Installs missing Debian
# packages when run as root. Extra arguments go to ctest (e.g. -R proto).
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
