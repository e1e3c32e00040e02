# SPDX-License-Identifier: Apache-2.0
# naftikod container image: built on Debian 12, run on Debian 12 slim as a non-root user.
#   docker build -t naftikod .
#   docker run --rm -p 127.0.0.1:8080:8080 -e CENTRAL_HOST=central:443 \
#     -e STACKROX_API_KEY_FILE=/run/secrets/stackrox-api-key -v ./key:/run/secrets/stackrox-api-key:ro \
#     naftikod
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config python3 libmicrohttpd-dev libcurl4-openssl-dev \
        libyaml-dev libjansson-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt LICENSE ./
COPY src src
COPY include include
COPY capabilities capabilities
COPY docs/naftikod.8.in docs/naftikod.8.in
COPY packaging packaging
COPY tools/gen_man.py tools/gen_man.py
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DNK_TESTS=OFF -DNK_WERROR=ON \
    && cmake --build /build -j"$(nproc)" \
    && DESTDIR=/stage cmake --install /build --prefix /usr

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12 libcurl4 libyaml-0-2 libjansson4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin naftikod
COPY --from=build /stage/usr/bin/naftikod /usr/bin/naftikod
COPY --from=build /stage/usr/share/naftikod /usr/share/naftikod
COPY --from=build /stage/etc/naftikod /etc/naftikod
USER 10001:10001
# REST, MCP, ops (/healthz /readyz /metrics). In a container the listeners must bind 0.0.0.0:
# the adapters then need inbound authentication (or --allow-remote); the ops listener does not.
EXPOSE 8080 9090 8091
ENV NAFTIKOD_REST_LISTEN=0.0.0.0:8080 NAFTIKOD_MCP_LISTEN=0.0.0.0:9090 \
    NAFTIKOD_OPS_LISTEN=0.0.0.0:8091 NAFTIKOD_LOG_FORMAT=json
ENTRYPOINT ["/usr/bin/naftikod", "serve", "--config", "/etc/naftikod/naftikod.yaml"]
