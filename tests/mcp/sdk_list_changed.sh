#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sdk_list_changed.sh: the official TypeScript SDK client (tests/mcp/sdk_list_changed.mjs) opens
# its session's GET stream on `naftikod serve`; a SIGHUP with one more tool in the capability
# sends notifications/tools/list_changed on it, and the client lists the new tool.
# Install the tools first: tests/mcp/install.sh        Exit 77: tools or binaries missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need_npm
start_central
[ -x "${NK_NAFTIKOD:-}" ] || skip "no naftikod binary"
daemon_env
cp "$capability" "$tmp/cap.yaml"
"$NK_NAFTIKOD" serve --mcp-port 0 --rest-port 0 --ops-listen off --port-file "$tmp/daemon.port" \
    "${daemon_opts[@]}" "$tmp/cap.yaml" >"$tmp/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
wait_file "$tmp/daemon.port" "$daemon" || { cat "$tmp/daemon.log"; echo "naftikod serve did not start"; exit 1; }
url="http://127.0.0.1:$(sed -n 's/^mcp=//p' "$tmp/daemon.port" | head -n1)/mcp"

cp "$here/sdk_list_changed.mjs" "$prefix/sdk_list_changed.mjs"
"$node" "$prefix/sdk_list_changed.mjs" "$url" getapitoken-second-name >"$tmp/client.out" 2>&1 &
client=$!
# The client is connected and its GET stream is open (the access line of a 200 GET).
for _ in $(seq 1 600); do
    grep -q '^connected' "$tmp/client.out" && grep -q 'access GET /mcp 200' "$tmp/daemon.log" && break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.05
done
grep -q '^connected' "$tmp/client.out" || { cat "$tmp/client.out"; echo "the SDK client did not connect"; exit 1; }
grep -q 'access GET /mcp 200' "$tmp/daemon.log" || { echo "the SDK client opened no GET stream"; exit 1; }
{
    printf '\n'
    # a tool entry of the MCP adapter (the last one), shared with integration.mcp.list_changed
    sed 's/NAME/getapitoken-second-name/' "$here/../data/mcp/extra-tool.yaml"
} >>"$tmp/cap.yaml"
kill -HUP "$daemon"
st=0
wait "$client" || st=$?
cat "$tmp/client.out"
[ "$st" = 0 ] || { tail -n 20 "$tmp/daemon.log"; exit 1; }
