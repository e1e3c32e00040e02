# SPDX-License-Identifier: Apache-2.0
# naftikod container image: built on Debian 12, run on Debian 12 slim as user 10001.
#   docker build -t naftikod .
#   printf '%s\n' "$CALLER_TOKEN" | docker run --rm -i naftikod hash-token me > callers
#   docker run --rm --user "$(id -u):$(id -g)" -p 127.0.0.1:8080:8080 -p 127.0.0.1:9090:9090 \
#     -e CENTRAL_HOST=central.example.com:443 \
#     -e STACKROX_API_KEY_FILE=/run/secrets/naftikod/stackrox-api-key \
#     -v "$PWD/stackrox-api-key:/run/secrets/naftikod/stackrox-api-key:ro" \
#     -v "$PWD/callers:/run/secrets/naftikod/callers:ro" naftikod
# (--user: the two files stay yours, mode 0600; add NAFTIKOD_CA_FILE and a mount for Central's
# own CA.) The configuration is packaging/naftikod-container.yaml, installed as
# /etc/naftikod/naftikod.yaml: a file mounted there replaces it, environment variables and
# flags beat single keys of it (docs/operations.md, "The image").
#
# The bases are pinned by digest (the multi-platform index of the dated tag, as the Docker
# official images publish it). A build without a registry passes its own base:
#   --build-arg BUILD_IMAGE=... --build-arg RUNTIME_IMAGE=... (tests/integration/image_build.sh)
ARG BUILD_IMAGE=docker.io/library/debian:bookworm-20260918@sha256:f37a335e82bca302e955fa39f9dfe28f1be618f016f8a2b56318e5a5111afc26
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-20260918-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

FROM ${BUILD_IMAGE} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config python3 libmicrohttpd-dev libcurl4-openssl-dev \
        libyaml-dev libjansson-dev libssl-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt LICENSE ./
COPY src src
COPY include include
COPY capabilities capabilities
COPY docs/naftikod.8.in docs/naftikod.8.in
COPY packaging packaging
COPY tools/gen_man.py tools/gen_man.py
COPY demo demo
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DNK_TESTS=OFF -DNK_WERROR=ON \
    && cmake --build /build -j"$(nproc)" \
    && DESTDIR=/stage cmake --install /build --prefix /usr

FROM ${RUNTIME_IMAGE}
# No preStop hook (deploy/base): on SIGTERM the daemon itself is a lame duck for shutdown-delay.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12 libcurl4 libyaml-0-2 libjansson4 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 naftikod \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin naftikod
COPY --from=build /stage/usr/bin/naftikod /usr/bin/naftikod
COPY --from=build /stage/usr/share/naftikod /usr/share/naftikod
COPY packaging/naftikod-container.yaml /etc/naftikod/naftikod.yaml
USER 10001:10001
# REST, MCP, ops (/healthz /readyz /metrics).
EXPOSE 8080 9090 8091
# No curl in the image: the daemon probes its own ops listener. A configuration that moves
# the ops listener needs its own health check (docker run --health-cmd).
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/bin/naftikod", "probe", "http://127.0.0.1:8091/healthz"]
ENTRYPOINT ["/usr/bin/naftikod"]
CMD ["serve", "--config", "/etc/naftikod/naftikod.yaml"]
