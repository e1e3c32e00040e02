#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sdk_client.sh: the official TypeScript SDK client (tests/mcp/sdk_client.mjs) against naftikod
# and the Central double, over Streamable HTTP (`naftikod serve`) or stdio (`naftikod mcp-stdio`).
# Install the tools first: tests/mcp/install.sh
# Usage: tests/mcp/sdk_client.sh http|stdio      Exit 77: tools or binaries missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mode=${1:?usage: sdk_client.sh http|stdio}
need_npm
start_central
# ESM resolves packages next to the script: run a copy inside the prefix.
cp "$here/sdk_client.mjs" "$prefix/sdk_client.mjs"
if [ "$mode" = http ]; then
    start_daemon
    "$node" "$prefix/sdk_client.mjs" http "$url"
else
    [ -x "${NK_NAFTIKOD:-}" ] || skip "no naftikod binary"
    daemon_env
    "$node" "$prefix/sdk_client.mjs" stdio "$NK_NAFTIKOD" mcp-stdio "${daemon_opts[@]}" "$capability"
fi
