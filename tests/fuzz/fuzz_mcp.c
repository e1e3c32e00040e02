/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_mcp.c: libFuzzer harness for the MCP engine: each input is one stdio line (2025-03-26:
 * batches allowed) and HTTP POST bodies: handshake era with a session and no version header
 * (batches allowed), handshake era under 2025-06-18 (batches refused), and stateless era, once
 * with fixed headers and once with Mcp-Method / Mcp-Name taken from the body so that the header
 * checks pass and the stateless dispatcher is reached for any method. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/mcp_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nk_mcp *engine;
static struct nk_mcp_backend backend;
static struct nk_exposed tools[2];
static struct nk_adapter adapter;
static char sid[NK_MCP_SESSION_ID_MAX];
static char names[2][8] = {"get", "list"};

static enum nk_rc fake_call(void *ud, const struct nk_exposed *tool, json_t *args,
                            nk_mcp_done_fn done, void *done_ud, struct nk_error *err)
{
    struct nk_result r;

    (void)ud;
    memset(&r, 0, sizeof(r));
    if (json_object_size(args) > 2) {
        nk_error_set(err, "too many arguments");
        return NK_ERR_INVALID;
    }
    r.kind = tool == &tools[0] ? NK_RES_OK : NK_RES_UPSTREAM_ERROR;
    r.json = json_deep_copy(args);
    done(done_ud, &r);
    json_decref(r.json);
    return NK_OK;
}

static void drop(void *ud, struct nk_mcp_reply *r)
{
    (void)ud;
    (void)r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nk_mcp_conn conn;
    struct nk_mcp_http_in in;
    json_t *body, *params, *meta;

    if (engine == NULL) {
        tools[0].name = names[0];
        tools[1].name = names[1];
        adapter.type = NK_ADAPTER_MCP;
        adapter.ops = tools;
        adapter.n_ops = 2;
        backend.adapter = &adapter;
        backend.call = fake_call;
        if (nk_mcp_new(NULL, &engine, NULL) != NK_OK || nk_mcp_session_new(engine, sid) != NK_OK)
            abort();
    }
    memset(&conn, 0, sizeof(conn));
    strcpy(conn.version, "2025-03-26");
    nk_mcp_line(engine, &backend, &conn, (const char *)data, size, drop, NULL);

    memset(&in, 0, sizeof(in));
    in.method = "POST";
    in.host = "localhost";
    in.session_id = sid;
    in.body = (const char *)data;
    in.body_len = size;
    nk_mcp_http(engine, &backend, &in, drop, NULL);
    in.protocol_version = "2025-06-18";
    nk_mcp_http(engine, &backend, &in, drop, NULL);
    in.session_id = NULL;
    in.protocol_version = "2026-07-28";
    in.mcp_method = "tools/call";
    in.mcp_name = "get";
    nk_mcp_http(engine, &backend, &in, drop, NULL);

    body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    params = json_object_get(body, "params");
    in.mcp_method = json_string_value(json_object_get(body, "method"));
    in.mcp_name = json_string_value(json_object_get(params, "name"));
    if (in.mcp_name == NULL)
        in.mcp_name = json_string_value(json_object_get(params, "uri"));
    meta = json_object_get(json_object_get(params, "_meta"),
                           "io.modelcontextprotocol/protocolVersion");
    if (json_string_value(meta) != NULL)
        in.protocol_version = json_string_value(meta);
    nk_mcp_http(engine, &backend, &in, drop, NULL);
    json_decref(body);
    return 0;
}
