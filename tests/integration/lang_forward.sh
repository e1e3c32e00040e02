#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lang_forward.sh: `forward` on a REST resource (issue 15, item 1) served against the Central
# double: any method and sub-path under /central/ reaches Central's /v1/ with its body and query;
# the status, content type and body come back as Central sent them; only trusted headers pass
# and the consumer's credential replaces the caller's; path traversal (.., %2e%2e, %2f, %5c, \,
# //, NUL, bad escapes) is refused with 400 before anything is sent; the answer-size limit holds.
#
# usage: lang_forward.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init lang-forward lang.forward
DOC="$SRC/tests/data/spec/valid/forward.yaml"
nk_start_double
nk_serve nk "$DOC" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --max-response 65536

call() { # call WHAT [curl args...]: sets STATUS and CTYPE, the body in $work/body
    local what=$1 out
    shift
    out=$(curl -sS --max-time 30 -o "$work/body" -w '%{http_code} %{content_type}' "$@") ||
        fail "$what: curl failed"
    STATUS=${out%% *}
    CTYPE=${out#* }
}
last_seq() { nk_requests | jq '[.[].seq] | max // 0'; }
n_since() { nk_requests | jq --argjson s "$1" '[.[] | select(.seq > $s)] | length'; }
last_req() { nk_requests | jq '.[-1]'; }

# --- relay: method, sub-path, query, body; status, type and body as Central sent them
call "generate" -X POST "$REST/central/apitokens/generate" -H 'Content-Type: application/json' \
    -H 'X-Trace: t-1' -H 'X-Secret: s-1' -H 'Cookie: session=c-1' -H 'X-Api-Version: 1999' \
    -H 'Authorization: Bearer caller-token-not-a-secret' -d '{"name":"fwd","roles":["Analyst"]}'
[ "$STATUS" = 200 ] || fail "generate through forward: $STATUS $(cat "$work/body")"
case $CTYPE in application/json*) ;; *) fail "content type not relayed: $CTYPE" ;; esac
id=$(jq -er '.metadata.id' "$work/body") || fail "no token in $(cat "$work/body")"
pass "POST relayed with its body; status, type and body came back"
last_req >"$work/rec"
jq -e '.method == "POST" and .path == "/v1/apitokens/generate" and
       .body == "{\"name\":\"fwd\",\"roles\":[\"Analyst\"]}"' "$work/rec" >/dev/null ||
    fail "upstream request: $(cat "$work/rec")"
pass "the upstream got the method, the path under the consumer's base and the body"
jq -e --arg k "Bearer $KEY" '.authorization == [$k]' "$work/rec" >/dev/null ||
    fail "credential: $(jq -c .authorization "$work/rec")"
pass "the consumer's credential replaced the caller's Authorization"
jq -e '[.headers[] | .[0] | ascii_downcase] as $h | ($h | index("x-trace")) != null and
       ($h | index("x-secret")) == null and ($h | index("cookie")) == null' "$work/rec" >/dev/null ||
    fail "headers: $(jq -c '[.headers[] | .[0]]' "$work/rec")"
jq -e '[.headers[] | select(.[0] | ascii_downcase == "x-trace") | .[1]] == ["t-1"]' "$work/rec" \
    >/dev/null || fail "X-Trace value"
pass "only trusted headers passed (X-Trace yes; X-Secret, Cookie no)"
jq -e '[.headers[] | select(.[0] | ascii_downcase == "x-api-version") | .[1]] == ["2026-12-06"]' \
    "$work/rec" >/dev/null || fail "consumer header: $(jq -c '[.headers[] | .[0]]' "$work/rec")"
pass "the consumer's own header value went with it, over the caller's"

call "query" "$REST/central/apitokens?revoked=false"
[ "$STATUS" = 200 ] || fail "query: $STATUS"
jq -e --arg id "$id" 'any(.tokens[]; .id == $id)' "$work/body" >/dev/null || fail "list: $(cat "$work/body")"
[ "$(last_req | jq -r .query)" = "revoked=false" ] || fail "query not relayed: $(last_req | jq -c .query)"
pass "GET with a query relayed"

call "patch" -X PATCH "$REST/central/apitokens/revoke/$id"
[ "$STATUS" = 200 ] && [ "$(cat "$work/body")" = "{}" ] || fail "PATCH: $STATUS $(cat "$work/body")"
pass "PATCH relayed"

call "central error" "$REST/central/apitokens/no-such-id"
[ "$STATUS" = 400 ] || fail "error status not relayed: $STATUS"
jq -e '.code == 3 and (.message | test("does not exist"))' "$work/body" >/dev/null ||
    fail "error body not relayed: $(cat "$work/body")"
call "central 501" -X DELETE "$REST/central/apitokens/x"
[ "$STATUS" = 501 ] || fail "DELETE: $STATUS"
pass "Central's error statuses and bodies come back as it sent them"
before=$(last_seq)
for m in TRACE OPTIONS CONNECT; do
    call "$m" -X "$m" "$REST/central/apitokens"
    [ "$STATUS" = 405 ] || [ "$STATUS" = 400 ] || [ "$STATUS" = 501 ] || fail "$m: $STATUS"
done
[ "$(n_since "$before")" = 0 ] || fail "a TRACE/OPTIONS/CONNECT went upstream"
pass "TRACE, OPTIONS and CONNECT are not relayed"

# --- traversal battery: 400, nothing sent
before=$(last_seq)
for p in '/central/../ping' '/central/%2e%2e/ping' '/central/.%2E/ping' '/central/%2E%2e/ping' \
    '/central/apitokens/..' '/central/./apitokens' '/central/%2e/apitokens' \
    '/central/apitokens/%2f..%2fping' '/central/apitokens/a%2Fb' '/central/a%5c..%5cping' \
    '/central/a\..\ping' '/central//ping' '/central/' '/central/a%00b' '/central/a%zzb' \
    '/central/a%2' '/central/a"b' '/central/%C0%AE%C0%AE/ping'; do
    call "traversal $p" --path-as-is "$REST$p"
    case $p in
    '/central/%C0%AE%C0%AE/ping')
        # an overlong '.' is no dot segment to RFC 3986: it goes as it came (Central: 404)
        [ "$STATUS" = 404 ] || fail "$p: $STATUS"
        before=$(last_seq)
        continue ;;
    esac
    [ "$STATUS" = 400 ] || fail "$p: expected 400, got $STATUS $(cat "$work/body")"
done
[ "$(n_since "$before")" = 0 ] || fail "a refused path went upstream: $(nk_requests | jq -c '[.[-3:][] | .path]')"
pass "traversal battery: every dot segment, encoded slash or backslash refused with 400, nothing sent"

# --- the answer-size limit of a call (--max-response 65536)
nk_fault '{"mode":"big","bytes":200000,"count":1}'
call "big" "$REST/central/apitokens"
[ "$STATUS" = 502 ] || fail "big answer: $STATUS"
jq -e '.detail | test("too large")' "$work/body" >/dev/null || fail "big: $(cat "$work/body")"
pass "an answer over --max-response is a 502"

# --- streamed: an answer without Content-Length that outgrows --max-response has its head out
# already; the relay stops at the limit and the chunked body is cut (curl: exit 18)
nk_fault '{"mode":"drip","bytes":200000,"piece":4096,"hold":false,"count":1}'
rc=0
out=$(curl -sS --max-time 30 -o "$work/body" -w '%{http_code}' "$REST/central/apitokens" 2>"$work/err") || rc=$?
[ "$out" = 200 ] || fail "streamed over the limit: head $out"
[ "$rc" = 18 ] || fail "streamed over the limit: the body was not cut (curl exit $rc: $(cat "$work/err"))"
got=$(wc -c <"$work/body")
[ "$got" -le 65536 ] || fail "streamed over the limit: $got bytes relayed, more than --max-response"
wait_until grep -q 'answer broke off after' "$work/nk.log" || fail "the cut stream is not logged"
pass "a streamed answer over --max-response is cut at the limit ($got bytes), logged"

# --- an HTML answer is relayed with its type, sandboxed
nk_fault '{"mode":"status","status":503,"count":1}'
STATUS=$(curl -sS --max-time 30 -D "$work/h" -o "$work/body" -w '%{http_code}' "$REST/central/apitokens")
[ "$STATUS" = 503 ] || fail "status fault: $STATUS"
tr -d '\r' <"$work/h" | grep -qi '^content-type: text/html' || fail "type: $(cat "$work/h")"
tr -d '\r' <"$work/h" | grep -qi '^content-security-policy: sandbox' || fail "no sandbox: $(cat "$work/h")"
tr -d '\r' <"$work/h" | grep -qi '^x-content-type-options: nosniff' || fail "no nosniff"
pass "an HTML error page comes back as sent, with CSP sandbox and nosniff"

# --- operations still win on their own paths; the forward does not take them
call "ping" "$REST/ping"
[ "$STATUS" = 200 ] || fail "ping: $STATUS"
pass "an operation beside the forward still answers"

nk_stop
pass "clean stop"

# --- streaming: the answer is relayed as it comes, whole, with flow control and cancellation
nk_serve nk-stream "$DOC" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --max-response 4194304
direct() { # direct FAULT OUT: the double's own answer to GET /v1/apitokens under FAULT
    nk_fault "$1"
    curl -sS --max-time 30 --cacert "$work/central.crt" -H "Authorization: Bearer $KEY" \
        -o "$2" "https://127.0.0.1:$CPORT/v1/apitokens" || fail "direct fetch"
}
nk_fault '{"mode":"big","bytes":3000000,"count":1}'
STATUS=$(curl -sS --max-time 30 -D "$work/h" -o "$work/body" -w '%{http_code}' "$REST/central/apitokens") ||
    fail "big streamed: curl failed"
[ "$STATUS" = 200 ] || fail "big streamed: $STATUS"
tr -d '\r' <"$work/h" | grep -qi '^transfer-encoding: chunked' || fail "not streamed: $(cat "$work/h")"
direct '{"mode":"big","bytes":3000000,"count":1}' "$work/direct"
cmp -s "$work/body" "$work/direct" || fail "big streamed: the bytes differ ($(wc -c <"$work/body") vs $(wc -c <"$work/direct"))"
pass "a 3 MB answer (46 times the 64 KiB buffer) is relayed chunked, byte for byte"

# a client that reads the head and the first chunk while the double still holds the rest
cat >"$work/stream_client.py" <<'PY'
import json, socket, ssl, sys, urllib.request
port, path, mode, cport, ca, out = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
def double(method, p):
    r = urllib.request.Request("https://127.0.0.1:%s%s" % (cport, p), method=method,
                               data=b"{}" if method == "POST" else None)
    return json.load(urllib.request.urlopen(r, context=ctx, timeout=10))
s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n"
           % (path, port)).encode())
data = b""
while b"\r\n\r\n" not in data:
    b = s.recv(65536)
    if not b:
        sys.exit("closed before the head: %r" % data)
    data += b
head, rest = data.split(b"\r\n\r\n", 1)
if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
    sys.exit("head: %r %r" % (head, rest))
def first_chunk_complete(buf):
    if b"\r\n" not in buf:
        return False
    size = int(buf.split(b"\r\n", 1)[0].split(b";")[0], 16)
    return len(buf.split(b"\r\n", 1)[1]) >= size
while not first_chunk_complete(rest):
    b = s.recv(65536)
    if not b:
        sys.exit("closed before the first chunk")
    rest += b
st = double("GET", "/__double/faults")["drip"]
if st["released"] or st["done"]:
    sys.exit("the double had already sent everything: %r" % st)
print("first chunk while the double held the rest: %r" % st)
if mode == "close":
    s.close()
    sys.exit(0)
double("POST", "/__double/faults/release")
while True:
    b = s.recv(65536)
    if not b:
        break
    rest += b
body = b""
while True:
    line, rest = rest.split(b"\r\n", 1)
    size = int(line.split(b";")[0], 16)
    if size == 0:
        break
    body += rest[:size]
    rest = rest[size + 2:]
open(out, "wb").write(body)
PY
port=${REST##*:}
nk_fault '{"mode":"drip","bytes":300000,"piece":4096,"hold":true,"seconds":30,"count":1}'
python3 "$work/stream_client.py" "$port" /central/apitokens release "$CPORT" "$work/central.crt" \
    "$work/drip" || fail "drip: the first bytes did not arrive before the double finished"
direct '{"mode":"big","bytes":300000,"count":1}' "$work/direct"
cmp -s "$work/drip" "$work/direct" || fail "drip: the bytes differ ($(wc -c <"$work/drip") vs $(wc -c <"$work/direct"))"
pass "a dripping upstream: the first chunk reached the caller while the double held the rest; then all of it, whole"

# a caller who goes away mid-stream cancels the upstream transfer
drip_state() { curl -sS --max-time 10 --cacert "$work/central.crt" "https://127.0.0.1:$CPORT/__double/faults" | jq -c .drip; }
nk_fault '{"mode":"drip","bytes":300000,"piece":4096,"hold":true,"seconds":30,"count":1}'
python3 "$work/stream_client.py" "$port" /central/apitokens close "$CPORT" "$work/central.crt" \
    "$work/unused" || fail "disconnect: no first chunk"
wait_until grep -q 'went away; upstream transfer cancelled' "$work/nk-stream.log" ||
    fail "the caller's disconnect did not cancel the upstream transfer: $(tail -5 "$work/nk-stream.log")"
curl -sS --max-time 10 --cacert "$work/central.crt" -X POST -d '{}' \
    "https://127.0.0.1:$CPORT/__double/faults/release" >/dev/null || fail "release"
wait_until sh -c "curl -sS --max-time 10 --cacert '$work/central.crt' https://127.0.0.1:$CPORT/__double/faults | jq -e '.drip.aborted' >/dev/null" ||
    fail "the double's transfer was not cut: $(drip_state)"
pass "a caller who disconnects mid-stream cancels the upstream transfer (the double saw its connection end: $(drip_state))"
nk_fault '{"mode":"status","status":204,"body":"","content_type":"text/plain","count":1}'
call "no content" "$REST/central/apitokens"
[ "$STATUS" = 204 ] && [ ! -s "$work/body" ] || fail "a 204 relayed: $STATUS $(cat "$work/body")"
pass "an answer without a body (204) is relayed as one"
call "after the streams" "$REST/ping"
[ "$STATUS" = 200 ] || fail "ping after the streams: $STATUS"
nk_stop
pass "clean stop (streaming)"

# --- --rest-auth token: the caller's Authorization is naftikod's own token and never goes
# upstream, even when a forward to a consumer without authentication trusts it
AGENT="agent-token-not-a-secret-5678"
printf '%s\n' "$AGENT" | "$NAFTIKOD" hash-token agent-1 >"$work/tokens" || fail "hash-token"
sed -e '/authentication:/,/placement: header/d' "$DOC" >"$work/bare.yaml"
grep -q 'STACKROX_API_KEY}}' "$work/bare.yaml" && fail "the bare fixture still has the credential"
nk_serve nk-token "$work/bare.yaml" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --rest-auth token --auth-tokens "$work/tokens"
call "token mode" -H "Authorization: Bearer $AGENT" -H 'X-Trace: t-2' "$REST/central/apitokens"
[ "$STATUS" = 401 ] || fail "token mode, consumer without credential: expected Central's 401, got $STATUS"
last_req >"$work/rec"
jq -e '.authorization == [] and any(.headers[]; .[1] == "t-2")' "$work/rec" >/dev/null ||
    fail "token mode: $(jq -c '[.authorization, [.headers[] | .[0]]]' "$work/rec")"
grep -q "$AGENT" "$work/rec" && fail "naftikod's own token went upstream"
pass "with --rest-auth token the caller's Authorization (naftikod's token) never goes upstream"
nk_stop
pass "clean stop (token mode)"

# --- --permissions: a forward is a route like any other; what is not granted is denied before
# anything is sent, and the audit trail has one record per forwarded request
cat >"$work/perms.yaml" <<'EOF2'
callers:
  - name: lister
    match:
      token: agent-1
    grants:
      - routes: "GET /central/apitokens*"
EOF2
nk_serve nk-perm "$DOC" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/central.crt" --rest-auth token --auth-tokens "$work/tokens" \
    --permissions "$work/perms.yaml" --audit-log "$work/audit.log"
call "granted forward" -H "Authorization: Bearer $AGENT" "$REST/central/apitokens"
[ "$STATUS" = 200 ] || fail "a granted forward: $STATUS $(cat "$work/body")"
seq=$(last_seq)
call "denied forward" -X POST -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
    -d '{"name":"nope","roles":["Admin"]}' "$REST/central/apitokens/generate"
[ "$STATUS" = 403 ] || fail "a forward no grant covers: expected 403, got $STATUS"
jq -e '.status == 403 and (.detail | test("forward|POST"))' "$work/body" >/dev/null ||
    fail "the 403 does not say what was refused: $(cat "$work/body")"
[ "$(n_since "$seq")" = 0 ] || fail "a denied forward reached Central"
call "denied path" -H "Authorization: Bearer $AGENT" "$REST/central/roles"
[ "$STATUS" = 403 ] || fail "a GET outside the granted glob: expected 403, got $STATUS"
wait_until test -s "$work/audit.log" || fail "no audit trail"
[ "$(wc -l <"$work/audit.log")" = 3 ] || fail "expected 3 audit records: $(cat "$work/audit.log")"
jq -se '[.[] | .decision] == ["allow", "deny", "deny"] and
        (.[0].upstream_status == 200) and all(.[]; .caller.name == "agent-1")' \
    "$work/audit.log" >/dev/null || fail "audit records: $(cat "$work/audit.log")"
grep -q "$AGENT" "$work/audit.log" && fail "the caller's token is in the audit trail"
pass "with --permissions a forward is granted or denied like a route, each on record"
nk_stop
