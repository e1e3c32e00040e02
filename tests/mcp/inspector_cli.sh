#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# inspector_cli.sh: the official MCP Inspector (its CLI mode, pinned in tests/mcp/package.json)
# against `naftikod serve` and the Central double, as an operator would point it at the daemon:
# tools/list and tools/call in both protocol eras, tools/list --strict (no schema portability
# problem), a call with arguments that reaches Central, the caller token passed with --header
# (and refused without it), and the Inspector's own --load mode
# (every call answered, no error). Install the tools first: tests/mcp/install.sh
# Exit 77: tools or binaries missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

inspector=$prefix/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js
need_npm
[ -f "$inspector" ] || skip "no MCP Inspector under $prefix (run tests/mcp/install.sh)"
command -v jq >/dev/null || skip "no jq"
start_central
# A caller token, as an operator hands one to an agent (never a real credential).
agent=inspector-agent-token-not-a-secret
printf '%s\n' "$agent" | "$NK_NAFTIKOD" hash-token inspector >"$tmp/tokens"
start_daemon --mcp-auth token --auth-tokens "$tmp/tokens" --ops-listen off

LIST=getapitokens-returns-all-api-tokens
GEN=generatetoken-generates-api-token-given
fail() { echo "FAIL [inspector]: $*"; echo "--- last output"; cat "$tmp/out" "$tmp/err" 2>/dev/null | head -c 2000; echo; exit 1; }
# insp [args...]: the Inspector CLI against the daemon with the caller token; JSON on $tmp/out,
# stderr on $tmp/err; returns its exit status. HOME and the catalog stay inside $tmp.
insp() {
    HOME=$tmp MCP_CATALOG_PATH=$tmp/catalog.json PATH="$(dirname "$node"):$PATH" \
        timeout 120 "$node" "$inspector" --cli "$url" --format json -q "$@" >"$tmp/out" 2>"$tmp/err"
}
auth=(--header "Authorization: Bearer $agent")

for era in legacy modern; do
    insp --protocol-era "$era" "${auth[@]}" --method tools/list || fail "$era tools/list exited $?"
    jq -e --arg l "$LIST" --arg g "$GEN" '[.result.tools[].name] | length == 4 and
        index($l) != null and index($g) != null' "$tmp/out" >/dev/null ||
        fail "$era tools/list: not the capability's four tools"
    insp --protocol-era "$era" "${auth[@]}" --method tools/call --tool-name "$LIST" ||
        fail "$era tools/call exited $?"
    jq -e '.result.isError != true and (.result.structuredContent.tokens | type) == "array"' \
        "$tmp/out" >/dev/null || fail "$era tools/call: no token list in structuredContent"
    echo "ok [inspector]: $era era: tools/list (4 tools) and tools/call $LIST"
done

insp "${auth[@]}" --method tools/list --strict || fail "--strict found schema portability errors (exit $?)"
[ ! -s "$tmp/err" ] || fail "--strict reported: $(cat "$tmp/err")"
echo "ok [inspector]: tools/list --strict: no tool-schema portability problem"

insp --protocol-era modern "${auth[@]}" --method tools/call --tool-name "$GEN" \
    --tool-args-json '{"body":{"name":"inspector-made","role":"Analyst"}}' || fail "generate exited $?"
jq -e '.result.isError != true and .result.structuredContent.metadata.name == "inspector-made"' \
    "$tmp/out" >/dev/null || fail "generate: no token metadata named inspector-made"
insp --protocol-era modern "${auth[@]}" --method tools/call --tool-name "$LIST" || fail "list exited $?"
jq -e 'any(.result.structuredContent.tokens[]; .name == "inspector-made")' "$tmp/out" >/dev/null ||
    fail "the generated token is not in Central's list"
echo "ok [inspector]: tools/call with arguments: the token generated through the Inspector is in Central's list"

# Without the token the daemon answers 401 with a Bearer challenge; the Inspector takes it as
# "authorization required" (it would start an OAuth login where it has a terminal).
st=0; insp --protocol-era modern --stored-auth-only --method tools/list || st=$?
[ "$st" != 0 ] || fail "tools/list without the caller token succeeded"
jq -e '.error.code == "auth_required"' "$tmp/out" "$tmp/err" >/dev/null 2>&1 ||
    grep -qi "401\|unauthori" "$tmp/out" "$tmp/err" || fail "no authorization error without the caller token"
echo "ok [inspector]: without --header: authorization required ($(cat "$tmp/out" "$tmp/err" | jq -r '.error.code // empty' 2>/dev/null | head -n1))"

insp --protocol-era modern "${auth[@]}" --method tools/call --tool-name "$LIST" \
    --load --load-requests 300 --load-concurrency 10 || fail "--load exited $?"
jq -e '.result.requests == 300 and .result.ok == 300 and .result.errors == 0 and
    .result.toolErrors == 0' "$tmp/out" >/dev/null || fail "--load: not every call succeeded"
echo "ok [inspector]: --load: 300 calls, 10 at a time, all answered ($(jq -r '"p50 \(.result.latencyMs.p50) ms, p99 \(.result.latencyMs.p99) ms"' "$tmp/out"))"
! grep -q "$agent" "$tmp/daemon.log" || fail "the caller token is in the daemon log"
