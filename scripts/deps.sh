#!/bin/sh
# Installs the Debian packages qkv needs to build and test, when any is
# missing. As root it runs apt-get; otherwise it names what to install.
# Usage: scripts/deps.sh [build|test|perf|images]
#   test adds what the suites use; perf what perf/ uses (gnuplot, Redis);
#   images only what scripts/docker-base-images.sh needs (debootstrap).
set -eu

BUILD_PKGS="build-essential cmake pkg-config libzmq3-dev libczmq-dev
libmsgpack-dev libcivetweb-dev libjansson-dev libssl-dev"
TEST_PKGS="libcunit1-dev libcurl4-openssl-dev curl iproute2 clang
libclang-rt-14-dev openssl"
PERF_PKGS="curl gnuplot-nox redis-server redis-tools libssl-dev openssl"

pkgs=$BUILD_PKGS
case "${1:-build}" in
test) pkgs="$pkgs $TEST_PKGS" ;;
perf) pkgs="$pkgs $PERF_PKGS" ;;
images) pkgs="debootstrap" ;;
esac

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "qkv: missing Debian packages:$missing" >&2
    echo "qkv: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "qkv: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
