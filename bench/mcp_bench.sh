#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mcp_bench.sh: MCP tools/call of the seed capability's list tool (getapitokens-returns-all-api-
# tokens) through naftikod versus the same tool served by a minimal MCP server on the official
# TypeScript SDK (bench/mcp-sdk-peer/server.mjs), both proxying the same TLS Central double with
# the same Authorization. Same load (bench/mcp_load.mjs: CONC keep-alive workers, one session
# each, protocol 2025-06-18), servers measured alternately for ROUNDS rounds; reports medians of
# req/s and latency, each server's CPU per call (/proc/PID/stat utime+stime over the calls it
# answered) and peak RSS (VmHWM). Loopback only; every process is stopped on exit; bounded.
# Needs: tests/mcp/install.sh (Node 22 under build/mcp-npm); the peer's deps are installed under
# build/mcp-bench-npm on first use (npm registry).
# Usage: bench/mcp_bench.sh [BUILD_DIR]
#   env: DUR=10 CONC=32 ROUNDS=5 WARM=3 TOKENS=3 PROCS=1 PEER_MODES="sse json"
#   PEER_MODES: each word starts one SDK peer: sse | json (enableJsonResponse), optionally
#   suffixed -stateless (a new server + transport per request instead of a session map).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
B=$(cd "${1:-$root/build}" && pwd)
DUR=${DUR:-10}; CONC=${CONC:-32}; ROUNDS=${ROUNDS:-5}; WARM=${WARM:-3}; TOKENS=${TOKENS:-3}
PROCS=${PROCS:-1}; PEER_MODES=${PEER_MODES:-sse json}
NODE="$B/mcp-npm/node_modules/.bin/node"
[ -x "$NODE" ] || { echo "no Node 22 at $NODE: run tests/mcp/install.sh first" >&2; exit 1; }
NPM_PREFIX="$B/mcp-bench-npm"
if ! cmp -s "$here/mcp-sdk-peer/package.json" "$NPM_PREFIX/package.json" ||
   [ ! -d "$NPM_PREFIX/node_modules/@modelcontextprotocol/sdk" ]; then
    mkdir -p "$NPM_PREFIX"; cp "$here/mcp-sdk-peer/package.json" "$NPM_PREFIX/package.json"
    (cd "$NPM_PREFIX" && PATH="$(dirname "$NODE"):$PATH" timeout 300 \
        npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
# The integration tests' harness: work directory, cleanup of every process, bounded waits,
# the test certificate and the Central double (KEY is its fake key).
. "$here/../tests/integration/common.sh"
DOUBLE="$B/naftikod-demo-central"
nk_init mcp-bench
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nk_start_double
for i in $(seq "$TOKENS"); do   # a non-empty list: TOKENS tokens in every answer
    curl -sfk -H "Authorization: Bearer $KEY" -X POST "https://127.0.0.1:$CPORT/v1/apitokens/generate" \
        -d "{\"name\":\"bench-$i\",\"role\":\"Analyst\"}" >/dev/null
done
export STACKROX_API_KEY="Bearer $KEY"
"$B/naftikod" serve "$root/capabilities/stackrox-apitokenservice.yaml" --rest-port 0 \
    --mcp-port 0 --ops-listen off --port-file "$work/n.port" --ca-file "$work/central.crt" \
    --var central-host="127.0.0.1:$CPORT" >"$work/n.log" 2>&1 &
NPID=$!; pids+=("$NPID"); wait_file "$work/n.port" "$NPID" || fail "naftikod did not start"
names=(naftikod); spids=("$NPID"); urls=("http://127.0.0.1:$(sed -n 's/^mcp=//p' "$work/n.port")/mcp")
for m in $PEER_MODES; do
    flags=(--mode "${m%-stateless}"); [ "$m" != "${m%-stateless}" ] && flags+=(--stateless)
    MCP_BENCH_NPM="$NPM_PREFIX" "$NODE" "$here/mcp-sdk-peer/server.mjs" --central "127.0.0.1:$CPORT" \
        --ca-file "$work/central.crt" --port-file "$work/p-$m.port" "${flags[@]}" >"$work/p-$m.log" 2>&1 &
    pids+=($!); spids+=($!); names+=("sdk-$m"); wait_file "$work/p-$m.port" $! || fail "peer $m did not start"
    urls+=("http://127.0.0.1:$(cat "$work/p-$m.port")/mcp")
done
unset STACKROX_API_KEY
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
# Whole machine: "IDLE TOTAL" jiffies (idle + iowait, all) from /proc/stat's cpu line.
mach() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print $5+$6, t}' /proc/stat; }
load() { timeout $((${2:-$DUR} + 60)) "$NODE" "$here/mcp_load.mjs" "$1" --conc "$CONC" \
             --dur "${2:-$DUR}" --procs "$PROCS" 2>>"$work/load.err"; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "$(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "DUR=$DUR CONC=$CONC ROUNDS=$ROUNDS PROCS=$PROCS TOKENS=$TOKENS; node $("$NODE" --version)"
for i in "${!names[@]}"; do
    echo "${names[$i]}: pid ${spids[$i]} ${urls[$i]}"
    load "${urls[$i]}" "$WARM" >/dev/null  # warm-up (JIT, connection pools)
done
declare -A R; declare -a M
for r in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        t0=$(cpu "${spids[$i]}"); d0=$(cpu "$DOUBLE_PID"); read -r i0 a0 <<<"$(mach)"
        out=$(load "${urls[$i]}") || { echo "load against ${names[$i]} failed" >&2; cat "$work/load.err" >&2; exit 1; }
        t1=$(cpu "${spids[$i]}"); d1=$(cpu "$DOUBLE_PID"); read -r i1 a1 <<<"$(mach)"
        idle=$(awk "BEGIN{printf \"%.0f\", 100*($i1-$i0)/(($a1-$a0)>0?($a1-$a0):1)}")
        ok=$(field ok <<<"$out"); err=$(field err <<<"$out")
        us=$(awk "BEGIN{printf \"%.0f\", ($t1-$t0)*1e6/$tck/($ok>0?$ok:1)}")
        dus=$(awk "BEGIN{printf \"%.0f\", ($d1-$d0)*1e6/$tck/($ok>0?$ok:1)}")
        R[$i,rps]+="$(field rps <<<"$out") "; R[$i,p50]+="$(field p50_ms <<<"$out") "
        R[$i,p99]+="$(field p99_ms <<<"$out") "; R[$i,us]+="$us "; R[$i,lg]+="$(field lg_cpu_pct <<<"$out") "
        R[$i,idle]+="$idle "
        R[$i,err]=$(( ${R[$i,err]:-0} + err ))
        printf 'round %d %-22s %8s req/s  p50 %6s ms  p99 %7s ms  server %4s us/call  double %3s us/call  generator %5s%% CPU  machine idle %2s%%  errors %s  (load %s)\n' \
            "$r" "${names[$i]}" "$(field rps <<<"$out")" "$(field p50_ms <<<"$out")" \
            "$(field p99_ms <<<"$out")" "$us" "$dus" "$(field lg_cpu_pct <<<"$out")" "$idle" "$err" \
            "$(cut -d' ' -f1 /proc/loadavg)"
    done
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
echo "medians over $ROUNDS rounds (CONC=$CONC, ${DUR}s each):"
printf '| server | req/s | p50 ms | p99 ms | CPU us/call | peak RSS (VmHWM) | generator CPU | machine idle | errors |\n|---|---|---|---|---|---|---|---|---|\n'
for i in "${!names[@]}"; do
    hwm=$(awk '/VmHWM/{printf "%.1f MiB", $2/1024}' "/proc/${spids[$i]}/status")
    M[i]="$(med "${R[$i,rps]}") $(med "${R[$i,us]}") $(awk '/VmHWM/{print $2}' "/proc/${spids[$i]}/status")"
    printf '| %s (%s threads) | %s | %s | %s | %s | %s | %s%% | %s%% | %s |\n' "${names[$i]}" \
        "$(awk '/^Threads/{print $2}' "/proc/${spids[$i]}/status")" "$(med "${R[$i,rps]}")" \
        "$(med "${R[$i,p50]}")" "$(med "${R[$i,p99]}")" "$(med "${R[$i,us]}")" "$hwm" \
        "$(med "${R[$i,lg]}")" "$(med "${R[$i,idle]}")" "${R[$i,err]}"
done
read -r nr nu nh <<<"${M[0]}"
for i in "${!names[@]}"; do
    [ "$i" = 0 ] && continue
    read -r pr pu ph <<<"${M[$i]}"
    awk -v n="${names[$i]}" -v nr="$nr" -v nu="$nu" -v nh="$nh" -v pr="$pr" -v pu="$pu" -v ph="$ph" \
        'BEGIN{printf "naftikod / %s: %.2fx req/s, %.2fx less CPU per call, %.1fx less peak RSS\n", n, nr/pr, pu/nu, ph/nh;
               printf "ratio: mcp_reqps_naftikod_over_%s %.3f\n", n, nr/pr;
               printf "ratio: mcp_cpu_per_call_%s_over_naftikod %.3f\n", n, pu/nu;
               printf "ratio: mcp_peak_rss_%s_over_naftikod %.3f\n", n, ph/nh}'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
