#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install.sh: install the pinned MCP test tools (tests/mcp/package.json: Node 22, the official
# conformance suite, the official TypeScript SDK) under build/mcp-npm (or $NK_MCP_NPM_PREFIX),
# where tests/cmake/mcp.cmake looks for them. Needs npm (Debian's nodejs/npm) and the registry.
#   tests/mcp/install.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${NK_MCP_NPM_PREFIX:-$here/../../build/mcp-npm}
mkdir -p "$prefix"
cp "$here/package.json" "$prefix/package.json"
cd "$prefix"
npm install --no-audit --no-fund --loglevel=error >/dev/null
"$prefix/node_modules/.bin/node" --version
