#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lang_steps.sh: orchestrated operations (issue 15, item 2) served against the Central double,
# through REST and MCP: call steps run one after another (the second reads the first's answer),
# a lookup joins a list to the values of an earlier step, mappings and orchestrated
# outputParameters build and type the answer; a failed step ends the call with an error naming
# it and nothing after it is sent; the steps together get one --timeout; a caller that goes away
# stops the step in flight. The demo capability (capabilities/demo/stackrox-token-roles.yaml) is
# served beside it: an aggregate function with steps, run through `ref` by a REST operation and
# an MCP tool whose hints come from the function's semantics.
#
# usage: lang_steps.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init lang-steps lang.steps
DOC="$SRC/tests/data/spec/valid/steps.yaml"
nk_start_double
DEMO="$SRC/capabilities/demo/stackrox-token-roles.yaml"
nk_serve nk "$DOC" "$DEMO" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --timeout 3000

call() { nk_call "$@"; }
expect() { nk_expect "$@"; }
central() { # central METHOD PATH [BODY]: the double's own API with the test key
    curl -sS --max-time 10 --cacert "$work/central.crt" -X "$1" -H "Authorization: Bearer $KEY" \
        "https://127.0.0.1:$CPORT$2" ${3:+-d "$3"}
}
paths_since() { # paths_since SEQ: "METHOD PATH" of each request recorded after SEQ
    nk_requests | jq -r --argjson s "$1" '.[] | select(.seq > $s) | "\(.method) \(.path)"'
}
last_seq() { nk_requests | jq '[.[].seq] | max // 0'; }
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call')
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
mcp_raw() { # mcp_raw TOOL ARGS_JSON: the JSON-RPC answer in $work/rpc
    call "mcp $1" -X POST "$MCP" "${MH[@]}" -H "Mcp-Name: $1" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2,$META}}"
    [ "$STATUS" = 200 ] || fail "mcp $1: HTTP $STATUS"
    cp "$work/body" "$work/rpc"
}

id=$(central POST /v1/apitokens/generate '{"name":"steps-a","roles":["Analyst","Admin"]}' |
    jq -er '.metadata.id') || fail "cannot generate a token on the double"

# --- call, call, lookup, mappings, typed outputs (REST)
seq0=$(last_seq)
call "token details" "$REST/tokens/$id/details"
expect 200 "steps: the token with the details of each of its roles" \
    ".id == \"$id\" and .name == \"steps-a\" and .state.revoked == false and
     (.state.expiration | type == \"string\") and (.roles | length == 2) and
     .roles[0].name == \"Analyst\" and .roles[1].name == \"Admin\" and
     (.roles[0].description | test(\"read-only\")) and
     .roles[1].permissionSetId == \"io.stackrox.authz.permissionset.admin\" and
     (keys == [\"id\",\"name\",\"roles\",\"state\"])"
[ "$(paths_since "$seq0" | tr '\n' '|')" = "GET /v1/apitokens/$id|GET /v1/roles|" ] ||
    fail "the steps did not call in order: $(paths_since "$seq0" | tr '\n' ' ')"
pass "steps: one upstream call per call step, in order"

# --- a step reads an earlier step's answer; a lookup's lookupValue is a template
call "chain" "$REST/tokens/$id/chain"
expect 200 "steps: the second call reads the first's answer; no mappings: the last call's output" \
    ".id == \"$id\" and .name == \"steps-a\""

# --- MCP
mcp_raw token-details "{\"id\":\"$id\"}"
jq -e '.result.isError != true' "$work/rpc" >/dev/null || fail "mcp token-details: $(cat "$work/rpc")"
jq -r '.result.content[0].text' "$work/rpc" >"$work/body"
jq -e '.name == "steps-a" and (.roles | map(.name)) == ["Analyst","Admin"] and
       (.roles[1].description | test("read and write"))' "$work/body" >/dev/null ||
    fail "mcp token-details: $(cat "$work/body")"
pass "mcp: steps, lookup and mappings"

# --- an aggregate function with steps, through `ref` (the demo capability)
seq0=$(last_seq)
call "aggregate steps (REST)" "$REST/v1/token-roles/$id"
expect 200 "ref: the aggregate function's steps, lookup and mappings run for a REST operation" \
    ".id == \"$id\" and .name == \"steps-a\" and .revoked == false and
     (.roles | map(.name)) == [\"Analyst\",\"Admin\"] and
     .roles[1].permissionSetId == \"io.stackrox.authz.permissionset.admin\" and
     (keys == [\"expiration\",\"id\",\"name\",\"revoked\",\"roles\"])"
[ "$(paths_since "$seq0" | tr '\n' '|')" = "GET /v1/apitokens/$id|GET /v1/roles|" ] ||
    fail "the function's steps did not call in order: $(paths_since "$seq0" | tr '\n' ' ')"
pass "ref: one upstream call per call step of the function, in order"
mcp_raw get-token-with-roles "{\"id\":\"$id\"}"
jq -e --arg id "$id" '.result.isError != true and .result.structuredContent.id == $id and
       (.result.structuredContent.roles | map(.name)) == ["Analyst","Admin"]' "$work/rpc" >/dev/null ||
    fail "mcp get-token-with-roles: $(cat "$work/rpc")"
pass "mcp: a ref tool runs its function's steps"
call "mcp tools/list" -X POST "$MCP" "${MH[@]/tools\/call/tools/list}" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{$META}}"
expect 200 "mcp: the ref tool's annotations come from the function's semantics" \
    '[.result.tools[] | select(.name == "get-token-with-roles") |
      [.title, .annotations.readOnlyHint, .annotations.destructiveHint,
       .annotations.idempotentHint, .inputSchema.required]] ==
     [["Token with its roles", true, false, true, ["id"]]]'
call "aggregate steps, unknown token" "$REST/v1/token-roles/no-such-token"
expect 400 "ref: a failed step of the function names it" \
    '.detail | test("step .token. \\(stackrox-token-roles.get-token\\) failed")'

# --- a failed first step: an error that names it, nothing after it sent
seq0=$(last_seq)
call "unknown token" "$REST/tokens/no-such-token/details"
expect 400 "a failed step: the upstream status, a problem naming the step" \
    '(.detail | test("step .get-token. \\(central.get-token\\) failed")) and
     (.detail | test("does not exist"))'
[ "$(paths_since "$seq0" | wc -l)" = 1 ] || fail "a step after the failed one was sent"
pass "nothing after a failed step goes upstream"
mcp_raw token-details '{"id":"no-such-token"}'
jq -e '.result.isError == true and (.result.content[0].text | test("step .get-token. .central.get-token. failed"))' \
    "$work/rpc" >/dev/null || fail "mcp failed step: $(cat "$work/rpc")"
pass "mcp: a failed step is a tool error naming it"

# --- a failed later step (every second request fails)
nk_fault '{"fail_ratio":0.5}'
call "second step fails" "$REST/tokens/$id/details"
curl -sS --max-time 10 --cacert "$work/central.crt" -X DELETE "https://127.0.0.1:$CPORT/__double/faults" >/dev/null
expect 500 "a failed second step names it" '.detail | test("step .list-roles. \\(central.list-roles\\) failed: upstream answered 500")'

# --- the steps together get one --timeout (3000 ms): two steps of 2 s each exceed it
nk_fault '{"mode":"stall","seconds":2,"count":2}'
call "slow steps" "$REST/tokens/$id/details"
curl -sS --max-time 10 --cacert "$work/central.crt" -X DELETE "https://127.0.0.1:$CPORT/__double/faults" >/dev/null
expect 504 "the steps share one time budget; the timeout names the step in flight" \
    '.detail | test("did not finish within 3000 ms .step .list-roles.")'

# --- a caller that goes away stops the step in flight: the second step is never sent
nk_fault '{"mode":"stall","seconds":2}'
seq0=$(last_seq)
curl -sS --max-time 1 -o /dev/null "$REST/tokens/$id/details" 2>/dev/null && fail "the stalled call answered"
sleep 3 # the stalled first step would have ended (2 s) and the second been sent by now
curl -sS --max-time 10 --cacert "$work/central.crt" -X DELETE "https://127.0.0.1:$CPORT/__double/faults" >/dev/null
[ "$(paths_since "$seq0" | tr '\n' '|')" = "GET /v1/apitokens/$id|" ] ||
    fail "after the caller left: $(paths_since "$seq0" | tr '\n' ' ')"
pass "a caller that goes away cancels the steps"

# --- the token is still fine; revoke then show it (POST, two calls)
call "revoke and show" -X POST "$REST/tokens/$id/revoke-and-show"
expect 200 "steps: a write then a read" ".id == \"$id\" and .revoked == true"

nk_stop
pass "clean stop"
