// SPDX-License-Identifier: Apache-2.0
// server.mjs: the benchmark peer of naftikod's MCP list tool, built on the official TypeScript
// SDK (@modelcontextprotocol/sdk, McpServer + StreamableHTTPServerTransport on node:http).
// One tool with the name, description, inputSchema shape and annotations of naftikod's
// getapitokens-returns-all-api-tokens; a call does GET https://CENTRAL/v1/apitokens[?revoked=]
// with the same Authorization ($STACKROX_API_KEY) over a keep-alive https.Agent and answers
// structuredContent + one text block with the same JSON, like naftikod.
//   node server.mjs --central HOST:PORT --ca-file CRT --port-file F [--mode sse|json]
//        [--stateless]
// --mode sse (default): the SDK's default, each POST answered as an SSE stream;
// --mode json: enableJsonResponse. Default stateful (a session per initialize, the SDK's
// documented session map); --stateless: a new McpServer + transport per request (the SDK's
// documented stateless pattern). Listens on 127.0.0.1, port 0; writes the port to --port-file.
import { randomUUID } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';

// The SDK and zod live in the install prefix (build/mcp-bench-npm), not next to this file.
const prefix = process.env.MCP_BENCH_NPM;
if (!prefix) throw new Error('set MCP_BENCH_NPM to the npm prefix holding the peer dependencies');
const req = createRequire(prefix + '/package.json');
const { McpServer } = await import(req.resolve('@modelcontextprotocol/sdk/server/mcp.js'));
const { StreamableHTTPServerTransport } = await import(
    req.resolve('@modelcontextprotocol/sdk/server/streamableHttp.js'));
const { isInitializeRequest } = await import(req.resolve('@modelcontextprotocol/sdk/types.js'));
const { z } = await import(req.resolve('zod'));

const args = { mode: 'sse', stateless: false };
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === '--central') args.central = process.argv[++i];
    else if (a === '--ca-file') args.ca = process.argv[++i];
    else if (a === '--port-file') args.portFile = process.argv[++i];
    else if (a === '--mode') args.mode = process.argv[++i];
    else if (a === '--stateless') args.stateless = true;
    else throw new Error(`unknown argument '${a}'`);
}
if (!args.central || !args.ca || !args.portFile || !['sse', 'json'].includes(args.mode))
    throw new Error('usage: server.mjs --central HOST:PORT --ca-file CRT --port-file F ' +
                    '[--mode sse|json] [--stateless]');
const auth = process.env.STACKROX_API_KEY;
if (!auth) throw new Error('STACKROX_API_KEY is not set');
const [chost, cport] = args.central.split(':');
// Keep-alive, up to 256 connections (naftikod's upstream default cap per host).
const agent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: readFileSync(args.ca) });

function getTokens(revoked) {
    const path = revoked === undefined ? '/v1/apitokens' : `/v1/apitokens?revoked=${revoked}`;
    return new Promise((resolve, reject) => {
        const r = https.request({ host: chost, port: Number(cport), path, method: 'GET', agent,
                                  servername: 'localhost',
                                  headers: { Authorization: auth, Accept: 'application/json' } },
                                (res) => {
                                    const chunks = [];
                                    res.on('data', (c) => chunks.push(c));
                                    res.on('end', () => resolve({ status: res.statusCode,
                                                                  body: Buffer.concat(chunks).toString() }));
                                    res.on('error', reject);
                                });
        r.setTimeout(30000, () => r.destroy(new Error('upstream timeout')));
        r.on('error', reject);
        r.end();
    });
}

async function listTool({ revoked }) {
    let up;
    try {
        up = await getTokens(revoked);
    } catch (e) {
        return { isError: true, content: [{ type: 'text', text: `upstream failed: ${e.message}` }] };
    }
    let value;
    try {
        value = JSON.parse(up.body);
    } catch {
        return { isError: true, content: [{ type: 'text', text: 'upstream answered non-JSON' }] };
    }
    if (up.status < 200 || up.status > 299) {
        const r = { isError: true, content: [{ type: 'text', text: `upstream answered ${up.status}` }] };
        if (value && typeof value === 'object' && !Array.isArray(value)) r.structuredContent = value;
        return r;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) value = { result: value };
    return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
}

function newServer() {
    const s = new McpServer({ name: 'sdk-peer', version: '0.0.0' },
                            { capabilities: { tools: { listChanged: false } } });
    s.registerTool('getapitokens-returns-all-api-tokens', {
        description: 'GetAPITokens returns all the API tokens.',
        inputSchema: { revoked: z.boolean().optional() },
        annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true,
                       openWorldHint: true },
    }, listTool);
    return s;
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => resolve(Buffer.concat(chunks).toString()));
        req.on('error', reject);
    });
}

function fail(res, status, code, message) {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }));
}

const sessions = new Map(); // session id -> transport (stateful mode)
const json = args.mode === 'json';

async function handle(req, res) {
    if (!req.url.startsWith('/mcp')) return fail(res, 404, -32601, 'not found');
    let body;
    if (req.method === 'POST') {
        try {
            body = JSON.parse(await readBody(req));
        } catch {
            return fail(res, 400, -32700, 'parse error');
        }
    }
    if (args.stateless) {
        const server = newServer();
        const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined,
                                                      enableJsonResponse: json });
        res.on('close', () => { t.close(); server.close(); });
        await server.connect(t);
        return t.handleRequest(req, res, body);
    }
    const sid = req.headers['mcp-session-id'];
    let t = sid ? sessions.get(sid) : undefined;
    if (!t) {
        if (sid) return fail(res, 404, -32001, 'session not found');
        if (req.method !== 'POST' || !isInitializeRequest(body))
            return fail(res, 400, -32000, 'no session id');
        t = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(), enableJsonResponse: json,
            onsessioninitialized: (id) => sessions.set(id, t),
        });
        t.onclose = () => { if (t.sessionId) sessions.delete(t.sessionId); };
        await newServer().connect(t);
    }
    return t.handleRequest(req, res, body);
}

const srv = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
        if (!res.headersSent) fail(res, 500, -32603, String(e && e.message));
        else res.destroy();
    });
});
srv.keepAliveTimeout = 60000;
srv.listen(0, '127.0.0.1', () => {
    const tmp = args.portFile + '.tmp';
    writeFileSync(tmp, `${srv.address().port}\n`);
    renameSync(tmp, args.portFile);
});
const stop = () => srv.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
