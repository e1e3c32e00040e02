/* SPDX-License-Identifier: Apache-2.0 */
/* mcp.h: the MCP adapter (JSON-RPC 2.0; Streamable HTTP and stdio; both protocol eras). */
#ifndef NAFTIKOD_MCP_H
#define NAFTIKOD_MCP_H

#include "naftikod/httpd.h"
#include "naftikod/server.h"

/* Handle one HTTP request on the MCP endpoint of the adapter whose namespace is ns (looked up
 * in the server's current table on every request). Always answers req exactly once. */
void nk_mcp_handle(struct nk_server *s, const char *ns, struct nk_http_req *req);

#endif
