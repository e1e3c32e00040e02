#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy.sh: deploy/ manifests parse and have the promised shape, and the ConfigMap's
# naftikod.yaml is a configuration the real daemon starts with (listeners moved to loopback
# port 0 by flags, which beat the file).
# usage: deploy.sh NAFTIKOD SOURCE_DIR
set -euo pipefail
. "$(dirname "$0")/keep_logs.sh"
NAFTIKOD=$1
SRC=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/nk-deploy.XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; nk_keep_logs "$work"; rm -rf "$work"' EXIT
mods="$SRC/build/mcp-npm/node_modules"
[ -d "$mods/yaml" ] || mods="$(dirname "$NAFTIKOD")/mcp-npm/node_modules"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$mods/yaml" ]; then
    [ "${NK_REQUIRE_MCP_TOOLS:-}" = 1 ] && { echo "FAIL: node or the yaml package is missing" >&2; exit 1; }
    echo "skip: node or the npm yaml package (tests/mcp/install.sh) is missing"
    exit 77
fi
mkdir -p "$work/node_modules"
ln -s "$mods/yaml" "$work/node_modules/yaml"
cp "$SRC/tests/integration/deploy_check.mjs" "$work/"
node "$work/deploy_check.mjs" "$SRC/deploy" "$work/naftikod.yaml"
printf 'deploy-test-caller-token-not-a-secret\n' | "$NAFTIKOD" hash-token ci >"$work/callers"
sed -i "s#/usr/share/naftikod/capabilities/#$SRC/capabilities/#; s#/run/secrets/naftikod/callers#$work/callers#" \
    "$work/naftikod.yaml"
STACKROX_API_KEY="Bearer test-key-not-a-secret" "$NAFTIKOD" serve --config "$work/naftikod.yaml" \
    --rest-listen 127.0.0.1:0 --mcp-listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
    --var central-host=127.0.0.1:9 --port-file "$work/ports" 2>"$work/log" &
pid=$!
for _ in $(seq 200); do [ -s "$work/ports" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
[ -s "$work/ports" ] || { cat "$work/log" >&2; echo "FAIL: the ConfigMap's configuration does not start" >&2; exit 1; }
grep -q '"level":"info"' "$work/log" || { echo "FAIL: log-format json not applied" >&2; exit 1; }
rest=$(sed -n 's/^rest=//p' "$work/ports")
s=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$rest/v1/v1/apitokens")
[ "$s" = 401 ] || { echo "FAIL: the ConfigMap's REST adapter answered $s without a token, not 401" >&2; exit 1; }
kill -TERM "$pid"; wait "$pid"; pid=""
echo "ok: the ConfigMap's naftikod.yaml starts the daemon (json logs, token auth: 401 without a token)"
