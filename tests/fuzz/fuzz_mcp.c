/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_mcp.c: libFuzzer harness for the MCP engine: each input is one stdio line (2025-03-26:
 * batches allowed) and HTTP POST bodies: handshake era with a session and no version header
 * (batches allowed), handshake era under 2025-06-18 (batches refused), and stateless era, once
 * with fixed headers and once with Mcp-Method / Mcp-Name taken from the body so that the header
 * checks pass and the stateless dispatcher is reached for any method. Also: a session bound to
 * a caller used by another caller; tool "slow" completes only after the exchange was dispatched
 * (so notifications/cancelled in the same batch or line stream can reach it); results whose
 * message is the input's own bytes (cut UTF-8, invalid bytes) and duplicate keys. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/mcp_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nk_mcp *engine;
static struct nk_mcp_backend backend;
static struct nk_exposed tools[3];
static struct nk_adapter adapter;
static char sid[NK_MCP_SESSION_ID_MAX], alice_sid[NK_MCP_SESSION_ID_MAX];
static char names[3][8] = {"get", "list", "slow"};
static const uint8_t *cur_data; /* the input, for messages made of its bytes */
static size_t cur_size;

#define MAX_SLOW 64
static struct {
    nk_mcp_done_fn done;
    void *ud;
} slow[MAX_SLOW];
static size_t n_slow;

static void complete_slow(void)
{
    struct nk_result r;
    size_t i;

    for (i = 0; i < n_slow; i++) {
        memset(&r, 0, sizeof(r));
        r.kind = i % 2 ? NK_RES_UPSTREAM_ERROR : NK_RES_UNREACHABLE;
        memcpy(r.message, cur_data,
               cur_size < sizeof(r.message) - 1 ? cur_size : sizeof(r.message) - 1);
        slow[i].done(slow[i].ud, &r);
    }
    n_slow = 0;
}

static void fake_cancel(void *ud, uint64_t tag)
{
    (void)ud;
    if (tag == 0)
        abort(); /* the engine promises a non-zero tag */
}

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
    if (tool == &tools[2] && n_slow < MAX_SLOW) {
        slow[n_slow].done = done;
        slow[n_slow].ud = done_ud;
        n_slow++;
        return NK_OK;
    }
    r.kind = tool == &tools[0] ? NK_RES_OK : NK_RES_UPSTREAM_ERROR;
    r.json = json_deep_copy(args);
    /* An upstream message made of the input's bytes: neither UTF-8 nor whole is promised. */
    memcpy(r.message, cur_data,
           cur_size < sizeof(r.message) - 1 ? cur_size : sizeof(r.message) - 1);
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
        tools[2].name = names[2];
        adapter.type = NK_ADAPTER_MCP;
        adapter.ops = tools;
        adapter.n_ops = 3;
        backend.adapter = &adapter;
        backend.call = fake_call;
        backend.cancel = fake_cancel;
        if (nk_mcp_new(NULL, &engine, NULL) != NK_OK ||
            nk_mcp_session_new(engine, NULL, sid) != NK_OK ||
            nk_mcp_session_new(engine, "alice", alice_sid) != NK_OK)
            abort();
    }
    cur_data = data;
    cur_size = size;
    memset(&conn, 0, sizeof(conn));
    strcpy(conn.version, "2025-03-26");
    nk_mcp_line(engine, &backend, &conn, (const char *)data, size, drop, NULL);
    /* Each line of the input as a stdio message: a cancellation can follow its request. */
    {
        const char *p = (const char *)data, *end = p + size, *nl;

        while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            nk_mcp_line(engine, &backend, &conn, p, (size_t)(nl - p), drop, NULL);
            p = nl + 1;
        }
    }
    complete_slow();

    memset(&in, 0, sizeof(in));
    in.method = "POST";
    in.host = "localhost";
    in.session_id = sid;
    in.body = (const char *)data;
    in.body_len = size;
    nk_mcp_http(engine, &backend, &in, drop, NULL);
    in.protocol_version = "2025-06-18";
    nk_mcp_http(engine, &backend, &in, drop, NULL);
    /* Alice's session: valid for alice, unknown for bob. */
    in.session_id = alice_sid;
    in.caller = "alice";
    in.protocol_version = NULL;
    nk_mcp_http(engine, &backend, &in, drop, NULL);
    in.caller = "bob";
    nk_mcp_http(engine, &backend, &in, drop, NULL);
    in.caller = NULL;
    complete_slow();
    in.session_id = NULL;
    in.protocol_version = "2026-07-28";
    in.mcp_method = "tools/call";
    in.mcp_name = "slow";
    /* A stateless exchange whose client closes the stream before the answer. */
    nk_mcp_http(engine, &backend, &in, drop, &in);
    nk_mcp_http_closed(engine, &in);
    complete_slow();
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
    complete_slow();
    json_decref(body);
    return 0;
}
