#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# selftest.sh: walk every behaviour of the Central test double with curl and assert exact statuses
# and body fields. Usage: selftest.sh PATH/TO/naftikod-demo-central   (ctest: central.selftest)
set -u

BIN=${1:?usage: selftest.sh PATH/TO/naftikod-demo-central}
TOKEN=test-key-not-a-secret
RO=readonly-key-not-a-secret
AUTH="Authorization: Bearer $TOKEN"
tmp=$(mktemp -d)
pids=()
fails=0
passes=0

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- JSON: jq when installed, else python3 with the same simple paths (.a.b[0] and "| length").
if [ "${SELFTEST_JSON:-}" != python3 ] && command -v jq >/dev/null 2>&1; then
    jv() { jq -rc "$1" <"$2"; }
else
    jv() {
        python3 -c '
import json, re, sys
expr, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    v = json.load(f)
length = expr.endswith("| length")
if length:
    expr = expr[: -len("| length")].strip()
for name, idx in re.findall(r"\.([A-Za-z_@][\w-]*)|\[(-?\d+)\]", expr):
    if name:
        v = v.get(name) if isinstance(v, dict) else None
    elif isinstance(v, list) and -len(v) <= int(idx) < len(v):
        v = v[int(idx)]
    else:
        v = None
if length:
    v = len(v) if v is not None else 0
print(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
' "$1" "$2"
    }
fi

pass() { passes=$((passes + 1)); }
fail() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }

# req METHOD URL [curl args...]: sets STATUS; body in $tmp/body, headers in $tmp/headers.
req() {
    local method=$1 url=$2
    shift 2
    STATUS=$(curl -sS -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method" "$@" "$url")
    CURL_RC=$?
}

expect_status() {
    if [ "$STATUS" = "$1" ]; then pass; else fail "$2: status $STATUS, want $1 (body: $(head -c 300 "$tmp/body"))"; fi
}

# expect_json EXPR WANT DESC: the value at EXPR (strings raw, others compact JSON) equals WANT.
expect_json() {
    local got
    got=$(jv "$1" "$tmp/body" 2>/dev/null)
    if [ "$got" = "$2" ]; then pass; else fail "$3: $1 = '$got', want '$2'"; fi
}

expect_match() {
    if [[ "$1" =~ $2 ]]; then pass; else fail "$3: '$1' does not match /$2/"; fi
}

# expect_error STATUS CODE MESSAGE DESC: Central's error body, exactly.
expect_error() {
    expect_status "$1" "$4"
    expect_json .code "$2" "$4"
    expect_json .message "$3" "$4"
    expect_json .error "$3" "$4 (error field)"
    expect_json .details '[]' "$4 (details)"
}

header() { grep -i "^$1:" "$tmp/headers" | head -n1 | sed 's/^[^:]*: *//' | tr -d '\r'; }

# start NAME ARGS...: run the double, wait (bounded) for its port file, set PORT and PID.
start() {
    local name=$1
    shift
    rm -f "$tmp/$name.port"
    "$BIN" --port 0 --port-file "$tmp/$name.port" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    PID=$!
    pids+=("$PID")
    local i
    for i in $(seq 100); do
        [ -s "$tmp/$name.port" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ ! -s "$tmp/$name.port" ]; then
        echo "FATAL: $name did not start" >&2
        cat "$tmp/$name.err" >&2
        exit 1
    fi
    PORT=$(cat "$tmp/$name.port")
}

# stop PID NAME: SIGTERM, then the exit status must be 0 (sanitizer reports make it non-zero).
stop() {
    kill -TERM "$1"
    wait "$1"
    local rc=$?
    if [ "$rc" = 0 ]; then pass; else fail "$2: exit status $rc after SIGTERM"; cat "$tmp/$2.err" >&2; fi
    local keep=() p
    for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    pids=("${keep[@]+"${keep[@]}"}")
}

# ------------------------------------------------------------------------------------------
start main --token "$TOKEN" --readonly-token "$RO"
MAIN_PID=$PID
B="http://127.0.0.1:$PORT"

# The port file holds exactly the port; stdout says where it listens.
expect_match "$PORT" '^[0-9]+$' "port file"
expect_match "$(head -n1 "$tmp/main.out")" "^naftikod-demo-central listening on http://127\.0\.0\.1:$PORT\$" "stdout line"

# --- ping needs no auth
req GET "$B/v1/ping"
expect_status 200 "ping"
expect_json .status ok "ping"

# --- authentication
req GET "$B/v1/apitokens"
expect_error 401 16 "credentials not found" "no Authorization"
[ -n "$(header WWW-Authenticate)" ] && pass || fail "401 without WWW-Authenticate"
expect_match "$(header Content-Type)" '^application/json' "error content type"

req GET "$B/v1/apitokens" -H "Authorization: $TOKEN"
expect_error 401 16 "credentials not found" "raw token without Bearer"
[ -n "$(header WWW-Authenticate)" ] && pass || fail "raw-token 401 without WWW-Authenticate"

req GET "$B/v1/apitokens" -H "Authorization: Bearer wrong-key-not-a-secret"
expect_error 401 16 "credentials not found: token validation failed" "unknown bearer token"
[ -n "$(header WWW-Authenticate)" ] && pass || fail "bad-token 401 without WWW-Authenticate"

req GET "$B/v1/apitokens" -H "$AUTH" -H "Authorization: Bearer $TOKEN"
expect_error 401 16 "credentials not found" "two Authorization headers"

req GET "$B/v1/apitokens" -H "Authorization: bearer $TOKEN"
expect_status 200 "lower-case bearer"
req GET "$B/v1/apitokens" -H "Authorization: BEARER $TOKEN"
expect_status 200 "upper-case BEARER"

# --- empty state: zero values are sent
req GET "$B/v1/apitokens" -H "$AUTH"
expect_status 200 "empty list"
[ "$(cat "$tmp/body")" = '{"tokens":[]}' ] && pass || fail "empty list body: $(cat "$tmp/body")"

# --- generate
req POST "$B/v1/apitokens/generate" -H "$AUTH" -H 'Content-Type: application/json' \
    -d '{"name":"ci-token","roles":["Analyst"],"someUnknownField":{"x":1}}'
expect_status 200 "generate Analyst"
ID1=$(jv .metadata.id "$tmp/body")
SECRET_ANALYST=$(jv .token "$tmp/body")
expect_match "$SECRET_ANALYST" '^fake-token\.[0-9a-f]+$' "token is an obvious fake"
expect_match "$ID1" '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "uuid id"
expect_json .metadata.name ci-token "generate name"
expect_json .metadata.roles '["Analyst"]' "generate roles"
expect_json .metadata.role Analyst "single role mirrored in role"
expect_json .metadata.revoked false "revoked false is sent"
expect_match "$(jv .metadata.issuedAt "$tmp/body")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' "issuedAt RFC 3339 whole seconds"
expect_match "$(jv .metadata.expiration "$tmp/body")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' "expiration RFC 3339"
META1=$(jv .metadata "$tmp/body")

req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"admin-token","role":"Admin","expiration":"2099-01-02T03:04:05.678Z"}'
expect_status 200 "generate with role"
ID2=$(jv .metadata.id "$tmp/body")
SECRET_ADMIN=$(jv .token "$tmp/body")
expect_json .metadata.roles '["Admin"]' "role becomes roles"
expect_json .metadata.role Admin "role kept"
expect_json .metadata.expiration 2099-01-02T03:04:05Z "expiration honoured, whole seconds"

req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"two","roles":["Analyst","Sensor Creator"],"expiration":"2099-01-01T00:00:00+02:00"}'
expect_status 200 "generate two roles"
ID3=$(jv .metadata.id "$tmp/body")
expect_json .metadata.role "" "role empty with two roles"
expect_json .metadata.roles '["Analyst","Sensor Creator"]' "two roles"
expect_json .metadata.expiration 2098-12-31T22:00:00Z "offset converted to UTC"

req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"useless","roles":[]}'
expect_status 200 "empty roles list is not rejected"
ID4=$(jv .metadata.id "$tmp/body")
SECRET_NOROLE=$(jv .token "$tmp/body")
expect_json .metadata.roles '[]' "roles [] sent"
expect_json .metadata.role "" "role \"\" sent"

req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"","roles":["Admin"]}'
expect_error 400 3 "token name cannot be empty: invalid arguments" "empty name"
req POST "$B/v1/apitokens/generate" -H "$AUTH"
expect_error 400 3 "token name cannot be empty: invalid arguments" "empty body"
req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"x","role":"Admin","roles":["Analyst"]}'
expect_error 400 3 "must use either role or roles, but not both: invalid arguments" "role and roles"
req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"x","roles":["Admin","Wizard","Nope"]}'
expect_error 400 3 "role(s) Wizard,Nope don't exist: invalid arguments" "unknown roles"
req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"x","role":"Admin","expiration":"2001-01-01T00:00:00Z"}'
expect_error 400 3 "expiration date cannot be in the past: invalid arguments" "past expiration"
req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"x",'
expect_status 400 "invalid JSON body"
expect_json .code 3 "invalid JSON body code"
req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":5}'
expect_status 400 "name of the wrong type"
req POST "$B/v1/apitokens/generate" -H "$AUTH" -d '{"name":"x","expiration":"tomorrow"}'
expect_status 400 "bad timestamp"
req POST "$B/v1/apitokens/generate" -H "Authorization: Bearer $RO" -d '{"name":"x","role":"Admin"}'
expect_error 403 7 'not authorized: "READ_WRITE_ACCESS" for "Integration"' "read-only generate"
req POST "$B/v1/apitokens/generate" -d '{"name":"x","role":"Admin"}'
expect_error 401 16 "credentials not found" "generate without auth"

# --- get and list
req GET "$B/v1/apitokens/$ID1" -H "$AUTH"
expect_status 200 "get"
[ "$(jv . "$tmp/body")" = "$META1" ] && pass || fail "get returns the generated metadata"
req GET "$B/v1/apitokens/no-such-id" -H "$AUTH"
expect_error 400 3 "token with id 'no-such-id' does not exist: invalid arguments" "get unknown id"
req GET "$B/v1/apitokens/" -H "$AUTH"
expect_error 400 3 "empty id passed: invalid arguments" "get empty id"
req GET "$B/v1/apitokens" -H "Authorization: Bearer $RO"
expect_status 200 "read-only token lists"
expect_json '.tokens | length' 4 "list has 4 tokens"
expect_json '.tokens[0].id' "$ID1" "list in issue order"

# --- revoke
req PATCH "$B/v1/apitokens/revoke/$ID1" -H "Authorization: Bearer $RO"
expect_error 403 7 'not authorized: "READ_WRITE_ACCESS" for "Integration"' "read-only revoke"
req PATCH "$B/v1/apitokens/revoke/$ID1" -H "$AUTH"
expect_status 200 "revoke"
[ "$(cat "$tmp/body")" = '{}' ] && pass || fail "revoke body: $(cat "$tmp/body")"
req PATCH "$B/v1/apitokens/revoke/$ID1" -H "$AUTH"
expect_status 200 "revoke again"
[ "$(cat "$tmp/body")" = '{}' ] && pass || fail "re-revoke body: $(cat "$tmp/body")"
req PATCH "$B/v1/apitokens/revoke/no-such-id" -H "$AUTH"
expect_error 500 13 "token with id 'no-such-id' does not exist" "revoke unknown id"
req GET "$B/v1/apitokens/$ID1" -H "$AUTH"
expect_json .revoked true "get after revoke"

# --- ?revoked= with every Go boolean spelling
for v in 1 t T TRUE true True; do
    req GET "$B/v1/apitokens?revoked=$v" -H "$AUTH"
    expect_status 200 "revoked=$v"
    expect_json '.tokens | length' 1 "revoked=$v count"
    expect_json '.tokens[0].id' "$ID1" "revoked=$v id"
done
for v in 0 f F FALSE false False; do
    req GET "$B/v1/apitokens?revoked=$v" -H "$AUTH"
    expect_status 200 "revoked=$v"
    expect_json '.tokens | length' 3 "revoked=$v count"
    expect_json '.tokens[0].revoked' false "revoked=$v first"
done
req GET "$B/v1/apitokens?revoked=maybe" -H "$AUTH"
expect_error 400 3 'parsing field "revoked": strconv.ParseBool: parsing "maybe": invalid syntax' "revoked=maybe"
req GET "$B/v1/apitokens?revoked=true&revoked=false" -H "$AUTH"
expect_error 400 3 'too many values for field "revoked": true, false' "repeated revoked"
req GET "$B/v1/apitokens?revoked=" -H "$AUTH"
expect_error 400 3 'parsing field "revoked": strconv.ParseBool: parsing "": invalid syntax' "revoked empty"
req GET "$B/v1/apitokens?revoked=maybe"
expect_error 400 3 'parsing field "revoked": strconv.ParseBool: parsing "maybe": invalid syntax' "query is decoded before auth"
req GET "$B/v1/apitokens?revoked=true;x=1" -H "$AUTH"
expect_error 400 3 "invalid semicolon separator in query" "semicolon in query"
req GET "$B/v1/apitokens?unrelated=1&revoked=%74rue" -H "$AUTH"
expect_json '.tokens | length' 1 "unknown params ignored, values percent-decoded"

# --- routing: wrong method 501, unknown path 404, both before auth
req DELETE "$B/v1/apitokens/$ID2"
expect_error 501 12 "Method Not Allowed" "DELETE on a known path"
req POST "$B/v1/apitokens" -H "$AUTH"
expect_error 501 12 "Method Not Allowed" "POST on list"
req GET "$B/v1/apitokens/revoke/$ID2" -H "$AUTH"
expect_error 501 12 "Method Not Allowed" "GET on revoke"
req PUT "$B/v1/ping"
expect_error 501 12 "Method Not Allowed" "PUT on ping"
req GET "$B/v1/nothing-here"
expect_error 404 5 "Not Found" "unknown path"
req GET "$B/v1/apitokens/a/b/c/d" -H "$AUTH"
expect_error 404 5 "Not Found" "too deep"

# --- percent-encoded ids: one raw segment, decoded once, %2F not split
curl -sS -o /dev/null -X DELETE "$B/__double/requests"
req GET "$B/v1/apitokens/a%2Fb%20c" -H "$AUTH"
expect_error 400 3 "token with id 'a/b c' does not exist: invalid arguments" "encoded slash stays in the id"
req PATCH "$B/v1/apitokens/revoke/..%2F..%2Fv1%2Fping" -H "$AUTH"
expect_error 500 13 "token with id '../../v1/ping' does not exist" "encoded traversal is just an id"
req GET "$B/v1/apitokens/%zz" -H "$AUTH"
expect_status 400 "bad escape in path"

# --- recording: exact raw path, query, Authorization and body
req GET "$B/__double/requests"
expect_status 200 "recording"
expect_json '. | length' 3 "three requests recorded"
expect_json '.[0].path' "/v1/apitokens/a%2Fb%20c" "raw path recorded"
expect_json '.[0].authorization[0]' "Bearer $TOKEN" "Authorization recorded"
expect_json '.[1].method' PATCH "method recorded"
curl -sS -o "$tmp/body" -X DELETE "$B/__double/requests"
expect_json .cleared 3 "DELETE clears"
req POST "$B/v1/apitokens/generate?trace=a%20b+c" -H "Authorization: Bearer raw value" \
    -H 'X-Custom: yes' -H 'Content-Type: application/json' -d '{"name":"rec"}'
req GET "$B/__double/requests"
expect_json '. | length' 1 "one request after clear"
expect_json '.[0].method' POST "recorded method"
expect_json '.[0].path' /v1/apitokens/generate "recorded path"
expect_json '.[0].query' 'trace=a%20b+c' "recorded raw query"
expect_json '.[0].uri' '/v1/apitokens/generate?trace=a%20b+c' "recorded raw uri"
expect_json '.[0].authorization' '["Bearer raw value"]' "recorded Authorization"
expect_json '.[0].body' '{"name":"rec"}' "recorded body"
expect_json '.[0].body_size' 14 "recorded body size"
jq_hdr=$(jv '.[0].headers' "$tmp/body")
expect_match "$jq_hdr" '\["X-Custom","yes"\]' "recorded custom header"
SEQ=$(jv '.[0].seq' "$tmp/body")
req GET "$B/__double/requests?since=$SEQ"
expect_json '. | length' 0 "since= filters"

# --- tokens this double issued are credentials too
req GET "$B/v1/apitokens" -H "Authorization: Bearer $SECRET_ADMIN"
expect_status 200 "issued Admin token authenticates"
req POST "$B/v1/apitokens/generate" -H "Authorization: Bearer $SECRET_ANALYST" -d '{"name":"x"}'
expect_error 401 16 "credentials not found: token validation failed" "revoked token rejected"
req GET "$B/v1/apitokens" -H "Authorization: Bearer $SECRET_NOROLE"
expect_error 401 16 "access for this user is not authorized: no valid role, please contact your system administrator" "token without roles is useless"
req POST "$B/v1/apitokens/generate" -H "Authorization: Bearer $SECRET_ADMIN" -d '{"name":"nobody","role":"None"}'
expect_status 200 "issued Admin token generates"
SECRET_NONE=$(jv .token "$tmp/body")
req GET "$B/v1/apitokens" -H "Authorization: Bearer $SECRET_NONE"
expect_error 403 7 'not authorized: "READ_ACCESS" for "Integration"' "role None has no access"

# --- a body that is not UTF-8 is recorded losslessly as hex
curl -sS -o /dev/null -X DELETE "$B/__double/requests"
printf '\xff\xfe{' >"$tmp/binary"
req POST "$B/v1/apitokens/generate" -H "$AUTH" --data-binary @"$tmp/binary"
expect_status 400 "binary body"
req GET "$B/__double/requests"
expect_json '.[0].body_hex' fffe7b "binary body as hex"
expect_json '.[0].body' null "binary body: body is null"

# --- allowed roles
req GET "$B/v1/apitokens/generate/allowed-roles" -H "$AUTH"
expect_status 200 "allowed roles"
expect_json .roleNames '["Admin","Analyst","Continuous Integration","Sensor Creator","Vulnerability Report Creator"]' "allowed roles skip None"

# --- roles (RoleService.GetRoles)
req GET "$B/v1/roles"
expect_error 401 16 "credentials not found" "roles without Authorization"
req GET "$B/v1/roles" -H "$AUTH"
expect_status 200 "roles"
expect_json '[.roles[].name]' '["Admin","Analyst","Continuous Integration","None","Sensor Creator","Vulnerability Report Creator"]' "role names"
expect_json '.roles[0].permissionSetId' io.stackrox.authz.permissionset.admin "admin permission set"
expect_json '.roles[1].accessScopeId' io.stackrox.authz.accessscope.unrestricted "access scope"
expect_json '.roles[1] | [.globalAccess, .resourceToAccess, .traits]' '["NO_ACCESS",{},null]' "zero values sent"
req POST "$B/v1/roles" -H "$AUTH"
expect_status 501 "roles: wrong method"

# --- faults
req POST "$B/__double/faults" -d '{"mode":"invalid-json"}'
expect_json .mode invalid-json "fault set"
req GET "$B/v1/apitokens" -H "$AUTH"
expect_status 200 "invalid-json status"
if jv . "$tmp/body" >/dev/null 2>&1; then fail "invalid-json body parsed"; else pass; fi

req POST "$B/__double/faults" -d '{"mode":"html-error","count":1}'
req GET "$B/v1/apitokens" -H "$AUTH"
expect_status 502 "html-error status"
expect_match "$(header Content-Type)" '^text/html' "html-error content type"
req GET "$B/v1/apitokens" -H "$AUTH"
expect_status 200 "count=1 fault applies once"

req POST "$B/__double/faults" -d '{"mode":"huge","count":1}'
size=$(curl -sS -o /dev/null -w '%{size_download}' -H "$AUTH" "$B/v1/apitokens")
[ "$size" = 67108864 ] && pass || fail "huge body size $size"

req POST "$B/__double/faults" -d '{"mode":"reset","count":1}'
curl -sS -o /dev/null -H "$AUTH" "$B/v1/apitokens" 2>/dev/null
rc=$?
{ [ "$rc" = 56 ] || [ "$rc" = 52 ]; } && pass || fail "reset: curl exit $rc, want 56 or 52"

req POST "$B/__double/faults" -d '{"mode":"stall","seconds":30,"count":1}'
curl -sS -o /dev/null --max-time 1 -H "$AUTH" "$B/v1/apitokens" 2>/dev/null
rc=$?
[ "$rc" = 28 ] && pass || fail "stall: curl exit $rc, want 28 (timeout)"

req POST "$B/__double/faults" -d '{"fail_ratio":0.5}'
fails500=0
for _ in 1 2 3 4; do
    req GET "$B/v1/apitokens" -H "$AUTH"
    [ "$STATUS" = 500 ] && fails500=$((fails500 + 1))
done
[ "$fails500" = 2 ] && pass || fail "fail_ratio 0.5 gave $fails500 of 4"
req POST "$B/__double/faults" -d '{"fail_ratio":1}'
req GET "$B/v1/apitokens" -H "$AUTH"
expect_error 500 13 "injected fault" "injected 500"
req DELETE "$B/__double/faults"
expect_json .mode none "faults cleared"
req GET "$B/v1/apitokens" -H "$AUTH"
expect_status 200 "after clearing faults"
req POST "$B/__double/faults" -d '{"mode":"explode"}'
expect_status 400 "unknown fault mode"

# --- state reset
req DELETE "$B/__double/tokens"
expect_json .cleared 5 "tokens cleared"
req GET "$B/v1/apitokens" -H "$AUTH"
expect_json '.tokens | length' 0 "no tokens after reset"

# --- 1000 concurrent connections (all open at once, then all answered)
if command -v python3 >/dev/null 2>&1; then
    out=$(python3 - "$PORT" "$TOKEN" <<'EOF'
import resource, selectors, socket, sys
port, token = int(sys.argv[1]), sys.argv[2]
n = 1000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 100:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 200), hard))
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
req = ("GET /v1/apitokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
       "Connection: close\r\n\r\n" % token).encode()
for s in socks:
    s.sendall(req)
sel = selectors.DefaultSelector()
bufs = {}
for s in socks:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    bufs[s] = b""
open_ = n
while open_:
    events = sel.select(timeout=60)
    if not events:
        break
    for key, _ in events:
        data = key.fileobj.recv(65536)
        if data:
            bufs[key.fileobj] += data
        else:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            open_ -= 1
ok = sum(1 for b in bufs.values() if b.startswith(b"HTTP/1.1 200"))
print(ok)
EOF
)
    [ "$out" = 1000 ] && pass || fail "1000 concurrent connections: $out answered 200"
fi

stop "$MAIN_PID" main

# --- a second instance: TLS, tokens from the environment, Central's own %2F splitting
if command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1
    CENTRAL_DOUBLE_TOKENS="env-a-not-a-secret, env-b-not-a-secret" \
        start tls --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --split-encoded-slash
    TLS_PID=$PID
    expect_match "$(head -n1 "$tmp/tls.out")" "^naftikod-demo-central listening on https://127\.0\.0\.1:$PORT\$" "https stdout line"
    T="https://127.0.0.1:$PORT"
    req GET "$T/v1/ping" --cacert "$tmp/cert.pem"
    expect_status 200 "TLS ping with CA file"
    req GET "$T/v1/apitokens" --cacert "$tmp/cert.pem" -H "Authorization: Bearer env-a-not-a-secret"
    expect_status 200 "first env token"
    req GET "$T/v1/apitokens" --cacert "$tmp/cert.pem" -H "Authorization: Bearer env-b-not-a-secret"
    expect_status 200 "second env token"
    req GET "$T/v1/apitokens/a%2Fb" --cacert "$tmp/cert.pem" -H "Authorization: Bearer env-a-not-a-secret"
    expect_error 404 5 "Not Found" "--split-encoded-slash splits like Central"
    curl -sS -o /dev/null "$T/v1/ping" 2>/dev/null
    [ $? = 60 ] && pass || fail "TLS without the CA file must fail verification"
    stop "$TLS_PID" tls
else
    echo "SKIP: openssl not installed, TLS not tested" >&2
fi

echo "central.selftest: $passes passed, $fails failed"
[ "$fails" = 0 ]
