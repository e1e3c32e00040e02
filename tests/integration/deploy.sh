#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy.sh: every overlay under deploy/overlays renders with `kubectl kustomize`, every object
# it renders is valid against the Kubernetes schemas with no unknown field (deploy_check.mjs;
# a copy with one misspelt field must fail, which proves the validator sees misspellings),
# and has the documented shape; then the real daemon starts from what the kubernetes overlay
# rendered (its ConfigMap's naftikod.yaml and its container environment) as uid 10001, with
# the Secret files root-owned, group 10001, mode 0440 in a directory of group 10001 (what the
# kubelet lays out with fsGroup 10001 and defaultMode 0440), and serves against the Central
# double over TLS with the mounted CA. Files laid 0400, as before fsGroup, must fail.
# usage: deploy.sh NAFTIKOD NAFTIKOD_DEMO_CENTRAL SOURCE_DIR
set -euo pipefail
. "$(dirname "$0")/common.sh"
nk_args "$1" "$2" "$3"
nk_init deploy deploy

require() {
    [ "${NK_REQUIRE_MCP_TOOLS:-}" = 1 ] && fail "$1 is missing"
    echo "skip: $1 is missing"
    exit 77
}
command -v kubectl >/dev/null 2>&1 || require "kubectl (Debian: kubernetes-client)"
command -v node >/dev/null 2>&1 || require "node"
command -v setpriv >/dev/null 2>&1 || require "setpriv (util-linux)"
[ "$(id -u)" = 0 ] || { echo "skip: the uid 10001 part needs root"; exit 77; }
mods="$(cd "$SRC" && pwd)/build/npm/node_modules"
[ -d "$mods/kubernetes-models" ] || mods="$(cd "$(dirname "$NAFTIKOD")" && pwd)/npm/node_modules"
[ -d "$mods/kubernetes-models" ] && [ -d "$mods/yaml" ] && [ -d "$mods/ajv" ] ||
    require "the npm packages of tests/npm/package.json (scripts/deps.sh --test)"
mkdir -p "$work/check/node_modules"
for m in yaml ajv kubernetes-models @kubernetes-models; do
    ln -s "$mods/$m" "$work/check/node_modules/$m"
done
cp "$SRC/tests/integration/deploy_check.mjs" "$work/check/"

# 1. Render and validate every overlay; a misspelt field must fail.
n=0
for dir in "$SRC"/deploy/overlays/*/; do
    o=$(basename "$dir")
    kubectl kustomize "$dir" >"$work/$o.yaml" 2>"$work/kustomize-$o.log" ||
        fail "kubectl kustomize deploy/overlays/$o failed"
    mkdir -p "$work/out-$o"
    node "$work/check/deploy_check.mjs" "$o" "$work/$o.yaml" "$work/out-$o" >"$work/check-$o.log" 2>&1 ||
        fail "deploy/overlays/$o: $(cat "$work/check-$o.log")"
    cat "$work/check-$o.log"
    sed 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' "$work/$o.yaml" >"$work/$o-broken.yaml"
    cmp -s "$work/$o.yaml" "$work/$o-broken.yaml" && fail "the broken copy of $o changed nothing"
    if node "$work/check/deploy_check.mjs" "$o" "$work/$o-broken.yaml" "" >"$work/broken-$o.out" 2>&1; then
        fail "the validator accepted a misspelt field (readOnlyRootFileSystem) in $o"
    fi
    grep -q 'readOnlyRootFileSystem: unknown field' "$work/broken-$o.out" ||
        fail "the validator did not name the misspelt field: $(cat "$work/broken-$o.out")"
    n=$((n + 1))
done
[ "$n" -ge 2 ] || fail "fewer than two overlays under deploy/overlays"
pass "$n overlays render and validate; a misspelt field (readOnlyRootFileSystem) fails each"

# 2. The kubernetes overlay's pod, on this machine, as uid 10001.
nk_start_double
chmod 0711 "$work"
root="$work/pod"
mkdir -p "$root/bin" "$root/caps" "$root/etc/naftikod" "$root/out" \
    "$root/run/secrets/naftikod" "$root/run/secrets/naftikod-central-ca"
cp "$NAFTIKOD" "$root/bin/naftikod"
cp "$CAP" "$root/caps/"
chmod -R a+rX "$root/bin" "$root/caps"
chown 10001:10001 "$root/out"
printf 'Bearer %s\n' "$KEY" >"$root/run/secrets/naftikod/stackrox-api-key"
head -c 32 /dev/urandom >"$root/run/secrets/naftikod/mcp-session-key"
printf 'deploy-test-caller-token-not-a-secret\n' | "$NAFTIKOD" hash-token ci >"$root/run/secrets/naftikod/callers"
cp "$work/central.crt" "$root/run/secrets/naftikod-central-ca/ca.crt"
lay_secrets() { # MODE: root-owned files of group 10001 in directories of group 10001
    chown -R 0:10001 "$root/run/secrets"
    chmod 0750 "$root/run/secrets"/*
    chmod "$1" "$root"/run/secrets/*/*
}
chmod 0755 "$root" "$root/run" "$root/run/secrets" "$root/etc" "$root/etc/naftikod"
sed -e "s#/usr/share/naftikod/capabilities/#$root/caps/#" -e "s#/run/secrets/#$root/run/secrets/#" \
    "$work/out-kubernetes/naftikod.yaml" >"$root/etc/naftikod/naftikod.yaml"
chmod 0644 "$root/etc/naftikod/naftikod.yaml"
mapfile -t podenv < <(sed "s#=/run/secrets/#=$root/run/secrets/#" "$work/out-kubernetes/env")
pod() { # the rendered environment, then the test's: Central here, listeners on loopback port 0
    rm -f "$root/out/ports"
    setpriv --reuid 10001 --regid 10001 --groups 10001 env -i PATH=/usr/bin:/bin "${podenv[@]}" \
        CENTRAL_HOST="127.0.0.1:$CPORT" NAFTIKOD_REST_LISTEN=127.0.0.1:0 \
        NAFTIKOD_MCP_LISTEN=127.0.0.1:0 NAFTIKOD_OPS_LISTEN=127.0.0.1:0 \
        "$root/bin/naftikod" serve --config "$root/etc/naftikod/naftikod.yaml" \
        --port-file "$root/out/ports" 2>"$work/$1.log" &
    NK_PID=$!
    pids+=("$NK_PID")
}

# Before fsGroup: 0400, root's alone; uid 10001 cannot read the key and must say so.
lay_secrets 0400
pod mode0400
wait_until nk_gone "$NK_PID" || fail "naftikod started with key files it cannot read"
st=0
wait "$NK_PID" || st=$?
[ "$st" = 1 ] || fail "naftikod exited $st, not 1, with unreadable key files"
grep -q 'Permission denied' "$work/mode0400.log" || fail "no 'Permission denied' for the 0400 key file"

lay_secrets 0440
pod pod
wait_file "$root/out/ports" "$NK_PID" || fail "the kubernetes overlay's configuration does not start as uid 10001"
cp "$root/out/ports" "$work/pod.ports"
nk_ports pod
grep -q '"level":"info"' "$work/pod.log" || fail "log-format json not applied"
s=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' "$OPS/readyz") || true
[ "$s" = 200 ] || fail "/readyz answered $s"
reached() { curl -sS --max-time 10 "$OPS/healthz" | jq -e '.upstream.reachable == true' >/dev/null; }
wait_until reached || fail "/healthz: Central over TLS with the mounted CA is not reachable: $(curl -sS "$OPS/healthz")"
s=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' "$REST/v1/v1/apitokens") || true
[ "$s" = 401 ] || fail "REST without a caller token answered $s, not 401"
s=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' \
    -H 'Authorization: Bearer deploy-test-caller-token-not-a-secret' \
    -H 'Host: naftikod.stackrox-agents.svc:8080' "$REST/v1/v1/apitokens") || true
[ "$s" = 200 ] || fail "REST with the caller token and the Service's name answered $s, not 200"
mcp() { # HOST: tools/list with the caller token and that Host header; prints the status
    curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' -X POST "$MCP" \
        -H "Host: $1" -H 'Authorization: Bearer deploy-test-caller-token-not-a-secret' \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' \
        -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' || true
}
s=$(mcp naftikod.stackrox-agents.svc.cluster.local:9090)
[ "$s" = 200 ] || fail "MCP through the Service's full name answered $s, not 200"
s=$(mcp naftikod.elsewhere.svc:9090)
[ "$s" = 403 ] || fail "MCP with a Host of another namespace answered $s, not 403"
nk_stop "naftikod (uid 10001)"
pass "the kubernetes overlay's pod runs as uid 10001 on 0440 group-10001 secrets (0400: exit 1, Permission denied): /readyz 200, /healthz upstream reachable via the mounted CA, REST 401/200, MCP Host of the Service 200, of another namespace 403"
