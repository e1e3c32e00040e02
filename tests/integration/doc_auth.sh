#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# doc_auth.sh: the capability document's own inbound `authentication` on REST and MCP adapters
# (bearer, basic, apikey in a header and in the query; secrets from binds), each refusing a
# missing or wrong credential with 401 and its challenge; digest refused at load, oauth2 served
# (its RFC 9728 challenge without a token), different authentication on one shared listener
# refused; --rest-auth token wins over the document; a document caller in the permissions file.
# The real `naftikod serve` in front of the Central double (TLS), loopback and port 0 only.
#
# usage: doc_auth.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init doc-auth
nk_start_double
export INBOUND_TOKEN="doc-bearer-not-a-secret-00000001"
export INBOUND_USER="alice"
export INBOUND_PASSWORD="doc-password-not-a-secret-00002"
export INBOUND_KEY="doc-apikey-not-a-secret-000000003"
WRONG="wrong-credential-not-a-secret-0004"
AGENT="agent-token-not-a-secret-00000005"
printf '%s\n' "$AGENT" | "$NAFTIKOD" hash-token agent >"$work/tokens" || fail "hash-token"

# variant OUT REST_AUTH MCP_AUTH: the bundled capability with these `authentication` blocks
# (YAML flow mappings, "" for none) on its REST and MCP adapters, and the binds they use.
variant() {
    python3 - "$CAP" "$1" "$2" "$3" <<'PY'
import sys
src, out, rest, mcp = sys.argv[1:5]
s = open(src).read()
s = s.replace("    STACKROX_API_KEY: STACKROX_API_KEY\n",
              "    STACKROX_API_KEY: STACKROX_API_KEY\n    INBOUND_TOKEN: INBOUND_TOKEN\n"
              "    INBOUND_USER: INBOUND_USER\n    INBOUND_PASSWORD: INBOUND_PASSWORD\n"
              "    INBOUND_KEY: INBOUND_KEY\n", 1)
if rest:
    s = s.replace("    port: 8080\n", "    port: 8080\n    authentication: %s\n" % rest, 1)
if mcp:
    s = s.replace("    port: 9090\n", "    port: 9090\n    authentication: %s\n" % mcp, 1)
open(out, "w").write(s)
PY
}
start() { # start NAME CAPFILE [flags]
    local name=$1 cap=$2
    shift 2
    nk_serve "$name" "$cap" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt" "$@"
}
touch "$work/all-bodies"
call() { nk_fetch "$@"; } # STATUS, $work/body (and all-bodies), $work/headers
challenge() { # challenge WHAT ERE: the last answer's WWW-Authenticate matches ERE
    tr -d '\r' <"$work/headers" | grep -Eqi "^www-authenticate: $2\$" ||
        fail "$1: no 'WWW-Authenticate: $2' (headers: $(tr -d '\r' <"$work/headers" | tr '\n' '|'))"
}
no_challenge() {
    ! tr -d '\r' <"$work/headers" | grep -qi '^www-authenticate:' || fail "$1: a challenge was sent"
}
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28')
mcp_list() { # mcp_list [URL-SUFFIX] [curl args]
    local suffix=$1
    shift
    call -X POST "$MCP$suffix" "${MH[@]}" -H 'Mcp-Method: tools/list' "$@" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{$META}}"
}
b64() { printf '%s' "$1" | base64 -w0; }

# 1. bearer on REST, basic on MCP
variant "$work/cap1.yaml" "{type: bearer, token: '{{env.INBOUND_TOKEN}}'}" \
    "{type: basic, username: '{{env.INBOUND_USER}}', password: '{{env.INBOUND_PASSWORD}}'}"
start one "$work/cap1.yaml"
call "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "REST bearer, no credential: $STATUS"
challenge "REST bearer, no credential" 'Bearer realm="naftikod"'
call -H "Authorization: Bearer $WRONG" "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "REST bearer, wrong token: $STATUS"
challenge "REST bearer, wrong token" 'Bearer realm="naftikod"'
call -H "Authorization: Bearer $INBOUND_TOKEN" "$REST/v1/v1/apitokens"
[ "$STATUS" = 200 ] || fail "REST bearer, right token: $STATUS"
pass "document bearer on REST: 401 + Bearer challenge without or with a wrong token, 200 with the bound one"
mcp_list ""
[ "$STATUS" = 401 ] || fail "MCP basic, no credential: $STATUS"
challenge "MCP basic, no credential" 'Basic realm="naftikod", charset="UTF-8"'
mcp_list "" -H "Authorization: Basic $(b64 "$INBOUND_USER:$WRONG")"
[ "$STATUS" = 401 ] || fail "MCP basic, wrong password: $STATUS"
challenge "MCP basic, wrong password" 'Basic realm="naftikod", charset="UTF-8"'
mcp_list "" -H "Authorization: Basic $(b64 "mallory:$INBOUND_PASSWORD")"
[ "$STATUS" = 401 ] || fail "MCP basic, wrong user: $STATUS"
mcp_list "" -H "Authorization: Basic !!!notbase64"
[ "$STATUS" = 401 ] || fail "MCP basic, malformed: $STATUS"
mcp_list "" -H "Authorization: Basic $(b64 "$INBOUND_USER:$INBOUND_PASSWORD")"
[ "$STATUS" = 200 ] || fail "MCP basic, right credential: $STATUS"
jq -e '.result.tools | length == 4' "$work/body" >/dev/null || fail "MCP basic: tools/list"
pass "document basic on MCP: 401 + Basic challenge (none, wrong password, wrong user, malformed), 200 with the bound user and password"
wait_until grep -q 'caller=alice' "$work/one.log" || fail "the access log does not name the basic user"
nk_stop

# 2. apikey in the query on REST, in a header on MCP; a document caller in the permissions file
variant "$work/cap2.yaml" "{type: apikey, key: api_key, value: '{{env.INBOUND_KEY}}', placement: query}" \
    "{type: apikey, key: X-Api-Key, value: '{{env.INBOUND_KEY}}', placement: header}"
cat >"$work/perms.yaml" <<'YAML'
callers:
  - name: rest-key
    match: {document: stackrox-apitokenservice-rest}
    grants:
      - class: readOnly
  - name: mcp-key
    match: {document: stackrox-apitokenservice-mcp}
    grants:
      - tools: getapitoken-*
YAML
start two "$work/cap2.yaml" --permissions "$work/perms.yaml"
call "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "REST apikey query, none: $STATUS"
no_challenge "REST apikey"
jq -e '.detail | test("query parameter .api_key.")' "$work/body" >/dev/null ||
    fail "REST apikey: the problem does not name the query parameter: $(cat "$work/body")"
call "$REST/v1/v1/apitokens?api_key=$WRONG"
[ "$STATUS" = 401 ] || fail "REST apikey query, wrong key: $STATUS"
call "$REST/v1/v1/apitokens?api_key=$INBOUND_KEY"
[ "$STATUS" = 200 ] || fail "REST apikey query, right key: $STATUS $(cat "$work/body")"
call -X POST -H 'Content-Type: application/json' -d '{"name":"x","roles":["Admin"]}' \
    "$REST/v1/v1/apitokens/generate?api_key=$INBOUND_KEY"
[ "$STATUS" = 403 ] || fail "document caller rest-key generate: $STATUS (its grant is readOnly)"
pass "document apikey in the query on REST: 401 without a challenge naming the parameter, 200 with the key; the permissions file matches the document caller"
mcp_list ""
[ "$STATUS" = 401 ] || fail "MCP apikey header, none: $STATUS"
no_challenge "MCP apikey"
grep -q "header 'X-Api-Key'" "$work/body" || fail "MCP apikey: the answer does not name the header"
mcp_list "" -H "X-Api-Key: $WRONG"
[ "$STATUS" = 401 ] || fail "MCP apikey header, wrong key: $STATUS"
mcp_list "" -H "X-Api-Key: $INBOUND_KEY"
[ "$STATUS" = 200 ] || fail "MCP apikey header, right key: $STATUS"
jq -e '[.result.tools[].name] == ["getapitoken-returns-api-token-metadata"]' "$work/body" \
    >/dev/null || fail "MCP document caller's tools/list: $(cat "$work/body")"
pass "document apikey in a header on MCP: 401 without a challenge naming the header, 200 with the key, tools/list filtered for the document caller"
nk_stop

# 3. the option wins: --rest-auth token replaces the document's bearer
start three "$work/cap1.yaml" --rest-auth token --auth-tokens "$work/tokens"
grep -q "rest-auth token replaces the document's 'bearer' authentication" "$work/three.log" ||
    fail "no warning that the option replaces the document's authentication"
call -H "Authorization: Bearer $INBOUND_TOKEN" "$REST/v1/v1/apitokens"
[ "$STATUS" = 401 ] || fail "--rest-auth token: the document's token was admitted: $STATUS"
call -H "Authorization: Bearer $AGENT" "$REST/v1/v1/apitokens"
[ "$STATUS" = 200 ] || fail "--rest-auth token: the tokens-file token: $STATUS"
nk_stop
pass "--rest-auth token wins over the document's authentication (warned at start)"

# 4. digest refused at load, oauth2 served (its challenge), two authentications on one listener refused
variant "$work/cap4.yaml" "{type: digest, username: '{{env.INBOUND_USER}}', password: '{{env.INBOUND_PASSWORD}}'}" ""
rc=0
"$NAFTIKOD" check "$work/cap4.yaml" >"$work/check4.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "digest authentication of an adapter is not supported: checking it needs server nonces" \
    "$work/check4.out" || fail "digest on an adapter: exit $rc, $(cat "$work/check4.out")"
variant "$work/cap5.yaml" "" "{type: oauth2, authorizationServerUri: 'https://as.example', resource: 'https://mcp.example/mcp', scopes: [tokens.read]}"
"$NAFTIKOD" check "$work/cap5.yaml" >"$work/check5.out" 2>&1 || fail "oauth2 block does not load: $(cat "$work/check5.out")"
# oauth2 runs (integration.oauth has the tokens): without a token, the RFC 9728 challenge
nk_launch five "STACKROX_API_KEY=Bearer $KEY" -- "$work/cap5.yaml" --rest-port 0 --mcp-port 0 \
    --ops-listen off --var "central-host=127.0.0.1:$CPORT" ||
    fail "serve did not start an oauth2 adapter: $(cat "$work/five.log")"
st=$(curl -sS --max-time 10 -o /dev/null -D "$work/five.h" -w '%{http_code}' -X POST "$MCP" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
[ "$st" = 401 ] && tr -d '\r' <"$work/five.h" | grep -qi '^www-authenticate: Bearer resource_metadata=' ||
    fail "the document's oauth2 adapter without a token: $st $(cat "$work/five.h")"
nk_stop
# a second document whose REST adapter has no authentication, on the same listener as cap1's
sed -e 's/stackrox-apitokenservice-rest/other-rest/; s/stackrox-apitokenservice-mcp/other-mcp/' \
    -e 's/namespace: stackrox-apitokenservice$/namespace: other-ns/' \
    -e 's/call: stackrox-apitokenservice\./call: other-ns./; s/- namespace: env$/- namespace: env2/' \
    "$CAP" >"$work/cap6.yaml"
rc=0
nk_launch six "STACKROX_API_KEY=Bearer $KEY" -- "$work/cap1.yaml" "$work/cap6.yaml" \
    --ops-listen off --var "central-host=127.0.0.1:$CPORT" --rest-listen 127.0.0.1:0 \
    --mcp-listen 127.0.0.1:0 --mcp-tool-prefix namespace || rc=$?
[ "$rc" = 1 ] && grep -q "rest adapter 'other-rest' and 'stackrox-apitokenservice-rest' .* share listener 127.0.0.1 0 but declare different 'authentication'" \
    "$work/six.log" || fail "a shared listener with two authentications: $(cat "$work/six.log")"
pass "digest refused at load (with the reason), oauth2 answers the RFC 9728 challenge, documents sharing a listener with different authentication refused"

for s in "$INBOUND_TOKEN" "$INBOUND_PASSWORD" "$INBOUND_KEY" "$AGENT" "$KEY"; do
    if grep -aqF -- "$s" "$work/all-bodies" "$work"/*.log; then
        fail "a credential appears in a response or a log line"
    fi
done
pass "no credential in any response or log line"
