#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# image_build.sh: build the container image from the Dockerfile without any image registry and
# run it. A Debian 12 root made by mmdebstrap becomes the base image (both FROM lines, through
# the BUILD_IMAGE / RUNTIME_IMAGE build arguments), `buildah bud --isolation chroot` builds, and
# `buildah run --isolation chroot --user 10001:10001` runs the image's naftikod --version,
# naftikod check of the bundled capability, and a short serve answering one REST call against
# the Central double over TLS (Central's CA, the key and the caller tokens mounted as files),
# probed with the image's own HEALTHCHECK command. Everything lives in a private buildah store
# under one temporary directory, removed on exit. Skips (77) only when buildah or mmdebstrap
# is missing and cannot be installed. Debian's packages are fetched from the usual mirror.
# usage: image_build.sh SOURCE_DIR NAFTIKOD_DEMO_CENTRAL
set -euo pipefail
SRC=$(cd "$1" && pwd)
DOUBLE=$2
NAFTIKOD=/bin/false # common.sh's nk_launch is not used here
CAP=""
. "$(dirname "$0")/common.sh"
start=$(date +%s)

have() { command -v "$1" >/dev/null 2>&1; }
if ! have buildah || ! have mmdebstrap; then
    if [ "$(id -u)" = 0 ] && have apt-get; then
        timeout 600 apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
            buildah mmdebstrap >/dev/null 2>&1 || true
    fi
    if ! have buildah || ! have mmdebstrap; then
        echo "skip: buildah or mmdebstrap is missing and could not be installed"
        exit 77
    fi
fi

nk_init image image
store="$work/store"
ctrs=()
# `buildah run` ends when the process it runs ends; that process (a child of the chroot
# runtime, in this PID namespace) is found under the background job by parent ids.
descendants() { # PID: its descendants, deepest last
    local p
    for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$p"
        descendants "$p"
    done
}
stop_tree() { # PID SIGNAL: SIGNAL to PID's descendants, deepest first, then to PID
    local p
    for p in $(descendants "$1" | tac); do kill "-$2" "$p" 2>/dev/null || true; done
    kill "-$2" "$1" 2>/dev/null || true
}
image_cleanup() {
    local c p
    for p in "${pids[@]}"; do stop_tree "$p" KILL; done
    for c in "${ctrs[@]}"; do b rm "$c" >/dev/null 2>&1 || true; done
    b rmi --all --force >/dev/null 2>&1 || true
    # vfs layers are plain directories; a RUN step cut short can leave the chroot's bind
    # mounts (/proc, /sys, /dev) behind: unmount whatever is under $work before removing it.
    while read -r p; do umount -l "$p" 2>/dev/null || true; done < <(findmnt -rn -o TARGET | grep -F "$work/" | sort -r)
    nk_cleanup
}
trap image_cleanup EXIT
b() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }

# 1. The base: Debian 12 minbase (what the Docker official image holds), as an image named
#    localhost/naftikod-ci/debian:12 in the private store.
timeout 900 mmdebstrap --quiet --variant=minbase bookworm "$work/rootfs.tar" \
    >"$work/mmdebstrap.log" 2>&1 || fail "mmdebstrap could not make a bookworm root"
c=$(b from scratch) || fail "buildah from scratch"
ctrs+=("$c")
b add "$c" "$work/rootfs.tar" / >/dev/null || fail "buildah add of the root"
b config --cmd /bin/bash "$c"
b commit --quiet --rm "$c" localhost/naftikod-ci/debian:12 >/dev/null || fail "buildah commit of the base"
ctrs=()
rm -f "$work/rootfs.tar"
t_base=$(($(date +%s) - start))

# 2. The image, from the Dockerfile as it is, with the base passed in (no registry is asked:
#    --pull=never).
timeout 1800 buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs bud \
    --isolation chroot --pull=never --format docker --layers=false \
    --build-arg BUILD_IMAGE=localhost/naftikod-ci/debian:12 \
    --build-arg RUNTIME_IMAGE=localhost/naftikod-ci/debian:12 \
    -f "$SRC/Dockerfile" -t localhost/naftikod-ci/naftikod:test "$SRC" \
    >"$work/bud.log" 2>&1 || fail "buildah bud failed"
t_bud=$(($(date +%s) - start - t_base))
b inspect --format '{{.Docker.Config.Healthcheck.Test}}' localhost/naftikod-ci/naftikod:test \
    >"$work/healthcheck" 2>/dev/null || true
grep -q 'naftikod probe' "$work/healthcheck" || grep -q 'probe' "$work/healthcheck" ||
    fail "the image has no HEALTHCHECK with naftikod probe: $(cat "$work/healthcheck")"
c=$(b from --pull=never localhost/naftikod-ci/naftikod:test) || fail "buildah from the image"
ctrs+=("$c")
run() { timeout 60 buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs \
    run --isolation chroot --user 10001:10001 "$@"; }

# 3. What the image runs, as uid 10001.
v=$(run "$c" -- /usr/bin/naftikod --version 2>&1) || fail "naftikod --version in the image: $v"
case "$v" in "naftikod "*) ;; *) fail "naftikod --version printed: $v" ;; esac
run "$c" -- /usr/bin/naftikod check /usr/share/naftikod/capabilities/stackrox-apitokenservice.yaml \
    >"$work/check.log" 2>&1 || fail "naftikod check of the bundled capability failed in the image"
run "$c" -- /usr/bin/id -u >"$work/id" 2>&1 && [ "$(cat "$work/id")" = 10001 ] ||
    fail "buildah run --user 10001:10001 did not run as 10001: $(cat "$work/id")"

# 4. A short serve with the image's own configuration file: the secrets mounted as files the
#    way the kubelet lays them (root-owned, group 10001, 0440, in a directory of group 10001),
#    the listeners moved to loopback port 0 by the environment (which beats the file), against
#    the Central double over TLS with its CA mounted.
nk_start_double
sec="$work/secrets"
mkdir -p "$sec/naftikod" "$sec/ca" "$work/out"
printf 'Bearer %s\n' "$KEY" >"$sec/naftikod/stackrox-api-key"
printf 'image-test-caller-token-not-a-secret\n' |
    run "$c" -- /usr/bin/naftikod hash-token ci >"$sec/naftikod/callers" 2>"$work/hash.log" ||
    fail "naftikod hash-token in the image"
cp "$work/central.crt" "$sec/ca/ca.crt"
chown -R 0:10001 "$sec"
chmod 0750 "$sec" "$sec/naftikod" "$sec/ca"
chmod 0440 "$sec"/naftikod/* "$sec/ca/ca.crt"
chown 10001:10001 "$work/out"
timeout 60 buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs \
    run --isolation chroot --user 10001:10001 -v "$sec/naftikod:/run/secrets/naftikod:ro" -v "$sec/ca:/run/secrets/central-ca:ro" \
    -v "$work/out:/run/out" \
    -e CENTRAL_HOST="127.0.0.1:$CPORT" -e NAFTIKOD_CA_FILE=/run/secrets/central-ca/ca.crt \
    -e STACKROX_API_KEY_FILE=/run/secrets/naftikod/stackrox-api-key \
    -e NAFTIKOD_REST_LISTEN=127.0.0.1:0 -e NAFTIKOD_MCP_LISTEN=127.0.0.1:0 \
    -e NAFTIKOD_OPS_LISTEN=127.0.0.1:0 \
    "$c" -- /usr/bin/naftikod serve --config /etc/naftikod/naftikod.yaml \
    --port-file /run/out/ports >"$work/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
wait_file "$work/out/ports" "$serve_pid" || fail "naftikod serve in the image did not start"
cp "$work/out/ports" "$work/image.ports"
nk_ports image
s=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' \
    -H 'Authorization: Bearer image-test-caller-token-not-a-secret' "$REST/v1/v1/apitokens") || true
[ "$s" = 200 ] || fail "REST call through the image's daemon answered $s, not 200"
grep -q '"level":"info"' "$work/serve.log" || fail "the image's log-format json was not applied"
run "$c" -- /usr/bin/naftikod probe "$OPS/readyz" >"$work/probe.log" 2>&1 ||
    fail "naftikod probe $OPS/readyz in the image failed"
daemon=""
for p in $(descendants "$serve_pid"); do
    [ "$(ps -o comm= -p "$p" 2>/dev/null)" = naftikod ] && daemon=$p
done
[ -n "$daemon" ] || fail "no naftikod process under buildah run"
[ "$(ps -o uid= -p "$daemon" | tr -d ' ')" = 10001 ] || fail "the image's naftikod does not run as uid 10001"
kill -TERM "$daemon"
for _ in $(seq 200); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$serve_pid" 2>/dev/null && fail "naftikod serve in the image did not stop on SIGTERM"
st=0
wait "$serve_pid" || st=$?
[ "$st" = 0 ] || fail "naftikod serve in the image exited $st after SIGTERM"
t_all=$(($(date +%s) - start))
pass "image built without a registry (base ${t_base}s, bud ${t_bud}s, all ${t_all}s); as uid 10001: --version, check, serve answered REST 200 via Central's CA, probe /readyz ok"
