# SPDX-License-Identifier: Apache-2.0
# common.sh (sourced): what the integration scripts share: a work directory removed on exit
# (its logs kept for the credential scan, see keep_logs.sh), processes stopped on exit, fail()
# with the logs, bounded waits, a test certificate, the Central double over TLS.
#
#   nk_init NAME          work=$(mktemp ...), trap; KEY is the double's and the daemon's key
#   pids+=(PID)           stopped on exit
#   fail MSG              print MSG, every *.log under $work (tail) and $work/body; exit 1
#   wait_file FILE PID    until FILE is non-empty (10 s) or PID died
#   nk_cert NAME          $work/NAME.crt and $work/NAME.key, for 127.0.0.1 and localhost
#   nk_start_double [ARGS] the double with $work/central.crt; sets CPORT and DOUBLE_PID
# shellcheck source=keep_logs.sh
. "$(dirname "${BASH_SOURCE[0]}")/keep_logs.sh"

KEY="test-key-not-a-secret"

nk_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    nk_keep_logs "$work"
    rm -rf "$work"
}

nk_init() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/nk-$1.XXXXXX")
    pids=()
    trap nk_cleanup EXIT
}

fail() {
    local f
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do
        [ -f "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 20 "$f" >&2; }
    done
    [ -f "$work/body" ] && { echo "--- last body" >&2; head -c 600 "$work/body" >&2; echo >&2; }
    exit 1
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

nk_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$work/$1.key" -out "$work/$1.crt" 2>/dev/null || fail "openssl could not make $1.crt"
}

nk_start_double() {
    [ -f "$work/central.crt" ] || nk_cert central
    "$DOUBLE" --port 0 --port-file "$work/central.port" --token "$KEY" \
        --tls-cert "$work/central.crt" --tls-key "$work/central.key" "$@" \
        >"$work/central.log" 2>&1 &
    DOUBLE_PID=$!
    pids+=("$DOUBLE_PID")
    wait_file "$work/central.port" "$DOUBLE_PID" || fail "central double did not start"
    CPORT=$(cat "$work/central.port")
}
