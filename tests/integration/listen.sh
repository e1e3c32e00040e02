#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# listen.sh NAFTIKOD SRCDIR: --rest-listen / --mcp-listen (and their environment variables) put
# each adapter on the address and port given; malformed values are usage errors (exit 2); a
# non-loopback address without --allow-remote is refused (exit 1) before anything binds.
set -u
. "$(dirname "$0")/keep_logs.sh"
naftikod=$1
cap=$2/capabilities/stackrox-apitokenservice.yaml
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; nk_keep_logs "$tmp"; rm -rf "$tmp"' EXIT
export STACKROX_API_KEY="Bearer test-key-not-a-secret"
fail() { echo "listen: FAIL: $*"; exit 1; }

"$naftikod" serve --rest-listen nonsense --var central-host=127.0.0.1:1 "$cap" 2>"$tmp/err"
[ $? -eq 2 ] || fail "--rest-listen nonsense did not exit 2"
grep -q -- "--rest-listen: expected ADDR:PORT" "$tmp/err" || fail "no clear message: $(cat "$tmp/err")"
"$naftikod" serve --mcp-listen 127.0.0.1:70000 --var central-host=127.0.0.1:1 "$cap" 2>/dev/null
[ $? -eq 2 ] || fail "port 70000 did not exit 2"
"$naftikod" serve --rest-listen 10.1.2.3:0 --var central-host=127.0.0.1:1 "$cap" 2>"$tmp/err"
[ $? -eq 1 ] || fail "non-loopback without --allow-remote did not exit 1"
grep -q -- "--allow-remote" "$tmp/err" || fail "refusal does not say how to fix it"

NAFTIKOD_MCP_LISTEN=127.0.0.1:0 "$naftikod" serve --rest-listen '[::1]:0' \
    --var central-host=127.0.0.1:1 --port-file "$tmp/ports" "$cap" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/ports" ] && break; sleep 0.05; done
[ -s "$tmp/ports" ] || fail "daemon did not start: $(cat "$tmp/log")"
rest=$(sed -n 's/^rest=//p' "$tmp/ports"); mcp=$(sed -n 's/^mcp=//p' "$tmp/ports")
code=$(curl -s -o /dev/null -w '%{http_code}' "http://[::1]:$rest/openapi.json")
[ "$code" = 200 ] || fail "REST on [::1]:$rest answered $code"
grep -q "listening on http://\[::1\]:$rest/" "$tmp/log" || fail "REST not on [::1]"
grep -q "listening on http://127.0.0.1:$mcp/mcp" "$tmp/log" || fail "MCP not on 127.0.0.1"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$mcp/mcp" \
    -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}')
[ "$code" = 200 ] || fail "MCP initialize answered $code"
# The accept queue takes a burst of connects (ss shows a listener's backlog as Send-Q): the
# smaller of 4096 and the kernel's net.core.somaxconn, not a few dozen.
want=$(( $(cat /proc/sys/net/core/somaxconn) < 4096 ? $(cat /proc/sys/net/core/somaxconn) : 4096 ))
command -v ss >/dev/null || fail "no ss (iproute2; scripts/deps.sh installs it)"
q=$(ss -Hltn "sport = :$mcp" | awk '{print $3}' | head -n1)
[ "$q" = "$want" ] || fail "MCP listener backlog '$q', want $want"
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
[ $rc -eq 0 ] || fail "exit $rc after SIGTERM"
echo "listen: 1 passed, 0 failed"
