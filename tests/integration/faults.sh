#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# faults.sh: upstream faults against the real `naftikod serve`, optionally under valgrind. Each
# fault must give its documented REST status (an RFC 9457 problem) and an MCP tool result with
# isError, leave nothing in flight, and let later calls succeed; every daemon started here must
# then stop cleanly on SIGTERM (exit 0; under valgrind also no memory error and no definite
# leak). Faults: a reset connection, a 10 s stall, a 64 MiB body, invalid JSON, an HTML error
# page, TLS with the wrong CA, DNS failure, connection refused; and SIGTERM while calls are
# stalled, with a drain shorter than the stall.
#
# usage: faults.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR [VALGRIND]
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
VALGRIND=${4:-}
nk_init faults
nk_cert central
nk_cert other
nk_start_double

# start NAME HOST CAFILE [ARG...]: a daemon; sets NK_PID REST MCP OPS.
start() {
    local name=$1 host=$2 ca=$3 cmd=("$NAFTIKOD")
    shift 3
    if [ -n "$VALGRIND" ]; then
        cmd=("$VALGRIND" -q --error-exitcode=99 --leak-check=full
             --errors-for-leak-kinds=definite --show-leak-kinds=definite "$NAFTIKOD")
    fi
    STACKROX_API_KEY="Bearer $KEY" "${cmd[@]}" serve "$CAP" --rest-port 0 --mcp-port 0 \
        --ops-listen 127.0.0.1:0 --timeout 6000 --connect-timeout 6000 \
        --var "central-host=$host" --ca-file "$ca" --port-file "$work/$name.ports" "$@" \
        2>"$work/nk-$name.log" &
    NK_PID=$!
    pids+=("$NK_PID")
    wait_file "$work/$name.ports" "$NK_PID" || fail "$name: naftikod did not start"
    REST="http://127.0.0.1:$(sed -n 's/^rest=//p' "$work/$name.ports")"
    MCP="http://127.0.0.1:$(sed -n 's/^mcp=//p' "$work/$name.ports")/mcp"
    OPS="http://127.0.0.1:$(sed -n 's/^ops=//p' "$work/$name.ports")"
}
# stop NAME: SIGTERM, exit 0 (valgrind: 99 on a memory error or definite leak).
stop() {
    local rc=0
    kill -TERM "$NK_PID"
    wait "$NK_PID" || rc=$?
    [ "$rc" = 0 ] || fail "$1: exit status $rc after SIGTERM (99: valgrind found an error)"
    echo "ok: $1 stopped cleanly${VALGRIND:+ (valgrind: no memory error, no definite leak)}"
}
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call'
    -H 'Mcp-Name: getapitokens-returns-all-api-tokens')
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
CALL="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"getapitokens-returns-all-api-tokens\",\"arguments\":{},$META}}"
touch "$work/all-bodies"

# check WHAT STATUS REGEX: REST answers STATUS with a problem whose detail matches REGEX, and
# the MCP tool result is an error whose text matches REGEX.
check() {
    local what=$1 want=$2 re=$3 s
    s=$(curl -sS --max-time 30 -o "$work/body" -D "$work/headers" -w '%{http_code}' \
        "$REST/v1/v1/apitokens") || fail "$what: REST connection failed"
    cat "$work/body" >>"$work/all-bodies"
    [ "$s" = "$want" ] || fail "$what: REST expected $want, got $s"
    tr -d '\r' <"$work/headers" | grep -qi '^content-type: application/problem+json' ||
        fail "$what: REST answer is not a problem document"
    jq -e --argjson s "$want" --arg re "$re" '.status == $s and (.detail|test($re))' \
        "$work/body" >/dev/null || fail "$what: REST problem detail does not match /$re/"
    s=$(curl -sS --max-time 30 -o "$work/body" -w '%{http_code}' -X POST "$MCP" "${MH[@]}" \
        -d "$CALL") || fail "$what: MCP connection failed"
    cat "$work/body" >>"$work/all-bodies"
    [ "$s" = 200 ] || fail "$what: MCP expected HTTP 200, got $s"
    jq -e --arg re "$re" '.result.isError == true and (.result.content[0].text|test($re))' \
        "$work/body" >/dev/null || fail "$what: MCP result is not an isError matching /$re/"
    echo "ok: $what -> REST $want, MCP isError: $(jq -r '.result.content[0].text' "$work/body" | head -c 120)"
}
healthy() {
    local s
    s=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens") ||
        fail "$1: REST unreachable afterwards"
    [ "$s" = 200 ] || fail "$1: a normal call answered $s afterwards"
}
idle() {
    curl -sS --max-time 10 "$OPS/metrics" | grep '^naftikod_inflight_requests' |
        awk '$2 != 0 {bad=1} END {exit bad}' || fail "$1: requests still in flight"
}

start main "127.0.0.1:$CPORT" "$work/central.crt"
healthy "start"
nk_fault '{"mode":"reset"}'
check "connection reset, no response" 502 "unreachable|reset|empty reply"
nk_fault '{"mode":"stall","seconds":10}'

check "10 s stall (timeout 6 s)" 504 "timed out"
nk_fault '{"mode":"huge"}'
check "64 MiB body (limit 16 MiB)" 502 "too large"
nk_fault '{"mode":"invalid-json"}'
check "invalid JSON" 502 "not JSON"
nk_fault '{"mode":"html-error"}'
check "HTML error page" 502 "502 Bad Gateway"
nk_fault '{"mode":"none"}'
healthy "after the faults"
idle "after the faults"
MAIN_PID=$NK_PID MAIN_REST=$REST MAIN_MCP=$MCP MAIN_OPS=$OPS

start wrongca "127.0.0.1:$CPORT" "$work/other.crt"
check "TLS with the wrong CA" 502 "certificate|TLS"
stop wrongca
start dns "no-such-host.invalid:443" "$work/central.crt"
check "DNS failure" 502 "resolve"
stop dns

# SIGTERM while calls are stalled upstream, with a drain shorter than the stall: the upstream
# client stops, so the REST call gets 502 "upstream unreachable: shutting down" as a problem
# document and the MCP call a tool result with isError saying the same, and the process exits 0
# soon after the drain timeout (not after the stall).
start drain "127.0.0.1:$CPORT" "$work/central.crt" --drain-timeout 300
nk_fault '{"mode":"stall","seconds":60}'
curl -sS --max-time 20 -o "$work/drain-rest.body" -w '%{http_code}' "$REST/v1/v1/apitokens" \
    >"$work/drain-rest.code" 2>/dev/null &
drain_rest=$!
curl -sS --max-time 20 -o "$work/drain-mcp.body" -w '%{http_code}' "${MH[@]}" -d "$CALL" "$MCP" \
    >"$work/drain-mcp.code" 2>/dev/null &
drain_mcp=$!
for _ in $(seq 200); do
    n=$(curl -sS --max-time 5 "$OPS/metrics" | awk '$1 ~ /^naftikod_inflight_requests/ {s += $2} END {print s + 0}')
    [ "${n:-0}" = 2 ] && break
    sleep 0.05
done
[ "${n:-0}" = 2 ] || fail "drain: the two calls never reached the upstream (in flight: ${n:-none})"
t0=$(date +%s%N)
stop drain
t1=$(date +%s%N)
wait "$drain_rest" "$drain_mcp" || true
[ "$(cat "$work/drain-rest.code")" = 502 ] ||
    fail "drain: REST call got $(cat "$work/drain-rest.code"), want 502"
jq -e '.status == 502 and .detail == "upstream unreachable: shutting down"' \
    "$work/drain-rest.body" >/dev/null ||
    fail "drain: REST body is not the shutting-down problem: $(cat "$work/drain-rest.body")"
[ "$(cat "$work/drain-mcp.code")" = 200 ] ||
    fail "drain: MCP call got HTTP $(cat "$work/drain-mcp.code"), want 200"
jq -e '.result.isError == true and (.result.content[0].text | test("shutting down"))' \
    "$work/drain-mcp.body" >/dev/null ||
    fail "drain: MCP result is not the shutting-down error: $(cat "$work/drain-mcp.body")"
# Not a speed check: the stall lasts 60 s, so an exit within half of it (under valgrind on a
# busy machine too) shows the drain ended the wait, not the stall.
[ $(((t1 - t0) / 1000000)) -lt 30000 ] ||
    fail "drain: exit took $(((t1 - t0) / 1000000)) ms: it waited for the 60 s stall, not the 300 ms drain"
cat "$work/drain-rest.body" "$work/drain-mcp.body" >>"$work/all-bodies"
grep -q "drain timeout: 2 request(s)" "$work/nk-drain.log" || fail "drain: no drain-timeout line"
echo "ok: SIGTERM during a stall: drain timeout after 300 ms, REST 502 and MCP isError (shutting down), exit 0"
nk_fault '{"mode":"none"}'

NK_PID=$MAIN_PID REST=$MAIN_REST MCP=$MAIN_MCP OPS=$MAIN_OPS
kill "$DOUBLE_PID"
wait "$DOUBLE_PID" 2>/dev/null || true
check "connection refused" 502 "connection refused"
idle "after refused"
stop main

if grep -aq "$KEY" "$work/all-bodies" "$work"/nk-*.log; then
    fail "the test key appears in a response or a log line"
fi
echo "ok: the test key appears in no response and no log line"
