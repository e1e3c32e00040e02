#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hostile_rest.sh: a hostile caller and a hostile upstream against the REST adapter (and the same
# upstream answers through MCP): big `$.` answers passed through byte for byte, invalid JSON,
# upstream redirects and non-JSON error types, dot segments as path values, DNS rebinding (Host
# and Origin), /openapi.json not reflecting Host, HEAD on GET routes, credentials holding a line
# break. Issue 17, items 2, 6, 8 (with the unit test), 12, 13 and 18.
#
# usage: hostile_rest.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init hostile-rest hostile.rest
nk_start_double
SERVE=("$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt")
nk_serve nk "${SERVE[@]}"
touch "$work/all-bodies"

# call WHAT [curl args...]: sets STATUS; body in $work/body, headers in $work/headers.
call() {
    local what=$1
    shift
    STATUS=$(curl -sS --path-as-is --max-time 30 -o "$work/body" -D "$work/headers" \
        -w '%{http_code}' "$@") || fail "$what: curl failed (connection dropped?)"
    cat "$work/body" >>"$work/all-bodies"
}
header() { tr -d '\r' <"$work/headers" | sed -n "s/^$1: //Ip" | tail -n1; }
expect() { # expect STATUS WHAT [jq filter on the body]
    [ "$STATUS" = "$1" ] || fail "$2: expected HTTP $1, got $STATUS"
    if [ -n "${3:-}" ]; then
        jq -e "$3" "$work/body" >/dev/null 2>&1 || fail "$2: body does not satisfy $3"
    fi
    pass "$2"
}
problem() { echo ".status == $1 and (.detail|type) == \"string\""; }
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call')
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
mcp_call() { # mcp_call TOOL ARGS_JSON: the answer in $work/body
    call "mcp $1" -X POST "$MCP" "${MH[@]}" -H "Mcp-Name: $1" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2,$META}}"
}
n_recorded() { nk_requests | jq 'length'; }
LIST="$REST/v1/v1/apitokens"

# --- item 2: a big answer mapped with `$.` arrives byte for byte, as JSON
nk_fault '{"mode":"big","bytes":3145728}'
curl -sS --max-time 30 --cacert "$work/central.crt" -H "Authorization: Bearer $KEY" \
    -o "$work/direct" "https://127.0.0.1:$CPORT/v1/apitokens" || fail "the double did not answer"
[ "$(stat -c %s "$work/direct")" -ge 3145728 ] || fail "the double's big answer is too small"
jq -e 'type == "array" and length > 1000' "$work/direct" >/dev/null ||
    fail "the double's big answer is not a JSON array"
call "big answer" "$LIST"
[ "$STATUS" = 200 ] || fail "big answer: HTTP $STATUS"
cmp -s "$work/direct" "$work/body" || fail "big answer: the REST body differs from the upstream's"
[ "$(header Content-Type)" = application/json ] || fail "big answer: Content-Type $(header Content-Type)"
pass "a 3 MiB \$. answer arrives byte-identical as application/json"
mcp_call getapitokens-returns-all-api-tokens '{}'
[ "$STATUS" = 200 ] || fail "mcp big answer: HTTP $STATUS"
jq -e '.result.structuredContent | (if type == "object" then .result else . end) |
    type == "array" and length > 1000' "$work/body" >/dev/null ||
    fail "mcp big answer: structuredContent is not the array"
jq -j '.result.content[0].text' "$work/body" >"$work/mcp-text"
cmp -s "$work/direct" "$work/mcp-text" || fail "mcp big answer: the text block differs from the upstream's"
pass "the same answer through MCP: text block byte-identical, structuredContent the value"
# A small answer with line breaks: the text block keeps them (escaped), the value has none raw.
nk_fault '{"mode":"status","status":200,"content_type":"application/json","body":"{\n \"a\": [1,\n2],\"q\":\"\\\"x\\u0001\"\n}\n"}'
curl -sS --max-time 10 --cacert "$work/central.crt" -H "Authorization: Bearer $KEY" \
    -o "$work/direct" "https://127.0.0.1:$CPORT/v1/apitokens" || fail "the double did not answer"
mcp_call getapitokens-returns-all-api-tokens '{}'
[ "$(head -c -0 "$work/body" | wc -l)" -le 1 ] || fail "mcp: the reply holds raw line breaks"
jq -e '.result.structuredContent == {"a":[1,2],"q":"\"x\u0001"}' "$work/body" >/dev/null ||
    fail "mcp: structuredContent is not the answer"
jq -j '.result.content[0].text' "$work/body" >"$work/mcp-text"
cmp -s "$work/direct" "$work/mcp-text" || fail "mcp: the text block differs from the upstream's"
# A caller cannot forge a placeholder: its own id comes back as it sent it.
ID='"\u0001nk-raw:00000000000000000000000000000000:0:v"'
call "mcp forged placeholder" -X POST "$MCP" "${MH[@]}" -H "Mcp-Name: getapitokens-returns-all-api-tokens" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":$ID,\"method\":\"tools/call\",\"params\":{\"name\":\"getapitokens-returns-all-api-tokens\",\"arguments\":{},$META}}"
jq -e --argjson id "$ID" '.id == $id and .result.structuredContent.a == [1,2]' "$work/body" \
    >/dev/null || fail "mcp: a forged placeholder in the id was replaced"
pass "mcp: line breaks stay inside the text block; a forged placeholder stays a string"

# --- a pass-through answer that is not JSON is still a bad upstream
nk_fault '{"mode":"invalid-json"}'
call "invalid JSON" "$LIST"
expect 502 "truncated JSON from upstream -> 502 problem" "$(problem 502)"
[ "$(header Content-Type)" = application/problem+json ] || fail "invalid JSON: Content-Type"
nk_fault '{"mode":"status","status":200,"content_type":"application/json","body":"{\"a\":\"\\u00e9\",\"a\":1} x"}'
call "trailing garbage" "$LIST"
expect 502 "JSON followed by garbage -> 502" "$(problem 502)"

# --- item 13: the upstream's content type is never relayed
nk_fault '{"mode":"status","status":418}'
call "418 html" "$LIST"
expect 418 "418 text/html from upstream -> 418 problem+json" "$(problem 418)"
[ "$(header Content-Type)" = application/problem+json ] ||
    fail "418: Content-Type $(header Content-Type), expected application/problem+json"
grep -q '<script>' "$work/body" && fail "418: the upstream's markup is in the body"
jq -e '.detail | test("teapot")' "$work/body" >/dev/null || fail "418: detail does not quote the title"
nk_fault '{"mode":"status","status":400,"content_type":"text/html","body":"{\"code\":3,\"message\":\"bad\"}"}'
call "400 json as html" "$LIST"
expect 400 "a JSON error body labelled text/html -> application/json" '.code == 3'
[ "$(header Content-Type)" = application/json ] || fail "400: Content-Type $(header Content-Type)"
nk_fault '{"mode":"status","status":500,"content_type":"text/plain","body":"caf\u00e9 \u00e9"}'
call "500 text" "$LIST"
expect 500 "500 text/plain -> 500 problem with the text as detail" '.detail | test("café")'

# --- item 18a: a redirect is neither followed nor relayed
nk_fault "{\"mode\":\"status\",\"status\":302,\"content_type\":\"application/json\",\"body\":\"{}\",\"location\":\"https://127.0.0.1:$CPORT/v1/elsewhere\"}"
before=$(n_recorded)
call "302" "$LIST"
expect 502 "302 from upstream -> 502 problem" "$(problem 502) and (.detail | test(\"redirect\"))"
[ -z "$(header Location)" ] || fail "302: a Location header was relayed"
grep -q elsewhere "$work/body" && fail "302: the redirect target is in the body"
[ "$(n_recorded)" = $((before + 1)) ] || fail "302: the redirect was followed"
mcp_call getapitokens-returns-all-api-tokens '{}'
jq -e '.result.isError == true' "$work/body" >/dev/null || fail "mcp 302: not isError"
pass "mcp: 302 -> isError"
nk_fault '{"mode":"none"}'

# --- item 12: dot segments as path values never go upstream
before=$(n_recorded)
for v in '%2E%2E' '%2e' '.%2E' '..' '.'; do
    call "dot $v" "$LIST/$v"
    expect 400 "path value $v -> 400 problem naming id" "$(problem 400) and (.detail | test(\"'id'\"))"
done
mcp_call revoketoken-removes-api-token-given '{"id":".."}'
jq -e '.result.isError == true and (.result.content[0].text | test("id"))' "$work/body" \
    >/dev/null || fail "mcp id '..': not an isError naming id"
pass "mcp: id '..' -> isError"
[ "$(n_recorded)" = "$before" ] || fail "a dot segment reached the upstream"
call "dots in a name" "$LIST/...x"
[ "$(n_recorded)" = $((before + 1)) ] || fail "a value merely containing dots was refused"

# --- item 6: DNS rebinding
before=$(n_recorded)
call "rebind POST" -X POST "$LIST/generate" -H 'Host: rebind.evil.example:8080' \
    -H 'Origin: http://rebind.evil.example:8080' -H 'Content-Type: application/json' \
    -d '{"name":"rebound","roles":["Admin"]}'
expect 403 "POST with Host rebind.evil.example -> 403" "$(problem 403)"
call "rebind origin" -X POST "$LIST/generate" -H 'Origin: http://rebind.evil.example' \
    -H 'Content-Type: application/json' -d '{"name":"rebound","roles":["Admin"]}'
expect 403 "POST with a foreign Origin -> 403" "$(problem 403)"
call "rebind openapi" "$REST/openapi.json" -H 'Host: rebind.evil.example'
expect 403 "/openapi.json with a foreign Host -> 403"
[ "$(n_recorded)" = "$before" ] || fail "a rebound request reached the upstream"
call "openapi" "$REST/openapi.json" -H 'Host: localhost:1234'
expect 200 "/openapi.json servers[0].url is relative, not the Host header" '.servers[0].url == "/"'
call "localhost" "$LIST" -H 'Host: LOCALHOST'
expect 200 "Host localhost (any case) -> 200"

# --- item 18b: HEAD answers like GET, without a body
STATUS=$(curl -sS --max-time 30 -I -o "$work/headers" -w '%{http_code}' "$LIST") || fail "HEAD failed"
[ "$STATUS" = 200 ] || fail "HEAD on a GET route: $STATUS"
[ "$(header Content-Type)" = application/json ] || fail "HEAD: Content-Type $(header Content-Type)"
pass "HEAD on a GET route -> 200 with the GET headers"
STATUS=$(curl -sS --max-time 30 -I -o /dev/null -w '%{http_code}' "$REST/openapi.json") || fail "HEAD"
[ "$STATUS" = 200 ] || fail "HEAD /openapi.json: $STATUS"
STATUS=$(curl -sS --max-time 30 -I -o /dev/null -w '%{http_code}' "$LIST/revoke/x") || fail "HEAD"
[ "$STATUS" = 405 ] || fail "HEAD on a POST route: $STATUS"
pass "HEAD /openapi.json -> 200, HEAD on a POST route -> 405"
nk_stop

# --- item 6: --rest-allowed-hosts names more hosts
nk_serve allowed "${SERVE[@]}" --rest-allowed-hosts 'naftikod.example, api.example'
LIST="$REST/v1/v1/apitokens"
call "allowed host" "$REST/openapi.json" -H 'Host: naftikod.example:8080'
expect 200 "--rest-allowed-hosts: Host naftikod.example -> 200" '.servers[0].url == "/"'
call "allowed host 2" "$LIST" -H 'Host: API.example' -H 'Origin: https://naftikod.example'
expect 200 "--rest-allowed-hosts: second name, allowed Origin -> 200"
call "other host" "$LIST" -H 'Host: other.example'
expect 403 "--rest-allowed-hosts: another name -> 403"
nk_stop

# --- item 18c: a credential holding a line break is refused at start
printf 'Bearer %s\r\nX-Injected: 1\n' "$KEY" >"$work/crlf-key"
if nk_launch crlf-env "STACKROX_API_KEY=$(printf 'Bearer %s\r\nX-Injected: 1' "$KEY")" -- \
    "${SERVE[@]}" --rest-port 0 --mcp-port 0; then
    fail "a credential with CR LF in the environment was accepted"
fi
wait "$NK_PID" 2>/dev/null || true
grep -q "line break" "$work/crlf-env.log" || fail "crlf env: the log does not say why"
grep -q "STACKROX_API_KEY" "$work/crlf-env.log" || fail "crlf env: the log does not name the variable"
if nk_launch crlf-file "STACKROX_API_KEY_FILE=$work/crlf-key" -- \
    "${SERVE[@]}" --rest-port 0 --mcp-port 0; then
    fail "a credential file with CR LF was accepted"
fi
wait "$NK_PID" 2>/dev/null || true
grep -q "line break" "$work/crlf-file.log" || fail "crlf file: the log does not say why"
pass "a credential with a line break is refused at start (environment and file), named, not shown"

# --- never the key in any answer or log
grep -q "$KEY" "$work/all-bodies" && fail "the key appears in a response body"
for f in "$work"/*.log; do
    [ "$(basename "$f")" = central.log ] && continue
    grep -q "$KEY" "$f" && fail "the key appears in $(basename "$f")"
done
pass "the key appears in no answer and no log"
