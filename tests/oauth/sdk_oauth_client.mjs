// SPDX-License-Identifier: Apache-2.0
// sdk_oauth_client.mjs: the official TypeScript SDK as an OAuth client of naftikod. With no token
// it connects, gets 401 with the resource_metadata challenge, reads the RFC 9728 metadata, finds
// the authorization server (RFC 8414), gets a token with the client_credentials grant
// (ClientCredentialsProvider, client_secret_basic, RFC 8707 resource) and calls a tool.
// usage: node sdk_oauth_client.mjs MCP_URL ISSUER TOOL CLIENT_ID CLIENT_SECRET
// (the client secret is a fixed test string of the AS double; the AS CA via NODE_EXTRA_CA_CERTS)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const [url, issuer, tool, clientId, clientSecret] = process.argv.slice(2);
const provider = new ClientCredentialsProvider({
    clientId,
    clientSecret,
    scope: 'mcp:tools',
    expectedIssuer: issuer,
});
const seen = [];
const transport = new StreamableHTTPClientTransport(new URL(url), {
    authProvider: provider,
    fetch: async (input, init) => {
        const r = await fetch(input, init);
        seen.push(`${init?.method ?? 'GET'} ${new URL(String(input.url ?? input)).pathname} ${r.status}`);
        return r;
    },
});
const client = new Client({ name: 'naftikod-oauth-test', version: '0.0.0' });
await client.connect(transport);
const tools = await client.listTools();
const result = await client.callTool({ name: tool, arguments: {} });
const tokens = provider.tokens();
console.log(JSON.stringify({
    tools: tools.tools.map((t) => t.name),
    isError: result.isError === true,
    content: result.content?.[0]?.type ?? null,
    gotToken: typeof tokens?.access_token === 'string',
    scope: tokens?.scope ?? null,
    requests: seen,
}));
await client.close();
