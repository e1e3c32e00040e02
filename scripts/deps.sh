#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deps.sh: install the Debian 12 packages naftikod builds, runs and tests with (as root, or via
# sudo). With --test also the test-only packages and the npm tools the suite drives.
set -euo pipefail
cd "$(dirname "$0")/.."

runtime=(build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libyaml-dev
         libjansson-dev libssl-dev curl ca-certificates openssl python3)
testing=(libcmocka-dev clang libclang-rt-14-dev clang-format valgrind jq systemd groff-base man-db
         util-linux nginx-light iproute2)
# Node.js and npm drive the protocol tests; take Debian's only when the machine has none.
if ! command -v npm >/dev/null 2>&1; then
    testing+=(nodejs npm)
fi
# kubectl renders deploy/overlays (kubectl kustomize); Debian's is kubernetes-client (1.20).
if ! command -v kubectl >/dev/null 2>&1; then
    testing+=(kubernetes-client)
fi

want=("${runtime[@]}")
if [ "${1:-}" = "--test" ]; then
    want+=("${testing[@]}")
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# CI always refreshes the package lists and installs (a clean machine has none of them).
if [ ${#missing[@]} -gt 0 ] || [ "${CI:-}" = "true" ]; then
    echo "deps: installing ${missing[*]:-(refreshing)}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
    # npm tools for the protocol tests, pinned in tests/npm/package.json, kept under build/npm.
    if [ -f tests/npm/package.json ]; then
        mkdir -p build/npm
        cp tests/npm/package.json build/npm/package.json
        if [ -f tests/npm/package-lock.json ]; then
            cp tests/npm/package-lock.json build/npm/package-lock.json
        fi
        (cd build/npm && npm install --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    # Node 22, the MCP conformance suite and the official SDK, under build/mcp-npm.
    tests/mcp/install.sh >/dev/null
fi
