#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# authz.sh: per-caller permissions (--permissions) and the audit trail (--audit-log) with the
# three recipes of docs/examples/ against the bundled capability and the Central double (TLS):
# what each caller may call over REST and MCP, tools/list filtering, argument limits, a denial
# never reaching Central, SIGHUP swapping the rules (a broken file keeps the old ones), the
# audit log reopened on SIGHUP, one record per call and no secret in any.
#
# usage: authz.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init authz
nk_start_double
EX="$SRC/docs/examples"
T_READER="reader-token-not-a-secret-000001"
T_CI="ci-token-not-a-secret-00000000002"
T_ADMIN="admin-token-not-a-secret-0000003"
T_OTHER="other-token-not-a-secret-0000004"
for pair in "reader:$T_READER" "ci:$T_CI" "admin:$T_ADMIN" "other:$T_OTHER"; do
    printf '%s\n' "${pair#*:}" | "$NAFTIKOD" hash-token "${pair%%:*}" >>"$work/tokens" ||
        fail "hash-token"
done
# naftikod check --permissions: the recipes compile and name only served operations; a typo
# is a warning, a bad key an error with its position.
for r in read-only-agent ci-minter admin; do
    out=$("$NAFTIKOD" check --permissions "$EX/permissions-$r.yaml" "$CAP") ||
        fail "check --permissions $r: $out"
    [ -z "$out" ] || fail "check --permissions $r: $out"
done
printf 'callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - tools: typo\n' >"$work/typo.yaml"
"$NAFTIKOD" check --permissions "$work/typo.yaml" "$CAP" | grep -qx "$work/typo.yaml:5:1: warning: tool 'typo' (caller a) names no MCP tool served" ||
    fail "check: no warning for a tool name that matches nothing"
printf 'callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - tool: x\n' >"$work/bad.yaml"
rc=0
"$NAFTIKOD" check --permissions "$work/bad.yaml" "$CAP" >"$work/check.out" || rc=$?
[ "$rc" = 1 ] && grep -q "^$work/bad.yaml:5:9: error: unknown key 'tool' in a grant" "$work/check.out" ||
    fail "check --permissions with an unknown key: exit $rc, $(cat "$work/check.out")"
pass "naftikod check --permissions: the three recipes are clean; a typo warns, an unknown key is an error at its position"
perms="$work/permissions.yaml"
audit="$work/audit.log"
cp "$EX/permissions-ci-minter.yaml" "$perms"
nk_serve nk "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --rest-auth token --mcp-auth token --auth-tokens "$work/tokens" \
    --permissions "$perms" --audit-log "$audit"

touch "$work/all-bodies"
calls=0 # calls that reached dispatch: one audit record each
call() { nk_fetch "$@"; } # STATUS, $work/body (and all-bodies), $work/headers
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28')
list() { # list TOKEN: the tool names TOKEN's tools/list shows, sorted, comma-separated
    call -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: tools/list' -H "Authorization: Bearer $1" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{$META}}"
    [ "$STATUS" = 200 ] || fail "tools/list: $STATUS"
    jq -e '.result.cacheScope == "private"' "$work/body" >/dev/null ||
        fail "tools/list with permissions is not cacheScope private: $(cat "$work/body")"
    jq -r '[.result.tools[].name] | sort | join(",")' "$work/body"
}
tool() { # tool TOKEN TOOL ARGS: tools/call; the body in $work/body
    calls=$((calls + 1))
    call -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: tools/call' -H "Mcp-Name: $2" \
        -H "Authorization: Bearer $1" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":$3,$META}}"
}
rest() { # rest TOKEN METHOD PATH [BODY]: STATUS
    calls=$((calls + 1))
    if [ $# -ge 4 ]; then
        call -X "$2" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -d "$4" \
            "$REST$3"
    else
        call -X "$2" -H "Authorization: Bearer $1" "$REST$3"
    fi
}
upstream_count() { nk_requests | jq 'length'; }
denied_mcp() { # denied_mcp WHAT ERE: the last tool call was refused with -32001 naming ERE
    jq -e --arg re "$2" '.error.code == -32001 and (.error.message | test($re))' "$work/body" \
        >/dev/null || fail "$1: not refused with -32001 matching /$2/: $(cat "$work/body")"
}
denied_rest() { # denied_rest WHAT ERE
    [ "$STATUS" = 403 ] || fail "$1: $STATUS, expected 403"
    tr -d '\r' <"$work/headers" | grep -qi '^content-type: application/problem+json' ||
        fail "$1: 403 is not problem+json"
    jq -e --arg re "$2" '.status == 403 and (.detail | test($re))' "$work/body" >/dev/null ||
        fail "$1: detail does not match /$2/: $(cat "$work/body")"
}
GEN=generatetoken-generates-api-token-given
REV=revoketoken-removes-api-token-given
LIST=getapitokens-returns-all-api-tokens
GET1=getapitoken-returns-api-token-metadata
CI_ROLE='{"body":{"name":"ci-build","roles":["Continuous Integration"]}}'
ADMIN_ROLE='{"body":{"name":"evil","roles":["Admin"]}}'
MIXED='{"body":{"name":"evil","roles":["Continuous Integration","Admin"]}}'

# 1. The CI minter recipe.
[ "$(list "$T_CI")" = "$GEN,$REV" ] || fail "ci's tools/list: $(list "$T_CI")"
[ "$(list "$T_OTHER")" = "" ] || fail "a caller without grants sees tools: $(list "$T_OTHER")"
pass "tools/list shows ci only its 2 tools, a caller without grants none (cacheScope private)"
tool "$T_CI" "$GEN" "$CI_ROLE"
jq -e '.result.isError != true' "$work/body" >/dev/null || fail "ci generate: $(cat "$work/body")"
SECRET1=$(jq -r '.result.structuredContent.token // empty' "$work/body")
[ -n "$SECRET1" ] || fail "no generated token in $(cat "$work/body")"
n0=$(upstream_count)
tool "$T_CI" "$GEN" "$ADMIN_ROLE"
denied_mcp "ci generate with roles [Admin]" "argument 'body\\.roles' entry 0: value 'Admin' is not one of"
tool "$T_CI" "$GEN" "$MIXED"
denied_mcp "ci generate with one role Admin" "entry 1: value 'Admin'"
tool "$T_CI" "$GEN" '{"body":{"name":"no-roles"}}'
denied_mcp "ci generate without roles" "body\\.roles' is required"
tool "$T_CI" "$GEN" '{"body":{"name":"old","role":"Admin","roles":["Continuous Integration"]}}'
denied_mcp "ci generate with the deprecated role Admin" "argument 'body\\.role' value 'Admin'"
tool "$T_CI" "$LIST" '{}'
denied_mcp "ci list" "no grant .* lets token 'ci' use tool '$LIST'"
rest "$T_CI" POST /v1/v1/apitokens/generate '{"name":"evil","roles":["Admin"]}'
denied_rest "REST ci generate Admin" "argument 'body\\.roles' entry 0"
rest "$T_CI" GET /v1/v1/apitokens
denied_rest "REST ci list" "no grant"
rest "$T_OTHER" GET /v1/v1/apitokens
denied_rest "REST other list" "default|no grant"
[ "$(upstream_count)" = "$n0" ] || fail "a denied call reached Central ($n0 -> $(upstream_count))"
pass "denials (MCP -32001, REST 403 problem+json) name the argument or the missing grant; none reached Central"
rest "$T_CI" POST /v1/v1/apitokens/generate '{"name":"ci-rest","roles":["Continuous Integration"]}'
[ "$STATUS" = 200 ] || fail "REST ci generate CI: $STATUS $(cat "$work/body")"
SECRET2=$(jq -r '.token' "$work/body")
ID2=$(jq -r '.metadata.id // .id // empty' "$work/body")
[ -n "$ID2" ] || ID2=$(nk_requests | jq -r 'last | .path' | sed 's/.*\///')
rest "$T_CI" PATCH "/v1/v1/apitokens/revoke/$ID2"
[ "$STATUS" = 200 ] || fail "REST ci revoke by id: $STATUS $(cat "$work/body")"
tool "$T_CI" "$REV" "{\"id\":\"$ID2\"}"
jq -e '.error == null' "$work/body" >/dev/null || fail "MCP ci revoke: $(cat "$work/body")"
pass "ci-minter recipe: generate with roles all 'Continuous Integration' and revoke by id, over REST and MCP"

# 2. SIGHUP: the read-only recipe replaces the rules; a broken file keeps them.
n_reload=0
reloaded() { [ "$(grep -c 'reload: permissions in force' "$work/nk.log")" -ge "$n_reload" ]; }
hup_ok() {
    n_reload=$((n_reload + 1))
    kill -HUP "$NK_PID"
    wait_until reloaded || fail "reload $n_reload: no 'permissions in force' line"
}
cp "$EX/permissions-read-only-agent.yaml" "$perms"
hup_ok
[ "$(list "$T_READER")" = "$GET1,$LIST" ] || fail "reader's tools/list: $(list "$T_READER")"
[ "$(list "$T_CI")" = "" ] || fail "ci still sees tools after the reload: $(list "$T_CI")"
rest "$T_READER" GET /v1/v1/apitokens
[ "$STATUS" = 200 ] || fail "REST reader list: $STATUS"
tool "$T_READER" "$LIST" '{}'
jq -e '.result.isError != true' "$work/body" >/dev/null || fail "reader list: $(cat "$work/body")"
rest "$T_READER" POST /v1/v1/apitokens/generate "$CI_ROLE"
denied_rest "REST reader generate" "no grant"
tool "$T_READER" "$GEN" "$CI_ROLE"
denied_mcp "reader generate" "no grant"
tool "$T_CI" "$GEN" "$CI_ROLE"
denied_mcp "ci generate after the reload" "no grant"
pass "read-only recipe after SIGHUP: reader lists and reads (REST GET, readOnly tools), nothing else; ci lost its grants"
printf 'callers:\n  - name: x\n    match: {token: reader}\n    grants:\n      - tools: a\n        bogus: 1\n' >"$perms"
kill -HUP "$NK_PID"
wait_until grep -q 'reload failed: .*permissions.yaml:6:9: unknown key .bogus.' "$work/nk.log" ||
    fail "a broken permissions file: no 'reload failed' line naming FILE:LINE:COL"
rest "$T_READER" GET /v1/v1/apitokens
[ "$STATUS" = 200 ] || fail "after a failed reload the reader lost its rights: $STATUS"
pass "a broken permissions file on SIGHUP is refused with FILE:LINE:COL and the rules in force stay"

# 3. The admin recipe, and the audit log reopened after a rotation.
cp "$EX/permissions-admin.yaml" "$perms"
mv "$audit" "$audit.1"
hup_ok
tool "$T_ADMIN" "$GEN" "$ADMIN_ROLE"
SECRET3=$(jq -r '.result.structuredContent.token // empty' "$work/body")
[ -n "$SECRET3" ] || fail "admin generate: $(cat "$work/body")"
[ "$(list "$T_ADMIN" | tr ',' '\n' | wc -l)" = 4 ] || fail "admin's tools/list: $(list "$T_ADMIN")"
rest "$T_ADMIN" GET /v1/v1/apitokens
[ "$STATUS" = 200 ] || fail "REST admin list: $STATUS"
rest "$T_READER" GET /v1/v1/apitokens
denied_rest "reader under the admin recipe" "no grant"
pass "admin recipe: every tool and route, any roles; other callers denied"
[ -s "$audit" ] || fail "no audit log after the rotation and SIGHUP"

# 4. The audit trail: one record per call that reached dispatch, allowed or denied.
cat "$audit.1" "$audit" >"$work/audit.all"
jq -e . "$work/audit.all" >/dev/null || fail "an audit line is not JSON"
got=$(wc -l <"$work/audit.all")
[ "$got" = "$calls" ] || fail "$got audit records for $calls calls"
jq -se 'all(.[]; .time and .request_id and .caller.kind == "token" and .caller.name and
        .adapter and .operation and (.decision == "allow" or .decision == "deny") and .rule and
        .latency_ms != null)' "$work/audit.all" >/dev/null || fail "an audit record lacks a field"
jq -se --arg gen "$GEN" 'any(.[]; .operation == $gen and .decision == "deny" and
        .args["body.roles"] == ["Admin"] and (.rule | test("permissions.yaml:[0-9]+ \\(caller ci-minter\\)")) and
        .outcome == "denied")' "$work/audit.all" >/dev/null ||
    fail "no deny record for ci's Admin generate with its roles and rule"
jq -se --arg gen "$GEN" 'any(.[]; .operation == $gen and .decision == "allow" and
        .upstream_status == 200 and .args["body.name"] == "ci-build")' "$work/audit.all" \
    >/dev/null || fail "no allow record with the upstream status and the allow-listed name"
jq -se 'any(.[]; .kind == "route" and .operation == "GET /v1/v1/apitokens" and
        .decision == "deny" and .rule == "default deny" and .caller.name == "other")' \
    "$work/audit.all" >/dev/null || fail "no default-deny record for the caller without grants"
for s in "$SECRET1" "$SECRET2" "$SECRET3" "$T_READER" "$T_CI" "$T_ADMIN" "$T_OTHER" "$KEY"; do
    ! grep -qF -- "$s" "$work/audit.all" || fail "a secret is in the audit trail"
    ! grep -qF -- "$s" "$work/nk.log" || fail "a secret is in the log"
done
! grep -q 'names no' "$work/nk.log" || fail "a recipe names an operation the capability does not serve"
pass "audit: $calls records for $calls calls, each with caller, operation, decision, rule, latency; no generated token or credential in any"
nk_stop

# 5. mcp-stdio reads the same rules (its caller is anonymous) and writes the same trail.
printf 'callers:\n  - name: local\n    match: {anonymous: true}\n    grants:\n      - class: readOnly\n' \
    >"$work/stdio-perms.yaml"
I='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
printf '%s\n' "$I" '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
    '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"$GEN\",\"arguments\":$CI_ROLE}}" \
    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\",\"arguments\":{}}}" \
    >"$work/stdio.in"
n0=$(upstream_count)
env -u STACKROX_API_KEY_FILE STACKROX_API_KEY="Bearer $KEY" timeout 30 "$NAFTIKOD" mcp-stdio "$CAP" \
    --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    --permissions "$work/stdio-perms.yaml" --audit-log "$work/stdio-audit.log" \
    <"$work/stdio.in" >"$work/stdio.out" 2>"$work/stdio.log" || fail "mcp-stdio exited $?"
jq -se --arg l "$LIST" --arg g "$GET1" '(.[] | select(.id == 2) | [.result.tools[].name] | sort) == ([$l, $g] | sort)' \
    "$work/stdio.out" >/dev/null || fail "stdio tools/list: $(cat "$work/stdio.out")"
jq -se '(.[] | select(.id == 3) | .error.code) == -32001' "$work/stdio.out" >/dev/null ||
    fail "stdio generate was not refused: $(cat "$work/stdio.out")"
jq -se '(.[] | select(.id == 4) | .result.isError) != true' "$work/stdio.out" >/dev/null ||
    fail "stdio list: $(cat "$work/stdio.out")"
[ "$(upstream_count)" = "$((n0 + 1))" ] || fail "stdio: $(( $(upstream_count) - n0 )) upstream calls, want 1"
[ "$(wc -l <"$work/stdio-audit.log")" = 2 ] || fail "stdio audit: $(cat "$work/stdio-audit.log")"
jq -se '.[0].decision == "deny" and .[0].caller.kind == "anonymous" and
        .[0].adapter == "stackrox-apitokenservice-mcp" and .[1].decision == "allow" and
        .[1].upstream_status == 200' "$work/stdio-audit.log" >/dev/null ||
    fail "stdio audit records: $(cat "$work/stdio-audit.log")"
pass "mcp-stdio: the same rules (anonymous caller: 2 read-only tools listed, generate -32001 without reaching Central) and one audit record per call"
