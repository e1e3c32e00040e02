#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# oauth.sh: the OAuth 2.1 resource server (--mcp-auth oauth / --rest-auth oauth) against the
# authorization-server double (tests/oauth/as_double.py, TLS with a CA of its own) and the
# Central double: RFC 9728 metadata, the challenges, a battery of bad tokens (each refused with
# its reason in the log, never the token), key rotation, the bounded JWKS refresh, OpenID
# discovery, introspection with its cache, and the client's token never reaching Central.
#
# usage: oauth.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
nk_init oauth
nk_start_double

# start_as NAME [args]: an AS double in $work/NAME; sets ISS (its issuer) and AS_DIR.
start_as() {
    local name=$1
    shift
    mkdir -p "$work/$name"
    python3 "$SRC/tests/oauth/as_double.py" --dir "$work/$name" "$@" 2>"$work/$name.log" &
    pids+=("$!")
    wait_file "$work/$name/as.port" "$!" || fail "the AS double $name did not start"
    ISS="https://127.0.0.1:$(cat "$work/$name/as.port")"
    AS_DIR="$work/$name"
}
start_as as
AS1=$ISS
AS1_DIR=$AS_DIR
start_as as-oidc --oidc-only
AS2=$ISS
AS2_DIR=$AS_DIR
cat "$work/central.crt" "$AS1_DIR/ca.crt" "$AS2_DIR/ca.crt" >"$work/bundle.crt"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

asctl() { # asctl DIR PATH [JSON]: the AS double's test controls
    local dir=$1 path=$2
    shift 2
    curl -fsS --max-time 20 --cacert "$dir/ca.crt" "https://127.0.0.1:$(cat "$dir/as.port")$path" "$@"
}
stats() { asctl "$1" /__double/stats | jq -r ".$2"; }

NOW=$(date +%s)
claims() { # claims [jq filter]: good claims for daemon J, then the filter applied
    jq -cn --arg iss "$AS1" --arg aud "$RES" --argjson now "$NOW" \
        '{iss:$iss, sub:"agent-7", client_id:"ci-bot", aud:$aud, scope:"mcp:tools tokens:read",
          iat:$now, nbf:($now-5), exp:($now+600)}' | jq -c "${1:-.}"
}
mint() { # mint ALG KID CLAIMS [HEADER]: a token from the AS double
    local body
    body=$(jq -cn --arg alg "$1" --arg kid "$2" --argjson c "$3" --argjson h "${4:-{\}}" \
        '{alg:$alg, kid:(if $kid == "" then null else $kid end), claims:$c, header:$h}')
    asctl "$AS_SIGN" /__double/sign -X POST -d "$body"
}

touch "$work/all-bodies"
call() { nk_fetch "$@"; } # STATUS, $work/body (and all-bodies), $work/headers
header() { tr -d '\r' <"$work/headers" | sed -n "s/^$1: //Ip" | head -n1; }
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
MH=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H 'MCP-Protocol-Version: 2026-07-28')
LIST=getapitokens-returns-all-api-tokens
mcp_call() { # mcp_call [curl args]: tools/call of the list tool
    call -X POST "$MCP" "${MH[@]}" -H 'Mcp-Method: tools/call' -H "Mcp-Name: $LIST" "$@" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"$LIST\",\"arguments\":{},$META}}"
}
recorded_auth() { # the Authorization values Central received with X-Request-Id $1
    nk_requests |
        jq -c --arg id "$1" '[.[] | select(any(.headers[]; (.[0]|ascii_downcase) == "x-request-id" and .[1] == $id)) | .authorization]'
}

# ---- daemon J: JWT (JWKS) on MCP and REST, refresh at most once a second ----------------------
MPORT=$(free_port)
RPORT=$(free_port)
RES="http://127.0.0.1:$MPORT/mcp"
RRES="http://127.0.0.1:$RPORT/v1"
AS_SIGN=$AS1_DIR
nk_launch nk-j "STACKROX_API_KEY=Bearer $KEY" -- "$CAP" --rest-port "$RPORT" --mcp-port "$MPORT" \
    --ops-listen off --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/bundle.crt" \
    --mcp-auth oauth --mcp-oauth-issuer "$AS1" --mcp-oauth-resource "$RES" \
    --mcp-oauth-scopes mcp:tools --rest-auth oauth --rest-oauth-issuer "$AS1" \
    --rest-oauth-resource "$RRES" --oauth-jwks-refresh 1 --oauth-jwks-max-age 2 \
    --max-header-bytes 262144 ||
    fail "daemon J did not start"
LOG="$work/nk-j.log"

# RFC 9728 metadata, both paths; other discovery paths stay 404
for p in /.well-known/oauth-protected-resource/mcp /.well-known/oauth-protected-resource; do
    call "http://127.0.0.1:$MPORT$p"
    [ "$STATUS" = 200 ] || fail "metadata $p: $STATUS"
    jq -e --arg r "$RES" --arg i "$AS1" '.resource == $r and .authorization_servers == [$i] and
        .scopes_supported == ["mcp:tools"] and .bearer_methods_supported == ["header"]' \
        "$work/body" >/dev/null || fail "metadata $p: $(cat "$work/body")"
done
call "http://127.0.0.1:$MPORT/.well-known/oauth-authorization-server"
[ "$STATUS" = 404 ] || fail "AS metadata on the resource server: $STATUS (want 404)"
call "http://127.0.0.1:$MPORT/register" -X POST -d '{}'
[ "$STATUS" = 404 ] || fail "/register: $STATUS (want 404)"
echo "ok: RFC 9728 metadata at both paths; /.well-known/oauth-authorization-server and /register 404"

# no token: 401 with resource_metadata and scope, no error code
mcp_call
[ "$STATUS" = 401 ] || fail "no token: $STATUS"
want="Bearer resource_metadata=\"http://127.0.0.1:$MPORT/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\""
[ "$(header WWW-Authenticate)" = "$want" ] || fail "no-token challenge: $(header WWW-Authenticate)"
echo "ok: 401 without a token: $want"

# good tokens, three algorithms; Central sees the bound credential only
for a in RS256:r1 PS256:r1 ES256:e1; do
    tok=$(mint "${a%%:*}" "${a##*:}" "$(claims)")
    mcp_call -H "Authorization: Bearer $tok" -H "X-Request-Id: oauth-${a%%:*}"
    [ "$STATUS" = 200 ] && jq -e '.result.isError != true' "$work/body" >/dev/null ||
        fail "${a%%:*} token: $STATUS $(head -c 300 "$work/body")"
    [ "$(recorded_auth "oauth-${a%%:*}")" = "[[\"Bearer $KEY\"]]" ] ||
        fail "Central got something else than the bound credential: $(recorded_auth "oauth-${a%%:*}")"
    echo "$tok" >>"$work/tokens.seen"
done
wait_until grep -q 'caller=agent-7' "$LOG" || fail "the access log does not name the token's subject"
echo "ok: RS256, PS256 and ES256 tokens call a tool; Central got only the bound credential; access lines name sub"

# the bad-token battery: STATUS, error code, reason in the log
refused() { # refused NAME STATUS ERROR REASON-REGEX TOKEN [curl args]
    local name=$1 st=$2 err=$3 why=$4 tok=$5
    shift 5
    echo "$tok" >>"$work/tokens.seen"
    mcp_call -H "Authorization: Bearer $tok" "$@"
    [ "$STATUS" = "$st" ] || fail "$name: $STATUS (want $st): $(head -c 300 "$work/body")"
    if [ -n "$err" ]; then
        header WWW-Authenticate | grep -q "error=\"$err\"" ||
            fail "$name: challenge without error=\"$err\": $(header WWW-Authenticate)"
        header WWW-Authenticate | grep -q 'resource_metadata="' ||
            fail "$name: challenge without resource_metadata"
    fi
    grep -Eq "oauth: refused .*$why" "$LOG" || fail "$name: no log line with the reason /$why/"
    echo "ok: $name refused: $st $err ($why)"
}
refused expired 401 invalid_token 'the token expired' \
    "$(mint RS256 r1 "$(claims '.exp = .iat - 3600')")"
refused "not yet valid" 401 invalid_token 'not valid yet' \
    "$(mint RS256 r1 "$(claims '.nbf = .iat + 3600')")"
refused "wrong issuer" 401 invalid_token 'issuer is not the configured one' \
    "$(mint RS256 r1 "$(claims '.iss = "https://evil.example"')")"
refused "wrong audience" 401 invalid_token 'not issued for this resource' \
    "$(mint RS256 r1 "$(claims '.aud = "http://127.0.0.1:1/mcp"')")"
refused "missing scope" 403 insufficient_scope "lacks the scope 'mcp:tools'" \
    "$(mint RS256 r1 "$(claims '.scope = "tokens:read"')")"
header WWW-Authenticate | grep -q 'scope="mcp:tools"' || fail "403 challenge without the scope"
refused "unknown kid" 401 invalid_token 'no key with the token' \
    "$(mint RS256 nope "$(claims)")"
refused "alg none" 401 invalid_token "alg 'none'" "$(mint none r1 "$(claims)")"
refused "HS256 keyed with the public key" 401 invalid_token "HMAC" "$(mint HS256 r1 "$(claims)")"
good=$(mint RS256 r1 "$(claims '.sub = "b64"')")
refused "bad base64" 401 invalid_token 'not base64url' "${good%%.*}.***.${good##*.}"
refused "bad signature" 401 invalid_token 'does not verify' "${good%.*}.$(printf 'A%.0s' {1..342})"
big=$(head -c 24576 /dev/zero | base64 -w0 | tr '+/' '-_' | tr -d '=')
refused "64 KiB token" 401 invalid_token 'longer than 8192' "$big.$big.x"
[ $((${#big} * 2)) -ge 65536 ] || fail "the big token is not 64 KiB"
tok=$(mint RS256 r1 "$(claims)")
echo "$tok" >>"$work/tokens.seen"
call -X POST "$MCP?access_token=$tok" "${MH[@]}" -d '{}'
[ "$STATUS" = 400 ] || fail "token in the query string: $STATUS"
grep -q 'oauth: refused POST (query not shown).*token in the query string' "$LOG" ||
    fail "no log line for the token in the query string"
echo "ok: a token in the query string: 400 invalid_request"
mcp_call -H "Authorization: Basic dXNlcjpwYXNz"
[ "$STATUS" = 401 ] || fail "Basic instead of Bearer: $STATUS"

# REST: problem+json and the same challenge
call "http://127.0.0.1:$RPORT/v1/v1/apitokens"
[ "$STATUS" = 401 ] && jq -e '.status == 401' "$work/body" >/dev/null || fail "REST without a token: $STATUS"
header WWW-Authenticate | grep -q "resource_metadata=\"http://127.0.0.1:$RPORT/.well-known/oauth-protected-resource/v1\"" ||
    fail "REST challenge: $(header WWW-Authenticate)"
tok=$(mint ES256 e1 "$(claims ".aud = \"$RRES\"")")
echo "$tok" >>"$work/tokens.seen"
call -H "Authorization: Bearer $tok" -H 'X-Request-Id: oauth-rest' "http://127.0.0.1:$RPORT/v1/v1/apitokens"
[ "$STATUS" = 200 ] || fail "REST with a token: $STATUS"
[ "$(recorded_auth oauth-rest)" = "[[\"Bearer $KEY\"]]" ] || fail "REST: Central got $(recorded_auth oauth-rest)"
echo "ok: REST oauth: problem+json 401 with the challenge, 200 with a token, Central got the bound credential"

# key rotation: a token of a new key is accepted once the JWKS is fetched again (unknown kid)
kid=$(asctl "$AS1_DIR" /__double/rotate -X POST | jq -r .kid)
tok=$(mint RS256 "$kid" "$(claims)")
echo "$tok" >>"$work/tokens.seen"
rotated() {
    mcp_call -H "Authorization: Bearer $tok"
    [ "$STATUS" = 200 ]
}
wait_until rotated || fail "a token signed by the rotated key $kid was never accepted: $STATUS"
echo "ok: rotation: the new key $kid is fetched on its unknown kid and its token accepted"
# keys older than --oauth-jwks-max-age are fetched again in the background: the call that
# notices does not wait (it is answered with the keys in hand)
before=$(stats "$AS1_DIR" jwks)
sleep 2.2
tok=$(mint RS256 r1 "$(claims '.sub = "after-max-age"')")
echo "$tok" >>"$work/tokens.seen"
mcp_call -H "Authorization: Bearer $tok"
[ "$STATUS" = 200 ] || fail "a good token once the keys are old: $STATUS"
refetched() { [ "$(stats "$AS1_DIR" jwks)" -gt "$before" ]; }
wait_until refetched || fail "keys older than --oauth-jwks-max-age were not fetched again"
echo "ok: keys older than --oauth-jwks-max-age are fetched again in the background"
nk_stop "daemon J"

# ---- daemon K: OpenID discovery only, default refresh bound: forged kids fetch at most once -----
MPORT=$(free_port)
RES="http://127.0.0.1:$MPORT/mcp"
AS_SIGN=$AS2_DIR
AS1_SAVED=$AS1
AS1=$AS2
nk_launch nk-k "STACKROX_API_KEY=Bearer $KEY" -- "$CAP" --rest-port 0 --mcp-port "$MPORT" \
    --ops-listen off --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/bundle.crt" \
    --mcp-auth oauth --mcp-oauth-issuer "$AS2" --mcp-oauth-resource "$RES" ||
    fail "daemon K did not start"
LOG="$work/nk-k.log"
tok=$(mint ES256 e1 "$(claims)")
echo "$tok" >>"$work/tokens.seen"
mcp_call -H "Authorization: Bearer $tok"
[ "$STATUS" = 200 ] || fail "OpenID discovery: a good token: $STATUS"
grep -q "oauth: discovered $AS2 (OpenID Connect)" "$LOG" || fail "no OpenID discovery line"
before=$(stats "$AS2_DIR" jwks)
for i in 1 2 3 4 5 6 7 8; do
    tok=$(mint RS256 "forged-$i" "$(claims)")
    mcp_call -H "Authorization: Bearer $tok"
    [ "$STATUS" = 401 ] || fail "forged kid $i: $STATUS"
done
after=$(stats "$AS2_DIR" jwks)
[ $((after - before)) -le 1 ] || fail "8 forged kids made $((after - before)) JWKS fetches (at most 1)"
echo "ok: OpenID discovery; 8 forged kids: $((after - before)) JWKS fetch(es) (bounded: once per 30 s)"
nk_stop "daemon K"
AS1=$AS1_SAVED

# ---- daemon I: introspection with a client file, cache ---------------------------------------
MPORT=$(free_port)
RES="http://127.0.0.1:$MPORT/mcp"
printf 'naftikod-rs:rs-secret-not-real\n' >"$work/client"
nk_launch nk-i "STACKROX_API_KEY=Bearer $KEY" -- "$CAP" --rest-port 0 --mcp-port "$MPORT" \
    --ops-listen off --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/bundle.crt" \
    --mcp-auth oauth --mcp-oauth-issuer "$AS1" --mcp-oauth-resource "$RES" \
    --mcp-oauth-scopes mcp:tools --oauth-token-validation introspection \
    --oauth-client-file "$work/client" || fail "daemon I did not start"
LOG="$work/nk-i.log"
opaque=$(asctl "$AS1_DIR" /__double/issue -X POST -d "$(claims)")
echo "$opaque" >>"$work/tokens.seen"
before=$(stats "$AS1_DIR" introspect)
mcp_call -H "Authorization: Bearer $opaque" -H 'X-Request-Id: oauth-intro'
[ "$STATUS" = 200 ] || fail "introspection: an active token: $STATUS $(head -c 300 "$work/body")"
[ "$(recorded_auth oauth-intro)" = "[[\"Bearer $KEY\"]]" ] || fail "introspection: Central got $(recorded_auth oauth-intro)"
mcp_call -H "Authorization: Bearer $opaque"
[ "$STATUS" = 200 ] || fail "introspection: the same token again: $STATUS"
after=$(stats "$AS1_DIR" introspect)
[ $((after - before)) = 1 ] || fail "two calls with one token made $((after - before)) introspections (want 1: cached)"
narrow=$(asctl "$AS1_DIR" /__double/issue -X POST -d "$(claims '.scope = "tokens:read"')")
echo "$narrow" >>"$work/tokens.seen"
refused "introspected, missing scope" 403 insufficient_scope "lacks the scope" "$narrow"
refused "introspected, unknown token" 401 invalid_token "not active" "unknown-opaque-token-0123456789"
echo "ok: introspection with the client file: active 200 (then cached), scope 403, inactive 401"
nk_stop "daemon I"

# ---- daemon D: the document's oauth2 block (no --mcp-auth), with per-caller permissions -------
# the MCP adapter's authentication comes from the capability document; a grant that needs a scope
# the token lacks answers the step-up challenge; a reload that drops the block is refused
MPORT=$(free_port)
RES="http://127.0.0.1:$MPORT/mcp"
AS_SIGN=$AS1_DIR
awk -v iss="$AS1" -v res="$RES" '
    { print }
    /^  - type: mcp$/ { mcp = 1 }
    mcp && /^    transport: http$/ {
        print "    authentication:"
        print "      type: oauth2"
        print "      authorizationServerUri: " iss
        print "      resource: " res
        print "      scopes:"
        print "      - mcp:tools"
        mcp = 0
    }' "$CAP" >"$work/doc-oauth.yaml"
grep -q 'type: oauth2' "$work/doc-oauth.yaml" || fail "the oauth2 fixture was not made"
cat >"$work/perms.yaml" <<'EOF2'
callers:
  - name: agent
    match:
      oauth:
        subject: agent-7
    grants:
      - class: readOnly
      - tools: generatetoken-*
        scope: tokens:write
EOF2
nk_launch nk-d "STACKROX_API_KEY=Bearer $KEY" -- "$work/doc-oauth.yaml" --rest-port 0 \
    --mcp-port "$MPORT" --ops-listen off --var "central-host=127.0.0.1:$CPORT" \
    --ca-file "$work/bundle.crt" --permissions "$work/perms.yaml" || fail "daemon D did not start"
LOG="$work/nk-d.log"
mcp_call
[ "$STATUS" = 401 ] || fail "document oauth2, no token: $STATUS"
header WWW-Authenticate | grep -qF "resource_metadata=\"http://127.0.0.1:$MPORT/.well-known/oauth-protected-resource/mcp\"" ||
    fail "document oauth2: challenge $(header WWW-Authenticate)"
tok=$(mint RS256 r1 "$(claims)")
echo "$tok" >>"$work/tokens.seen"
mcp_call -H "Authorization: Bearer $tok" -H 'X-Request-Id: oauth-doc'
[ "$STATUS" = 200 ] && jq -e '.result.isError != true' "$work/body" >/dev/null ||
    fail "document oauth2, good token: $STATUS $(head -c 300 "$work/body")"
[ "$(recorded_auth oauth-doc)" = "[[\"Bearer $KEY\"]]" ] || fail "document oauth2: Central got $(recorded_auth oauth-doc)"
seen=$(nk_requests | jq length)
call -X POST "http://127.0.0.1:$MPORT/mcp" "${MH[@]}" -H "Authorization: Bearer $tok" \
    -H 'Mcp-Method: tools/call' -H 'Mcp-Name: generatetoken-generates-api-token-given' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"generatetoken-generates-api-token-given\",\"arguments\":{\"body\":{\"name\":\"x\",\"roles\":[\"Analyst\"]}},$META}}"
[ "$STATUS" = 403 ] || fail "a grant needing tokens:write, token without it: $STATUS $(head -c 300 "$work/body")"
header WWW-Authenticate | grep -q 'error="insufficient_scope"' && header WWW-Authenticate | grep -q 'scope="tokens:write"' ||
    fail "no step-up challenge: $(header WWW-Authenticate)"
[ "$(nk_requests | jq length)" = "$seen" ] || fail "a call refused for its scope reached Central"
wide=$(mint RS256 r1 "$(claims '.scope = "mcp:tools tokens:read tokens:write"')")
echo "$wide" >>"$work/tokens.seen"
call -X POST "http://127.0.0.1:$MPORT/mcp" "${MH[@]}" -H "Authorization: Bearer $wide" \
    -H 'Mcp-Method: tools/call' -H 'Mcp-Name: generatetoken-generates-api-token-given' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"generatetoken-generates-api-token-given\",\"arguments\":{\"body\":{\"name\":\"x\",\"roles\":[\"Analyst\"]}},$META}}"
[ "$STATUS" = 200 ] && jq -e '.result.isError != true' "$work/body" >/dev/null ||
    fail "the same call with tokens:write: $STATUS $(head -c 300 "$work/body")"
# a reload that takes the block away is refused: OAuth is made at start-up
cp "$CAP" "$work/doc-oauth.yaml"
kill -HUP "$NK_PID"
wait_until grep -q 'loses oauth2 authentication' "$LOG" || fail "a reload dropping oauth2 was not refused"
mcp_call
[ "$STATUS" = 401 ] || fail "after the refused reload the adapter admits without a token: $STATUS"
echo "ok: the document's oauth2 block runs (401 challenge, tokens, Central sees the bound credential); a grant's scope gives the step-up 403; a reload dropping the block is refused"
nk_stop "daemon D"

# start-up refusals: incomplete settings, an HMAC algorithm, introspection without credentials
refuse_start() { # refuse_start NAME REGEX [args]: exit 1 before listening, REGEX in the log
    local name=$1 re=$2 st=0
    shift 2
    env -u STACKROX_API_KEY STACKROX_API_KEY="Bearer $KEY" "$NAFTIKOD" serve "$CAP" --rest-port 0 \
        --mcp-port 0 --ops-listen off --var "central-host=127.0.0.1:$CPORT" "$@" \
        2>"$work/$name.log" >/dev/null || st=$?
    [ "$st" = 1 ] || [ "$st" = 2 ] || fail "$name: exit $st (want a refusal)"
    grep -Eq "$re" "$work/$name.log" || fail "$name: no /$re/ in: $(cat "$work/$name.log")"
}
refuse_start no-issuer 'needs --mcp-oauth-issuer URL and --mcp-oauth-resource URI' --mcp-auth oauth
refuse_start hmac "HMAC" --mcp-auth oauth --mcp-oauth-issuer "$AS1" \
    --mcp-oauth-resource "http://127.0.0.1:1/mcp" --oauth-algorithms RS256,HS256
refuse_start no-client 'introspection needs --oauth-client-file' --mcp-auth oauth \
    --mcp-oauth-issuer "$AS1" --mcp-oauth-resource "http://127.0.0.1:1/mcp" \
    --oauth-token-validation introspection
refuse_start query-resource 'resource must be' --mcp-auth oauth --mcp-oauth-issuer "$AS1" \
    --mcp-oauth-resource "http://127.0.0.1:1/mcp?x=1"
echo "ok: start-up refuses oauth without issuer/resource, an HMAC algorithm, introspection without credentials, a resource with a query"

# no token, no client secret in any log or answer
while read -r t; do
    [ -n "$t" ] || continue
    if grep -qF -- "$t" "$work"/*.log "$work/all-bodies" 2>/dev/null; then
        fail "a client token appears in a log or an answer"
    fi
done <"$work/tokens.seen"
grep -q 'rs-secret-not-real' "$work"/nk-*.log && fail "the introspection secret appears in a log"
echo "ok: no token and no client secret in any log or answer"
echo "PASS oauth"
