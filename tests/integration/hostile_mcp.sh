#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hostile_mcp.sh: issue 17's MCP items against the real daemon and the Central double: text cut
# mid-character (item 7), duplicate keys (14), notifications/cancelled over HTTP and stdio (15),
# the mcp-stdio scheme warning (16), OAuth discovery paths (17), sessions bound to the caller and
# engine log lines in the log format (18).
#
# usage: hostile_mcp.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init hostile-mcp
nk_start_double
ALICE="alice-token-not-a-secret-1234"
BOB="bob-token-not-a-secret-56789"
{ printf '%s\n' "$ALICE" | "$NAFTIKOD" hash-token alice
  printf '%s\n' "$BOB" | "$NAFTIKOD" hash-token bob; } >"$work/tokens" || fail "hash-token"
LIST=getapitokens-returns-all-api-tokens
GEN=generatetoken-generates-api-token-given
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')

call() { # call [curl args...]: STATUS, body in $work/body, headers in $work/headers
    STATUS=$(curl -sS --max-time 20 -o "$work/body" -D "$work/headers" -w '%{http_code}' "$@") ||
        fail "curl $* failed"
}
# session TOKEN: initialize (2025-03-26, batches allowed) and print the session id
session() {
    curl -sS --max-time 10 -D - -o /dev/null -X POST "$MCP" "${H[@]}" \
        -H "Authorization: Bearer $1" -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' |
        tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p'
}
post() { # post TOKEN SID BODY [curl args]
    local tok=$1 sid=$2 body=$3
    shift 3
    call -X POST "$MCP" "${H[@]}" -H "Authorization: Bearer $tok" -H "Mcp-Session-Id: $sid" \
        -H 'MCP-Protocol-Version: 2025-03-26' "$@" --data-binary "$body"
}

nk_serve main "$CAP" --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    --mcp-auth token --rest-auth token --auth-tokens "$work/tokens" --ops-listen 127.0.0.1:0
OPS_PORT=$(sed -n 's/^ops=//p' "$work/main.ports")
SID=$(session "$ALICE")
[ -n "$SID" ] || fail "no session id"

# ---- item 17: OAuth discovery paths answer 404 before authentication -----------------------
base=${MCP%/mcp}
for p in /.well-known/oauth-protected-resource /.well-known/oauth-protected-resource/mcp \
    /.well-known/oauth-authorization-server /.well-known/openid-configuration; do
    call "$base$p"
    [ "$STATUS" = 404 ] || fail "GET $p without a token: $STATUS, want 404"
    jq -e '.error == "not_found"' "$work/body" >/dev/null || fail "GET $p: body $(cat "$work/body")"
done
call -X POST "$base/register" "${H[@]}" -d '{"redirect_uris":["http://localhost/cb"]}'
[ "$STATUS" = 404 ] || fail "POST /register without a token: $STATUS, want 404"
call -X POST "$MCP" "${H[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"ping"}'
[ "$STATUS" = 401 ] || fail "/mcp without a token: $STATUS, want 401"
tr -d '\r' <"$work/headers" | grep -qi '^www-authenticate: Bearer' || fail "/mcp 401 without a Bearer challenge"
pass "OAuth discovery and registration paths: 404 without a token; /mcp still 401 + Bearer"

# ---- item 18a: a session belongs to the caller that opened it ------------------------------
PING='{"jsonrpc":"2.0","id":2,"method":"ping"}'
post "$BOB" "$SID" "$PING"
[ "$STATUS" = 404 ] || fail "bob used alice's session: $STATUS, want 404"
call -X DELETE "$MCP" -H "Authorization: Bearer $BOB" -H "Mcp-Session-Id: $SID"
[ "$STATUS" = 404 ] || fail "bob deleted alice's session: $STATUS, want 404"
post "$ALICE" "$SID" "$PING"
[ "$STATUS" = 200 ] || fail "alice's session after bob's attempts: $STATUS"
pass "session ids are bound to the caller: 404 for another caller's POST and DELETE"

# ---- item 14: duplicate keys run nothing ---------------------------------------------------
nk_requests >"$work/before.json"
post "$ALICE" "$SID" "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\",\"name\":\"$GEN\",\"arguments\":{\"name\":\"dup\"}}}"
[ "$STATUS" = 400 ] || fail "duplicate name: HTTP $STATUS, want 400"
jq -e '.error.code == -32700' "$work/body" >/dev/null || fail "duplicate name: $(cat "$work/body")"
nk_requests >"$work/after.json"
[ "$(jq length "$work/before.json")" = "$(jq length "$work/after.json")" ] ||
    fail "a tools/call with a duplicate key reached Central"
pass "duplicate keys: -32700, nothing reaches Central"

# ---- item 7: text cut mid-character --------------------------------------------------------
E400=$(printf 'é%.0s' $(seq 400))
post "$ALICE" "$SID" "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"$E400\"}}"
[ "$STATUS" = 200 ] || fail "unknown tool é×400: HTTP $STATUS"
jq -e '.error.code == -32602 and (.error.message|startswith("Unknown tool: éé"))' "$work/body" >/dev/null ||
    fail "unknown tool é×400: $(head -c 300 "$work/body")"
E40=$(printf 'é%.0s' $(seq 40))
post "$ALICE" "$SID" "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\",\"arguments\":{\"revoked\":\"$E40\"}}}"
[ "$STATUS" = 200 ] || fail "revoked é×40: HTTP $STATUS"
jq -e '.result.isError == true and (.result.content[0].text|test("revoked"))' "$work/body" >/dev/null ||
    fail "revoked é×40: $(head -c 300 "$work/body")"
post "$ALICE" "$SID" "[{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"$GEN\",\"arguments\":{\"body\":{\"name\":\"lost-token\",\"roles\":[\"Analyst\"]}}}},{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"$E400\"}}]"
[ "$STATUS" = 200 ] || fail "batch with a minted token: HTTP $STATUS"
jq -e 'length == 2 and (.[] | select(.id == 6) | .result.isError != true) and (.[] | select(.id == 7) | .error.code == -32602)' \
    "$work/body" >/dev/null || fail "batch: $(head -c 400 "$work/body")"
jq -e '.[] | select(.id == 6) | .result.structuredContent.token | length > 0' "$work/body" >/dev/null ||
    fail "batch: the minted token is not in the answer"
# The same argument through REST: the problem keeps its detail.
call -H "Authorization: Bearer $ALICE" "$REST/v1/v1/apitokens?revoked=$(printf '%%C3%%A9%.0s' $(seq 40))"
[ "$STATUS" = 400 ] || fail "REST revoked é×40: HTTP $STATUS"
jq -e '.detail | test("revoked.*é+\\.\\.\\.")' "$work/body" >/dev/null ||
    fail "REST revoked é×40: $(head -c 300 "$work/body")"
pass "UTF-8 cut on character boundaries: well-formed answers; the minted token survives its batch"

# ---- item 15: notifications/cancelled over HTTP --------------------------------------------
nk_fault '{"mode":"stall","ms":30000,"count":1}'
n0=$(nk_requests | jq "map(.seq) | max // 0")
curl -sS --max-time 20 -o "$work/cancelled.body" -w '%{http_code}' -X POST "$MCP" "${H[@]}" \
    -H "Authorization: Bearer $ALICE" -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-03-26' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\"}}" \
    >"$work/cancelled.status" 2>&1 &
bg=$!
stalled() { [ "$(nk_requests | jq "map(.seq) | max // 0")" -gt "$n0" ]; }
wait_until stalled || fail "the call did not reach Central"
post "$ALICE" "$SID" '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8,"reason":"test"}}'
[ "$STATUS" = 202 ] || fail "notifications/cancelled: HTTP $STATUS"
# Without the abort the answer would come only after the 30 s stall (curl gives up at 20 s).
wait "$bg" || fail "the cancelled request was not answered while Central still stalled"
[ "$(cat "$work/cancelled.status")" = 202 ] || fail "the cancelled request: HTTP $(cat "$work/cancelled.status")"
[ ! -s "$work/cancelled.body" ] || fail "the cancelled request got a body: $(head -c 300 "$work/cancelled.body")"
inflight() { curl -sS --max-time 5 "http://127.0.0.1:$OPS_PORT/metrics" | grep '^naftikod_inflight_requests' | awk '$2 != 0 {b=1} END {exit b}'; }
wait_until inflight || fail "requests still in flight after the cancellation"
nk_fault '{"mode":"none"}'
post "$ALICE" "$SID" "$PING"
[ "$STATUS" = 200 ] || fail "ping after the cancellation: $STATUS"
pass "notifications/cancelled (HTTP): no response for the request, upstream call aborted, daemon healthy"

# 2026-07-28 over HTTP: a client cancels by closing the request's stream.
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
nk_fault '{"mode":"stall","ms":30000,"count":1}'
n0=$(nk_requests | jq "map(.seq) | max // 0")
curl -sS --max-time 20 -o /dev/null -X POST "$MCP" "${H[@]}" -H "Authorization: Bearer $ALICE" \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H "Mcp-Name: $LIST" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\",$META}}" \
    2>/dev/null &
bg=$!
wait_until stalled || fail "the stateless call did not reach Central"
kill "$bg"
wait "$bg" 2>/dev/null || true
# Without the abort the request would stay in flight for the rest of the 30 s stall.
wait_until inflight || fail "a closed stateless request is still in flight (its upstream call was not aborted)"
nk_fault '{"mode":"none"}'
post "$ALICE" "$SID" "$PING"
[ "$STATUS" = 200 ] || fail "ping after the closed stream: $STATUS"
pass "2026-07-28: a closed request stream aborts its upstream call"
nk_stop

# ---- item 18b: MCP log lines follow --log-format json -----------------------------------------
# Since issue 13 the session key file is read at start-up: a missing one stops it with an error
# line in the log format in force (it used to be logged on the first MCP request).
st=0
env -u STACKROX_API_KEY_FILE -u CREDENTIALS_DIRECTORY "STACKROX_API_KEY=Bearer $KEY" \
    NAFTIKOD_MCP_SESSION_KEY_FILE=/nonexistent/key timeout 20 "$NAFTIKOD" serve \
    --rest-port 0 --mcp-port 0 "$CAP" --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --log-format json --ops-listen off 2>"$work/logs.log" || st=$?
[ "$st" = 1 ] || fail "logs: a missing session key file: exit $st, want 1"
grep -q 'the MCP session key: cannot read' "$work/logs.log" || fail "no mcp log line"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$work/logs.log" ||
    fail "a log line is not JSON under --log-format json"
pass "mcp: lines follow --log-format json"

# ---- items 15 and 16: mcp-stdio ------------------------------------------------------------
stdio() { # stdio KEYVALUE: run mcp-stdio on $work/in, stdout to $work/out, stderr to $work/err
    env -u STACKROX_API_KEY_FILE "STACKROX_API_KEY=$1" "CENTRAL_HOST=127.0.0.1:$CPORT" \
        timeout 25 "$NAFTIKOD" mcp-stdio --ca-file "$work/central.crt" "$CAP" \
        <"$work/in" >"$work/out" 2>"$work/err"
}
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' >"$work/in"
stdio "Bearer $KEY" || fail "mcp-stdio exited $?"
! grep -q 'has no scheme' "$work/err" || fail "mcp-stdio warned although the value is 'Bearer ...': $(cat "$work/err")"
stdio "$KEY" || fail "mcp-stdio exited $?"
[ "$(grep -c 'has no scheme' "$work/err")" = 1 ] || fail "mcp-stdio: want one scheme warning for a bare key: $(cat "$work/err")"
! grep -q "$KEY" "$work/err" || fail "mcp-stdio logged the key"
pass "mcp-stdio judges the resolved Authorization value (silent for 'Bearer ...', one warning for a bare key)"

nk_fault '{"mode":"stall","ms":60000,"count":1}'
n0=$(nk_requests | jq "map(.seq) | max // 0")
mkfifo "$work/fifo"
env -u STACKROX_API_KEY_FILE "STACKROX_API_KEY=Bearer $KEY" "CENTRAL_HOST=127.0.0.1:$CPORT" \
    timeout 25 "$NAFTIKOD" mcp-stdio --ca-file "$work/central.crt" "$CAP" \
    <"$work/fifo" >"$work/out" 2>"$work/err" &
sp=$!
pids+=("$sp")
exec 7>"$work/fifo"
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' >&7
printf '%s\n' "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\"}}" >&7
reached() { [ "$(nk_requests | jq "map(.seq) | max // 0")" -gt "$n0" ]; }
wait_until reached || fail "stdio: the call did not reach Central"
printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}' >&7
printf '%s\n' '{"jsonrpc":"2.0","id":3,"method":"ping"}' >&7
exec 7>&-
# End of input waits for calls in flight: it ends now only because the call was aborted
# (the stall lasts 60 s, timeout kills at 25 s).
st=0
wait "$sp" || st=$?
[ "$st" = 0 ] || fail "mcp-stdio exited $st (124: the cancelled call was not aborted)"
jq -e -s 'map(.id) == [1, 3]' "$work/out" >/dev/null || fail "stdio answers: $(cat "$work/out")"
pass "notifications/cancelled (stdio): no response for the request, upstream call aborted"
