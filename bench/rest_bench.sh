#!/usr/bin/env bash
# rest_bench.sh: REST throughput through naftikod vs direct to central-double (wrk), and
# 1,000 concurrent slow (200 ms) calls through naftikod. Loopback only; bounded; cleans up.
# When nginx is installed (Debian package nginx-light; not a dependency), each round also
# measures nginx as a reverse proxy in front of the same double (keep-alive TLS upstream, the same
# Authorization injected): a reference for what a mature proxy achieves on the same machine.
# Usage: bench/rest_bench.sh [BUILD_DIR]   env: DUR=10 CONNS=64 THREADS=2 ROUNDS=2 NGINX=auto
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
DUR=${DUR:-10}; CONNS=${CONNS:-64}; THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-2}
KEY="bench-key-not-a-secret"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
            for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$work/c.key" -out "$work/c.crt" 2>/dev/null
"$B/tests/central-double" --port 0 --port-file "$work/c.port" --token "$KEY" \
    --tls-cert "$work/c.crt" --tls-key "$work/c.key" >"$work/c.log" 2>&1 &
pids+=($!); wait_file "$work/c.port"; CPORT=$(cat "$work/c.port")
STACKROX_API_KEY="Bearer $KEY" "$B/naftikod" serve \
    "$here/../capabilities/stackrox-apitokenservice.yaml" --rest-port 0 --mcp-port 0 \
    --var central-host=127.0.0.1:$CPORT --ca-file "$work/c.crt" --port-file "$work/n.port" \
    >"$work/n.log" 2>&1 &
NPID=$!; pids+=($NPID); wait_file "$work/n.port"
NPORT=$(head -1 "$work/n.port" | grep -o '[0-9]\+' | head -1)
echo "double https://127.0.0.1:$CPORT  naftikod rest http://127.0.0.1:$NPORT (pid $NPID)"
curl -sf "http://127.0.0.1:$NPORT/v1/v1/apitokens" >/dev/null || { echo "daemon GET failed"; cat "$work/n.port" "$work/n.log"; exit 1; }
GPORT=""
if [ "${NGINX:-auto}" != 0 ] && command -v nginx >/dev/null 2>&1; then
    GPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/nginx.conf" <<EOC
worker_processes 2; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 4096; }
http { access_log off;
  upstream central { server 127.0.0.1:$CPORT; keepalive 128; }
  server { listen 127.0.0.1:$GPORT;
    location /v1/v1/ { proxy_pass https://central/v1/; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Authorization "Bearer $KEY";
      proxy_ssl_trusted_certificate $work/c.crt; proxy_ssl_verify on;
      proxy_ssl_name localhost; proxy_ssl_server_name on; proxy_ssl_session_reuse on; } } }
EOC
    nginx -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx.err" &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GPORT/v1/v1/apitokens" >/dev/null && break; sleep 0.05; done
    curl -sf "http://127.0.0.1:$GPORT/v1/v1/apitokens" >/dev/null || { echo "nginx reference failed"; GPORT=""; }
fi
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
rps() { timeout $((DUR + 20)) wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" "$@" | awk '/Requests\/sec/{print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
d=(); n=(); g=()
for r in $(seq "$ROUNDS"); do
    d+=("$(rps -H "Authorization: Bearer $KEY" "https://127.0.0.1:$CPORT/v1/apitokens")")
    t0=$(cpu "$NPID")
    n+=("$(rps "http://127.0.0.1:$NPORT/v1/v1/apitokens")")
    t1=$(cpu "$NPID")
    # CPU per request of the daemon (clock ticks of 10 ms over requests served in DUR s).
    us=$(awk "BEGIN{printf \"%.1f\", ($t1-$t0)*10000/(${n[-1]}*$DUR)}")
    line="round $r: direct ${d[-1]} req/s, through daemon ${n[-1]} req/s (daemon CPU ${us} us/req)"
    if [ -n "$GPORT" ]; then
        g+=("$(rps "http://127.0.0.1:$GPORT/v1/v1/apitokens")")
        line="$line, through nginx ${g[-1]} req/s"
    fi
    echo "$line"
done
dm=$(printf '%s\n' "${d[@]}" | median); nm=$(printf '%s\n' "${n[@]}" | median)
echo "median direct $dm req/s, daemon $nm req/s, ratio $(awk "BEGIN{printf \"%.1f%%\", 100*$nm/$dm}")"
if [ -n "$GPORT" ]; then
    gm=$(printf '%s\n' "${g[@]}" | median)
    echo "median nginx $gm req/s, ratio $(awk "BEGIN{printf \"%.1f%%\", 100*$gm/$dm}") (reference)"
fi
echo "daemon peak RSS after wrk: $(awk '/VmHWM/{print $2,$3}' /proc/$NPID/status)"
# 2: 1000 concurrent calls, double stalls each 200 ms.
curl -sfk -X POST "https://127.0.0.1:$CPORT/__double/faults" -d '{"mode":"stall","ms":200}' >/dev/null
timeout 60 python3 "$here/conc.py" "$NPORT" /v1/v1/apitokens 1000
echo "daemon peak RSS after 1000 concurrent: $(awk '/VmHWM/{print $2,$3}' /proc/$NPID/status)"
