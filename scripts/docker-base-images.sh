#!/bin/sh
# Makes the Dockerfile's base images, debian:bookworm and debian:bookworm-slim,
# on a machine that cannot pull them: debootstrap bookworm into a folder and
# `docker import` it, so the real Dockerfile builds unchanged.
#
# Usage: scripts/docker-base-images.sh [--force]
#
# - An image this script did not make (a pulled one) is left alone.
# - An image it made from the same recipe (label org.qkv.base.recipe) and
#   younger than QKV_BASE_MAX_AGE_DAYS (30) is kept; --force makes it again.
# - The root file systems are cached as tarballs in QKV_DOCKER_CACHE
#   (default /var/cache/qkv-docker): a machine that lost its images imports
#   them again in seconds. Older tarballs are made again, so that security
#   updates come in.
# - When a build container cannot reach the Debian mirror, the packages the
#   Dockerfile installs are preinstalled: the build stage's into
#   debian:bookworm, the runtime stage's into debian:bookworm-slim (both lists
#   are read from the Dockerfile). Then the Dockerfile's apt-get update only
#   warns and its apt-get install finds everything in place.
#   QKV_BASE_PRELOAD=auto (default) tries the network once; yes or no forces it.
#
# Making images needs root and debootstrap (installed when missing);
# the mirror is QKV_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${QKV_DOCKER_CACHE:-/var/cache/qkv-docker}
mirror=${QKV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
preload=${QKV_BASE_PRELOAD:-auto}
max_age=${QKV_BASE_MAX_AGE_DAYS:-30}
suite=bookworm
force=0

say() { echo "docker-base-images: $*" >&2; }
die() { say "$*"; exit 1; }

for arg in "$@"; do
    case $arg in
    --force) force=1 ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
    esac
done
case $preload in auto | yes | no) ;; *) die "QKV_BASE_PRELOAD must be auto, yes or no" ;; esac

# The package lists, one line each in the Dockerfile.
dockerfile_arg() {
    sed -n "s/^ARG $1=\"\(.*\)\"\$/\1/p" "$top/Dockerfile"
}
build_pkgs=$(dockerfile_arg QKV_BUILD_PACKAGES)
runtime_pkgs=$(dockerfile_arg QKV_RUNTIME_PACKAGES)
[ -n "$build_pkgs" ] && [ -n "$runtime_pkgs" ] ||
    die "cannot read QKV_BUILD_PACKAGES and QKV_RUNTIME_PACKAGES from $top/Dockerfile"

# One recipe = this script, the mirror and the package lists.
recipe=$({
    cat "$0"
    echo "$mirror $suite | $build_pkgs | $runtime_pkgs"
} | sha256sum | cut -c1-16)

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"

# Prints what to do with an image: keep (ours, this recipe, or not ours) or
# make (missing, or ours from another recipe).
image_state() {
    if ! docker image inspect "$1" >/dev/null 2>&1; then
        echo make
        return
    fi
    made=$(docker image inspect -f '{{index .Config.Labels "org.qkv.base.recipe"}}' "$1")
    created=$(docker image inspect -f '{{.Created}}' "$1")
    age_days=$((($(date +%s) - $(date -d "$created" +%s)) / 86400))
    if [ -z "$made" ] || [ "$made" = "<no value>" ]; then
        echo keep # pulled, or made by someone else: never replaced
    elif [ "$made" = "$recipe" ] && [ $force = 0 ] && [ $age_days -le "$max_age" ]; then
        echo keep
    else
        echo make
    fi
}

full_state=$(image_state debian:$suite)
slim_state=$(image_state debian:$suite-slim)
if [ "$full_state" = keep ] && [ "$slim_state" = keep ]; then
    say "debian:$suite and debian:$suite-slim are in place"
    exit 0
fi

mkdir -p "$cache"
# One run at a time per cache; a second waits for the first.
exec 9>"$cache/lock"
flock 9
full_state=$(image_state debian:$suite)
slim_state=$(image_state debian:$suite-slim)

# ---- root file systems ------------------------------------------------------

work=""
cleanup() {
    if [ -n "$work" ]; then
        for d in "$work"/full "$work"/slim; do
            if mountpoint -q "$d/proc" 2>/dev/null; then umount "$d/proc"; fi
        done
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Runs a command inside a root file system with apt kept quiet.
in_root() {
    root=$1
    shift
    chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# debootstrap minbase, then the apt setup of Debian's own images: all three
# suites, no caches, no translations; then the updates of the day.
make_base_root() {
    root=$1
    say "debootstrap $suite from $mirror (a minute or two)"
    debootstrap --variant=minbase --components=main "$suite" "$root" "$mirror" \
        >"$work/debootstrap.log" 2>&1 ||
        { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' \
        >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    # Nothing started by package scripts inside a chroot or a build.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    mount -t proc proc "$root/proc"
    say "apt-get upgrade from $suite-updates and $suite-security"
    in_root "$root" apt-get update -q >"$work/apt.log" 2>&1 &&
        in_root "$root" apt-get -y -q dist-upgrade >>"$work/apt.log" 2>&1 ||
        { tail -20 "$work/apt.log" >&2; die "apt-get upgrade failed"; }
    umount "$root/proc"
}

# Trims a root file system the way debian:*-slim is trimmed: no manuals, no
# documentation but the copyrights, no translations, now and for later
# installs.
make_slim() {
    root=$1
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    for d in man groff info lintian linda locale; do
        [ -d "$root/usr/share/$d" ] && find "$root/usr/share/$d" -mindepth 1 \
            -not -path "$root/usr/share/locale/locale.alias" -delete 2>/dev/null || true
    done
}

# Installs packages into a root file system (no recommends, as the
# Dockerfile does).
preinstall() {
    root=$1
    shift
    say "preinstalling into $(basename "$root"): $*"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    mount -t proc proc "$root/proc"
    in_root "$root" apt-get update -q >>"$work/apt.log" 2>&1 &&
        in_root "$root" apt-get install -y -q --no-install-recommends "$@" \
            >>"$work/apt.log" 2>&1 ||
        { tail -20 "$work/apt.log" >&2; die "preinstalling failed"; }
    umount "$root/proc"
}

# What an image from a build container leaves: no package lists, no caches,
# no host identity.
finish_root() {
    root=$1
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/log/apt/* \
        "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
    rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/hostname" \
        "$root/etc/resolv.conf" "$root/etc/hosts"
    : >"$root/etc/machine-id"
    find "$root/var/log" -type f -exec truncate -s 0 {} +
}

# Tars a root file system; the engine provides /dev, /proc and /sys.
pack() {
    tar --numeric-owner --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* \
        -C "$1" -cf "$2.part" . && mv "$2.part" "$2"
}

# Imports one tarball under one tag, labelled with the recipe.
import_image() {
    tarball=$1 tag=$2 loaded=$3
    say "docker import $tag"
    old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
    docker import \
        --change 'CMD ["bash"]' \
        --change "LABEL org.qkv.base.recipe=$recipe" \
        --change "LABEL org.qkv.base.preloaded=$loaded" \
        --change "LABEL org.qkv.base.source=scripts/docker-base-images.sh" \
        "$tarball" "$tag" >/dev/null
    # The image it replaces (ours, outdated) goes unless something uses it.
    [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
}

# Whether a container on the default bridge (the network `docker build`
# uses) reaches the mirror: prints yes when packages must be preinstalled.
needs_preload() {
    tarball=$1
    probe=qkv-base-probe:$recipe
    docker import "$tarball" "$probe" >/dev/null
    if timeout 120 docker run --rm "$probe" apt-get update -q \
        -o Acquire::http::Timeout=15 -o Acquire::Retries=0 --error-on=any \
        >"$work/probe.log" 2>&1; then
        echo no
    else
        echo yes
    fi
    docker rmi "$probe" >/dev/null 2>&1 || true
}

fresh() { # a cached tarball younger than max_age days
    [ -f "$1" ] && [ -z "$(find "$1" -mtime +"$max_age")" ]
}

# The preload decision of this recipe on this machine, once probed.
decision="$cache/$suite-$recipe.preload"
if [ "$preload" = auto ] && [ -f "$decision" ]; then
    preload=$(cat "$decision")
fi
full_tar="$cache/$suite-$recipe-preload-$preload.tar"
slim_tar="$cache/$suite-slim-$recipe-preload-$preload.tar"

if [ "$preload" = auto ] || [ $force = 1 ] || ! fresh "$full_tar" || ! fresh "$slim_tar"; then
    [ "$(id -u)" -eq 0 ] || die "making the base images needs root (debootstrap, chroot)"
    sh "$top/scripts/deps.sh" images ||
        die "debootstrap is missing (or docker pull debian:$suite debian:$suite-slim)"
    started=$(date +%s)
    work=$(mktemp -d "$cache/work.XXXXXX")
    make_base_root "$work/full"
    cp -a "$work/full" "$work/slim"
    make_slim "$work/slim"
    if [ "$preload" = auto ]; then
        finish_root "$work/slim"
        pack "$work/slim" "$work/probe.tar"
        preload=$(needs_preload "$work/probe.tar")
        rm -f "$work/probe.tar"
        echo "$preload" >"$decision"
        if [ "$preload" = yes ]; then
            say "a build container cannot reach $mirror: preinstalling packages"
        else
            say "a build container reaches $mirror: no preinstalled packages"
        fi
        full_tar="$cache/$suite-$recipe-preload-$preload.tar"
        slim_tar="$cache/$suite-slim-$recipe-preload-$preload.tar"
    fi
    if [ "$preload" = yes ]; then
        # shellcheck disable=SC2086
        preinstall "$work/full" $build_pkgs
        # shellcheck disable=SC2086
        preinstall "$work/slim" $runtime_pkgs
    fi
    for v in full slim; do
        finish_root "$work/$v"
    done
    pack "$work/full" "$full_tar"
    pack "$work/slim" "$slim_tar"
    # Older recipes' tarballs are of no use any more.
    find "$cache" -maxdepth 1 -name "$suite*.tar" ! -name "*-$recipe-*" -delete
    find "$cache" -maxdepth 1 -name "$suite-*.preload" ! -name "*-$recipe.preload" -delete
    say "root file systems made in $(($(date +%s) - started))s"
fi

[ "$full_state" = make ] && import_image "$full_tar" debian:$suite "$preload"
[ "$slim_state" = make ] && import_image "$slim_tar" debian:$suite-slim "$preload"
say "debian:$suite and debian:$suite-slim are in place (recipe $recipe, preloaded: $preload)"
