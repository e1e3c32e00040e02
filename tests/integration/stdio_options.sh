#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# stdio_options.sh: `naftikod mcp-stdio` reads the shared option table: every option its
# --options-markdown documents is accepted as a flag, as its environment variable and as a config
# file key (the command still answers initialize and tools/list), and every option of `serve`
# alone is refused as a flag with exit 2 and a message naming the command it belongs to.
#
# usage: stdio_options.sh NAFTIKOD CAPABILITY
set -euo pipefail
NAFTIKOD=$1
CAP=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/nk-stdio-opts.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

export STACKROX_API_KEY="Bearer not-a-real-key"
export CENTRAL_HOST=127.0.0.1:1
unset STACKROX_API_KEY_FILE CREDENTIALS_DIRECTORY
printf '%s\n' \
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' \
    '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
    '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' >"$work/in"
: >"$work/empty.yaml"
printf 'timeout: 1000\n' >"$work/config.yaml"
printf 'callers:\n  - name: any\n    match: {anonymous: true}\n    grants: [{tools: "*"}]\n' \
    >"$work/permissions.yaml"

# The flags of a command's option table (first cell of each row, metavariable dropped).
flags() { "$NAFTIKOD" "$1" --options-markdown | sed -n 's/^| `\(--[a-z-]*\).*/\1/p'; }
# The environment variable of a flag in mcp-stdio's table ("-" when it has none).
env_of() { "$NAFTIKOD" mcp-stdio --options-markdown | awk -F' \\| ' -v f="$1" \
    'index($1, "`" f) == 3 || index($1, "`" f " ") == 3 { gsub(/`/, "", $2); print $2 }'; }
# A valid value for a flag (empty: a boolean).
value_of() {
    case $1 in
    --config) echo "$work/config.yaml" ;;
    --var) echo "central-host=127.0.0.1:1" ;;
    --ca-file) echo "$work/empty.yaml" ;;
    --insecure-skip-verify | --read-only) echo "" ;;
    --log-format) echo json ;;
    --log-level) echo debug ;;
    --adapter) echo stackrox-apitokenservice-mcp ;;
    --permissions) echo "$work/permissions.yaml" ;;
    --audit-log) echo "$work/audit.log" ;;
    *) echo 1000 ;;
    esac
}
# Run mcp-stdio with the given arguments; it must answer ids 1 and 2 and exit 0.
answers() {
    local what=$1
    shift
    timeout 20 "$@" <"$work/in" >"$work/out" 2>"$work/err" || fail "$what: exit $? ($(cat "$work/err"))"
    [ "$(jq -s 'map(.id) | sort' <"$work/out" | tr -d ' \n')" = "[1,2]" ] ||
        fail "$what: no answers to initialize and tools/list: $(cat "$work/out") $(cat "$work/err")"
    jq -se '.[1].result.tools | length > 0' <"$work/out" >/dev/null || fail "$what: no tools"
}

n=0
for f in $(flags mcp-stdio); do
    v=$(value_of "$f")
    if [ -z "$v" ]; then
        answers "flag $f" "$NAFTIKOD" mcp-stdio "$f" "$CAP"
    else
        answers "flag $f $v" "$NAFTIKOD" mcp-stdio "$f" "$v" "$CAP"
        answers "flag $f=$v" "$NAFTIKOD" mcp-stdio "$f=$v" "$CAP"
    fi
    e=$(env_of "$f")
    if [ -n "$e" ] && [ "$e" != "-" ] && [ "$f" != --var ]; then
        answers "env $e" env "$e=${v:-true}" "$NAFTIKOD" mcp-stdio "$CAP"
    fi
    if [ "$f" != --config ] && [ "$f" != --var ]; then
        printf '%s: %s\n' "${f#--}" "${v:-true}" >"$work/file.yaml"
        answers "config key ${f#--}" "$NAFTIKOD" mcp-stdio --config "$work/file.yaml" "$CAP"
    fi
    n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "mcp-stdio documents only $n options"
# A bad value of a shared option is refused with the shared message.
if "$NAFTIKOD" mcp-stdio --timeout 3x "$CAP" <"$work/in" >/dev/null 2>"$work/err"; then
    fail "--timeout 3x accepted"
fi
grep -q "naftikod mcp-stdio: --timeout: '3x' is not a non-negative integer" "$work/err" ||
    fail "bad value message: $(cat "$work/err")"

# Options of serve alone: refused by name, exit 2, nothing read from stdin.
m=0
for f in $(comm -23 <(flags serve | sort) <(flags mcp-stdio | sort)); do
    set +e
    "$NAFTIKOD" mcp-stdio "$f" 1 "$CAP" </dev/null >"$work/out" 2>"$work/err"
    st=$?
    set -e
    [ "$st" = 2 ] || fail "mcp-stdio $f: exit $st, want 2"
    grep -qF "naftikod mcp-stdio: $f is an option of 'naftikod serve' only" "$work/err" ||
        fail "mcp-stdio $f: message: $(cat "$work/err")"
    [ ! -s "$work/out" ] || fail "mcp-stdio $f wrote to stdout"
    m=$((m + 1))
done
[ "$m" -ge 15 ] || fail "only $m serve-only options"
# A config file shared with serve: serve's keys are ignored here, unknown keys are not.
printf 'rest-port: 8080\nmcp-auth: token\ntimeout: 1000\n' >"$work/shared.yaml"
answers "shared config file" "$NAFTIKOD" mcp-stdio --config "$work/shared.yaml" "$CAP"
printf 'timeout: 1000\nbogus: 1\n' >"$work/bad.yaml"
set +e
"$NAFTIKOD" mcp-stdio --config "$work/bad.yaml" "$CAP" </dev/null >/dev/null 2>"$work/err"
st=$?
set -e
[ "$st" = 1 ] || fail "unknown key: exit $st, want 1"
grep -qF "$work/bad.yaml:2:1: bogus: unknown key" "$work/err" || fail "unknown key: $(cat "$work/err")"
echo "ok: mcp-stdio accepts its $n documented options (flag, variable, file key) and refuses $m serve-only flags"
