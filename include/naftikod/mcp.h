/* SPDX-License-Identifier: Apache-2.0 */
/* mcp.h: the MCP adapter (JSON-RPC 2.0; Streamable HTTP and stdio; both protocol eras). */
#ifndef NAFTIKOD_MCP_H
#define NAFTIKOD_MCP_H

#include "naftikod/httpd.h"
#include "naftikod/keyring.h"
#include "naftikod/mcp_core.h"
#include "naftikod/server.h"

/* Handle one HTTP request on the MCP endpoint of the adapter whose namespace is ns (looked up
 * in the server's current table on every request). Always answers req exactly once. */
void nk_mcp_handle(struct nk_server *s, const char *ns, struct nk_http_req *req);

/* True for the OAuth discovery and registration paths clients probe (/.well-known/oauth-*,
 * /.well-known/openid-configuration, /register): nk_mcp_handle answers them 404 with a small
 * JSON body, and the listener lets them through before authenticating. */
bool nk_mcp_oauth_path(const char *path);

struct nk_mcp_options;
/* Once, before the first nk_mcp_handle: session key, extra allowed Host/Origin names, page size
 * (see mcp_core.h; `serve` passes --mcp-session-key-file and --mcp-allowed-hosts here). Without
 * it the first request makes an engine with the defaults (a random per-process key, loopback
 * names only). NK_OK; NK_ERR_INVALID when already configured; NK_ERR_NOMEM / NK_ERR_IO. */
enum nk_rc nk_mcp_configure(const struct nk_mcp_options *opts, struct nk_error *err);
/* Put a new session key ring in force in the configured engine (SIGHUP); ring copied. False
 * when no engine is configured. */
bool nk_mcp_set_session_keys(const struct nk_keyring *ring);
/* The session keys' fingerprints, signing key first (nk_mcp_key_fingerprints); 0 when no engine
 * is configured. */
size_t nk_mcp_session_key_fingerprints(char (*fp)[17], size_t max);
/* nk_mcp_sessions_refused() of the configured engine, for each reason into out[]; false (out
 * untouched) when no engine is configured. */
bool nk_mcp_sessions_refused_all(unsigned long long out[3]);

/* Server-to-client SSE streams (GET /mcp, handshake era): at most NK_MCP_MAX_STREAMS open in
 * the process (beyond: 503), one per session (a second GET for a session ends the first). */
#define NK_MCP_MAX_STREAMS 256
/* The tools may have changed (a reload put another table in force): write one
 * notifications/tools/list_changed event to every open stream, each on its own loop. Any
 * thread. */
void nk_mcp_streams_tools_changed(void);
/* End every open stream and refuse new ones (503) from now on (shutdown: the client reconnects
 * elsewhere). Any thread. */
void nk_mcp_streams_end_all(void);

#endif
