/* SPDX-License-Identifier: Apache-2.0 */
/* mcp_placeholder.c: TEMPORARY, branch `rest` only: lets `serve` link before src/mcp.c lands.
 * Delete this file when merging src/mcp.c (the real nk_mcp_handle). */
#include <stdlib.h>
#include <string.h>

#include "naftikod/mcp.h"

void nk_mcp_handle(struct nk_server *s, const char *ns, struct nk_http_req *req)
{
    static const char body[] = "{\"type\":\"about:blank\",\"title\":\"Not Implemented\","
                               "\"status\":501,\"detail\":\"the MCP adapter is not built in\"}";

    (void)s;
    (void)ns;
    nk_http_respond(req, 501, "application/problem+json", strdup(body), sizeof(body) - 1, NULL);
}
