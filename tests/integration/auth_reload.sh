#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# auth_reload.sh: SIGHUP re-reads the --auth-tokens file. A new set is swapped in for new requests
# (requests in flight are never refused because of the swap); a broken or missing file, or a
# broken capability, applies nothing and the previous tokens keep working. The real
# `naftikod serve` in front of the Central test double (TLS), loopback and port 0 only.
#
# usage: auth_reload.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

NAFTIKOD=$1
DOUBLE=$2 # used by nk_start_double
export DOUBLE
SRC=$3
HERE=$(cd "$(dirname "$0")" && pwd)
TOK_A="caller-a-token-not-a-secret-0001"
TOK_B="caller-b-token-not-a-secret-0002"
nk_init auth-reload
nk_start_double
cap="$work/cap.yaml"
cp "$SRC/capabilities/stackrox-apitokenservice.yaml" "$cap"
printf '%s\n' "$TOK_A" | "$NAFTIKOD" hash-token agent-a >"$work/line-a" || fail "hash-token a"
printf '%s\n' "$TOK_B" | "$NAFTIKOD" hash-token agent-b >"$work/line-b" || fail "hash-token b"
tokens="$work/tokens"

# put_tokens LINE-FILE...: replace the tokens file (written aside, then renamed into place).
put_tokens() {
    { echo "# callers (auth_reload.sh)"; cat "$@"; } >"$tokens.new"
    mv "$tokens.new" "$tokens"
}
# wait_count N ERE: until the log has at least N lines matching ERE (bounded: 10 s).
wait_count() {
    local i
    for i in $(seq 200); do
        [ "$(grep -Ec -- "$2" "$work/nk.log" || true)" -ge "$1" ] && return 0
        kill -0 "$NK_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
IN_FORCE='reload: [0-9]+ caller token\(s\) in force from '
FAILED='reload failed'
n_ok=0 n_failed=0
# hup OUTCOME: SIGHUP, then wait until the reload logged OUTCOME (ok|failed).
hup() {
    kill -HUP "$NK_PID"
    if [ "$1" = ok ]; then
        n_ok=$((n_ok + 1))
        wait_count "$n_ok" "$IN_FORCE" || fail "reload $n_ok: no '... caller token(s) in force' line"
    else
        n_failed=$((n_failed + 1))
        wait_count "$n_failed" "$FAILED" || fail "no 'reload failed' line (failure $n_failed)"
    fi
}
touch "$work/all-bodies"
rest() { # rest TOKEN: the status of the REST list call with that bearer token
    curl -sS --max-time 20 -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $1" \
        "$REST/v1/v1/apitokens" || echo 000
    cat "$work/body" >>"$work/all-bodies"
}
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
mcp() { # mcp TOKEN: the status of an MCP tools/list with that bearer token
    curl -sS --max-time 20 -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' \
        -H "Authorization: Bearer $1" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{$META}}" || echo 000
    cat "$work/body" >>"$work/all-bodies"
}
# expect WHO TOKEN CODE: both adapters answer CODE to TOKEN.
expect() {
    local r m
    r=$(rest "$2")
    m=$(mcp "$2")
    if [ "$r" != "$3" ] || [ "$m" != "$3" ]; then
        fail "$1: REST $r, MCP $m (expected $3 on both)"
    fi
}

# 1. start with token A only
put_tokens "$work/line-a"
STACKROX_API_KEY="Bearer $KEY" "$NAFTIKOD" serve "$cap" --rest-port 0 --mcp-port 0 \
    --ops-listen 127.0.0.1:0 --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" \
    --rest-auth token --mcp-auth token --auth-tokens "$tokens" --port-file "$work/nk.ports" \
    2>"$work/nk.log" &
NK_PID=$!
pids+=("$NK_PID")
wait_file "$work/nk.ports" "$NK_PID" || fail "naftikod did not start"
REST="http://127.0.0.1:$(sed -n 's/^rest=//p' "$work/nk.ports")"
MCP="http://127.0.0.1:$(sed -n 's/^mcp=//p' "$work/nk.ports")/mcp"
OPS="http://127.0.0.1:$(sed -n 's/^ops=//p' "$work/nk.ports")"
expect "token A at start" "$TOK_A" 200
expect "token B at start" "$TOK_B" 401
echo "ok: at start token A is accepted (REST and MCP), token B gets 401"

# 2. the file now holds only B: after SIGHUP, B is accepted and A refused
put_tokens "$work/line-b"
hup ok
for _ in $(seq 100); do # the swap is done before the log line; bounded anyway
    [ "$(rest "$TOK_B")" = 200 ] && break
    sleep 0.05
done
expect "token B after the reload" "$TOK_B" 200
expect "token A after the reload" "$TOK_A" 401
wait_until grep -Eq "reload: 1 caller token\(s\) in force from $tokens\$" "$work/nk.log" ||
    fail "no info line with the new count: $(grep -E "$IN_FORCE" "$work/nk.log")"
wait_until grep -q 'caller=agent-b' "$work/nk.log" || fail "the access log does not name agent-b"
echo "ok: SIGHUP swapped the tokens: B accepted, A 401 on both adapters; logged: $(grep -Eo "$IN_FORCE" "$work/nk.log" | head -n1 | sed 's/ from $//')"

# 3. under load with B: 6 reloads alternating {B} and {A, B}; no request with B is refused
LOADGEN_AUTHORIZATION="Bearer $TOK_B" python3 "$HERE/loadgen.py" "${REST##*:}" 4 2 \
    "$work/load.json" /v1/v1/apitokens &
load=$!
pids+=("$load")
sleep 0.3
for i in 1 2 3; do
    put_tokens "$work/line-a" "$work/line-b"
    hup ok
    [ "$(rest "$TOK_A")" = 200 ] || fail "load round $i: A not accepted with {A, B} in force"
    put_tokens "$work/line-b"
    hup ok
    [ "$(rest "$TOK_A")" = 401 ] || fail "load round $i: A still accepted with {B} in force"
done
wait "$load" || fail "load generator failed"
jq -e '.failed == 0 and .refused == 0 and .ok > 0' "$work/load.json" >/dev/null ||
    fail "requests with token B failed during the reloads: $(cat "$work/load.json")"
echo "ok: 6 token reloads under load: $(jq -c '{ok, failed, refused}' "$work/load.json") with B; A followed each swap"

# 4. a broken file: the error names FILE:LINE, nothing is applied, B still works
{ echo "# callers (auth_reload.sh)"; cat "$work/line-b"; echo "sha256:not-hex  agent-c"; } \
    >"$tokens.new"
mv "$tokens.new" "$tokens"
hup failed
grep -Fq "reload failed: $tokens:3: expected 'sha256:<64 hex digits> NAME'" "$work/nk.log" ||
    fail "the failed reload does not name $tokens:3: $(grep "$FAILED" "$work/nk.log" | tail -n1)"
grep -Fq "still serving the previous table and caller tokens" "$work/nk.log" ||
    fail "the failed reload does not say the previous tokens stay"
expect "token B after a broken tokens file" "$TOK_B" 200
expect "token A after a broken tokens file" "$TOK_A" 401
echo "ok: broken file: $(grep -Eo "reload failed: [^ ]+:3: [^(;]*[^(; ]" "$work/nk.log" | head -n1 | sed "s|$work/||"); B still 200, A still 401"

# 5. a missing file: same
mv "$tokens" "$work/tokens.gone"
hup failed
grep -Fq "reload failed: cannot read the tokens file $tokens: " "$work/nk.log" ||
    fail "a missing tokens file is not named: $(grep "$FAILED" "$work/nk.log" | tail -n1)"
expect "token B after a missing tokens file" "$TOK_B" 200
echo "ok: missing file: the error names it; B still 200"

# 6. a valid new file but a broken capability: nothing of the reload is applied
put_tokens "$work/line-a"
sed 's/call: stackrox-apitokenservice.getapitokens$/call: stackrox-apitokenservice.nosuchop/' \
    "$SRC/capabilities/stackrox-apitokenservice.yaml" >"$cap"
grep -q nosuchop "$cap" || fail "could not break the capability copy"
hup failed
grep -q "error(s) in the capabilities; still serving the previous table" "$work/nk.log" ||
    fail "no failed capability reload logged"
expect "token B after a failed capability reload" "$TOK_B" 200
expect "token A after a failed capability reload" "$TOK_A" 401
echo "ok: a broken capability with a valid new tokens file: the tokens are not swapped (B 200, A 401)"

# 7. both fixed: the next SIGHUP applies them
cp "$SRC/capabilities/stackrox-apitokenservice.yaml" "$cap"
hup ok
expect "token A after the repaired reload" "$TOK_A" 200
expect "token B after the repaired reload" "$TOK_B" 401
curl -sS --max-time 10 "$OPS/metrics" >"$work/metrics" || fail "no /metrics"
if ! grep -qx "naftikod_reloads_total{result=\"ok\"} $n_ok" "$work/metrics" ||
    ! grep -qx "naftikod_reloads_total{result=\"error\"} $n_failed" "$work/metrics"; then
    fail "reloads not counted ($n_ok ok, $n_failed error): $(grep reloads "$work/metrics")"
fi
echo "ok: the repaired reload applies the file (A 200, B 401); naftikod_reloads_total ok $n_ok, error $n_failed"

kill -TERM "$NK_PID"
wait "$NK_PID" || fail "exit status $? after SIGTERM"
for s in "$KEY" "$TOK_A" "$TOK_B"; do
    if grep -aq -- "$s" "$work/all-bodies" "$work"/*.log; then
        fail "a credential or caller token appears in a response or a log line"
    fi
done
echo "ok: no credential or caller token in any response or log line"
