#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tokens_reload.sh: SIGHUP reads the caller tokens file (--auth-tokens) again. A good file takes
# effect on both adapters (the new token is accepted, the removed one gets 401); a broken file
# is refused with FILE:LINE in the log and the previous tokens (and table) keep serving.
#
# usage: tokens_reload.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
TOKA="agent-a-token-not-a-secret-1111"
TOKB="agent-b-token-not-a-secret-2222"
nk_init tokens-reload
nk_start_double

# put_tokens LINES...: replace the tokens file whole (written aside, then renamed)
put_tokens() {
    printf '%s\n' "$@" >"$work/tokens.new"
    mv "$work/tokens.new" "$work/tokens"
}
hash_of() { printf '%s\n' "$1" | "$NAFTIKOD" hash-token "$2"; }
put_tokens "$(hash_of "$TOKA" agent-a)"

nk_serve nk "$CAP" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --rest-auth token --mcp-auth token --auth-tokens "$work/tokens"
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'

rest_as() { curl -sS --max-time 20 -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $1" \
    "$REST/v1/v1/apitokens"; }
mcp_as() { curl -sS --max-time 20 -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $1" \
    -X POST "$MCP" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
    -H 'Mcp-Method: tools/list' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{$META}}"; }
# expect WHAT TOKEN REST_STATUS MCP_STATUS
expect() {
    local r m
    r=$(rest_as "$2")
    m=$(mcp_as "$2")
    [ "$r" = "$3" ] && [ "$m" = "$4" ] || fail "$1: REST $r (want $3), MCP $m (want $4)"
}
# reload_and_wait PATTERN: SIGHUP, then until the log has one more line matching PATTERN (10 s)
reload_and_wait() {
    local before i
    before=$(grep -c -- "$1" "$work/nk.log" || true)
    kill -HUP "$NK_PID"
    for i in $(seq 200); do
        [ "$(grep -c -- "$1" "$work/nk.log" || true)" -gt "$before" ] && return 0
        sleep 0.05
    done
    fail "no log line matching '$1' after SIGHUP"
}

expect "start" "$TOKA" 200 200
expect "start, unknown token" "$TOKB" 401 401
echo "ok: agent-a's token is accepted, agent-b's is not"

# 1. A good file: only agent-b.
put_tokens "$(hash_of "$TOKB" agent-b)"
reload_and_wait "reload: 1 caller token(s) from $work/tokens in force"
expect "after the reload, agent-b" "$TOKB" 200 200
expect "after the reload, agent-a" "$TOKA" 401 401
grep -q "caller=agent-b" "$work/nk.log" || fail "the access line does not name agent-b"
echo "ok: SIGHUP put the new tokens file in force on both adapters (agent-b in, agent-a out)"

# 2. A broken file: refused whole, naming the line; agent-b keeps working, agent-a stays out.
put_tokens "$(hash_of "$TOKA" agent-a)" "sha256:not-a-hash  broken"
reload_and_wait "reload failed: $work/tokens:2: "
expect "after the failed reload, agent-b" "$TOKB" 200 200
expect "after the failed reload, agent-a" "$TOKA" 401 401
grep -q "still serving the previous table and caller tokens" "$work/nk.log" ||
    fail "the failed reload does not say what keeps serving"
echo "ok: a broken tokens file is refused with FILE:LINE; the previous tokens keep serving"

# 3. A missing file: refused the same way.
rm -f "$work/tokens"
reload_and_wait "reload failed: cannot read the tokens file $work/tokens"
expect "after the missing file, agent-b" "$TOKB" 200 200
echo "ok: a missing tokens file is refused; the previous tokens keep serving"

nk_stop
if grep -q -e "$TOKA" -e "$TOKB" -e "$KEY" "$work/nk.log"; then
    fail "a token or the key appears in the log"
fi
echo "ok: exit 0; no token and no key in the log"
echo "PASS [tokens_reload]"
