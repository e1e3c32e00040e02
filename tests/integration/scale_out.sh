#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scale_out.sh: issue 19: three `naftikod serve --replicas` behind nginx (round robin, no
# stickiness, retries off: proxy_next_upstream off, as kube-proxy has none), proving with counts:
#   session    one MCP session (handshake era) served by all three replicas, 0 failed calls;
#   rotation   a session key rotation rolled through the replicas (new key second, SIGHUP each;
#              swap the order, SIGHUP each; drop the old key) with 0 failed calls of sessions
#              signed under either key;
#   capability a capability change rolled through (SIGHUP one replica at a time) with 0 failed
#              calls, the fingerprint metric naming old and new, and one tools/list at the end;
#   delete     DELETE /mcp answers 405 on every replica (replica mode: no replica can end a
#              session the others would still accept), and the session goes on;
#   sigterm    SIGTERM of one replica under load: /readyz 503 at once, the balancer drops it from
#              its upstream (nginx reload, as the endpoints controller would), the lame duck
#              serves what still arrives, 0 failed requests.
# Skipped (exit 77) without nginx. Prints the figures docs/operations.md quotes.
#
# usage: scale_out.sh NAFTIKOD CENTRAL_DOUBLE SOURCE_DIR
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

nk_args "$@"
HERE="$SRC/tests/integration"
NGINX=$(command -v nginx || true)
[ -x "$NGINX" ] || [ -x /usr/sbin/nginx ] && NGINX=${NGINX:-/usr/sbin/nginx}
if [ ! -x "${NGINX:-/nonexistent}" ]; then
    echo "SKIP: nginx is not installed (Debian: apt-get install nginx-light; scripts/deps.sh --test)"
    exit 77
fi
nk_init scale scale
t_start=$(date +%s.%N)
TOOL="getapitokens-returns-all-api-tokens"
CALLS_OK=0
CALLS_FAILED=0

mkdir -p "$work/caps" "$work/nginx"
cp "$CAP" "$work/caps/stackrox.yaml"
key() { head -c 48 /dev/urandom | base64 -w0; }
fp() { printf '%s\n' "$1" | sha256sum | xxd -r -p | sha256sum | cut -c1-16; } # as docs/operations.md says
K1=$(key)
K2=$(key)
ring() { printf '%s\n' "$@" >"$work/ring.tmp" && mv "$work/ring.tmp" "$work/ring"; }
ring "$K1"

# ---- three replicas and the Central double ----
nk_start_double
declare -a RPID RREST RMCP ROPS
for i in 1 2 3; do
    nk_launch "r$i" "STACKROX_API_KEY=Bearer $KEY" "NAFTIKOD_SHUTDOWN_DELAY_S=${SCALE_DELAY_S:-3}" -- \
        --rest-port 0 --mcp-port 0 --ops-listen 127.0.0.1:0 --loops 1 --replicas \
        --mcp-session-key-file "$work/ring" --trusted-proxies 127.0.0.1 --mcp-tools-ttl 5000 \
        --var "central-host=127.0.0.1:$CPORT" --ca-file "$work/central.crt" "$work/caps" ||
        fail "replica $i did not start"
    RPID[i]=$NK_PID
    RREST[i]=${REST##*:}
    RMCP[i]=$(echo "$MCP" | sed 's|.*:\([0-9]*\)/mcp|\1|')
    ROPS[i]=$OPS
done

# ---- nginx: round robin over the replicas given, keep-alive upstream, no retries ----
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nginx_conf() { # REPLICA...
    local i
    {
        [ "$(id -u)" != 0 ] || echo "user root;"
        cat <<EOC
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx.log notice;
events { worker_connections 512; }
http {
    log_format up '\$status \$upstream_addr \$request';
    access_log $work/nginx/access.txt up;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream rest {
EOC
        for i in "$@"; do echo "        server 127.0.0.1:${RREST[i]};"; done
        echo "        keepalive 8;"
        echo "    }"
        echo "    upstream mcp {"
        for i in "$@"; do echo "        server 127.0.0.1:${RMCP[i]};"; done
        cat <<EOC
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$NPORT;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$http_host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_next_upstream off;
        location = /mcp { proxy_pass http://mcp; }
        location / { proxy_pass http://rest; }
    }
}
EOC
    } >"$work/nginx/nginx.conf.tmp"
    mv "$work/nginx/nginx.conf.tmp" "$work/nginx/nginx.conf"
}
nginx_conf 1 2 3
"$NGINX" -t -c "$work/nginx/nginx.conf" -e "$work/nginx.log" >"$work/nginx-t.log" 2>&1 ||
    fail "nginx -t: $(cat "$work/nginx-t.log")"
"$NGINX" -c "$work/nginx/nginx.conf" -e "$work/nginx.log" 2>>"$work/nginx.log" &
NGINX_PID=$!
pids+=("$NGINX_PID")
LB="http://127.0.0.1:$NPORT"
up() { curl -sS --max-time 2 -o /dev/null "$LB/no/such/route" 2>/dev/null; }
wait_until up || fail "nginx did not start"

# calls N SID...: N rounds of tools/call (each session, and one stateless) through nginx;
# adds to CALLS_OK/CALLS_FAILED; fails on any failed call.
calls() {
    local n=$1 what=$2 res ok failed
    shift 2
    res=$(python3 "$HERE/scale_mcp.py" calls "$LB/mcp" "$n" "$TOOL" "$@") || fail "scale_mcp calls"
    ok=$(jq .ok <<<"$res")
    failed=$(jq .failed <<<"$res")
    LAST_OK=$ok
    CALLS_OK=$((CALLS_OK + ok))
    CALLS_FAILED=$((CALLS_FAILED + failed))
    [ "$failed" = 0 ] || fail "$what: $failed of $((ok + failed)) calls failed: $res"
}
# served I: MCP requests replica I answered 200 so far
served() { grep -c 'POST /mcp 200 ' "$work/r$1.log" || true; }
metric() { curl -sS --max-time 5 "${ROPS[$1]}/metrics" | grep -F -- "$2" >/dev/null; }

# ---- session: one session across the replicas ----
SID_A=$(python3 "$HERE/scale_mcp.py" init "$LB/mcp") || fail "initialize through nginx"
b1=$(served 1) b2=$(served 2) b3=$(served 3)
calls 6 "session" "$SID_A"
# A loop writes its access lines when it next waits: let the last ones land (bounded).
logged() { [ $(($(served 1) + $(served 2) + $(served 3) - b1 - b2 - b3)) -ge "$LAST_OK" ]; }
wait_until logged || fail "the replicas logged fewer POST /mcp 200 lines than the $LAST_OK calls answered"
d1=$(($(served 1) - b1)) d2=$(($(served 2) - b2)) d3=$(($(served 3) - b3))
{ [ "$d1" -ge 2 ] && [ "$d2" -ge 2 ] && [ "$d3" -ge 2 ]; } ||
    fail "round robin did not spread the session: $d1 $d2 $d3 calls per replica"
pass "session: one MCP session (and stateless calls) through nginx, $((d1 + d2 + d3)) calls answered by the replicas as $d1/$d2/$d3, 0 failed"

# ---- rotation: new key second, then first, then the old key retired ----
F1=$(fp "$K1") F2=$(fp "$K2")
metric 1 "naftikod_mcp_session_key_info{fingerprint=\"$F1\",role=\"sign\"} 1" ||
    fail "replica 1 does not show key 1 as its signing key"
hup_to() { # REPLICA FINGERPRINT ROLE
    kill -HUP "${RPID[$1]}"
    wait_until metric "$1" "naftikod_mcp_session_key_info{fingerprint=\"$2\",role=\"$3\"} 1" ||
        fail "replica $1 did not put key $2 in force as $3"
}
ring "$K1" "$K2"
for i in 1 2 3; do
    hup_to "$i" "$F2" accept
    calls 3 "rotation: new key second, replica $i reloaded" "$SID_A"
done
ring "$K2" "$K1"
hup_to 1 "$F2" sign
SID_B=$(python3 "$HERE/scale_mcp.py" init "http://127.0.0.1:${RMCP[1]}/mcp") || fail "initialize on replica 1"
for i in 2 3; do
    calls 3 "rotation: replica 1 signs with the new key, replica $i not yet" "$SID_A" "$SID_B"
    hup_to "$i" "$F2" sign
done
calls 3 "rotation: every replica signs with the new key" "$SID_A" "$SID_B"
ring "$K2"
for i in 1 2 3; do
    kill -HUP "${RPID[i]}"
    wait_until eval "! metric $i 'fingerprint=\"$F1\"'" || fail "replica $i still accepts the old key"
done
calls 3 "rotation: old key retired" "$SID_B"
res=$(python3 "$HERE/scale_mcp.py" calls "$LB/mcp" 3 "$TOOL" "$SID_A")
[ "$(jq '.codes["404"]' <<<"$res")" = 3 ] || fail "a session of the retired key was not refused 404 everywhere: $res"
refused=0
for i in 1 2 3; do
    n=$(curl -sS --max-time 5 "${ROPS[i]}/metrics" | sed -n 's/^naftikod_mcp_sessions_refused_total{reason="unknown"} //p')
    refused=$((refused + n))
done
[ "$refused" = 3 ] || fail "naftikod_mcp_sessions_refused_total{reason=\"unknown\"} summed over the replicas is $refused, want 3"
# A bad ring keeps the keys in force.
printf 'changeme\n' >"$work/ring"
kill -HUP "${RPID[1]}"
wait_until grep -q "the MCP session key: .*the keys in force stay" "$work/r1.log" || fail "no log line for a bad ring"
metric 1 "naftikod_mcp_session_key_info{fingerprint=\"$F2\",role=\"sign\"} 1" || fail "a bad ring replaced the keys"
ring "$K2"
calls 2 "rotation: after a bad ring on replica 1" "$SID_B"
ROT_CALLS=$CALLS_OK
pass "rotation: key 2 added second, made first, key 1 retired, one replica at a time: $((ROT_CALLS)) calls so far, 0 failed; a session of the retired key 404 on every replica (counted: naftikod_mcp_sessions_refused_total{reason=\"unknown\"} 3); a bad ring kept the keys"

# ---- capability: a new tool rolled through the replicas ----
old_list=$(python3 "$HERE/scale_mcp.py" list "$LB/mcp")
cap_fp() { curl -sS --max-time 5 "${ROPS[$1]}/healthz" | jq -r .capability; }
C_OLD=$(cap_fp 1)
python3 - "$work/caps/stackrox.yaml" <<'EOP'
import sys
p = sys.argv[1]
s = open(p).read()
new = """    tools:
    - name: listtokens-v2
      description: GetAPITokens, under the name of the next version.
      hints:
        readOnly: true
      call: stackrox-apitokenservice.getapitokens
      outputParameters:
      - type: object
        mapping: $.
"""
assert "    tools:\n" in s
open(p + ".tmp", "w").write(s.replace("    tools:\n", new, 1))
EOP
mv "$work/caps/stackrox.yaml.tmp" "$work/caps/stackrox.yaml"
flaps=0
for i in 1 2 3; do
    kill -HUP "${RPID[i]}"
    wait_until eval '[ "$(cap_fp '"$i"')" != "$C_OLD" ]' || fail "replica $i did not load the new capability"
    metric "$i" "naftikod_capability_info{fingerprint=\"$(cap_fp "$i")\"} 1" || fail "no capability metric"
    calls 3 "capability: replica $i of 3 reloaded" "$SID_B"
    if [ "$i" != 3 ]; then
        for _ in 1 2 3; do
            [ "$(python3 "$HERE/scale_mcp.py" list "$LB/mcp")" = "$old_list" ] && flaps=$((flaps + 1))
        done
    fi
done
C_NEW=$(cap_fp 1)
[ "$(python3 "$HERE/scale_mcp.py" ttl "$LB/mcp")" = 5000 ] || fail "tools/list ttlMs is not --mcp-tools-ttl"

{ [ "$(cap_fp 2)" = "$C_NEW" ] && [ "$(cap_fp 3)" = "$C_NEW" ]; } || fail "the replicas report different capabilities"
for _ in 1 2 3 4 5 6; do
    python3 "$HERE/scale_mcp.py" list "$LB/mcp" | grep -q 'listtokens-v2' || fail "a tools/list after the rollout lacks the new tool"
done
pass "capability: fingerprint $C_OLD -> $C_NEW rolled through 3 replicas, 0 failed calls; mid-rollout $flaps of 6 lists were the old set; after it 6 of 6 lists the new one (ttlMs 5000: clients re-list within 5 s)"

# ---- delete: 405 on every replica, the session goes on ----
codes="$(python3 "$HERE/scale_mcp.py" delete "$LB/mcp" "$SID_B")"
for i in 1 2 3; do
    codes="$codes $(python3 "$HERE/scale_mcp.py" delete "http://127.0.0.1:${RMCP[i]}/mcp" "$SID_B")"
done
[ "$codes" = "405 405 405 405" ] || fail "DELETE in replica mode: $codes, want 405 everywhere"
calls 2 "after the refused DELETE" "$SID_B"
pass "delete: DELETE /mcp 405 through nginx and on each replica ($codes); the session still works everywhere"

# ---- sigterm: one replica stops under load ----
served_rest() { grep -c 'GET /v1/v1/apitokens 200 ' "$work/r$1.log" || true; }
python3 "$HERE/loadgen.py" "$NPORT" 6 4 "$work/load.json" /v1/v1/apitokens &
LOAD_PID=$!
sleep 1
t0=$(date +%s.%N)
kill -TERM "${RPID[3]}"
r3_before=$(served_rest 3)
# Not ready: 503, or no answer at all (a readiness probe fails either way).
notready() { [ "$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' "${ROPS[3]}/readyz" 2>/dev/null)" != 200 ]; }
wait_until notready || fail "replica 3's /readyz did not stop answering 200 on SIGTERM"
t_ready=$(python3 -c "import time; print(round((time.time() - $t0) * 1000))")
nginx_conf 1 2
kill -HUP "$NGINX_PID"
wait "$LOAD_PID" || fail "loadgen failed"
wait "${RPID[3]}" || fail "replica 3 did not exit 0"
r3_lame=$(($(served_rest 3) - r3_before))
[ "${SCALE_DELAY_S:-3}" = 0 ] || grep -q "lame duck for ${SCALE_DELAY_S:-3} s" "$work/r3.log" ||
    fail "replica 3 logged no lame duck"
jq -e '.failed == 0 and .refused == 0 and .ok > 0' "$work/load.json" >/dev/null ||
    fail "requests failed while replica 3 stopped: $(cat "$work/load.json")"
LOAD_OK=$(jq .ok "$work/load.json")
pass "sigterm: $LOAD_OK requests through nginx while replica 3 stopped, 0 failed, 0 refused; /readyz 503 within ${t_ready} ms; replica 3 answered $r3_lame during its lame duck, then exited 0"

calls 2 "after replica 3 left" "$SID_B"
t_all=$(python3 -c "import time; print(round(time.time() - $t_start, 1))")
pass "figures: $CALLS_OK MCP calls 0 failed (session, rotation, capability, delete), $LOAD_OK REST requests 0 failed under SIGTERM; ${t_all} s"
