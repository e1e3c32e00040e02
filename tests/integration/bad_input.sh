#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bad_input.sh: the bad-input battery against the real `naftikod serve` (REST and MCP adapters)
# in front of the Central test double over TLS. Every case asserts its HTTP status (and JSON-RPC
# error code on MCP), then a normal request must still succeed; at the end neither any response
# body nor the daemon's log may contain the test key.
#
# usage: bad_input.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
n_cases=0
nk_init bad
nk_start_double
nk_serve nk "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt"
touch "$work/all-bodies"

# call WHAT [curl args...]: sets STATUS; body in $work/body (appended to all-bodies).
call() {
    local what=$1
    shift
    STATUS=$(curl -sS --path-as-is --max-time 20 -o "$work/body" -D "$work/headers" \
        -w '%{http_code}' "$@") || fail "$what: curl failed (connection dropped?)"
    cat "$work/body" >>"$work/all-bodies"
}
# After every case: the daemon is alive and a normal request on each adapter still works.
still_ok() {
    local what=$1 s
    kill -0 "$NK_PID" 2>/dev/null || fail "$what: naftikod died"
    s=$(curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "$REST/v1/v1/apitokens") ||
        fail "$what: REST unreachable afterwards"
    [ "$s" = 200 ] || fail "$what: a normal REST GET answered $s afterwards"
    s=$(curl -sS --max-time 20 -o "$work/ok" -w '%{http_code}' -X POST "$MCP" "${MH[@]}" \
        -H 'Mcp-Method: tools/list' -d "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{$META}}") ||
        fail "$what: MCP unreachable afterwards"
    [ "$s" = 200 ] && jq -e '.result.tools | length == 4' "$work/ok" >/dev/null ||
        fail "$what: a normal MCP tools/list failed afterwards ($s)"
    n_cases=$((n_cases + 1))
    echo "ok: $what"
}
expect() { # expect STATUS WHAT [jq filter on the body]
    [ "$STATUS" = "$1" ] || fail "$2: expected HTTP $1, got $STATUS"
    if [ -n "${3:-}" ]; then
        jq -e "$3" "$work/body" >/dev/null 2>&1 || fail "$2: body does not satisfy $3"
    fi
    still_ok "$2"
}
problem() { echo ".status == $1 and (.detail|type) == \"string\""; }
rpc_error() { echo ".jsonrpc == \"2.0\" and .error.code == $1"; }
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28')
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
# The double's record of the upstream requests that carried X-Request-Id $1.
recorded() {
    nk_requests |
        jq -c --arg id "$1" '[.[] | select(any(.headers[]; (.[0]|ascii_downcase) == "x-request-id" and .[1] == $id))]'
}
GEN="$REST/v1/v1/apitokens/generate"
JSON=(-H 'Content-Type: application/json')

# --- malformed JSON and non-object JSON-RPC messages
call "mcp malformed JSON" -X POST "$MCP" "${MH[@]}" -d '{"jsonrpc":'
expect 400 "mcp malformed JSON -> 400 / -32700" "$(rpc_error -32700)"
for m in '42' '"x"' 'null' 'true'; do
    call "mcp non-object $m" -X POST "$MCP" "${MH[@]}" -d "$m"
    expect 400 "mcp non-object $m -> 400 / -32600" "$(rpc_error -32600) and (.error.message|test(\"object\"))"
done
call "mcp empty batch" -X POST "$MCP" "${MH[@]}" -d '[]'
expect 400 "mcp [] -> 400 / -32600" "$(rpc_error -32600)"
call "mcp handshake-era malformed" -X POST "$MCP" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -d '{'
expect 400 "mcp malformed JSON without a version header -> 400 / -32700" "$(rpc_error -32700)"
call "rest malformed JSON" -X POST "$GEN" "${JSON[@]}" -d '{"name":'
expect 400 "rest malformed JSON -> 400 problem" "$(problem 400)"
call "rest non-object body" -X POST "$GEN" "${JSON[@]}" -d '42'
expect 400 "rest non-object JSON body -> 400 problem" "$(problem 400)"

# --- huge ids and deep nesting
python3 -c 'import sys; sys.stdout.write("{\"jsonrpc\":\"2.0\",\"id\":\"" + "a"*1000000 + "\",\"method\":\"ping\"}")' >"$work/bigid.json"
call "mcp 1 MB string id" -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: ping' --data-binary @"$work/bigid.json"
[ "$STATUS" -lt 500 ] || fail "1 MB id: HTTP $STATUS"
jq -e '.jsonrpc == "2.0" and (.error.code|type) == "number"' "$work/body" >/dev/null ||
    fail "1 MB id: not a JSON-RPC error"
still_ok "mcp 1 MB string id -> JSON-RPC error ($STATUS)"
call "mcp 400-digit id" -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: ping' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":$(printf '9%.0s' $(seq 400)),\"method\":\"ping\"}"
expect 400 "mcp 400-digit numeric id -> 400 / -32700 (not representable)" "$(rpc_error -32700)"
python3 -c 'import sys; sys.stdout.write("["*100000 + "]"*100000)' >"$work/deep.json"
call "rest 100k nesting" -X POST "$GEN" "${JSON[@]}" --data-binary @"$work/deep.json"
expect 400 "rest body nested 100,000 levels -> 400 problem" "$(problem 400)"
python3 -c 'import sys; sys.stdout.write("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":" + "["*100000 + "]"*100000 + "}}")' >"$work/deepm.json"
call "mcp 100k nesting" -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: ping' --data-binary @"$work/deepm.json"
expect 400 "mcp message nested 100,000 levels -> 400 / -32700" "$(rpc_error -32700)"

# --- invalid UTF-8 and NUL
printf '{"name":"\xff\xfe","roles":["Analyst"]}' >"$work/utf8.json"
call "rest invalid UTF-8" -X POST "$GEN" "${JSON[@]}" --data-binary @"$work/utf8.json"
expect 400 "rest invalid UTF-8 in a string -> 400 problem" "$(problem 400)"
call "rest escaped NUL" -X POST "$GEN" "${JSON[@]}" -d '{"name":"a\u0000b","roles":["Analyst"]}'
expect 400 "rest \\u0000 in a string -> 400 problem" "$(problem 400)"
printf '{"name":"a\x00b"}' >"$work/nul.json"
call "rest raw NUL" -X POST "$GEN" "${JSON[@]}" --data-binary @"$work/nul.json"
expect 400 "rest raw NUL byte in a string -> 400 problem" "$(problem 400)"
printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"getapitokens","arguments":{"revoked":"\xff"},%s}}' "$META" >"$work/mutf8.json"
call "mcp invalid UTF-8" -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: tools/call' \
    -H 'Mcp-Name: getapitokens' --data-binary @"$work/mutf8.json"
expect 400 "mcp invalid UTF-8 in arguments -> 400 / -32700" "$(rpc_error -32700)"
call "mcp escaped NUL" -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: tools/call' \
    -H 'Mcp-Name: getapitokens' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"getapitokens\",\"arguments\":{\"revoked\":\"a\\u0000\"},$META}}"
expect 400 "mcp \\u0000 in arguments -> 400 / -32700" "$(rpc_error -32700)"

# --- header injection and path traversal: one encoded segment, no extra header upstream
call "CRLF in id" -H 'X-Request-Id: bad-crlf' "$REST/v1/v1/apitokens/abc%0d%0aX-Injected:%201"
rec=$(recorded bad-crlf)
jq -e 'length == 1 and .[0].uri == "/v1/apitokens/abc%0D%0AX-Injected%3A%201" and
    ([.[0].headers[][0] | ascii_downcase] | index("x-injected") == null)' <<<"$rec" >/dev/null ||
    fail "CRLF in an id: upstream saw $rec"
expect 400 "CR/LF in an id -> one encoded segment, no injected header, Central's 400"
call "CRLF in query" -H 'X-Request-Id: bad-crlfq' "$REST/v1/v1/apitokens?revoked=true%0d%0aX-Injected:%201"
[ "$(recorded bad-crlfq | jq length)" = 0 ] || fail "CR/LF in a boolean query value reached Central"
expect 400 "CR/LF in a query value -> 400 naming the parameter, nothing sent" \
    "$(problem 400) and (.detail|test(\"revoked\"))"
call "traversal" -H 'X-Request-Id: bad-trav' "$REST/v1/v1/apitokens/..%2F..%2Fadmin"
rec=$(recorded bad-trav)
jq -e 'length == 1 and .[0].uri == "/v1/apitokens/..%2F..%2Fadmin"' <<<"$rec" >/dev/null ||
    fail "traversal: upstream saw $rec"
expect 400 "path traversal in an id -> one encoded segment"
call "raw dot segments" "$REST/v1/v1/apitokens/../../admin"
[ "$STATUS" = 404 ] || [ "$STATUS" = 400 ] || fail "raw ../ in the path: HTTP $STATUS"
still_ok "raw ../ in the path -> $STATUS, never routed upstream"

# --- query parameters
call "duplicate query" "$REST/v1/v1/apitokens?revoked=true&revoked=false"
expect 400 "duplicate query parameter -> 400 naming it" "$(problem 400) and (.detail|test(\"revoked\"))"
call "unknown query" "$REST/v1/v1/apitokens?foo=1&revoked=false"
expect 200 "unknown query parameter -> ignored (documented)" '.tokens|type == "array"'

# --- sizes
head -c 2000000 /dev/zero | tr '\0' 'a' >"$work/big"
call "oversized body" -X POST "$GEN" "${JSON[@]}" --data-binary @"$work/big"
expect 413 "body over --max-body -> 413 problem" "$(problem 413)"
call "oversized MCP body" -X POST "$MCP" "${MH[@]}" --data-binary @"$work/big"
expect 413 "MCP body over --max-body -> 413"
call "oversized header" -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' 'a')" "$REST/v1/v1/apitokens"
expect 431 "a 100 KB header -> 431 (libmicrohttpd's own answer)"

# --- content types and methods
call "wrong content type" -X POST "$GEN" -H 'Content-Type: text/plain' -d '{"name":"x"}'
expect 415 "text/plain body where JSON is required -> 415 problem" "$(problem 415)"
call "form content type" -X POST "$GEN" -H 'Content-Type: application/x-www-form-urlencoded' -d 'name=x'
expect 415 "form body -> 415 problem" "$(problem 415)"
call "405" -X DELETE "$REST/v1/v1/apitokens"
tr -d '\r' <"$work/headers" | grep -qi '^allow: GET$' || fail "405 without Allow: GET"
expect 405 "DELETE on a GET route -> 405 + Allow" "$(problem 405)"
call "405 revoke" -X PUT "$REST/v1/v1/apitokens/revoke/abc"
tr -d '\r' <"$work/headers" | grep -qi '^allow: PATCH$' || fail "405 without Allow: PATCH"
expect 405 "PUT on the PATCH route -> 405 + Allow: PATCH" "$(problem 405)"
call "MCP GET" "$MCP"
expect 405 "GET /mcp -> 405"
call "MCP PUT" -X PUT "$MCP" "${MH[@]}" -d '{}'
expect 405 "PUT /mcp -> 405"

# --- the credential never shows
if grep -aq "$KEY" "$work/all-bodies"; then fail "the test key appears in a response body"; fi
if grep -aq "$KEY" "$work/nk.log"; then fail "the test key appears in the daemon log"; fi
echo "ok: $n_cases cases; the test key appears in no response and no log line"
