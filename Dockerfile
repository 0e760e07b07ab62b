# qkv-node in a container: a build stage with the README's packages, a slim
# runtime stage with only the shared libraries, run as a non-root user.
#
#   docker build -t qkv-node .
#   docker run --rm -p 8000:8000 qkv-node            # a leader without followers
#   docker run --rm -p 8000:8000 -v qkv-leader:/var/lib/qkv qkv-node
#                                     # the same, its data kept in a volume
#
# The node keeps its log and snapshots in /var/lib/qkv (DATA_DIR), owned by
# the user it runs as (qkv, uid 10001): mount a volume there to keep them
# when the container is removed (a new named volume takes that owner; a
# bind-mounted host folder must be writable by uid 10001). DATA_DIR=none
# keeps memory only.
# Every setting comes from the environment (see the README's settings table);
# flags given after the image name win, as they do for the bare program.
# scripts/docker-base-images.sh reads the two package lists below to make the
# base images on machines that cannot pull them: keep each on one line.
# libssl-dev in the runtime: Debian's civetweb loads the unversioned
# libssl.so and libcrypto.so for TLS (TLS_CERT_FILE), which only it ships;
# /usr/local/lib/qkv/libqkv-ssl-compat.so lets it use OpenSSL 3
# (gateway/src/qkv_ssl_compat.c).
#
# The image also holds the qkv tool (qkv keygen) and two scripts (docker/):
# qkv-entrypoint fills PEERS' keys from CURVE_KEY_DIR when CURVE=on, and
# qkv-secrets is docker-compose.yml's one-shot maker of keys and tokens.

ARG QKV_BUILD_PACKAGES="build-essential cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libcivetweb-dev libjansson-dev libssl-dev"
ARG QKV_RUNTIME_PACKAGES="libzmq5 libczmq4 libmsgpackc2 libcivetweb1 libjansson4 libssl-dev curl"

# ---- build ------------------------------------------------------------------
FROM debian:bookworm AS build
ARG QKV_BUILD_PACKAGES
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $QKV_BUILD_PACKAGES \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps build trees, tests and docs out, so editing them does
# not rebuild the program.
COPY . .
RUN cmake -S . -B build -DQKV_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    && cmake --build build -j"$(nproc)" --target qkv-node qkv \
    && strip build/server/qkv-node build/client/qkv \
        build/server/libqkv-ssl-compat.so

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="qkv-node" \
      org.opencontainers.image.description="qkv, a replicated key-value store"
ARG QKV_RUNTIME_PACKAGES
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $QKV_RUNTIME_PACKAGES \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin qkv \
    && install -d -o qkv -g qkv -m 0750 /var/lib/qkv \
    && install -d -o qkv -g qkv -m 0700 /etc/qkv/keys

COPY --from=build /src/build/server/qkv-node /usr/local/bin/qkv-node
COPY --from=build /src/build/client/qkv /usr/local/bin/qkv
COPY --from=build /src/build/server/libqkv-ssl-compat.so /usr/local/lib/qkv/
COPY docker/qkv-entrypoint docker/qkv-secrets /usr/local/bin/
# Fail the build, not the first start, when a runtime library is missing.
RUN if ldd /usr/local/bin/qkv-node /usr/local/bin/qkv | grep 'not found'; then \
        exit 1; fi

# Listen on every interface: inside a container 127.0.0.1 reaches nobody.
# DATA_DIR: the qkv-owned folder made above.
ENV ROLE=leader \
    PORT=8000 \
    BIND=0.0.0.0 \
    REPL_PORT=9000 \
    DATA_DIR=/var/lib/qkv
EXPOSE 7000 8000 9000
USER qkv:qkv

# Asks the node's own /health on the address it listens on (PORT and BIND
# from the environment; a port given as a flag is not seen here).
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD host="${BIND:-127.0.0.1}"; [ "$host" != 0.0.0.0 ] || host=127.0.0.1; \
        curl -fsS -o /dev/null "http://$host:${PORT:-8000}/health" || exit 1

ENTRYPOINT ["/usr/local/bin/qkv-entrypoint"]
