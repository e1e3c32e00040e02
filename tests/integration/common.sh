# SPDX-License-Identifier: Apache-2.0
# common.sh (sourced): what the integration scripts share: a work directory removed on exit
# (its logs kept for the credential scan, see keep_logs.sh), processes stopped on exit, fail()
# with the logs, bounded waits, a test certificate, the Central double over TLS.
#
#   nk_args NAFTIKOD DOUBLE SRC  sets NAFTIKOD, DOUBLE, SRC and CAP (the StackRox capability)
#   nk_init NAME [TAG]    work=$(mktemp ...), trap; KEY is the double's and the daemon's key;
#                         TAG (optional) prefixes fail and pass messages: "FAIL [TAG]: ..."
#   pids+=(PID)           stopped on exit
#   fail MSG              print MSG, every *.log under $work (last 40 lines, without the lines
#                         matching the extended regex NK_FAIL_SKIP when set) and $work/body; exit 1
#   pass MSG              print "ok [TAG]: MSG"
#   wait_file FILE PID    until FILE is non-empty (10 s) or PID died
#   wait_until CMD...     until CMD succeeds (10 s)
#   nk_cert NAME          $work/NAME.crt and $work/NAME.key, for 127.0.0.1 and localhost
#   nk_start_double [ARGS] the double with $work/central.crt; sets CPORT and DOUBLE_PID
#   nk_requests           the requests the double recorded (JSON array) on stdout
#   nk_fault JSON         sets a fault of the double (POST /__double/faults)
#   nk_launch NAME [VAR=VALUE...] -- [ARGS...]
#                         $NAFTIKOD serve --port-file $work/NAME.ports ARGS in the background,
#                         stderr in $work/NAME.log, with the credential variables
#                         (STACKROX_API_KEY, STACKROX_API_KEY_FILE, CREDENTIALS_DIRECTORY,
#                         CENTRAL_HOST) removed from the environment and VAR=VALUE added; sets
#                         NK_PID (stopped on exit); once the port file is written, nk_ports NAME.
#                         Returns 1 when the daemon exited (or 10 s passed) before writing it.
#   nk_serve NAME [ARGS...] nk_launch NAME STACKROX_API_KEY="Bearer $KEY" -- --rest-port 0
#                         --mcp-port 0 ARGS; fails when the daemon does not start
#   nk_ports NAME         REST, MCP and OPS from $work/NAME.ports: http://127.0.0.1:PORT (MCP
#                         with /mcp), empty for a listener the file does not name
#   nk_stop [WHAT]        SIGTERM to NK_PID: it must exit within 10 s, with status 0
# shellcheck source=keep_logs.sh
. "$(dirname "${BASH_SOURCE[0]}")/keep_logs.sh"

KEY="test-key-not-a-secret"
# SIGTERM drains at once in the tests (no lame-duck period) unless a test sets its own.
export NAFTIKOD_SHUTDOWN_DELAY_S=${NAFTIKOD_SHUTDOWN_DELAY_S:-0}

nk_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    nk_keep_logs "$work"
    rm -rf "$work"
}

nk_args() {
    NAFTIKOD=$1
    DOUBLE=$2
    SRC=$3
    CAP="$SRC/capabilities/stackrox-apitokenservice.yaml"
}

nk_init() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/nk-$1.XXXXXX")
    NK_TAG=${2:-}
    pids=()
    NK_PID=""
    trap nk_cleanup EXIT
}

fail() {
    local f
    echo "FAIL${NK_TAG:+ [$NK_TAG]}: $*" >&2
    for f in "$work"/*.log; do
        [ -f "$f" ] || continue
        echo "--- $(basename "$f")" >&2
        if [ -n "${NK_FAIL_SKIP:-}" ]; then
            grep -Ev -- "$NK_FAIL_SKIP" "$f" | tail -n 40 >&2
        else
            tail -n 40 "$f" >&2
        fi
    done
    [ -f "$work/body" ] && { echo "--- last body" >&2; head -c 2000 "$work/body" >&2; echo >&2; }
    exit 1
}

pass() {
    echo "ok${NK_TAG:+ [$NK_TAG]}: $*"
}

wait_file() {
    local i
    for i in $(seq 200); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

wait_until() {
    local i
    for i in $(seq 200); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

nk_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$work/$1.key" -out "$work/$1.crt" 2>/dev/null || fail "openssl could not make $1.crt"
}

nk_start_double() {
    [ -f "$work/central.crt" ] || nk_cert central
    rm -f "$work/central.port"
    "$DOUBLE" --port 0 --port-file "$work/central.port" --token "$KEY" \
        --tls-cert "$work/central.crt" --tls-key "$work/central.key" "$@" \
        >"$work/central.log" 2>&1 &
    DOUBLE_PID=$!
    pids+=("$DOUBLE_PID")
    wait_file "$work/central.port" "$DOUBLE_PID" || fail "central double did not start"
    CPORT=$(cat "$work/central.port")
}

nk_requests() {
    curl -sS --max-time 10 --cacert "$work/central.crt" "https://127.0.0.1:$CPORT/__double/requests"
}

nk_fault() {
    curl -sS --max-time 10 --cacert "$work/central.crt" -X POST \
        "https://127.0.0.1:$CPORT/__double/faults" -d "$1" >/dev/null || fail "cannot set the fault $1"
}

nk_ports() {
    local f="$work/$1.ports" p
    REST="" MCP="" OPS=""
    p=$(sed -n 's/^rest=//p' "$f" | head -n1)
    [ -z "$p" ] || REST="http://127.0.0.1:$p"
    p=$(sed -n 's/^mcp=//p' "$f" | head -n1)
    [ -z "$p" ] || MCP="http://127.0.0.1:$p/mcp"
    p=$(sed -n 's/^ops=//p' "$f" | head -n1)
    [ -z "$p" ] || OPS="http://127.0.0.1:$p"
}

nk_launch() {
    local name=$1 envs=()
    shift
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    [ "$#" -gt 0 ] || fail "nk_launch $name: no -- before the serve arguments"
    shift
    rm -f "$work/$name.ports"
    REST="" MCP="" OPS=""
    env -u STACKROX_API_KEY -u STACKROX_API_KEY_FILE -u CREDENTIALS_DIRECTORY -u CENTRAL_HOST \
        "${envs[@]}" "$NAFTIKOD" serve --port-file "$work/$name.ports" "$@" \
        2>"$work/$name.log" &
    NK_PID=$!
    pids+=("$NK_PID")
    wait_file "$work/$name.ports" "$NK_PID" || return 1
    nk_ports "$name"
}

nk_serve() {
    local name=$1
    shift
    nk_launch "$name" "STACKROX_API_KEY=Bearer $KEY" -- --rest-port 0 --mcp-port 0 "$@" ||
        fail "$name: naftikod did not start"
}

# nk_serve_nofile NAME N [args...]: nk_serve with the descriptor limit (soft and hard) at N.
nk_serve_nofile() {
    local name=$1 n=$2 real=$NAFTIKOD
    shift 2
    cat >"$work/$name.nofile" <<EOS
#!/usr/bin/env bash
ulimit -n $n || exit 99
exec "$real" "\$@"
EOS
    chmod +x "$work/$name.nofile"
    NAFTIKOD="$work/$name.nofile"
    nk_serve "$name" "$@"
    NAFTIKOD=$real
}

nk_stop() {
    local what=${1:-naftikod} st=0
    kill -TERM "$NK_PID"
    wait_until nk_gone "$NK_PID" || fail "$what did not stop on SIGTERM"
    wait "$NK_PID" || st=$?
    [ "$st" = 0 ] || fail "$what exited $st after SIGTERM"
}

nk_gone() {
    ! kill -0 "$1" 2>/dev/null
}

# nk_call WHAT [curl args...]: one request (30 s at most); STATUS, the body in $work/body.
nk_call() {
    local what=$1
    shift
    STATUS=$(curl -sS --max-time 30 -o "$work/body" -w '%{http_code}' "$@") ||
        fail "$what: curl failed"
}

# nk_fetch [curl args...]: one request (20 s at most); STATUS, the body in $work/body (also
# appended to $work/all-bodies, which the auth tests search for secrets), the head in
# $work/headers. A failure does not print the arguments: they may hold a token.
nk_fetch() {
    STATUS=$(curl -sS --max-time 20 -o "$work/body" -D "$work/headers" -w '%{http_code}' "$@") ||
        fail "curl failed (arguments not shown: they may hold a token)"
    cat "$work/body" >>"$work/all-bodies"
}

# nk_expect STATUS WHAT JQ_FILTER: the last nk_call answered STATUS with a body JQ_FILTER accepts.
nk_expect() {
    [ "$STATUS" = "$1" ] || fail "$2: expected HTTP $1, got $STATUS: $(head -c 400 "$work/body")"
    jq -e "$3" "$work/body" >/dev/null 2>&1 ||
        fail "$2: body does not satisfy $3: $(head -c 400 "$work/body")"
    pass "$2"
}
