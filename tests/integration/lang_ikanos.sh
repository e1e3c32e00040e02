#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lang_ikanos.sh: aggregates with `ref` and the `ikanos:` root (issue 15, items 3 and 5) served
# against the Central double. A `ref` operation or tool runs its aggregate function (a call with
# the function's `with` and outputParameters, or a mock) and inherits what it leaves out; the
# function's semantics become MCP annotations unless the tool's hints say otherwise. The bundled
# capability written as an ikanos 1.0.0-beta5 document loads into the same operation table as its
# naftiko form (same OpenAPI document, same tools/list), and its MCP endpoint speaks both eras
# (initialize + session, and stateless).
#
# usage: lang_ikanos.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init lang-ikanos lang.ikanos
DATA="$SRC/tests/data/spec/valid"
nk_start_double

call() { nk_call "$@"; }
expect() { nk_expect "$@"; }
n_recorded() { nk_requests | jq 'length'; }
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
MH=("${H[@]}" -H 'MCP-Protocol-Version: 2026-07-28')
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
rpc() { # rpc METHOD PARAMS_JSON [NAME]: a stateless (2026-07-28) request; the response in $work/rpc
    local hdr=(-H "Mcp-Method: $1")
    [ -z "${3:-}" ] || hdr+=(-H "Mcp-Name: $3")
    call "mcp $1" -X POST "$MCP" "${MH[@]}" "${hdr[@]}" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}"
    [ "$STATUS" = 200 ] || fail "mcp $1: HTTP $STATUS"
    cp "$work/body" "$work/rpc"
}
mcp_call() { # mcp_call TOOL ARGS_JSON: the tool's JSON answer (its text block) in $work/body
    rpc tools/call "{\"name\":\"$1\",\"arguments\":$2,$META}" "$1"
    jq -e '.result.isError != true' "$work/rpc" >/dev/null || fail "mcp $1: the tool failed"
    jq -r '.result.content[0].text' "$work/rpc" >"$work/body"
}
tools_list() { # tools_list: the stateless tools/list result in $work/rpc
    rpc tools/list "{$META}"
}

# ---- item 3: aggregates with ref --------------------------------------------------------------
nk_serve agg --ops-listen off --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    "$DATA/aggregates.yaml"
for name in agg-a agg-b; do
    call "create $name" -X POST "$REST/tokens?tokenName=$name"
    expect 200 "ref (REST POST): the function's call, its body variable from the inherited input" \
        ".metadata.name == \"$name\""
done
call "names" "$REST/names"
expect 200 "ref (REST GET): the function's outputParameters shape the answer" \
    '(type == "array") and (index("agg-a") != null) and (index("agg-b") != null)'
call "names revoked" "$REST/names?revoked=true"
expect 200 "ref: the function's with passes the inherited input" '. == []'
nk_requests | jq -e 'map(select(.method == "GET" and .path == "/v1/apitokens") | .query)
    | index("revoked=true") != null' >/dev/null ||
    fail "the function's with did not send revoked=true upstream"
pass "ref: revoked=true went upstream through the function's with"
id=$(curl -sS --max-time 10 --cacert "$work/central.crt" -H "Authorization: Bearer $KEY" \
    "https://127.0.0.1:$CPORT/v1/apitokens" | jq -r '.tokens[] | select(.name == "agg-a") | .id')
[ -n "$id" ] || fail "the double has no token agg-a"
call "token" "$REST/tokens/$id"
expect 200 "ref with an inherited input in the path, the function's with a template" \
    ".name == \"agg-a\" and .id == \"$id\""
call "token with names" "$REST/tokens/$id/with-names"
expect 200 "ref to a function with steps: both calls run, the mappings build the answer" \
    ".token.id == \"$id\" and .token.name == \"agg-a\" and (.names | index(\"agg-b\") != null)"
before=$(n_recorded)
call "greet" "$REST/greet/ships"
expect 200 "ref to a mock function: answers from the input, nothing upstream" \
    '. == {"greeting":"hello ships"}'
[ "$(n_recorded)" = "$before" ] || fail "a mock function sent a request upstream"
call "openapi" "$REST/openapi.json"
expect 200 "ref: name and description inherited into OpenAPI" \
    '(.paths["/names"].get.operationId == "list-names") and
     (.paths["/names"].get.description == "The names of the API tokens, revoked or not.") and
     (.paths["/greet/{who}"].get.description == "Greets from the path.")'

tools_list
jq -e '.result.tools | map({(.name): .}) | add |
    (.["list-names"].description == "The names of the API tokens, revoked or not.") and
    (.["list-names"].annotations == {"readOnlyHint":true,"destructiveHint":false,
        "idempotentHint":true,"openWorldHint":true}) and
    (.["list-names"].inputSchema.properties.revoked.type == "boolean") and
    (.token.title == "One token") and (.token.annotations.readOnlyHint == true) and
    (.token.annotations.idempotentHint == false) and
    (.create.annotations == {"readOnlyHint":false,"destructiveHint":false,
        "idempotentHint":false,"openWorldHint":true}) and
    (.greet.description == "Greets.") and (.greet.annotations.openWorldHint == false) and
    (.greet.annotations.readOnlyHint == true) and
    (.["token-with-names"].annotations == {"readOnlyHint":true,"destructiveHint":false,
        "idempotentHint":true,"openWorldHint":true})' "$work/rpc" >/dev/null ||
    fail "tools/list of the ref tools: $(jq -c '.result.tools' "$work/rpc")"
pass "ref tools: inherited names and descriptions, semantics as annotations, hints win"
mcp_call list-names '{}'
jq -e 'index("agg-a") != null' "$work/body" >/dev/null || fail "mcp list-names: $(cat "$work/body")"
pass "ref tool: the function's call and outputParameters"
mcp_call token-with-names "{\"id\":\"$id\"}"
jq -e '.token.name == "agg-a" and (.names | index("agg-b") != null)' "$work/body" >/dev/null ||
    fail "mcp token-with-names: $(cat "$work/body")"
pass "ref tool to a function with steps"
mcp_call greet '{"who":"crew"}'
jq -e '. == {"greeting":"hello crew"}' "$work/body" >/dev/null || fail "mcp greet: $(cat "$work/body")"
pass "ref tool to a mock function"
nk_stop
pass "aggregates: clean stop"

# ---- item 5: the ikanos root --------------------------------------------------------------------
# The bundled capability and its ikanos form: the same OpenAPI document, the same tools/list.
serve_doc() { # serve_doc NAME DOC: serve DOC; $work/NAME.openapi and $work/NAME.tools
    nk_serve "$1" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt" "$2"
    call "$1 openapi" "$REST/openapi.json"
    [ "$STATUS" = 200 ] || fail "$1: /openapi.json answered $STATUS"
    jq -S 'del(.servers)' "$work/body" >"$work/$1.openapi"
    tools_list
    jq -S '.result.tools' "$work/rpc" >"$work/$1.tools"
}
serve_doc naftiko "$CAP"
nk_stop
serve_doc ikanos "$DATA/ikanos-apitokenservice.yaml"
diff -u "$work/naftiko.openapi" "$work/ikanos.openapi" >&2 ||
    fail "the ikanos form gives another OpenAPI document"
pass "ikanos form: the same OpenAPI document as the naftiko form"
diff -u "$work/naftiko.tools" "$work/ikanos.tools" >&2 ||
    fail "the ikanos form gives another tools/list"
jq -e 'length == 4' "$work/ikanos.tools" >/dev/null || fail "ikanos tools/list: not 4 tools"
pass "ikanos form: the same tools/list (stateless era) as the naftiko form"

# The ikanos document still speaks the initialize era: a session, then tools/list and a call.
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
sid=$(curl -sS --max-time 10 -D - -o "$work/body" -X POST "$MCP" "${H[@]}" -d "$INIT" |
    tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
[ -n "$sid" ] || fail "ikanos: initialize gave no session"
jq -e '.result.protocolVersion == "2025-06-18"' "$work/body" >/dev/null ||
    fail "ikanos: initialize did not agree on 2025-06-18"
SH=("${H[@]}" -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-06-18')
call "initialized" -X POST "$MCP" "${SH[@]}" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
[ "$STATUS" = 202 ] || fail "ikanos: notifications/initialized answered $STATUS"
call "session tools/list" -X POST "$MCP" "${SH[@]}" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
[ "$STATUS" = 200 ] || fail "ikanos: session tools/list answered $STATUS"
jq -S '.result.tools' "$work/body" >"$work/session.tools"
diff -u "$work/naftiko.tools" "$work/session.tools" >&2 ||
    fail "ikanos: the session-era tools/list differs"
pass "ikanos form: tools/list in a session (initialize era) too"
call "session tools/call" -X POST "$MCP" "${SH[@]}" \
    -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"getapitokens-returns-all-api-tokens","arguments":{}}}'
[ "$STATUS" = 200 ] || fail "ikanos: session tools/call answered $STATUS"
jq -e '(.result.isError != true) and
    ((.result.content[0].text | fromjson | .tokens | map(.name) | index("agg-a")) != null)' \
    "$work/body" >/dev/null || fail "ikanos: the session tools/call did not list the tokens"
pass "ikanos form: a tool call in a session reaches Central"
mcp_call getapitoken-returns-api-token-metadata "{\"id\":\"$id\"}"
jq -e ".name == \"agg-a\"" "$work/body" >/dev/null || fail "ikanos: stateless call: $(cat "$work/body")"
pass "ikanos form: a stateless tool call reaches Central"
call "ikanos REST" "$REST/v1/v1/apitokens/$id"
expect 200 "ikanos form: the REST route reaches Central" ".name == \"agg-a\""
nk_stop
pass "ikanos: clean stop"

# An unsupported ikanos version: one line, exit 1.
set +e
"$NAFTIKOD" check "$SRC/tests/data/spec/invalid/ikanos-unsupported.yaml" >"$work/check.out" 2>&1
st=$?
set -e
[ "$st" = 1 ] || fail "check of an unsupported ikanos version exited $st"
[ "$(grep -c . "$work/check.out")" = 1 ] && grep -q "unsupported ikanos version '2.0.0'" "$work/check.out" ||
    fail "unsupported ikanos version: $(cat "$work/check.out")"
pass "an unsupported ikanos version is one line"
