// SPDX-License-Identifier: Apache-2.0
// sdk_list_changed.mjs: the official MCP TypeScript SDK client hears
// notifications/tools/list_changed on the session's GET stream and lists the new tool.
//   node sdk_list_changed.mjs URL NEW_TOOL
// Prints "connected" once the session is up, then waits (at most 60 s) for the notification,
// which the driver causes with a reload.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const [url, newTool] = process.argv.slice(2);
const client = new Client({ name: 'naftikod-sdk-list-changed', version: '1.0.0' });
let heard = 0;
let wake;
const changed = new Promise((resolve) => {
  wake = resolve;
});
client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
  heard++;
  wake();
});
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const caps = client.getServerCapabilities();
if (caps?.tools?.listChanged !== true) {
  console.log(`FAIL tools.listChanged not declared: ${JSON.stringify(caps)}`);
  process.exit(1);
}
const before = (await client.listTools()).tools.map((t) => t.name);
if (before.includes(newTool)) {
  console.log(`FAIL ${newTool} listed before the reload`);
  process.exit(1);
}
console.log('connected');
const timer = setTimeout(() => {
  console.log('FAIL no notifications/tools/list_changed within 60 s');
  process.exit(1);
}, 60000);
await changed;
clearTimeout(timer);
const after = (await client.listTools()).tools.map((t) => t.name);
if (!after.includes(newTool)) {
  console.log(`FAIL ${newTool} not listed after the notification: ${after.join(' ')}`);
  process.exit(1);
}
console.log(`ok   the SDK client heard list_changed (${heard}) and lists ${newTool}`);
await client.close();
process.exit(0);
