#!/usr/bin/env bash
# rest_bench.sh: REST throughput through naftikod vs direct to the demo Central (wrk), and
# 1,000 concurrent slow (200 ms) calls through naftikod. Loopback only; bounded; cleans up.
# When nginx is installed (Debian package nginx-light; not a dependency), each round also
# measures nginx as a reverse proxy in front of the same double (keep-alive TLS upstream, the same
# Authorization injected): a reference for what a mature proxy achieves on the same machine.
# Two placements are measured in every round, on the same processes (affinity changed live):
#   shared:   every process may run on every CPU: wrk, the double and the proxy compete;
#   isolated: the proxy (naftikod or nginx) on the last CPU, wrk and the double on the others,
#             as in a deployment where clients and Central do not run on the daemon's CPU. The
#             direct run is placed the same way (wrk and the double on the same CPUs).
# A second daemon with --loops 2 (beside the first with --loops 1) is measured in the shared
# placement, where two loops can use two CPUs: the ratio of the two is the multi-loop gain on
# this machine (wrk and the double share those CPUs, which bounds it; said in the output), and the
# one compared with nginx (2 workers) there; in the isolated placement both are pinned to one CPU.
# Each ratio is printed on a line of its own starting with `ratio:`; absolute figures on
# `figure:` lines.
# Usage: bench/rest_bench.sh [BUILD_DIR]
#   env: DUR=10 CONNS=64 THREADS=2 ROUNDS=2 NGINX=auto PLACEMENTS="shared isolated" LOOPS2=1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../build}
DUR=${DUR:-10}; CONNS=${CONNS:-64}; THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-2}
PLACEMENTS=${PLACEMENTS:-shared isolated}
NCPU=$(nproc)
ALL_CPUS="0-$((NCPU - 1))"; PROXY_CPU=$((NCPU - 1)); CLIENT_CPUS="0-$((NCPU > 1 ? NCPU - 2 : 0))"
if [ "$NCPU" -lt 2 ]; then PLACEMENTS=shared; fi
# The integration tests' harness: work directory, cleanup of every process, bounded waits,
# the test certificate and the Central double (KEY is its fake key).
. "$here/../tests/integration/common.sh"
DOUBLE="$B/naftikod-demo-central"
nk_init rest-bench
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nk_start_double
# daemon NAME LOOPS: start naftikod with --loops LOOPS; sets DPID and DPORT (its REST port).
daemon() {
    STACKROX_API_KEY="Bearer $KEY" "$B/naftikod" serve \
        "$here/../capabilities/stackrox-apitokenservice.yaml" --rest-port 0 --mcp-port 0 \
        --ops-listen off --loops "$2" --var central-host=127.0.0.1:$CPORT \
        --ca-file "$work/central.crt" --port-file "$work/$1.port" >"$work/$1.log" 2>&1 &
    DPID=$!; pids+=($DPID)
    wait_file "$work/$1.port" "$DPID" || fail "naftikod --loops $2 did not start"
    DPORT=$(head -1 "$work/$1.port" | grep -o '[0-9]\+' | head -1)
}
daemon n 1; NPID=$DPID; NPORT=$DPORT
N2PID=""; N2PORT=""
if [ "${LOOPS2:-1}" != 0 ]; then
    daemon n2 2; N2PID=$DPID; N2PORT=$DPORT
fi
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
      proxy_ssl_trusted_certificate $work/central.crt; proxy_ssl_verify on;
      proxy_ssl_name localhost; proxy_ssl_server_name on; proxy_ssl_session_reuse on; } } }
EOC
    nginx -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx.err" &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GPORT/v1/v1/apitokens" >/dev/null && break; sleep 0.05; done
    curl -sf "http://127.0.0.1:$GPORT/v1/v1/apitokens" >/dev/null || { echo "nginx reference failed"; GPORT=""; }
fi
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
WRK_CPUS=$ALL_CPUS
rps() { timeout $((DUR + 20)) taskset -c "$WRK_CPUS" wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" "$@" |
            awk '/Requests\/sec/{print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
# pin CPUS PID...: every thread of each process (and of nginx's workers) on CPUS.
pin() { local c=$1 p; shift; for p in "$@"; do
            taskset -a -p -c "$c" "$p" >/dev/null
            for w in $(pgrep -P "$p" 2>/dev/null); do taskset -a -p -c "$c" "$w" >/dev/null; done
        done; }
NGPID=""; [ -n "$GPORT" ] && NGPID=$(cat "$work/nginx.pid" 2>/dev/null || true)
declare -A d n g n2
for r in $(seq "$ROUNDS"); do
    for pl in $PLACEMENTS; do
        if [ "$pl" = isolated ]; then
            WRK_CPUS=$CLIENT_CPUS; pin "$CLIENT_CPUS" "$DOUBLE_PID"; pin "$PROXY_CPU" "$NPID" $NGPID
        else
            WRK_CPUS=$ALL_CPUS; pin "$ALL_CPUS" "$DOUBLE_PID" "$NPID" $NGPID $N2PID
        fi
        d[$pl]+="$(rps -H "Authorization: Bearer $KEY" "https://127.0.0.1:$CPORT/v1/apitokens") "
        t0=$(cpu "$NPID")
        nr=$(rps "http://127.0.0.1:$NPORT/v1/v1/apitokens"); n[$pl]+="$nr "
        t1=$(cpu "$NPID")
        # CPU per request of the daemon (clock ticks of 10 ms over requests served in DUR s).
        us=$(awk "BEGIN{printf \"%.1f\", ($t1-$t0)*10000/($nr*$DUR)}")
        line="round $r $pl: direct $(echo ${d[$pl]} | awk '{print $NF}') req/s, through daemon $nr req/s (daemon CPU ${us} us/req)"
        if [ -n "$GPORT" ]; then
            gr=$(rps "http://127.0.0.1:$GPORT/v1/v1/apitokens"); g[$pl]+="$gr "
            line="$line, through nginx $gr req/s"
        fi
        if [ -n "$N2PID" ] && [ "$pl" = shared ]; then
            n2r=$(rps "http://127.0.0.1:$N2PORT/v1/v1/apitokens"); n2[$pl]+="$n2r "
            line="$line, through daemon --loops 2 $n2r req/s"
        fi
        echo "$line"
    done
done
pin "$ALL_CPUS" "$DOUBLE_PID" "$NPID" $NGPID $N2PID
for pl in $PLACEMENTS; do
    dm=$(printf '%s\n' ${d[$pl]} | median); nm=$(printf '%s\n' ${n[$pl]} | median)
    line="median $pl: direct $dm req/s, daemon $nm req/s, ratio $(awk "BEGIN{printf \"%.1f%%\", 100*$nm/$dm}")"
    echo "ratio: rest_daemon_over_direct_$pl $(awk "BEGIN{printf \"%.3f\", $nm/$dm}")"
    n2m=""
    if [ -n "${n2[$pl]:-}" ]; then
        n2m=$(printf '%s\n' ${n2[$pl]} | median)
        line="$line; daemon --loops 2 $n2m req/s"
        echo "ratio: rest_2loops_over_1loop_$pl $(awk "BEGIN{printf \"%.3f\", $n2m/$nm}")"
        echo "ratio: rest_2loops_over_direct_$pl $(awk "BEGIN{printf \"%.3f\", $n2m/$dm}")"
    fi
    if [ -n "$GPORT" ]; then
        gm=$(printf '%s\n' ${g[$pl]} | median)
        line="$line; nginx $gm req/s, ratio $(awk "BEGIN{printf \"%.1f%%\", 100*$gm/$dm}") (reference)"
        echo "ratio: rest_nginx_over_direct_$pl $(awk "BEGIN{printf \"%.3f\", $gm/$dm}")"
        # Like for like: nginx runs 2 workers. Where both may use every CPU (shared), the daemon
        # that matches it is the one with 2 loops; pinned to one CPU (isolated), the 1-loop one.
        if [ "$pl" = shared ] && [ -n "$n2m" ]; then
            echo "ratio: rest_daemon_over_nginx_$pl $(awk "BEGIN{printf \"%.3f\", $n2m/$gm}")"
            echo "ratio: rest_1loop_over_nginx_$pl $(awk "BEGIN{printf \"%.3f\", $nm/$gm}")"
        else
            echo "ratio: rest_daemon_over_nginx_$pl $(awk "BEGIN{printf \"%.3f\", $nm/$gm}")"
        fi
    fi
    echo "$line"
done
echo "daemon peak RSS after wrk: $(awk '/VmHWM/{print $2,$3}' /proc/$NPID/status)"
# 2: 1000 concurrent calls, double stalls each 200 ms.
curl -sfk -X POST "https://127.0.0.1:$CPORT/__double/faults" -d '{"mode":"stall","ms":200}' >/dev/null
out=$(timeout 60 python3 "$here/conc.py" "$NPORT" /v1/v1/apitokens 1000); echo "$out"
echo "daemon peak RSS after 1000 concurrent: $(awk '/VmHWM/{print $2,$3}' /proc/$NPID/status)"
echo "figure: inflight_1000x200ms $(sed -n 's/^wall=\([0-9.]*\)s ok200=\([0-9]*\).*/wall_s=\1 ok=\2/p' <<<"$out") peak_rss_mib=$(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$NPID/status)"
echo "ratio: inflight_1000x200ms_wall_over_200ms $(sed -n 's/^wall=\([0-9.]*\)s.*/\1/p' <<<"$out" | awk '{printf "%.2f", $1/0.2}')"
