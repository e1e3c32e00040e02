// SPDX-License-Identifier: Apache-2.0
// mcp_load.mjs: MCP tools/call load generator for bench/mcp_bench.sh (Node, no dependencies).
// Each of CONC workers, over one keep-alive http.Agent, sends initialize once (protocol version
// 2025-06-18, keeps the Mcp-Session-Id it gets), notifications/initialized, then loops
// tools/call of TOOL with {} arguments for DUR seconds, one request in flight per worker.
// Answers may be JSON or SSE (the JSON-RPC response is taken from the data: lines). A success is
// HTTP 200 with a result whose isError is not true; anything else counts as an error. At the
// end each worker DELETEs its session. Prints one JSON line:
//   {"ok","err","dur","rps","p50_ms","p90_ms","p99_ms","max_ms","lg_cpu_pct","procs"}
// lg_cpu_pct is this generator's own CPU (user+sys, summed over processes) as a percentage of
// one core during the timed loop: near 100 × procs means the generator, not the server, limits.
//   node mcp_load.mjs URL [--conc N] [--dur S] [--tool NAME] [--procs P]
// --procs P forks P generator processes sharing the CONC workers (each its own agent).
// $MCP_LOAD_AUTHORIZATION, when set, is sent as the Authorization header of every request.
import { fork } from 'node:child_process';
import http from 'node:http';

const a = { conc: 32, dur: 10, procs: 1, tool: 'getapitokens-returns-all-api-tokens', child: false };
a.url = process.argv[2];
for (let i = 3; i < process.argv.length; i++) {
    const k = process.argv[i];
    if (k === '--conc') a.conc = Number(process.argv[++i]);
    else if (k === '--dur') a.dur = Number(process.argv[++i]);
    else if (k === '--tool') a.tool = process.argv[++i];
    else if (k === '--procs') a.procs = Number(process.argv[++i]);
    else if (k === '--child') a.child = true;
    else throw new Error(`unknown argument '${k}'`);
}
if (!a.url || !(a.conc >= 1) || !(a.dur > 0) || !(a.procs >= 1))
    throw new Error('usage: mcp_load.mjs URL [--conc N] [--dur S] [--tool NAME] [--procs P]');
const VERSION = '2025-06-18';

function pct(sorted, p) {
    if (!sorted.length) return 0;
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

if (a.procs > 1 && !a.child) {
    // Parent: split the workers over P children, sum their counts, merge their latencies.
    const per = [];
    for (let p = 0; p < a.procs; p++)
        per.push(Math.floor(a.conc / a.procs) + (p < a.conc % a.procs ? 1 : 0));
    const results = await Promise.all(per.map((c) => new Promise((resolve, reject) => {
        const ch = fork(process.argv[1], [a.url, '--conc', String(c), '--dur', String(a.dur),
                                          '--tool', a.tool, '--child'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
        ch.on('message', resolve);
        ch.on('exit', (code) => { if (code) reject(new Error(`generator child exited ${code}`)); });
    })));
    const lat = Float64Array.from(results.flatMap((r) => r.lat)).sort();
    const ok = results.reduce((s, r) => s + r.ok, 0), err = results.reduce((s, r) => s + r.err, 0);
    const dur = Math.max(...results.map((r) => r.dur));
    console.log(JSON.stringify({ ok, err, dur: +dur.toFixed(3), rps: +(ok / dur).toFixed(1),
                                 p50_ms: +pct(lat, 50).toFixed(3), p90_ms: +pct(lat, 90).toFixed(3),
                                 p99_ms: +pct(lat, 99).toFixed(3), max_ms: +lat[lat.length - 1].toFixed(3),
                                 lg_cpu_pct: +results.reduce((s, r) => s + r.cpu, 0).toFixed(1),
                                 procs: a.procs }));
    process.exit(0);
}

const u = new URL(a.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: a.conc });

function post(body, session, method = 'POST') {
    return new Promise((resolve, reject) => {
        const headers = { 'Content-Type': 'application/json',
                          Accept: 'application/json, text/event-stream',
                          'MCP-Protocol-Version': VERSION };
        if (session) headers['Mcp-Session-Id'] = session;
        if (process.env.MCP_LOAD_AUTHORIZATION) headers.Authorization = process.env.MCP_LOAD_AUTHORIZATION;
        const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        if (data) headers['Content-Length'] = data.length;
        const r = http.request({ host: u.hostname, port: u.port, path: u.pathname, method, agent,
                                 headers }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                                          text: Buffer.concat(chunks).toString() }));
            res.on('error', reject);
        });
        r.setTimeout(30000, () => r.destroy(new Error('timeout')));
        r.on('error', reject);
        r.end(data);
    });
}

// The JSON-RPC response with id `id` from a JSON or SSE body, or null.
function response(res, id) {
    const ct = String(res.headers['content-type'] || '');
    const msgs = [];
    if (ct.startsWith('text/event-stream')) {
        for (const ev of res.text.split(/\r?\n\r?\n/)) {
            const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data:'))
                .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
            if (data) try { msgs.push(JSON.parse(data)); } catch { /* not JSON: ignore */ }
        }
    } else {
        try { msgs.push(JSON.parse(res.text)); } catch { return null; }
    }
    return msgs.flat().find((m) => m && m.id === id && ('result' in m || 'error' in m)) || null;
}

let ok = 0, err = 0, firstErr = null;
const lat = [];
let stopAt = 0;

async function worker(w) { // initialize; returns the session id
    const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize',
                              params: { protocolVersion: VERSION, capabilities: {},
                                        clientInfo: { name: 'mcp_load', version: '1' } } });
    const ir = response(init, 0);
    if (init.status !== 200 || !ir || !ir.result)
        throw new Error(`worker ${w}: initialize failed: HTTP ${init.status} ${init.text.slice(0, 200)}`);
    const session = init.headers['mcp-session-id'];
    const n = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    if (n.status !== 202 && n.status !== 200)
        throw new Error(`worker ${w}: notifications/initialized: HTTP ${n.status}`);
    return session;
}

async function loop(session) {
    let id = 1;
    while (performance.now() < stopAt) {
        const t0 = performance.now();
        const my = id++;
        try {
            const r = await post({ jsonrpc: '2.0', id: my, method: 'tools/call',
                                   params: { name: a.tool, arguments: {} } }, session);
            const m = response(r, my);
            if (r.status === 200 && m && m.result && m.result.isError !== true) {
                ok++;
                lat.push(performance.now() - t0);
            } else {
                err++;
                firstErr ??= `HTTP ${r.status} ${r.text.slice(0, 200)}`;
            }
        } catch (e) {
            err++;
            firstErr ??= e.message;
        }
    }
}

// Every worker initializes before the clock starts (sessions are set up outside the timed loop).
const inits = [];
for (let w = 0; w < a.conc; w++) inits.push(worker(w));
const sessions = await Promise.all(inits);
const c0 = process.cpuUsage();
const t0 = performance.now();
stopAt = t0 + a.dur * 1000;
await Promise.all(sessions.map(loop));
const dur = (performance.now() - t0) / 1000;
const c1 = process.cpuUsage(c0);
await Promise.all(sessions.map((sid) => sid && post(undefined, sid, 'DELETE').catch(() => {})));
const cpu = ((c1.user + c1.system) / 1e6 / dur) * 100;
if (firstErr) console.error(`mcp_load: first error: ${firstErr}`);
if (a.child) {
    process.send({ ok, err, dur, lat, cpu }, () => process.exit(0));
} else {
    const s = Float64Array.from(lat).sort();
    console.log(JSON.stringify({ ok, err, dur: +dur.toFixed(3), rps: +(ok / dur).toFixed(1),
                                 p50_ms: +pct(s, 50).toFixed(3), p90_ms: +pct(s, 90).toFixed(3),
                                 p99_ms: +pct(s, 99).toFixed(3), max_ms: +(s[s.length - 1] ?? 0).toFixed(3),
                                 lg_cpu_pct: +cpu.toFixed(1), procs: 1 }));
}
