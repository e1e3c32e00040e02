// SPDX-License-Identifier: Apache-2.0
// sdk_client.mjs: the official MCP TypeScript SDK client against naftikod, over Streamable HTTP
// or stdio: lists the seed capability's four tools (with annotations) and calls generate, list,
// get and revoke against the Central double, checking every result.
//   node sdk_client.mjs http URL
//   node sdk_client.mjs stdio NAFTIKOD ARG...   (environment passed through)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const [mode, ...rest] = process.argv.slice(2);
let passed = 0;
let failed = 0;

function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
  }
}

const TOOLS = {
  list: 'getapitokens-returns-all-api-tokens',
  generate: 'generatetoken-generates-api-token-given',
  revoke: 'revoketoken-removes-api-token-given',
  get: 'getapitoken-returns-api-token-metadata',
};
const HINTS = {
  list: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  generate: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  revoke: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  get: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
};

function textOf(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

async function main() {
  let transport;
  if (mode === 'http') {
    transport = new StreamableHTTPClientTransport(new URL(rest[0]));
  } else if (mode === 'stdio') {
    transport = new StdioClientTransport({
      command: rest[0],
      args: rest.slice(1),
      env: { ...process.env },
      stderr: 'inherit',
    });
  } else {
    console.error('usage: sdk_client.mjs http URL | stdio COMMAND ARG...');
    process.exit(2);
  }
  const client = new Client({ name: 'naftikod-sdk-test', version: '1.0.0' });
  await client.connect(transport);
  const info = client.getServerVersion();
  check('serverInfo names naftikod', info?.name === 'naftikod', info);
  check('tools capability', client.getServerCapabilities()?.tools !== undefined);

  const { tools } = await client.listTools();
  check('four tools listed', tools.length === 4, tools.map((t) => t.name));
  for (const [key, name] of Object.entries(TOOLS)) {
    const t = tools.find((x) => x.name === name);
    check(`tool ${key} present`, t !== undefined, name);
    if (t === undefined) continue;
    check(`tool ${key} has a description`, typeof t.description === 'string' && t.description !== '');
    check(`tool ${key} inputSchema is an object schema`, t.inputSchema?.type === 'object', t.inputSchema);
    for (const [hint, want] of Object.entries(HINTS[key])) {
      check(`tool ${key} ${hint}=${want}`, t.annotations?.[hint] === want, t.annotations);
    }
  }

  const name = `sdk-${mode}-${process.pid}`;
  const gen = await client.callTool({
    name: TOOLS.generate,
    arguments: { body: { name, roles: ['Admin'] } },
  });
  check('generate succeeds', gen.isError !== true, gen);
  const token = gen.structuredContent?.token;
  const id = gen.structuredContent?.metadata?.id;
  check('generate returns a token', typeof token === 'string' && token.length > 0);
  check('generate returns metadata.id', typeof id === 'string' && id.length > 0, gen.structuredContent);
  check('generate text block carries the JSON', JSON.parse(textOf(gen))?.metadata?.id === id);

  const list = await client.callTool({ name: TOOLS.list, arguments: {} });
  check('list succeeds', list.isError !== true, list);
  check('list contains the new token',
    (list.structuredContent?.tokens ?? []).some((t) => t.id === id), list.structuredContent);

  const got = await client.callTool({ name: TOOLS.get, arguments: { id } });
  check('get succeeds', got.isError !== true, got);
  check('get returns the token metadata', got.structuredContent?.name === name, got.structuredContent);
  check('get says not revoked', got.structuredContent?.revoked === false, got.structuredContent);

  const rev = await client.callTool({ name: TOOLS.revoke, arguments: { id } });
  check('revoke succeeds', rev.isError !== true, rev);
  const after = await client.callTool({ name: TOOLS.get, arguments: { id } });
  check('get after revoke says revoked', after.structuredContent?.revoked === true, after.structuredContent);

  const revokedOnly = await client.callTool({ name: TOOLS.list, arguments: { revoked: true } });
  check('list revoked=true contains it',
    (revokedOnly.structuredContent?.tokens ?? []).some((t) => t.id === id), revokedOnly.structuredContent);

  // Errors a model can act on.
  const empty = await client.callTool({ name: TOOLS.generate, arguments: { body: { name: '', roles: ['Admin'] } } });
  check('generate with an empty name is a tool error', empty.isError === true, empty);
  check('the error text names the upstream status', /upstream answered 400/.test(textOf(empty)), textOf(empty));
  const missing = await client.callTool({ name: TOOLS.get, arguments: {} });
  check('a missing required argument is a tool error', missing.isError === true, missing);
  const unknown = await client.callTool({ name: TOOLS.get, arguments: { id: 'no-such-token' } });
  check('an unknown id is a tool error', unknown.isError === true, unknown);
  let code;
  try {
    await client.callTool({ name: 'no-such-tool', arguments: {} });
  } catch (e) {
    code = e.code;
  }
  check('an unknown tool is a protocol error -32602', code === -32602, code);

  await client.close();
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL unexpected error: ${e?.stack ?? e}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
