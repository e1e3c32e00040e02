#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hostile_limits.sh: resource limits against hostile clients (issue 17, items 3, 4, 5, 11):
#   descriptors  with the descriptor limit at 1,024 (soft and hard), 1,100 idle connections over
#                REST and MCP neither flood the log nor stop the daemon from serving REST and
#                MCP again once they close;
#   ops          100 slowloris connections from one address leave /healthz answering others;
#   batches      a JSON-RPC batch pays one --rate-limit token per tools/call: calls beyond the
#                bucket get -32000 and never reach Central; a batch over --mcp-max-batch is
#                refused whole;
#   buckets      127.0.0.144 does not share 127.0.0.1's rate bucket.
#
# usage: hostile_limits.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init hostile-limits limits
HOLD="$(dirname "$0")/hold_conns.py"
nk_start_double
COMMON=("$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt")
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'

rest_ok() {
    [ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$@" "$REST/v1/v1/apitokens")" = 200 ]
}
mcp_list_ok() {
    curl -sS --max-time 5 -o "$work/body" -X POST "$MCP" "${MH[@]}" \
        -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{$META}}" &&
        jq -e '.result.tools | length > 0' "$work/body" >/dev/null
}
thrice() { "$@" || { sleep 0.5 && "$@"; } || { sleep 0.5 && "$@"; }; }
# Upstream requests the double recorded with X-Request-Id $1.
recorded() {
    nk_requests | jq --arg id "$1" \
        '[.[] | select(any(.headers[]; (.[0]|ascii_downcase) == "x-request-id" and .[1] == $id))] | length'
}

# --- descriptors: 1,100 idle connections under a limit of 1,024 -------------------------------
nk_serve_nofile fd 1024 "${COMMON[@]}"
grep -q 'descriptor limit 1024: open connections lowered' "$work/fd.log" ||
    fail "descriptors: no start-up line saying the connection limits were lowered to fit"
rport=${REST##*:}
mport=${MCP##*:}
mport=${mport%/mcp}
before=$(wc -l <"$work/fd.log")
# REST first, until it holds all it takes; then MCP, which (before the limits were fitted to the
# descriptor limit) found no descriptor left with no connection of its own and spun on accept.
python3 "$HOLD" --hold 30 --ready "$work/fd.ready" --stop "$work/fd.stop" "127.0.0.1:$rport:1050" &
hold_pid=$!
pids+=("$hold_pid")
wait_file "$work/fd.ready" "$hold_pid" || fail "descriptors: could not open the REST connections"
sleep 1
python3 "$HOLD" --hold 30 --ready "$work/fd2.ready" --stop "$work/fd.stop" "127.0.0.1:$mport:50" &
hold2_pid=$!
pids+=("$hold2_pid")
wait_file "$work/fd2.ready" "$hold2_pid" || fail "descriptors: could not open the MCP connections"
sleep 1
# While they are held the MCP listener still has room: a request is answered.
mcp_list_ok || mcp_list_ok || fail "descriptors: MCP tools/list unanswered while 1,100 connections are held"
kill -0 "$NK_PID" 2>/dev/null || fail "descriptors: naftikod died under 1,100 connections"
touch "$work/fd.stop"
wait "$hold_pid" || true
wait "$hold2_pid" || true
after=$(wc -l <"$work/fd.log")
[ $((after - before)) -le 8 ] ||
    fail "descriptors: the log grew by $((after - before)) lines while the connections were held"
thrice rest_ok || fail "descriptors: REST does not serve again after the connections closed"
thrice mcp_list_ok || fail "descriptors: MCP tools/list fails after the connections closed"
pass "descriptors: 1,100 idle connections under ulimit -n 1024: log +$((after - before)) lines, REST and MCP serve again"
nk_stop "descriptors daemon"

# --- ops: slowloris from one address ----------------------------------------------------------
nk_serve ops "${COMMON[@]}" --ops-listen 127.0.0.1:0
[ -n "$OPS" ] || fail "ops: no ops port"
oport=${OPS##*:}
python3 "$HOLD" --source 127.0.0.2 --trickle 2 --hold 30 --ready "$work/ops.ready" \
    --stop "$work/ops.stop" "127.0.0.1:$oport:100" &
hold_pid=$!
pids+=("$hold_pid")
wait_file "$work/ops.ready" "$hold_pid" || fail "ops: could not open the slow connections"
sleep 1 # the listener has taken what it takes of them
code=$(curl -sS --max-time 5 -o "$work/body" -w '%{http_code}' "$OPS/healthz") ||
    fail "ops: /healthz unreachable while 100 slow connections from 127.0.0.2 are open"
[ "$code" = 200 ] || fail "ops: /healthz answered $code under slowloris"
touch "$work/ops.stop"
wait "$hold_pid" || true
pass "ops: /healthz answers 200 while 100 slowloris connections from one address are open"
nk_stop "ops daemon"

# --- batches and buckets under --rate-limit 1 --rate-burst 1 ----------------------------------
nk_serve rl "${COMMON[@]}" --ops-listen off --rate-limit 1 --rate-burst 1 --mcp-max-batch 20
# buckets: 127.0.0.144 hashed to 127.0.0.1's slot and shared its bucket
rest_ok || fail "buckets: the first request from 127.0.0.1 was refused"
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens")
[ "$code" = 429 ] || fail "buckets: the second request from 127.0.0.1 answered $code, not 429"
rest_ok --interface 127.0.0.144 || fail "buckets: 127.0.0.144 was limited by 127.0.0.1's bucket"
pass "buckets: 127.0.0.1 at 429 leaves 127.0.0.144 its own bucket"

# A session (initialize from another address: it costs that address's token).
curl -sS --max-time 10 --interface 127.0.0.6 -D "$work/headers" -o "$work/body" -X POST "$MCP" \
    "${MH[@]}" -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' ||
    fail "batches: initialize failed"
sid=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
[ -n "$sid" ] || fail "batches: no session id"
batch() { # batch N: N tools/call getapitokens
    jq -nc --argjson n "$1" '[range($n) | {jsonrpc:"2.0", id:., method:"tools/call", params:{name:"getapitokens-returns-all-api-tokens", arguments:{}}}]'
}
batch 10 >"$work/b10.json"
code=$(curl -sS --max-time 20 --interface 127.0.0.5 -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
    "${MH[@]}" -H 'MCP-Protocol-Version: 2025-03-26' -H "Mcp-Session-Id: $sid" \
    -H 'X-Request-Id: batch-ten' --data-binary @"$work/b10.json")
[ "$code" = 200 ] || fail "batches: a batch of 10 answered HTTP $code"
jq -e 'length == 10 and ([.[] | select(.error.code == -32000)] | length) == 9 and
       ([.[] | select(.error.code == -32000) | .error.message | test("rate limited, retry after [0-9]+ s")] | all) and
       ([.[] | select(.result)] | length) == 1' "$work/body" >/dev/null ||
    fail "batches: expected 1 result and 9 rate-limit errors (-32000) in the answer"
n=$(recorded batch-ten)
[ "$n" = 1 ] || fail "batches: a batch of 10 under --rate-limit 1 --rate-burst 1 made $n upstream calls, not 1"
batch 21 >"$work/b21.json"
code=$(curl -sS --max-time 20 --interface 127.0.0.7 -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
    "${MH[@]}" -H 'MCP-Protocol-Version: 2025-03-26' -H "Mcp-Session-Id: $sid" \
    -H 'X-Request-Id: batch-big' --data-binary @"$work/b21.json")
[ "$code" = 400 ] && jq -e '.error.code == -32600 and (.error.message | test("at most 20"))' \
    "$work/body" >/dev/null || fail "batches: a batch of 21 over --mcp-max-batch 20 answered $code, not 400 / -32600"
n=$(recorded batch-big)
[ "$n" = 0 ] || fail "batches: a refused batch still made $n upstream calls"
pass "batches: 10 calls under a 1-token bucket reach Central once (9 x -32000); 21 > --mcp-max-batch 20 is refused whole"
nk_stop "rate-limited daemon"
