#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lang_simple.sh: the simple forms of the capability language (issue 15, items 4 and 6) served
# against the Central double, through REST and MCP: a mock route and a mock tool answer without
# any upstream request, an output `value` is a Mustache template over the inputs, a declared
# output type is applied, a non-singular JSONPath mapping gives the list of every match, a
# consumed operation's outputParameters shape the answer the exposed mapping reads, and a body
# `{{variable}}` is filled from the operation's input.
#
# usage: lang_simple.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init lang-simple lang.simple
DOC="$SRC/tests/data/spec/valid/simple-forms.yaml"
nk_start_double
nk_serve nk "$DOC" --ops-listen off --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt"

call() { nk_call "$@"; }
expect() { nk_expect "$@"; }
n_recorded() { nk_requests | jq 'length'; }
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call')
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
mcp_call() { # mcp_call TOOL ARGS_JSON: the tool's JSON answer (its text block) in $work/body
    call "mcp $1" -X POST "$MCP" "${MH[@]}" -H "Mcp-Name: $1" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2,$META}}"
    [ "$STATUS" = 200 ] || fail "mcp $1: HTTP $STATUS"
    cp "$work/body" "$work/rpc"
    jq -e '.result.isError != true' "$work/rpc" >/dev/null || fail "mcp $1: the tool failed"
    jq -r '.result.content[0].text' "$work/rpc" >"$work/body"
}

# --- item 4: a mock route and a mock tool answer from their inputs, with nothing sent upstream
before=$(n_recorded)
call "mock route" "$REST/ships/9074729?length=294.1"
expect 200 "mock route: templated, typed values" \
    '. == {"label":"ship 9074729","length":294.1,"active":true}'
call "mock route, optional input absent" "$REST/ships/42"
expect 200 "mock route: an absent optional input is null in a one-variable value" \
    '.label == "ship 42" and .length == null'
call "mock route, value of the wrong type" "$REST/ships/42?length=long"
expect 400 "mock route: a value that cannot take its type is an argument error" \
    '(.detail | test("length")) and (.detail | test("number"))'
mcp_call ship '{"imo":"9074729","length":"12"}'
jq -e '. == {"label":"ship 9074729","length":12}' "$work/body" >/dev/null ||
    fail "mock tool: unexpected answer $(cat "$work/body")"
pass "mock tool: templated, typed values"
call "mcp ship, bad length" -X POST "$MCP" "${MH[@]}" -H "Mcp-Name: ship" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"ship\",\"arguments\":{\"imo\":\"1\",\"length\":\"long\"},$META}}"
expect 200 "mock tool: a value that cannot take its type is a tool error naming the output" \
    '.result.isError == true and (.result.content[0].text | test("output .length. is declared number"))'
[ "$(n_recorded)" = "$before" ] || fail "a mock sent a request upstream"
pass "mocks send nothing upstream"

# --- item 6e: a body variable is filled from the operation's input
for name in lang-a lang-b; do
    call "create $name" -X POST "$REST/tokens?tokenName=$name"
    expect 200 "body {{tokenName}} filled: $name" ".name == \"$name\""
done
nk_requests | jq -e '[.[] | select(.method == "POST") | .body | fromjson | .name] == ["lang-a","lang-b"]' \
    >/dev/null || fail "the generate bodies do not carry the names"
pass "the upstream bodies carry the caller's names"
before=$(n_recorded)
call "create without a name" -X POST "$REST/tokens/implicit"
expect 400 "a body variable of an operation without inputs is a required argument, not null" \
    '.detail | test("tokenName")'
[ "$(n_recorded)" = "$before" ] || fail "the call without its body variable went upstream"
call "create implicit" -X POST "$REST/tokens/implicit?tokenName=lang-c"
expect 200 "the implicit body argument is sent" '.metadata.name == "lang-c"'

# --- item 6a/6c: a non-singular mapping is the list of matches; a value templates the inputs
call "analysts" "$REST/tokens/analysts?who=ops"
expect 200 "non-singular filter gives the list; singular gives one value; value templated" \
    '(.analysts | type == "array") and (.analysts | index("lang-a")) != null and
     (.analysts | index("lang-b")) != null and (.first | type == "string") and
     .asked == "listed for ops"'
mcp_call analysts '{}'
jq -e '(.analysts | index("lang-a")) != null and (.analysts | index("lang-b")) != null' \
    "$work/body" >/dev/null || fail "mcp analysts: $(cat "$work/body")"
pass "mcp: non-singular filter gives the list"

# --- item 6d: the consumed outputParameters shape the answer before the exposed mapping
call "names" "$REST/tokens/names"
expect 200 "consumed outputParameters applied, then the exposed mapping" \
    '(.names | index("lang-a")) != null and (.names | index("lang-b")) != null and
     (.first | type == "string")'
mcp_call names '{}'
jq -e '(keys == ["first","names"]) and (.names | index("lang-b")) != null' "$work/body" \
    >/dev/null || fail "mcp names: $(cat "$work/body")"
pass "mcp: the consumed outputParameters are the answer"

# --- item 6b: an upstream value that cannot take its declared type is a 502 naming it
call "wrong exposed type" "$REST/tokens/wrong"
expect 502 "a mapped value that does not fit its type: 502 naming the output" \
    '.detail | test("output .first. is declared number")'
call "wrong consumed type" "$REST/tokens/wrong-consumed"
expect 502 "a consumed outputParameter that does not fit its type: 502 naming it" \
    '.detail | test("outputParameter .first. of .central.list-wrong. is declared number")'

nk_stop
pass "clean stop"
